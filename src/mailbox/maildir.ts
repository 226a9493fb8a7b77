// The reading side of a Maildir, shared by POP3 (and IMAP later): list the messages (new/ moved to
// cur/ on access, as every Maildir reader does), their unique ids and their sizes with CRLF line
// ends, read one, remove some and keep maildirsize right. The layout is the one deliver/ writes.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { parseMessageName, recordChange } from '../deliver/quota.ts';

export interface MailboxMessage {
  /** Stable unique id: the Maildir unique name (a hash of it when longer than POP3's 70 characters). */
  readonly uid: string;
  /** The file's current name in cur/. */
  readonly name: string;
  /** Bytes on disk (LF line ends). */
  readonly bytes: number;
  /** Size as a client sees it, with CRLF line ends (RFC 1939 "octets"). */
  readonly size: number;
}

/** The unique part of a Maildir file name: before the first "," (size tags) or ":" (info). Pure. */
export function uniquePart(name: string): string {
  return name.split(':')[0]!.split(',')[0]!;
}

/** A POP3 unique-id (RFC 1939 §7: 1 to 70 characters 0x21..0x7E). Pure. */
export function uidOf(name: string): string {
  const unique = uniquePart(name);
  return unique.length <= 70 && /^[\x21-\x7e]+$/.test(unique) ? unique : createHash('sha1').update(unique).digest('hex');
}

/** Sizes from ,S= and ,W= in a name; null when absent. Pure. */
export function sizesOf(name: string): { bytes: number | null; size: number | null } {
  const base = name.split(':')[0]!;
  const s = /,S=(\d+)/.exec(base)?.[1];
  const w = /,W=(\d+)/.exec(base)?.[1];
  return { bytes: s === undefined ? null : Number(s), size: w === undefined ? null : Number(w) };
}

/** `<seconds>.M<micros>P<pid>Q<n>` (and other agents' `<seconds>.<anything>`): the parts that order deliveries. Pure. */
function orderKey(name: string): [number, number, number] {
  const m = /^(\d+)\.(?:M(\d+))?(?:P\d+)?(?:Q(\d+))?/.exec(name);
  if (m === null) return [NaN, 0, 0];
  return [Number(m[1]), m[2] === undefined ? 0 : Number(m[2]), m[3] === undefined ? 0 : Number(m[3])];
}

/**
 * Oldest first: by the seconds at the start of the name, then by its microseconds (`M`, written
 * without padding, so compared as numbers) and counter (`Q`), then by name. Pure.
 */
export function deliveryOrder(a: string, b: string): number {
  const ka = orderKey(a);
  const kb = orderKey(b);
  if (Number.isFinite(ka[0]) && Number.isFinite(kb[0])) {
    for (let i = 0; i < 3; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The file names in a Maildir directory, dot files left out; a directory that does not exist is empty. */
export async function messageNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith('.'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** LF characters in a message (its size with CRLF line ends is bytes + lines). Pure. */
export function countLines(data: Buffer): number {
  let lines = 0;
  for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) lines++;
  return lines;
}

/** Every message of the Maildir, oldest first; a Maildir that does not exist yet is empty. */
export async function listMailbox(maildir: string): Promise<MailboxMessage[]> {
  for (const name of await messageNames(join(maildir, 'new'))) {
    // Seen by a reader now: into cur/ with an empty info, as the Maildir specification asks.
    await rename(join(maildir, 'new', name), join(maildir, 'cur', `${name}:2,`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // another reader took it meanwhile
    });
  }
  const out: MailboxMessage[] = [];
  for (const name of (await messageNames(join(maildir, 'cur'))).sort(deliveryOrder)) {
    let { bytes, size } = sizesOf(name);
    if (bytes === null || size === null) {
      // Delivered by another agent without size tags: count once from the file.
      const data = await readFile(join(maildir, 'cur', name)).catch(() => null);
      if (data === null) continue;
      bytes = data.length;
      size = data.length + countLines(data);
    }
    out.push({ uid: uidOf(name), name, bytes, size });
  }
  return out;
}

/** A message's bytes at once (for small ones). */
export function readMessage(maildir: string, message: MailboxMessage): Promise<Buffer> {
  return readFile(join(maildir, 'cur', message.name));
}

export function openMessage(maildir: string, message: MailboxMessage): Readable {
  return createReadStream(join(maildir, 'cur', message.name));
}

/** Removes the messages; returns the names that could not be removed. maildirsize is updated for the rest. */
export async function removeMessages(maildir: string, messages: readonly MailboxMessage[]): Promise<string[]> {
  const failed: string[] = [];
  let bytes = 0;
  let count = 0;
  for (const message of messages) {
    try {
      await unlink(join(maildir, 'cur', message.name));
      if (parseMessageName(message.name).trashed) continue; // flagged \Deleted over IMAP: not in the quota any more
      bytes += message.bytes;
      count++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // already gone
      failed.push(message.name);
    }
  }
  if (count > 0) await recordChange(maildir, -bytes, -count);
  return failed;
}
