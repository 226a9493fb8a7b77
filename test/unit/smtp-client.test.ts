// The pure parts of remote delivery as tables: reading a server's replies and EHLO keywords, dot-
// stuffing the message, and turning replies and capabilities into per-recipient outcomes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Extensions, dotStuff, parseExtensions, parseReply, type SmtpReply, type TransactionReplies } from '../../src/deliver/smtp-client.ts';
import { capabilityRefusal, outcomesOf, replyError, wireEnvelope } from '../../src/deliver/smtp.ts';
import type { Address, MailError, Outcome } from '../../src/mail.ts';

// --- parseReply ---------------------------------------------------------------------------------

const replies: [name: string, lines: string[], expected: SmtpReply][] = [
  ['single line, no enhanced status', ['250 OK'], { code: 250, status: null, text: 'OK' }],
  ['single line with enhanced status', ['250 2.1.0 Sender ok'], { code: 250, status: '2.1.0', text: 'Sender ok' }],
  ['three-digit status parts', ['452 4.5.3 Too many recipients'], { code: 452, status: '4.5.3', text: 'Too many recipients' }],
  ['enhanced status and no text', ['221 2.0.0'], { code: 221, status: '2.0.0', text: '' }],
  ['code only', ['250'], { code: 250, status: null, text: '' }],
  ['354 has no status', ['354 End data with <CR><LF>.<CR><LF>'], { code: 354, status: null, text: 'End data with <CR><LF>.<CR><LF>' }],
  ['status class differs from the code: no status, text kept whole', ['550 4.2.2 mailbox full'], { code: 550, status: null, text: '4.2.2 mailbox full' }],
  ['status glued to the text is not a status', ['250 2.0.0Ok'], { code: 250, status: null, text: '2.0.0Ok' }],
  ['multi-line with status on every line: removed from each, lines joined by a space',
    ['550-5.1.1 The email account that you tried to reach', '550-5.1.1 does not exist.', '550 5.1.1 Please check the address.'],
    { code: 550, status: '5.1.1', text: 'The email account that you tried to reach does not exist. Please check the address.' }],
  ['multi-line without status', ['250-mx.example.net Hello', '250-PIPELINING', '250 SIZE 1000'],
    { code: 250, status: null, text: 'mx.example.net Hello PIPELINING SIZE 1000' }],
  ['multi-line 4xx with status on every line', ['421-4.7.0 first', '421 4.7.0 second'],
    { code: 421, status: '4.7.0', text: 'first second' }],
  ['multi-line with mismatched class: no status, nothing removed', ['554-4.7.1 first', '554 4.7.1 second'],
    { code: 554, status: null, text: '4.7.1 first 4.7.1 second' }],
];

for (const [name, lines, expected] of replies) {
  test(`parseReply: ${name}`, () => {
    assert.deepEqual(parseReply(lines), expected);
  });
}

// --- parseExtensions ----------------------------------------------------------------------------

/** An EHLO reply: the greeting line, then one line per keyword. */
function ehlo(...keywords: string[]): string[] {
  const lines = ['mx.example.net Hello client.example.org', ...keywords];
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`);
}

const none: Extensions = { pipelining: false, eightBitMime: false, smtpUtf8: false, starttls: false, size: null, authPlain: false };

const extensions: [name: string, lines: string[], expected: Extensions][] = [
  ['greeting only: nothing', ehlo(), none],
  ['the greeting line is not a keyword', ['250 PIPELINING'], none],
  ['PIPELINING', ehlo('PIPELINING'), { ...none, pipelining: true }],
  ['8BITMIME', ehlo('8BITMIME'), { ...none, eightBitMime: true }],
  ['SMTPUTF8', ehlo('SMTPUTF8'), { ...none, smtpUtf8: true }],
  ['STARTTLS', ehlo('STARTTLS'), { ...none, starttls: true }],
  ['SIZE with a limit', ehlo('SIZE 10240000'), { ...none, size: 10_240_000 }],
  ['SIZE without a number: announced, no limit', ehlo('SIZE'), { ...none, size: 0 }],
  ['SIZE 0: no limit', ehlo('SIZE 0'), { ...none, size: 0 }],
  ['AUTH PLAIN among others', ehlo('AUTH LOGIN PLAIN CRAM-MD5'), { ...none, authPlain: true }],
  ['AUTH without PLAIN', ehlo('AUTH LOGIN CRAM-MD5'), none],
  ['AUTH with a mechanism that merely contains PLAIN', ehlo('AUTH XPLAIN'), none],
  ['lower-case keywords and mechanisms', ehlo('pipelining', '8bitmime', 'smtputf8', 'starttls', 'size 2048', 'auth login plain'),
    { pipelining: true, eightBitMime: true, smtpUtf8: true, starttls: true, size: 2048, authPlain: true }],
  ['a typical server, keywords in any order', ehlo('SIZE 35882577', '8BITMIME', 'STARTTLS', 'ENHANCEDSTATUSCODES', 'PIPELINING', 'CHUNKING', 'SMTPUTF8'),
    { pipelining: true, eightBitMime: true, smtpUtf8: true, starttls: true, size: 35_882_577, authPlain: false }],
];

for (const [name, lines, expected] of extensions) {
  test(`parseExtensions: ${name}`, () => {
    assert.deepEqual(parseExtensions(lines), expected);
  });
}

// --- dotStuff -----------------------------------------------------------------------------------

const stuffing: [name: string, input: string, atLineStart: boolean, expected: string][] = [
  ['dot at the chunk start, at a line start: doubled', '.hidden\r\n', true, '..hidden\r\n'],
  ['dot at the chunk start, mid-line: kept', '.hidden\r\n', false, '.hidden\r\n'],
  ['a lone dot at a line start: doubled', '.', true, '..'],
  ['".." at a line start: three dots', '..\r\n', true, '...\r\n'],
  ['"\\r\\n." in the middle', 'a\r\n.b\r\n', false, 'a\r\n..b\r\n'],
  ['several, one of them a lone-dot line', 'a\r\n.\r\n.b\r\n..c\r\n', true, 'a\r\n..\r\n..b\r\n...c\r\n'],
  ['dot as the very last byte after a line break', 'a\r\n.', false, 'a\r\n..'],
  ['dots that do not start a line: kept', 'a.b\r\nc. d\r\n', true, 'a.b\r\nc. d\r\n'],
];

for (const [name, input, atLineStart, expected] of stuffing) {
  test(`dotStuff: ${name}`, () => {
    assert.equal(dotStuff(Buffer.from(input, 'latin1'), atLineStart).toString('latin1'), expected);
  });
}

test('dotStuff: nothing to stuff gives back the same Buffer instance', () => {
  for (const [text, atLineStart] of [['hello\r\nworld\r\n', true], ['.mid-line\r\nx\r\n', false], ['', true]] as const) {
    const chunk = Buffer.from(text, 'latin1');
    assert.equal(dotStuff(chunk, atLineStart), chunk, JSON.stringify(text));
  }
});

test('dotStuff: something to stuff gives a new Buffer and leaves the input alone', () => {
  const chunk = Buffer.from('a\r\n.b', 'latin1');
  const out = dotStuff(chunk, true);
  assert.notEqual(out, chunk);
  assert.equal(chunk.toString('latin1'), 'a\r\n.b');
});

/** As the client streams a body: each chunk begins a line when the one before ended with LF. */
function stuffChunks(chunks: string[]): string {
  let atLineStart = true;
  let out = '';
  for (const text of chunks) {
    const chunk = Buffer.from(text, 'latin1');
    out += dotStuff(chunk, atLineStart).toString('latin1');
    atLineStart = chunk[chunk.length - 1] === 0x0a;
  }
  return out;
}

test('dotStuff across chunks: a chunk ending with "\\n" followed by one starting with "."', () => {
  assert.equal(stuffChunks(['a\r\n', '.b\r\n']), 'a\r\n..b\r\n');
  assert.equal(stuffChunks(['a\r', '\n.b\r\n']), 'a\r\n..b\r\n');
  assert.equal(stuffChunks(['a\r\n.', '.b\r\n']), 'a\r\n...b\r\n');
  assert.equal(stuffChunks(['a', '.b\r\n']), 'a.b\r\n');
});

test('dotStuff across chunks: every split of a message stuffs like the whole', () => {
  const message = '.first\r\nSubject: x\r\n\r\n..\r\n.\r\nmid.dle\r\n.end';
  const whole = dotStuff(Buffer.from(message, 'latin1'), true).toString('latin1');
  assert.equal(whole, '..first\r\nSubject: x\r\n\r\n...\r\n..\r\nmid.dle\r\n..end');
  for (let i = 1; i < message.length; i++) {
    for (let j = i + 1; j < message.length; j++) {
      assert.equal(stuffChunks([message.slice(0, i), message.slice(i, j), message.slice(j)]), whole, `split at ${i}, ${j}`);
    }
  }
});

// --- outcomesOf ---------------------------------------------------------------------------------

const REMOTE = 'mx.example.net[192.0.2.25]:25';
const r = (code: number, status: string | null = null, text = 'text'): SmtpReply => ({ code, status, text });
const a = (local: string): Address => ({ local, domain: 'example.net' });
const rcpts = [a('alice'), a('bob'), a('carol'), a('dave')];

/** An outcome as one short line: "alice ok" or "bob permanent 5.1.1 550 RCPT TO". */
function show(o: Outcome): string {
  if (o.ok) return `${o.recipient.local} ok`;
  const stage = /\(in reply to (.+)\)$/.exec(o.error.message)?.[1] ?? o.error.message;
  return `${o.recipient.local} ${o.error.kind} ${o.error.status} ${o.error.reply} ${stage}`;
}

const transactions: [name: string, recipients: Address[], replies: TransactionReplies, expected: string[]][] = [
  ['all accepted', rcpts.slice(0, 2), { mail: r(250), rcpt: [r(250), r(250)], data: r(250, '2.0.0') }, ['alice ok', 'bob ok']],
  ['251 (user not local, will forward) counts as accepted', rcpts.slice(0, 1), { mail: r(250), rcpt: [r(251)], data: r(250) }, ['alice ok']],
  ['MAIL refused 4xx: every recipient temporary', rcpts.slice(0, 3), { mail: r(451, '4.3.0'), rcpt: [], data: null },
    ['alice temporary 4.3.0 451 MAIL FROM', 'bob temporary 4.3.0 451 MAIL FROM', 'carol temporary 4.3.0 451 MAIL FROM']],
  ['MAIL refused 5xx: every recipient permanent', rcpts.slice(0, 2), { mail: r(550, '5.7.1'), rcpt: [], data: null },
    ['alice permanent 5.7.1 550 MAIL FROM', 'bob permanent 5.7.1 550 MAIL FROM']],
  ['RCPT mixed: each recipient its own reply', rcpts,
    { mail: r(250), rcpt: [r(250), r(550, '5.1.1'), r(450, '4.2.1'), r(251)], data: r(250) },
    ['alice ok', 'bob permanent 5.1.1 550 RCPT TO', 'carol temporary 4.2.1 450 RCPT TO', 'dave ok']],
  ['DATA refused permanently: the accepted ones fail with it, the refused keep their RCPT reply', rcpts.slice(0, 2),
    { mail: r(250), rcpt: [r(250), r(550, '5.1.1')], data: r(554, '5.6.0') },
    ['alice permanent 5.6.0 554 end of DATA', 'bob permanent 5.1.1 550 RCPT TO']],
  ['DATA refused temporarily', rcpts.slice(0, 2), { mail: r(250), rcpt: [r(250), r(250)], data: r(452, '4.3.1') },
    ['alice temporary 4.3.1 452 end of DATA', 'bob temporary 4.3.1 452 end of DATA']],
  ['every RCPT refused, DATA not sent', rcpts.slice(0, 2), { mail: r(250), rcpt: [r(550, '5.1.1'), r(450)], data: null },
    ['alice permanent 5.1.1 550 RCPT TO', 'bob temporary 4.0.0 450 RCPT TO']],
  ['DATA not sent although a recipient was accepted: temporary 4.4.2', rcpts.slice(0, 1), { mail: r(250), rcpt: [r(250)], data: null },
    [`alice temporary 4.4.2 451 ${REMOTE}: DATA was not sent`]],
  ['a recipient without a RCPT reply: temporary 4.4.2', rcpts.slice(0, 2), { mail: r(250), rcpt: [r(250)], data: r(250) },
    ['alice ok', `bob temporary 4.4.2 451 ${REMOTE}: no reply to RCPT TO`]],
];

for (const [name, recipients, txReplies, expected] of transactions) {
  test(`outcomesOf: ${name}`, () => {
    const outcomes = outcomesOf(recipients, txReplies, REMOTE);
    assert.deepEqual(outcomes.map(show), expected);
    assert.deepEqual(outcomes.map((o) => o.recipient), recipients, 'one outcome per recipient, in order');
  });
}

// --- replyError ---------------------------------------------------------------------------------

const errors: [reply: SmtpReply, stage: string, expected: Pick<MailError, 'kind' | 'status' | 'reply' | 'message'>][] = [
  [r(421, '4.7.0', 'Try again later'), 'MAIL FROM',
    { kind: 'temporary', status: '4.7.0', reply: 421, message: `${REMOTE} said: 421 4.7.0 Try again later (in reply to MAIL FROM)` }],
  [r(450, null, 'mailbox busy'), 'RCPT TO',
    { kind: 'temporary', status: '4.0.0', reply: 450, message: `${REMOTE} said: 450 mailbox busy (in reply to RCPT TO)` }],
  [r(550, '5.1.1', 'no such user'), 'RCPT TO',
    { kind: 'permanent', status: '5.1.1', reply: 550, message: `${REMOTE} said: 550 5.1.1 no such user (in reply to RCPT TO)` }],
  [r(554, null, 'go away'), 'end of DATA',
    { kind: 'permanent', status: '5.0.0', reply: 554, message: `${REMOTE} said: 554 go away (in reply to end of DATA)` }],
];

for (const [reply, stage, expected] of errors) {
  test(`replyError: ${reply.code} ${reply.status ?? '(no status)'} → ${expected.kind} ${expected.status}, remote and stage kept`, () => {
    const error = replyError(reply, REMOTE, stage);
    assert.deepEqual({ kind: error.kind, status: error.status, reply: error.reply, message: error.message }, expected);
    assert.equal(error.temporary, expected.kind === 'temporary');
  });
}

// --- capabilityRefusal --------------------------------------------------------------------------

const all: Extensions = { pipelining: true, eightBitMime: true, smtpUtf8: true, starttls: true, size: 1000, authPlain: false };
type Job = { eightBit: boolean; size: number };
const plain: Job = { eightBit: false, size: 500 };

const capabilities: [name: string, ext: Extensions, job: Job, smtpUtf8: boolean, expected: string | null][] = [
  ['everything fine', all, plain, false, null],
  ['SMTPUTF8 needed and offered', all, plain, true, null],
  ['SMTPUTF8 needed and missing: 5.6.7', { ...all, smtpUtf8: false }, plain, true, 'permanent 5.6.7'],
  ['SMTPUTF8 missing but not needed', { ...all, smtpUtf8: false }, plain, false, null],
  ['8-bit and 8BITMIME offered', all, { ...plain, eightBit: true }, false, null],
  ['8-bit and no 8BITMIME: 5.6.3', { ...all, eightBitMime: false }, { ...plain, eightBit: true }, false, 'permanent 5.6.3'],
  ['7-bit and no 8BITMIME', { ...all, eightBitMime: false }, plain, false, null],
  ['size exactly at the limit', all, { ...plain, size: 1000 }, false, null],
  ['size over the SIZE limit: 5.3.4', all, { ...plain, size: 1001 }, false, 'permanent 5.3.4'],
  ['SIZE 0 means no limit', { ...all, size: 0 }, { ...plain, size: 50_000_000 }, false, null],
  ['SIZE not announced', { ...all, size: null }, { ...plain, size: 50_000_000 }, false, null],
];

for (const [name, ext, job, smtpUtf8, expected] of capabilities) {
  test(`capabilityRefusal: ${name}`, () => {
    const refusal = capabilityRefusal(ext, job, smtpUtf8);
    assert.equal(refusal === null ? null : `${refusal.kind} ${refusal.status}`, expected);
  });
}

// --- wireEnvelope -------------------------------------------------------------------------------

const addr = (text: string): Address => {
  const at = text.lastIndexOf('@');
  return { local: text.slice(0, at), domain: text.slice(at + 1) };
};
type Wire = { sender: string; recipients: string[]; smtpUtf8: boolean } | null;
const envelopes: [name: string, sender: string | null, recipients: string[], serverSmtpUtf8: boolean, expected: Wire][] = [
  ['all ASCII, server without SMTPUTF8: as is', 'a@example.org', ['b@example.net'], false,
    { sender: 'a@example.org', recipients: ['b@example.net'], smtpUtf8: false }],
  ['all ASCII, server with SMTPUTF8: as is, without it', 'a@example.org', ['b@example.net'], true,
    { sender: 'a@example.org', recipients: ['b@example.net'], smtpUtf8: false }],
  ['a U-label domain, server with SMTPUTF8: as is, with it', 'a@example.org', ['b@bücher.example'], true,
    { sender: 'a@example.org', recipients: ['b@bücher.example'], smtpUtf8: true }],
  ['a U-label domain, server without SMTPUTF8: A-labels', 'a@example.org', ['b@bücher.example', 'c@example.net'], false,
    { sender: 'a@example.org', recipients: ['b@xn--bcher-kva.example', 'c@example.net'], smtpUtf8: false }],
  ['a U-label sender domain', 'x@例え.テスト', ['b@example.net'], false,
    { sender: 'x@xn--r8jz45g.xn--zckzah', recipients: ['b@example.net'], smtpUtf8: false }],
  ['the null sender and a U-label recipient', null, ['b@BÜCHER.example'], false,
    { sender: '', recipients: ['b@xn--bcher-kva.example'], smtpUtf8: false }],
  ['a non-ASCII local part, server without SMTPUTF8: impossible', 'a@example.org', ['jösé@example.net'], false, null],
  ['a non-ASCII sender local part: impossible', 'jösé@bücher.example', ['b@example.net'], false, null],
  ['a non-ASCII local part, server with SMTPUTF8: as is', 'a@example.org', ['jösé@bücher.example'], true,
    { sender: 'a@example.org', recipients: ['jösé@bücher.example'], smtpUtf8: true }],
  ['a quoted ASCII local part keeps its quotes under A-labels', 'a@example.org', ['"john doe"@bücher.example'], false,
    { sender: 'a@example.org', recipients: ['"john doe"@xn--bcher-kva.example'], smtpUtf8: false }],
];

for (const [name, sender, recipients, serverSmtpUtf8, expected] of envelopes) {
  test(`wireEnvelope: ${name}`, () => {
    const job = { sender: sender === null ? null : addr(sender), recipients: recipients.map((r) => addr(r.replace(/^"(.*)"@/, '$1@'))) };
    assert.deepEqual(wireEnvelope(job, serverSmtpUtf8), expected);
  });
}
