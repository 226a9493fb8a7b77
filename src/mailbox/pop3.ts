// POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595) and AUTH PLAIN (RFC 5034) over the
// Maildirs deliver/ writes, logins checked against the directory. One session per mailbox at a
// time; deletions happen only at QUIT (the UPDATE state). The protocol edge: it turns MailErrors
// and login results into +OK/-ERR lines and decides nothing about mail.
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type Server as TlsServer, TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { HostPort } from '../config.ts';
import type { LoginResult } from '../directory/types.ts';
import { listenOn } from '../listen/bind.ts';
import type { Logger } from '../log.ts';
import { isLoopback } from '../policy/rules.ts';
import type { Limits } from '../policy/limits.ts';
import { listMailbox, type MailboxMessage, openMessage, readMessage, removeMessages } from './maildir.ts';

export interface Pop3Options {
  readonly hostname: string;
  /** The mail base: a mailbox outside it is never opened. */
  readonly mailboxes: string;
  readonly tls: { key: Buffer; cert: Buffer } | null;
  /** TLS from the first byte (POP3S, port 995). */
  readonly implicitTls: boolean;
  readonly allowPlaintextOnLoopback: boolean;
  readonly idleTimeoutMs: number;
}

export interface Pop3Deps {
  readonly authenticate: (login: string, password: string) => Promise<LoginResult>;
  readonly limits: Limits;
  readonly log: Logger;
  /** Mailboxes with a session open, shared by every POP3 listener of this process. */
  readonly inUse: Set<string>;
}

export interface Pop3Server {
  readonly port: number;
  close(): Promise<void>;
  /** New sessions (and STARTTLS/STLS upgrades) use this certificate and key from now on. */
  reloadTls(tls: { cert: Buffer; key: Buffer }): void;
}

/** RFC 2449 §4: a command line is at most 255 octets, CRLF included. */
const MAX_COMMAND = 255;

/** LF → CRLF, and a "." at a line start doubled (RFC 1939 §3), for bytes stored with LF ends. */
export function wireLines(chunk: Buffer, atLineStart: boolean): { out: Buffer; atLineStart: boolean } {
  const parts: Buffer[] = [];
  let from = 0;
  if (atLineStart && chunk[0] === 0x2e) parts.push(DOT);
  for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, nl + 1)) {
    // The line up to its LF (a CR already there is kept), then CRLF, then a dot if the next line starts with one.
    const end = nl > 0 && chunk[nl - 1] === 0x0d ? nl - 1 : nl;
    parts.push(chunk.subarray(from, end), CRLF);
    from = nl + 1;
    if (chunk[from] === 0x2e) parts.push(DOT);
  }
  parts.push(chunk.subarray(from));
  return { out: Buffer.concat(parts), atLineStart: chunk.length === 0 ? atLineStart : chunk[chunk.length - 1] === 0x0a };
}

const CRLF = Buffer.from('\r\n');
/** Bytes of a stored (LF) message up to and including `lines` body lines (RFC 1939 TOP). Pure. */
export function topLength(message: Buffer, lines: number): number {
  const headerEnd = message[0] === 0x0a ? 1 : message.indexOf('\n\n');
  if (headerEnd === -1) return message.length;
  let at = message[0] === 0x0a ? 1 : headerEnd + 2;
  for (let n = 0; n < lines && at < message.length; n++) {
    const nl = message.indexOf(0x0a, at);
    at = nl === -1 ? message.length : nl + 1;
  }
  return at;
}

const DOT = Buffer.from('.');

export async function startPop3(where: HostPort, options: Pop3Options, deps: Pop3Deps): Promise<Pop3Server> {
  const log = deps.log.child({ component: options.implicitTls ? 'pop3s' : 'pop3' });
  let context: SecureContext | null = options.tls === null ? null : createSecureContext({ ...options.tls, minVersion: 'TLSv1.2' });
  const sockets = new Set<Socket>();
  let sessions = 0;

  const handle = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    void session(socket, options, deps, log, context, `p${(++sessions).toString(36)}`).catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'pop3 session failed');
      socket.destroy();
    });
  };
  const server: NetServer = options.implicitTls
    ? createTlsServer({ ...options.tls!, minVersion: 'TLSv1.2' }, handle)
    : createNetServer(handle);
  server.on('tlsClientError', () => undefined);
  const port = await listenOn(server, where);
  log.info({ host: where.host, port, tls: context !== null }, 'pop3 listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
    reloadTls(tls) {
      if (context === null) return;
      context = createSecureContext({ ...tls, minVersion: 'TLSv1.2' });
      if (options.implicitTls) (server as TlsServer).setSecureContext({ ...tls, minVersion: 'TLSv1.2' });
    },
  };
}

/** One client, from greeting to close. */
async function session(raw: Socket, options: Pop3Options, deps: Pop3Deps, log: Logger, context: SecureContext | null, id: string): Promise<void> {
  let socket: Socket = raw;
  let secure = options.implicitTls;
  const ip = raw.remoteAddress ?? '';
  const slog = log.child({ sessionId: id, ip });
  let buffer = '';
  let waiter: (() => void) | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  /** QUIT was answered: the socket is closing gracefully. */
  let ending = false;

  const onData = (d: string) => {
    buffer += d;
    waiter?.();
  };
  const onClose = () => {
    closed = true;
    waiter?.();
  };
  const ignore = () => undefined;
  const attach = (s: Socket) => {
    s.setNoDelay(true);
    s.setEncoding('latin1');
    s.on('data', onData);
    s.on('error', ignore);
    s.on('close', onClose);
  };
  /** Says a last line and closes gracefully (a TLS socket still has to encrypt it). */
  const goodbye = (line: string) => {
    ending = true;
    if (!closed) socket.end(`${line}\r\n`);
    setTimeout(() => socket.destroy(), 10_000).unref();
  };
  attach(socket);
  const write = (line: string) => {
    if (!closed) socket.write(`${line}\r\n`);
  };
  const idle = () => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      goodbye('-ERR autologout: idle for too long');
      waiter?.();
      closed = true;
    }, options.idleTimeoutMs);
    timer.unref();
  };

  /** The next command line, or null when the client has gone. */
  async function nextLine(): Promise<string | null> {
    for (;;) {
      const nl = buffer.indexOf('\n');
      if (nl >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (nl + 1 > MAX_COMMAND) {
          write('-ERR command line too long');
          continue;
        }
        return line;
      }
      if (buffer.length > MAX_COMMAND) {
        goodbye('-ERR command line too long');
        return null;
      }
      if (closed) return null;
      await new Promise<void>((resolve) => (waiter = resolve));
      waiter = null;
    }
  }

  let state = 'authorization' as 'authorization' | 'transaction';
  let user: string | null = null;
  let mailbox: string | null = null;
  let messages: MailboxMessage[] = [];
  const deleted = new Set<number>();
  let login = '';

  const plaintextAllowed = () => secure || (options.allowPlaintextOnLoopback && isLoopback(ip));

  const capabilities = () => [
    'TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING',
    ...(plaintextAllowed() ? ['USER', 'SASL PLAIN'] : []),
    ...(state === 'authorization' && !secure && context !== null ? ['STLS'] : []),
    'IMPLEMENTATION ldapmta',
  ];

  async function tryLogin(name: string, password: string): Promise<void> {
    const locked = await deps.limits.lockedFor(ip, name);
    if (locked > 0) {
      write(`-ERR [SYS/TEMP] too many failed logins, try again in ${locked} s`);
      return;
    }
    let result: LoginResult;
    try {
      result = await deps.authenticate(name, password);
    } catch {
      write('-ERR [SYS/TEMP] the directory is not available, try again later');
      return;
    }
    if (!result.ok) {
      const delay = await deps.limits.failed(ip, name);
      slog.info({ login: name, reason: result.reason, delayMs: delay }, 'authentication failed');
      await new Promise((r) => setTimeout(r, delay));
      write('-ERR [AUTH] authentication failed');
      return;
    }
    const base = options.mailboxes.endsWith('/') ? options.mailboxes : `${options.mailboxes}/`;
    if (result.mailbox === null || !result.mailbox.startsWith(base)) {
      slog.warn({ login: name, mailbox: result.mailbox }, 'login has no usable mailbox here');
      write('-ERR [SYS/PERM] no mailbox here for this account');
      return;
    }
    if (deps.inUse.has(result.mailbox)) {
      write('-ERR [IN-USE] the mailbox is open in another session');
      return;
    }
    deps.inUse.add(result.mailbox);
    mailbox = result.mailbox;
    login = result.login;
    try {
      messages = await listMailbox(mailbox);
    } catch (err) {
      deps.inUse.delete(mailbox);
      mailbox = null;
      slog.error({ login, err: (err as Error).message }, 'cannot read the mailbox');
      write('-ERR [SYS/TEMP] cannot open the mailbox now');
      return;
    }
    state = 'transaction';
    const octets = messages.reduce((n, m) => n + m.size, 0);
    slog.info({ login, messages: messages.length, octets, tls: secure }, 'pop3 login');
    write(`+OK ${login} has ${messages.length} message(s) (${octets} octets)`);
  }

  /** The message named by a 1-based number argument, or an -ERR sent and null. */
  function pick(arg: string | undefined): { index: number; message: MailboxMessage } | null {
    const n = arg !== undefined && /^\d{1,9}$/.test(arg) ? Number(arg) : NaN;
    const message = Number.isInteger(n) ? messages[n - 1] : undefined;
    if (message === undefined || deleted.has(n - 1)) {
      write(message === undefined ? '-ERR no such message' : '-ERR message already deleted');
      return null;
    }
    return { index: n - 1, message };
  }

  /** RETR (all of it) or TOP (the header, the empty line and `maxBodyLines` body lines), dot-stuffed. */
  async function send(message: MailboxMessage, maxBodyLines: number | null): Promise<void> {
    // Small messages are read at once; large ones streamed (TOP reads the whole file, then cuts it).
    const stream: Readable | null = maxBodyLines === null && message.bytes > 256 * 1024 ? openMessage(mailbox!, message) : null;
    // One segment for status line, message and terminator where it fits: no waiting on delayed ACKs.
    socket.cork();
    let first = true;
    let atLineStart = true;
    const out = async (data: Buffer) => {
      if (first) write(`+OK ${message.size} octets`);
      first = false;
      const wire = wireLines(data, atLineStart);
      atLineStart = wire.atLineStart;
      if (!socket.write(wire.out)) {
        socket.uncork();
        await new Promise((r) => socket.once('drain', r));
        socket.cork();
      }
    };
    try {
      if (stream !== null) {
        for await (const chunk of stream) await out(chunk as Buffer);
      } else {
        const whole = await readMessage(mailbox!, message);
        await out(maxBodyLines === null ? whole : whole.subarray(0, topLength(whole, maxBodyLines)));
      }
    } catch {
      if (first) {
        write('-ERR [SYS/TEMP] cannot read the message');
        return;
      }
      socket.destroy(); // mid-response: the client must not take a cut message for a whole one
      return;
    } finally {
      stream?.destroy();
      if (first || socket.destroyed) socket.uncork();
    }
    if (first) write(`+OK ${message.size} octets`);
    socket.write(atLineStart ? '.\r\n' : '\r\n.\r\n');
    socket.uncork();
  }

  write(`+OK ${options.hostname} ldapmta POP3 server ready`);
  idle();
  try {
    for (;;) {
      const line = await nextLine();
      if (line === null) return;
      idle();
      const [verb = '', ...args] = line.split(' ');
      const command = verb.toUpperCase();
      if (command === 'QUIT') {
        if (state === 'transaction') {
          const gone = messages.filter((_, i) => deleted.has(i));
          const failed = await removeMessages(mailbox!, gone);
          slog.info({ login, deleted: gone.length - failed.length, failed: failed.length }, 'pop3 logout');
          write(failed.length === 0 ? `+OK ${options.hostname} bye (${gone.length} message(s) deleted)` : '-ERR [SYS/TEMP] some deleted messages were not removed');
        } else {
          write(`+OK ${options.hostname} bye`);
        }
        // end(), not destroy(): replies still buffered (TLS encrypts asynchronously) must reach the client.
        ending = true;
        socket.end();
        setTimeout(() => socket.destroy(), 10_000).unref();
        return;
      }
      if (command === 'CAPA') {
        write('+OK capability list follows');
        for (const c of capabilities()) write(c);
        write('.');
        continue;
      }
      if (command === 'NOOP' && state === 'transaction') {
        write('+OK');
        continue;
      }
      if (state === 'authorization') {
        if (command === 'STLS') {
          if (secure || context === null) {
            write('-ERR STLS not available');
            continue;
          }
          write('+OK begin TLS negotiation');
          // Anything the client pipelined after STLS was sent in clear text: thrown away (RFC 2595 §4, CVE-2011-0411).
          buffer = '';
          user = null; // a USER given in clear text does not carry over into TLS
          socket.off('data', onData);
          socket.off('close', onClose);
          const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
          await new Promise<void>((resolve, reject) => {
            tls.once('secure', resolve);
            tls.once('error', reject);
          }).catch(() => {
            closed = true;
          });
          if (closed) return;
          socket = tls;
          secure = true;
          attach(socket);
          continue;
        }
        if (command === 'USER') {
          if (!plaintextAllowed()) {
            write('-ERR [AUTH] plain-text login needs TLS first: use STLS');
            continue;
          }
          user = args.join(' ');
          write(user === '' ? '-ERR a name is needed' : '+OK now the password');
          if (user === '') user = null;
          continue;
        }
        if (command === 'PASS') {
          if (user === null) {
            write('-ERR USER first');
            continue;
          }
          const name = user;
          user = null;
          await tryLogin(name, line.slice(5));
          continue;
        }
        if (command === 'AUTH') {
          if (args.length === 0) {
            write('+OK');
            write('PLAIN');
            write('.');
            continue;
          }
          if (args[0]!.toUpperCase() !== 'PLAIN') {
            write('-ERR unsupported mechanism');
            continue;
          }
          if (!plaintextAllowed()) {
            write('-ERR [AUTH] PLAIN needs TLS first: use STLS');
            continue;
          }
          let response = args[1];
          if (response === undefined) {
            write('+ ');
            const next = await nextLine();
            if (next === null) return;
            response = next;
          }
          if (response === '*') {
            write('-ERR authentication cancelled');
            continue;
          }
          const decoded = /^[A-Za-z0-9+/]*={0,2}$/.test(response) ? Buffer.from(response, 'base64').toString('utf8') : '';
          const parts = decoded.split('\0');
          if (parts.length !== 3 || (parts[0] !== '' && parts[0] !== parts[1])) {
            write('-ERR [AUTH] malformed PLAIN response');
            continue;
          }
          await tryLogin(parts[1]!, parts[2]!);
          continue;
        }
        write('-ERR not allowed before login');
        continue;
      }
      // TRANSACTION
      switch (command) {
        case 'STAT': {
          const live = messages.filter((_, i) => !deleted.has(i));
          write(`+OK ${live.length} ${live.reduce((n, m) => n + m.size, 0)}`);
          break;
        }
        case 'LIST':
        case 'UIDL': {
          const field = (m: MailboxMessage) => (command === 'LIST' ? String(m.size) : m.uid);
          if (args[0] !== undefined) {
            const found = pick(args[0]);
            if (found !== null) write(`+OK ${found.index + 1} ${field(found.message)}`);
            break;
          }
          write('+OK');
          messages.forEach((m, i) => {
            if (!deleted.has(i)) write(`${i + 1} ${field(m)}`);
          });
          write('.');
          break;
        }
        case 'RETR': {
          const found = pick(args[0]);
          if (found !== null) await send(found.message, null);
          break;
        }
        case 'TOP': {
          const lines = args[1] !== undefined && /^\d{1,9}$/.test(args[1]) ? Number(args[1]) : NaN;
          if (!Number.isInteger(lines)) {
            write('-ERR usage: TOP message lines');
            break;
          }
          const found = pick(args[0]);
          if (found !== null) await send(found.message, lines);
          break;
        }
        case 'DELE': {
          const found = pick(args[0]);
          if (found !== null) {
            deleted.add(found.index);
            write(`+OK message ${found.index + 1} deleted`);
          }
          break;
        }
        case 'RSET':
          deleted.clear();
          write(`+OK ${messages.length} message(s)`);
          break;
        default:
          write('-ERR unknown command');
      }
    }
  } finally {
    if (timer !== null) clearTimeout(timer);
    if (mailbox !== null) deps.inUse.delete(mailbox);
    if (!ending) socket.destroy();
  }
}
