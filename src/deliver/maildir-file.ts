// One message file in a checked Maildir: unique name, CRLF→LF while streaming, tmp/ → fsync → new/.
// Must never overwrite a file (names are unique), follow a symlink for the file, buffer a whole message, or leave tmp/ debris.
import { constants } from 'node:fs';
import { lstat, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MailError, temporary } from '../mail.ts';

const CR = 0x0d;
const LF = 0x0a;
const CR_ONLY = Buffer.from([CR]);
let sequence = 0;
/** Read once: os.hostname() is a uname() system call. */
const hostname = os.hostname();

/** The Maildir convention's host part: `/` → `\057`, `:` → `\072`. Pure. */
export function escapeHostname(host: string): string {
  return host.replace(/\//g, '\\057').replace(/:/g, '\\072');
}

/** `<seconds>.M<microseconds>P<pid>Q<counter>.<host>` for a time in (fractional) epoch milliseconds. Pure. */
export function uniqueName(epochMs: number, pid: number, counter: number, host: string): string {
  const seconds = Math.floor(epochMs / 1000);
  const micros = Math.min(999_999, Math.max(0, Math.floor((epochMs - seconds * 1000) * 1000)));
  return `${seconds}.M${micros}P${pid}Q${counter}.${escapeHostname(host)}`;
}

/** CRLF → LF across chunk boundaries: a chunk's trailing CR waits in `state` for the next chunk. Pure but for `state`. */
export function crlfToLf(chunk: Buffer, state: { cr: boolean }): Buffer {
  if (chunk.length === 0) return chunk;
  const parts: Buffer[] = [];
  if (state.cr) {
    state.cr = false;
    if (chunk[0] !== LF) parts.push(CR_ONLY);
  }
  let from = 0;
  for (;;) {
    const at = chunk.indexOf(CR, from);
    if (at === -1) {
      parts.push(chunk.subarray(from));
      break;
    }
    if (at === chunk.length - 1) {
      parts.push(chunk.subarray(from, at));
      state.cr = true;
      break;
    }
    parts.push(chunk.subarray(from, chunk[at + 1] === LF ? at : at + 1)); // a lone CR stays
    from = at + 1;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Any failure as a MailError: full disk or quota → 4.3.1, any other I/O → 4.3.0. */
export function ioFailure(err: unknown): MailError {
  if (err instanceof MailError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return temporary('4.3.1', 'mailbox storage full', err, 452);
  return temporary('4.3.0', 'local delivery failed, try again later', err);
}

/**
 * Writes `header` then `body` (LF line endings) to tmp/, fsyncs it, renames it into new/ as
 * `<unique>,S=<bytes>,W=<bytes with CRLF>` and fsyncs new/. On failure nothing stays behind.
 */
export async function writeMessage(maildir: string, header: string, body: AsyncIterable<Buffer | string>): Promise<{ file: string; bytes: number }> {
  const { handle, name } = await createTmp(maildir);
  const tmp = path.join(maildir, 'tmp', name);
  let toClose: FileHandle | null = handle;
  let file: string | null = null;
  try {
    const { bytes, lines } = await copy(handle, header, body);
    await handle.sync();
    toClose = null;
    await handle.close();
    // ,W= is the size with CRLF line ends, as POP3 and IMAP count it (Dovecot's convention).
    const target = path.join(maildir, 'new', `${name},S=${bytes},W=${bytes + lines}`);
    // rename(), as Dovecot and courier deliver: the unique name cannot exist already (time, pid,
    // per-process counter and host are in it), and one call does what link()+unlink() did.
    await rename(tmp, target);
    file = target;
    await syncDirectory(path.join(maildir, 'new'));
    return { file, bytes };
  } catch (err) {
    await toClose?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if (file !== null) await unlink(file).catch(() => undefined);
    throw ioFailure(err);
  }
}

async function createTmp(maildir: string): Promise<{ handle: FileHandle; name: string }> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  for (let attempt = 0; ; attempt++) {
    const name = uniqueName(performance.timeOrigin + performance.now(), process.pid, ++sequence, hostname);
    try {
      return { handle: await open(path.join(maildir, 'tmp', name), flags, 0o600), name };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw ioFailure(err);
    }
  }
}

/** Writes the message with LF line ends; returns its bytes and its lines (so its size with CRLF is bytes + lines). */
async function copy(handle: FileHandle, header: string, body: AsyncIterable<Buffer | string>): Promise<{ bytes: number; lines: number }> {
  const state = { cr: false };
  let lines = 0;
  const counted = (buffer: Buffer): Buffer => {
    for (let i = buffer.indexOf(0x0a); i !== -1; i = buffer.indexOf(0x0a, i + 1)) lines++;
    return buffer;
  };
  let bytes = await writeAll(handle, counted(crlfToLf(Buffer.from(header, 'utf8'), state)));
  for await (const chunk of body) {
    bytes += await writeAll(handle, counted(crlfToLf(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk, state)));
  }
  if (state.cr) bytes += await writeAll(handle, CR_ONLY);
  return { bytes, lines };
}

async function writeAll(handle: FileHandle, buffer: Buffer): Promise<number> {
  for (let done = 0; done < buffer.length;) {
    done += (await handle.write(buffer, done, buffer.length - done)).bytesWritten;
  }
  return buffer.length;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The Maildir convention: a file left in tmp/ for 36 hours is debris of an interrupted delivery. */
export const TMP_DEBRIS_AGE_MS = 36 * 3600 * 1000;

/** A Maildir unique name as delivery agents write them in tmp/ ("<seconds>.<more>"). */
const MAILDIR_NAME = /^\d+\./;

/**
 * Deletes regular files in `<maildir>/tmp/` named like Maildir messages and last modified before
 * `now - TMP_DEBRIS_AGE_MS` (what a crash mid-delivery leaves); returns how many. Younger files
 * may still be being written; other names (qmail-ldap's auto-reply stamps `@sender`) are not ours.
 */
export async function sweepTmp(maildir: string, now = Date.now()): Promise<number> {
  const dir = path.join(maildir, 'tmp');
  let removed = 0;
  for (const name of await readdir(dir)) {
    if (!MAILDIR_NAME.test(name)) continue;
    const file = path.join(dir, name);
    const info = await lstat(file).catch(() => null);
    if (info === null || !info.isFile() || info.mtimeMs > now - TMP_DEBRIS_AGE_MS) continue;
    await unlink(file).then(() => removed++, () => undefined);
  }
  return removed;
}
