// A raw text connection for protocol tests (POP3, IMAP): exact bytes out (latin1), everything that
// arrives kept in a buffer the protocol's reader takes from, STARTTLS/STLS on the same TCP
// connection, and waits that fail with what was unread. Protocol readers extend it.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { sleep } from './ports.ts';

/** Connects to 127.0.0.1:port (TLS from the first byte when `tls`; certificates are not checked). */
export async function connectRaw(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<Socket> {
  const where = { host: '127.0.0.1', port, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) };
  const socket = options.tls ? tlsConnect({ ...where, rejectUnauthorized: false }) : netConnect(where);
  await new Promise<void>((resolve, reject) => socket.once(options.tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
  return socket;
}

export class RawConnection {
  protected buffer = '';
  protected closed = false;
  private wake: (() => void) | null = null;

  protected constructor(private socket: Socket) {
    this.attach(socket);
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

  /** Waits until `probe` takes something from the buffer; fails when the connection closes or time runs out. */
  protected async waitFor<T>(what: string, probe: () => T | null, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== null) return value;
      if (this.closed) throw new Error(`connection closed while waiting for ${what}; unread: ${JSON.stringify(this.buffer.slice(0, 2000))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer.slice(0, 2000))}`);
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

  /** After the server's yes to STARTTLS/STLS: the TLS handshake on this TCP connection. */
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
