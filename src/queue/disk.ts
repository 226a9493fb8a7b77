// The queue's disk primitives: streaming a body to a file, durable small writes, group-committed
// directory fsyncs, header reads and disk-error mapping. Knows no queue layout or message state.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MailError, temporary } from '../mail.ts';

/** Every disk failure is temporary: the client or the delivery loop tries again later. */
export function diskError(err: unknown): MailError {
  if (err instanceof MailError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return temporary('4.3.1', 'insufficient system storage', err, 452);
  return temporary('4.3.0', 'local error in processing', err);
}

/** Wraps a failure of the body stream itself (not of the disk), so the caller can rethrow it unchanged. */
export class BodyStreamError {
  constructor(readonly error: unknown) {}
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Streams `body` into a new file at `path` (which must not exist), fsyncs and closes it; returns
 * the byte count. A failure of `body` is thrown as a BodyStreamError; a disk failure as `diskError`.
 * `created.file` is set once the file exists (so a caller cleaning up removes only its own file).
 * Never holds more than one stream buffer of the body in memory.
 */
export async function writeBodyFile(body: Readable, path: string, created: { file: boolean } = { file: false }): Promise<number> {
  // The body may fail while the file is being opened; pipeline() still sees that failure (it
  // checks body.errored), but only this listener keeps it from being an uncaught 'error'.
  const early = (): void => undefined;
  body.on('error', early);
  const fh = await open(path, 'wx', 0o600).catch((err: unknown) => {
    body.destroy();
    body.off('error', early);
    throw diskError(err);
  });
  created.file = true;
  let bytes = 0;
  let diskFailure: unknown = null;
  const sink = new Writable({
    highWaterMark: 64 * 1024,
    writev(chunks, callback) {
      const data = chunks.length === 1 ? chunks[0]!.chunk as Buffer : Buffer.concat(chunks.map((c) => c.chunk as Buffer));
      writeAll(fh, data).then(() => { bytes += data.length; callback(); },
        (err: unknown) => { diskFailure = err; callback(err as Error); });
    },
  });
  try {
    try {
      await pipeline(body, sink);
    } catch (err) {
      throw diskFailure === null ? new BodyStreamError(err) : diskError(diskFailure);
    }
    await fh.sync().catch((err: unknown) => { throw diskError(err); });
  } finally {
    body.off('error', early);
    await fh.close().catch(() => undefined);
  }
  return bytes;
}

/** Writes `data` to `path`, fsyncs and closes it. `exclusive` refuses an existing file. */
export async function writeFileSynced(path: string, data: string | Buffer, exclusive: boolean): Promise<void> {
  const fh = await open(path, exclusive ? 'wx' : 'w', 0o600);
  try {
    await writeAll(fh, typeof data === 'string' ? Buffer.from(data) : data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Group commit for one directory: every caller of `sync()` is answered by one fsync of the
 * directory that began after the call. Callers arriving within one tick, or while an fsync is in
 * flight, share the next one, so the rate of directory fsyncs does not cap the rate of messages.
 */
export class DirSync {
  /** fsyncs actually issued. */
  count = 0;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(readonly path: string) {}

  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const fh = await open(this.path, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        this.count++;
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.running = false;
  }
}

/** The header block of a stored message (up to the first empty line), reading at most `cap` bytes. */
export async function readHeaders(path: string, cap = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  const stream = createReadStream(path, { start: 0, end: cap - 1, highWaterMark: 16 * 1024 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
    const text = Buffer.concat(chunks, length).toString('utf8');
    const end = text.search(/\r?\n\r?\n/);
    if (end >= 0) {
      stream.destroy();
      return text.slice(0, end);
    }
  }
  const text = Buffer.concat(chunks, length).toString('utf8');
  // No blank line within the cap (or a message without a body): keep whole lines only.
  return length >= cap ? text.slice(0, text.lastIndexOf('\n') + 1) : text;
}
