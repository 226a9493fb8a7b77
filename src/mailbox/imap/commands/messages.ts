// Commands on the selected folder: CHECK, CLOSE, UNSELECT, EXPUNGE, IDLE, FETCH, STORE, SEARCH,
// COPY, MOVE and their UID forms (UIDPLUS's UID EXPUNGE included). Message bytes are read from the
// Maildir (LF) and shown with CRLF; parsed structure is remembered per message (Folder memos, ldapmta-cache).
import { link, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkQuota, recordChange } from '../../../deliver/quota.ts';
import { fetchResponse, type FetchItem, needsOf, parseFetchItems, setsSeen } from '../fetch.ts';
import type { Entry, FlagChange, Folder } from '../folder.ts';
import { systemFlag } from '../folder.ts';
import { nameProblem } from '../mailstore.ts';
import { headerValues, searchText, sentDate } from '../mime.ts';
import { matches, parseSearch, type SearchKey, searchNeeds, type SearchSubject, usesModseq } from '../search.ts';
import { compress, expand, parseSequenceSet, seqForUids, type SequenceSet } from '../sequence.ts';
import { flagList, type Handler, type Selected, type Session, withRecent } from '../session.ts';
import type { Command, Token } from '../types.ts';
import { astring } from '../wire.ts';
import { ArgError, atom, flags as flagArgs, folderName } from './args.ts';

const SELECTED = ['selected'] as const;
/** Message files read ahead of the one being answered in a FETCH. */
const READ_AHEAD = 8;
/** Messages larger than this are not read ahead. */
const READ_AHEAD_MAX_BYTES = 512 * 1024;

/** Maildir++ quota leaves \Deleted (T) messages out: flagging one subtracts it, unflagging adds it back. */
async function recordDeletedToggles(session: Session, folder: Folder, changes: readonly FlagChange[]): Promise<void> {
  if (!folder.inQuota) return;
  await folder.complete(changes.map((c) => c.entry), { date: false, size: true });
  let bytes = 0;
  let count = 0;
  for (const { entry, previous } of changes) {
    const deleted = entry.flags.includes('\\Deleted');
    if (deleted === previous.includes('\\Deleted')) continue;
    bytes += (deleted ? -1 : 1) * (entry.bytes ?? 0);
    count += deleted ? -1 : 1;
  }
  if (count !== 0) await recordChange(session.user!.root, bytes, count);
}

/** `(NAME <mod-sequence>)`, the CONDSTORE modifier of FETCH (CHANGEDSINCE) and STORE (UNCHANGEDSINCE). */
function modifier(token: Token, name: string): number {
  const items = token.type === 'list' ? token.items : [];
  const [key, value] = items;
  if (items.length !== 2 || key?.type !== 'atom' || key.value.toUpperCase() !== name || value?.type !== 'atom' || !/^\d{1,19}$/.test(value.value)) {
    throw new ArgError(`the only modifier known here is (${name} <mod-sequence>)`);
  }
  return Number(value.value);
}

/** A CONDSTORE-enabling command was used (RFC 7162 §3.1): from now on FETCH responses carry MODSEQ. */
function enableCondstore(session: Session, sel: Selected): void {
  session.enabled.add('CONDSTORE');
  sel.condstore = true;
}

function itemsOf(name: string): FetchItem[] {
  return parseFetchItems([{ type: 'atom', value: name }]) as FetchItem[];
}

/** LF → CRLF (a CR already before an LF is kept). Pure. */
export function lfToCrlf(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, nl + 1)) {
    if (nl > 0 && data[nl - 1] === 0x0d) continue;
    parts.push(data.subarray(from, nl), CRLF);
    from = nl + 1;
  }
  if (from === 0) return data;
  parts.push(data.subarray(from));
  return Buffer.concat(parts);
}
const CRLF = Buffer.from('\r\n');

/** The end of the header (after the blank line) in LF bytes, or -1. Pure. */
function headerEnd(data: Buffer): number {
  if (data[0] === 0x0a) return 1;
  const at = data.indexOf('\n\n');
  return at === -1 ? -1 : at + 2;
}

/** The messages a set names, as [seq, uid] pairs in sequence order. */
function targets(sel: Selected, set: SequenceSet, byUid: boolean): [number, number][] {
  // A sequence number beyond the last message is an error (RFC 3501 §9 seq-number); a UID is not.
  // (A range with * is left alone: `1:*` on an empty folder names nothing.)
  if (!byUid && set.some((r) => r.from !== '*' && r.to !== '*' && Math.max(r.from, r.to) > sel.view.length)) {
    throw new ArgError(sel.view.length === 0 ? 'the folder is empty' : `there are only ${sel.view.length} messages`);
  }
  const seqs = byUid ? seqForUids(sel.view, set) : expand(set, sel.view.length);
  return seqs.map((seq) => [seq, sel.view[seq - 1]!]);
}

function sequenceArg(token: Token | undefined): SequenceSet {
  const value = atom(token, 'the message set');
  const set = parseSequenceSet(value);
  if (set === null) throw new ArgError(`${value.slice(0, 40)} is not a message set`);
  return set;
}

/** Header only (when it suffices) or the whole message, CRLF; null when the file has gone. */
async function content(folder: Folder, entry: Entry, need: 'header' | 'full'): Promise<Buffer | null> {
  if (need === 'header') {
    const head = await folder.readHead(entry, 16_384);
    if (head === null) return null;
    const end = headerEnd(head);
    if (end !== -1) return lfToCrlf(head.subarray(0, end));
  }
  const whole = await folder.read(entry);
  return whole === null ? null : lfToCrlf(whole);
}

async function fetch(session: Session, command: Command, byUid: boolean, args: readonly Token[]): Promise<void> {
  const sel = session.selected!;
  const set = sequenceArg(args[0]);
  const parsed = parseFetchItems(args[1]?.type === 'list' ? args[1] : args.slice(1, 2));
  if ('error' in parsed) throw new ArgError(parsed.error);
  const changedSince = args[2] === undefined ? null : modifier(args[2], 'CHANGEDSINCE');
  if (changedSince !== null || parsed.some((i) => i.kind === 'MODSEQ')) enableCondstore(session, sel);
  let items: FetchItem[] = byUid && !parsed.some((i) => i.kind === 'UID') ? [...itemsOf('UID'), ...parsed] : parsed;
  if (sel.condstore && !items.some((i) => i.kind === 'MODSEQ')) items = [...items, ...itemsOf('MODSEQ')];
  const marks = setsSeen(items) && !sel.readOnly;
  const folder = sel.folder;
  const wantDate = items.some((i) => i.kind === 'INTERNALDATE');
  const batch: string[] = [];
  let batched = 0;
  const structural = items.some((i) => i.kind === 'ENVELOPE' || i.kind === 'BODY' || i.kind === 'BODYSTRUCTURE');
  if (structural) await folder.loadMemos();
  const chosen = targets(sel, set, byUid).flatMap(([seq, uid]) => {
    const entry = folder.byUid.get(uid);
    // Gone: expunged by another session, not yet told. Unchanged: CHANGEDSINCE leaves it out.
    if (entry === undefined || (changedSince !== null && entry.modseq <= changedSince)) return [];
    return [{ seq, uid, entry, memo: structural ? folder.memo(entry) : {} }];
  });
  // Files are read a few messages ahead (the thread pool reads them in parallel); answers go out in order.
  const loads: (Promise<Buffer | null> | null)[] = [];
  const load = (k: number) => {
    const next = chosen[k];
    if (next === undefined || loads[k] !== undefined) return;
    // Large messages are read only when their turn comes: at most a few MB held ahead.
    if (k !== current && (next.entry.bytes ?? Infinity) > READ_AHEAD_MAX_BYTES) return;
    const need = needsOf(items, next.memo);
    loads[k] = need === 'none' ? null : content(folder, next.entry, need);
    loads[k]?.catch(() => undefined); // awaited below; an early failure must not go unhandled
  };
  let current = 0;
  for (let k = 0; k < chosen.length; k++) {
    current = k;
    for (let ahead = k; ahead < k + READ_AHEAD; ahead++) load(ahead);
    const { seq, uid, entry, memo } = chosen[k]!;
    const pending = loads[k]!;
    loads[k] = null;
    const body = pending === null ? null : await pending;
    if (pending !== null && body === null) continue;
    await folder.complete([entry], { date: wantDate, size: true });
    if (marks && !entry.flags.includes('\\Seen')) await folder.setFlags([uid], 'add', ['\\Seen']);
    const known = structural ? Object.keys(memo) : [];
    const line = fetchResponse(seq, items, {
      uid, flags: withRecent(entry.flags, sel.recent.has(uid)), size: entry.size ?? 0,
      internalDate: new Date(entry.internalDate ?? 0), modseq: entry.modseq, content: body, memo,
    });
    if (structural && Object.keys(memo).length !== known.length) {
      folder.memoChanged(entry, Object.fromEntries(Object.entries(memo).filter(([key]) => !known.includes(key))));
    }
    // Batched: one write per ~64 KB of responses, not one per message.
    batch.push(line);
    batched += line.length;
    if (batched >= 65_536) {
      session.sendAll(batch.splice(0));
      batched = 0;
      await session.drain();
    }
  }
  session.sendAll(batch);
  await folder.saveMemos();
  // \Seen set by this FETCH is told by the flush below, as an untagged FETCH FLAGS.
  await session.flush(byUid ? 'UID' : 'FETCH');
  session.send(`${command.tag} OK ${byUid ? 'UID ' : ''}FETCH completed`);
}



async function store(session: Session, command: Command, byUid: boolean, args: readonly Token[]): Promise<void> {
  const sel = session.selected!;
  if (sel.readOnly) {
    session.send(`${command.tag} NO [READ-ONLY] the folder was opened with EXAMINE`);
    return;
  }
  const set = sequenceArg(args[0]);
  let rest = args.slice(1);
  let unchangedSince: number | null = null;
  if (rest[0]?.type === 'list') {
    unchangedSince = modifier(rest[0], 'UNCHANGEDSINCE');
    rest = rest.slice(1);
    enableCondstore(session, sel);
  }
  const what = atom(rest[0], 'the STORE item').toUpperCase();
  const m = /^([+-]?)FLAGS(\.SILENT)?$/.exec(what);
  if (m === null) throw new ArgError('STORE takes FLAGS, +FLAGS or -FLAGS (optionally .SILENT)');
  const wanted = flagArgs(rest[1]?.type === 'list' ? rest[1] : rest.length > 2 ? { type: 'list', items: rest.slice(1) } : rest[1]);
  const kept = wanted.map(systemFlag).filter((f): f is string => f !== null);
  const mode = m[1] === '+' ? 'add' : m[1] === '-' ? 'remove' : 'set';
  const folder = sel.folder;
  const all = targets(sel, set, byUid);
  // UNCHANGEDSINCE (RFC 7162 §3.1.3): a message changed since then is left alone and named in [MODIFIED].
  const modified = unchangedSince === null ? [] : all.filter(([, uid]) => (folder.byUid.get(uid)?.modseq ?? 0) > unchangedSince!);
  const skipped = new Set(modified.map(([, uid]) => uid));
  const chosen = all.filter(([, uid]) => !skipped.has(uid));
  const flagChanges = await folder.setFlags(chosen.map(([, uid]) => uid), mode, kept);
  const changed = new Set(flagChanges.map((c) => c.entry.uid));
  await recordDeletedToggles(session, folder, flagChanges);
  const lines: string[] = [];
  for (const [seq, uid] of chosen) {
    const entry = folder.byUid.get(uid);
    if (entry === undefined) continue;
    const modseq = sel.condstore ? ` MODSEQ (${entry.modseq})` : '';
    if (m[2] === undefined) lines.push(`* ${seq} FETCH (${byUid ? `UID ${uid} ` : ''}FLAGS (${flagList(entry.flags, sel.recent.has(uid))})${modseq})`);
    else if (sel.condstore && changed.has(uid)) lines.push(`* ${seq} FETCH (${byUid ? `UID ${uid} ` : ''}${modseq.trim()})`);
  }
  session.sendAll(lines);
  // Told above (or not wanted: .SILENT): the flush leaves them out and tells only others' changes.
  const mine = new Set(chosen.map(([, uid]) => uid));
  const others = folder.entries.some((e) => e.modseq > sel.modseq && !mine.has(e.uid));
  if (!others) sel.modseq = folder.highestModseq;
  await session.flush(byUid ? 'UID' : 'STORE', mine);
  const code = modified.length === 0 ? '' : `[MODIFIED ${compress(modified.map(([seq, uid]) => (byUid ? uid : seq)))}] `;
  session.send(`${command.tag} OK ${code}${byUid ? 'UID ' : ''}STORE completed`);
}

async function search(session: Session, command: Command, byUid: boolean, args: readonly Token[]): Promise<void> {
  const sel = session.selected!;
  const parsed = parseSearch(args);
  if ('error' in parsed) {
    session.send(parsed.badCharset ? `${command.tag} NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset` : `${command.tag} BAD ${parsed.error}`);
    return;
  }
  const withModseq = usesModseq(parsed.key);
  if (withModseq) enableCondstore(session, sel);
  let highest = 0;
  const needs = searchNeeds(parsed.key);
  const wantDate = usesInternalDate(parsed.key);
  const fromMemo = !needs.body && (needs.header || needs.sentDate) && [...headerFields(parsed.key)].every((f) => MEMO_FIELDS.includes(f));
  const folder = sel.folder;
  const maxUid = sel.view.length === 0 ? 0 : sel.view[sel.view.length - 1]!;
  const found: number[] = [];
  if (fromMemo) {
    // Fill the remembered fields first, several files at a time.
    await folder.loadMemos();
    const missing = sel.view.map((uid) => folder.byUid.get(uid)).filter((e): e is Entry => e !== undefined && folder.memo(e).fields === undefined);
    await inParallel(missing, READ_AHEAD, async (entry) => {
      const head = await content(folder, entry, 'header');
      if (head === null) return;
      const memo = folder.memo(entry);
      memo.fields = Object.fromEntries(MEMO_FIELDS.map((f) => [f, headerValues(head, f)]));
      memo.sent = sentDate(head)?.getTime() ?? null;
      folder.memoChanged(entry, { fields: memo.fields, sent: memo.sent });
    });
    await folder.saveMemos();
  }
  for (let i = 0; i < sel.view.length; i++) {
    const uid = sel.view[i]!;
    const entry = folder.byUid.get(uid);
    if (entry === undefined) continue;
    await folder.complete([entry], { date: wantDate, size: true });
    const base = {
      seq: i + 1, uid, flags: new Set(entry.flags), recent: sel.recent.has(uid), size: entry.size ?? 0,
      internalDate: new Date(entry.internalDate ?? 0), modseq: entry.modseq,
    };
    let subject: SearchSubject = base;
    if (fromMemo) {
      // The usual header searches (FROM, TO, CC, BCC, SUBJECT, SENT*) from values remembered per message.
      const { fields, sent } = folder.memo(entry);
      if (fields === undefined) continue; // gone while the fields were read
      subject = { ...base, header: (name) => fields[name.toLowerCase()] ?? [], sentDate: () => (sent === null || sent === undefined ? null : new Date(sent)) };
    } else if (needs.header || needs.body || needs.sentDate) {
      const data = await content(folder, entry, needs.body ? 'full' : 'header');
      if (data === null) continue;
      subject = {
        ...base,
        header: (name: string) => headerValues(data, name),
        body: () => searchText(bodyOnly(data)),
        text: () => searchText(data),
        sentDate: () => sentDate(data),
      };
    }
    if (matches(parsed.key, subject, { maxSeq: sel.view.length, maxUid })) {
      found.push(byUid ? uid : i + 1);
      highest = Math.max(highest, entry.modseq);
    }
  }
  // RFC 7162 §3.1.5: with a MODSEQ key, the highest mod-sequence of the messages found.
  session.send(`* SEARCH${found.map((n) => ` ${n}`).join('')}${withModseq && found.length > 0 ? ` (MODSEQ ${highest})` : ''}`);
  await session.flush(byUid ? 'UID' : 'SEARCH');
  session.send(`${command.tag} OK ${byUid ? 'UID ' : ''}SEARCH completed`);
}

/** Runs `work` on every item, at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Header fields whose decoded values are remembered per message for SEARCH. */
const MEMO_FIELDS = ['from', 'to', 'cc', 'bcc', 'subject'];

/** The header fields a key searches (lower case). Pure. */
function headerFields(key: SearchKey, out = new Set<string>()): Set<string> {
  switch (key.kind) {
    case 'header': out.add(key.field.toLowerCase()); break;
    case 'and': for (const k of key.keys) headerFields(k, out); break;
    case 'or': headerFields(key.left, out); headerFields(key.right, out); break;
    case 'not': headerFields(key.key, out); break;
    default: break;
  }
  return out;
}

/** Whether a key compares INTERNALDATE (BEFORE, ON, SINCE): only then are the files stat()ed. Pure. */
function usesInternalDate(key: SearchKey): boolean {
  switch (key.kind) {
    case 'date': return !key.sent;
    case 'and': return key.keys.some(usesInternalDate);
    case 'or': return usesInternalDate(key.left) || usesInternalDate(key.right);
    case 'not': return usesInternalDate(key.key);
    default: return false;
  }
}

/** The message with its header cut to the MIME fields, for BODY searches (the text, not the header). */
function bodyOnly(raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return raw;
  const header = raw.subarray(0, end + 2).toString('latin1');
  const mimeFields = header.split(/\r\n(?![ \t])/).filter((f) => /^content-/i.test(f)).join('\r\n');
  return Buffer.concat([Buffer.from(`${mimeFields}${mimeFields === '' ? '' : '\r\n'}\r\n`, 'latin1'), raw.subarray(end + 4)]);
}

async function copy(session: Session, command: Command, byUid: boolean, args: readonly Token[], move: boolean): Promise<void> {
  const sel = session.selected!;
  const set = sequenceArg(args[0]);
  const name = folderName(args[1]);
  const problem = nameProblem(name);
  if (problem !== null) throw new ArgError(problem);
  const label = `${byUid ? 'UID ' : ''}${move ? 'MOVE' : 'COPY'}`;
  if (move && sel.readOnly) {
    session.send(`${command.tag} NO [READ-ONLY] the folder was opened with EXAMINE`);
    return;
  }
  const st = session.store!;
  if (!(await st.exists(name))) {
    session.send(`${command.tag} NO [TRYCREATE] no folder ${astring(name)}`);
    return;
  }
  const source = sel.folder;
  const chosen = targets(sel, set, byUid).map(([, uid]) => source.byUid.get(uid)).filter((e): e is Entry => e !== undefined);
  const user = session.user!;
  await source.complete(chosen, { date: false, size: true });
  if (move && sel.name === name) {
    session.send(`${command.tag} NO [CANNOT] the messages are in that folder already`);
    return;
  }
  const target = await st.open(name);
  // Maildir++ quota: what the copies add where they land, less (MOVE) what leaves a counted folder.
  const sum = (folder: Folder, entries: readonly Entry[]) => entries.filter((e) => folder.counts(e.flags)).reduce((n, e) => ({ bytes: n.bytes + (e.bytes ?? 0), count: n.count + 1 }), { bytes: 0, count: 0 });
  const added = sum(target, chosen);
  const left = move ? sum(source, chosen) : { bytes: 0, count: 0 };
  const delta = { bytes: added.bytes - left.bytes, count: added.count - left.count };
  let over: boolean;
  try {
    over = delta.bytes > 0 && user.quota !== null && (await checkQuota(user.root, user.quota, delta.bytes)) === 'over';
  } catch (err) {
    st.release(target);
    throw err;
  }
  if (over) {
    st.release(target);
    session.send(`${command.tag} NO [OVERQUOTA] the mailbox is full`);
    return;
  }
  const from: number[] = [];
  const to: number[] = [];
  try {
    for (const entry of chosen) {
      const file = join(source.path, 'cur', entry.name);
      const tags = sizeTags(entry.name, entry.unique);
      if (move) {
        to.push(await target.adopt(file, entry.unique, tags, entry.flags, null));
      } else {
        // A hard link: the same bytes under a new unique name (Maildir++ quota counts both).
        const { unique, file: tmp } = target.tmpFile(session.options.hostname);
        await link(file, tmp);
        try {
          to.push(await target.adopt(tmp, unique, tags, entry.flags, null));
        } catch (err) {
          await unlink(tmp).catch(() => undefined);
          throw err;
        }
      }
      from.push(entry.uid);
    }
  } finally {
    st.release(target);
    // What was copied or moved counts, also when a later message failed (gone meanwhile, disk full).
    const moved = new Set(from);
    const done = chosen.filter((e) => moved.has(e.uid));
    const add = sum(target, done);
    const sub = move ? sum(source, done) : { bytes: 0, count: 0 };
    if (add.count !== sub.count || add.bytes !== sub.bytes) await recordChange(user.root, add.bytes - sub.bytes, add.count - sub.count);
  }
  if (move) await source.sync(true);
  const code = from.length === 0 ? '' : `[COPYUID ${target.uidValidity} ${compress(from)} ${compress(to)}] `;
  if (move && code !== '') session.send(`* OK ${code}moved`);
  await session.flush(byUid ? 'UID' : move ? 'MOVE' : 'COPY');
  session.send(`${command.tag} OK ${move ? '' : code}${label} completed`);
}

/** The ",S=…,W=…" tags between the unique part and the info. Pure. */
function sizeTags(name: string, unique: string): string {
  return name.split(':')[0]!.slice(unique.length);
}

async function expunge(session: Session, command: Command, uids: SequenceSet | null): Promise<void> {
  const sel = session.selected!;
  if (sel.readOnly) {
    session.send(`${command.tag} NO [READ-ONLY] the folder was opened with EXAMINE`);
    return;
  }
  await removeDeleted(session, sel, uids);
  await session.flush('EXPUNGE');
  session.send(`${command.tag} OK ${uids === null ? '' : 'UID '}EXPUNGE completed`);
}

async function removeDeleted(session: Session, sel: Selected, uids: SequenceSet | null): Promise<void> {
  const folder = sel.folder;
  const allowed = uids === null ? null : new Set(seqForUids(sel.view, uids).map((seq) => sel.view[seq - 1]!));
  const doomed = folder.entries.filter((e) => e.flags.includes('\\Deleted') && (allowed === null || allowed.has(e.uid))).map((e) => e.uid);
  if (doomed.length === 0) return;
  // \Deleted messages left the quota when they were flagged (STORE): removing them changes nothing there.
  await folder.expunge(doomed);
}

const UID_COMMANDS: Record<string, (s: Session, c: Command, args: readonly Token[]) => Promise<void>> = {
  FETCH: (s, c, a) => fetch(s, c, true, a),
  STORE: (s, c, a) => store(s, c, true, a),
  SEARCH: (s, c, a) => search(s, c, true, a),
  COPY: (s, c, a) => copy(s, c, true, a, false),
  MOVE: (s, c, a) => copy(s, c, true, a, true),
  EXPUNGE: (s, c, a) => expunge(s, c, sequenceArg(a[0])),
};

export const messageCommands: Record<string, Handler> = {
  CHECK: {
    states: SELECTED,
    async run(session, command) {
      await session.selected!.folder.sync();
      await session.flush(command.name);
      session.send(`${command.tag} OK CHECK completed`);
    },
  },
  CLOSE: {
    states: SELECTED,
    async run(session, command) {
      const sel = session.selected!;
      if (!sel.readOnly) await removeDeleted(session, sel, null);
      session.deselect();
      session.send(`${command.tag} OK CLOSE completed`);
    },
  },
  UNSELECT: {
    states: SELECTED,
    async run(session, command) {
      session.deselect();
      session.send(`${command.tag} OK UNSELECT completed`);
    },
  },
  EXPUNGE: { states: SELECTED, run: (s, c) => expunge(s, c, null) },
  FETCH: { states: SELECTED, run: (s, c) => fetch(s, c, false, c.args) },
  STORE: { states: SELECTED, run: (s, c) => store(s, c, false, c.args) },
  SEARCH: { states: SELECTED, run: (s, c) => search(s, c, false, c.args) },
  COPY: { states: SELECTED, run: (s, c) => copy(s, c, false, c.args, false) },
  MOVE: { states: SELECTED, run: (s, c) => copy(s, c, false, c.args, true) },
  UID: {
    states: SELECTED,
    async run(session, command) {
      const sub = atom(command.args[0], 'the UID command').toUpperCase();
      const run = UID_COMMANDS[sub];
      if (run === undefined) throw new ArgError(`UID ${sub.slice(0, 20)} is not a command`);
      await run(session, command, command.args.slice(1));
    },
  },
  IDLE: {
    states: ['authenticated', 'selected'],
    async run(session, command) {
      const sel = session.selected;
      session.send('+ idling');
      await sel?.folder.sync();
      await session.flush('IDLE');
      session.idling = true;
      // inotify wakes the folder at once; the poll catches what it cannot see (NFS, another host).
      const poll = sel === null ? null : setInterval(() => void sel.folder.sync(true).catch(() => undefined), 30_000);
      try {
        const line = await session.next('line');
        if (line === null) return;
        if (line.kind !== 'line' || line.text.toUpperCase() !== 'DONE') {
          session.send(`${command.tag} BAD expected DONE`);
          return;
        }
      } finally {
        session.idling = false;
        if (poll !== null) clearInterval(poll);
      }
      await session.flush('IDLE');
      session.send(`${command.tag} OK IDLE terminated`);
    },
  },
};
