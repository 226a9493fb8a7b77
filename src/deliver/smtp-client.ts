// One outgoing SMTP connection: greeting, EHLO, opportunistic STARTTLS, optional AUTH PLAIN, and
// transactions with per-recipient replies (pipelined when the server offers PIPELINING). It reports
// replies as data; smtp.ts turns them into MailErrors. Knows nothing of queues, routes or retries.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';

export interface SmtpReply {
  readonly code: number;
  /** The enhanced status code (RFC 2034) when the server gave one. */
  readonly status: string | null;
  /** All text lines, without the code, joined by a space. */
  readonly text: string;
}

export interface Extensions {
  readonly pipelining: boolean;
  readonly eightBitMime: boolean;
  readonly smtpUtf8: boolean;
  readonly starttls: boolean;
  /** SIZE limit announced; 0 for "SIZE without a limit", null when not announced. */
  readonly size: number | null;
  readonly authPlain: boolean;
}

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  /** The name this node says in EHLO. */
  readonly helo: string;
  /** For SNI and logs. */
  readonly serverName: string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  /** 'opportunistic': STARTTLS when offered, unverified; 'none': never. */
  readonly tls: 'opportunistic' | 'none';
  readonly auth?: { readonly user: string; readonly password: string } | null;
}

export interface Transaction {
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly size: number;
  readonly eightBit: boolean;
  readonly smtpUtf8: boolean;
  /** The message as stored (CRLF lines, not dot-stuffed). */
  readonly body: () => Readable;
}

export interface TransactionReplies {
  readonly mail: SmtpReply;
  /** One per recipient, in order; empty when MAIL was refused. */
  readonly rcpt: readonly SmtpReply[];
  /** The reply after the final dot (or to DATA itself when it was refused); null when DATA was not sent. */
  readonly data: SmtpReply | null;
}

/** A failure of the connection itself (refused, timed out, dropped, TLS): the stage says where. */
export class ConnectionError extends Error {
  constructor(readonly stage: string, message: string, readonly reply: SmtpReply | null = null) {
    super(message);
    this.name = 'ConnectionError';
  }
}

const MAX_REPLY_LINES = 100;
const MAX_LINE = 4096;

export class SmtpClient {
  private socket: Socket | TLSSocket;
  private buffer = '';
  private lines: string[] = [];
  private waiting: { resolve: (r: SmtpReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private ready: SmtpReply[] = [];
  private failure: Error | null = null;
  extensions: Extensions = { pipelining: false, eightBitMime: false, smtpUtf8: false, starttls: false, size: null, authPlain: false };
  /** True once STARTTLS succeeded. */
  tls = false;
  /** Transactions completed on this connection. */
  used = 0;
  /** True when the server is between transactions (after the reply to the final dot, or a refused MAIL): no RSET needed. */
  idle = true;

  private constructor(socket: Socket, private readonly options: ConnectOptions) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connect, read the greeting, EHLO (HELO if refused), STARTTLS when offered, AUTH when asked. */
  static async open(options: ConnectOptions): Promise<SmtpClient> {
    const socket = await connectSocket(options.host, options.port, options.connectTimeoutMs);
    const client = new SmtpClient(socket, options);
    try {
      const greeting = await client.read('greeting');
      if (greeting.code !== 220) throw new ConnectionError('greeting', `greeting ${greeting.code} ${greeting.text}`, greeting);
      await client.hello();
      if (options.tls === 'opportunistic' && client.extensions.starttls) await client.startTls();
      if (options.auth) await client.authenticate(options.auth.user, options.auth.password);
      return client;
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  get usable(): boolean {
    return this.failure === null && !this.socket.destroyed;
  }

  get remote(): string {
    return `${this.options.serverName}[${this.options.host}]:${this.options.port}`;
  }

  /** MAIL, RCPT…, DATA and the message; pipelined when the server allows it. */
  async send(tx: Transaction): Promise<TransactionReplies> {
    this.used++;
    this.idle = false;
    const replies = await this.transaction(tx);
    // After the reply to the final dot, or a refused MAIL, the server is back at the start (RFC 5321 §4.1.1.4, §3.3).
    this.idle = replies.mail.code !== 250 || this.ended;
    return replies;
  }

  /** Set once the server answered a final dot: the transaction is over whatever the reply. */
  private ended = false;

  private async transaction(tx: Transaction): Promise<TransactionReplies> {
    this.ended = false;
    const mail = `MAIL FROM:<${tx.sender}>${this.mailParameters(tx)}`;
    const rcpts = tx.recipients.map((r) => `RCPT TO:<${r}>`);
    if (this.extensions.pipelining) {
      this.write([mail, ...rcpts, 'DATA'].join('\r\n') + '\r\n');
      const mailReply = await this.read('MAIL');
      const rcptReplies: SmtpReply[] = [];
      for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await this.read('RCPT'));
      const dataReply = await this.read('DATA');
      if (mailReply.code !== 250) return { mail: mailReply, rcpt: [], data: null };
      const accepted = rcptReplies.some((r) => r.code === 250 || r.code === 251);
      if (dataReply.code !== 354) return { mail: mailReply, rcpt: rcptReplies, data: accepted ? dataReply : null };
      if (!accepted) {
        // A server that says 354 with no recipient gets an empty message, which it must refuse.
        this.write('.\r\n');
        await this.read('end of DATA');
        this.ended = true;
        return { mail: mailReply, rcpt: rcptReplies, data: null };
      }
      return { mail: mailReply, rcpt: rcptReplies, data: await this.sendBody(tx.body()) };
    }
    const mailReply = await this.command(mail, 'MAIL');
    if (mailReply.code !== 250) return { mail: mailReply, rcpt: [], data: null };
    const rcptReplies: SmtpReply[] = [];
    for (const line of rcpts) rcptReplies.push(await this.command(line, 'RCPT'));
    if (!rcptReplies.some((r) => r.code === 250 || r.code === 251)) return { mail: mailReply, rcpt: rcptReplies, data: null };
    const dataReply = await this.command('DATA', 'DATA');
    if (dataReply.code !== 354) return { mail: mailReply, rcpt: rcptReplies, data: dataReply };
    return { mail: mailReply, rcpt: rcptReplies, data: await this.sendBody(tx.body()) };
  }

  /** Ready the connection for another transaction (RSET unless it is already between transactions); false when it cannot be reused. */
  async reset(): Promise<boolean> {
    if (!this.usable) return false;
    if (this.idle) return true;
    try {
      return (await this.command('RSET', 'RSET')).code === 250;
    } catch {
      return false;
    }
  }

  /** QUIT politely (bounded by the reply timeout), then close. */
  async quit(): Promise<void> {
    if (this.usable) {
      try {
        await this.command('QUIT', 'QUIT');
      } catch {
        // The server may close before answering; nothing to do.
      }
    }
    this.destroy();
  }

  destroy(): void {
    this.fail(new ConnectionError('close', 'connection closed'));
    this.socket.destroy();
  }

  private mailParameters(tx: Transaction): string {
    let params = '';
    if (this.extensions.size !== null) params += ` SIZE=${tx.size}`;
    if (tx.eightBit && this.extensions.eightBitMime) params += ' BODY=8BITMIME';
    if (tx.smtpUtf8 && this.extensions.smtpUtf8) params += ' SMTPUTF8';
    return params;
  }

  private async hello(): Promise<void> {
    const ehlo = await this.command(`EHLO ${this.options.helo}`, 'EHLO');
    if (ehlo.code === 250) {
      this.extensions = parseExtensions(this.lastLines);
      return;
    }
    const helo = await this.command(`HELO ${this.options.helo}`, 'HELO');
    if (helo.code !== 250) throw new ConnectionError('HELO', `HELO refused: ${helo.code} ${helo.text}`, helo);
    this.extensions = { pipelining: false, eightBitMime: false, smtpUtf8: false, starttls: false, size: null, authPlain: false };
  }

  private async startTls(): Promise<void> {
    const reply = await this.command('STARTTLS', 'STARTTLS');
    if (reply.code !== 220) return; // opportunistic: carry on in plain text
    // Anything the server sent after its 220 arrived before TLS and must not be trusted (response injection).
    this.buffer = '';
    this.lines = [];
    this.ready = [];
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => undefined);
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionError('TLS', 'TLS handshake timed out'));
      }, this.options.timeoutMs);
      const socket = tlsConnect({ socket: plain as Socket, servername: sniName(this.options.serverName), rejectUnauthorized: false, minVersion: 'TLSv1.2' }, () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ConnectionError('TLS', `TLS handshake failed: ${err.message}`));
      });
    });
    this.socket = secure;
    this.attach(secure);
    this.tls = true;
    const ehlo = await this.command(`EHLO ${this.options.helo}`, 'EHLO');
    if (ehlo.code !== 250) throw new ConnectionError('EHLO', `EHLO after STARTTLS refused: ${ehlo.code} ${ehlo.text}`, ehlo);
    this.extensions = parseExtensions(this.lastLines);
  }

  private async authenticate(user: string, password: string): Promise<void> {
    // A password never crosses the network in clear text.
    if (!this.tls) throw new ConnectionError('AUTH', 'authentication is configured but the server offered no STARTTLS; not sending the password');
    if (!this.extensions.authPlain) throw new ConnectionError('AUTH', 'the server does not offer AUTH PLAIN');
    const token = Buffer.from(`\0${user}\0${password}`).toString('base64');
    const reply = await this.command(`AUTH PLAIN ${token}`, 'AUTH');
    if (reply.code !== 235) throw new ConnectionError('AUTH', `authentication failed: ${reply.code} ${reply.text}`, reply);
  }

  private async sendBody(body: Readable): Promise<SmtpReply> {
    let atLineStart = true;
    let last = '';
    // Each chunk goes out when the next one arrives, so the last one leaves with the final dot in one write.
    let held: Buffer | null = null;
    try {
      for await (const chunk of body) {
        const buf = chunk as Buffer;
        if (buf.length === 0) continue;
        const stuffed = dotStuff(buf, atLineStart);
        atLineStart = buf[buf.length - 1] === 0x0a;
        last = (last + buf.subarray(-2).toString('latin1')).slice(-2);
        if (held !== null && !this.socket.write(held)) await waitDrain(this.socket, this.options.timeoutMs);
        held = stuffed;
        if (this.failure) throw this.failure;
      }
    } catch (err) {
      // The message could not be read or sent: this connection is in the middle of DATA for good.
      this.destroy();
      throw err;
    }
    const end = Buffer.from(last.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n', 'latin1');
    if (this.failure) throw this.failure;
    this.socket.write(held === null ? end : Buffer.concat([held, end]));
    const reply = await this.read('end of DATA', 2);
    this.ended = true;
    return reply;
  }

  private lastLines: string[] = [];

  private async command(line: string, stage: string): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.read(stage);
  }

  private write(text: string): void {
    if (this.failure) throw this.failure;
    this.socket.write(text);
  }

  private read(stage: string, timeoutFactor = 1): Promise<SmtpReply> {
    const next = this.ready.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new ConnectionError(stage, `timed out waiting for the reply to ${stage}`));
        this.socket.destroy();
      }, this.options.timeoutMs * timeoutFactor);
      this.waiting = { resolve, reject, timer };
    });
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => this.receive(data));
    socket.on('error', (err) => this.fail(new ConnectionError('connection', err.message)));
    socket.on('close', () => this.fail(new ConnectionError('connection', 'connection closed by the server')));
  }

  private receive(data: string): void {
    this.buffer += data;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
    if (this.buffer.length > MAX_LINE) {
      this.fail(new ConnectionError('reply', 'reply line too long'));
      this.socket.destroy();
    }
  }

  private line(line: string): void {
    const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
    if (m === null || this.lines.length >= MAX_REPLY_LINES) {
      this.fail(new ConnectionError('reply', `malformed reply: ${line.slice(0, 200)}`));
      this.socket.destroy();
      return;
    }
    this.lines.push(line);
    if (m[2] === '-') return;
    const lines = this.lines;
    this.lines = [];
    this.lastLines = lines;
    const reply = parseReply(lines);
    if (this.waiting !== null) {
      const { resolve, timer } = this.waiting;
      this.waiting = null;
      clearTimeout(timer);
      resolve(reply);
    } else {
      this.ready.push(reply);
    }
  }

  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    if (this.waiting !== null) {
      const { reject, timer } = this.waiting;
      this.waiting = null;
      clearTimeout(timer);
      reject(this.failure);
    }
  }
}

/** The code, the enhanced status (when the first line starts with one of the code's class) and the text. Pure. */
export function parseReply(lines: readonly string[]): SmtpReply {
  const code = Number(lines[0]!.slice(0, 3));
  const texts = lines.map((l) => l.slice(4));
  const statusRe = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;
  const first = statusRe.exec(texts[0] ?? '');
  const status = first !== null && first[1] === String(code)[0] ? `${first[1]}.${first[2]}.${first[3]}` : null;
  const text = texts.map((t) => (status !== null ? t.replace(statusRe, '') : t)).join(' ').trim();
  return { code, status, text };
}

/** The EHLO reply's keywords. Pure. */
export function parseExtensions(lines: readonly string[]): Extensions {
  const keywords = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const [keyword = '', ...rest] = line.slice(4).trim().split(/\s+/);
    keywords.set(keyword.toUpperCase(), rest.join(' ').toUpperCase());
  }
  const size = keywords.get('SIZE');
  const auth = keywords.get('AUTH') ?? '';
  return {
    pipelining: keywords.has('PIPELINING'),
    eightBitMime: keywords.has('8BITMIME'),
    smtpUtf8: keywords.has('SMTPUTF8'),
    starttls: keywords.has('STARTTLS'),
    size: size === undefined ? null : Number.parseInt(size, 10) || 0,
    authPlain: auth.split(' ').includes('PLAIN'),
  };
}

/**
 * RFC 5321 §4.5.2 transparency: a '.' at the start of a line is doubled. `atLineStart` says
 * whether the chunk begins a line. Returns the chunk itself when there is nothing to change. Pure.
 */
export function dotStuff(chunk: Buffer, atLineStart: boolean): Buffer {
  const cuts: number[] = [];
  if (atLineStart && chunk[0] === 0x2e) cuts.push(0);
  let i = chunk.indexOf('\n.', 0, 'latin1');
  while (i >= 0) {
    cuts.push(i + 1);
    i = chunk.indexOf('\n.', i + 2, 'latin1');
  }
  if (cuts.length === 0) return chunk;
  const parts: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    parts.push(chunk.subarray(from, cut), DOT);
    from = cut;
  }
  parts.push(chunk.subarray(from));
  return Buffer.concat(parts);
}

const DOT = Buffer.from('.');

/** SNI only for names, never for address literals. */
function sniName(name: string): string | undefined {
  return /^[\d.]+$|:/.test(name) ? undefined : name;
}

function connectSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectionError('connect', `connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new ConnectionError('connect', `connect to ${host}:${port} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
  });
}

function waitDrain(socket: Socket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new ConnectionError('DATA', 'timed out sending the message'));
    }, timeoutMs);
    const done = () => {
      cleanup();
      resolve();
    };
    const gone = () => {
      cleanup();
      reject(new ConnectionError('DATA', 'connection lost while sending the message'));
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('drain', done);
      socket.off('close', gone);
    };
    socket.once('drain', done);
    socket.once('close', gone);
  });
}
