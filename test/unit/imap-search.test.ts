// IMAP SEARCH: criteria parsed from tokens and evaluated against a small mailbox; charset rules,
// what each key needs loaded, MODSEQ detection, and malformed criteria giving errors, never throwing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matches, parseSearch, searchNeeds, usesModseq, type SearchKey, type SearchSubject } from '../../src/mailbox/imap/search.ts';
import type { Token } from '../../src/mailbox/imap/types.ts';

/** Test-only reader: words become atoms, "…" strings (with \\ and \" escapes), ( … ) lists. */
function tokens(text: string): Token[] {
  const stack: Token[][] = [[]];
  const re = /\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    const top = stack[stack.length - 1] ?? [];
    if (m[1] !== undefined) stack.push([]);
    else if (m[2] !== undefined) {
      const items = stack.pop() ?? [];
      stack[stack.length - 1]?.push({ type: 'list', items });
    } else if (m[3] !== undefined) top.push({ type: 'string', value: Buffer.from(m[3].replace(/\\(.)/g, '$1')), literal: false });
    else if (m[4] !== undefined) top.push({ type: 'atom', value: m[4] });
  }
  return stack[0] ?? [];
}

function parse(text: string): SearchKey {
  const result = parseSearch(tokens(text));
  assert.ok('key' in result, `${text}: ${'error' in result ? result.error : ''}`);
  return result.key;
}

interface Message {
  uid: number;
  flags: string[];
  recent: boolean;
  size: number;
  internal: string;
  modseq: number;
  headers: Record<string, string[]>;
  body: string;
  sent: string | null;
}

const mailbox: Message[] = [
  {
    uid: 10, flags: ['\\Seen'], recent: false, size: 100, internal: '2024-01-31T23:30:00Z', modseq: 5,
    headers: { From: ['Alice <alice@example.org>'], To: ['bob@example.org'], Subject: ['Hello Wörld'] },
    body: 'The quick brown fox', sent: '2024-01-30T10:00:00Z',
  },
  {
    uid: 11, flags: ['\\Answered', '\\Seen', '$Junk'], recent: true, size: 2000, internal: '2024-02-01T00:00:00Z', modseq: 9,
    headers: { From: ['Bob <bob@example.org>'], Cc: ['carol@example.org'], Subject: ['Re: lunch'], 'X-Spam': ['yes'] },
    body: 'ÄPFEL und Birnen', sent: '2024-02-01T08:00:00Z',
  },
  {
    uid: 15, flags: ['\\Flagged', '\\Draft'], recent: true, size: 500, internal: '2024-02-02T12:00:00Z', modseq: 12,
    headers: { From: ['Carol <carol@example.org>'] },
    body: 'meeting at noon', sent: null,
  },
  {
    uid: 20, flags: ['\\Deleted'], recent: false, size: 50, internal: '2024-03-01T00:00:00Z', modseq: 3,
    headers: { From: ['alice@example.org'], Bcc: ['dave@example.org'], Subject: ['Invoice'] },
    body: '', sent: 'not a date',
  },
];

function subject(message: Message, seq: number): SearchSubject {
  const header = (name: string): string[] => {
    const found = Object.keys(message.headers).find((k) => k.toLowerCase() === name.toLowerCase());
    return found === undefined ? [] : (message.headers[found] ?? []);
  };
  const headerText = Object.entries(message.headers).flatMap(([k, vs]) => vs.map((v) => `${k}: ${v}\n`)).join('');
  return {
    seq, uid: message.uid, flags: new Set(message.flags), recent: message.recent, size: message.size,
    internalDate: new Date(message.internal), modseq: message.modseq,
    header, body: () => message.body, text: () => `${headerText}\n${message.body}`,
    sentDate: () => (message.sent === null ? null : new Date(message.sent)),
  };
}

function search(text: string): number[] {
  const key = parse(text);
  const ctx = { maxSeq: mailbox.length, maxUid: 20 };
  return mailbox.filter((m, i) => matches(key, subject(m, i + 1), ctx)).map((m) => m.uid);
}

const searches: [string, number[]][] = [
  ['ALL', [10, 11, 15, 20]],
  ['SEEN', [10, 11]],
  ['UNSEEN', [15, 20]],
  ['answered', [11]],
  ['UNANSWERED', [10, 15, 20]],
  ['DELETED', [20]],
  ['UNDELETED', [10, 11, 15]],
  ['DRAFT', [15]],
  ['UNDRAFT', [10, 11, 20]],
  ['FLAGGED', [15]],
  ['UNFLAGGED', [10, 11, 20]],
  ['KEYWORD $Junk', [11]],
  ['KEYWORD $junk', [11]],
  ['UNKEYWORD $Junk', [10, 15, 20]],
  ['RECENT', [11, 15]],
  ['NEW', [15]],
  ['OLD', [10, 20]],
  ['FROM alice', [10, 20]],
  ['from "ALICE@EXAMPLE"', [10, 20]],
  ['TO bob', [10]],
  ['CC carol', [11]],
  ['BCC dave', [20]],
  ['SUBJECT "wörld"', [10]],
  ['SUBJECT WÖRLD', [10]],
  ['SUBJECT ""', [10, 11, 20]],
  ['HEADER X-Spam ""', [11]],
  ['HEADER x-spam YES', [11]],
  ['HEADER X-Spam no', []],
  ['BODY äpfel', [11]],
  ['BODY fox', [10]],
  ['TEXT alice', [10, 20]],
  ['TEXT FOX', [10]],
  ['BEFORE 1-Feb-2024', [10]],
  ['ON 1-Feb-2024', [11]],
  ['ON 01-feb-2024', [11]],
  ['SINCE 1-Feb-2024', [11, 15, 20]],
  ['SINCE "2-FEB-2024"', [15, 20]],
  ['SENTBEFORE 1-Feb-2024', [10]],
  ['SENTON 1-Feb-2024', [11]],
  ['SENTSINCE 1-Jan-2000', [10, 11]],
  ['NOT SENTSINCE 1-Jan-2000', [15, 20]],
  ['LARGER 100', [11, 15]],
  ['SMALLER 100', [20]],
  ['LARGER 50 SMALLER 500', [10]],
  ['2:3', [11, 15]],
  ['*', [20]],
  ['1,4', [10, 20]],
  ['3:1', [10, 11, 15]],
  ['UID 11:15', [11, 15]],
  ['UID *', [20]],
  ['UID 25:*', [20]],
  ['UID 12:14', []],
  ['MODSEQ 9', [11, 15]],
  ['MODSEQ "/flags/\\\\seen" all 9', [11, 15]],
  ['NOT SEEN', [15, 20]],
  ['NOT NOT SEEN', [10, 11]],
  ['OR SEEN FLAGGED', [10, 11, 15]],
  ['OR (SEEN ANSWERED) DELETED', [11, 20]],
  ['NOT OR SEEN DELETED', [15]],
  ['OR OR DRAFT DELETED NOT RECENT', [10, 15, 20]],
  ['SEEN UNANSWERED', [10]],
  ['(SEEN)', [10, 11]],
  ['((SEEN) (NOT ANSWERED))', [10]],
  ['CHARSET UTF-8 BODY fox', [10]],
  ['charset us-ascii ALL', [10, 11, 15, 20]],
  ['CHARSET "utf-8" SUBJECT lunch', [11]],
];
for (const [criteria, expected] of searches) {
  test(`SEARCH ${criteria} → UIDs ${JSON.stringify(expected)}`, () => assert.deepEqual(search(criteria), expected));
}

test('strings as literals decode as UTF-8', () => {
  const args: Token[] = [{ type: 'atom', value: 'SUBJECT' }, { type: 'string', value: Buffer.from('WÖRLD', 'utf8'), literal: true }];
  const result = parseSearch(args);
  assert.ok('key' in result);
  assert.deepEqual(result.key, { kind: 'header', field: 'Subject', value: 'WÖRLD' });
  assert.equal(matches(result.key, subject(mailbox[0] as Message, 1), { maxSeq: 4, maxUid: 20 }), true);
});

test('the charset comes back canonical, null when not given', () => {
  assert.deepEqual(parseSearch(tokens('CHARSET utf-8 ALL')), { key: { kind: 'all' }, charset: 'UTF-8' });
  assert.deepEqual(parseSearch(tokens('ALL')), { key: { kind: 'all' }, charset: null });
});

const errors: [string, RegExp, boolean?][] = [
  ['', /missing search key/],
  ['CHARSET', /missing argument of CHARSET/],
  ['CHARSET UTF-8', /missing search key/],
  ['CHARSET ISO-8859-1 ALL', /unsupported charset/, true],
  ['CHARSET (UTF-8) ALL', /CHARSET needs a string/],
  ['FROM', /missing argument of FROM/],
  ['FROM (x)', /FROM needs a string/],
  ['BEFORE 32-Jan-2024', /date/],
  ['BEFORE 2024-01-01', /date/],
  ['ON 29-Feb-2023', /date/],
  ['SINCE 1-Foo-2024', /date/],
  ['SINCE 0-Jan-2024', /date/],
  ['SENTON', /missing argument of SENTON/],
  ['FOO', /unknown search key FOO/],
  ['ALL $', /unknown search key/],
  ['0', /unknown search key/],
  ['LARGER x', /LARGER needs a number/],
  ['SMALLER', /missing argument/],
  ['UID abc', /UID needs a sequence set/],
  ['UID 0', /UID needs a sequence set/],
  ['HEADER', /missing argument of HEADER/],
  ['HEADER Subject', /missing argument of HEADER/],
  ['HEADER "" x', /field name/],
  ['HEADER "a:b" x', /field name/],
  ['OR SEEN', /missing search key/],
  ['NOT', /missing search key/],
  ['()', /empty/],
  ['KEYWORD "x"', /KEYWORD needs an atom/],
  ['SEEN "x"', /unexpected string/],
  ['MODSEQ x', /MODSEQ needs a number/],
  ['MODSEQ "/flags/\\\\seen" bogus 5', /entry type/],
  ['MODSEQ "/flags/\\\\seen" all', /missing argument of MODSEQ/],
  [`${'NOT '.repeat(33)}SEEN`, /too deeply/],
  [`${'('.repeat(40)}SEEN${')'.repeat(40)}`, /too deeply/],
  [`${'OR SEEN '.repeat(40)}SEEN`, /too deeply/],
  [`${'('.repeat(10000)}SEEN${')'.repeat(10000)}`, /too deeply/],
];
for (const [criteria, message, badCharset] of errors) {
  const shown = criteria.length > 60 ? `${criteria.slice(0, 60)}…` : criteria;
  test(`SEARCH ${JSON.stringify(shown)} is an error matching ${message}`, () => {
    const result = parseSearch(tokens(criteria));
    assert.ok('error' in result, 'expected an error');
    assert.match(result.error, message);
    assert.equal(result.badCharset === true, badCharset === true);
  });
}

test('nesting up to the limit is accepted', () => {
  assert.deepEqual(search(`${'NOT '.repeat(32)}SEEN`), [10, 11]);
  assert.deepEqual(search(`${'('.repeat(31)}SEEN${')'.repeat(31)}`), [10, 11]);
});

test('an atom with a section is not a search key', () => {
  const result = parseSearch([{ type: 'atom', value: 'BODY', section: [] }, { type: 'atom', value: 'x' }]);
  assert.ok('error' in result);
});

const needs: [string, { header: boolean; body: boolean; sentDate: boolean }][] = [
  ['SEEN UID 1:* LARGER 5', { header: false, body: false, sentDate: false }],
  ['BEFORE 1-Jan-2024', { header: false, body: false, sentDate: false }],
  ['FROM x', { header: true, body: false, sentDate: false }],
  ['HEADER X-A ""', { header: true, body: false, sentDate: false }],
  ['BODY x', { header: false, body: true, sentDate: false }],
  ['TEXT x', { header: true, body: true, sentDate: false }],
  ['SENTON 1-Feb-2024', { header: false, body: false, sentDate: true }],
  ['OR NOT SUBJECT a (SEEN (BODY b))', { header: true, body: true, sentDate: false }],
];
for (const [criteria, expected] of needs) {
  test(`${criteria} needs ${JSON.stringify(expected)}`, () => assert.deepEqual(searchNeeds(parse(criteria)), expected));
}

const modseq: [string, boolean][] = [
  ['MODSEQ 5', true],
  ['NOT MODSEQ 5', true],
  ['OR SEEN (DELETED MODSEQ 1)', true],
  ['SEEN', false],
  ['OR SEEN UID 1:*', false],
];
for (const [criteria, expected] of modseq) {
  test(`${criteria} uses MODSEQ: ${expected}`, () => assert.equal(usesModseq(parse(criteria)), expected));
}

test('a message without loaded parts matches no content key, and NOT of one matches', () => {
  const bare: SearchSubject = {
    seq: 1, uid: 1, flags: new Set(), recent: false, size: 1, internalDate: new Date(0), modseq: 1,
  };
  const ctx = { maxSeq: 1, maxUid: 1 };
  for (const criteria of ['FROM a', 'BODY a', 'TEXT a', 'SENTSINCE 1-Jan-1970', 'HEADER X ""']) {
    assert.equal(matches(parse(criteria), bare, ctx), false, criteria);
  }
  assert.equal(matches(parse('NOT FROM a'), bare, ctx), true);
  assert.equal(matches(parse('ON 1-Jan-1970'), bare, ctx), true);
});

test('the body is read once however many keys search it', () => {
  let reads = 0;
  const message: SearchSubject = {
    ...subject(mailbox[0] as Message, 1),
    body: () => {
      reads += 1;
      return 'quick brown fox';
    },
  };
  assert.equal(matches(parse('BODY quick BODY brown OR BODY x BODY fox'), message, { maxSeq: 4, maxUid: 20 }), true);
  assert.equal(reads, 1);
});

test('random token soup never throws', () => {
  const words = ['ALL', 'NOT', 'OR', 'FROM', 'HEADER', 'UID', '1:*', '*', 'BEFORE', '1-Feb-2024', 'LARGER', '5', 'MODSEQ', 'CHARSET', 'UTF-8', 'KEYWORD', 'x', '0', '$'];
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pick = (depth: number): Token => {
    const r = random(words.length + 3);
    if (r === words.length && depth < 3) return { type: 'list', items: Array.from({ length: random(4) }, () => pick(depth + 1)) };
    if (r === words.length + 1) return { type: 'string', value: Buffer.from([0xff, 0x41]), literal: true };
    return { type: 'atom', value: words[r % words.length] ?? 'ALL' };
  };
  const ctx = { maxSeq: 4, maxUid: 20 };
  for (let i = 0; i < 2000; i++) {
    const args = Array.from({ length: random(6) }, () => pick(0));
    const result = parseSearch(args);
    if ('key' in result) mailbox.forEach((m, j) => matches(result.key, subject(m, j + 1), ctx));
  }
});
