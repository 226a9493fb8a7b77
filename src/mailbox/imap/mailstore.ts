// A user's Maildir++ tree as IMAP folders: INBOX is the Maildir itself, "Sent" is `.Sent/`,
// "Projects.2026" is `.Projects.2026/` ("." is the hierarchy separator, as in Courier and Dovecot's
// Maildir++ layout; names stay in IMAP's modified UTF-7 on disk, as Dovecot keeps them). Owns name
// checks, CREATE/DELETE/RENAME, subscriptions, the special-use folders, and the registry that
// shares one Folder object per folder among the sessions of this process.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { folderUsage, recordChange } from '../../deliver/quota.ts';
import { Folder } from './folder.ts';

export const SEPARATOR = '.';
export const SPECIAL_USE: Readonly<Record<string, string>> = { Sent: '\\Sent', Drafts: '\\Drafts', Trash: '\\Trash', Junk: '\\Junk' };
const SUBSCRIPTIONS = 'subscriptions';

/** INBOX in any case is INBOX. Pure. */
export function canonicalName(name: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.toUpperCase().startsWith('INBOX.')) return `INBOX${name.slice(5)}`;
  return name;
}

/** Why a folder name cannot be used, or null. Pure. */
export function nameProblem(name: string): string | null {
  if (name === '' || name.length > 200) return 'a folder name must have 1 to 200 characters';
  // On disk it is ".<name>" (and a child adds to it): a file name has at most 255 bytes.
  if (Buffer.byteLength(name, 'utf8') > 200) return 'a folder name may have at most 200 bytes';
  if (/[\x00-\x1f\x7f/\\]/.test(name)) return 'a folder name may not contain control characters, "/" or "\\"';
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) return 'a folder name may not start or end with "." nor contain ".."';
  if (/[*%]/.test(name)) return 'a folder name may not contain "*" or "%"';
  if (/&(?![A-Za-z0-9+,]*-)/.test(name) && name !== '&-') return 'the folder name is not valid modified UTF-7';
  return null;
}

/** The folder's directory under the user's Maildir. Pure. */
export function folderPath(root: string, name: string): string {
  return name === 'INBOX' ? root : join(root, `.${name}`);
}

/**
 * LIST pattern matching (`*` any characters, `%` any but the separator), INBOX case-insensitively
 * (RFC 3501 §5.1). A table over name × pattern, so hostile patterns cost at most their length times
 * the name's, never a backtracking blow-up. Pure.
 */
export function patternRegExp(reference: string, pattern: string): { test(name: string): boolean } {
  const full = `${reference}${pattern}`.replace(/\*+/g, '*');
  const caseless = /^inbox/i.test(full);
  const wanted = caseless ? full.toLowerCase() : full;
  return {
    test(name: string): boolean {
      const text = caseless ? name.toLowerCase() : name;
      // row[j]: the first i characters of text match the first j of the pattern.
      let row: boolean[] = [true];
      for (let j = 1; j <= wanted.length; j++) row[j] = row[j - 1]! && (wanted[j - 1] === '*' || wanted[j - 1] === '%');
      for (let i = 1; i <= text.length; i++) {
        const next: boolean[] = [false];
        const c = text[i - 1]!;
        for (let j = 1; j <= wanted.length; j++) {
          const p = wanted[j - 1]!;
          next[j] = p === '*' ? next[j - 1]! || row[j]!
            : p === '%' ? next[j - 1]! || (row[j]! && c !== SEPARATOR)
            : row[j - 1]! && p === c;
        }
        row = next;
      }
      return row[wanted.length]!;
    },
  };
}

export class MailStore {
  constructor(readonly root: string, private readonly registry: FolderRegistry) {}

  /** Every folder, INBOX first. */
  async folders(): Promise<string[]> {
    const out = ['INBOX'];
    for (const entry of await readdir(this.root, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || !entry.name.startsWith('.') || entry.name === '.' || entry.name === '..') continue;
      const name = entry.name.slice(1);
      if (nameProblem(name) === null) out.push(name);
    }
    return out.sort((a, b) => (a === 'INBOX' ? -1 : b === 'INBOX' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  }

  async exists(name: string): Promise<boolean> {
    const info = await stat(join(folderPath(this.root, name), 'cur')).catch(() => null);
    return info?.isDirectory() ?? false;
  }

  /** Creates the folder (and its parents, as RFC 3501 allows); false when it exists already. */
  async create(name: string): Promise<boolean> {
    if (name === 'INBOX' || (await this.exists(name))) return false;
    const parts = name.split(SEPARATOR);
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join(SEPARATOR);
      if (sub === 'INBOX' || (await this.exists(sub))) continue;
      const dir = folderPath(this.root, sub);
      for (const d of ['cur', 'new', 'tmp']) await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
      // Courier and Dovecot's quota code count a directory with this file as a folder of the same quota.
      await writeFile(join(dir, 'maildirfolder'), '', { mode: 0o600 });
    }
    return true;
  }

  /** Deletes a folder without children; its messages leave the quota. */
  async delete(name: string): Promise<'ok' | 'missing' | 'children'> {
    if (!(await this.exists(name))) return 'missing';
    if ((await this.folders()).some((f) => f.startsWith(`${name}${SEPARATOR}`))) return 'children';
    const dir = folderPath(this.root, name);
    const { bytes, count } = name === 'Trash' ? { bytes: 0, count: 0 } : (await folderUsage(dir)).usage;
    // Out of sight first (one rename), then removed.
    const doomed = join(this.root, 'tmp', `.deleted.${Date.now()}.${process.pid}.${Math.random().toString(36).slice(2)}`);
    await rename(dir, doomed);
    this.registry.forget(dir);
    await rm(doomed, { recursive: true, force: true });
    if (count > 0) await recordChange(this.root, -bytes, -count);
    await this.unsubscribe(name);
    return 'ok';
  }

  /** Renames a folder and its children; INBOX is special (its messages move, it stays). */
  async rename(from: string, to: string): Promise<'ok' | 'missing' | 'exists' | 'invalid'> {
    if (!(await this.exists(from))) return 'missing';
    if (await this.exists(to)) return 'exists';
    if (from === 'INBOX') {
      await this.create(to);
      const target = folderPath(this.root, to);
      if (to === 'Trash') {
        // INBOX's messages leave the quota with it (Maildir++ does not count .Trash).
        const { bytes, count } = (await folderUsage(this.root)).usage;
        if (count > 0) await recordChange(this.root, -bytes, -count);
      }
      for (const dir of ['new', 'cur']) {
        for (const file of await readdir(join(this.root, dir)).catch(() => [])) {
          if (!file.startsWith('.')) await rename(join(this.root, dir, file), join(target, dir, file)).catch(() => undefined);
        }
      }
      return 'ok';
    }
    const parent = to.split(SEPARATOR).slice(0, -1).join(SEPARATOR);
    if (parent !== '' && parent !== 'INBOX') await this.create(parent);
    const moving = (await this.folders()).filter((f) => f === from || f.startsWith(`${from}${SEPARATOR}`));
    // Every new name must be usable before anything moves: no half-renamed tree.
    if (moving.some((name) => nameProblem(`${to}${name.slice(from.length)}`) !== null)) return 'invalid';
    for (const name of moving) {
      const next = `${to}${name.slice(from.length)}`;
      await rename(folderPath(this.root, name), folderPath(this.root, next));
      this.registry.forget(folderPath(this.root, name));
      // Into or out of Trash: its messages leave or join the quota.
      if ((name === 'Trash') !== (next === 'Trash')) {
        const { bytes, count } = (await folderUsage(folderPath(this.root, next))).usage;
        const sign = next === 'Trash' ? -1 : 1;
        if (count > 0) await recordChange(this.root, sign * bytes, sign * count);
      }
    }
    const subscribed = await this.subscriptions();
    for (const name of moving) {
      if (subscribed.delete(name)) subscribed.add(`${to}${name.slice(from.length)}`);
    }
    await this.saveSubscriptions(subscribed);
    return 'ok';
  }

  async subscriptions(): Promise<Set<string>> {
    const text = await readFile(join(this.root, SUBSCRIPTIONS), 'utf8').catch(() => '');
    return new Set(text.split('\n').filter((l) => l !== '' && nameProblem(l) === null));
  }

  async subscribe(name: string): Promise<void> {
    const set = await this.subscriptions();
    if (!set.has(name)) await this.saveSubscriptions(set.add(name));
  }

  async unsubscribe(name: string): Promise<void> {
    const set = await this.subscriptions();
    if (set.delete(name)) await this.saveSubscriptions(set);
  }

  private async saveSubscriptions(set: Set<string>): Promise<void> {
    const tmp = join(this.root, `${SUBSCRIPTIONS}.tmp`);
    await writeFile(tmp, [...set].sort().map((n) => `${n}\n`).join(''), { mode: 0o600 });
    await rename(tmp, join(this.root, SUBSCRIPTIONS));
  }

  /**
   * First login: the Maildir, and Sent, Drafts, Trash and Junk, created and subscribed. Done once
   * per mailbox per process: a folder the user deletes is not brought back at the next login.
   */
  async prepare(): Promise<void> {
    if (this.registry.prepared(this.root)) return;
    for (const d of ['cur', 'new', 'tmp']) await mkdir(join(this.root, d), { recursive: true, mode: 0o700 });
    const subscribed = await this.subscriptions();
    let changed = false;
    for (const name of Object.keys(SPECIAL_USE)) {
      if (await this.create(name)) {
        subscribed.add(name);
        changed = true;
      }
    }
    if (!subscribed.has('INBOX')) {
      subscribed.add('INBOX');
      changed = true;
    }
    if (changed) await this.saveSubscriptions(subscribed);
    this.registry.markPrepared(this.root);
  }

  open(name: string): Promise<Folder> {
    return this.registry.acquire(folderPath(this.root, name));
  }

  release(folder: Folder): void {
    this.registry.release(folder);
  }
}


/**
 * One Folder object per folder in this process, shared by the sessions that have it open; a few
 * recently closed ones are kept (warm SELECT without reloading the index).
 */
export class FolderRegistry {
  private readonly open = new Map<string, { folder: Promise<Folder>; users: number; object?: Folder }>();
  private readonly idle = new Map<string, Folder>();

  constructor(private readonly keepIdle = 100) {}

  async acquire(path: string): Promise<Folder> {
    const held = this.open.get(path);
    if (held !== undefined) {
      held.users++;
      try {
        const folder = await held.folder;
        await folder.sync();
        return folder;
      } catch (err) {
        if (--held.users === 0 && this.open.get(path) === held) this.open.delete(path);
        throw err;
      }
    }
    const parked = this.idle.get(path);
    this.idle.delete(path);
    const loading = parked !== undefined ? parked.sync().then(() => parked) : openFolder(path);
    const slot: { folder: Promise<Folder>; users: number; object?: Folder } = { folder: loading, users: 1 };
    this.open.set(path, slot);
    try {
      slot.object = await loading;
      return slot.object;
    } catch (err) {
      // Whoever joined meanwhile fails too (they await the same promise): the slot goes now, not at its last user.
      if (this.open.get(path) === slot) this.open.delete(path);
      slot.users--;
      throw err;
    }
  }

  release(folder: Folder): void {
    const held = this.open.get(folder.path);
    // A forgotten object (its folder deleted or renamed) has no slot; a new folder at the path has its own.
    if (held === undefined || (held.object !== undefined && held.object !== folder) || --held.users > 0) return;
    if (folder.gone) {
      this.open.delete(folder.path);
      return;
    }
    this.open.delete(folder.path);
    void folder.saveMemos().finally(() => folder.dropMemos());
    this.idle.set(folder.path, folder);
    if (this.idle.size > this.keepIdle) this.idle.delete(this.idle.keys().next().value!);
  }

  private readonly ready = new Set<string>();

  /** Whether MailStore.prepare() ran for this Maildir in this process. */
  prepared(root: string): boolean {
    return this.ready.has(root);
  }

  markPrepared(root: string): void {
    if (this.ready.size >= 100_000) this.ready.clear(); // bounded: preparing again is harmless
    this.ready.add(root);
  }

  /** A folder deleted or renamed: its object must not be reused (sessions that hold it see it gone at their next sync). */
  forget(path: string): void {
    this.idle.delete(path);
    this.open.delete(path);
  }
}

async function openFolder(path: string): Promise<Folder> {
  const folder = new Folder(path);
  await folder.open();
  return folder;
}
