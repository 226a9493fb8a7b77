// DATA hygiene (research §2.1, §2.6, §2.15): only CRLF.CRLF ends the data, and no ending variant
// smuggles a second message in. Each variant is sent byte for byte on a raw socket; the answer
// must be 550 5.6.0 (bare CR/LF refused) or one 250 for ONE message that holds the text. Also
// dot-unstuffing and the Received-header hop limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import {
  assertReply, marker, newMessages, simpleMessage, todoFiles, transaction, waitForMessages, waitForQueueWithout, type StoredMessage,
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

const alice = () => server.maildir('alice');

/** The second transaction hidden in the body, exactly as the brief gives it. */
const SMUGGLED = 'MAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSmuggled\r\n.\r\n';

/** The endings of research §2.1, byte for byte (the first seven are the brief's list). */
const ENDINGS: [string, string][] = [
  ['\\n.\\n', '\n.\n'],
  ['\\n.\\r\\n', '\n.\r\n'],
  ['\\r.\\r\\n', '\r.\r\n'],
  ['\\r\\n.\\r', '\r\n.\r'],
  ['\\r\\n.\\n', '\r\n.\n'],
  ['\\n.\\r', '\n.\r'],
  ['\\r.\\n', '\r.\n'],
  ['\\r.\\r', '\r.\r'],
  ['\\r\\n\\x00.\\r\\n', '\r\n\x00.\r\n'],
  ['\\r\\n.\\x00\\r\\n', '\r\n.\x00\r\n'],
];

/** Bare line ends inside lines, header and body (research §2.1 "bare LF / bare CR", §2.6). */
const BARE: [string, string][] = [
  ['bare LF inside a body line', 'From: x@remote.test\r\nSubject: SUBJ\r\n\r\nfirst half\nsecond half\r\n'],
  ['bare CR inside a body line', 'From: x@remote.test\r\nSubject: SUBJ\r\n\r\nfirst half\rsecond half\r\n'],
  ['bare LF in the header (Bcc injection)', 'Subject: SUBJ\nBcc: victim@remote.test\r\n\r\nbody\r\n'],
  ['bare CR in the header', 'Subject: SUBJ\rX-Injected: yes\r\n\r\nbody\r\n'],
  // LF line ends throughout, then the one real end (CRLF.CRLF) so the server has a message to judge.
  ['LF-only message', 'From: x@remote.test\nSubject: SUBJ\n\nbody\n\r\n'],
];

/** Messages in alice's new/ that the smuggled transaction would have produced. */
function smuggledCopies(messages: readonly StoredMessage[]): StoredMessage[] {
  return messages.filter((m) => /^Return-Path: <evil@x>$/m.test(m.header) || m.body.trim() === 'Smuggled' || m.text.trimEnd().endsWith('\n\nSmuggled'));
}

/**
 * One transaction whose data is `data` (final CRLF.CRLF included); then QUIT, whose 221 must be
 * the very next reply (any smuggled command would have been answered first).
 */
async function send(data: string): Promise<{ end: string; code: number; after: string }> {
  const t = await Transcript.open(server.smtpPort);
  try {
    await t.hello('client.remote.test');
    const result = await transaction(t, 'x@remote.test', ['alice@example.org'], Buffer.from(data, 'latin1'));
    assertReply(result.rcpts[0]!, 250, null, 'RCPT alice');
    assertReply(result.data!, 354, null, 'DATA');
    const quit = await t.command('QUIT');
    return { end: result.end!.raw, code: result.end!.code, after: quit.raw };
  } finally {
    t.close();
  }
}

describe('smuggling endings', () => {
  for (const [name, ending] of ENDINGS) {
    test(`outer body + ${name} + a second transaction: one message at most, never "Smuggled" on its own`, async () => {
      const subject = marker('outer');
      const before = (await newMessages(alice())).length;
      const data = `From: x@remote.test\r\nTo: alice@example.org\r\nSubject: ${subject}\r\n\r\nouter body${ending}${SMUGGLED}`;
      const { end, code, after } = await send(data);

      assert.ok(after.startsWith('221'), `a smuggled command was answered: the reply after the data was followed by ${JSON.stringify(after)}`);
      if (code === 250) {
        assert.match(end, /^250 2\.6\.0 /);
        // Accepted: exactly one message, holding the smuggled lines as text.
        const [message] = await waitForMessages(alice(), subject);
        assert.ok(message!.body.includes('Smuggled'), 'the accepted message must contain the smuggled text');
        assert.ok(message!.body.includes('MAIL FROM:<evil@x>'), 'the accepted message must contain the fake commands as text');
      } else {
        assert.match(end, /^550 5\.6\.0 /, `expected 550 5.6.0 or 250, got ${JSON.stringify(end)}`);
      }
      await waitForQueueWithout(server.config.spool, () => true);
      const messages = await newMessages(alice());
      assert.equal(messages.length, before + (code === 250 ? 1 : 0), 'messages in alice\'s new/');
      assert.deepEqual(smuggledCopies(messages).map((m) => m.name), [], 'a smuggled message was delivered');
    });
  }

  test('bare-CR/LF endings are refused with 550 5.6.0 (not stored with bare line ends)', async () => {
    // The seven endings that carry a bare CR or LF: the product chose "reject" (research §2.1 (a)).
    for (const [name, ending] of ENDINGS.slice(0, 8)) {
      const { end } = await send(`Subject: ${marker('bare')}\r\n\r\nouter${ending}${SMUGGLED}`);
      assert.match(end, /^550 5\.6\.0 /, `${name}: ${end}`);
    }
  });
});

describe('bare CR and LF inside lines', () => {
  for (const [name, text] of BARE) {
    test(`${name} → 550 5.6.0, nothing queued`, async () => {
      const subject = marker('bare');
      const before = (await newMessages(alice())).length;
      const { end, after } = await send(`${text.replace('SUBJ', subject)}.\r\n`);
      assert.match(end, /^550 5\.6\.0 /);
      assert.ok(after.startsWith('221'), after);
      assert.equal((await todoFiles(server.config.spool)).length, 0, 'something was queued');
      assert.equal((await newMessages(alice())).length, before);
    });
  }
});

describe('clean messages', () => {
  test('a dot-stuffed line "..hello" is delivered as ".hello"; "..." as ".."', async () => {
    const subject = marker('dots');
    const { end } = await send(simpleMessage(subject, 'before\r\n..hello\r\n...\r\n..\r\nafter\r\n'));
    assert.match(end, /^250 2\.6\.0 /);
    const [message] = await waitForMessages(alice(), subject);
    assert.equal(message!.body, 'before\n.hello\n..\n.\nafter\n');
  });

  test('a message that is only a header block and an empty body is accepted', async () => {
    const subject = marker('empty-body');
    const { end } = await send(`Subject: ${subject}\r\n\r\n.\r\n`);
    assert.match(end, /^250 2\.6\.0 /);
    const [message] = await waitForMessages(alice(), subject);
    assert.equal(message!.body, '');
  });

  test('a pipelined second transaction after a complete first one gives two messages, both real', async () => {
    const first = marker('pipe1');
    const second = marker('pipe2');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<x@remote.test>'), 250, null, 'MAIL');
    assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, null, 'RCPT');
    assertReply(await t.command('DATA'), 354, null, 'DATA');
    t.write(`${simpleMessage(first)}MAIL FROM:<y@remote.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n`);
    assertReply(await t.reply(), 250, '2.6.0', 'first message');
    assertReply(await t.reply(), 250, null, 'pipelined MAIL');
    assertReply(await t.reply(), 250, null, 'pipelined RCPT');
    assertReply(await t.reply(), 354, null, 'pipelined DATA');
    t.write(simpleMessage(second));
    assertReply(await t.reply(), 250, '2.6.0', 'second message');
    t.close();
    const [one] = await waitForMessages(alice(), first);
    const [two] = await waitForMessages(alice(), second);
    assert.match(one!.header, /^Return-Path: <x@remote\.test>$/m);
    assert.match(two!.header, /^Return-Path: <y@remote\.test>$/m);
  });
});

describe('hop count', () => {
  const received = (n: number) => Array.from({ length: n }, (_, i) =>
    `Received: from hop${i}.remote.test by hop${i + 1}.remote.test; Sun, 22 Nov 2026 21:04:05 +0000\r\n`).join('');

  test('exactly 100 Received headers → 250', async () => {
    const subject = marker('hops100');
    const { end } = await send(`${received(100)}Subject: ${subject}\r\n\r\nbody\r\n.\r\n`);
    assert.match(end, /^250 2\.6\.0 /);
    const [message] = await waitForMessages(alice(), subject);
    assert.equal(message!.header.match(/^Received:/gm)?.length, 101, 'the 100 of the client and ours');
  });

  test('101 Received headers → 554 5.4.6, nothing queued', async () => {
    const subject = marker('hops101');
    const before = (await newMessages(alice())).length;
    const { end } = await send(`${received(101)}Subject: ${subject}\r\n\r\nbody\r\n.\r\n`);
    assert.match(end, /^554 5\.4\.6 /);
    assert.equal((await todoFiles(server.config.spool)).length, 0);
    assert.equal((await newMessages(alice())).length, before);
  });

  test('"Received:" in lower case and Received lines in the body: only header fields count', async () => {
    const subject = marker('hops-body');
    const { end } = await send(`${received(100).toLowerCase()}Subject: ${subject}\r\n\r\n${received(50)}.\r\n`);
    assert.match(end, /^250 2\.6\.0 /);
    const tooMany = await send(`${received(100)}received: from one.more; Sun, 22 Nov 2026 21:04:05 +0000\r\nSubject: x\r\n\r\nbody\r\n.\r\n`);
    assert.match(tooMany.end, /^554 5\.4\.6 /);
    await waitForMessages(alice(), subject);
  });
});
