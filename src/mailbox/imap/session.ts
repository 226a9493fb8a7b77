// One IMAP connection: reads commands through the CommandReader, runs them in order through the
// command table (each command says in which states it is legal), writes responses, and keeps the
// selected folder's view (sequence numbers → uids) in step with what other sessions and deliveries
// change, announcing it with untagged EXISTS, EXPUNGE and FETCH FLAGS where RFC 3501 §7.4.1 allows.
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import type { LoginResult, Quota } from '../../directory/types.ts';
import type { Logger } from '../../log.ts';
import type { Limits } from '../../policy/limits.ts';
import type { Pop3Options } from '../pop3.ts';
import { isLoopback } from '../../policy/rules.ts';
import type { Folder, FolderChange } from './folder.ts';
import type { FolderRegistry, MailStore } from './mailstore.ts';
import { CommandReader, type ReadResult } from './parser.ts';
import type { Command } from './types.ts';
import { ArgError } from './commands/args.ts';
import { MailError } from '../../mail.ts';

/** File-system failures that pass (full disk, too many open files, I/O error). */
function isTemporaryIo(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EMFILE' || code === 'ENFILE' || code === 'EIO' || code === 'EAGAIN';
}

/** The POP3 listener's options (hostname, mail base, TLS, plaintext rule, idle timeout), and the APPEND limit. */
export interface ImapOptions extends Pop3Options {
  /** Largest APPEND literal. */
  readonly maxMessageSize: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
}

export interface ImapDeps {
  readonly authenticate: (login: string, password: string) => Promise<LoginResult>;
  readonly limits: Limits;
  readonly log: Logger;
  readonly registry: FolderRegistry;
}

export type State = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

export interface Selected {
  readonly name: string;
  readonly folder: Folder;
  readonly readOnly: boolean;
  /** uids in sequence-number order, as this client knows them. */
  view: number[];
  /** Highest modseq whose flag changes this client has been told of. */
  modseq: number;
  /** \Recent messages claimed by this session. */
  readonly recent: Set<number>;
  /** Folder changes not yet told. */
  dirty: boolean;
  /** CONDSTORE is on (ENABLE CONDSTORE, SELECT … (CONDSTORE), or a command using mod-sequences): FETCH responses carry MODSEQ. */
  condstore: boolean;
  stopListening: () => void;
}

export interface User {
  readonly login: string;
  readonly root: string;
  readonly quota: Quota | null;
}

export interface Handler {
  readonly states: readonly State[];
  run(session: Session, command: Command): Promise<void>;
}

const NONE: ReadonlySet<number> = new Set();
const PRE_LOGIN_LITERAL = 8192;

/** Commands during which EXPUNGE responses may not be sent (RFC 3501 §7.4.1). */
const NO_EXPUNGE = new Set(['FETCH', 'STORE', 'SEARCH']);

export class Session {
  state: State = 'not-authenticated';
  secure: boolean;
  user: User | null = null;
  store: MailStore | null = null;
  selected: Selected | null = null;
  /** ENABLEd extensions. */
  readonly enabled = new Set<string>();
  readonly log: Logger;
  readonly reader: CommandReader;
  private socket: Socket;
  private closed = false;
  private waiter: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** While IDLE runs, folder changes are told at once. */
  idling = false;

  constructor(
    raw: Socket,
    readonly id: string,
    readonly options: ImapOptions,
    readonly deps: ImapDeps,
    private readonly context: SecureContext | null,
    private readonly handlers: Readonly<Record<string, Handler>>,
  ) {
    this.socket = raw;
    this.secure = options.implicitTls;
    this.log = deps.log.child({ sessionId: id, ip: raw.remoteAddress ?? '' });
    // Before login a literal can only be a name or a password: 8 KiB (the message size limit comes with the login).
    this.reader = new CommandReader({ maxLineBytes: 65_536, maxLiteralBytes: PRE_LOGIN_LITERAL, maxDepth: 16 });
    this.attach(raw);
  }

  get ip(): string {
    return this.socket.remoteAddress ?? '';
  }

  get tlsAvailable(): boolean {
    return this.context !== null && !this.secure;
  }

  private readonly onData = (chunk: Buffer) => {
    this.reader.push(chunk);
    this.waiter?.();
  };

  private readonly onClose = () => {
    this.closed = true;
    this.waiter?.();
  };

  private attach(s: Socket): void {
    s.setNoDelay(true);
    s.on('data', this.onData);
    s.on('error', () => undefined);
    s.on('close', this.onClose);
  }

  /** Writes one response line (latin1 text: every char one byte) and CRLF. */
  send(text: string): void {
    if (!this.closed) this.socket.write(Buffer.from(`${text}\r\n`, 'latin1'));
  }

  /** Several lines in one write. */
  sendAll(lines: readonly string[]): void {
    if (lines.length > 0 && !this.closed) this.socket.write(Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1'));
  }

  /** Waits until the socket's buffer drained (large FETCH responses). */
  async drain(): Promise<void> {
    if (this.closed || this.socket.writableLength < 1 << 20) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** The next item from the client, or null when it has gone. */
  async next(mode: 'command' | 'line'): Promise<ReadResult | null> {
    for (;;) {
      const item = this.reader.next(mode);
      if (item !== null) return item;
      if (this.closed) return null;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = null;
    }
  }

  /** Restarts the autologout clock (RFC 3501 §5.4: at least 30 minutes). */
  touch(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.goodbye('* BYE autologout: idle for too long');
    }, this.options.idleTimeoutMs);
    this.timer.unref();
  }

  /** A last line, then a graceful close (TLS still has to encrypt it). */
  goodbye(line: string | null): void {
    this.state = 'logout';
    if (!this.closed) {
      if (line !== null) this.send(line);
      this.socket.end();
    }
    this.closed = true;
    this.waiter?.();
    setTimeout(() => this.socket.destroy(), 10_000).unref();
  }

  /** STARTTLS: bytes pipelined after the command were sent in clear text and are thrown away. */
  async startTls(): Promise<boolean> {
    this.reader.discard();
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    const tls = new TLSSocket(this.socket, { isServer: true, secureContext: this.context! });
    const ok = await new Promise<boolean>((resolve) => {
      tls.once('secure', () => resolve(true));
      tls.once('error', () => resolve(false));
      tls.once('close', () => resolve(false));
    });
    if (!ok) {
      this.closed = true;
      return false;
    }
    this.socket = tls;
    this.secure = true;
    this.attach(tls);
    return true;
  }

  /** Runs until the client logs out or goes. */
  async run(): Promise<void> {
    const caps = this.handlers.CAPABILITY !== undefined ? capabilityLine(this) : '';
    this.send(`* OK [CAPABILITY ${caps}] ${this.options.hostname} ldapmta IMAP4rev1 ready`);
    this.touch();
    try {
      while (this.state !== 'logout') {
        const item = await this.next('command');
        if (item === null) return;
        this.touch();
        await this.handle(item);
      }
    } finally {
      if (this.timer !== null) clearTimeout(this.timer);
      this.deselect();
      if (!this.closed) this.goodbye(null);
    }
  }

  private async handle(item: ReadResult): Promise<void> {
    switch (item.kind) {
      case 'continue':
        this.send('+ Ready for literal data');
        return;
      case 'bad':
        this.send(`${item.tag ?? '*'} BAD ${item.text}`);
        return;
      case 'fatal':
        this.goodbye(`* BYE ${item.text}`);
        return;
      case 'line':
        return;
      case 'command':
        break;
    }
    const { command } = item;
    const handler = this.handlers[command.name];
    if (handler === undefined) {
      this.send(`${command.tag} BAD unknown command ${command.name.slice(0, 40)}`);
      return;
    }
    if (!handler.states.includes(this.state)) {
      const why = this.state === 'not-authenticated' ? 'before login'
        : handler.states.includes('not-authenticated') ? 'after login'
        : 'without a selected folder';
      this.send(`${command.tag} BAD ${command.name} is not allowed ${why}`);
      return;
    }
    try {
      await handler.run(this, command);
    } catch (err) {
      if (err instanceof ArgError) {
        this.send(`${command.tag} BAD ${err.message}`);
        return;
      }
      if (err instanceof MailError || isTemporaryIo(err)) {
        // Directory, disk or file-system trouble: temporary (habit 2), the client may try again.
        this.log.warn({ command: command.name, err: (err as Error).message }, 'imap command failed, temporary');
        this.send(`${command.tag} NO [UNAVAILABLE] ${(err as NodeJS.ErrnoException).code === 'ENOSPC' ? 'the disk is full' : 'temporary failure'}, try again later`);
        return;
      }
      this.log.error({ command: command.name, err: (err as Error).message }, 'imap command failed');
      this.send(`${command.tag} NO [SERVERBUG] the command failed on the server, try again`);
    }
  }

  /** Before a tagged reply: tells the client what changed in the selected folder. */
  async flush(commandName: string, told: ReadonlySet<number> = NONE): Promise<void> {
    const sel = this.selected;
    if (sel === null) return;
    this.sendAll(updates(sel, !NO_EXPUNGE.has(commandName), told));
  }

  /** Leaves the selected folder (CLOSE, UNSELECT, another SELECT, logout). */
  deselect(): void {
    const sel = this.selected;
    if (sel === null) return;
    sel.stopListening();
    this.store?.release(sel.folder);
    this.selected = null;
    if (this.state === 'selected') this.state = 'authenticated';
  }

  /** Starts listening to a folder's changes for `sel`. */
  listen(sel: Selected): () => void {
    return sel.folder.onChange((change: FolderChange) => {
      sel.dirty = true;
      if (this.idling && this.selected === sel && (change.added > 0 || change.expunged.length > 0 || change.flagged.length > 0)) {
        this.sendAll(updates(sel, true));
      }
    });
  }

  end(): void {
    this.socket.destroy();
  }
}

/**
 * The untagged responses that bring a client's view up to the folder: EXPUNGE (when allowed) for
 * messages gone, EXISTS and RECENT for arrivals, FETCH FLAGS for flag changes by others (not for the
 * uids in `told`, whose flags the command answered already). Updates `sel`.
 */
export function updates(sel: Selected, allowExpunge: boolean, told: ReadonlySet<number> = NONE): string[] {
  const folder = sel.folder;
  const out: string[] = [];
  if (allowExpunge) {
    for (let i = sel.view.length - 1; i >= 0; i--) {
      if (!folder.byUid.has(sel.view[i]!)) {
        out.push(`* ${i + 1} EXPUNGE`);
        sel.recent.delete(sel.view[i]!);
        sel.view.splice(i, 1);
      }
    }
  }
  const last = sel.view.length === 0 ? 0 : sel.view[sel.view.length - 1]!;
  let added = 0;
  for (const entry of folder.entries) {
    if (entry.uid <= last) continue;
    sel.view.push(entry.uid);
    if (entry.recent && !sel.readOnly) {
      entry.recent = false;
      sel.recent.add(entry.uid);
    }
    added++;
  }
  if (added > 0) out.push(`* ${sel.view.length} EXISTS`, `* ${sel.recent.size} RECENT`);
  if (folder.highestModseq > sel.modseq) {
    const seqOf = new Map(sel.view.map((uid, i) => [uid, i + 1]));
    for (const entry of folder.entries) {
      if (entry.modseq <= sel.modseq || entry.uid > last || told.has(entry.uid)) continue;
      const seq = seqOf.get(entry.uid);
      if (seq !== undefined) out.push(`* ${seq} FETCH (FLAGS (${flagList(entry.flags, sel.recent.has(entry.uid))})${sel.condstore ? ` MODSEQ (${entry.modseq})` : ''})`);
    }
    sel.modseq = folder.highestModseq;
  }
  sel.dirty = false;
  return out;
}

/** A message's flags as this session shows them: \\Recent added for the messages it claimed. */
export function withRecent(flags: readonly string[], recent: boolean): string[] {
  return recent ? [...flags, '\\Recent'] : [...flags];
}

export function flagList(flags: readonly string[], recent: boolean): string {
  return withRecent(flags, recent).join(' ');
}

/** What this server offers now (RFC 3501 §7.2.1), for the greeting and CAPABILITY. */
export function capabilityLine(session: Session): string {
  const caps = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE', 'NAMESPACE', 'UNSELECT', 'CHILDREN'];
  if (session.state === 'not-authenticated') {
    if (session.tlsAvailable) caps.push('STARTTLS');
    if (plaintextAllowed(session)) caps.push('AUTH=PLAIN');
    else caps.push('LOGINDISABLED');
  } else {
    caps.push('UIDPLUS', 'MOVE', 'SPECIAL-USE', 'CONDSTORE', 'QUOTA', 'QUOTA=RES-STORAGE', 'QUOTA=RES-MESSAGE');
  }
  return caps.join(' ');
}

export function plaintextAllowed(session: Session): boolean {
  if (session.secure) return true;
  if (!session.options.allowPlaintextOnLoopback) return false;
  return isLoopback(session.ip);
}
