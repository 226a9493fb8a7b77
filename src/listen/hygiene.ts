// A pass-through check of the DATA bytes: bare LF or bare CR anywhere (the raw material of SMTP
// smuggling, RFC 5321 §2.3.8), too many Received headers (a loop), an oversized message. It
// forwards every byte and fails only at the end, so the client has sent its whole message. Also
// collectMessage(): a whole DATA, checked, in memory.
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { MailError, permanent } from '../mail.ts';

const CR = 0x0d;
const LF = 0x0a;
const RECEIVED = Buffer.from('received:');

export interface HygieneOptions {
  maxReceived: number;
  /** Asked at the end: did the SMTP layer see more than the size limit? */
  oversized: () => boolean;
  /** Every recipient refuses messages larger than this (their largest mailSizeMax); null: none does. */
  refuseAbove: number | null;
}

export class DataHygiene extends Transform {
  private previous = -1;
  private bareLineEnd = false;
  private inHeaders = true;
  /** Bytes of the current line seen so far, up to the length of "received:". */
  private lineStart: number[] = [];
  private lineLength = 0;
  private received = 0;
  private bytes = 0;

  constructor(private readonly options: HygieneOptions) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    for (const byte of chunk) this.scan(byte);
    callback(null, chunk);
  }

  private scan(byte: number): void {
    if (byte === LF && this.previous !== CR) this.bareLineEnd = true;
    if (this.previous === CR && byte !== LF) this.bareLineEnd = true;
    if (this.inHeaders) {
      if (byte === LF) {
        // An empty line (just CRLF) ends the header section.
        if (this.lineLength <= 1) this.inHeaders = false;
        this.lineStart = [];
        this.lineLength = 0;
      } else {
        if (this.lineLength < RECEIVED.length) {
          this.lineStart.push(byte | 0x20);
          if (this.lineStart.length === RECEIVED.length && Buffer.from(this.lineStart).equals(RECEIVED)) this.received++;
        }
        this.lineLength++;
      }
    }
    this.previous = byte;
  }

  override _flush(callback: TransformCallback): void {
    if (this.previous === CR) this.bareLineEnd = true;
    if (this.options.oversized()) {
      callback(permanent('5.3.4', 'message exceeds the size limit', undefined, 552));
    } else if (this.options.refuseAbove !== null && this.bytes > this.options.refuseAbove) {
      callback(permanent('5.2.3', 'message too large for the recipients', undefined, 552));
    } else if (this.bareLineEnd) {
      callback(permanent('5.6.0', 'bare LF or CR in message (RFC 5321 2.3.8): lines must end with CRLF', undefined, 550));
    } else if (this.received > this.options.maxReceived) {
      callback(permanent('5.4.6', `too many Received headers (${this.received}): mail loop`, undefined, 554));
    } else {
      callback();
    }
  }
}

/**
 * The whole message of one DATA, through the checker, into memory (submission, and the MX listener
 * when content filters run: a verdict must come before the 250). Resolves once the client's data
 * has ended; rejects with the checker's MailError, or 4.4.2 when the client went away mid-DATA.
 */
export function collectMessage(stream: Readable & { readableEnded: boolean }, hygiene: DataHygiene): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let failure: Error | null = null;
  hygiene.on('data', (c: Buffer) => chunks.push(c));
  hygiene.once('error', (err) => {
    failure ??= err;
    stream.unpipe(hygiene);
    stream.resume();
  });
  stream.once('close', () => {
    if (!stream.readableEnded) failure ??= new MailError('temporary', '4.4.2', 'connection lost during DATA');
  });
  const finished = new Promise<void>((resolve) => {
    hygiene.once('end', resolve);
    hygiene.once('error', () => resolve());
    stream.once('close', () => setImmediate(resolve));
  });
  stream.pipe(hygiene);
  return finished.then(() => {
    if (failure !== null) throw failure;
    return Buffer.concat(chunks);
  });
}
