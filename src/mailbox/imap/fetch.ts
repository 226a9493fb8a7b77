// FETCH (RFC 3501 §6.4.5, §7.4.2; MODSEQ from RFC 7162): the data items a client asks for, read
// from its tokens, and the untagged FETCH response for one message. Pure; what a message's MIME
// structure says comes from mime.ts, string forms from wire.ts.
import { bodyStructure, envelope, type MimePart, parseMessage, type SectionSpec, type SectionText, sectionBytes } from './mime.ts';
import type { Token } from './types.ts';
import { astring, dateTime, literal } from './wire.ts';

/** The items without a section, named as in the response. BODY is the non-extensible BODYSTRUCTURE. */
export type AttributeName =
  | 'UID' | 'FLAGS' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY'
  | 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' | 'MODSEQ';

export interface ByteWindow {
  readonly start: number;
  readonly length: number;
}

export type FetchItem =
  | { readonly kind: AttributeName }
  /** BODY[section]<partial> or BODY.PEEK[section]<partial>. */
  | { readonly kind: 'BODY[section]'; readonly peek: boolean; readonly section: SectionSpec; readonly partial: ByteWindow | null };

export type FetchMemo = { envelope?: string; body?: string; bodystructure?: string };

export interface FetchSubject {
  readonly uid: number;
  readonly flags: readonly string[];
  readonly size: number;
  readonly internalDate: Date;
  readonly modseq: number;
  /** CRLF bytes: the whole message, or at least the header and its blank line when needsOf said 'header'. */
  readonly content: Buffer | null;
  /** A per-message cache of the computed ENVELOPE, BODY and BODYSTRUCTURE, filled and reused here. */
  readonly memo: FetchMemo;
}

const ATTRIBUTES: readonly AttributeName[] = [
  'UID', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT', 'MODSEQ',
];

const MACROS: Readonly<Record<string, readonly AttributeName[]>> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

const SECTION_TEXTS: readonly SectionText[] = ['HEADER', 'HEADER.FIELDS', 'HEADER.FIELDS.NOT', 'TEXT', 'MIME'];

// ---------------------------------------------------------------------------------------------
// Parsing the items

/** The items of `FETCH set items`: one atom (or macro), a list of them, or the list's items. */
export function parseFetchItems(arg: Token | readonly Token[]): FetchItem[] | { error: string } {
  const tokens = 'type' in arg ? (arg.type === 'list' ? arg.items : [arg]) : unwrapList(arg);
  if (tokens.length === 0) return { error: 'FETCH needs data items' };
  const items: FetchItem[] = [];
  for (const token of tokens) {
    const parsed = parseItem(token);
    if (typeof parsed === 'string') return { error: parsed };
    items.push(...parsed);
  }
  return items;
}

function unwrapList(tokens: readonly Token[]): readonly Token[] {
  const [only] = tokens;
  return tokens.length === 1 && only?.type === 'list' ? only.items : tokens;
}

/** One token's items, or an error text. */
function parseItem(token: Token): FetchItem[] | string {
  if (token.type !== 'atom') return 'FETCH data items are atoms';
  const name = token.value.toUpperCase();
  if (name.startsWith('BINARY')) return 'BINARY is not supported';
  if (token.section !== undefined) return sectionItem(name, token.section, token.partial);
  if (token.partial !== undefined) return `${name} takes no <partial>`;
  const macro = MACROS[name];
  if (macro) return macro.map((kind) => ({ kind }));
  const attribute = ATTRIBUTES.find((known) => known === name);
  if (attribute) return [{ kind: attribute }];
  return name === 'BODY.PEEK' ? 'BODY.PEEK needs a [section]' : `unknown FETCH data item ${token.value}`;
}

function sectionItem(name: string, tokens: readonly Token[], partial: ByteWindow | undefined): FetchItem[] | string {
  if (name !== 'BODY' && name !== 'BODY.PEEK') return `${name} takes no [section]`;
  const section = parseSection(tokens);
  if (typeof section === 'string') return section;
  return [{ kind: 'BODY[section]', peek: name === 'BODY.PEEK', section, partial: partial ?? null }];
}

/** `[]`, `[1.2]`, `[1.2.MIME]`, `[HEADER.FIELDS (A B)]`, … as the reader hands them over. */
export function parseSection(tokens: readonly Token[]): SectionSpec | string {
  const [head, ...rest] = tokens;
  if (head === undefined) return { part: [], text: null, fields: [] };
  if (head.type !== 'atom' || head.section !== undefined) return 'bad section';
  const pieces = head.value.split('.');
  const part: number[] = [];
  while (pieces.length > 0 && /^[1-9][0-9]{0,8}$/.test(pieces[0]!)) part.push(Number(pieces.shift()));
  if (pieces.length === 0) return rest.length === 0 ? { part, text: null, fields: [] } : 'bad section';
  const text = SECTION_TEXTS.find((known) => known === pieces.join('.').toUpperCase());
  if (text === undefined) return `bad section ${head.value}`;
  if (text === 'MIME' && part.length === 0) return 'MIME needs a part number';
  if (text !== 'HEADER.FIELDS' && text !== 'HEADER.FIELDS.NOT') return rest.length === 0 ? { part, text, fields: [] } : 'bad section';
  const fields = fieldNames(rest);
  return fields ? { part, text, fields } : `${text} needs a list of field names`;
}

function fieldNames(rest: readonly Token[]): string[] | null {
  const [names, ...more] = rest;
  if (names?.type !== 'list' || names.items.length === 0 || more.length > 0) return null;
  const fields: string[] = [];
  for (const name of names.items) {
    if (name.type === 'list' || (name.type === 'atom' && name.section !== undefined)) return null;
    fields.push(name.type === 'atom' ? name.value : name.value.toString('latin1'));
  }
  return fields;
}

// ---------------------------------------------------------------------------------------------
// What the items need

/** BODY[…] without PEEK, RFC822 and RFC822.TEXT set \Seen. */
export function setsSeen(items: readonly FetchItem[]): boolean {
  return items.some((item) => (item.kind === 'BODY[section]' ? !item.peek : item.kind === 'RFC822' || item.kind === 'RFC822.TEXT'));
}

/** How much of the message the items read; a memo that already holds an answer spares the load. */
export function needsOf(items: readonly FetchItem[], memo: FetchMemo = {}): 'none' | 'header' | 'full' {
  let need: 'none' | 'header' = 'none';
  for (const item of items) {
    const itemNeed = needOf(item, memo);
    if (itemNeed === 'full') return 'full';
    if (itemNeed === 'header') need = 'header';
  }
  return need;
}

function needOf(item: FetchItem, memo: FetchMemo): 'none' | 'header' | 'full' {
  switch (item.kind) {
    case 'BODY[section]': return isTopLevelHeader(item.section) ? 'header' : 'full';
    case 'ENVELOPE': return memo.envelope === undefined ? 'header' : 'none';
    case 'RFC822.HEADER': return 'header';
    case 'BODY': return memo.body === undefined ? 'full' : 'none';
    case 'BODYSTRUCTURE': return memo.bodystructure === undefined ? 'full' : 'none';
    case 'RFC822': case 'RFC822.TEXT': return 'full';
    default: return 'none';
  }
}

function isTopLevelHeader(section: SectionSpec): boolean {
  return section.part.length === 0 && (section.text === 'HEADER' || section.text === 'HEADER.FIELDS' || section.text === 'HEADER.FIELDS.NOT');
}

// ---------------------------------------------------------------------------------------------
// The response

/** The message's bytes, parsed at most once per response. */
class MessageView {
  readonly raw: Buffer;
  #root: MimePart | undefined;

  constructor(content: Buffer | null) {
    this.raw = content ?? Buffer.alloc(0);
  }

  get root(): MimePart {
    this.#root ??= parseMessage(this.raw);
    return this.#root;
  }

  section(section: SectionSpec): Buffer {
    // BODY[] is the whole message: no need to parse it.
    if (section.part.length === 0 && section.text === null) return this.raw;
    return sectionBytes(this.raw, this.root, section);
  }
}

const HEADER: SectionSpec = { part: [], text: 'HEADER', fields: [] };
const TEXT: SectionSpec = { part: [], text: 'TEXT', fields: [] };

/** `* seq FETCH (…)` without the final CRLF; items in the order asked, each name once. */
export function fetchResponse(seq: number, items: readonly FetchItem[], subject: FetchSubject): string {
  const view = new MessageView(subject.content);
  const answered = new Set<string>();
  const parts: string[] = [];
  for (const item of items) {
    const name = responseName(item);
    if (answered.has(name)) continue;
    answered.add(name);
    parts.push(`${name} ${responseValue(item, subject, view)}`);
  }
  return `* ${seq} FETCH (${parts.join(' ')})`;
}

/** BODY.PEEK answers as BODY; a partial answers with its start only. */
function responseName(item: FetchItem): string {
  if (item.kind !== 'BODY[section]') return item.kind;
  return `BODY[${sectionLabel(item.section)}]${item.partial ? `<${item.partial.start}>` : ''}`;
}

export function sectionLabel(section: SectionSpec): string {
  const label = [...section.part.map(String), ...(section.text ? [section.text] : [])].join('.');
  return section.fields.length > 0 ? `${label} (${section.fields.map(astring).join(' ')})` : label;
}

function responseValue(item: FetchItem, subject: FetchSubject, view: MessageView): string {
  const memo = subject.memo;
  switch (item.kind) {
    case 'UID': return String(subject.uid);
    case 'FLAGS': return `(${subject.flags.join(' ')})`;
    case 'INTERNALDATE': return dateTime(subject.internalDate);
    case 'RFC822.SIZE': return String(subject.size);
    case 'MODSEQ': return `(${subject.modseq})`;
    case 'ENVELOPE': return (memo.envelope ??= envelope(view.raw));
    case 'BODY': return (memo.body ??= bodyStructure(view.raw, view.root, false));
    case 'BODYSTRUCTURE': return (memo.bodystructure ??= bodyStructure(view.raw, view.root, true));
    case 'RFC822': return literal(view.raw);
    case 'RFC822.HEADER': return literal(view.section(HEADER));
    case 'RFC822.TEXT': return literal(view.section(TEXT));
    case 'BODY[section]': return windowed(view.section(item.section), item.partial);
  }
}

/** RFC 3501: a start beyond the end gives an empty string. */
function windowed(bytes: Buffer, partial: ByteWindow | null): string {
  if (partial === null) return literal(bytes);
  if (partial.start >= bytes.length) return '""';
  return literal(bytes.subarray(partial.start, partial.start + partial.length));
}
