// The IMAP command reader (RFC 3501 §9, LITERAL+ from RFC 7888). This file owns the tokenizer and
// the input buffering: it turns a client's bytes into commands, raw lines (AUTHENTICATE responses,
// IDLE's DONE) and the protocol events the session must answer (literal continuation, BAD, BYE).
// Incremental and pull-based; memory stays bounded by about maxLineBytes + maxLiteralBytes and time
// is linear in the input, whatever the client sends. It knows no command's meaning, with one
// exception: only BODY, BODY.PEEK, BINARY, BINARY.PEEK and BINARY.SIZE open a `[section]`, so that a
// mailbox name such as `Archive[2020]` stays one atom. A partial `<start>` without a length is
// read as `{ start, length: Infinity }` (to the end).
import type { Command, Token } from './types.ts';

export interface ReaderLimits {
  /** A command's text, literals excluded (e.g. 65536); a raw line in 'line' mode too. */
  maxLineBytes: number;
  /** All literals of one command together (e.g. 50 MiB for APPEND). */
  maxLiteralBytes: number;
  /** Nesting of lists and sections (e.g. 16). */
  maxDepth: number;
}

export type ReadResult =
  | { kind: 'command'; command: Command }
  /** A synchronising literal {n} was announced and accepted: send "+ Ready for literal data". */
  | { kind: 'continue' }
  /** A malformed command: reply `${tag ?? '*'} BAD ${text}`; reading goes on. */
  | { kind: 'bad'; tag: string | null; text: string }
  /** Only in 'line' mode: one raw line without its line end (bytes as latin1 chars). */
  | { kind: 'line'; text: string }
  /** The stream cannot be resynchronised: send "* BYE text" and close. */
  | { kind: 'fatal'; text: string };

type Mode = 'command' | 'line';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const DQUOTE = 0x22;
const LPAREN = 0x28;
const RPAREN = 0x29;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;

/** The atoms a `[` turns into a fetch attribute with a section; the longest is 11 chars. */
const SECTION_ATOMS = new Set(['BODY', 'BODY.PEEK', 'BINARY', 'BINARY.PEEK', 'BINARY.SIZE']);
const SECTION_ATOM_MAX = 11;
/** How much of a discarded line's end is kept to spot a literal announcement there. */
const TAIL = 48;
/** A non-synchronising literal beyond this many times the limit is not skipped but fatal. */
const ABSURD_FACTOR = 4;
const MAX_NUMBER = 0xffff_ffff;

/** Stands for "state changed, keep going" inside next(); every such step consumed input or state. */
const AGAIN = Symbol('again');
type Step = ReadResult | null | typeof AGAIN;

// ---------------------------------------------------------------------------------------------
// Bytes: a FIFO in one growable buffer (appends amortised O(1), reads from the front).

class ByteQueue {
  private buf: Buffer = Buffer.alloc(0);
  private head = 0;
  private tail = 0;

  constructor(private readonly maxCapacity: number) {}

  get length(): number {
    return this.tail - this.head;
  }

  append(chunk: Buffer): void {
    if (this.tail + chunk.length > this.buf.length) this.makeRoom(chunk.length);
    chunk.copy(this.buf, this.tail);
    this.tail += chunk.length;
  }

  /** Index of `byte` at or after `from` (both relative to the front), or -1. */
  indexOf(byte: number, from: number): number {
    const at = this.buf.subarray(this.head + from, this.tail).indexOf(byte);
    return at < 0 ? -1 : at + from;
  }

  byteAt(index: number): number {
    return this.buf[this.head + index] ?? -1;
  }

  latin1(from: number, to: number): string {
    return this.buf.toString('latin1', this.head + from, this.head + to);
  }

  copyTo(target: Buffer, offset: number, n: number): void {
    this.buf.copy(target, offset, this.head, this.head + n);
  }

  skip(n: number): void {
    this.head += Math.min(n, this.length);
    if (this.head === this.tail) this.clear();
  }

  /** Empties the queue; a buffer grown for a large burst is let go. */
  clear(): void {
    this.head = this.tail = 0;
    if (this.buf.length > 65_536) this.buf = Buffer.alloc(0);
  }

  private makeRoom(n: number): void {
    const used = this.length;
    const needed = used + n;
    if (needed <= this.buf.length >>> 1) {
      this.buf.copyWithin(0, this.head, this.tail);
    } else {
      const size = Math.max(4096, Math.min(needed * 2, Math.max(needed, this.maxCapacity)));
      const next = Buffer.allocUnsafe(size);
      this.buf.copy(next, 0, this.head, this.tail);
      this.buf = next;
    }
    this.head = 0;
    this.tail = used;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens: one line of command text at a time; lists and sections stay open across literals.

interface Frame {
  readonly kind: 'root' | 'list' | 'section';
  readonly items: Token[];
  /** For a section: the fetch attribute's name as sent. */
  readonly atom: string;
}

/** A command being put together from its lines and literals. */
interface Assembly {
  readonly tag: string;
  readonly name: string;
  readonly stack: Frame[];
  /** A token just ended: the next one needs a space (or a closing bracket) first. */
  needSep: boolean;
  textBytes: number;
  literalBytes: number;
}

interface LiteralSpec {
  readonly size: number;
  readonly sync: boolean;
}

type LineResult = { kind: 'done' } | ({ kind: 'literal' } & LiteralSpec) | { kind: 'error'; text: string };

class Malformed extends Error {}

function fault(text: string): never {
  throw new Malformed(text);
}

/** ATOM-CHAR plus the `]`, `[`, `\`, `*`, `%` and `+` IMAP allows in atoms, flags and patterns. */
function isAtomChar(c: number): boolean {
  return c > SP && c < 0x7f && c !== LPAREN && c !== RPAREN && c !== LBRACE && c !== DQUOTE;
}

function isTag(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!isAtomChar(c) || c === 0x2a /* * */ || c === 0x25 /* % */ || c === BACKSLASH || c === 0x2b /* + */) return false;
  }
  return true;
}

function hex(c: number): string {
  return `0x${c.toString(16).padStart(2, '0')}`;
}

/** `{n}` or `{n+}` right at the end of a line (a CR before the LF allowed). */
function literalAtEnd(text: string): LiteralSpec | null {
  const m = /\{(\d+)(\+?)\}\r?$/.exec(text.slice(-TAIL));
  return m === null ? null : { size: Number(m[1]), sync: m[2] === '' };
}

/** Reads `tag SP name` at the start of a command's first line. */
function parseStart(s: string): { tag: string; name: string; pos: number } | { tag: string | null; error: string } {
  const sp = s.indexOf(' ');
  const tag = sp < 0 ? s : s.slice(0, sp);
  if (!isTag(tag)) return { tag: null, error: 'missing or invalid tag' };
  if (sp < 0) return { tag, error: 'missing command name' };
  const end = s.indexOf(' ', sp + 1);
  const name = s.slice(sp + 1, end < 0 ? s.length : end);
  if (!/^[A-Za-z][A-Za-z0-9._-]*$/.test(name)) return { tag, error: 'missing or invalid command name' };
  return { tag, name, pos: end < 0 ? s.length : end + 1 };
}

/** Tokenises one line of command text (from `start`) into the open frames of `cmd`. */
class LineTokenizer {
  private i: number;

  constructor(
    private readonly s: string,
    start: number,
    private readonly cmd: Assembly,
    private readonly maxDepth: number,
  ) {
    this.i = start;
  }

  run(): LineResult {
    try {
      while (this.i < this.s.length) {
        const literal = this.token();
        if (literal !== null) return { kind: 'literal', ...literal };
      }
      const top = this.top();
      if (top.kind !== 'root') fault(top.kind === 'list' ? 'unclosed parenthesis' : 'unclosed section [');
      return { kind: 'done' };
    } catch (err) {
      return { kind: 'error', text: err instanceof Malformed ? err.message : 'unparsable command' };
    }
  }

  /** One token or separator; a literal announcement ends the line and is returned. */
  private token(): LiteralSpec | null {
    const c = this.s.charCodeAt(this.i);
    if (c === SP) {
      this.i++;
      this.cmd.needSep = false;
      return null;
    }
    if (c < SP || c >= 0x7f) fault(`invalid character ${hex(c)} (use a literal for such bytes)`);
    if (c === RPAREN) return this.closeList();
    if (c === RBRACKET && this.inSection()) return this.closeSection();
    if (this.cmd.needSep) fault('expected a space between arguments');
    if (c === LPAREN) return this.open('list', '');
    if (c === DQUOTE) return this.add(this.quoted());
    if (c === LBRACE) return this.literal();
    return this.atom();
  }

  private top(): Frame {
    return this.cmd.stack[this.cmd.stack.length - 1]!;
  }

  private inSection(): boolean {
    return this.cmd.stack.some((f) => f.kind === 'section');
  }

  private add(token: Token): null {
    this.top().items.push(token);
    this.cmd.needSep = true;
    return null;
  }

  private open(kind: 'list' | 'section', atom: string): null {
    if (this.cmd.stack.length > this.maxDepth) fault('lists or sections nested too deeply');
    this.cmd.stack.push({ kind, items: [], atom });
    this.cmd.needSep = false;
    this.i++;
    return null;
  }

  private closeList(): null {
    const top = this.top();
    if (top.kind !== 'list') fault('unbalanced parenthesis )');
    this.cmd.stack.pop();
    this.i++;
    return this.add({ type: 'list', items: top.items });
  }

  private closeSection(): null {
    const top = this.top();
    if (top.kind !== 'section') fault('unbalanced bracket ]');
    this.cmd.stack.pop();
    this.i++;
    const partial = this.partial();
    return this.add({ type: 'atom', value: top.atom, section: top.items, ...(partial === null ? {} : { partial }) });
  }

  /** `<start>` or `<start.length>` right after a section's `]`. */
  private partial(): { start: number; length: number } | null {
    if (this.s.charCodeAt(this.i) !== 0x3c /* < */) return null;
    const re = /<(\d{1,10})(?:\.(\d{1,10}))?>/y;
    re.lastIndex = this.i;
    const m = re.exec(this.s);
    if (m === null || Number(m[1]) > MAX_NUMBER || Number(m[2] ?? 0) > MAX_NUMBER) fault('invalid partial <start.length>');
    this.i = re.lastIndex;
    return { start: Number(m[1]), length: m[2] === undefined ? Infinity : Number(m[2]) };
  }

  /** A quoted string: 7-bit, no CR/LF/NUL, only \" and \\ escaped. */
  private quoted(): Token {
    const s = this.s;
    let out = '';
    let run = this.i + 1;
    for (let j = run; j < s.length; j++) {
      const c = s.charCodeAt(j);
      if (c === DQUOTE) {
        out += s.slice(run, j);
        this.i = j + 1;
        return { type: 'string', value: Buffer.from(out, 'latin1'), literal: false };
      }
      if (c === BACKSLASH) {
        const e = s.charCodeAt(j + 1);
        if (e !== DQUOTE && e !== BACKSLASH) fault('invalid escape in quoted string (only \\" and \\\\)');
        out += s.slice(run, j);
        run = ++j;
      } else if (c === 0 || c === CR || c > 0x7f) {
        fault(`invalid character ${hex(c)} in quoted string (use a literal)`);
      }
    }
    return fault('unterminated quoted string');
  }

  /** `{n}` or `{n+}`: must end the line. */
  private literal(): LiteralSpec {
    const m = /^\{(\d+)(\+?)\}$/.exec(this.s.slice(this.i));
    if (m === null) fault('invalid literal: {n} or {n+} must end the line');
    this.i = this.s.length;
    return { size: Number(m[1]), sync: m[2] === '' };
  }

  /** An atom; BODY[ and its kin open a section instead. */
  private atom(): null {
    const s = this.s;
    const start = this.i;
    const inSection = this.inSection();
    for (; this.i < s.length; this.i++) {
      const c = s.charCodeAt(this.i);
      if (c === LBRACKET && this.i - start <= SECTION_ATOM_MAX && SECTION_ATOMS.has(s.slice(start, this.i).toUpperCase())) {
        if (inSection) fault('a section cannot hold another section');
        return this.open('section', s.slice(start, this.i));
      }
      if (!isAtomChar(c) || (c === RBRACKET && inSection)) break;
    }
    return this.add({ type: 'atom', value: s.slice(start, this.i) });
  }
}

// ---------------------------------------------------------------------------------------------
// The reader: lines, literals and resynchronisation after errors.

/** A literal being received. The buffer is made when its first byte arrives. */
interface PendingLiteral {
  readonly size: number;
  target: Buffer | null;
  filled: number;
}

/** Input being thrown away up to the end of a command, before a BAD is told. */
interface Skip {
  readonly tag: string | null;
  readonly text: string;
  readonly mode: Mode;
  /** Bytes of a non-synchronising literal still to drop. */
  literal: number;
  /** The end of the current line so far, to spot a literal announcement there. */
  tail: string;
}

function bad(tag: string | null, text: string): ReadResult {
  return { kind: 'bad', tag, text };
}

export class CommandReader {
  private readonly queue: ByteQueue;
  /** Unparsed input held at most (the caller may not pull while a command runs). */
  private holdLimit: number;
  /** How far the current line was already searched for its LF. */
  private scanned = 0;
  private cmd: Assembly | null = null;
  private pending: PendingLiteral | null = null;
  private skip: Skip | null = null;
  /** Set once the stream is lost: every next() repeats it. */
  private dead: string | null = null;

  constructor(private limits: ReaderLimits) {
    this.holdLimit = 2 * limits.maxLineBytes + limits.maxLiteralBytes;
    this.queue = new ByteQueue(this.holdLimit);
  }

  /** A new literal limit (small before login, the message size limit after it); applies to commands read from now on. */
  limitLiterals(maxLiteralBytes: number): void {
    this.limits = { ...this.limits, maxLiteralBytes };
    this.holdLimit = 2 * this.limits.maxLineBytes + maxLiteralBytes;
  }

  /** Buffers bytes as they arrive (bytes of a literal being skipped are dropped at once). */
  push(chunk: Buffer): void {
    if (this.dead !== null) return;
    const rest = this.skipEagerly(chunk);
    if (rest.length === 0) return;
    if (this.queue.length + rest.length > this.holdLimit) {
      this.die('too much data sent ahead of the replies');
      return;
    }
    this.queue.append(rest);
  }

  /** One item from what is buffered; null when more bytes are needed. */
  next(mode: Mode): ReadResult | null {
    for (;;) {
      const step = this.step(mode);
      if (step !== AGAIN) return step;
    }
  }

  /** Drops everything buffered and any command in progress (after STARTTLS). */
  discard(): void {
    this.queue.clear();
    this.scanned = 0;
    this.cmd = null;
    this.pending = null;
    this.skip = null;
  }

  /** Bytes held: unparsed input and the part of a literal received so far. */
  get buffered(): number {
    return this.queue.length + (this.pending?.filled ?? 0);
  }

  private step(mode: Mode): Step {
    if (this.dead !== null) return { kind: 'fatal', text: this.dead };
    if (this.skip !== null) return this.skipOn(this.skip);
    if (this.pending !== null) return this.fillLiteral(this.pending) ? AGAIN : null;
    const lineMode = this.cmd === null ? mode : 'command';
    const line = this.takeLine(lineMode);
    if (line === null) return this.skip !== null ? AGAIN : null;
    if (lineMode === 'line') return { kind: 'line', text: line };
    return this.onLine(line);
  }

  /** The next complete line without its line end, or null; starts discarding one over the limit. */
  private takeLine(mode: Mode): string | null {
    const budget = this.limits.maxLineBytes - (this.cmd?.textBytes ?? 0);
    const lf = this.queue.indexOf(LF, this.scanned);
    if (lf < 0) {
      this.scanned = this.queue.length;
      if (this.scanned > budget + 1) this.startDiscard(mode);
      return null;
    }
    const end = lf > 0 && this.queue.byteAt(lf - 1) === CR ? lf - 1 : lf;
    if (end > budget) {
      this.startDiscard(mode);
      return null;
    }
    const text = this.queue.latin1(0, end);
    this.queue.skip(lf + 1);
    this.scanned = 0;
    return text;
  }

  /** A line of command text: starts a command or continues the one after a literal. */
  private onLine(text: string): Step {
    let pos = 0;
    if (this.cmd === null) {
      if (text.length === 0) return bad(null, 'empty command line');
      const start = parseStart(text);
      if ('error' in start) return this.fail(start.tag, start.error, literalAtEnd(text));
      this.cmd = { tag: start.tag, name: start.name, stack: [{ kind: 'root', items: [], atom: '' }], needSep: false, textBytes: 0, literalBytes: 0 };
      pos = start.pos;
    }
    const cmd = this.cmd;
    cmd.textBytes += text.length;
    const result = new LineTokenizer(text, pos, cmd, this.limits.maxDepth).run();
    if (result.kind === 'error') return this.fail(cmd.tag, result.text, literalAtEnd(text));
    if (result.kind === 'literal') return this.announce(cmd, result);
    this.cmd = null;
    return { kind: 'command', command: { tag: cmd.tag, name: cmd.name.toUpperCase(), args: cmd.stack[0]!.items } };
  }

  /** A literal was announced at the end of a line: accept it or refuse it as too big. */
  private announce(cmd: Assembly, literal: LiteralSpec): Step {
    if (cmd.literalBytes + literal.size > this.limits.maxLiteralBytes) {
      return this.fail(cmd.tag, `[TOOBIG] literal too large (at most ${this.limits.maxLiteralBytes} bytes)`, literal);
    }
    cmd.literalBytes += literal.size;
    this.pending = { size: literal.size, target: null, filled: 0 };
    return literal.sync ? { kind: 'continue' } : AGAIN;
  }

  /** Moves buffered bytes into the pending literal; true once it is complete and added. */
  private fillLiteral(p: PendingLiteral): boolean {
    const n = Math.min(this.queue.length, p.size - p.filled);
    if (n > 0) {
      p.target ??= Buffer.allocUnsafeSlow(p.size);
      this.queue.copyTo(p.target, p.filled, n);
      this.queue.skip(n);
      p.filled += n;
    }
    if (p.filled < p.size) return false;
    const cmd = this.cmd!;
    cmd.stack[cmd.stack.length - 1]!.items.push({ type: 'string', value: p.target ?? Buffer.alloc(0), literal: true });
    cmd.needSep = true;
    this.pending = null;
    return true;
  }

  /**
   * Ends the command in progress with a BAD. When its line announced a non-synchronising literal,
   * the client sends those bytes and more of the command anyway: they are skipped first.
   */
  private fail(tag: string | null, text: string, literal: LiteralSpec | null): Step {
    this.cmd = null;
    this.pending = null;
    if (literal === null || literal.sync) return bad(tag, text);
    if (literal.size > ABSURD_FACTOR * this.limits.maxLiteralBytes) return this.die('literal far too large');
    this.skip = { tag, text, mode: 'command', literal: literal.size, tail: '' };
    return AGAIN;
  }

  /** The current line is over the limit: drop it (and what belongs to its command), then BAD. */
  private startDiscard(mode: Mode): void {
    const tag = this.cmd !== null ? this.cmd.tag : mode === 'command' ? this.tagAhead() : null;
    this.skip = { tag, text: mode === 'line' ? 'line too long' : 'command line too long', mode, literal: 0, tail: '' };
    this.cmd = null;
    this.pending = null;
    this.scanned = 0;
  }

  /** The tag at the front of the buffered input, when it can be read there. */
  private tagAhead(): string | null {
    const head = this.queue.latin1(0, Math.min(this.queue.length, 1024));
    const sp = head.indexOf(' ');
    return sp > 0 && isTag(head.slice(0, sp)) ? head.slice(0, sp) : null;
  }

  /** Drops input up to the end of the failed command; the BAD once it is reached. */
  private skipOn(s: Skip): Step {
    if (s.literal > 0) {
      const n = Math.min(s.literal, this.queue.length);
      this.queue.skip(n);
      s.literal -= n;
      if (s.literal > 0) return null;
    }
    const lf = this.queue.indexOf(LF, 0);
    const end = lf < 0 ? this.queue.length : lf;
    s.tail = (s.tail + this.queue.latin1(Math.max(0, end - TAIL), end)).slice(-TAIL);
    if (lf < 0) {
      this.queue.clear();
      return null;
    }
    this.queue.skip(lf + 1);
    const literal = s.mode === 'command' ? literalAtEnd(s.tail) : null;
    s.tail = '';
    if (literal === null || literal.sync) {
      this.skip = null;
      return bad(s.tag, s.text);
    }
    if (literal.size > ABSURD_FACTOR * this.limits.maxLiteralBytes) return this.die('literal far too large');
    s.literal = literal.size;
    return AGAIN;
  }

  /** While a literal is skipped and nothing waits before it, arriving bytes are dropped unstored. */
  private skipEagerly(chunk: Buffer): Buffer {
    const s = this.skip;
    if (s === null || s.literal === 0 || this.queue.length > 0) return chunk;
    const n = Math.min(s.literal, chunk.length);
    s.literal -= n;
    return chunk.subarray(n);
  }

  private die(text: string): ReadResult {
    this.discard();
    this.dead = text;
    return { kind: 'fatal', text };
  }
}
