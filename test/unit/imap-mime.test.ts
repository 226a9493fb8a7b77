// Owns: tables for src/mailbox/imap/mime.ts — the part tree, ENVELOPE, BODY/BODYSTRUCTURE, BODY[section]
// bytes and the SEARCH helpers, against strings derived by hand from RFC 3501/5322/2045/2046.
// Must never: touch the file system or a network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bodyStructure, envelope, headerValues, MAX_DEPTH, MAX_PARTS, type MimePart, parseMessage, searchText, type SectionSpec,
  parseDate, sectionBytes, sentDate,
} from '../../src/mailbox/imap/mime.ts';

const crlf = (...lines: string[]): Buffer => Buffer.from(lines.join('\r\n'), 'utf8');
const section = (part: number[], text: SectionSpec['text'] = null, fields: string[] = []): SectionSpec => ({ part, text, fields });
const bytesOf = (raw: Buffer, spec: SectionSpec): string => sectionBytes(raw, parseMessage(raw), spec).toString('latin1');

// ---------------------------------------------------------------------------------------------
// Fixtures

/** RFC 3501 §7.4.2's FETCH example, as a header. */
const RFC3501_HEADER = [
  'Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)',
  'From: Terry Gray <gray@cac.washington.edu>',
  'Subject: IMAP4rev1 WG mtg summary and minutes',
  'To: imap@cac.washington.edu',
  'cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>',
  'Message-Id: <B27397-0100000@cac.washington.edu>',
  'MIME-Version: 1.0',
];

/** multipart/mixed: a multipart/alternative (plain, quoted-printable html), then a message/rfc822. */
const NESTED = crlf(
  'From: a@example.org',
  'Subject: nested',
  'Content-Type: multipart/mixed; boundary="XX"',
  '',
  'preamble',
  '--XX',
  'Content-Type: multipart/alternative; boundary=YY',
  '',
  '--YY',
  '',
  'plain text',
  '--YY',
  'Content-Type: text/html; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  '<p>h=C3=A9llo</p>',
  '--YY--',
  '--XX',
  'Content-Type: message/rfc822',
  'Content-Disposition: attachment; filename="m.eml"',
  '',
  'From: b@example.net',
  'Subject: inner',
  '',
  'inner body',
  '--XX--',
  'epilogue',
);

// ---------------------------------------------------------------------------------------------
// ENVELOPE

test('ENVELOPE of RFC 3501 §7.4.2 example: sender and reply-to from From, addresses without spaces between', () => {
  const raw = crlf(...RFC3501_HEADER, '', 'body');
  assert.equal(envelope(raw),
    '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" ' +
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ' +
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ' +
    '((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL ' +
    '"<B27397-0100000@cac.washington.edu>")');
});

test('ENVELOPE: every field NIL for a message without header', () => {
  assert.equal(envelope(Buffer.alloc(0)), '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)');
});

test('ENVELOPE: Sender and Reply-To present are used; present but empty falls back to From', () => {
  const own = crlf('From: a@x', 'Sender: s@x', 'Reply-To: r@x', '', '');
  assert.equal(envelope(own), '(NIL NIL ((NIL NIL "a" "x")) ((NIL NIL "s" "x")) ((NIL NIL "r" "x")) NIL NIL NIL NIL NIL)');
  const empty = crlf('From: a@x', 'Sender:', 'Reply-To:  ', '', '');
  assert.equal(envelope(empty), '(NIL NIL ((NIL NIL "a" "x")) ((NIL NIL "a" "x")) ((NIL NIL "a" "x")) NIL NIL NIL NIL NIL)');
});

test('ENVELOPE: date, subject, In-Reply-To, Message-ID raw (encoded-words kept, first occurrence), an empty value is ""', () => {
  const raw = crlf('Subject: =?utf-8?q?h=C3=A9?=', 'Subject: second', 'Date:', 'In-Reply-To: <a@b> (c)', 'Message-ID: <x@y>', '', '');
  assert.equal(envelope(raw), '("" "=?utf-8?q?h=C3=A9?=" NIL NIL NIL NIL NIL NIL "<a@b> (c)" "<x@y>")');
});

test('ENVELOPE: a folded subject is unfolded (CRLF before WSP dropped, the WSP kept)', () => {
  const raw = crlf('Subject: a long', ' subject', '\tfolded  ', '', '');
  assert.equal(envelope(raw), '(NIL "a long subject\tfolded" NIL NIL NIL NIL NIL NIL NIL NIL)');
});

test('ENVELOPE: an 8-bit subject is a literal of its bytes', () => {
  const raw = crlf('Subject: Grüße', '', '');
  const subject = Buffer.from('Grüße').toString('latin1');
  assert.equal(envelope(raw), `(NIL {7}\r\n${subject} NIL NIL NIL NIL NIL NIL NIL NIL)`);
});

test('ENVELOPE: a quoted subject with " and \\ is escaped', () => {
  assert.equal(envelope(crlf('Subject: say "hi" \\o/', '', '')), '(NIL "say \\"hi\\" \\\\o/" NIL NIL NIL NIL NIL NIL NIL NIL)');
});

const addresses: [to: string, expected: string][] = [
  ['jd@example.com', '((NIL NIL "jd" "example.com"))'],
  ['"Doe, John" <jd@example.com>', '(("Doe, John" NIL "jd" "example.com"))'],
  ['Joe Q. Public <john.q.public@example.com>', '(("Joe Q. Public" NIL "john.q.public" "example.com"))'],
  ['jd@example.com (John Doe)', '(("John Doe" NIL "jd" "example.com"))'],
  ['John (middle) Doe <jd@example.com>', '(("John Doe" NIL "jd" "example.com"))'],
  ['"quoted \\"name\\"" <q@x>', '(("quoted \\"name\\"" NIL "q" "x"))'],
  ['=?utf-8?q?J=C3=B6rg?= <j@x>', '(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x"))'],
  ['"john doe"@example.com', '((NIL NIL "john doe" "example.com"))'],
  ['joe@[192.0.2.1]', '((NIL NIL "joe" "[192.0.2.1]"))'],
  ['<@relay.a,@relay.b:joe@c.example>', '((NIL "@relay.a,@relay.b" "joe" "c.example"))'],
  ['postmaster', '((NIL NIL "postmaster" NIL))'],
  ['Post Master <postmaster>', '(("Post Master" NIL "postmaster" NIL))'],
  ['undisclosed-recipients:;', '((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'],
  ['A Group: a@x, B <b@y>;, c@z', '((NIL NIL "A Group" NIL)(NIL NIL "a" "x")("B" NIL "b" "y")(NIL NIL NIL NIL)(NIL NIL "c" "z"))'],
  ['Open Group: a@x', '((NIL NIL "Open Group" NIL)(NIL NIL "a" "x")(NIL NIL NIL NIL))'],
  ['a@x; b@y', '((NIL NIL "a" "x")(NIL NIL "b" "y"))'],
  ['a@x,, ,b@y', '((NIL NIL "a" "x")(NIL NIL "b" "y"))'],
  ['', 'NIL'],
  ['(just a comment)', 'NIL'],
  ['<>', 'NIL'],
  ['"unclosed <x@y>', '((NIL NIL "unclosed <x@y>" NIL))'],
  ['Name <unclosed@angle', '(("Name" NIL "unclosed" "angle"))'],
];
for (const [to, expected] of addresses) {
  test(`ENVELOPE address list of To: ${to}`, () => {
    assert.equal(envelope(crlf(`To: ${to}`, '', '')), `(NIL NIL NIL NIL NIL ${expected} NIL NIL NIL NIL)`);
  });
}

test('ENVELOPE: an 8-bit display name is a literal', () => {
  const name = Buffer.from('Jörg').toString('latin1');
  assert.equal(envelope(crlf('To: Jörg <j@x>', '', '')), `(NIL NIL NIL NIL NIL (({5}\r\n${name} NIL "j" "x")) NIL NIL NIL NIL)`);
});

test('ENVELOPE of an encapsulated message reads its own header', () => {
  const root = parseMessage(NESTED);
  assert.equal(envelope(NESTED, root.children[1]!.message!), '(NIL "inner" ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) NIL NIL NIL NIL NIL)');
});

// ---------------------------------------------------------------------------------------------
// The part tree, BODY and BODYSTRUCTURE

test('a message without Content-Type is text/plain us-ascii 7bit; size in octets, lines counted', () => {
  const raw = crlf('Subject: x', '', 'line 1', 'line 2', '');
  const root = parseMessage(raw);
  assert.deepEqual([root.header, root.body, root.size, root.lines], [{ start: 0, end: 14 }, { start: 14, end: 30 }, 16, 2]);
  assert.equal(bodyStructure(raw, root, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 16 2)');
  assert.equal(bodyStructure(raw, root, true), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 16 2 NIL NIL NIL NIL)');
});

test('a last line without line end counts as a line', () => {
  const root = parseMessage(crlf('', 'a', 'b'));
  assert.deepEqual([root.size, root.lines], [4, 2]);
});

test('the two-part example of RFC 3501 §7.4.2: BODY and BODYSTRUCTURE', () => {
  const raw = crlf(
    ...RFC3501_HEADER,
    'Content-Type: MULTIPART/MIXED; BOUNDARY="b1"',
    '',
    '--b1',
    'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII',
    '',
    'hello',
    '--b1',
    'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff',
    'Content-ID: <960723163407.20117h@cac.washington.edu>',
    'Content-Description: Compiled diff',
    'Content-Transfer-Encoding: BASE64',
    '',
    'aGVsbG8K',
    'aGVsbG8K',
    '--b1--',
    '',
  );
  const root = parseMessage(raw);
  const parts = '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1)' +
    '("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiled diff" "BASE64" 18 2)';
  assert.equal(bodyStructure(raw, root, false), `(${parts} "MIXED")`);
  assert.equal(bodyStructure(raw, root, true),
    '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1 NIL NIL NIL NIL)' +
    '("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiled diff" "BASE64" 18 2 NIL NIL NIL NIL)' +
    ' "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)');
});

test('multipart/mixed with a nested multipart/alternative and a message/rfc822: BODY', () => {
  assert.equal(bodyStructure(NESTED, parseMessage(NESTED), false),
    '((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1) "ALTERNATIVE")' +
    '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 (NIL "inner" ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) NIL NIL NIL NIL NIL)' +
    ' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1) 4) "MIXED")');
});

test('multipart/mixed with a nested multipart/alternative and a message/rfc822: BODYSTRUCTURE', () => {
  assert.equal(bodyStructure(NESTED, parseMessage(NESTED), true),
    '((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)' +
    '("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 17 1 NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "YY") NIL NIL NIL)' +
    '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 (NIL "inner" ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) ((NIL NIL "b" "example.net")) NIL NIL NIL NIL NIL)' +
    ' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL ("ATTACHMENT" ("FILENAME" "m.eml")) NIL NIL)' +
    ' "MIXED" ("BOUNDARY" "XX") NIL NIL NIL)');
});

test('BODYSTRUCTURE extension data: MD5, disposition, one or more languages, location; comments in Content-Type dropped', () => {
  const raw = crlf(
    'Content-Type: image/png (a picture); name="a b.png"',
    'Content-Transfer-Encoding: base64',
    'Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==',
    'Content-Disposition: inline',
    'Content-Language: en, de (German)',
    'Content-Location: http://example.org/a.png',
    '',
    'iVBO',
  );
  assert.equal(bodyStructure(raw, parseMessage(raw), true),
    '("IMAGE" "PNG" ("NAME" "a b.png") NIL NIL "BASE64" 4 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("INLINE" NIL) ("en" "de") "http://example.org/a.png")');
  const single = crlf('Content-Type: application/pdf', 'Content-Language: fr', '', 'x');
  assert.equal(bodyStructure(single, parseMessage(single), true), '("APPLICATION" "PDF" NIL NIL NIL "7BIT" 1 NIL NIL "fr" NIL)');
});

test('parameters: unquoted values with "=" kept whole, names upper-cased, values as sent; text/* without charset gets US-ASCII', () => {
  const raw = crlf('Content-Type: text/html; format=flowed', '', 'x');
  assert.equal(bodyStructure(raw, parseMessage(raw), false), '("TEXT" "HTML" ("FORMAT" "flowed" "CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1)');
  const boundary = crlf('Content-Type: multipart/mixed; boundary=----=_Part_1', '', '------=_Part_1', '', 'a', '------=_Part_1--');
  const root = parseMessage(boundary);
  assert.equal(root.children.length, 1);
  assert.equal(bytesOf(boundary, section([1])), 'a');
});

test('an invalid Content-Type reads as text/plain us-ascii', () => {
  const raw = crlf('Content-Type: garbage', '', 'x');
  assert.deepEqual(parseMessage(raw).contentType, { type: 'text', subtype: 'plain', params: [['charset', 'US-ASCII']] });
});

test('multipart/digest: body parts without Content-Type are message/rfc822', () => {
  const raw = crlf('Content-Type: multipart/digest; boundary=d', '', '--d', '', 'Subject: one', '', 'body', '--d--');
  const part = parseMessage(raw).children[0]!;
  assert.deepEqual([part.contentType.type, part.contentType.subtype], ['message', 'rfc822']);
  assert.equal(bodyStructure(raw, part, false),
    '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 20 (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 4 1) 3)');
});

test('multipart: an empty body part between adjacent delimiters, blanks after a delimiter, a longer boundary is not a delimiter', () => {
  const raw = crlf('Content-Type: multipart/mixed; boundary=b', '', '--b', '--b  ', '', 'x', '--bb', 'y', '--b--\t', 'epilogue');
  const root = parseMessage(raw);
  assert.equal(root.children.length, 2);
  assert.equal(bytesOf(raw, section([1])), '');
  assert.equal(bytesOf(raw, section([2])), 'x\r\n--bb\r\ny');
});

test('multipart with bare LF line ends', () => {
  const raw = Buffer.from('Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nlf body\n--b--\n');
  const root = parseMessage(raw);
  assert.equal(root.children.length, 1);
  assert.equal(bytesOf(raw, section([1])), 'lf body');
  assert.equal(bytesOf(raw, section([1], 'MIME')), 'Content-Type: text/plain\n\n');
});

// ---------------------------------------------------------------------------------------------
// BODY[section]

const nestedSections: [spec: SectionSpec, expected: string][] = [
  [section([]), NESTED.toString('latin1')],
  [section([], 'HEADER'), 'From: a@example.org\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'],
  [section([], 'TEXT'), NESTED.toString('latin1').slice(NESTED.indexOf('preamble'))],
  [section([1]), '--YY\r\n\r\nplain text\r\n--YY\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>h=C3=A9llo</p>\r\n--YY--'],
  [section([1], 'MIME'), 'Content-Type: multipart/alternative; boundary=YY\r\n\r\n'],
  [section([1, 1]), 'plain text'],
  [section([1, 1], 'MIME'), '\r\n'],
  [section([1, 2]), '<p>h=C3=A9llo</p>'],
  [section([1, 2], 'MIME'), 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'],
  [section([2]), 'From: b@example.net\r\nSubject: inner\r\n\r\ninner body'],
  [section([2], 'MIME'), 'Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename="m.eml"\r\n\r\n'],
  [section([2], 'HEADER'), 'From: b@example.net\r\nSubject: inner\r\n\r\n'],
  [section([2], 'TEXT'), 'inner body'],
  [section([2], 'HEADER.FIELDS', ['subject']), 'Subject: inner\r\n\r\n'],
  [section([2, 1]), 'inner body'],
  [section([2, 1], 'MIME'), 'From: b@example.net\r\nSubject: inner\r\n\r\n'],
  [section([2, 2]), ''],
  [section([3]), ''],
  [section([1, 3]), ''],
  [section([1, 1, 1]), ''],
  [section([1], 'HEADER'), ''],
  [section([1, 1], 'TEXT'), ''],
  [section([], 'MIME'), ''],
];
for (const [spec, expected] of nestedSections) {
  test(`BODY[${[...spec.part, ...(spec.text ? [spec.text] : [])].join('.')}${spec.fields.length ? ` (${spec.fields.join(' ')})` : ''}] of the nested message`, () => {
    assert.equal(bytesOf(NESTED, spec), expected);
  });
}

test('a non-multipart message has only part 1: its body; 1.MIME is its header', () => {
  const raw = crlf('Subject: s', '', 'body');
  assert.equal(bytesOf(raw, section([1])), 'body');
  assert.equal(bytesOf(raw, section([1], 'MIME')), 'Subject: s\r\n\r\n');
  assert.equal(bytesOf(raw, section([2])), '');
  assert.equal(bytesOf(raw, section([1, 1])), '');
});

test('a top-level message/rfc822: part 1 is the encapsulated message, 1.1 its body, 1.HEADER its header', () => {
  const raw = crlf('Content-Type: message/rfc822', '', 'Subject: in', '', 'text');
  assert.equal(bytesOf(raw, section([1])), 'Subject: in\r\n\r\ntext');
  assert.equal(bytesOf(raw, section([1, 1])), 'text');
  assert.equal(bytesOf(raw, section([1], 'HEADER')), 'Subject: in\r\n\r\n');
});

const FIELDS = crlf('From: a@x', 'Subject: one', '  folded', 'X-Tag: 1', 'subject: two', 'Received: r', '', 'body');
const fieldSections: [spec: SectionSpec, expected: string][] = [
  [section([], 'HEADER.FIELDS', ['SUBJECT']), 'Subject: one\r\n  folded\r\nsubject: two\r\n\r\n'],
  [section([], 'HEADER.FIELDS', ['x-tag', 'From']), 'From: a@x\r\nX-Tag: 1\r\n\r\n'],
  [section([], 'HEADER.FIELDS', ['Absent']), '\r\n'],
  [section([], 'HEADER.FIELDS.NOT', ['subject', 'received']), 'From: a@x\r\nX-Tag: 1\r\n\r\n'],
  [section([], 'HEADER.FIELDS.NOT', ['nothing']), 'From: a@x\r\nSubject: one\r\n  folded\r\nX-Tag: 1\r\nsubject: two\r\nReceived: r\r\n\r\n'],
];
for (const [spec, expected] of fieldSections) {
  test(`BODY[${spec.text} (${spec.fields.join(' ')})]: matching names case-insensitive, all occurrences in order, folding kept, then CRLF`, () => {
    assert.equal(bytesOf(FIELDS, spec), expected);
  });
}

test('HEADER.FIELDS of a header whose last field has no line end still ends each field with CRLF', () => {
  assert.equal(bytesOf(Buffer.from('Subject: x'), section([], 'HEADER.FIELDS', ['subject'])), 'Subject: x\r\n\r\n');
});

// ---------------------------------------------------------------------------------------------
// Malformed input

test('no final boundary: the last body part runs to the end', () => {
  const raw = crlf('Content-Type: multipart/mixed; boundary=b', '', '--b', '', 'one', '--b', '', 'two', 'still two');
  assert.equal(parseMessage(raw).children.length, 2);
  assert.equal(bytesOf(raw, section([2])), 'two\r\nstill two');
});

test('a boundary that never occurs gives one empty text/plain part', () => {
  const raw = crlf('Content-Type: multipart/mixed; boundary=nowhere', '', 'just text');
  assert.equal(bodyStructure(raw, parseMessage(raw), false), '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED")');
  assert.equal(bytesOf(raw, section([1])), '');
});

test('a multipart without boundary parameter is a single text/plain part', () => {
  const raw = crlf('Content-Type: multipart/mixed', '', '--b', 'text');
  const root = parseMessage(raw);
  assert.equal(root.children.length, 0);
  assert.equal(bodyStructure(raw, root, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 9 2)');
  assert.equal(bytesOf(raw, section([1])), '--b\r\ntext');
});

test('no blank line: all of it is header, the body is empty', () => {
  const raw = crlf('Subject: only a header', 'From: a@x');
  const root = parseMessage(raw);
  assert.deepEqual([root.header, root.body, root.fields.length], [{ start: 0, end: raw.length }, { start: raw.length, end: raw.length }, 2]);
  assert.equal(bytesOf(raw, section([], 'HEADER')), raw.toString());
  assert.equal(bytesOf(raw, section([], 'TEXT')), '');
});

test('an empty message: empty header and body, every section empty', () => {
  const raw = Buffer.alloc(0);
  const root = parseMessage(raw);
  assert.equal(bodyStructure(raw, root, true), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL)');
  assert.equal(bytesOf(raw, section([])), '');
  assert.equal(bytesOf(raw, section([1])), '');
  assert.equal(bytesOf(raw, section([], 'HEADER.FIELDS', ['a'])), '\r\n');
});

test('a body starting with the blank line has an empty header', () => {
  const root = parseMessage(crlf('', 'text'));
  assert.deepEqual([root.header, root.body, root.fields], [{ start: 0, end: 2 }, { start: 2, end: 6 }, []]);
});

test('malformed header lines (no colon, space in the name, leading continuation) are skipped', () => {
  const raw = crlf(' orphan continuation', 'From foo Mon Jan 1 00:00:00 2024', 'no colon here', 'Subject : spaced', '', '');
  assert.deepEqual(parseMessage(raw).fields.map((f) => [f.name, f.value]), [['Subject', 'spaced']]);
});

function depthOf(part: MimePart): number {
  const below = [...part.children, ...(part.message ? [part.message] : [])].map(depthOf);
  return 1 + Math.max(0, ...below);
}

function countParts(part: MimePart): number {
  return 1 + part.children.reduce((n, child) => n + countParts(child), 0) + (part.message ? countParts(part.message) : 0);
}

test(`deep multipart nesting is opened to depth ${MAX_DEPTH}, deeper parts are application/octet-stream`, () => {
  let inner = 'Content-Type: text/plain\r\n\r\nleaf';
  for (let level = 200; level > 0; level--) inner = `Content-Type: multipart/mixed; boundary=b${level}\r\n\r\n--b${level}\r\n${inner}\r\n--b${level}--`;
  const raw = Buffer.from(inner);
  const root = parseMessage(raw);
  assert.equal(depthOf(root), MAX_DEPTH + 1);
  let deepest = root;
  while (deepest.children[0]) deepest = deepest.children[0];
  assert.deepEqual([deepest.contentType.type, deepest.contentType.subtype], ['application', 'octet-stream']);
  assert.doesNotThrow(() => bodyStructure(raw, root, true));
});

test('deep message/rfc822 nesting is capped too', () => {
  let inner = 'Subject: leaf\r\n\r\nleaf';
  for (let level = 0; level < 200; level++) inner = `Content-Type: message/rfc822\r\n\r\n${inner}`;
  const raw = Buffer.from(inner);
  const root = parseMessage(raw);
  assert.equal(depthOf(root), MAX_DEPTH + 1);
  assert.match(bodyStructure(raw, root, true), /"APPLICATION" "OCTET-STREAM"/);
});

test(`at most ${MAX_PARTS} parts`, () => {
  const parts = Array.from({ length: MAX_PARTS + 500 }, (_, i) => `--b\r\n\r\n${i}`).join('\r\n');
  const raw = Buffer.from(`Content-Type: multipart/mixed; boundary=b\r\n\r\n${parts}\r\n--b--\r\n`);
  assert.equal(countParts(parseMessage(raw)), MAX_PARTS);
});

test('random garbage built from MIME and address fragments never throws', () => {
  const fragments = ['--b', '--b--', '\r\n', '\n', '\r', ' ', ':', '"', '\\', '(', ')', '<', '>', '@', ',', ';', '=', 'x', '\xff', '=?utf-8?q?a?=',
    'Content-Type: multipart/mixed; boundary=b', 'Content-Type: message/rfc822', 'Content-Type: text/plain; charset="', 'From: ', 'To: g:',
    'Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: quoted-printable', 'Date: 1 Jan 99 00:00'];
  let seed = 12345;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const raw = Buffer.from(Array.from({ length: next(120) }, () => fragments[next(fragments.length)]).join(''), 'latin1');
    const root = parseMessage(raw);
    envelope(raw);
    bodyStructure(raw, root, true);
    bodyStructure(raw, root, false);
    for (const path of [[], [1], [1, 1], [2, 1, 1]]) for (const text of [null, 'HEADER', 'TEXT', 'MIME'] as const) sectionBytes(raw, root, section(path, text));
    searchText(raw);
    headerValues(raw, 'to');
    sentDate(raw);
  }
});

// ---------------------------------------------------------------------------------------------
// SEARCH helpers

test('headerValues: every occurrence, unfolded, encoded-words decoded, raw UTF-8 read as UTF-8', () => {
  const raw = crlf('Subject: =?utf-8?q?h=C3=A9llo?=', ' =?ISO-8859-1?B?d/ZybGQ=?=', 'X: 1', 'subject: Grüße', '', 'body');
  assert.deepEqual(headerValues(raw, 'SUBJECT'), ['héllowörld', 'Grüße']);
  assert.equal(headerValues(crlf('Subject: =?utf-8?q?h=C3=A9llo?= world', '', ''), 'subject')[0], 'héllo world');
  assert.deepEqual(headerValues(crlf('Subject: x', '', ''), 'to'), []);
});

test('headerValues: latin1 bytes that are not UTF-8 are read as latin1', () => {
  const raw = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from([0xe9]), Buffer.from('\r\n\r\n')]);
  assert.deepEqual(headerValues(raw, 'subject'), ['café']);
});

test('searchText: headers of message and attached message, text parts decoded (quoted-printable, base64, charsets)', () => {
  const raw = crlf(
    'Subject: =?utf-8?q?s=C3=BCbject?=',
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: text/plain; charset=iso-8859-1',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'caf=E9 au l=',
    'ait',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('grüße').toString('base64'),
    '--b',
    'Content-Type: text/plain; charset=x-unknown',
    '',
    'plain',
    '--b',
    'Content-Type: image/png',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('not text').toString('base64'),
    '--b',
    'Content-Type: message/rfc822',
    '',
    'Subject: attached',
    '',
    'inner',
    '--b--',
  );
  const text = searchText(raw);
  for (const expected of ['Subject: sübject', 'café au lait', 'grüße', 'plain', 'Subject: attached', 'inner']) assert.ok(text.includes(expected), expected);
  assert.ok(!text.includes('not text'));
});

const dates: [header: string | null, moment: string | null, writtenDay: string | null][] = [
  ['Wed, 17 Jul 1996 02:23:25 -0700 (PDT)', '1996-07-17T09:23:25.000Z', '1996-07-17'],
  ['17 Jul 1996 02:23 +0000', '1996-07-17T02:23:00.000Z', '1996-07-17'],
  ['Thu, 1 Feb 24 10:00:00 EST', '2024-02-01T15:00:00.000Z', '2024-02-01'],
  ['Mon, 1 Jan 99 00:00:00 GMT', '1999-01-01T00:00:00.000Z', '1999-01-01'],
  ['Tue, 02 March 2021 13:14:15 +0530', '2021-03-02T07:44:15.000Z', '2021-03-02'],
  ['Tue, 10 Feb 2026 00:30:00 +0100', '2026-02-09T23:30:00.000Z', '2026-02-10'],
  ['Mon, 09 Feb 2026 23:30:00 -0500', '2026-02-10T04:30:00.000Z', '2026-02-09'],
  ['2 Mar 2021 13:14:15', '2021-03-02T13:14:15.000Z', '2021-03-02'],
  ['2021-03-02T13:14:15Z', '2021-03-02T13:14:15.000Z', '2021-03-02'],
  ['not a date', null, null],
  [null, null, null],
];
for (const [header, moment, writtenDay] of dates) {
  test(`the moment and the written day of ${header === null ? 'no Date:' : JSON.stringify(header)}`, () => {
    const raw = crlf(...(header === null ? [] : [`Date: ${header}`]), '', '');
    if (header !== null) assert.equal(parseDate(header)?.toISOString() ?? null, moment);
    // SENT* compare the day as written, disregarding time and zone (RFC 3501).
    assert.equal(sentDate(raw)?.toISOString() ?? null, writtenDay === null ? null : `${writtenDay}T00:00:00.000Z`);
  });
}
