// Connection-stage filters on the MX listener: a client that talks before the greeting (with
// smtp.greetingDelayMs) is refused with 554 5.5.1 and closed, as postscreen's pregreet test does;
// with filters.earlyTalker off it is smtp-server's own temporary 421; a patient client
// is greeted as usual.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

/** Connects, optionally writes at once, and collects what the server says until it closes or `ms` pass. */
function talk(port: number, early: string | null, ms: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (early !== null) socket.write(early);
    });
    setTimeout(() => {
      socket.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

describe('early talkers', () => {
  let slapd: Slapd;
  let strict: TestServer;
  let lenient: TestServer;

  before(async () => {
    slapd = await startSlapd();
    strict = await startServer(slapd, { smtp: { greetingDelayMs: 400 } });
    lenient = await startServer(slapd, { smtp: { greetingDelayMs: 400 }, filters: { earlyTalker: false } });
  });
  after(async () => {
    await strict?.stop();
    await lenient?.stop();
    await slapd?.stop();
  });

  test('a command before the greeting: 554 5.5.1 and the connection closed, no greeting', async () => {
    const { text, closed } = await talk(strict.smtpPort, 'EHLO hasty.example\r\n', 1500);
    assert.match(text, /^554 5\.5\.1 .*talked before the greeting\r\n$/);
    assert.ok(closed, 'closed by the server');
  });

  test('a patient client is greeted', async () => {
    const { text } = await talk(strict.smtpPort, null, 900);
    assert.match(text, /^220 /);
  });

  test('with filters.earlyTalker off: smtp-server\'s own temporary 421 instead', async () => {
    const { text } = await talk(lenient.smtpPort, 'EHLO hasty.example\r\n', 1200);
    assert.match(text, /^421 .*too soon\r\n/);
    assert.doesNotMatch(text, /^554/m);
  });
});
