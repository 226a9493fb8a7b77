// SEARCH criteria (RFC 3501 §6.4.4, plus CONDSTORE's MODSEQ from RFC 7162 §3.1.5): turning the command's
// tokens into a key tree, telling what message content the tree needs, and testing one message against it.
// Pure: the caller loads messages and supplies their parts through SearchSubject.
import { MONTHS } from './wire.ts';
import { inSet, parseSequenceSet, type SequenceSet } from './sequence.ts';
import type { Token } from './types.ts';

/** A parsed search criterion. Several keys in a row, and a parenthesised list, are an `and`. */
export type SearchKey =
  | { readonly kind: 'all' }
  | { readonly kind: 'and'; readonly keys: readonly SearchKey[] }
  | { readonly kind: 'or'; readonly left: SearchKey; readonly right: SearchKey }
  | { readonly kind: 'not'; readonly key: SearchKey }
  /** A system flag or keyword, wanted present (`set`) or absent. */
  | { readonly kind: 'flag'; readonly flag: string; readonly set: boolean }
  | { readonly kind: 'recent' }
  /** A substring of a header field's values (FROM, TO, CC, BCC, SUBJECT, HEADER). */
  | { readonly kind: 'header'; readonly field: string; readonly value: string }
  | { readonly kind: 'body' | 'text'; readonly value: string }
  /** `day` counts days since 1970-01-01; `sent` for the Date: header, else the internal date. */
  | { readonly kind: 'date'; readonly sent: boolean; readonly op: 'before' | 'on' | 'since'; readonly day: number }
  | { readonly kind: 'size'; readonly op: 'larger' | 'smaller'; readonly size: number }
  | { readonly kind: 'seq' | 'uid'; readonly set: SequenceSet }
  /** Messages whose mod-sequence is at least `modseq`. */
  | { readonly kind: 'modseq'; readonly modseq: number };

export type SearchParse = { key: SearchKey; charset: string | null } | { error: string; badCharset?: boolean };

/** What a message must offer for a key to be evaluated. */
export interface SearchNeeds {
  header: boolean;
  body: boolean;
  sentDate: boolean;
}

/** One message as the evaluator sees it. The optional parts are needed only as searchNeeds says. */
export interface SearchSubject {
  seq: number;
  uid: number;
  /** System flags (`\Seen` …) and keywords. */
  flags: ReadonlySet<string>;
  recent: boolean;
  size: number;
  internalDate: Date;
  modseq: number;
  /** The decoded values of every occurrence of the field (name matched case-insensitively); [] when absent. */
  header?: (name: string) => string[];
  /** The decoded body text. */
  body?: () => string;
  /** The decoded header and body text. */
  text?: () => string;
  /** The Date: header's date, null when absent or unparsable. */
  sentDate?: () => Date | null;
}

export interface SearchContext {
  /** The highest sequence number (the message count); `*` in a sequence set. */
  maxSeq: number;
  /** The highest UID in use; `*` in a UID set. */
  maxUid: number;
}

/** How deep NOT, OR and parenthesised lists may nest. */
export const MAX_SEARCH_DEPTH = 32;

const CHARSETS = new Set(['US-ASCII', 'UTF-8']);
const DAY_MS = 86_400_000;

class SearchError extends Error {}

// ——— parsing ———

/** The criteria of SEARCH (after the command name, and after `RETURN (…)` if the caller supports ESEARCH). */
export function parseSearch(args: readonly Token[]): SearchParse {
  const reader = new Reader(args);
  let charset: string | null = null;
  try {
    if (reader.peekKeyword() === 'CHARSET') {
      reader.next();
      charset = reader.astring('CHARSET').toUpperCase();
      if (!CHARSETS.has(charset)) return { error: `unsupported charset ${charset}`, badCharset: true };
    }
    const keys: SearchKey[] = [];
    do keys.push(parseKey(reader, 0));
    while (!reader.done());
    return { key: andOf(keys), charset };
  } catch (err) {
    if (err instanceof SearchError) return { error: err.message };
    throw err;
  }
}

/** Reads tokens one at a time; each accessor throws SearchError with a short text on a mismatch. */
class Reader {
  private pos = 0;
  constructor(private readonly tokens: readonly Token[]) {}

  done(): boolean {
    return this.pos >= this.tokens.length;
  }

  next(what = 'search key'): Token {
    const token = this.tokens[this.pos];
    if (token === undefined) throw new SearchError(`missing ${what}`);
    this.pos += 1;
    return token;
  }

  /** The next token's text in upper case when it is a plain atom, else null; does not advance. */
  peekKeyword(): string | null {
    const token = this.tokens[this.pos];
    return token !== undefined && isPlainAtom(token) ? token.value.toUpperCase() : null;
  }

  /** An atom or a string (quoted or literal), decoded as UTF-8. */
  astring(key: string): string {
    const token = this.next(`argument of ${key}`);
    if (token.type === 'string') return token.value.toString('utf8');
    if (isPlainAtom(token)) return token.value;
    throw new SearchError(`${key} needs a string`);
  }

  atom(key: string): string {
    const token = this.next(`argument of ${key}`);
    if (!isPlainAtom(token)) throw new SearchError(`${key} needs an atom`);
    return token.value;
  }

  number(key: string): number {
    const text = this.atom(key);
    if (!/^[0-9]{1,20}$/.test(text)) throw new SearchError(`${key} needs a number`);
    return Number(text);
  }

  /** An RFC 3501 date (`1-Feb-1994`), bare or quoted, as days since the epoch. */
  date(key: string): number {
    const token = this.next(`argument of ${key}`);
    const text = token.type === 'string' ? token.value.toString('latin1') : isPlainAtom(token) ? token.value : '';
    const day = parseDay(text);
    if (day === null) throw new SearchError(`${key} needs a date like 1-Feb-1994`);
    return day;
  }
}

function isPlainAtom(token: Token): token is { type: 'atom'; value: string } {
  return token.type === 'atom' && token.section === undefined && token.partial === undefined;
}

/** `d-Mon-yyyy` to days since 1970-01-01, null when malformed or not a real day. */
export function parseDay(text: string): number | null {
  const m = /^([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})$/.exec(text);
  if (m === null) return null;
  const month = MONTHS.findIndex((name) => name.toLowerCase() === (m[2] ?? '').toLowerCase());
  const day = Number(m[1]);
  const year = Number(m[3]);
  if (month < 0 || day < 1) return null;
  const date = new Date(Date.UTC(year, month, day));
  if (date.getUTCDate() !== day || date.getUTCMonth() !== month) return null;
  return Math.floor(date.getTime() / DAY_MS);
}

function andOf(keys: SearchKey[]): SearchKey {
  return keys.length === 1 && keys[0] !== undefined ? keys[0] : { kind: 'and', keys };
}

type KeyParser = (reader: Reader, depth: number) => SearchKey;

const flag = (name: string, set: boolean): KeyParser => () => ({ kind: 'flag', flag: name, set });
const header = (field: string, key: string): KeyParser => (r) => ({ kind: 'header', field, value: r.astring(key) });
const date = (sent: boolean, op: 'before' | 'on' | 'since', key: string): KeyParser => (r) => ({ kind: 'date', sent, op, day: r.date(key) });
const size = (op: 'larger' | 'smaller', key: string): KeyParser => (r) => ({ kind: 'size', op, size: r.number(key) });
const RECENT: SearchKey = { kind: 'recent' };

const KEYS: Record<string, KeyParser> = {
  ALL: () => ({ kind: 'all' }),
  ANSWERED: flag('\\Answered', true),
  DELETED: flag('\\Deleted', true),
  DRAFT: flag('\\Draft', true),
  FLAGGED: flag('\\Flagged', true),
  SEEN: flag('\\Seen', true),
  UNANSWERED: flag('\\Answered', false),
  UNDELETED: flag('\\Deleted', false),
  UNDRAFT: flag('\\Draft', false),
  UNFLAGGED: flag('\\Flagged', false),
  UNSEEN: flag('\\Seen', false),
  KEYWORD: (r) => ({ kind: 'flag', flag: r.atom('KEYWORD'), set: true }),
  UNKEYWORD: (r) => ({ kind: 'flag', flag: r.atom('UNKEYWORD'), set: false }),
  RECENT: () => RECENT,
  NEW: () => ({ kind: 'and', keys: [RECENT, { kind: 'flag', flag: '\\Seen', set: false }] }),
  OLD: () => ({ kind: 'not', key: RECENT }),
  FROM: header('From', 'FROM'),
  TO: header('To', 'TO'),
  CC: header('Cc', 'CC'),
  BCC: header('Bcc', 'BCC'),
  SUBJECT: header('Subject', 'SUBJECT'),
  HEADER: parseHeader,
  BODY: (r) => ({ kind: 'body', value: r.astring('BODY') }),
  TEXT: (r) => ({ kind: 'text', value: r.astring('TEXT') }),
  BEFORE: date(false, 'before', 'BEFORE'),
  ON: date(false, 'on', 'ON'),
  SINCE: date(false, 'since', 'SINCE'),
  SENTBEFORE: date(true, 'before', 'SENTBEFORE'),
  SENTON: date(true, 'on', 'SENTON'),
  SENTSINCE: date(true, 'since', 'SENTSINCE'),
  LARGER: size('larger', 'LARGER'),
  SMALLER: size('smaller', 'SMALLER'),
  UID: parseUid,
  MODSEQ: parseModseq,
  NOT: (r, depth) => ({ kind: 'not', key: parseKey(r, depth + 1) }),
  OR: (r, depth) => ({ kind: 'or', left: parseKey(r, depth + 1), right: parseKey(r, depth + 1) }),
};

/** One search key (with its arguments) at the reader's position. */
function parseKey(reader: Reader, depth: number): SearchKey {
  if (depth > MAX_SEARCH_DEPTH) throw new SearchError('search criteria nested too deeply');
  const token = reader.next();
  if (token.type === 'list') return parseList(token.items, depth + 1);
  if (!isPlainAtom(token)) throw new SearchError('unexpected string where a search key was expected');
  const parser = Object.hasOwn(KEYS, token.value.toUpperCase()) ? KEYS[token.value.toUpperCase()] : undefined;
  if (parser !== undefined) return parser(reader, depth);
  const set = parseSequenceSet(token.value);
  if (set === null) throw new SearchError(`unknown search key ${token.value.slice(0, 40)}`);
  return { kind: 'seq', set };
}

function parseList(items: readonly Token[], depth: number): SearchKey {
  if (depth > MAX_SEARCH_DEPTH) throw new SearchError('search criteria nested too deeply');
  if (items.length === 0) throw new SearchError('empty parenthesised search key');
  const reader = new Reader(items);
  const keys: SearchKey[] = [];
  while (!reader.done()) keys.push(parseKey(reader, depth));
  return andOf(keys);
}

function parseHeader(reader: Reader): SearchKey {
  const field = reader.astring('HEADER');
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(field)) throw new SearchError('HEADER needs a field name');
  return { kind: 'header', field, value: reader.astring('HEADER') };
}

function parseUid(reader: Reader): SearchKey {
  const set = parseSequenceSet(reader.atom('UID'));
  if (set === null) throw new SearchError('UID needs a sequence set');
  return { kind: 'uid', set };
}

/** `MODSEQ n`, or `MODSEQ "/flags/\\seen" all n`: the entry is ignored (one mod-sequence per message). */
function parseModseq(reader: Reader): SearchKey {
  const first = reader.next('argument of MODSEQ');
  if (first.type === 'string') {
    const type = reader.atom('MODSEQ').toLowerCase();
    if (type !== 'priv' && type !== 'shared' && type !== 'all') throw new SearchError('MODSEQ entry type must be priv, shared or all');
    return { kind: 'modseq', modseq: reader.number('MODSEQ') };
  }
  if (!isPlainAtom(first) || !/^[0-9]{1,20}$/.test(first.value)) throw new SearchError('MODSEQ needs a number');
  return { kind: 'modseq', modseq: Number(first.value) };
}

// ——— what a key needs ———

/** Which message parts evaluating the key will ask for (TEXT asks for both header and body). */
export function searchNeeds(key: SearchKey): SearchNeeds {
  const needs: SearchNeeds = { header: false, body: false, sentDate: false };
  visit(key, (k) => {
    if (k.kind === 'header' || k.kind === 'text') needs.header = true;
    if (k.kind === 'body' || k.kind === 'text') needs.body = true;
    if (k.kind === 'date' && k.sent) needs.sentDate = true;
  });
  return needs;
}

/** Whether the key has a MODSEQ criterion anywhere (CONDSTORE then appends `(MODSEQ n)` to SEARCH). */
export function usesModseq(key: SearchKey): boolean {
  let found = false;
  visit(key, (k) => {
    if (k.kind === 'modseq') found = true;
  });
  return found;
}

function visit(key: SearchKey, fn: (key: SearchKey) => void): void {
  fn(key);
  if (key.kind === 'and') for (const k of key.keys) visit(k, fn);
  else if (key.kind === 'or') {
    visit(key.left, fn);
    visit(key.right, fn);
  } else if (key.kind === 'not') visit(key.key, fn);
}

// ——— evaluation ———

/** Whether the message satisfies the key. Parts the subject lacks make their keys false. */
export function matches(key: SearchKey, subject: SearchSubject, ctx: SearchContext): boolean {
  return new Evaluation(subject, ctx).test(key);
}

/** One message's evaluation; lower-cased text is computed once however many keys read it. */
class Evaluation {
  private readonly headers = new Map<string, string[]>();
  private bodyText: string | undefined;
  private wholeText: string | undefined;

  constructor(
    private readonly subject: SearchSubject,
    private readonly ctx: SearchContext,
  ) {}

  test(key: SearchKey): boolean {
    const s = this.subject;
    switch (key.kind) {
      case 'all': return true;
      case 'and': return key.keys.every((k) => this.test(k));
      case 'or': return this.test(key.left) || this.test(key.right);
      case 'not': return !this.test(key.key);
      case 'flag': return hasFlag(s.flags, key.flag) === key.set;
      case 'recent': return s.recent;
      case 'header': return this.headerValues(key.field).some((v) => v.includes(key.value.toLowerCase()));
      case 'body': return this.body()?.includes(key.value.toLowerCase()) ?? false;
      case 'text': return this.text()?.includes(key.value.toLowerCase()) ?? false;
      case 'date': return compareDay(key.op, dayOf(key.sent ? (s.sentDate?.() ?? null) : s.internalDate), key.day);
      case 'size': return key.op === 'larger' ? s.size > key.size : s.size < key.size;
      case 'seq': return inSet(key.set, s.seq, this.ctx.maxSeq);
      case 'uid': return inSet(key.set, s.uid, this.ctx.maxUid);
      case 'modseq': return s.modseq >= key.modseq;
    }
  }

  private headerValues(field: string): string[] {
    const name = field.toLowerCase();
    let values = this.headers.get(name);
    if (values === undefined) {
      values = (this.subject.header?.(field) ?? []).map((v) => v.toLowerCase());
      this.headers.set(name, values);
    }
    return values;
  }

  private body(): string | undefined {
    this.bodyText ??= this.subject.body?.().toLowerCase();
    return this.bodyText;
  }

  private text(): string | undefined {
    this.wholeText ??= this.subject.text?.().toLowerCase();
    return this.wholeText;
  }
}

/** Flags compare case-insensitively (a client may write `\SEEN` or `$junk`). */
function hasFlag(flags: ReadonlySet<string>, flag: string): boolean {
  if (flags.has(flag)) return true;
  const wanted = flag.toLowerCase();
  for (const f of flags) if (f.toLowerCase() === wanted) return true;
  return false;
}

/** The UTC calendar day of a date, null when there is none or it is invalid. */
function dayOf(date: Date | null): number | null {
  if (date === null) return null;
  const ms = date.getTime();
  return Number.isNaN(ms) ? null : Math.floor(ms / DAY_MS);
}

function compareDay(op: 'before' | 'on' | 'since', day: number | null, wanted: number): boolean {
  if (day === null) return false;
  if (op === 'before') return day < wanted;
  if (op === 'on') return day === wanted;
  return day >= wanted;
}
