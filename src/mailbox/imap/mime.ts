// The MIME side of IMAP: the part tree of a stored message (RFC 5322, RFC 2045/2046) and what
// FETCH and SEARCH read from it — ENVELOPE, BODY/BODYSTRUCTURE (RFC 3501 §7.4.2), BODY[section]
// bytes, decoded header values, the searchable text and the sent date. Pure functions over the
// message as an IMAP client sees it (CRLF line ends; bare LF tolerated). Header values are kept as
// latin1 byte strings (one char per byte) so 8-bit bytes reach the wire unchanged. Malformed input
// never throws: nesting and part count are capped, a missing separator or final boundary is
// tolerated.
import libmime from 'libmime';
import { istring, MONTHS } from './wire.ts';

// ---------------------------------------------------------------------------------------------
// The part tree

export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** One header field: name as sent, value unfolded and trimmed (latin1 byte string), its bytes. */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
  /** Offset of the field's first byte. */
  readonly start: number;
  /** Offset after the field's last line end (continuation lines included). */
  readonly end: number;
}

/** A parameter as sent: name (case kept) and value (quotes and escapes removed, nothing decoded). */
export type Param = readonly [name: string, value: string];

export interface ContentType {
  /** Lower case. */
  readonly type: string;
  /** Lower case. */
  readonly subtype: string;
  readonly params: readonly Param[];
}

export interface Disposition {
  /** Lower case. */
  readonly type: string;
  readonly params: readonly Param[];
}

/** A message (the root, or one encapsulated in message/rfc822) or a body part of a multipart. */
export interface MimePart {
  /** The header fields and the blank line that ends them (empty when the part has no header). */
  readonly header: ByteRange;
  readonly body: ByteRange;
  readonly fields: readonly HeaderField[];
  /** The effective type: the RFC 2045 default when absent or invalid; see parseMessage for the rest. */
  readonly contentType: ContentType;
  readonly id: string | null;
  readonly description: string | null;
  /** Upper case; 7BIT by default. */
  readonly encoding: string;
  readonly disposition: Disposition | null;
  readonly language: readonly string[] | null;
  readonly location: string | null;
  readonly md5: string | null;
  /** Body size in octets. */
  readonly size: number;
  /** Body lines (a last line without line end counts). */
  readonly lines: number;
  /** The body parts of a multipart (at least one); empty otherwise. */
  readonly children: readonly MimePart[];
  /** The encapsulated message of a message/rfc822 (or message/global) part. */
  readonly message: MimePart | null;
}

export const MAX_DEPTH = 32;
export const MAX_PARTS = 5000;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');

const TEXT_PLAIN: ContentType = { type: 'text', subtype: 'plain', params: [['charset', 'US-ASCII']] };
const MESSAGE_RFC822: ContentType = { type: 'message', subtype: 'rfc822', params: [] };
const OCTET_STREAM: ContentType = { type: 'application', subtype: 'octet-stream', params: [] };

interface ParseState {
  parts: number;
}

/**
 * The part tree of a whole message. A multipart without a boundary parameter is read as one
 * text/plain part; one whose boundary never occurs gets a single empty text/plain part (IMAP
 * needs at least one). A multipart or message/rfc822 beyond MAX_DEPTH, or met once MAX_PARTS
 * parts exist, is not opened and reads as application/octet-stream.
 */
export function parseMessage(raw: Buffer): MimePart {
  return parsePart(raw, { start: 0, end: raw.length }, TEXT_PLAIN, 0, { parts: 0 });
}

function parsePart(raw: Buffer, range: ByteRange, fallback: ContentType, depth: number, state: ParseState): MimePart {
  state.parts++;
  const { header, body } = splitHeader(raw, range);
  const fields = readFields(raw, header);
  let contentType = contentTypeOf(fields, fallback);
  let children: MimePart[] = [];
  let message: MimePart | null = null;
  const openable = depth < MAX_DEPTH && state.parts < MAX_PARTS;
  if (contentType.type === 'multipart') {
    const boundary = paramValue(contentType.params, 'boundary');
    if (!boundary) contentType = TEXT_PLAIN;
    else if (!openable) contentType = OCTET_STREAM;
    else children = parseChildren(raw, body, boundary, childDefault(contentType), depth, state);
  } else if (isEncapsulated(contentType)) {
    if (openable) message = parsePart(raw, body, TEXT_PLAIN, depth + 1, state);
    else contentType = OCTET_STREAM;
  }
  return { header, body, fields, contentType, ...describe(fields), size: body.end - body.start, lines: countLines(raw, body), children, message };
}

function childDefault(multipart: ContentType): ContentType {
  return multipart.subtype === 'digest' ? MESSAGE_RFC822 : TEXT_PLAIN;
}

function isEncapsulated(type: ContentType): boolean {
  return type.type === 'message' && (type.subtype === 'rfc822' || type.subtype === 'global');
}

function parseChildren(raw: Buffer, body: ByteRange, boundary: string, fallback: ContentType, depth: number, state: ParseState): MimePart[] {
  const children: MimePart[] = [];
  for (const range of bodyPartRanges(raw, body, boundary)) {
    if (state.parts >= MAX_PARTS) break;
    children.push(parsePart(raw, range, fallback, depth + 1, state));
  }
  return children.length > 0 ? children : [emptyPart(body.end)];
}

/** The stand-in body part of a multipart in which no boundary delimiter occurs. */
function emptyPart(at: number): MimePart {
  const nowhere = { start: at, end: at };
  return {
    header: nowhere, body: nowhere, fields: [], contentType: TEXT_PLAIN, id: null, description: null, encoding: '7BIT',
    disposition: null, language: null, location: null, md5: null, size: 0, lines: 0, children: [], message: null,
  };
}

/** The other Content-* fields of a part. */
function describe(fields: readonly HeaderField[]): Pick<MimePart, 'id' | 'description' | 'encoding' | 'disposition' | 'language' | 'location' | 'md5'> {
  const encoding = asciiUpper(trimBlanks(stripComments(fieldValue(fields, 'content-transfer-encoding') ?? '')));
  return {
    id: fieldValue(fields, 'content-id'),
    description: fieldValue(fields, 'content-description'),
    encoding: encoding === '' ? '7BIT' : encoding,
    disposition: dispositionOf(fieldValue(fields, 'content-disposition')),
    language: languagesOf(fieldValue(fields, 'content-language')),
    location: fieldValue(fields, 'content-location'),
    md5: fieldValue(fields, 'content-md5'),
  };
}

// ---------------------------------------------------------------------------------------------
// Lines, the header and its fields

/** Offset after the line that starts at `pos` (its LF included), or `end`. */
function lineEnd(raw: Buffer, pos: number, end: number): number {
  const lf = raw.indexOf(LF, pos);
  return lf < 0 || lf >= end ? end : lf + 1;
}

function isBlankLine(raw: Buffer, start: number, stop: number): boolean {
  const length = stop - start;
  return (length === 1 && raw[start] === LF) || (length === 2 && raw[start] === CR && raw[start + 1] === LF);
}

/** Header up to and including the first blank line; without one, all of it is header. */
function splitHeader(raw: Buffer, range: ByteRange): { header: ByteRange; body: ByteRange } {
  for (let pos = range.start; pos < range.end; ) {
    const next = lineEnd(raw, pos, range.end);
    if (isBlankLine(raw, pos, next)) return { header: { start: range.start, end: next }, body: { start: next, end: range.end } };
    pos = next;
  }
  return { header: range, body: { start: range.end, end: range.end } };
}

function countLines(raw: Buffer, range: ByteRange): number {
  let lines = 0;
  for (let lf = raw.indexOf(LF, range.start); lf >= 0 && lf < range.end; lf = raw.indexOf(LF, lf + 1)) lines++;
  if (range.end > range.start && raw[range.end - 1] !== LF) lines++;
  return lines;
}

interface FieldSpan {
  name: string;
  valueStart: number;
  start: number;
  end: number;
}

/** The fields of a header; lines that are neither a field nor a continuation are skipped. */
function readFields(raw: Buffer, header: ByteRange): HeaderField[] {
  const spans: FieldSpan[] = [];
  let current: FieldSpan | null = null;
  for (let pos = header.start; pos < header.end; ) {
    const next = lineEnd(raw, pos, header.end);
    if (isBlankLine(raw, pos, next)) break;
    const first = raw[pos];
    if (first === SP || first === HT) {
      if (current) current.end = next;
    } else {
      current = fieldStart(raw, pos, next);
      if (current) spans.push(current);
    }
    pos = next;
  }
  return spans.map((span) => ({ name: span.name, value: unfold(raw.toString('latin1', span.valueStart, span.end)), start: span.start, end: span.end }));
}

function fieldStart(raw: Buffer, pos: number, next: number): FieldSpan | null {
  const colon = raw.indexOf(0x3a, pos);
  if (colon < 0 || colon >= next) return null;
  const name = raw.toString('latin1', pos, colon).replace(/[ \t]+$/, '');
  return /^[\x21-\x39\x3b-\x7e]+$/.test(name) ? { name, valueStart: colon + 1, start: pos, end: next } : null;
}

/** CRLF + WSP → the WSP, then surrounding whitespace trimmed. */
function unfold(text: string): string {
  return text.replace(/\r?\n(?=[ \t])/g, '').replace(/^[ \t]+/, '').replace(/[ \t\r\n]+$/, '');
}

function fieldValue(fields: readonly HeaderField[], lowerName: string): string | null {
  return fields.find((field) => isNamed(field, lowerName))?.value ?? null;
}

function isNamed(field: HeaderField, lowerName: string): boolean {
  return field.name.length === lowerName.length && asciiLower(field.name) === lowerName;
}

function topFields(raw: Buffer): HeaderField[] {
  return readFields(raw, splitHeader(raw, { start: 0, end: raw.length }).header);
}

/** Blanks only: String.prototype.trim would also take byte 0xA0 off a latin1 byte string. */
function trimBlanks(text: string): string {
  return text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (run) => run.toUpperCase());
}

// ---------------------------------------------------------------------------------------------
// Content-Type, Content-Disposition, Content-Language (RFC 2045 §5, RFC 2183, RFC 3282)

/** The value split on ";" outside quoted strings, comments removed. */
function splitParams(value: string): string[] {
  const segments: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') {
      const end = quotedEnd(value, i);
      current += value.slice(i, end);
      i = end - 1;
    } else if (c === '(') {
      i = commentEnd(value, i) - 1;
      current += ' ';
    } else if (c === ';') {
      segments.push(current);
      current = '';
    } else current += c;
  }
  segments.push(current);
  return segments;
}

/** Offset after the quoted string that opens at `start` (or the end of the text). */
function quotedEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

/** Offset after the (possibly nested) comment that opens at `start` (or the end of the text). */
function commentEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i + 1;
  }
  return text.length;
}

function stripComments(value: string): string {
  return splitParams(value).join(';');
}

/** A quoted string's content (escapes removed), or the text trimmed. */
function unquote(text: string): string {
  const trimmed = trimBlanks(text);
  if (!trimmed.startsWith('"')) return trimmed;
  const end = quotedEnd(trimmed, 0);
  const inner = trimmed.slice(1, trimmed[end - 1] === '"' && end > 1 ? end - 1 : end);
  return inner.replace(/\\(.)/gs, '$1');
}

function paramsOf(segments: readonly string[]): Param[] {
  const params: Param[] = [];
  for (const segment of segments) {
    const eq = segment.indexOf('=');
    const name = eq > 0 ? trimBlanks(segment.slice(0, eq)) : '';
    if (name !== '') params.push([name, unquote(segment.slice(eq + 1))]);
  }
  return params;
}

function paramValue(params: readonly Param[], lowerName: string): string | null {
  return params.find(([name]) => asciiLower(name) === lowerName)?.[1] ?? null;
}

const TOKEN = /^[^\x00-\x20()<>@,;:\\"/[\]?=\x7f-\xff]+$/;

/** text/* without a charset gets charset=US-ASCII (RFC 2046 §4.1.2). */
function contentTypeOf(fields: readonly HeaderField[], fallback: ContentType): ContentType {
  const value = fieldValue(fields, 'content-type');
  if (value === null) return fallback;
  const [media = '', ...rest] = splitParams(value);
  const [type = '', subtype = '', extra] = media.split('/').map((piece) => asciiLower(trimBlanks(piece)));
  if (!TOKEN.test(type) || !TOKEN.test(subtype) || extra !== undefined) return TEXT_PLAIN;
  const params = paramsOf(rest);
  if (type === 'text' && paramValue(params, 'charset') === null) params.push(['charset', 'US-ASCII']);
  return { type, subtype, params };
}

function dispositionOf(value: string | null): Disposition | null {
  if (value === null) return null;
  const [type = '', ...rest] = splitParams(value);
  const name = asciiLower(trimBlanks(type));
  return name === '' ? null : { type: name, params: paramsOf(rest) };
}

function languagesOf(value: string | null): string[] | null {
  if (value === null) return null;
  const tags = stripComments(value).split(',').map(trimBlanks).filter((tag) => tag !== '');
  return tags.length > 0 ? tags : null;
}

// ---------------------------------------------------------------------------------------------
// Multipart bodies (RFC 2046 §5.1.1)

interface Delimiter {
  /** Offset after the delimiter line. */
  readonly next: number;
  readonly close: boolean;
}

/** The body parts between boundary delimiters; preamble and epilogue left out, a missing close tolerated. */
function bodyPartRanges(raw: Buffer, body: ByteRange, boundary: string): ByteRange[] {
  const marker = Buffer.from(`--${boundary}`, 'latin1');
  const scope = raw.subarray(0, body.end);
  const ranges: ByteRange[] = [];
  let partStart = -1;
  for (let hit = scope.indexOf(marker, body.start); hit >= 0; hit = scope.indexOf(marker, hit + 1)) {
    const delimiter = delimiterAt(scope, hit, marker.length, body.start);
    if (!delimiter) continue;
    if (partStart >= 0) ranges.push({ start: partStart, end: Math.max(partStart, lineBreakBefore(scope, hit, body.start)) });
    if (delimiter.close) return ranges;
    partStart = delimiter.next;
  }
  if (partStart >= 0) ranges.push({ start: partStart, end: body.end });
  return ranges;
}

/** A delimiter line: at a line start, "--" boundary, "--" if it closes, then only blanks. */
function delimiterAt(scope: Buffer, hit: number, markerLength: number, bodyStart: number): Delimiter | null {
  if (hit !== bodyStart && scope[hit - 1] !== LF) return null;
  let pos = hit + markerLength;
  const close = scope[pos] === 0x2d && scope[pos + 1] === 0x2d;
  if (close) pos += 2;
  while (scope[pos] === SP || scope[pos] === HT) pos++;
  if (pos >= scope.length) return { next: scope.length, close };
  if (scope[pos] === CR && scope[pos + 1] === LF) return { next: pos + 2, close };
  if (scope[pos] === LF) return { next: pos + 1, close };
  return null;
}

/** The line break before a delimiter belongs to the delimiter. */
function lineBreakBefore(scope: Buffer, hit: number, bodyStart: number): number {
  if (hit === bodyStart) return hit;
  return hit - 2 >= bodyStart && scope[hit - 2] === CR ? hit - 2 : hit - 1;
}

// ---------------------------------------------------------------------------------------------
// ENVELOPE (RFC 3501 §7.4.2) and RFC 5322 address lists

/** Name, source route, mailbox, host; a group start has only mailbox (the group name), its end nothing. */
export interface EnvelopeAddress {
  readonly name: string | null;
  readonly adl: string | null;
  readonly mailbox: string | null;
  readonly host: string | null;
}

/** The ENVELOPE of the message whose header `part` has (the top-level message by default). */
export function envelope(raw: Buffer, part?: MimePart): string {
  const fields = part ? part.fields : topFields(raw);
  const value = (name: string) => fieldValue(fields, name);
  const from = parseAddressList(value('from') ?? '');
  const orFrom = (addresses: EnvelopeAddress[]) => (addresses.length > 0 ? addresses : from);
  return `(${[
    rawString(value('date')),
    rawString(value('subject')),
    addressListText(from),
    addressListText(orFrom(parseAddressList(value('sender') ?? ''))),
    addressListText(orFrom(parseAddressList(value('reply-to') ?? ''))),
    addressListText(parseAddressList(value('to') ?? '')),
    addressListText(parseAddressList(value('cc') ?? '')),
    addressListText(parseAddressList(value('bcc') ?? '')),
    rawString(value('in-reply-to')),
    rawString(value('message-id')),
  ].join(' ')})`;
}

/** A latin1 byte string as an IMAP string (a literal when 8-bit), NIL for null. */
function rawString(value: string | null): string {
  return value === null ? 'NIL' : istring(Buffer.from(value, 'latin1'));
}

function addressListText(addresses: readonly EnvelopeAddress[]): string {
  if (addresses.length === 0) return 'NIL';
  const items = addresses.map((a) => `(${[a.name, a.adl, a.mailbox, a.host].map(rawString).join(' ')})`);
  return `(${items.join('')})`;
}

interface AddressToken {
  readonly kind: 'word' | 'special' | 'comment';
  /** A word's text (a quoted string's content), the special character, or a comment's content. */
  readonly text: string;
  /** Whitespace or a comment came before it. */
  readonly spaced: boolean;
}

const ADDRESS_SPECIALS = '<>@,;:.';
const BLANKS = ' \t\r\n';
const ATOM_END = /[ \t\r\n()<>@,;:."[]/;

function tokenizeAddresses(text: string): AddressToken[] {
  const tokens: AddressToken[] = [];
  let spaced = false;
  for (let i = 0; i < text.length; ) {
    if (BLANKS.includes(text[i]!)) {
      spaced = true;
      i++;
      continue;
    }
    const { token, end } = addressToken(text, i, spaced);
    tokens.push(token);
    spaced = token.kind === 'comment';
    i = end;
  }
  return tokens;
}

/** The token that starts at `i` (not a blank) and the offset after it; unclosed quotes and comments end with the text. */
function addressToken(text: string, i: number, spaced: boolean): { token: AddressToken; end: number } {
  const c = text[i]!;
  if (c === '(') {
    const end = commentEnd(text, i);
    return { token: { kind: 'comment', text: text.slice(i + 1, text[end - 1] === ')' ? end - 1 : end), spaced }, end };
  }
  if (c === '"') {
    const end = quotedEnd(text, i);
    return { token: { kind: 'word', text: unquote(text.slice(i, end)), spaced }, end };
  }
  if (ADDRESS_SPECIALS.includes(c)) return { token: { kind: 'special', text: c, spaced }, end: i + 1 };
  let end = i + 1;
  if (c === '[') {
    const close = text.indexOf(']', i);
    end = close < 0 ? text.length : close + 1;
  } else {
    while (end < text.length && !ATOM_END.test(text[end]!)) end++;
  }
  return { token: { kind: 'word', text: text.slice(i, end), spaced }, end };
}

function isSpecial(token: AddressToken | undefined, char: string): boolean {
  return token?.kind === 'special' && token.text === char;
}

/** Tokens joined, one space where the source had whitespace or a comment between them. */
function joinTokens(tokens: readonly AddressToken[]): string {
  return tokens.map((token, k) => (k > 0 && token.spaced ? ` ${token.text}` : token.text)).join('');
}

/** The index of the first of `stops` outside angle brackets at or after `from` (or the length). */
function segmentEnd(tokens: readonly AddressToken[], from: number, stops: string): number {
  let inAngle = false;
  for (let i = from; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind !== 'special') continue;
    if (token.text === '<') inAngle = true;
    else if (token.text === '>') inAngle = false;
    else if (!inAngle && stops.includes(token.text)) return i;
  }
  return tokens.length;
}

/** An address-list, leniently: ";" also separates at the top level, an unclosed group ends with the text. */
export function parseAddressList(text: string): EnvelopeAddress[] {
  const tokens = tokenizeAddresses(text);
  const out: EnvelopeAddress[] = [];
  for (let i = 0; i < tokens.length; ) {
    const end = segmentEnd(tokens, i, ',;:');
    if (isSpecial(tokens[end], ':')) {
      i = readGroup(tokens, i, end, out);
    } else {
      pushMailbox(tokens.slice(i, end), out);
      i = end + 1;
    }
  }
  return out;
}

/** A group from its name (tokens[from..colon)) to its ";"; returns the index after it. */
function readGroup(tokens: readonly AddressToken[], from: number, colon: number, out: EnvelopeAddress[]): number {
  const name = joinTokens(tokens.slice(from, colon).filter((token) => token.kind !== 'comment'));
  out.push({ name: null, adl: null, mailbox: name, host: null });
  let i = colon + 1;
  while (i < tokens.length && !isSpecial(tokens[i], ';')) {
    const end = segmentEnd(tokens, i, ',;');
    pushMailbox(tokens.slice(i, end).filter((token) => !isSpecial(token, ':')), out);
    i = isSpecial(tokens[end], ',') ? end + 1 : end;
  }
  out.push({ name: null, adl: null, mailbox: null, host: null });
  return i + 1;
}

/** One mailbox: `phrase <route:addr-spec>` or a bare addr-spec (a comment then serves as the name). */
function pushMailbox(segment: readonly AddressToken[], out: EnvelopeAddress[]): void {
  const words = segment.filter((token) => token.kind !== 'comment');
  if (words.length === 0) return;
  const open = words.findIndex((token) => isSpecial(token, '<'));
  let name: string | null = null;
  let adl: string | null = null;
  let spec = words;
  if (open >= 0) {
    name = joinTokens(words.slice(0, open)) || null;
    const close = words.findIndex((token, k) => k > open && isSpecial(token, '>'));
    const inner = words.slice(open + 1, close < 0 ? words.length : close);
    const colon = inner.findLastIndex((token) => isSpecial(token, ':'));
    adl = colon > 0 ? joinTokens(inner.slice(0, colon)) : null;
    spec = inner.slice(colon + 1);
  }
  const comment = segment.find((token) => token.kind === 'comment');
  name ??= comment ? trimBlanks(comment.text) || null : null;
  const at = spec.findLastIndex((token) => isSpecial(token, '@'));
  const mailbox = joinTokens(at < 0 ? spec : spec.slice(0, at));
  const host = at < 0 ? null : joinTokens(spec.slice(at + 1)) || null;
  if (mailbox === '' && host === null && name === null) return;
  out.push({ name, adl, mailbox, host });
}

// ---------------------------------------------------------------------------------------------
// BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2)

/** BODYSTRUCTURE when `extended`, else the non-extensible BODY. */
export function bodyStructure(raw: Buffer, part: MimePart, extended: boolean): string {
  return part.children.length > 0 ? multipartStructure(raw, part, extended) : singleStructure(raw, part, extended);
}

function multipartStructure(raw: Buffer, part: MimePart, extended: boolean): string {
  const children = part.children.map((child) => bodyStructure(raw, child, extended)).join('');
  const items = [children, upperString(part.contentType.subtype)];
  if (extended) items.push(paramsText(part.contentType.params), ...commonExtensions(part));
  return `(${items.join(' ')})`;
}

function singleStructure(raw: Buffer, part: MimePart, extended: boolean): string {
  const type = part.contentType;
  const items = [
    upperString(type.type), upperString(type.subtype), paramsText(type.params),
    rawString(part.id), rawString(part.description), upperString(part.encoding), String(part.size),
  ];
  if (part.message) items.push(envelope(raw, part.message), bodyStructure(raw, part.message, extended), String(part.lines));
  else if (type.type === 'text') items.push(String(part.lines));
  if (extended) items.push(rawString(part.md5), ...commonExtensions(part));
  return `(${items.join(' ')})`;
}

/** Disposition, language, location: the extension data after MD5 (single) or the parameters (multipart). */
function commonExtensions(part: MimePart): string[] {
  const disposition = part.disposition ? `(${upperString(part.disposition.type)} ${paramsText(part.disposition.params)})` : 'NIL';
  return [disposition, languageText(part.language), rawString(part.location)];
}

function upperString(text: string): string {
  return rawString(asciiUpper(text));
}

function paramsText(params: readonly Param[]): string {
  if (params.length === 0) return 'NIL';
  return `(${params.map(([name, value]) => `${upperString(name)} ${rawString(value)}`).join(' ')})`;
}

function languageText(tags: readonly string[] | null): string {
  if (tags === null) return 'NIL';
  return tags.length === 1 ? rawString(tags[0]!) : `(${tags.map(rawString).join(' ')})`;
}

// ---------------------------------------------------------------------------------------------
// BODY[section] (RFC 3501 §6.4.5)

export type SectionText = 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';

export interface SectionSpec {
  /** Part numbers (1.2.3 → [1, 2, 3]); empty for the top-level message. */
  readonly part: readonly number[];
  readonly text: SectionText | null;
  /** The field names of HEADER.FIELDS and HEADER.FIELDS.NOT, as sent. */
  readonly fields: readonly string[];
}

/** What a path of part numbers reaches: a message (only the empty path) or a body part. */
interface Addressed {
  readonly part: MimePart;
  readonly isMessage: boolean;
}

/** The bytes of BODY[section]; empty for a part that does not exist. */
export function sectionBytes(raw: Buffer, root: MimePart, spec: SectionSpec): Buffer {
  const target = resolvePart(root, spec.part);
  if (!target) return EMPTY;
  if (spec.text === null) return target.isMessage ? raw : slice(raw, target.part.body);
  if (spec.text === 'MIME') return target.isMessage ? EMPTY : slice(raw, target.part.header);
  const message = target.isMessage ? target.part : target.part.message;
  if (!message) return EMPTY;
  switch (spec.text) {
    case 'HEADER': return slice(raw, message.header);
    case 'TEXT': return slice(raw, message.body);
    case 'HEADER.FIELDS': return headerFields(raw, message.fields, spec.fields, false);
    case 'HEADER.FIELDS.NOT': return headerFields(raw, message.fields, spec.fields, true);
  }
}

function slice(raw: Buffer, range: ByteRange): Buffer {
  return raw.subarray(range.start, range.end);
}

function resolvePart(root: MimePart, path: readonly number[]): Addressed | null {
  let at: Addressed | null = { part: root, isMessage: true };
  for (const number of path) {
    at = stepInto(at, number);
    if (!at) return null;
  }
  return at;
}

/** Part n of a multipart; part 1 of a non-multipart message is its body; a message/rfc822 part's numbers go to its message. */
function stepInto(at: Addressed, n: number): Addressed | null {
  if (at.part.children.length > 0) {
    const child = at.part.children[n - 1];
    return child ? { part: child, isMessage: false } : null;
  }
  if (at.isMessage) return n === 1 ? { part: at.part, isMessage: false } : null;
  return at.part.message ? stepInto({ part: at.part.message, isMessage: true }, n) : null;
}

/** The fields named (or, with `exclude`, all others) in message order, then the blank line. */
function headerFields(raw: Buffer, fields: readonly HeaderField[], names: readonly string[], exclude: boolean): Buffer {
  const wanted = new Set(names.map(asciiLower));
  const lines: Buffer[] = [];
  for (const field of fields) {
    if (wanted.has(asciiLower(field.name)) === exclude) continue;
    lines.push(slice(raw, field));
    if (raw[field.end - 1] !== LF) lines.push(CRLF);
  }
  lines.push(CRLF);
  return Buffer.concat(lines);
}

// ---------------------------------------------------------------------------------------------
// SEARCH: decoded header values, searchable text, the sent date

/** Every value of the named top-level header field, unfolded, RFC 2047 encoded-words decoded. */
export function headerValues(raw: Buffer, name: string): string[] {
  const lowerName = asciiLower(name);
  return topFields(raw).filter((field) => isNamed(field, lowerName)).map((field) => decodeHeaderValue(field.value));
}

function decodeHeaderValue(value: string): string {
  const text = utf8OrLatin1(Buffer.from(value, 'latin1'));
  try {
    return libmime.decodeWords(text);
  } catch {
    return text;
  }
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function utf8OrLatin1(bytes: Buffer): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** The headers (of the message and of every encapsulated one) and the decoded text of every text/* part. */
export function searchText(raw: Buffer): string {
  const pieces: string[] = [];
  collectText(raw, parseMessage(raw), true, pieces);
  return pieces.join('\n');
}

function collectText(raw: Buffer, part: MimePart, isMessage: boolean, pieces: string[]): void {
  if (isMessage) pieces.push(part.fields.map((field) => `${field.name}: ${decodeHeaderValue(field.value)}`).join('\n'));
  if (part.message) collectText(raw, part.message, true, pieces);
  for (const child of part.children) collectText(raw, child, false, pieces);
  if (part.children.length === 0 && part.contentType.type === 'text') pieces.push(decodedText(raw, part));
}

function decodedText(raw: Buffer, part: MimePart): string {
  const bytes = slice(raw, part.body);
  const decoded = part.encoding === 'QUOTED-PRINTABLE' ? decodeQuotedPrintable(bytes)
    : part.encoding === 'BASE64' ? Buffer.from(bytes.toString('latin1'), 'base64')
    : bytes;
  return decodeCharset(decoded, paramValue(part.contentType.params, 'charset'));
}

/** Known charsets through TextDecoder; us-ascii text that is valid UTF-8 as UTF-8; anything else as latin1. */
function decodeCharset(bytes: Buffer, charset: string | null): string {
  const label = asciiLower((charset ?? 'us-ascii').trim());
  if (label === 'us-ascii' || label === 'ascii' || label === 'utf-8' || label === 'utf8') return utf8OrLatin1(bytes);
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** RFC 2045 §6.7, leniently: a "=" not followed by two hex digits or a line end is kept. */
export function decodeQuotedPrintable(bytes: Buffer): Buffer {
  const out = Buffer.alloc(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    const high = hexValue(bytes[i + 1]);
    const low = hexValue(bytes[i + 2]);
    if (byte !== 0x3d) out[n++] = byte;
    else if (high >= 0 && low >= 0) {
      out[n++] = high * 16 + low;
      i += 2;
    } else if (bytes[i + 1] === CR && bytes[i + 2] === LF) i += 2;
    else if (bytes[i + 1] === LF) i += 1;
    else out[n++] = byte;
  }
  return out.subarray(0, n);
}

/** The first Date: field, parsed leniently (RFC 5322 §3.3 with obsolete forms); null when absent or unreadable. */
/**
 * The day the Date: field names, as written (RFC 3501 SENT*: "disregarding time and timezone"):
 * midnight UTC of that calendar day, so comparing its UTC day compares the day written.
 */
export function sentDate(raw: Buffer): Date | null {
  const value = fieldValue(topFields(raw), 'date');
  if (value === null) return null;
  const match = DATE_TIME.exec(value);
  const month = match === null ? -1 : MONTHS.findIndex((name) => name.toLowerCase() === match[2]!.toLowerCase());
  if (match !== null && month >= 0 && Number(match[1]) >= 1 && Number(match[1]) <= 31) {
    return new Date(Date.UTC(fullYear(match[3]!), month, Number(match[1])));
  }
  const moment = parseDate(value);
  return moment === null ? null : new Date(Date.UTC(moment.getUTCFullYear(), moment.getUTCMonth(), moment.getUTCDate()));
}

const DATE_TIME = /(\d{1,2})\s*[- ]\s*([A-Za-z]{3})[A-Za-z]*\.?\s*[- ]\s*(\d{2,4})\s+(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?(?:\s*([+-]\d{4}|[A-Za-z]{1,5}))?/;
const ZONES: Record<string, number> = { ut: 0, utc: 0, gmt: 0, z: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420 };

export function parseDate(value: string): Date | null {
  const match = DATE_TIME.exec(value);
  if (!match) return fallbackDate(value);
  const [, day, monthName, yearText, hour, minute, second, zone] = match;
  const month = MONTHS.findIndex((name) => name.toLowerCase() === monthName!.toLowerCase());
  const numbers = [Number(day), Number(hour), Number(minute), Number(second ?? 0)] as const;
  if (month < 0 || numbers[0] < 1 || numbers[0] > 31 || numbers[1] > 23 || numbers[2] > 59 || numbers[3] > 60) return fallbackDate(value);
  const utc = Date.UTC(fullYear(yearText!), month, ...numbers);
  return new Date(utc - zoneMinutes(zone) * 60_000);
}

/** RFC 5322 §4.3: two-digit years below 50 are 20xx, others 19xx; three-digit years add 1900. */
function fullYear(text: string): number {
  const year = Number(text);
  if (text.length === 2) return year < 50 ? 2000 + year : 1900 + year;
  return text.length === 3 ? 1900 + year : year;
}

function zoneMinutes(zone: string | undefined): number {
  if (zone === undefined) return 0;
  const offset = /^([+-])(\d\d)(\d\d)$/.exec(zone);
  if (offset) return (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3]));
  return ZONES[zone.toLowerCase()] ?? 0;
}

function fallbackDate(value: string): Date | null {
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : new Date(time);
}
