// Limits with their standard replies (research §2.7–§2.9): recipients per message, the global
// message size (declared and actual), the per-recipient mailSizeMax (frank: 524 288 bytes) and
// overlong command lines. A refused message is never queued and never delivered.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript, type Reply } from '../harness/smtp-transcript.ts';
import { assertReply, marker, messagesWith, newNames, simpleMessage, todoFiles, transaction, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

const SMALL_LIMIT = 20_000;

let slapd: Slapd;
/** maxRecipients 3, maxMessageSize 20 000. */
let small: TestServer;
/** Defaults (25 MiB, 100 recipients). */
let normal: TestServer;
/** smtp.timeoutSeconds 1. */
let impatient: TestServer;
before(async () => {
  slapd = await startSlapd();
  small = await startServer(slapd, { smtp: { maxRecipients: 3, maxMessageSize: SMALL_LIMIT } });
  normal = await startServer(slapd);
  impatient = await startServer(slapd, { smtp: { timeoutSeconds: 1 } });
});
after(async () => {
  await impatient?.stop();
  await small?.stop();
  await normal?.stop();
  await slapd?.stop();
});

/** Lines of `width` bytes (CRLF included) adding up to at least `bytes`. */
function bulkBody(bytes: number, width = 78): string {
  const line = `${'x'.repeat(width - 2)}\r\n`;
  return line.repeat(Math.ceil(bytes / width));
}

async function assertNothingQueued(server: TestServer, what: string): Promise<void> {
  const todos = await todoFiles(server.config.spool);
  assert.deepEqual(todos.map((t) => t.id), [], `${what}: something was queued`);
}

describe('recipients per message', () => {
  test('smtp.maxRecipients 3: the 4th RCPT gets 452 4.5.3, the first three are delivered', async () => {
    const subject = marker('max-rcpt');
    const t = await Transcript.open(small.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test',
      ['alice@example.org', 'bob@example.org', 'ivan@example.org', 'dave@example.org'], simpleMessage(subject));
    t.close();
    for (const [i, reply] of result.rcpts.slice(0, 3).entries()) assert.equal(reply.code, 250, `RCPT ${i + 1}: ${reply.raw}`);
    assertReply(result.rcpts[3]!, 452, '4.5.3', '4th RCPT');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    await waitForMessages(small.maildir('alice'), subject);
    await waitForMessages(small.maildir('bob'), subject);
    await waitForMessages(small.maildir('ivan'), subject);
    assert.equal((await messagesWith(small.maildir('dave'), subject)).length, 0, 'dave was over the limit');
  });
});

describe('message size', () => {
  test('MAIL FROM SIZE above smtp.maxMessageSize → 552 5.3.4', async () => {
    const t = await Transcript.open(small.smtpPort);
    await t.hello();
    const reply = await t.command(`MAIL FROM:<sender@outside.test> SIZE=${SMALL_LIMIT + 1}`);
    const rset = await t.command('RSET');
    t.close();
    assertReply(reply, 552, '5.3.4', 'SIZE too big');
    assert.equal(rset.code, 250, 'the session stays usable');
  });

  test('MAIL FROM SIZE=1099511627776 → 552 5.3.4', async () => {
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    const reply = await t.command('MAIL FROM:<sender@outside.test> SIZE=1099511627776');
    t.close();
    assertReply(reply, 552, '5.3.4', 'SIZE of 1 TiB');
  });

  test('a 30 000-byte body over a 20 000-byte limit → 552 5.3.4 after the dot, nothing queued or delivered, session usable', async () => {
    const subject = marker('too-big');
    const t = await Transcript.open(small.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test', ['alice@example.org'], simpleMessage(subject, bulkBody(30_000)));
    assertReply(result.end!, 552, '5.3.4', 'end of an oversized body');
    // The server read to the end of the data: the next command is answered as a command.
    const next = await transaction(t, 'sender@outside.test', ['alice@example.org'], simpleMessage(`${subject}-small`));
    t.close();
    assertReply(next.end!, 250, '2.6.0', 'a small message on the same session');
    await waitForMessages(small.maildir('alice'), `${subject}-small`);
    await assertNothingQueued(small, 'after the oversized message');
    assert.equal((await messagesWith(small.maildir('alice'), `Subject: ${subject}\n`)).length, 0, 'the oversized message was delivered');
  });

  test('a body just under the limit is accepted', async () => {
    const subject = marker('fits');
    const t = await Transcript.open(small.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test', ['alice@example.org'], simpleMessage(subject, bulkBody(SMALL_LIMIT - 1000)));
    t.close();
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    await waitForMessages(small.maildir('alice'), subject);
  });
});

describe('per-recipient mailSizeMax (frank: 524 288)', () => {
  test('MAIL FROM SIZE=600000 then RCPT frank → 552 5.2.3; alice in the same transaction → 250', async () => {
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<x@y.test> SIZE=600000'), 250, null, 'MAIL with SIZE');
    const frank = await t.command('RCPT TO:<frank@example.org>');
    const alice = await t.command('RCPT TO:<alice@example.org>');
    t.close();
    assertReply(frank, 552, '5.2.3', 'RCPT frank with SIZE=600000');
    assert.equal(alice.code, 250, alice.raw);
  });

  test('a 600 000-byte body to frank alone, no SIZE → 552 5.2.3 at the dot, nothing queued', async () => {
    const subject = marker('frank-big');
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    const result = await transaction(t, 'x@y.test', ['frank@example.org'], simpleMessage(subject, bulkBody(600_000)));
    const rset = await t.command('RSET');
    t.close();
    assert.equal(result.rcpts[0]!.code, 250, `RCPT frank without SIZE: ${result.rcpts[0]!.raw}`);
    assertReply(result.end!, 552, '5.2.3', 'end of data');
    assert.equal(rset.code, 250);
    await assertNothingQueued(normal, 'after the message too large for frank');
    assert.equal((await newNames(normal.maildir('frank'))).length, 0);
  });
});

describe('command lines', () => {
  // smtp-server cannot find the next command in what follows, so it answers 421 and hangs up
  // (RFC 5321 4.2.2 allows 421 at any time); the server itself goes on serving.
  test('a 10 000-byte command line gets 421 and a hang-up, and the server answers the next connection', async () => {
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    const reply = await t.command(`NOOP ${'A'.repeat(10_000)}`).catch((err: Error) => ({ code: 0, text: err.message, raw: err.message }));
    t.close();
    assertReply(reply as Reply, 421, '4.4.2', 'overlong command line');
    const next = await Transcript.open(normal.smtpPort);
    const ehlo = await next.hello();
    const noop = await next.command('NOOP');
    next.close();
    assert.equal(ehlo.code, 250);
    assert.equal(noop.code, 250);
  });

  test('a 10 000-byte address in RCPT is refused with a 5xx, the session goes on', async () => {
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<sender@outside.test>'), 250, null, 'MAIL');
    const reply = await t.command(`RCPT TO:<${'a'.repeat(1000)}@example.org>`);
    const alice = await t.command('RCPT TO:<alice@example.org>');
    t.close();
    assert.ok(reply.code >= 500 && reply.code < 600, `long local part: ${reply.raw}`);
    assert.equal(alice.code, 250, alice.raw);
  });
});

/** Files left in the spool's tmp/ (a half-written message), [] when there is none. */
async function spoolTmp(server: TestServer): Promise<string[]> {
  return readdir(join(server.config.spool, 'tmp')).catch(() => [] as string[]);
}

describe('timeouts and lost clients', () => {
  test('a client that vanishes mid-DATA leaves nothing queued or half-written, and the server goes on', async () => {
    const subject = marker('vanish');
    const t = await Transcript.open(normal.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<sender@outside.test>'), 250, null, 'MAIL');
    assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, null, 'RCPT');
    assertReply(await t.command('DATA'), 354, null, 'DATA');
    t.write(`Subject: ${subject}\r\n\r\n${bulkBody(200_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.close();
    // The accept in flight must end (a hung one would also hold up stop()).
    await waitFor('the spool tmp/ to empty', async () => (await spoolTmp(normal)).length === 0);
    await assertNothingQueued(normal, 'after a lost client');
    assert.deepEqual(await messagesWith(normal.maildir('alice'), subject), []);
    const next = await Transcript.open(normal.smtpPort);
    assert.equal((await next.hello()).code, 250);
    next.close();
  });

  test('smtp.timeoutSeconds: a client silent in DATA gets 421 4.4.2 and nothing is queued', async () => {
    const subject = marker('stall');
    const t = await Transcript.open(impatient.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<sender@outside.test>'), 250, null, 'MAIL');
    assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, null, 'RCPT');
    assertReply(await t.command('DATA'), 354, null, 'DATA');
    t.write(`Subject: ${subject}\r\n\r\nhalf a message\r\n`);
    const started = Date.now();
    const reply = await t.reply(5000);
    t.close();
    assertReply(reply, 421, '4.4.2', 'after a silent second');
    assert.ok(Date.now() - started < 4000, `the timeout took ${Date.now() - started} ms`);
    await waitFor('the spool tmp/ to empty', async () => (await spoolTmp(impatient)).length === 0);
    await assertNothingQueued(impatient, 'after a timeout in DATA');
    assert.deepEqual(await messagesWith(impatient.maildir('alice'), subject), []);
  });

  test('smtp.timeoutSeconds: a client silent between commands gets 421 4.4.2', async () => {
    const t = await Transcript.open(impatient.smtpPort);
    await t.hello();
    const reply = await t.reply(5000);
    t.close();
    assertReply(reply, 421, '4.4.2', 'idle after EHLO');
  });
});

describe('greeting', () => {
  test('default (no pause): a client that sends EHLO before the greeting gets 220 then 250', async () => {
    const t = await Transcript.open(normal.smtpPort);
    t.write('EHLO eager.client.test\r\n');
    const greeting = await t.reply();
    const ehlo = await t.reply();
    t.close();
    assert.equal(greeting.code, 220, greeting.raw);
    assert.equal(ehlo.code, 250, ehlo.raw);
  });

  test('smtp.greetingDelayMs: a client that talks before the greeting gets 554 5.5.1 (filters.earlyTalker) and is dropped', async () => {
    const patient = await startServer(slapd, { smtp: { greetingDelayMs: 400 } });
    try {
      const early = await Transcript.open(patient.smtpPort);
      early.write('EHLO eager.client.test\r\n');
      const reply = await early.reply(5000);
      early.close();
      assert.equal(reply.code, 554, reply.raw);
      assert.match(reply.text, /^5\.5\.1 .*before the greeting/);
      const polite = await Transcript.open(patient.smtpPort);
      assert.equal((await polite.hello()).code, 250);
      polite.close();
    } finally {
      await patient.stop();
    }
  });
});
