// IMAP clients for the integration tests: a raw socket client (exact bytes out, whole responses in,
// literals kept inline, STARTTLS on the same connection), Python's imaplib run as a child process,
// and an imapflow client with the test defaults. Talks to the server over its sockets only.
import { execFile } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { sleep } from './ports.ts';

// ---- a raw IMAP client --------------------------------------------------------------------------

export interface ImapReply {
  /** The tagged status line, e.g. "a1 OK [APPENDUID 7 3] APPEND completed". */
  tagged: string;
  /** Every response before it (untagged "* …" and continuation "+ …"), literals inline with their CRLFs. */
  untagged: string[];
}

/** Exact bytes out (latin1), whole responses in: a response ending in {n} takes its n bytes and the rest of its line. */
export class ImapRaw {
  private buffer = '';
  private closed = false;
  private wake: (() => void) | null = null;

  private constructor(private socket: Socket) {
    this.attach(socket);
  }

  /** Connects (implicit TLS when `tls`); the greeting is left unread. */
  static async open(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<ImapRaw> {
    const where = { host: '127.0.0.1', port, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) };
    const socket = options.tls ? tlsConnect({ ...where, rejectUnauthorized: false }) : netConnect(where);
    await new Promise<void>((resolve, reject) => socket.once(options.tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
    return new ImapRaw(socket);
  }

  private attach(s: Socket): void {
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      this.buffer += d;
      this.wake?.();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    s.on('error', () => undefined);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** What arrived and was not read yet. */
  get unread(): string {
    return this.buffer;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** One complete response from the buffer, or null. */
  private take(): string | null {
    let pos = 0;
    for (;;) {
      const crlf = this.buffer.indexOf('\r\n', pos);
      if (crlf < 0) return null;
      const literal = /\{(\d+)\}$/.exec(this.buffer.slice(pos, crlf));
      if (literal === null) {
        const response = this.buffer.slice(0, crlf);
        this.buffer = this.buffer.slice(crlf + 2);
        return response;
      }
      pos = crlf + 2 + Number(literal[1]);
      if (this.buffer.length < pos) return null;
    }
  }

  /** The next whole response (untagged, continuation or tagged), without its final CRLF. */
  async response(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const response = this.take();
      if (response !== null) return response;
      if (this.closed) throw new Error(`connection closed while waiting for a response; unread: ${JSON.stringify(this.buffer.slice(0, 2000))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer.slice(0, 2000))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Reads responses until the one tagged `tag`. */
  async until(tag: string, timeoutMs = 5000): Promise<ImapReply> {
    const untagged: string[] = [];
    for (;;) {
      const response = await this.response(timeoutMs);
      if (response.startsWith(`${tag} `)) return { tagged: response, untagged };
      untagged.push(response);
    }
  }

  /** Sends `line` (its first word is the tag) with CRLF and reads up to its tagged reply. */
  async command(line: string, timeoutMs = 5000): Promise<ImapReply> {
    this.write(`${line}\r\n`);
    return this.until(line.slice(0, line.indexOf(' ')), timeoutMs);
  }

  /** After "OK" to STARTTLS: the TLS handshake on this TCP connection. */
  async startTls(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.socket = secure;
    this.attach(secure);
  }

  /** True once the server closed the connection, false when it is still open after `timeoutMs`. */
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(20);
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A raw session past the greeting and STARTTLS, inside TLS. */
export async function rawStartTls(port: number): Promise<ImapRaw> {
  const c = await ImapRaw.open(port);
  const greeting = await c.response();
  if (!greeting.startsWith('* OK ')) throw new Error(`greeting: ${greeting}`);
  const reply = await c.command('s0 STARTTLS');
  if (!reply.tagged.startsWith('s0 OK')) throw new Error(`STARTTLS: ${reply.tagged}`);
  await c.startTls();
  return c;
}

/** A raw session logged in (STARTTLS first unless `plaintext`). */
export async function rawLogin(port: number, user: string, pass: string, plaintext = false): Promise<ImapRaw> {
  let c: ImapRaw;
  if (plaintext) {
    c = await ImapRaw.open(port);
    await c.response();
  } else {
    c = await rawStartTls(port);
  }
  const reply = await c.command(`l0 LOGIN ${user} ${JSON.stringify(pass)}`);
  if (!reply.tagged.startsWith('l0 OK')) {
    c.close();
    throw new Error(`LOGIN ${user}: ${reply.tagged}`);
  }
  return c;
}

// ---- imapflow -----------------------------------------------------------------------------------

/**
 * A connected imapflow client, logged in. STARTTLS on a plain port (imapflow upgrades on its own when
 * offered; `doSTARTTLS` makes it a requirement), or implicit TLS with `secure`. Certificates are not checked.
 */
export async function flow(port: number, user: string, pass: string, options: Partial<ImapFlowOptions> = {}): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: '127.0.0.1', port, secure: false,
    // Required, not opportunistic: a server that stopped offering it must fail the test.
    ...(options.secure === true ? {} : { doSTARTTLS: true }),
    auth: { user, pass }, logger: false, tls: { rejectUnauthorized: false },
    disableAutoIdle: true, connectionTimeout: 10_000, greetingTimeout: 5000, socketTimeout: 30_000,
    ...options,
  });
  client.on('error', () => undefined); // a socket error must not crash the test process; the pending call fails
  await client.connect();
  return client;
}

// ---- Python's imaplib ---------------------------------------------------------------------------

/** Common to every script: imports, an SSL context that does not verify, helpers; `out` is printed as JSON. */
const PRELUDE = `
import imaplib, json, os, ssl, sys, time
PORT = int(os.environ['IMAP_PORT'])
def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def s(x):
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode('latin1')
    if isinstance(x, tuple):
        return [s(i) for i in x]
    if isinstance(x, list):
        return [s(i) for i in x]
    return x
def plain():
    return imaplib.IMAP4('127.0.0.1', PORT, timeout=10)
def starttls():
    m = plain()
    m.starttls(ctx())
    return m
def r(result):
    return {'typ': s(result[0]), 'data': s(result[1])}
def attempt(fn):
    try:
        return r(fn())
    except imaplib.IMAP4.error as e:
        return {'err': str(e)}
out = {}
`;

/** What a script printed: parsed JSON, checked field by field by the assertions. */
export type Json = any;

/** Runs the imaplib PRELUDE + `script` with python3; env values reach it as os.environ; returns the printed `out`. */
export function imaplib(script: string, env: Record<string, string | number>): Promise<Json> {
  const full = `${PRELUDE}\n${script}\nprint(json.dumps(out))\n`;
  const vars = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', full], { env: { ...process.env, ...vars }, timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`python3 failed: ${err.message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? ''));
      } catch {
        reject(new Error(`python3 printed no JSON:\n${stdout}\n--- stderr\n${stderr}`));
      }
    });
  });
}
