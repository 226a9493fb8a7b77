// Commands on folders, legal once logged in: SELECT/EXAMINE, CREATE/DELETE/RENAME,
// SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB (with SPECIAL-USE attributes), STATUS, NAMESPACE, the QUOTA
// commands (RFC 9208, limits from the directory, usage from maildirsize) and APPEND.
import { constants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { crlfToLf } from '../../../deliver/maildir-file.ts';
import { checkQuota, limitsOf, parseMaildirsize, readSizeFile, recordChange, scanUsage } from '../../../deliver/quota.ts';
import { systemFlag } from '../folder.ts';
import { countLines } from '../../maildir.ts';
import { nameProblem, patternRegExp, SEPARATOR, SPECIAL_USE } from '../mailstore.ts';
import { type Handler, type Selected, type Session, updates } from '../session.ts';
import type { Command, Token } from '../types.ts';
import { astring } from '../wire.ts';
import { ArgError, flags as flagArgs, folderName, parseDateTime, text } from './args.ts';

const LOGGED_IN = ['authenticated', 'selected'] as const;
const PERMANENT = '\\Answered \\Flagged \\Deleted \\Seen \\Draft';

function checkedName(command: Command, token: Token | undefined): string {
  const name = folderName(token);
  const problem = nameProblem(name);
  if (problem !== null) throw new ArgError(problem);
  return name;
}

async function select(session: Session, command: Command, readOnly: boolean): Promise<void> {
  session.deselect();
  const name = checkedName(command, command.args[0]);
  const store = session.store!;
  if (!(await store.exists(name))) {
    session.send(`${command.tag} NO [NONEXISTENT] no folder ${astring(name)}`);
    return;
  }
  const folder = await store.open(name);
  const params = command.args[1];
  if (params !== undefined) {
    // RFC 7162 §3.1.8: SELECT INBOX (CONDSTORE) enables CONDSTORE.
    const names = params.type === 'list' ? params.items.map((t) => (t.type === 'atom' ? t.value.toUpperCase() : '')) : [];
    if (names.length !== 1 || names[0] !== 'CONDSTORE') throw new ArgError('the only SELECT parameter known is (CONDSTORE)');
    session.enabled.add('CONDSTORE');
  }
  const condstore = session.enabled.has('CONDSTORE');
  const sel: Selected = { name, folder, readOnly, view: [], modseq: 0, recent: new Set(), dirty: false, condstore, stopListening: () => undefined };
  updates(sel, true); // fills the view and claims \Recent messages
  sel.modseq = folder.highestModseq;
  sel.stopListening = session.listen(sel);
  session.selected = sel;
  session.state = 'selected';
  const firstUnseen = sel.view.findIndex((uid) => !folder.byUid.get(uid)!.flags.includes('\\Seen'));
  session.sendAll([
    `* FLAGS (${PERMANENT})`,
    `* OK [PERMANENTFLAGS (${readOnly ? '' : PERMANENT})] ${readOnly ? 'read-only' : 'flags stored in the Maildir'}`,
    `* ${sel.view.length} EXISTS`,
    `* ${sel.recent.size} RECENT`,
    ...(firstUnseen === -1 ? [] : [`* OK [UNSEEN ${firstUnseen + 1}] first unseen`]),
    `* OK [UIDVALIDITY ${folder.uidValidity}] UIDs valid`,
    `* OK [UIDNEXT ${folder.uidNext}] predicted next UID`,
    `* OK [HIGHESTMODSEQ ${folder.highestModseq}] highest mod-sequence`,
    `${command.tag} OK [${readOnly ? 'READ-ONLY' : 'READ-WRITE'}] ${command.name} completed`,
  ]);
}

/** LIST's attributes of one folder. */
function attributes(name: string, all: readonly string[], subscribed: ReadonlySet<string> | null): string {
  const out = [all.some((f) => f.startsWith(`${name}${SEPARATOR}`)) ? '\\HasChildren' : '\\HasNoChildren'];
  const special = SPECIAL_USE[name];
  if (special !== undefined) out.push(special);
  if (subscribed?.has(name)) out.push('\\Subscribed');
  return out.join(' ');
}

async function list(session: Session, command: Command, lsub: boolean): Promise<void> {
  let args = command.args;
  // LIST-EXTENDED selection options and RETURN options are accepted and ignored (not advertised).
  if (!lsub && args[0]?.type === 'list') args = args.slice(1);
  const reference = text(args[0], 'the reference');
  const pattern = text(args[1], 'the pattern');
  if (pattern === '') {
    session.send(`* ${lsub ? 'LSUB' : 'LIST'} (\\Noselect) "${SEPARATOR}" ""`);
    session.send(`${command.tag} OK ${command.name} completed`);
    return;
  }
  const store = session.store!;
  const all = await store.folders();
  const subscribed = await store.subscriptions();
  const match = patternRegExp(reference, pattern);
  const lines: string[] = [];
  for (const name of lsub ? [...subscribed].sort() : all) {
    if (!match.test(name)) continue;
    // A subscribed folder that no longer exists is still listed by LSUB, as \Noselect (RFC 3501 §6.3.9).
    const attrs = lsub && !all.includes(name) ? '\\Noselect' : attributes(name, all, lsub ? null : subscribed);
    lines.push(`* ${lsub ? 'LSUB' : 'LIST'} (${attrs}) "${SEPARATOR}" ${astring(name)}`);
  }
  session.sendAll(lines);
  session.send(`${command.tag} OK ${command.name} completed`);
}

/** Quota limits (directory) and usage (maildirsize, or a scan when it is missing). */
async function quotaLine(session: Session): Promise<string> {
  const user = session.user!;
  const limits = user.quota === null ? { bytes: null, count: null } : limitsOf(user.quota);
  const found = await readSizeFile(user.root).catch(() => null);
  const usage = (found === null ? null : parseMaildirsize(found.text)?.usage) ?? (await scanUsage(user.root)).usage;
  const parts: string[] = [];
  if (limits.bytes !== null) parts.push(`STORAGE ${Math.ceil(Math.max(0, usage.bytes) / 1024)} ${Math.floor(limits.bytes / 1024)}`);
  if (limits.count !== null) parts.push(`MESSAGE ${Math.max(0, usage.count)} ${limits.count}`);
  return `* QUOTA "" (${parts.join(' ')})`;
}

export const folderCommands: Record<string, Handler> = {
  SELECT: { states: LOGGED_IN, run: (s, c) => select(s, c, false) },
  EXAMINE: { states: LOGGED_IN, run: (s, c) => select(s, c, true) },
  CREATE: {
    states: LOGGED_IN,
    async run(session, command) {
      // RFC 3501 §6.3.3: a trailing separator says the name will have children; the folder is made without it.
      const sent = text(command.args[0], 'the folder name');
      const name = checkedName(command, { type: 'atom', value: sent.endsWith(SEPARATOR) ? sent.slice(0, -1) : sent });
      if (name === 'INBOX' || !(await session.store!.create(name))) {
        session.send(`${command.tag} NO [ALREADYEXISTS] ${astring(name)} exists already`);
        return;
      }
      session.send(`${command.tag} OK CREATE completed`);
    },
  },
  DELETE: {
    states: LOGGED_IN,
    async run(session, command) {
      const name = checkedName(command, command.args[0]);
      if (name === 'INBOX') {
        session.send(`${command.tag} NO [CANNOT] INBOX cannot be deleted`);
        return;
      }
      if (session.selected?.name === name) session.deselect();
      const outcome = await session.store!.delete(name);
      session.send(outcome === 'ok' ? `${command.tag} OK DELETE completed`
        : outcome === 'missing' ? `${command.tag} NO [NONEXISTENT] no such folder`
        : `${command.tag} NO [INUSE] the folder has subfolders: delete them first`);
    },
  },
  RENAME: {
    states: LOGGED_IN,
    async run(session, command) {
      const from = checkedName(command, command.args[0]);
      const to = checkedName(command, command.args[1]);
      if (to === 'INBOX') {
        session.send(`${command.tag} NO [ALREADYEXISTS] INBOX exists already`);
        return;
      }
      if (session.selected !== null && (session.selected.name === from || session.selected.name.startsWith(`${from}${SEPARATOR}`))) session.deselect();
      const outcome = await session.store!.rename(from, to);
      session.send(outcome === 'ok' ? `${command.tag} OK RENAME completed`
        : outcome === 'missing' ? `${command.tag} NO [NONEXISTENT] no such folder`
        : outcome === 'invalid' ? `${command.tag} NO [CANNOT] a subfolder's new name would be too long`
        : `${command.tag} NO [ALREADYEXISTS] ${astring(to)} exists already`);
    },
  },
  SUBSCRIBE: {
    states: LOGGED_IN,
    async run(session, command) {
      await session.store!.subscribe(checkedName(command, command.args[0]));
      session.send(`${command.tag} OK SUBSCRIBE completed`);
    },
  },
  UNSUBSCRIBE: {
    states: LOGGED_IN,
    async run(session, command) {
      await session.store!.unsubscribe(checkedName(command, command.args[0]));
      session.send(`${command.tag} OK UNSUBSCRIBE completed`);
    },
  },
  LIST: { states: LOGGED_IN, run: (s, c) => list(s, c, false) },
  LSUB: { states: LOGGED_IN, run: (s, c) => list(s, c, true) },
  NAMESPACE: {
    states: LOGGED_IN,
    async run(session, command) {
      session.send(`* NAMESPACE (("" "${SEPARATOR}")) NIL NIL`);
      session.send(`${command.tag} OK NAMESPACE completed`);
    },
  },
  STATUS: {
    states: LOGGED_IN,
    async run(session, command) {
      const name = checkedName(command, command.args[0]);
      const wanted = command.args[1];
      if (wanted?.type !== 'list' || wanted.items.length === 0) throw new ArgError('STATUS needs a list of items');
      const store = session.store!;
      if (!(await store.exists(name))) {
        session.send(`${command.tag} NO [NONEXISTENT] no folder ${astring(name)}`);
        return;
      }
      const folder = await store.open(name);
      try {
        const out: string[] = [];
        for (const item of wanted.items) {
          const key = item.type === 'atom' ? item.value.toUpperCase() : '';
          const value = key === 'MESSAGES' ? folder.entries.length
            : key === 'RECENT' ? folder.entries.filter((e) => e.recent).length
            : key === 'UIDNEXT' ? folder.uidNext
            : key === 'UIDVALIDITY' ? folder.uidValidity
            : key === 'HIGHESTMODSEQ' ? enableCondstore(session, folder.highestModseq)
            : key === 'UNSEEN' ? folder.entries.filter((e) => !e.flags.includes('\\Seen')).length
            : key === 'SIZE' ? (await folder.complete(folder.entries, { date: false, size: true }), folder.entries.reduce((n, e) => n + (e.size ?? 0), 0))
            : null;
          if (value === null) throw new ArgError(`unknown STATUS item ${key.slice(0, 30)}`);
          out.push(`${key} ${value}`);
        }
        session.send(`* STATUS ${astring(name)} (${out.join(' ')})`);
      } finally {
        store.release(folder);
      }
      await session.flush(command.name);
      session.send(`${command.tag} OK STATUS completed`);
    },
  },
  GETQUOTAROOT: {
    states: LOGGED_IN,
    async run(session, command) {
      const name = checkedName(command, command.args[0]);
      if (!(await session.store!.exists(name))) {
        session.send(`${command.tag} NO [NONEXISTENT] no folder ${astring(name)}`);
        return;
      }
      session.send(`* QUOTAROOT ${astring(name)} ""`);
      session.send(await quotaLine(session));
      session.send(`${command.tag} OK GETQUOTAROOT completed`);
    },
  },
  GETQUOTA: {
    states: LOGGED_IN,
    async run(session, command) {
      if (text(command.args[0], 'the quota root') !== '') {
        session.send(`${command.tag} NO [NONEXISTENT] the only quota root is ""`);
        return;
      }
      session.send(await quotaLine(session));
      session.send(`${command.tag} OK GETQUOTA completed`);
    },
  },
  SETQUOTA: {
    states: LOGGED_IN,
    async run(session, command) {
      session.send(`${command.tag} NO [NOPERM] quotas come from the directory`);
    },
  },
  APPEND: {
    states: LOGGED_IN,
    async run(session, command) {
      const name = checkedName(command, command.args[0]);
      const rest = command.args.slice(1);
      const message = rest[rest.length - 1];
      if (message?.type !== 'string') throw new ArgError('APPEND needs the message as a literal');
      let wanted: string[] = [];
      let date: Date | null = null;
      for (const token of rest.slice(0, -1)) {
        if (token.type === 'list') wanted = flagArgs(token);
        else if (token.type === 'string') {
          date = parseDateTime(token.value.toString('latin1'));
          if (date === null) throw new ArgError('the date must look like "17-Jul-1996 02:44:25 -0700"');
        } else throw new ArgError('APPEND takes a folder, optional flags, an optional date and the message');
      }
      const store = session.store!;
      if (!(await store.exists(name))) {
        session.send(`${command.tag} NO [TRYCREATE] no folder ${astring(name)}`);
        return;
      }
      const user = session.user!;
      const body = crlfToLf(message.value, { cr: false });
      const kept = wanted.map(systemFlag).filter((f): f is string => f !== null);
      const folder = await store.open(name);
      try {
        const counted = folder.counts(kept);
        if (counted && user.quota !== null && (await checkQuota(user.root, user.quota, body.length)) === 'over') {
          session.send(`${command.tag} NO [OVERQUOTA] the mailbox is full`);
          return;
        }
        const { unique, file: tmp } = folder.tmpFile(session.options.hostname);
        const lines = countLines(body);
        await writeSynced(tmp, body);
        let uid: number;
        try {
          uid = await folder.adopt(tmp, unique, `,S=${body.length},W=${body.length + lines}`, kept, date);
        } catch (err) {
          await unlink(tmp).catch(() => undefined);
          throw err;
        }
        if (counted) await recordChange(user.root, body.length, 1);
        await session.flush(command.name);
        session.send(`${command.tag} OK [APPENDUID ${folder.uidValidity} ${uid}] APPEND completed`);
      } finally {
        store.release(folder);
      }
    },
  },
};

/** STATUS HIGHESTMODSEQ is a CONDSTORE-enabling command (RFC 7162 §3.1); returns `value`. */
function enableCondstore(session: Session, value: number): number {
  session.enabled.add('CONDSTORE');
  if (session.selected !== null) session.selected.condstore = true;
  return value;
}

async function writeSynced(file: string, data: Buffer): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

