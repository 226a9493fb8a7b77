// IMAP clients for the integration tests: a raw socket client (exact bytes out, whole responses in,
// literals kept inline, STARTTLS on the same connection), Python's imaplib run as a child process,
// and an imapflow client with the test defaults. Talks to the server over its sockets only.
import { execFile } from 'node:child_process';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { connectRaw, RawConnection } from './raw-connection.ts';

// ---- a raw IMAP client --------------------------------------------------------------------------

export interface ImapReply {
  /** The tagged status line, e.g. "a1 OK [APPENDUID 7 3] APPEND completed". */
  tagged: string;
  /** Every response before it (untagged "* …" and continuation "+ …"), literals inline with their CRLFs. */
  untagged: string[];
}

/** Exact bytes out (latin1), whole responses in: a response ending in {n} takes its n bytes and the rest of its line. */
export class ImapRaw extends RawConnection {
  /** Connects (implicit TLS when `tls`); the greeting is left unread. */
  static async open(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<ImapRaw> {
    return new ImapRaw(await connectRaw(port, options));
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
  response(timeoutMs = 5000): Promise<string> {
    return this.waitFor('a response', () => this.take(), timeoutMs);
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

/** Logs out politely; a client already closed is just closed. */
export async function done(...clients: (ImapFlow | undefined)[]): Promise<void> {
  for (const c of clients) {
    if (c === undefined) continue;
    await c.logout().catch(() => c.close());
  }
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
