// One Maildir folder as IMAP sees it: messages with stable UIDs (uidvalidity and uidnext kept in
// `ldapmta-uidlist`, append-only, rebuilt with a new uidvalidity if lost), flags in the Maildir
// info suffix (":2,FRS"), and the changes other sessions and deliveries make, found by rescanning
// new/ and cur/. One Folder object per folder per process, shared by every session that has it
// open (the registry is in mailstore.ts), so sessions see each other's changes at once.
import { constants, type Stats, watch, type FSWatcher } from 'node:fs';
import { appendFile, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { uniqueName } from '../../deliver/maildir-file.ts';
import { countLines, deliveryOrder, messageNames, sizesOf, uniquePart } from '../maildir.ts';

/** Maildir info letters ↔ IMAP system flags (letters sorted in ASCII order, as the spec asks). */
const LETTERS: Readonly<Record<string, string>> = { D: '\\Draft', F: '\\Flagged', R: '\\Answered', S: '\\Seen', T: '\\Deleted' };
const FLAG_LETTER: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(LETTERS).map(([l, f]) => [f.toLowerCase(), l]));

export const INDEX_FILE = 'ldapmta-uidlist';
/** Parsed structure per message (envelope, BODYSTRUCTURE, search fields), as JSON lines; a cache, rebuilt if lost. */
export const CACHE_FILE = 'ldapmta-cache';

/** What is remembered of a message's bytes (they never change under one unique name). */
export interface MessageMemo {
  envelope?: string;
  body?: string;
  bodystructure?: string;
  /** Decoded values of the fields SEARCH asks most (from, to, cc, bcc, subject), and the Date:'s day in ms. */
  fields?: Record<string, string[]>;
  sent?: number | null;
}
const INDEX_MAGIC = 'ldapmta-uidlist 1';

export interface Entry {
  readonly uid: number;
  /** The unique part of the file name (stable while flags change). */
  readonly unique: string;
  /** The file's current name in cur/. */
  name: string;
  /** IMAP system flags, in a fixed order. */
  flags: readonly string[];
  /** Bytes on disk (LF) and size with CRLF, from the name's ,S= and ,W= (null when absent). */
  bytes: number | null;
  size: number | null;
  /** INTERNALDATE in ms (the file's mtime), read when first asked. */
  internalDate: number | null;
  /** First seen in new/ by this process and not yet claimed by a session (\Recent). */
  recent: boolean;
  /** Bumped on every flag change (CONDSTORE-style ordering inside this process). */
  modseq: number;
}

/** A message whose flags a STORE changed, with the flags it had (read under the folder's lock). */
export interface FlagChange {
  readonly entry: Entry;
  readonly previous: readonly string[];
}

export interface FolderChange {
  readonly expunged: readonly number[];
  readonly added: number;
  readonly flagged: readonly number[];
}

/** Flags from a Maildir file name's info ("name:2,FS"). Pure. */
export function flagsOf(name: string): string[] {
  const at = name.indexOf(':2,');
  if (at === -1) return [];
  const out: string[] = [];
  for (const letter of name.slice(at + 3)) {
    const flag = LETTERS[letter];
    if (flag !== undefined && !out.includes(flag)) out.push(flag);
  }
  return sortFlags(out);
}

export function sortFlags(flags: readonly string[]): string[] {
  const order = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];
  return [...new Set(flags)].sort((a, b) => order.indexOf(a) - order.indexOf(b));
}

/** The file name carrying `flags`, keeping info letters IMAP does not know (P, keywords). Pure. */
export function nameWithFlags(name: string, flags: readonly string[]): string {
  const at = name.indexOf(':2,');
  const base = at === -1 ? name.split(':')[0]! : name.slice(0, at);
  const kept = at === -1 ? [] : [...name.slice(at + 3)].filter((l) => LETTERS[l] === undefined);
  const letters = [...kept, ...flags.map((f) => FLAG_LETTER[f.toLowerCase()]).filter((l): l is string => l !== undefined)];
  return `${base}:2,${[...new Set(letters)].sort().join('')}`;
}

/** The flag as IMAP spells it if it is a system flag we store, else null (keywords are not kept). Pure. */
export function systemFlag(flag: string): string | null {
  const letter = FLAG_LETTER[flag.toLowerCase()];
  return letter === undefined ? null : LETTERS[letter]!;
}

/** Parses the index: uidvalidity, uidnext and unique → uid. A torn last line is ignored. Pure. */
export function parseIndex(text: string): { uidValidity: number; uidNext: number; uids: Map<string, number> } | null {
  const lines = text.split('\n');
  const head = /^ldapmta-uidlist 1 (\d+) (\d+)$/.exec(lines[0] ?? '');
  if (head === null) return null;
  const uids = new Map<string, number>();
  let uidNext = Number(head[2]);
  for (const line of lines.slice(1)) {
    const m = /^(\d+) (\S+)$/.exec(line);
    if (m === null) continue;
    const uid = Number(m[1]);
    uids.set(m[2]!, uid);
    if (uid >= uidNext) uidNext = uid + 1;
  }
  return { uidValidity: Number(head[1]), uidNext, uids };
}

/** Changes within this many ms of a directory's mtime are not trusted to have moved it (coarse clocks). */
const RACY_MS = 2000;
/** Counter in the unique names this process gives (APPEND, COPY). */
let tmpCounter = 0;

export class Folder {
  uidValidity = 0;
  uidNext = 1;
  /** Ascending by uid. */
  entries: Entry[] = [];
  readonly byUid = new Map<number, Entry>();
  /**
   * Mod-sequences (CONDSTORE): kept in memory only, so each load starts above every value an
   * earlier load can have handed out (microseconds of the clock): after a restart a client asking
   * CHANGEDSINCE gets every message's flags again, never misses a change.
   */
  private modseqCounter = Date.now() * 1000;
  private readonly listeners = new Set<(change: FolderChange) => void>();
  private watchers: FSWatcher[] = [];
  private syncing: Promise<void> | null = null;
  private again = false;
  private lock: Promise<unknown> = Promise.resolve();
  private seen = { cur: -1, new: -1 };
  /** Lines in the index that no longer name a message: rewritten when they dominate. */
  private stale = 0;

  /** Maildir++ quota leaves .Trash out (reference §3.9, as scanUsage counts). */
  readonly inQuota: boolean;

  constructor(readonly path: string) {
    this.inQuota = basename(path) !== '.Trash';
  }

  /** Whether a message with these flags here counts towards the quota (not in .Trash, not \Deleted). */
  counts(flags: readonly string[]): boolean {
    return this.inQuota && !flags.includes('\\Deleted');
  }

  get highestModseq(): number {
    return this.modseqCounter;
  }

  /** Loads the index (or starts a new one) and reads the folder. */
  async open(): Promise<void> {
    const text = await readFile(join(this.path, INDEX_FILE), 'utf8').catch(() => null);
    const index = text === null ? null : parseIndex(text);
    const known = index?.uids ?? new Map<string, number>();
    if (index === null) {
      this.uidValidity = await nextUidValidity(this.path);
      this.uidNext = 1;
      await this.rewriteIndex([]);
    } else {
      this.uidValidity = index.uidValidity;
      this.uidNext = index.uidNext;
    }
    await this.scan(known);
  }

  /** Runs `work` alone among this folder's mutations (flag changes, expunges, additions, scans). */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work, work);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Rescans new/ and cur/ and tells listeners what changed; concurrent calls share one scan. */
  sync(force = false): Promise<void> {
    if (force) this.seen = { cur: -1, new: -1 };
    if (this.syncing !== null) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = this.exclusive(() => this.scan(null)).finally(() => {
      this.syncing = null;
      if (this.again) {
        this.again = false;
        void this.sync().catch(() => undefined); // nobody waits on this one: a failure must not go unhandled
      }
    });
    return this.syncing;
  }

  onChange(listener: (change: FolderChange) => void): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.startWatching();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopWatching();
    };
  }

  get watched(): boolean {
    return this.listeners.size > 0;
  }

  private startWatching(): void {
    for (const dir of ['new', 'cur']) {
      try {
        const watcher = watch(join(this.path, dir), { persistent: false }, () => this.poke());
        watcher.on('error', () => undefined);
        this.watchers.push(watcher);
      } catch {
        // No inotify (or the directory vanished): NOOP and IDLE's poll still find changes.
      }
    }
  }

  private stopWatching(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private pokeTimer: NodeJS.Timeout | null = null;
  /** A burst of file events makes one rescan. */
  private poke(): void {
    if (this.pokeTimer !== null) return;
    this.pokeTimer = setTimeout(() => {
      this.pokeTimer = null;
      void this.sync(true).catch(() => undefined);
    }, 20);
    this.pokeTimer.unref();
  }

  /** The folder was deleted or renamed by someone else: every message is gone for the sessions that have it. */
  gone = false;

  private vanish(): void {
    if (this.gone) return;
    this.gone = true;
    const expunged = this.entries.map((e) => e.uid);
    this.entries = [];
    this.byUid.clear();
    this.stopWatching();
    this.emit({ expunged, added: 0, flagged: [] });
  }

  private emit(change: FolderChange): void {
    if (change.expunged.length === 0 && change.added === 0 && change.flagged.length === 0) return;
    for (const listener of this.listeners) listener(change);
  }

  /** Reads both directories; `known` (unique → uid) is the index when opening, else the entries. */
  private async scan(known: Map<string, number> | null): Promise<void> {
    let curStat: Stats;
    let newStat: Stats;
    try {
      [curStat, newStat] = await Promise.all([stat(join(this.path, 'cur')), stat(join(this.path, 'new'))]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || known !== null) throw err;
      this.vanish();
      return;
    }
    const now = Date.now();
    if (known === null && curStat.mtimeMs === this.seen.cur && newStat.mtimeMs === this.seen.new) return;
    const trust = (m: number) => (now - m > RACY_MS ? m : -1);
    const fresh = new Set<string>();
    for (const name of await messageNames(join(this.path, 'new'))) {
      const target = name.includes(':') ? name : `${name}:2,`;
      try {
        await rename(join(this.path, 'new', name), join(this.path, 'cur', target));
        fresh.add(uniquePart(name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    const files = await messageNames(join(this.path, 'cur'));
    const curAfter = fresh.size > 0 ? await stat(join(this.path, 'cur')) : curStat;
    this.seen = { cur: trust(curAfter.mtimeMs), new: trust(newStat.mtimeMs) };

    const byUnique = new Map<string, string>();
    for (const name of files) byUnique.set(uniquePart(name), name);
    const previous = known ?? new Map(this.entries.map((e) => [e.unique, e.uid]));
    const expunged: number[] = [];
    const flagged: number[] = [];
    const kept: Entry[] = [];
    for (const entry of this.entries) {
      const name = byUnique.get(entry.unique);
      if (name === undefined) {
        expunged.push(entry.uid);
        this.byUid.delete(entry.uid);
        this.stale++;
        continue;
      }
      if (name !== entry.name) {
        entry.name = name;
        const flags = flagsOf(name);
        if (flags.join(' ') !== entry.flags.join(' ')) {
          entry.flags = flags;
          entry.modseq = ++this.modseqCounter;
          flagged.push(entry.uid);
        }
      }
      kept.push(entry);
      byUnique.delete(entry.unique);
    }
    // What is left is new to this object: known uids (opening) or newly assigned ones.
    const arrivals: Entry[] = [];
    const assigned: string[] = [];
    for (const [unique, name] of [...byUnique].sort((a, b) => deliveryOrder(a[1], b[1]))) {
      let uid = previous.get(unique);
      if (uid === undefined || this.byUid.has(uid)) {
        uid = this.uidNext++;
        assigned.push(`${uid} ${unique}\n`);
      }
      arrivals.push(this.entryFor(uid, unique, name, fresh.has(unique)));
    }
    if (known !== null) this.stale += Math.max(0, known.size - (kept.length + arrivals.length - assigned.length));
    if (assigned.length > 0) await this.appendIndex(assigned);
    arrivals.sort((a, b) => a.uid - b.uid);
    // Arrivals are above every kept uid except on first open, when order comes from the index.
    this.entries = known !== null ? arrivals : kept.concat(arrivals);
    for (const e of arrivals) this.byUid.set(e.uid, e);
    if (this.stale > 1000 && this.stale > this.entries.length) await this.rewriteIndex(this.entries);
    if (known === null) this.emit({ expunged, added: arrivals.length, flagged });
  }

  private entryFor(uid: number, unique: string, name: string, recent: boolean): Entry {
    const { bytes, size } = sizesOf(name);
    return { uid, unique, name, flags: flagsOf(name), bytes, size, internalDate: null, recent, modseq: ++this.modseqCounter };
  }

  private async appendIndex(lines: string[]): Promise<void> {
    const file = join(this.path, INDEX_FILE);
    const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.write(lines.join(''));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Writes the index anew (tmp + fsync + rename): the header and one line per live message. */
  private async rewriteIndex(entries: readonly Entry[]): Promise<void> {
    const text = `${INDEX_MAGIC} ${this.uidValidity} ${this.uidNext}\n${entries.map((e) => `${e.uid} ${e.unique}\n`).join('')}`;
    const tmp = join(this.path, `${INDEX_FILE}.tmp`);
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(this.path, INDEX_FILE));
    this.stale = 0;
  }

  private memos: Map<string, MessageMemo> | null = null;
  private memosLoading: Promise<void> | null = null;
  private memoLines: string[] = [];

  /**
   * Reads the cache file (once while the folder is in use): unique → memo, later lines winning;
   * lines that do not parse are skipped. Rewritten without stale lines when they dominate.
   */
  loadMemos(): Promise<void> {
    if (this.memos !== null) return Promise.resolve();
    this.memosLoading ??= (async () => {
      const text = await readFile(join(this.path, CACHE_FILE), 'utf8').catch(() => '');
      const memos = new Map<string, MessageMemo>();
      let lines = 0;
      for (const line of text.split('\n')) {
        const tab = line.indexOf('\t');
        if (tab <= 0) continue;
        lines++;
        try {
          const memo = JSON.parse(line.slice(tab + 1)) as unknown;
          if (memo !== null && typeof memo === 'object' && !Array.isArray(memo)) memos.set(line.slice(0, tab), { ...memos.get(line.slice(0, tab)), ...(memo as MessageMemo) });
        } catch {
          // a torn or foreign line: that message is parsed again when asked
        }
      }
      const live = new Set(this.entries.map((e) => e.unique));
      for (const unique of memos.keys()) if (!live.has(unique)) memos.delete(unique);
      this.memos = memos;
      if (lines > 2 * memos.size + 100) await this.rewriteMemos().catch(() => undefined);
    })().finally(() => {
      this.memosLoading = null;
    });
    return this.memosLoading;
  }

  /** The memo of a message (after loadMemos()); a new empty one when nothing is known yet. */
  memo(entry: Entry): MessageMemo {
    const memos = this.memos ?? (this.memos = new Map());
    let memo = memos.get(entry.unique);
    if (memo === undefined) {
      memo = {};
      memos.set(entry.unique, memo);
    }
    return memo;
  }

  /** A memo gained `added` (only what is new: lines merge when read): written at the next saveMemos(). */
  memoChanged(entry: Entry, added: MessageMemo): void {
    this.memoLines.push(`${entry.unique}\t${JSON.stringify(added)}\n`);
  }

  /** Appends what was learnt (best effort: it is a cache). */
  async saveMemos(): Promise<void> {
    if (this.memoLines.length === 0) return;
    const text = this.memoLines.join('');
    this.memoLines = [];
    await appendFile(join(this.path, CACHE_FILE), text, { mode: 0o600, flag: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW }).catch(() => undefined);
  }

  /** Nobody has the folder open: the memos leave memory (they are on disk). */
  dropMemos(): void {
    if (this.memosLoading === null && this.memoLines.length === 0) this.memos = null;
  }

  private async rewriteMemos(): Promise<void> {
    const tmp = join(this.path, `${CACHE_FILE}.tmp`);
    await writeFile(tmp, [...this.memos!].map(([unique, memo]) => `${unique}\t${JSON.stringify(memo)}\n`).join(''), { mode: 0o600 });
    await rename(tmp, join(this.path, CACHE_FILE));
  }

  /** A message's stored bytes (LF line ends). Null when it has gone meanwhile. */
  async read(entry: Entry): Promise<Buffer | null> {
    try {
      return await readFile(join(this.path, 'cur', entry.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await this.sync(true);
      const now = this.byUid.get(entry.uid);
      return now === undefined ? null : readFile(join(this.path, 'cur', now.name)).catch(() => null);
    }
  }

  /** The first `limit` bytes (enough for the header of most messages). */
  async readHead(entry: Entry, limit: number): Promise<Buffer | null> {
    const handle = await open(join(this.path, 'cur', entry.name), 'r').catch(() => null);
    if (handle === null) return this.read(entry);
    try {
      const buffer = Buffer.alloc(limit);
      const { bytesRead } = await handle.read(buffer, 0, limit, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  /** INTERNALDATE (ms) and the sizes for entries that lack them, read from the files. */
  async complete(entries: readonly Entry[], need: { date: boolean; size: boolean }): Promise<void> {
    for (const entry of entries) {
      if (need.date && entry.internalDate === null) {
        const info = await stat(join(this.path, 'cur', entry.name)).catch(() => null);
        entry.internalDate = info?.mtimeMs ?? Date.now();
      }
      if (need.size && (entry.size === null || entry.bytes === null)) {
        const data = await readFile(join(this.path, 'cur', entry.name)).catch(() => null);
        if (data === null) continue;
        entry.bytes = data.length;
        entry.size = data.length + countLines(data);
      }
    }
  }

  /** Sets, adds or removes system flags; returns the entries whose flags changed. */
  setFlags(uids: readonly number[], mode: 'set' | 'add' | 'remove', flags: readonly string[]): Promise<FlagChange[]> {
    return this.exclusive(async () => {
      const changed: FlagChange[] = [];
      for (const uid of uids) {
        const entry = this.byUid.get(uid);
        if (entry === undefined) continue;
        const next = sortFlags(mode === 'set' ? flags : mode === 'add' ? [...entry.flags, ...flags] : entry.flags.filter((f) => !flags.includes(f)));
        if (next.join(' ') === entry.flags.join(' ')) continue;
        const name = nameWithFlags(entry.name, next);
        try {
          await rename(join(this.path, 'cur', entry.name), join(this.path, 'cur', name));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // expunged elsewhere: the next sync says so
          throw err;
        }
        const previous = entry.flags;
        entry.name = name;
        entry.flags = next;
        entry.modseq = ++this.modseqCounter;
        changed.push({ entry, previous });
      }
      this.emit({ expunged: [], added: 0, flagged: changed.map((c) => c.entry.uid) });
      return changed;
    });
  }

  /** Removes the messages; returns the uids removed and the bytes and count freed. */
  expunge(uids: readonly number[]): Promise<{ uids: number[]; bytes: number }> {
    return this.exclusive(async () => {
      const gone: number[] = [];
      let lost = false;
      let bytes = 0;
      for (const uid of uids) {
        const entry = this.byUid.get(uid);
        if (entry === undefined) continue;
        try {
          const size = entry.bytes ?? (await stat(join(this.path, 'cur', entry.name))).size;
          await unlink(join(this.path, 'cur', entry.name));
          bytes += size;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // Renamed by another program (a flag change) or removed: the rescan below says which; not told as expunged here.
          lost = true;
          continue;
        }
        gone.push(uid);
        this.byUid.delete(uid);
        this.stale++;
      }
      const removed = new Set(gone);
      this.entries = this.entries.filter((e) => !removed.has(e.uid));
      this.emit({ expunged: gone, added: 0, flagged: [] });
      if (lost) {
        this.seen = { cur: -1, new: -1 };
        await this.scan(null);
      }
      return { uids: gone, bytes };
    });
  }

  /**
   * Takes in a message file already written under tmp/ (or moved from another folder's cur/):
   * renames it into cur/ with its flags and gives it the next uid at once (APPENDUID, COPYUID).
   */
  adopt(source: string, unique: string, sizeTags: string, flags: readonly string[], date: Date | null): Promise<number> {
    return this.exclusive(async () => {
      const name = nameWithFlags(`${unique}${sizeTags}`, flags);
      const target = join(this.path, 'cur', name);
      if (date !== null) await utimes(source, date, date).catch(() => undefined);
      await rename(source, target);
      const uid = this.uidNext++;
      await this.appendIndex([`${uid} ${unique}\n`]);
      const entry = this.entryFor(uid, unique, name, false);
      this.entries.push(entry);
      this.byUid.set(uid, entry);
      this.emit({ expunged: [], added: 1, flagged: [] });
      return uid;
    });
  }

  /** A new unique name and its path under tmp/, where a message is written (or linked) before adopt(). */
  tmpFile(host: string): { unique: string; file: string } {
    const unique = uniqueName(Date.now(), process.pid, ++tmpCounter, host);
    return { unique, file: join(this.path, 'tmp', unique) };
  }
}

export const UIDVALIDITY_FILE = 'ldapmta-uidvalidity';

/**
 * A UIDVALIDITY never used before in this Maildir: the current time in seconds, or one more than the
 * last one given (kept in the Maildir's ldapmta-uidvalidity, as Dovecot keeps dovecot-uidvalidity),
 * so a folder deleted and made again within a second cannot repeat (UIDVALIDITY, UID) pairs.
 */
async function nextUidValidity(folderPath: string): Promise<number> {
  const root = basename(folderPath).startsWith('.') ? dirname(folderPath) : folderPath;
  const file = join(root, UIDVALIDITY_FILE);
  const last = Number((await readFile(file, 'utf8').catch(() => '0')).trim()) || 0;
  const next = Math.max(Math.floor(Date.now() / 1000), last + 1) % 2 ** 32 || 1;
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${next}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return next;
}
