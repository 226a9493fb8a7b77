// A raw-socket SMTP client for transcripts and hostile input: send exact bytes, read whole
// (multi-line) replies. No SMTP library in between, so malformed input reaches the server as is.
import net from 'node:net';

export interface Reply {
  code: number;
  /** The text of every line joined with "\n", without the codes. */
  text: string;
  /** The raw reply, CRLFs included. */
  raw: string;
}

export class Transcript {
  private buffer = '';
  private waiting: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress` picks the client's source address (e.g. 127.0.0.2, another client on loopback). */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<Transcript> {
    const socket = net.connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new Transcript(socket);
  }

  /** Write bytes exactly as given (no CRLF added). */
  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Write a command line (CRLF appended) and read its reply. */
  async command(line: string, timeoutMs = 10_000): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  /** Read one complete reply: lines "NNN-..." then "NNN ...". */
  async reply(timeoutMs = 10_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match) {
        const raw = match[0];
        this.buffer = this.buffer.slice(raw.length);
        const lines = raw.split('\r\n').filter((l) => l !== '');
        return { code: Number(match[1]), text: lines.map((l) => l.slice(4)).join('\n'), raw };
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no complete reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = null;
    }
  }

  /** Greeting and EHLO, returning the EHLO reply. */
  async hello(name = 'client.example.test'): Promise<Reply> {
    const greeting = await this.reply();
    if (greeting.code !== 220) throw new Error(`greeting: ${greeting.raw}`);
    return this.command(`EHLO ${name}`);
  }

  close(): void {
    this.socket.destroy();
  }
}
