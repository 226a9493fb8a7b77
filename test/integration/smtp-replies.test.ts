// The MX port as a client sees it: the EHLO offer, a message from a stock client landing in the
// right Maildir with the right headers, every RCPT-time reply for the sample directory, mixed
// outcomes in one transaction and the null sender. Real sockets, real slapd, in-process server.
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import {
  assertReply, marker, messagesWith, newNames, queuedRecipients, simpleMessage, transaction, waitFor, waitForMessages, waitForQueueWithout,
} from '../fixtures/smtp-helpers.ts';

let slapd: Slapd;
let server: TestServer;
before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd);
});
after(async () => {
  await server?.stop();
  await slapd?.stop();
});

/** RCPT TO:<address> in a fresh transaction, and the reply. */
async function rcpt(port: number, address: string, from = 'sender@outside.test'): Promise<{ code: number; text: string; raw: string }> {
  const t = await Transcript.open(port);
  try {
    await t.hello();
    assertReply(await t.command(`MAIL FROM:<${from}>`), 250, null, 'MAIL');
    return await t.command(`RCPT TO:<${address}>`);
  } finally {
    t.close();
  }
}

describe('EHLO', () => {
  test('advertises PIPELINING, 8BITMIME, SMTPUTF8, SIZE <max>, ENHANCEDSTATUSCODES; no STARTTLS without a cert, no AUTH on the MX port', async () => {
    const t = await Transcript.open(server.smtpPort);
    const ehlo = await t.hello('client.example.test');
    t.close();
    assert.equal(ehlo.code, 250);
    const lines = ehlo.text.split('\n').map((l) => l.trim().toUpperCase());
    for (const keyword of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES']) {
      assert.ok(lines.includes(keyword), `${keyword} missing from ${JSON.stringify(ehlo.raw)}`);
    }
    assert.ok(lines.includes(`SIZE ${server.config.smtp.maxMessageSize}`), `SIZE ${server.config.smtp.maxMessageSize} missing from ${JSON.stringify(ehlo.raw)}`);
    assert.ok(!lines.some((l) => l.startsWith('STARTTLS')), 'STARTTLS offered without a certificate');
    assert.ok(!lines.some((l) => l.startsWith('AUTH')), 'AUTH offered on the MX port');
  });

  test('the greeting: 220 <hostname> ESMTP ldapmta, the protocol named once', async () => {
    const t = await Transcript.open(server.smtpPort);
    const greeting = await t.reply();
    t.close();
    assert.equal(greeting.raw, '220 mx1.example.org ESMTP ldapmta\r\n');
  });

  test('STARTTLS and AUTH are refused when tried anyway', async () => {
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    const starttls = await t.command('STARTTLS');
    const auth = await t.command('AUTH PLAIN AGFsaWNlAEFsaWNlLXB3LTE=');
    t.close();
    assert.ok(starttls.code >= 500 && starttls.code < 600, `STARTTLS: ${starttls.raw}`);
    assert.ok(auth.code >= 500 && auth.code < 600, `AUTH: ${auth.raw}`);
  });
});

describe('a message from nodemailer to alice', () => {
  test('lands once in new/ with Return-Path, Delivered-To, a Received naming the queue id, and the body intact', async () => {
    const subject = marker('nodemailer');
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.smtpPort, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({
      envelope: { from: 'sender@outside.test', to: ['alice@example.org'] },
      from: 'Sender <sender@outside.test>', to: 'Alice <alice@example.org>', subject,
      text: 'first line\r\nsecond line\r\n.dot at the start\r\nlast line\r\n',
    });
    const queued = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
    assert.ok(queued, `unexpected response ${info.response}`);
    const queueId = queued[1]!;
    assert.deepEqual(info.accepted, ['alice@example.org']);

    const [message] = await waitForMessages(server.maildir('alice'), subject);
    assert.ok(message);
    const lines = message.header.split('\n');
    assert.equal(lines[0], 'Return-Path: <sender@outside.test>');
    assert.equal(lines[1], 'Delivered-To: alice@example.org');
    assert.match(lines[2] ?? '', /^Received: from client|^Received: from /);
    const received = message.header.slice(message.header.indexOf('Received:')).split(/\n(?![ \t])/)[0]!;
    assert.match(received, new RegExp(`\\bid ${queueId}\\b`), `Received does not name ${queueId}: ${received}`);
    assert.match(received, /by mx1\.example\.org \(ldapmta\) with ESMTP/);
    assert.match(received, /for <alice@example\.org>;/);
    assert.match(message.header, new RegExp(`^Subject: ${subject}$`, 'm'));
    assert.ok(!message.text.includes('\r'), 'the Maildir file must use LF line endings');
    assert.equal(message.body, 'first line\nsecond line\n.dot at the start\nlast line\n');

    // Exactly once, and nothing left in the queue.
    await waitForQueueWithout(server.config.spool, () => true);
    assert.equal((await messagesWith(server.maildir('alice'), subject)).length, 1);
  });

  test('the null sender is accepted and delivered with Return-Path: <>', async () => {
    const subject = marker('null-sender');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    const result = await transaction(t, '', ['alice@example.org'], simpleMessage(subject));
    t.close();
    assertReply(result.mail, 250, null, 'MAIL FROM:<>');
    assertReply(result.rcpts[0]!, 250, null, 'RCPT');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const [message] = await waitForMessages(server.maildir('alice'), subject);
    assert.equal(message!.header.split('\n')[0], 'Return-Path: <>');
    assert.equal(message!.header.split('\n')[1], 'Delivered-To: alice@example.org');
  });
});

describe('RCPT replies for the sample directory', () => {
  const cases: [string, number, string][] = [
    ['alice@example.org', 250, '2.1.5'],
    ['Alice@EXAMPLE.org', 250, '2.1.5'],
    ['a.smith@example.org', 250, '2.1.5'],
    ['bobby-x@example.org', 550, '5.1.1'],
    ['grace@example.org', 550, '5.2.1'],
    ['heidi@example.org', 550, '5.1.1'],
    ['ivan@example.org', 250, '2.1.5'],
    ['judy@example.org', 250, '2.1.5'],
    ['bob-lists@example.org', 250, '2.1.5'],
    ['shared@example.org', 451, '4.3.5'],
    ['someone@foreign.test', 554, '5.7.1'],
  ];
  for (const [address, code, status] of cases) {
    test(`${address} → ${code} ${status}`, async () => {
      assertReply(await rcpt(server.smtpPort, address), code, status, address);
    });
  }

  test('an address that is not valid UTF-8 (under SMTPUTF8): RCPT → 501 5.1.3, MAIL → 553 5.1.7; the session goes on', async () => {
    const t = await Transcript.open(server.smtpPort);
    try {
      await t.hello();
      assertReply(await t.command('MAIL FROM:<sender@outside.test> SMTPUTF8'), 250, '2.1.0', 'MAIL');
      // 0xC3 0x28: a lead byte followed by a byte that cannot continue it.
      t.write(Buffer.concat([Buffer.from('RCPT TO:<al'), Buffer.from([0xc3, 0x28]), Buffer.from('ce@example.org>\r\n')]));
      assertReply(await t.reply(), 501, '5.1.3', 'RCPT with invalid UTF-8');
      assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, '2.1.5', 'a good RCPT after it');
      assertReply(await t.command('RSET'), 250, null, 'RSET');
      t.write(Buffer.concat([Buffer.from('MAIL FROM:<s'), Buffer.from([0xff]), Buffer.from('@outside.test> SMTPUTF8\r\n')]));
      assertReply(await t.reply(), 553, '5.1.7', 'MAIL with invalid UTF-8');
    } finally {
      t.close();
    }
  });

  test('bob-lists@example.org is delivered to bob (bob-catchall)', async () => {
    const subject = marker('bob-lists');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test', ['bob-lists@example.org'], simpleMessage(subject));
    t.close();
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const [message] = await waitForMessages(server.maildir('bob'), subject);
    assert.match(message!.header, /^Delivered-To: bob-lists@example\.org$/m);
  });

  test('a foreign domain is relayed for a client in relay.trustedNetworks', async () => {
    const trusted = await startServer(slapd, { relay: { trustedNetworks: ['127.0.0.0/8'] } });
    try {
      assertReply(await rcpt(trusted.smtpPort, 'someone@foreign.test'), 250, '2.1.5', 'trusted relay');
      assertReply(await rcpt(trusted.smtpPort, 'bobby-x@example.org'), 550, '5.1.1', 'trusted, unknown local user');
    } finally {
      await trusted.stop();
    }
  });
});

describe('mixed outcomes in one transaction', () => {
  test('alice 250, bobby-x 550, grace 550, bob 250 → DATA 250 → one copy each for alice and bob', async () => {
    const subject = marker('mixed');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test',
      ['alice@example.org', 'bobby-x@example.org', 'grace@example.org', 'bob@example.org'], simpleMessage(subject));
    const quit = await t.command('QUIT');
    t.close();
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'alice');
    assertReply(result.rcpts[1]!, 550, '5.1.1', 'bobby-x');
    assertReply(result.rcpts[2]!, 550, '5.2.1', 'grace');
    assertReply(result.rcpts[3]!, 250, '2.1.5', 'bob');
    assertReply(result.data!, 354, null, 'DATA');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    assert.equal(quit.code, 221);

    await waitForMessages(server.maildir('alice'), subject);
    await waitForMessages(server.maildir('bob'), subject);
    await waitForQueueWithout(server.config.spool, () => true);
    const aliceCopies = await messagesWith(server.maildir('alice'), subject);
    const bobCopies = await messagesWith(server.maildir('bob'), subject);
    assert.equal(aliceCopies.length, 1);
    assert.equal(bobCopies.length, 1);
    assert.match(aliceCopies[0]!.header, /^Delivered-To: alice@example\.org$/m);
    assert.match(bobCopies[0]!.header, /^Delivered-To: bob@example\.org$/m);
    assert.equal((await newNames(server.maildir('grace'))).length, 0, 'grace got a copy');
    // Two recipients: the Received header names none (as Postfix does).
    assert.doesNotMatch(aliceCopies[0]!.header, /\tfor </);
  });

  test('ivan (noaccess) is delivered; judy (another node) stays queued', async () => {
    const subject = marker('ivan-judy');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test', ['ivan@example.org', 'judy@example.org'], simpleMessage(subject));
    t.close();
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    await waitForMessages(server.maildir('ivan'), subject);
    // judy lives on mx2: not delivered here, kept in the queue (cluster delivery comes later).
    await waitFor('judy deferred in the queue', async () => (await queuedRecipients(server.config.spool)).includes('judy@example.org'));
    assert.equal((await newNames(server.maildir('judy'))).length, 0);
  });
});

describe('Maildir tmp/ debris', () => {
  test('the first delivery to a Maildir after start removes tmp/ files older than 36 hours', async () => {
    const fresh = await startServer(slapd);
    try {
      const tmp = join(fresh.maildir('bob'), 'tmp');
      await mkdir(tmp, { recursive: true, mode: 0o700 });
      await mkdir(join(fresh.maildir('bob'), 'new'), { mode: 0o700 });
      await mkdir(join(fresh.maildir('bob'), 'cur'), { mode: 0o700 });
      const old = new Date(Date.now() - 40 * 3600 * 1000);
      await writeFile(join(tmp, '1700000000.M1P1Q1.mx1'), 'Subject: half\n');
      await utimes(join(tmp, '1700000000.M1P1Q1.mx1'), old, old);
      await writeFile(join(tmp, '1800000000.M1P1Q2.mx1'), 'Subject: being written\n');
      const subject = marker('sweep');
      const t = await Transcript.open(fresh.smtpPort);
      await t.hello();
      const result = await transaction(t, 'sender@outside.test', ['bob@example.org'], simpleMessage(subject));
      t.close();
      assertReply(result.end!, 250, '2.6.0', 'end of data');
      await waitForMessages(fresh.maildir('bob'), subject);
      await waitFor('the interrupted delivery to be removed from tmp/', async () => !(await readdir(tmp)).includes('1700000000.M1P1Q1.mx1'));
      assert.deepEqual(await readdir(tmp), ['1800000000.M1P1Q2.mx1']);
    } finally {
      await fresh.stop();
    }
  });
});
