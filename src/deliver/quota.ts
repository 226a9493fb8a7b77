// Maildir++ quota (directory-model §3.9): the maildirsize file, its arithmetic and its recalculation.
// Must never write a message, follow a symlink for maildirsize, or touch any file when both limits are null.
import { constants } from 'node:fs';
import { lstat, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Quota } from '../directory/types.ts';
import { asMailError, MailError, permanent, temporary } from '../mail.ts';

export interface Usage { readonly bytes: number; readonly count: number }
export interface SizeFile { readonly definition: Quota; readonly usage: Usage; readonly lines: number }
/** What a read of maildirsize found: its text (empty when too big to read), size and mtime. */
export interface SizeFileStat { readonly text: string; readonly size: number; readonly mtimeMs: number }

export const RECALC_FILE_SIZE = 5120;
export const RECALC_AGE_MS = 900_000;
const RACE_RETRY_MS = 3000;
let sequence = 0;

// ---- pure parts -------------------------------------------------------------------------------

/** Limits with 0, negatives and null all meaning "unlimited" (null). */
export function limitsOf(quota: Quota): Quota {
  const norm = (n: number | null) => (n === null || !(n > 0) ? null : Math.floor(n));
  return { bytes: norm(quota.bytes), count: norm(quota.count) };
}

export const hasQuota = (quota: Quota): boolean => { const q = limitsOf(quota); return q.bytes !== null || q.count !== null; };

/** Digit runs: followed by `S` set the size, by `C` the count; anything else is skipped. */
export function parseQuotaDefinition(text: string): Quota {
  let bytes: number | null = null;
  let count: number | null = null;
  for (const [, digits, unit] of text.matchAll(/(\d+)([SC]?)/g)) {
    if (unit === 'S') bytes = Number(digits);
    else if (unit === 'C') count = Number(digits);
  }
  return limitsOf({ bytes, count });
}

/** `<size>S,<count>C`, leaving out unlimited dimensions; '' when both are unlimited. */
export function formatQuotaDefinition(quota: Quota): string {
  const q = limitsOf(quota);
  return [q.bytes === null ? '' : `${q.bytes}S`, q.count === null ? '' : `${q.count}C`].filter(Boolean).join(',');
}

export function sameQuota(a: Quota, b: Quota): boolean {
  const x = limitsOf(a);
  const y = limitsOf(b);
  return x.bytes === y.bytes && x.count === y.count;
}

/** Parses maildirsize; null when a usage line is malformed (then it is recalculated). Sums below 0 count as 0. */
export function parseMaildirsize(text: string): SizeFile | null {
  const [first = '', ...rest] = text.split('\n');
  let bytes = 0;
  let count = 0;
  let lines = 1;
  for (const line of rest) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    const m = /^([-+]?\d+)\s+([-+]?\d+)$/.exec(trimmed);
    if (m === null) return null;
    bytes += Number(m[1]);
    count += Number(m[2]);
    lines++;
  }
  return { definition: parseQuotaDefinition(first), usage: { bytes: Math.max(0, bytes), count: Math.max(0, count) }, lines };
}

/** Over when usage + size > size limit, or count + 1 > count limit; equality is allowed. */
export function isOver(quota: Quota, usage: Usage, size: number): boolean {
  const q = limitsOf(quota);
  return (q.bytes !== null && usage.bytes + size > q.bytes) || (q.count !== null && usage.count + 1 > q.count);
}

/** The file when it may be trusted for the first check; null (recalculate) when missing, too big, malformed or stale in definition. */
export function trustedFile(found: SizeFileStat | null, quota: Quota): SizeFile | null {
  if (found === null || found.size >= RECALC_FILE_SIZE) return null;
  const parsed = parseMaildirsize(found.text);
  return parsed !== null && sameQuota(parsed.definition, quota) ? parsed : null;
}

/** After an "over" from the file: recalculate unless it has at most two lines and is younger than 900 s. */
export function recalcWhenOver(file: SizeFile, mtimeMs: number, now: number): boolean {
  return file.lines > 2 || now - mtimeMs >= RECALC_AGE_MS;
}

/** A message file name's `,S=` size (null when absent) and whether its `:2,` info holds the T flag. */
export function parseMessageName(name: string): { size: number | null; trashed: boolean } {
  const colon = name.indexOf(':');
  const base = colon === -1 ? name : name.slice(0, colon);
  const info = colon === -1 ? '' : name.slice(colon + 1);
  const size = /,S=(\d+)/.exec(base)?.[1];
  return { size: size === undefined ? null : Number(size), trashed: info.startsWith('2,') && info.slice(2).includes('T') };
}

// ---- file I/O ---------------------------------------------------------------------------------

/** Reads maildirsize without following a symlink; null when missing (or a symlink). */
export async function readSizeFile(maildir: string): Promise<SizeFileStat | null> {
  let handle;
  try {
    handle = await open(path.join(maildir, 'maildirsize'), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return null;
    throw err;
  }
  try {
    const info = await handle.stat();
    const text = info.size >= RECALC_FILE_SIZE ? '' : await handle.readFile('utf8');
    return { text, size: info.size, mtimeMs: info.mtimeMs };
  } finally {
    await handle.close();
  }
}

/** Sums new/ and cur/ of the root and every .Folder but .Trash; notes each directory's mtime for the race check. */
export async function scanUsage(maildir: string): Promise<{ usage: Usage; dirs: [string, number][] }> {
  const folders = (await readdir(maildir, { withFileTypes: true }).catch(missingAsEmpty))
    .filter((e) => e.isDirectory() && e.name.startsWith('.') && e.name !== '.' && e.name !== '..' && e.name !== '.Trash')
    .map((e) => path.join(maildir, e.name));
  let bytes = 0;
  let count = 0;
  const dirs: [string, number][] = [];
  for (const root of [maildir, ...folders]) {
    const one = await folderUsage(root);
    bytes += one.usage.bytes;
    count += one.usage.count;
    dirs.push(...one.dirs);
  }
  return { usage: { bytes, count }, dirs };
}

/** One folder's new/ and cur/ as Maildir++ counts them (messages flagged T left out), and each directory's mtime. */
export async function folderUsage(root: string): Promise<{ usage: Usage; dirs: [string, number][] }> {
  let bytes = 0;
  let count = 0;
  const dirs: [string, number][] = [];
  for (const sub of ['new', 'cur']) {
    const dir = path.join(root, sub);
    const info = await stat(dir).catch(() => null);
    if (info === null || !info.isDirectory()) continue;
    dirs.push([dir, info.mtimeMs]);
    for (const name of await readdir(dir).catch(missingAsEmpty)) {
      if (name.startsWith('.')) continue;
      const { size, trashed } = parseMessageName(name);
      if (trashed) continue;
      const actual = size ?? (await lstat(path.join(dir, name)).then((s) => (s.isFile() ? s.size : null), () => null));
      if (actual === null) continue;
      bytes += actual;
      count++;
    }
  }
  return { usage: { bytes, count }, dirs };
}

function missingAsEmpty(err: unknown): never[] {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
  throw err;
}

/** Writes tmp/maildirsize.<time>.<pid>Q<n> and renames it over maildirsize; false (file discarded) when a directory changed meanwhile. */
export async function installSizeFile(maildir: string, quota: Quota, scan: { usage: Usage; dirs: [string, number][] }): Promise<boolean> {
  const tmp = path.join(maildir, 'tmp', `maildirsize.${Date.now()}.${process.pid}Q${++sequence}`);
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      await handle.writeFile(`${formatQuotaDefinition(quota)}\n${scan.usage.bytes} ${scan.usage.count}\n`);
    } finally {
      await handle.close();
    }
    for (const [dir, mtimeMs] of scan.dirs) {
      if ((await stat(dir).catch(() => null))?.mtimeMs !== mtimeMs) {
        await unlink(tmp);
        return false;
      }
    }
    await rename(tmp, path.join(maildir, 'maildirsize'));
    return true;
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Appends `<bytes> 1` after a delivery. Best effort: the message is already delivered; a missing file is recalculated later. */
export async function recordDelivery(maildir: string, bytes: number): Promise<void> {
  await recordChange(maildir, bytes, 1);
}

/** Appends `<bytes> <count>` (negative after removals) to an existing maildirsize; best effort, as above. */
export async function recordChange(maildir: string, bytes: number, count: number): Promise<void> {
  try {
    const handle = await open(path.join(maildir, 'maildirsize'), constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
    try {
      await handle.write(`${bytes} ${count}\n`);
    } finally {
      await handle.close();
    }
  } catch {
    // ENOENT, ELOOP, ENOSPC…: the next delivery recalculates when the file is missing or off.
  }
}

// ---- decisions with I/O -----------------------------------------------------------------------

/**
 * Recalculations in progress, by Maildir: concurrent checks of one Maildir share one scan (and,
 * at delivery, one install) instead of each rescanning it and racing the others' deliveries.
 * main.ts makes one and passes it to the RCPT check and the delivery agent.
 */
export interface Recalculations {
  share(key: string, work: () => Promise<Usage>): Promise<Usage>;
}

export function sharedRecalculations(): Recalculations {
  const running = new Map<string, Promise<Usage>>();
  return {
    share(key, work) {
      const known = running.get(key);
      if (known !== undefined) return known;
      const started = work().finally(() => running.delete(key));
      running.set(key, started);
      return started;
    },
  };
}

async function recalculate(maildir: string, quota: Quota, write: boolean, raceDelayMs: number): Promise<Usage> {
  for (let attempt = 0; ; attempt++) {
    const scan = await scanUsage(maildir);
    if (!write || (await installSizeFile(maildir, quota, scan))) return scan.usage;
    if (attempt >= 1) throw temporary('4.3.0', 'race condition while recalculating the quota');
    await sleep(raceDelayMs);
  }
}

export interface VerdictOptions {
  readonly write: boolean;
  readonly now?: number;
  readonly raceDelayMs?: number;
  readonly recalculations?: Recalculations;
}

/**
 * Whether a message of `size` bytes fits (reference §3.9 steps 1–4). With `write`, a
 * recalculation is installed as maildirsize; without, nothing is written.
 */
export async function quotaVerdict(maildir: string, quota: Quota, size: number, options: VerdictOptions): Promise<'ok' | 'over'> {
  if (!hasQuota(quota)) return 'ok';
  const delay = options.raceDelayMs ?? RACE_RETRY_MS;
  const fresh = (): Promise<Usage> => {
    const work = () => recalculate(maildir, quota, options.write, delay);
    // Keyed by the limits too: the installed file carries them in its first line.
    const key = `${options.write ? 'write' : 'read'}\0${formatQuotaDefinition(quota)}\0${maildir}`;
    return options.recalculations === undefined ? work() : options.recalculations.share(key, work);
  };
  const found = await readSizeFile(maildir);
  const file = trustedFile(found, quota);
  if (file === null || found === null) {
    return isOver(quota, await fresh(), size) ? 'over' : 'ok';
  }
  if (!isOver(quota, file.usage, size)) return 'ok';
  if (!recalcWhenOver(file, found.mtimeMs, options.now ?? Date.now())) return 'over';
  return isOver(quota, await fresh(), size) ? 'over' : 'ok';
}

/** RCPT-time check: never writes; a missing Maildir counts as empty. Throws a temporary MailError on I/O errors. */
export async function checkQuota(maildir: string, quota: Quota, size: number, recalculations?: Recalculations): Promise<'ok' | 'over'> {
  try {
    return await quotaVerdict(maildir, quota, size, { write: false, ...(recalculations === undefined ? {} : { recalculations }) });
  } catch (err) {
    throw asMailError(err);
  }
}

/** The Maildir's answer when the message does not fit in the quota (a temporary 4.2.2). */
export function isOverQuota(err: unknown): boolean {
  return err instanceof MailError && err.kind === 'temporary' && err.status === '4.2.2';
}

/**
 * Over quota at delivery: deferred (4.2.2) while the message is younger than `deferSeconds`, then,
 * or at once when it is 0, bounced with 5.2.2. Pure.
 */
export function overQuota(queuedAt: number, now: number, deferSeconds: number): MailError {
  if (now - queuedAt < deferSeconds * 1000) return temporary('4.2.2', 'mailbox full, will try again', undefined, 452);
  return permanent('5.2.2', 'mailbox full: the recipient is over the allowed quota', undefined, 552);
}
