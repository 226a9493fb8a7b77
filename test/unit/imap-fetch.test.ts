// Owns: tables for src/mailbox/imap/fetch.ts — FETCH items from the reader's tokens, which of them set
// \Seen and how much of a message they need, and the exact untagged FETCH response (RFC 3501 §6.4.5, §7.4.2).
// Must never: touch the file system or a network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FetchItem, type FetchSubject, fetchResponse, needsOf, parseFetchItems, setsSeen } from '../../src/mailbox/imap/fetch.ts';
import type { SectionText } from '../../src/mailbox/imap/mime.ts';
import type { Token } from '../../src/mailbox/imap/types.ts';

const atom = (value: string, section?: Token[], partial?: { start: number; length: number }): Token =>
  ({ type: 'atom', value, ...(section ? { section } : {}), ...(partial ? { partial } : {}) });
const list = (...items: Token[]): Token => ({ type: 'list', items });
const quoted = (value: string): Token => ({ type: 'string', value: Buffer.from(value), literal: false });

const items = (arg: Token | Token[]): FetchItem[] => {
  const parsed = parseFetchItems(arg);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
};

const body = (part: number[], text: SectionText | null = null, fields: string[] = [], peek = false, partial: { start: number; length: number } | null = null): FetchItem =>
  ({ kind: 'BODY[section]', peek, section: { part, text, fields }, partial });

// ---------------------------------------------------------------------------------------------
// Parsing

const parses: [what: string, arg: Token | Token[], expected: FetchItem[]][] = [
  ['ALL', atom('ALL'), [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }, { kind: 'ENVELOPE' }]],
  ['fast (any case)', atom('fast'), [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }]],
  ['FULL', atom('FULL'), [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }, { kind: 'ENVELOPE' }, { kind: 'BODY' }]],
  ['a list', list(atom('uid'), atom('Flags'), atom('rfc822.size'), atom('MODSEQ')), [{ kind: 'UID' }, { kind: 'FLAGS' }, { kind: 'RFC822.SIZE' }, { kind: 'MODSEQ' }]],
  ['an array of one list', [list(atom('ENVELOPE'), atom('BODYSTRUCTURE'))], [{ kind: 'ENVELOPE' }, { kind: 'BODYSTRUCTURE' }]],
  ['an array of one atom', [atom('RFC822')], [{ kind: 'RFC822' }]],
  ['RFC822.HEADER, RFC822.TEXT, BODY, INTERNALDATE', list(atom('RFC822.HEADER'), atom('RFC822.TEXT'), atom('BODY'), atom('INTERNALDATE')),
    [{ kind: 'RFC822.HEADER' }, { kind: 'RFC822.TEXT' }, { kind: 'BODY' }, { kind: 'INTERNALDATE' }]],
  ['BODY[]', atom('BODY', []), [body([])]],
  ['BODY.PEEK[]<0.100>', atom('body.peek', [], { start: 0, length: 100 }), [body([], null, [], true, { start: 0, length: 100 })]],
  ['BODY[1.2.MIME]', atom('BODY', [atom('1.2.mime')]), [body([1, 2], 'MIME')]],
  ['BODY[3]', atom('BODY', [atom('3')]), [body([3])]],
  ['BODY[HEADER]', atom('BODY', [atom('header')]), [body([], 'HEADER')]],
  ['BODY[2.TEXT]', atom('BODY', [atom('2.TEXT')]), [body([2], 'TEXT')]],
  ['BODY[HEADER.FIELDS (From "Subject")]<0.100>', atom('BODY', [atom('HEADER.FIELDS'), list(atom('From'), quoted('Subject'))], { start: 0, length: 100 }),
    [body([], 'HEADER.FIELDS', ['From', 'Subject'], false, { start: 0, length: 100 })]],
  ['BODY.PEEK[1.HEADER.FIELDS.NOT (X)]', atom('BODY.PEEK', [atom('1.header.fields.not'), list(atom('X'))]), [body([1], 'HEADER.FIELDS.NOT', ['X'], true)]],
];
for (const [what, arg, expected] of parses) {
  test(`FETCH items: ${what}`, () => assert.deepEqual(items(arg), expected));
}

const rejects: [what: string, arg: Token | Token[], error: RegExp][] = [
  ['an unknown item', atom('FOO'), /unknown FETCH data item FOO/],
  ['an empty list', list(), /needs data items/],
  ['nothing', [], /needs data items/],
  ['a string', quoted('FLAGS'), /atoms/],
  ['BINARY[]', atom('BINARY', []), /BINARY/],
  ['BINARY.PEEK[1]', atom('BINARY.PEEK', [atom('1')]), /BINARY/],
  ['BINARY.SIZE[1]', atom('BINARY.SIZE', [atom('1')]), /BINARY/],
  ['BODY.PEEK without section', atom('BODY.PEEK'), /needs a \[section\]/],
  ['FLAGS[]', atom('FLAGS', []), /takes no \[section\]/],
  ['BODY<0.10> without section', atom('BODY', undefined, { start: 0, length: 10 }), /takes no <partial>/],
  ['BODY[MIME] without part', atom('BODY', [atom('MIME')]), /MIME needs a part/],
  ['BODY[0]', atom('BODY', [atom('0')]), /bad section/],
  ['BODY[1.]', atom('BODY', [atom('1.')]), /bad section/],
  ['BODY[FOO]', atom('BODY', [atom('FOO')]), /bad section/],
  ['BODY[HEADER.FIELDS] without list', atom('BODY', [atom('HEADER.FIELDS')]), /needs a list/],
  ['BODY[HEADER.FIELDS ()]', atom('BODY', [atom('HEADER.FIELDS'), list()]), /needs a list/],
  ['BODY[TEXT (A)]', atom('BODY', [atom('TEXT'), list(atom('A'))]), /bad section/],
  ['one bad item in a list', list(atom('FLAGS'), atom('NOPE')), /NOPE/],
];
for (const [what, arg, error] of rejects) {
  test(`FETCH items rejected: ${what}`, () => {
    const parsed = parseFetchItems(arg);
    assert.ok('error' in parsed, 'an error');
    assert.match(parsed.error, error);
  });
}

// ---------------------------------------------------------------------------------------------
// \Seen and what must be loaded

const seen: [what: string, item: FetchItem, sets: boolean][] = [
  ['BODY[]', body([]), true],
  ['BODY.PEEK[]', body([], null, [], true), false],
  ['BODY[HEADER]', body([], 'HEADER'), true],
  ['RFC822', { kind: 'RFC822' }, true],
  ['RFC822.TEXT', { kind: 'RFC822.TEXT' }, true],
  ['RFC822.HEADER', { kind: 'RFC822.HEADER' }, false],
  ['BODY', { kind: 'BODY' }, false],
  ['BODYSTRUCTURE', { kind: 'BODYSTRUCTURE' }, false],
  ['ENVELOPE', { kind: 'ENVELOPE' }, false],
];
for (const [what, item, sets] of seen) {
  test(`${what} ${sets ? 'sets' : 'does not set'} \\Seen`, () => assert.equal(setsSeen([{ kind: 'FLAGS' }, item]), sets));
}

const needs: [what: string, fetch: FetchItem[], need: 'none' | 'header' | 'full'][] = [
  ['FAST + UID + MODSEQ', [{ kind: 'FLAGS' }, { kind: 'INTERNALDATE' }, { kind: 'RFC822.SIZE' }, { kind: 'UID' }, { kind: 'MODSEQ' }], 'none'],
  ['ENVELOPE', [{ kind: 'UID' }, { kind: 'ENVELOPE' }], 'header'],
  ['RFC822.HEADER', [{ kind: 'RFC822.HEADER' }], 'header'],
  ['BODY.PEEK[HEADER]', [body([], 'HEADER', [], true)], 'header'],
  ['BODY.PEEK[HEADER.FIELDS (FROM)]<0.10>', [body([], 'HEADER.FIELDS', ['FROM'], true, { start: 0, length: 10 })], 'header'],
  ['BODY[HEADER.FIELDS.NOT (FROM)]', [body([], 'HEADER.FIELDS.NOT', ['FROM'])], 'header'],
  ['BODY[1.HEADER]', [body([1], 'HEADER')], 'full'],
  ['BODY[TEXT]', [{ kind: 'ENVELOPE' }, body([], 'TEXT')], 'full'],
  ['BODY[]', [body([])], 'full'],
  ['BODY', [{ kind: 'BODY' }], 'full'],
  ['BODYSTRUCTURE', [{ kind: 'BODYSTRUCTURE' }], 'full'],
  ['RFC822', [{ kind: 'RFC822' }], 'full'],
  ['RFC822.TEXT', [{ kind: 'RFC822.TEXT' }], 'full'],
];
for (const [what, fetch, need] of needs) {
  test(`${what} needs ${need}`, () => assert.equal(needsOf(fetch), need));
}

test('a memo holding the answer spares loading the message', () => {
  const memo = { envelope: '(...)', body: '(...)', bodystructure: '(...)' };
  assert.equal(needsOf([{ kind: 'ENVELOPE' }, { kind: 'BODY' }, { kind: 'BODYSTRUCTURE' }], memo), 'none');
  assert.equal(needsOf([{ kind: 'BODYSTRUCTURE' }], { envelope: '(...)' }), 'full');
});

// ---------------------------------------------------------------------------------------------
// Responses

const MESSAGE = Buffer.from([
  'Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)',
  'From: Terry Gray <gray@cac.washington.edu>',
  'Subject: IMAP4rev1 WG mtg summary and minutes',
  'To: imap@cac.washington.edu',
  'Message-Id: <B27397-0100000@cac.washington.edu>',
  '',
  'Hello,',
  'minutes follow.',
  '',
].join('\r\n'));
const HEADER_LENGTH = MESSAGE.indexOf('\r\n\r\n') + 4;
const HEADER_TEXT = MESSAGE.subarray(0, HEADER_LENGTH).toString('latin1');

const subject = (overrides: Partial<FetchSubject> = {}): FetchSubject => ({
  uid: 7, flags: ['\\Seen'], size: MESSAGE.length, internalDate: new Date('1996-07-17T09:44:25Z'), modseq: 42, content: MESSAGE, memo: {}, ...overrides,
});

const ENVELOPE = '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" ' +
  '(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ' +
  '(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) NIL NIL NIL ' +
  '"<B27397-0100000@cac.washington.edu>")';

test('FETCH FULL: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY as RFC 3501 §7.4.2 shows them', () => {
  assert.equal(fetchResponse(12, items(atom('FULL')), subject()),
    `* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 09:44:25 +0000" RFC822.SIZE ${MESSAGE.length} ENVELOPE ${ENVELOPE} ` +
    'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 25 2))');
});

test('UID, MODSEQ, empty FLAGS, BODYSTRUCTURE', () => {
  assert.equal(fetchResponse(1, items(list(atom('UID'), atom('MODSEQ'), atom('FLAGS'), atom('BODYSTRUCTURE'))), subject({ flags: [] })),
    '* 1 FETCH (UID 7 MODSEQ (42) FLAGS () BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 25 2 NIL NIL NIL NIL))');
});

test('RFC822, RFC822.HEADER and RFC822.TEXT are literals under their own names', () => {
  const text = 'Hello,\r\nminutes follow.\r\n';
  assert.equal(fetchResponse(3, items(list(atom('RFC822.HEADER'), atom('RFC822.TEXT'), atom('RFC822'))), subject()),
    `* 3 FETCH (RFC822.HEADER {${HEADER_LENGTH}}\r\n${HEADER_TEXT} RFC822.TEXT {${text.length}}\r\n${text} RFC822 {${MESSAGE.length}}\r\n${MESSAGE.toString('latin1')})`);
});

test('BODY.PEEK[HEADER.FIELDS (FROM)] answers as BODY[HEADER.FIELDS (FROM)] with the field and the blank line', () => {
  const fields = 'From: Terry Gray <gray@cac.washington.edu>\r\n\r\n';
  assert.equal(fetchResponse(12, items(list(atom('UID'), atom('FLAGS'), atom('BODY.PEEK', [atom('HEADER.FIELDS'), list(atom('FROM'))]))), subject()),
    `* 12 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM)] {${fields.length}}\r\n${fields})`);
});

test('field names are echoed as sent, quoted ones as atoms when they are atoms', () => {
  const fetch = items(atom('BODY', [atom('HEADER.FIELDS.NOT'), list(quoted('Date'), atom('from'), atom('Subject'), atom('message-id'))]));
  assert.equal(fetchResponse(1, fetch, subject()), '* 1 FETCH (BODY[HEADER.FIELDS.NOT (Date from Subject message-id)] {31}\r\nTo: imap@cac.washington.edu\r\n\r\n)');
});

const partials: [what: string, item: Token, expected: string][] = [
  ['BODY[]<0.10>', atom('BODY', [], { start: 0, length: 10 }), 'BODY[]<0> {10}\r\nDate: Wed,'],
  ['BODY[TEXT]<2.3>', atom('BODY.PEEK', [atom('TEXT')], { start: 2, length: 3 }), 'BODY[TEXT]<2> {3}\r\nllo'],
  ['BODY[TEXT]<20.100> (cut at the end)', atom('BODY', [atom('TEXT')], { start: 20, length: 100 }), 'BODY[TEXT]<20> {5}\r\now.\r\n'],
  ['BODY[TEXT]<500.10> (start beyond the end)', atom('BODY', [atom('TEXT')], { start: 500, length: 10 }), 'BODY[TEXT]<500> ""'],
  ['BODY[1]<0.5> (part 1 of a single-part message)', atom('BODY', [atom('1')], { start: 0, length: 5 }), 'BODY[1]<0> {5}\r\nHello'],
];
for (const [what, item, expected] of partials) {
  test(`partial fetch ${what}`, () => assert.equal(fetchResponse(2, items(item), subject()), `* 2 FETCH (${expected})`));
}

test('a part that does not exist is an empty literal; BODY[1.MIME] is the header', () => {
  assert.equal(fetchResponse(2, items(atom('BODY', [atom('2')])), subject()), '* 2 FETCH (BODY[2] {0}\r\n)');
  assert.equal(fetchResponse(2, items(atom('BODY', [atom('1.MIME')])), subject()), `* 2 FETCH (BODY[1.MIME] {${HEADER_LENGTH}}\r\n${HEADER_TEXT})`);
});

test('an item asked twice (BODY[] and BODY.PEEK[], FLAGS in ALL and alone) is answered once', () => {
  const fetch = [...items(list(atom('BODY', []), atom('BODY.PEEK', []), atom('FLAGS'))), ...items(atom('FAST'))];
  assert.equal(fetchResponse(5, fetch, subject({ content: Buffer.from('x') })), `* 5 FETCH (BODY[] {1}\r\nx FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 09:44:25 +0000" RFC822.SIZE ${MESSAGE.length})`);
});

test('the header alone serves ENVELOPE and BODY[HEADER.FIELDS …]', () => {
  const fetch = items(list(atom('ENVELOPE'), atom('BODY.PEEK', [atom('HEADER.FIELDS'), list(atom('SUBJECT'))])));
  assert.equal(needsOf(fetch), 'header');
  const fields = 'Subject: IMAP4rev1 WG mtg summary and minutes\r\n\r\n';
  assert.equal(fetchResponse(1, fetch, subject({ content: MESSAGE.subarray(0, HEADER_LENGTH) })),
    `* 1 FETCH (ENVELOPE ${ENVELOPE} BODY[HEADER.FIELDS (SUBJECT)] {${fields.length}}\r\n${fields})`);
});

test('the memo is filled once and reused; no content is needed then', () => {
  const memo: FetchSubject['memo'] = {};
  const fetch = items(list(atom('ENVELOPE'), atom('BODY'), atom('BODYSTRUCTURE')));
  const first = fetchResponse(1, fetch, subject({ memo }));
  assert.equal(memo.envelope, ENVELOPE);
  assert.equal(memo.body, '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 25 2)');
  assert.equal(memo.bodystructure, '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 25 2 NIL NIL NIL NIL)');
  assert.equal(fetchResponse(1, fetch, subject({ memo, content: null })), first);
});

test('8-bit bytes of a body reach the response unchanged (one latin1 char per byte)', () => {
  const content = Buffer.from('Subject: x\r\n\r\nGrüße\r\n');
  const line = fetchResponse(9, items(atom('BODY.PEEK', [atom('TEXT')])), subject({ content }));
  assert.deepEqual(Buffer.from(line, 'latin1'), Buffer.concat([Buffer.from('* 9 FETCH (BODY[TEXT] {9}\r\n'), Buffer.from('Grüße\r\n'), Buffer.from(')')]));
});

test('a multipart message: BODY[1], BODY[2.MIME], BODYSTRUCTURE', () => {
  const content = Buffer.from([
    'Content-Type: multipart/mixed; boundary=b', '', '--b', '', 'one', '--b', 'Content-Type: text/plain; charset=utf-8', '', 'two', '--b--', '',
  ].join('\r\n'));
  const fetch = items(list(atom('BODY', [atom('1')]), atom('BODY', [atom('2.MIME')]), atom('BODYSTRUCTURE')));
  assert.equal(fetchResponse(4, fetch, subject({ content })),
    '* 4 FETCH (BODY[1] {3}\r\none BODY[2.MIME] {43}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n BODYSTRUCTURE ' +
    '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1 NIL NIL NIL NIL)("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 3 1 NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "b") NIL NIL NIL))');
});
