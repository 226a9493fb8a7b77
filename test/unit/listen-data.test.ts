// DATA hygiene (bare CR/LF, Received count, size limits) and the Received header, without sockets.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { DataHygiene } from '../../src/listen/hygiene.ts';
import { receivedHeader, safeToken } from '../../src/listen/received.ts';
import { MailError } from '../../src/mail.ts';

async function check(chunks: string[], options: Partial<ConstructorParameters<typeof DataHygiene>[0]> = {}): Promise<string> {
  const hygiene = new DataHygiene({ maxReceived: 3, oversized: () => false, refuseAbove: null, ...options });
  let out = '';
  try {
    await pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), hygiene, new Writable({ write(c: Buffer, _e, cb) { out += c.toString('latin1'); cb(); } }));
  } catch (err) {
    assert.ok(err instanceof MailError);
    return `${err.reply} ${err.status}`;
  }
  assert.equal(out, chunks.join(''), 'every byte passes through unchanged');
  return 'ok';
}

test('clean CRLF messages pass, however they are chunked', async () => {
  assert.equal(await check(['Subject: x\r\n\r\nline 1\r\nline 2\r\n']), 'ok');
  assert.equal(await check(['Subject: x\r', '\n\r', '\nbody\r', '\n']), 'ok');
});

test('bare LF or CR anywhere is refused with 550 5.6.0', async () => {
  for (const body of ['a\nb\r\n', 'a\rb\r\n', 'a\r\n.\n', 'x\r\n\n.\r\n', 'ends with CR\r', 'Subject: x\r\n\r\nbody\n.\nMAIL FROM:<e@x>\r\n']) {
    assert.equal(await check([body]), '550 5.6.0', JSON.stringify(body));
  }
  assert.equal(await check(['a\r', 'b\r\n']), '550 5.6.0', 'a CR at a chunk end followed by no LF');
});

test('Received headers are counted in the header section only, case-insensitively', async () => {
  const received = (n: number) => 'Received: x\r\n'.repeat(n);
  assert.equal(await check([`${received(3)}Subject: x\r\n\r\nbody\r\n`]), 'ok');
  assert.equal(await check([`${received(2)}RECEIVED: y\r\nreceived: z\r\n\r\n`]), '554 5.4.6');
  assert.equal(await check([`Subject: x\r\n\r\n${received(10)}`]), 'ok', 'Received lines in the body do not count');
  assert.equal(await check(['Recei', 'ved: a\r\nReceived: b\r\nRe', 'ceived: c\r\nReceived: d\r\n\r\n']), '554 5.4.6', 'split across chunks');
});

test('size: the SMTP limit and every recipient refusing the size', async () => {
  assert.equal(await check(['a\r\n'], { oversized: () => true }), '552 5.3.4');
  assert.equal(await check(['0123456789\r\n'], { refuseAbove: 12 }), 'ok');
  assert.equal(await check(['0123456789\r\n'], { refuseAbove: 11 }), '552 5.2.3');
});

test('the Received header names the queue id and cannot be broken out of', () => {
  const h = receivedHeader({
    helo: 'x) by evil.test (\r\nX-Injected: yes', clientHostname: '[192.0.2.1]', ip: '192.0.2.1', hostname: 'mx1.example.org',
    protocol: 'ESMTPS', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, queueId: '01abc', recipient: 'alice@example.org', date: new Date(Date.UTC(2026, 10, 22, 21, 4, 5)),
  });
  assert.match(h, /^Received: from x\?\?by\?evil\.test/);
  assert.doesNotMatch(h, /X-Injected: yes/);
  assert.match(h, /\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\) id 01abc/);
  assert.match(h, /for <alice@example\.org>;/);
  assert.match(h, /Sun, 22 Nov 2026 21:04:05 \+0000\r\n$/);
  assert.equal(h.split('\r\n').filter((l) => l !== '' && !l.startsWith('\t')).length, 1, 'one header field, continuation lines indented');
  assert.equal(safeToken(''), 'unknown');
});
