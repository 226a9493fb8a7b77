// IMAP CONDSTORE (RFC 7162) and the other behaviour of the last IMAP round: mod-sequences in FETCH,
// STORE, SEARCH and STATUS, told to other sessions and growing across a restart; the Maildir++ quota
// as IMAP changes it (.Trash and \Deleted messages do not count); sequence numbers beyond the last
// message; SEARCH over header fields remembered per message. Raw sockets where the exact lines
// matter, imapflow where a real client's CONDSTORE support is the point.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ImapFlow } from 'imapflow';
import { done, flow, type ImapRaw, type ImapReply, rawLogin } from '../harness/imap.ts';
import { curName, curNames, folderDir, listDir, maildirsize, sizeTag, type Stored, uniqueOf, waitForStored, deliverSimple, deliverTo, recount } from '../harness/maildir.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { REPO_ROOT, sshaHash, startSlapd, type Slapd } from '../harness/slapd.ts';
import { marker } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };

// ---- test users ---------------------------------------------------------------------------------

/** quoter's Maildir++ quota: 10000 bytes, 100 messages. */
const LIMIT = 10_000;
/** One user per test. Password: "<name>-Pw-1". */
const USERS: Record<string, { quota?: [number, number] }> = {
  modder: {}, enabler: {}, statuser: {}, flowmod: {}, restarter: {}, quoter: { quota: [LIMIT, 100] }, renamer: { quota: [1_000_000, 100] },
  seqer: {}, finder: {}, dater: {},
};
const pw = (user: string) => `${user}-Pw-1`;

function usersLdif(): string {
  return Object.entries(USERS).map(([name, { quota }]) => [
    `dn: uid=${name},ou=people,dc=example,dc=org`,
    'objectClass: inetOrgPerson', 'objectClass: qmailUser',
    `cn: ${name}`, `sn: ${name}`, `uid: ${name}`, `mail: ${name}@example.org`,
    `userPassword: ${sshaHash(pw(name))}`, `mailMessageStore: example.org/${name}/`, 'accountStatus: active',
    ...(quota ? [`mailQuotaSize: ${quota[0]}`, `mailQuotaCount: ${quota[1]}`] : []),
    '',
  ].join('\n')).join('\n');
}

// ---- Maildir files ------------------------------------------------------------------------------









/** The sum of maildirsize's lines is what a recount finds. */
function assertQuotaConsistent(maildir: string, when: string): void {
  const file = maildirsize(maildir);
  assert.deepEqual({ bytes: file.bytes, count: file.count }, recount(maildir), `maildirsize ${when}: ${JSON.stringify(file.lines)}`);
}

// ---- raw IMAP helpers ---------------------------------------------------------------------------

/** Sends `line` and asserts that its tagged reply is OK. */
async function ok(c: ImapRaw, line: string): Promise<ImapReply> {
  const reply = await c.command(line);
  const tag = line.slice(0, line.indexOf(' '));
  assert.ok(reply.tagged.startsWith(`${tag} OK`), `${JSON.stringify(line.slice(0, 200))} → ${JSON.stringify(reply)}`);
  return reply;
}

/** The value of `* OK [HIGHESTMODSEQ n]` in a SELECT reply. */
function highestIn(reply: ImapReply): bigint {
  const m = reply.untagged.map((l) => /^\* OK \[HIGHESTMODSEQ (\d+)\]/.exec(l)).find((x) => x !== null);
  assert.ok(m, `HIGHESTMODSEQ in ${JSON.stringify(reply.untagged)}`);
  return BigInt(m[1]!);
}

/** The MODSEQ of one FETCH line. */
function modseqOf(line: string | undefined): bigint {
  const m = /\bMODSEQ \((\d+)\)/.exec(line ?? '');
  assert.ok(m, `MODSEQ in ${JSON.stringify(line)}`);
  return BigInt(m[1]!);
}

/** STATUS <folder> (HIGHESTMODSEQ). */
async function statusHighest(c: ImapRaw, tag: string, folder = 'INBOX'): Promise<bigint> {
  const reply = await ok(c, `${tag} STATUS ${folder} (HIGHESTMODSEQ)`);
  const m = reply.untagged.map((l) => /^\* STATUS \S+ \(HIGHESTMODSEQ (\d+)\)$/.exec(l)).find((x) => x !== null);
  assert.ok(m, `STATUS answered: ${JSON.stringify(reply.untagged)}`);
  return BigInt(m[1]!);
}

/** mark → UID of every message in the folder, found in its header (a mark followed by no further mark character). */
async function uidsOf(c: ImapRaw, tag: string, marks: readonly string[]): Promise<Map<string, number>> {
  const reply = await ok(c, `${tag} UID FETCH 1:* (BODY.PEEK[HEADER])`);
  const out = new Map<string, number>();
  for (const line of reply.untagged) {
    const uid = /^\* \d+ FETCH \([^\r\n]*?\bUID (\d+)/.exec(line);
    if (uid === null) continue;
    const mark = marks.find((m) => new RegExp(`${m}(?![0-9A-Za-z-])`).test(line));
    assert.ok(mark !== undefined && !out.has(mark), `message UID ${uid[1]} has one known, unique mark`);
    out.set(mark, Number(uid[1]));
  }
  return out;
}

/** The numbers of the one `* SEARCH` line, ascending. */
function searchResult(reply: ImapReply): number[] {
  const lines = reply.untagged.filter((l) => l.startsWith('* SEARCH'));
  assert.equal(lines.length, 1, `one SEARCH line: ${JSON.stringify(reply.untagged)}`);
  return lines[0]!.slice('* SEARCH'.length).trim().split(' ').filter((n) => n !== '').map(Number).sort((a, b) => a - b);
}

describe('imap condstore, quota, sequence numbers, search memo', () => {
  let slapd: Slapd;
  let server: TestServer;
  let imap: number;

  before(async () => {
    slapd = await startSlapd();
    await slapd.ldapadd(usersLdif());
    server = await startServer(slapd, { smtp: { tls: TLS }, listen: { imap: '127.0.0.1:0' } });
    imap = server.running.ports.imap!;
  });
  after(async () => {
    await server?.stop();
    await slapd?.stop();
  });

  test('CONDSTORE: capability, SELECT (CONDSTORE) with HIGHESTMODSEQ, ENABLE, MODSEQ in FETCH, CHANGEDSINCE, UNCHANGEDSINCE with [MODIFIED], .SILENT, SEARCH MODSEQ, STATUS, other sessions told', async () => {
    const user = 'modder';
    const maildir = server.maildir(user);
    const msgs: (Stored & { subject: string })[] = [];
    for (let i = 1; i <= 5; i++) msgs.push(await deliverSimple(server, user, `cs${i}`));
    const a = await rawLogin(imap, user, pw(user));
    let b: ImapRaw | undefined;
    let plain: ImapRaw | undefined;
    let watcher: ImapRaw | undefined;
    try {
      const caps = await ok(a, 'a1 CAPABILITY');
      assert.match(caps.untagged[0] ?? '', /^\* CAPABILITY .*\bCONDSTORE\b/, 'CONDSTORE offered once logged in');

      // UIDs apart from sequence numbers: the first message goes (the session is not CONDSTORE-aware yet).
      await ok(a, 'a2 SELECT INBOX');
      const deleted = await ok(a, 'a3 STORE 1 +FLAGS (\\Deleted)');
      assert.doesNotMatch(deleted.untagged.join('\n'), /MODSEQ/, 'no MODSEQ before a CONDSTORE-enabling command');
      await ok(a, 'a4 EXPUNGE');
      await ok(a, 'a5 UNSELECT');

      const selected = await ok(a, 'a6 SELECT INBOX (CONDSTORE)');
      assert.ok(selected.untagged.includes('* 4 EXISTS'), JSON.stringify(selected.untagged));
      const h0 = highestIn(selected);
      const listed = await ok(a, 'a7 FETCH 1:* (UID MODSEQ)');
      const uids: number[] = [];
      const modseqs: bigint[] = [];
      for (const [i, line] of listed.untagged.entries()) {
        const m = /^\* (\d+) FETCH \(UID (\d+) MODSEQ \((\d+)\)\)$/.exec(line);
        assert.ok(m, line);
        assert.equal(Number(m[1]), i + 1);
        uids.push(Number(m[2]));
        modseqs.push(BigInt(m[3]!));
      }
      assert.deepEqual(uids, [2, 3, 4, 5]);
      for (const m of modseqs) assert.ok(m > 0n && m <= h0, `MODSEQ ${m} within 1..HIGHESTMODSEQ ${h0}`);
      const byMark = await uidsOf(a, 'a8', msgs.map((m) => m.subject));
      assert.deepEqual([...byMark.values()].sort(), uids);
      /** The current cur/ name of the message at sequence number `seq`. */
      const fileOf = (seq: number) => {
        const msg = msgs.find((m) => byMark.get(m.subject) === uids[seq - 1])!;
        return curName(maildir, 'INBOX', msg.unique);
      };

      // STORE on one message: MODSEQ above the old highest; CHANGEDSINCE names only that message.
      const flagged = await ok(a, 'a9 STORE 2 +FLAGS (\\Flagged)');
      const m2 = modseqOf(flagged.untagged[0]);
      assert.ok(m2 > h0, `${m2} > ${h0}`);
      assert.deepEqual(flagged.untagged, [`* 2 FETCH (FLAGS (\\Flagged) MODSEQ (${m2}))`]);
      assert.deepEqual((await ok(a, `a10 FETCH 1:* (FLAGS) (CHANGEDSINCE ${h0})`)).untagged, [`* 2 FETCH (FLAGS (\\Flagged) MODSEQ (${m2}))`]);
      assert.deepEqual((await ok(a, `a11 UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${h0})`)).untagged, [`* 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (${m2}))`]);
      assert.deepEqual((await ok(a, `a12 FETCH 1:* (FLAGS) (CHANGEDSINCE ${m2})`)).untagged, [], 'nothing changed since then');

      // ENABLE in a second session: CONDSTORE the first time, nothing new the second.
      b = await rawLogin(imap, user, pw(user));
      assert.deepEqual((await ok(b, 'b1 ENABLE CONDSTORE')).untagged, ['* ENABLED CONDSTORE']);
      assert.deepEqual((await ok(b, 'b2 ENABLE CONDSTORE')).untagged, ['* ENABLED'], 'already enabled: nothing new');
      assert.ok(highestIn(await ok(b, 'b3 SELECT INBOX')) >= m2);
      const answered = await ok(b, 'b4 STORE 3 +FLAGS (\\Answered)');
      const m3 = modseqOf(answered.untagged[0]);
      assert.deepEqual(answered.untagged, [`* 3 FETCH (FLAGS (\\Answered) MODSEQ (${m3}))`]);

      // UNCHANGEDSINCE: 2 (changed here) and 3 (changed by b) are left alone and named in [MODIFIED]; 1 is changed.
      const [file2, file3] = [fileOf(2), fileOf(3)];
      const conditional = await a.command(`a13 STORE 1:3 (UNCHANGEDSINCE ${h0}) +FLAGS (\\Seen)`);
      assert.match(conditional.tagged, /^a13 OK \[MODIFIED 2:3\] /, JSON.stringify(conditional));
      const ones = conditional.untagged.filter((l) => l.startsWith('* 1 FETCH'));
      assert.ok(ones.length >= 1, `message 1 told with its MODSEQ: ${JSON.stringify(conditional.untagged)}`);
      const m1 = modseqOf(ones[0]);
      assert.ok(m1 > m3);
      for (const line of ones) assert.equal(line, `* 1 FETCH (FLAGS (\\Seen) MODSEQ (${m1}))`);
      assert.ok(!conditional.untagged.some((l) => /^\* [23] FETCH .*\\Seen/.test(l)), `no \\Seen told for 2 or 3: ${JSON.stringify(conditional.untagged)}`);
      assert.equal(fileOf(2), file2, 'message 2 not changed on disk');
      assert.equal(fileOf(3), file3, 'message 3 not changed on disk');
      assert.match(file2, /:2,F$/);
      assert.match(file3, /:2,R$/);
      assert.match(fileOf(1), /:2,S$/);
      // b's change reaches a (in that reply or at the next command), once, with its MODSEQ.
      const told = [...conditional.untagged, ...(await ok(a, 'a14 NOOP')).untagged];
      assert.deepEqual(told.filter((l) => l.startsWith('* 3 ')), [`* 3 FETCH (FLAGS (\\Answered) MODSEQ (${m3}))`]);

      // UID STORE: [MODIFIED] names UIDs. UNCHANGEDSINCE 0 always fails.
      const byUid = await a.command(`a15 UID STORE 3,4 (UNCHANGEDSINCE ${h0}) +FLAGS (\\Draft)`);
      assert.match(byUid.tagged, /^a15 OK \[MODIFIED 3:4\] /, JSON.stringify(byUid));
      assert.ok(!byUid.untagged.some((l) => l.includes('\\Draft')), JSON.stringify(byUid.untagged));
      const file4 = fileOf(4);
      const zero = await a.command('a16 STORE 4 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)');
      assert.match(zero.tagged, /^a16 OK \[MODIFIED 4\] /, JSON.stringify(zero));
      assert.deepEqual([fileOf(2), fileOf(3), fileOf(4)], [file2, file3, file4]);

      // UNCHANGEDSINCE with the current value: applied, answered with the new MODSEQ.
      const current = await ok(a, `a17 STORE 2 (UNCHANGEDSINCE ${m2}) +FLAGS (\\Seen)`);
      assert.doesNotMatch(current.tagged, /MODIFIED/);
      const m2b = modseqOf(current.untagged[0]);
      assert.ok(m2b > m1);
      assert.deepEqual(current.untagged, [`* 2 FETCH (FLAGS (\\Seen \\Flagged) MODSEQ (${m2b}))`]);
      assert.match(fileOf(2), /:2,FS$/);

      // .SILENT under CONDSTORE: still a FETCH with the MODSEQ of each message changed.
      const silent = await ok(a, 'a18 STORE 1 -FLAGS.SILENT (\\Seen)');
      const s1 = modseqOf(silent.untagged[0]);
      assert.deepEqual(silent.untagged, [`* 1 FETCH (MODSEQ (${s1}))`]);
      assert.match(fileOf(1), /:2,$/);
      const uidSilent = await ok(a, 'a19 UID STORE 2 +FLAGS.SILENT (\\Flagged)');
      const s2 = modseqOf(uidSilent.untagged[0]);
      assert.ok(s2 > s1);
      assert.deepEqual(uidSilent.untagged, [`* 1 FETCH (UID 2 MODSEQ (${s2}))`]);

      // SEARCH MODSEQ: the messages changed since h0 (4 was not), with the highest MODSEQ among them.
      const now = (await ok(a, 'a20 FETCH 1:* (MODSEQ)')).untagged.map(modseqOf);
      assert.equal(now.length, 4);
      const top = [now[0]!, now[1]!, now[2]!].reduce((x, y) => (y > x ? y : x));
      assert.equal(now[3], modseqs[3], 'message 4 kept its MODSEQ');
      assert.deepEqual((await ok(a, `a21 SEARCH MODSEQ ${h0 + 1n}`)).untagged, [`* SEARCH 1 2 3 (MODSEQ ${top})`]);
      assert.deepEqual((await ok(a, `a22 UID SEARCH MODSEQ ${h0 + 1n}`)).untagged, [`* SEARCH 2 3 4 (MODSEQ ${top})`]);
      assert.deepEqual((await ok(a, `a23 SEARCH MODSEQ "/flags/\\\\seen" all ${h0 + 1n}`)).untagged, [`* SEARCH 1 2 3 (MODSEQ ${top})`]);
      assert.deepEqual((await ok(a, `a24 SEARCH MODSEQ ${top + 1n}`)).untagged, ['* SEARCH'], 'nothing found: no (MODSEQ …)');
      assert.deepEqual((await ok(a, 'a25 SEARCH 4 MODSEQ 1')).untagged, [`* SEARCH 4 (MODSEQ ${modseqs[3]})`]);

      // STATUS (HIGHESTMODSEQ) from a session with nothing selected: the highest, and more after a change.
      watcher = await rawLogin(imap, user, pw(user));
      const st1 = await statusHighest(watcher, 'w1');
      assert.equal(st1, top, 'HIGHESTMODSEQ is the highest MODSEQ of the messages');

      // Sessions with INBOX selected are told of a's next change: with MODSEQ under CONDSTORE, without otherwise.
      plain = await rawLogin(imap, user, pw(user));
      await ok(plain, 'p1 SELECT INBOX');
      await ok(b, 'b5 NOOP');
      const change = await ok(a, 'a26 STORE 4 +FLAGS (\\Flagged)');
      const m4 = modseqOf(change.untagged[0]);
      assert.deepEqual(change.untagged, [`* 4 FETCH (FLAGS (\\Flagged) MODSEQ (${m4}))`]);
      const st2 = await statusHighest(watcher, 'w2');
      assert.ok(st2 > st1, `STATUS HIGHESTMODSEQ grew: ${st1} → ${st2}`);
      assert.equal(st2, m4);
      assert.deepEqual((await ok(b, 'b6 NOOP')).untagged, [`* 4 FETCH (FLAGS (\\Flagged) MODSEQ (${m4}))`], 'CONDSTORE session: FLAGS and MODSEQ');
      assert.deepEqual((await ok(plain, 'p2 NOOP')).untagged, ['* 4 FETCH (FLAGS (\\Flagged))'], 'session without CONDSTORE: FLAGS only');

      // A new message counts as changed since any earlier HIGHESTMODSEQ.
      const sixth = await deliverSimple(server, user, 'cs6');
      const arrived = await ok(b, 'b7 NOOP');
      assert.ok(arrived.untagged.includes('* 5 EXISTS'), JSON.stringify(arrived.untagged));
      const fresh = await ok(b, `b8 UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${m4})`);
      assert.equal(fresh.untagged.length, 1, JSON.stringify(fresh.untagged));
      assert.match(fresh.untagged[0]!, /^\* 5 FETCH \(UID 6 FLAGS \((\\Recent)?\) MODSEQ \(\d+\)\)$/);
      assert.ok(modseqOf(fresh.untagged[0]) > m4);
      assert.ok((await statusHighest(watcher, 'w3')) > st2, 'HIGHESTMODSEQ grew with the arrival');
      assert.equal(curNames(maildir, 'INBOX', sixth.unique).length, 1);
    } finally {
      a.close();
      b?.close();
      plain?.close();
      watcher?.close();
    }
  });

  test('CONDSTORE-enabling commands (RFC 7162 §3.1): after SELECT (CONDSTORE), ENABLE, FETCH MODSEQ, FETCH CHANGEDSINCE, SEARCH MODSEQ or STORE UNCHANGEDSINCE, flag changes by others come with MODSEQ', async () => {
    const user = 'enabler';
    await deliverSimple(server, user, 'en1');
    const changer = await rawLogin(imap, user, pw(user));
    try {
      await ok(changer, 'c1 SELECT INBOX (CONDSTORE)');
      const cases: [string, string[]][] = [
        ['none', ['SELECT INBOX']],
        ['SELECT (CONDSTORE)', ['SELECT INBOX (CONDSTORE)']],
        ['ENABLE CONDSTORE', ['ENABLE CONDSTORE', 'SELECT INBOX']],
        ['FETCH MODSEQ', ['SELECT INBOX', 'FETCH 1 (MODSEQ)']],
        ['FETCH CHANGEDSINCE', ['SELECT INBOX', 'FETCH 1 (FLAGS) (CHANGEDSINCE 1)']],
        ['SEARCH MODSEQ', ['SELECT INBOX', 'SEARCH MODSEQ 1']],
        ['STORE UNCHANGEDSINCE', ['SELECT INBOX', 'STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)']],
      ];
      let n = 0;
      let on = false;
      for (const [label, commands] of cases) {
        const c = await rawLogin(imap, user, pw(user));
        try {
          for (const line of commands) await ok(c, `e${++n} ${line}`);
          on = !on;
          const change = await ok(changer, `c${++n} STORE 1 ${on ? '+' : '-'}FLAGS (\\Flagged)`);
          const m = modseqOf(change.untagged[0]);
          const told = (await ok(c, `e${++n} NOOP`)).untagged;
          assert.equal(told.length, 1, `${label}: ${JSON.stringify(told)}`);
          if (label === 'none') assert.match(told[0]!, /^\* 1 FETCH \(FLAGS \([^)]*\)\)$/, 'not CONDSTORE-aware: no MODSEQ');
          else assert.match(told[0]!, new RegExp(`^\\* 1 FETCH \\(FLAGS \\([^)]*\\) MODSEQ \\(${m}\\)\\)$`), label);
        } finally {
          c.close();
        }
      }
    } finally {
      changer.close();
    }
  });

  test('STATUS (HIGHESTMODSEQ) is a CONDSTORE-enabling command too (RFC 7162 §3.1): flag changes told afterwards carry MODSEQ', async () => {
    const user = 'statuser';
    await deliverSimple(server, user, 'st1');
    const changer = await rawLogin(imap, user, pw(user));
    const c = await rawLogin(imap, user, pw(user));
    try {
      await ok(changer, 'c1 SELECT INBOX');
      const before = await statusHighest(c, 's1');
      await ok(c, 's2 SELECT INBOX');
      const change = await ok(changer, 'c2 STORE 1 +FLAGS (\\Flagged)');
      assert.match(change.untagged[0] ?? '', /^\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\)\)$/, 'the changer is not CONDSTORE-aware');
      const told = (await ok(c, 's3 NOOP')).untagged;
      assert.equal(told.length, 1, JSON.stringify(told));
      assert.match(told[0]!, /^\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \(\d+\)\)$/,
        `after STATUS INBOX (HIGHESTMODSEQ) the session is CONDSTORE-aware; got ${JSON.stringify(told)}`);
      assert.ok(modseqOf(told[0]) > before);
    } finally {
      changer.close();
      c.close();
    }
  });

  test('imapflow with CONDSTORE: enabled at login, highestModseq on open, fetch changedSince returns only what another session changed, messageFlagsAdd unchangedSince', async () => {
    const user = 'flowmod';
    const maildir = server.maildir(user);
    const msgs = [await deliverSimple(server, user, 'fm1'), await deliverSimple(server, user, 'fm2'), await deliverSimple(server, user, 'fm3')];
    const f = await flow(imap, user, pw(user));
    let raw: ImapRaw | undefined;
    try {
      assert.ok(f.enabled.has('CONDSTORE'), `enabled: ${JSON.stringify([...f.enabled])}`);
      const box = await f.mailboxOpen('INBOX');
      const h = box.highestModseq;
      assert.equal(typeof h, 'bigint', `highestModseq: ${String(h)}`);
      assert.deepEqual(await f.fetchAll('1:*', { flags: true }, { changedSince: h! }), []);
      const listed = await f.fetchAll('1:*', { uid: true, envelope: true });
      const uidOf = (m: { subject: string }) => listed.find((x) => x.envelope?.subject === m.subject)!.uid;
      const second = msgs.find((m) => uidOf(m) === 2)!;

      raw = await rawLogin(imap, user, pw(user));
      await ok(raw, 'r1 SELECT INBOX');
      const change = await ok(raw, 'r2 UID STORE 2 +FLAGS (\\Flagged)');
      assert.doesNotMatch(change.untagged.join(''), /MODSEQ/);
      const flagEvents: { uid?: number; modseq?: bigint }[] = [];
      f.on('flags', (e: { uid?: number; modseq?: bigint }) => flagEvents.push(e));
      await f.noop();
      assert.equal(flagEvents.length, 1, 'imapflow told of the change');
      const m = flagEvents[0]!.modseq;
      assert.ok(typeof m === 'bigint' && m > h!, `the change came with its MODSEQ: ${String(m)}`);

      const changed = await f.fetchAll('1:*', { uid: true, flags: true }, { changedSince: h! });
      assert.deepEqual(changed.map((x) => [x.uid, x.modseq, [...(x.flags ?? [])].filter((fl) => fl !== '\\Recent')]), [[2, m, ['\\Flagged']]]);

      // unchangedSince: a stale value leaves the message alone, the current one changes it.
      const file = curName(maildir, 'INBOX', second.unique);
      await f.messageFlagsAdd('2', ['\\Seen'], { uid: true, unchangedSince: h! });
      assert.equal(curName(maildir, 'INBOX', second.unique), file, 'not applied: changed since');
      await f.messageFlagsAdd('2', ['\\Seen'], { uid: true, unchangedSince: m! });
      assert.match(curName(maildir, 'INBOX', second.unique), /:2,FS$/, 'applied: unchanged since');
      const after = await f.fetchOne('2', { uid: true, flags: true }, { uid: true });
      assert.ok(after && typeof after.modseq === 'bigint' && after.modseq > m!, `MODSEQ grew: ${String(after && after.modseq)}`);
    } finally {
      raw?.close();
      await done(f);
    }
  });

  test('mod-sequences only grow: after a restart on the same mail base HIGHESTMODSEQ is above every value handed out before, and CHANGEDSINCE an old value returns every message', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ldapmta-condstore-'));
    const overrides = { mailboxes: base, listen: { imap: '127.0.0.1:0' }, imap: { allowPlaintextAuthOnLoopback: true } };
    const user = 'restarter';
    const maildir = join(base, 'example.org', user);
    let first: TestServer | undefined;
    let second: TestServer | undefined;
    let c: ImapRaw | undefined;
    try {
      first = await startServer(slapd, overrides);
      for (let i = 1; i <= 3; i++) await deliverSimple(first, user, `rs${i}`, 'hello\r\n', '', maildir);
      c = await rawLogin(first.running.ports.imap!, user, pw(user), true);
      const h1 = highestIn(await ok(c, 'a1 SELECT INBOX (CONDSTORE)'));
      const seen = modseqOf((await ok(c, 'a2 STORE 1 +FLAGS (\\Seen)')).untagged[0]);
      const flagged = modseqOf((await ok(c, 'a3 STORE 2 +FLAGS (\\Flagged)')).untagged[0]);
      assert.ok(h1 < seen && seen < flagged, `growing within a run: ${h1} < ${seen} < ${flagged}`);
      await ok(c, 'a4 UNSELECT');
      const before = await statusHighest(c, 'a5');
      assert.equal(before, flagged);
      c.close();
      await first.stop();
      first = undefined;

      second = await startServer(slapd, overrides);
      c = await rawLogin(second.running.ports.imap!, user, pw(user), true);
      const selected = await ok(c, 'b1 SELECT INBOX (CONDSTORE)');
      assert.ok(selected.untagged.includes('* 3 EXISTS'), JSON.stringify(selected.untagged));
      const h2 = highestIn(selected);
      assert.ok(h2 > before, `HIGHESTMODSEQ after the restart ${h2} > ${before} before it`);
      const since = await ok(c, `b2 FETCH 1:* (FLAGS) (CHANGEDSINCE ${before})`);
      assert.deepEqual(since.untagged.map((l) => l.replace(/MODSEQ \(\d+\)/, 'MODSEQ (n)')), [
        '* 1 FETCH (FLAGS (\\Seen) MODSEQ (n))', '* 2 FETCH (FLAGS (\\Flagged) MODSEQ (n))', '* 3 FETCH (FLAGS () MODSEQ (n))',
      ], 'no change can be missed: every message is newer than any value of the earlier run');
      for (const line of since.untagged) assert.ok(modseqOf(line) > before && modseqOf(line) <= h2, line);
      const later = modseqOf((await ok(c, 'b3 STORE 3 +FLAGS (\\Answered)')).untagged[0]);
      assert.ok(later > h2);
    } finally {
      c?.close();
      await first?.stop();
      await second?.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('Maildir++ quota: COPY/MOVE into Trash, \\Deleted on and off, EXPUNGE, MOVE back (refused when over), APPEND \\Deleted; maildirsize always sums to a recount', async () => {
    const user = 'quoter';
    const md = server.maildir(user);
    const body = `${'q'.repeat(98)}\r\n`.repeat(20);
    const delivered = [await deliverSimple(server, user, 'qa', body), await deliverSimple(server, user, 'qb', body), await deliverSimple(server, user, 'qc', body)];
    const S = (m: Stored) => sizeTag(m.name);
    const start = maildirsize(md);
    assert.equal(start.lines[0], `${LIMIT}S,100C`);
    assertQuotaConsistent(md, 'after the deliveries');
    const c = await rawLogin(imap, user, pw(user));
    let n = 0;
    const t = () => `q${++n}`;
    /** Runs a command and asserts maildirsize gained exactly `added` lines (and still sums to a recount). */
    const step = async (line: string, added: string[], expectOk = true): Promise<ImapReply> => {
      const lines = maildirsize(md).lines;
      const reply = expectOk ? await ok(c, `${t()} ${line}`) : await c.command(`${t()} ${line}`);
      assert.deepEqual(maildirsize(md).lines, [...lines, ...added], `maildirsize after ${JSON.stringify(line.slice(0, 60))}`);
      assertQuotaConsistent(md, `after ${JSON.stringify(line.slice(0, 60))}`);
      return reply;
    };
    try {
      await ok(c, `${t()} SELECT INBOX`);
      const uid = await uidsOf(c, t(), delivered.map((m) => m.subject));
      assert.equal(uid.size, 3);
      const [x1, x2, x3] = [...delivered].sort((p, q) => uid.get(p.subject)! - uid.get(q.subject)!) as [typeof delivered[0], typeof delivered[0], typeof delivered[0]];
      const all = S(x1) + S(x2) + S(x3);
      assert.ok(maildirsize(md).bytes + all > LIMIT, 'precondition: the copies would not fit if Trash counted');

      // COPY into Trash: accepted although it would not fit, and nothing is added.
      const copied = await step('COPY 1:3 Trash', []);
      assert.match(copied.tagged, /\[COPYUID \d+ 1:3 1:3\]/);
      assert.equal(listDir(join(md, '.Trash', 'cur')).length, 3);

      // \Deleted on, off, on: out of the quota, back in, out; EXPUNGE then changes nothing.
      await step('STORE 1 +FLAGS.SILENT (\\Deleted)', [`-${S(x1)} -1`]);
      assert.match(curName(md, 'INBOX', x1.unique), /:2,T$/);
      await step('STORE 1 -FLAGS.SILENT (\\Deleted)', [`${S(x1)} 1`]);
      await step('STORE 1 +FLAGS.SILENT (\\Deleted)', [`-${S(x1)} -1`]);
      const expunged = await step('EXPUNGE', []);
      assert.deepEqual(expunged.untagged, ['* 1 EXPUNGE']);
      assert.deepEqual(curNames(md, 'INBOX', x1.unique), []);

      // MOVE INBOX → Trash: leaves the quota.
      await step('MOVE 1 Trash', [`-${S(x2)} -1`]);
      assert.deepEqual(curNames(md, 'INBOX', x2.unique), []);
      assert.equal(curNames(md, 'Trash', x2.unique).length, 1);

      // APPEND: a message that does not fit is refused; flagged \Deleted it is taken and not counted.
      const usage = maildirsize(md).bytes;
      const bigBody = `${'b'.repeat(98)}\r\n`.repeat(Math.ceil((LIMIT - usage + 500) / 99));
      const big = `Subject: too big\r\n\r\n${bigBody}`;
      const refused = await step(`APPEND INBOX {${big.length}+}\r\n${big}`, [], false);
      assert.match(refused.tagged, /^q\d+ NO \[OVERQUOTA\] /, JSON.stringify(refused));
      const appended = await step(`APPEND INBOX (\\Deleted) {${big.length}+}\r\n${big}`, []);
      assert.match(appended.tagged, /\[APPENDUID \d+ \d+\]/);
      assert.equal(listDir(join(md, 'cur')).filter((f) => /:2,T$/.test(f)).length, 1, 'the \\Deleted message is there');

      // In Trash nothing counts: \Deleted on and off adds nothing. MOVE back to INBOX counts again.
      await ok(c, `${t()} SELECT Trash`);
      const subjectOf = async (trashUid: number) => (await ok(c, `${t()} UID FETCH ${trashUid} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])`)).untagged.join('\n');
      assert.ok((await subjectOf(4)).includes(`Subject: ${x2.subject}\r\n`), 'UID 4 in Trash is the message MOVE took there');
      assert.ok((await subjectOf(3)).includes(`Subject: ${x3.subject}\r\n`), 'UID 3 in Trash is the copy of x3');
      await step('UID STORE 1 +FLAGS.SILENT (\\Deleted)', []);
      await step('UID STORE 1 -FLAGS.SILENT (\\Deleted)', []);
      await step('UID MOVE 4 INBOX', [`${S(x2)} 1`]);
      assert.equal(curNames(md, 'INBOX', x2.unique).length, 1, 'the moved message is back in INBOX');

      // Fill the quota to 500 bytes below its limit (APPEND to Drafts counts), then MOVE and COPY to INBOX are refused.
      const room = LIMIT - 500 - maildirsize(md).bytes;
      const fill = `Subject: fill\r\n\r\n${`${'f'.repeat(98)}\r\n`.repeat(Math.floor((room - 15) / 99))}`;
      const fillBytes = fill.replace(/\r\n/g, '\n').length;
      await step(`APPEND Drafts {${fill.length}+}\r\n${fill}`, [`${fillBytes} 1`]);
      const copyOfX3 = 3;
      assert.ok(maildirsize(md).bytes + S(x3) > LIMIT, 'precondition: x3 does not fit');
      const trashBefore = listDir(join(md, '.Trash', 'cur'));
      const inboxBefore = listDir(join(md, 'cur'));
      const moveBack = await step(`UID MOVE ${copyOfX3} INBOX`, [], false);
      assert.match(moveBack.tagged, /^q\d+ NO \[OVERQUOTA\] /, JSON.stringify(moveBack));
      const copyBack = await step(`UID COPY ${copyOfX3} INBOX`, [], false);
      assert.match(copyBack.tagged, /^q\d+ NO \[OVERQUOTA\] /, JSON.stringify(copyBack));
      assert.deepEqual(listDir(join(md, '.Trash', 'cur')), trashBefore, 'still in Trash');
      assert.deepEqual(listDir(join(md, 'cur')), inboxBefore, 'nothing arrived in INBOX');

      // A \Deleted message moves from INBOX to Junk without counting anywhere, also when the quota is nearly full.
      await ok(c, `${t()} SELECT INBOX`);
      const deletedSeq = searchResult(await ok(c, `${t()} SEARCH DELETED`));
      assert.equal(deletedSeq.length, 1);
      await step(`MOVE ${deletedSeq[0]} Junk`, []);
      assert.equal(listDir(join(md, '.Junk', 'cur')).filter((f) => /:2,T$/.test(f)).length, 1);

      // GETQUOTAROOT agrees with the recount.
      const real = recount(md);
      const quota = await ok(c, `${t()} GETQUOTAROOT INBOX`);
      assert.deepEqual(quota.untagged, ['* QUOTAROOT INBOX ""', `* QUOTA "" (STORAGE ${Math.ceil(real.bytes / 1024)} ${Math.floor(LIMIT / 1024)} MESSAGE ${real.count} 100)`]);
    } finally {
      c.close();
    }
  });

  test('Maildir++ quota: RENAME of Trash to another name, and of a folder to Trash, keeps maildirsize equal to a recount', async () => {
    const user = 'renamer';
    const md = server.maildir(user);
    await deliverSimple(server, user, 'rn1', 'one\r\n');
    await deliverSimple(server, user, 'rn2', 'two\r\n');
    assertQuotaConsistent(md, 'after the deliveries');
    const c = await rawLogin(imap, user, pw(user));
    try {
      await ok(c, 'r1 SELECT INBOX');
      await ok(c, 'r2 COPY 1:2 Trash');
      assertQuotaConsistent(md, 'after COPY 1:2 Trash');
      const keep = 'Subject: kept\r\n\r\nkept\r\n';
      await ok(c, 'r3 CREATE Keep');
      await ok(c, `r4 APPEND Keep {${keep.length}+}\r\n${keep}`);
      assertQuotaConsistent(md, 'after APPEND Keep');
      await ok(c, 'r5 UNSELECT');

      // The two copies leave .Trash for .Old: from now on they count.
      await ok(c, 'r6 RENAME Trash Old');
      assert.equal(listDir(join(md, '.Old', 'cur')).length, 2);
      assertQuotaConsistent(md, 'after RENAME Trash Old');
      // Keep becomes the Trash: its message no longer counts.
      await ok(c, 'r7 RENAME Keep Trash');
      assert.equal(listDir(join(md, '.Trash', 'cur')).length, 1);
      assertQuotaConsistent(md, 'after RENAME Keep Trash');
    } finally {
      c.close();
    }
  });

  test('sequence numbers: FETCH 5 in a 1-message folder is BAD (also STORE and COPY), UID FETCH 5 is OK with no data, FETCH 1:* in an empty folder is OK', async () => {
    const user = 'seqer';
    const maildir = server.maildir(user);
    const msg = await deliverSimple(server, user, 'sq');
    const c = await rawLogin(imap, user, pw(user));
    try {
      assert.ok((await ok(c, 's1 SELECT INBOX')).untagged.includes('* 1 EXISTS'));
      const beyond = await c.command('s2 FETCH 5 FLAGS');
      assert.deepEqual(beyond.untagged, []);
      assert.match(beyond.tagged, /^s2 BAD /, JSON.stringify(beyond));
      assert.deepEqual((await ok(c, 's3 UID FETCH 5 FLAGS')).untagged, [], 'a UID that does not exist is no error');
      assert.deepEqual((await ok(c, 's4 UID FETCH 5:9 FLAGS')).untagged, []);
      const one = await ok(c, 's5 FETCH 1 FLAGS');
      assert.equal(one.untagged.length, 1);
      assert.match(one.untagged[0]!, /^\* 1 FETCH \(FLAGS \(/);
      assert.equal((await ok(c, 's6 FETCH * FLAGS')).untagged.length, 1);
      assert.match((await c.command('s7 STORE 5 +FLAGS (\\Seen)')).tagged, /^s7 BAD /);
      assert.match((await c.command('s8 COPY 5 Trash')).tagged, /^s8 BAD /);
      assert.match(curName(maildir, 'INBOX', msg.unique), /:2,$/, 'nothing stored');
      assert.deepEqual(listDir(join(maildir, '.Trash', 'cur')), [], 'nothing copied');
      assert.deepEqual((await ok(c, 's9 NOOP')).untagged, [], 'the session goes on');

      const empty = await ok(c, 's10 SELECT Sent');
      assert.ok(empty.untagged.includes('* 0 EXISTS'));
      assert.deepEqual(await c.command('s11 FETCH 1:* FLAGS'), { tagged: 's11 OK FETCH completed', untagged: [] });
      assert.deepEqual((await ok(c, 's12 UID FETCH 1:* FLAGS')).untagged, []);
      assert.match((await c.command('s13 FETCH 1 FLAGS')).tagged, /^s13 BAD /);
      assert.deepEqual((await ok(c, 's14 SEARCH ALL')).untagged, ['* SEARCH']);
    } finally {
      c.close();
    }
  });

  test('SEARCH FROM / SUBJECT / SENTSINCE over remembered header fields: the same twice, the same as reading the message, new deliveries found, an expunged message gone', async () => {
    const user = 'finder';
    const mail = (mark: string, from: string, subject: string, date: string) => [
      `From: ${from}`, 'To: finder@example.org', `Subject: ${subject}`, `Date: ${date}`, `Message-ID: <${mark}@finder.test>`,
      'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `body of ${mark}`, '.', '',
    ].join('\r\n');
    const specs = {
      f1: ['"Alice Able" <alice@able.test>', 'Quarterly report 2026', 'Mon, 05 Jan 2026 12:00:00 +0000'],
      f2: ['Bob Baker <bob@baker.test>', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe_zum_Report?=', 'Fri, 13 Jun 2025 12:00:00 +0000'],
      f3: ['alice@able.test', 'Lunch on Friday', 'Tue, 10 Feb 2026 12:00:00 +0100'],
      f4: ['"Alice Able" <alice@able.test>', 'Re: report follow-up', 'Sun, 01 Mar 2026 12:00:00 +0000'],
      f5: ['Carol <carol@client.test>', 'Misc', 'Wed, 04 Dec 2024 12:00:00 +0000'],
    } as Record<string, readonly [string, string, string]>;
    // More new messages than the server fills remembered fields for at a time (8).
    const fillers = Array.from({ length: 9 }, (_, i) => `g${i + 1}`);
    for (const g of fillers) specs[g] = ['Dave Filler <dave@filler.test>', `filler ${g}`, 'Thu, 15 Jan 2026 12:00:00 +0000'];
    type Label = string;
    const marks = new Map<Label, string>();
    const send = async (label: Label) => {
      const mark = marker(label);
      marks.set(label, mark);
      const [from, subject, date] = specs[label]!;
      await deliverTo(server, user, mail(mark, from, subject, date), mark);
    };
    for (const label of ['f1', 'f2', 'f3'] as const) await send(label);

    const c = await rawLogin(imap, user, pw(user));
    const other = await rawLogin(imap, user, pw(user));
    let f: ImapFlow | undefined;
    let n = 0;
    const t = () => `f${++n}`;
    let uid = new Map<string, number>();
    const uids = (...labels: Label[]) => labels.map((l) => uid.get(marks.get(l)!)!).sort((x, y) => x - y);
    const refresh = async () => {
      uid = await uidsOf(c, t(), [...marks.values()]);
      assert.equal(uid.size, marks.size);
    };
    /** Each query: twice from the remembered fields, once through a path that reads the message (NOT BODY …). */
    const check = async (queries: [string, Label[]][], when: string) => {
      for (const [query, labels] of queries) {
        const first = searchResult(await ok(c, `${t()} UID SEARCH ${query}`));
        assert.deepEqual(first, uids(...labels), `${query} ${when}`);
        assert.deepEqual(searchResult(await ok(c, `${t()} UID SEARCH ${query}`)), first, `${query} ${when}, asked again`);
        assert.deepEqual(searchResult(await ok(c, `${t()} UID SEARCH ${query} NOT BODY "no-such-text-anywhere"`)), first, `${query} ${when}, read from the message`);
      }
      const utf8 = Buffer.from('grüße', 'utf8');
      c.write(Buffer.concat([Buffer.from(`u${n} UID SEARCH CHARSET UTF-8 SUBJECT {${utf8.length}+}\r\n`), utf8, Buffer.from('\r\n')]));
      const reply = await c.until(`u${n}`);
      assert.match(reply.tagged, /^u\d+ OK/);
      assert.deepEqual(searchResult(reply), uids('f2'), `an encoded-word subject ${when}`);
    };
    try {
      await ok(c, `${t()} SELECT INBOX`);
      await ok(c, `${t()} FETCH 1:* (ENVELOPE)`); // a remembered envelope, no remembered search fields yet
      await ok(other, 'o1 SELECT INBOX');
      await refresh();
      await check([
        ['FROM alice', ['f1', 'f3']],
        ['FROM "alice able"', ['f1']],
        ['SUBJECT report', ['f1', 'f2']],
        ['SENTSINCE 1-Jan-2026', ['f1', 'f3']],
        ['SENTBEFORE 1-Jan-2026', ['f2']],
        ['OR FROM bob SENTSINCE 1-Feb-2026', ['f2', 'f3']],
      ], 'at first');
      assert.deepEqual(searchResult(await ok(other, 'o2 UID SEARCH FROM alice')), uids('f1', 'f3'), 'another session agrees');

      // New deliveries: found by the same searches.
      for (const label of ['f4', 'f5', ...fillers]) await send(label);
      const told = await ok(c, `${t()} NOOP`);
      assert.ok(told.untagged.includes('* 14 EXISTS'), JSON.stringify(told.untagged));
      assert.ok((await ok(other, 'o3 NOOP')).untagged.includes('* 14 EXISTS'));
      await refresh();
      const afterDelivery: [string, Label[]][] = [
        ['FROM alice', ['f1', 'f3', 'f4']],
        ['SUBJECT report', ['f1', 'f2', 'f4']],
        ['SENTSINCE 1-Jan-2026', ['f1', 'f3', 'f4', ...fillers]],
        ['SENTBEFORE 1-Jan-2026', ['f2', 'f5']],
        ['FROM carol', ['f5']],
        ['FROM dave', fillers],
      ];
      await check(afterDelivery, 'after new deliveries');

      // An expunged message is not found any more, by this session or by another one (which is told of it afterwards).
      const gone = uid.get(marks.get('f1')!)!;
      const oldOrder = [...uid.values()].sort((x, y) => x - y);
      await ok(c, `${t()} UID STORE ${gone} +FLAGS.SILENT (\\Deleted)`);
      const expunged = await ok(c, `${t()} UID EXPUNGE ${gone}`);
      assert.equal(expunged.untagged.filter((l) => /^\* \d+ EXPUNGE$/.test(l)).length, 1, JSON.stringify(expunged.untagged));
      const remaining = (labels: Label[]) => labels.filter((l) => l !== 'f1');
      const live = (list: [string, Label[]][]): [string, Label[]][] => list.map(([q, labels]) => [q, remaining(labels)]);
      // uids() must not look up f1 any more.
      const all = [...marks.entries()];
      marks.delete('f1');
      await check(live(afterDelivery), 'after the expunge');
      const seqs = new Map((await ok(c, `${t()} FETCH 1:* (UID)`)).untagged.map((l) => {
        const m = /^\* (\d+) FETCH \(UID (\d+)\)$/.exec(l);
        assert.ok(m, l);
        return [Number(m[2]), Number(m[1])] as const;
      }));
      assert.deepEqual(searchResult(await ok(c, `${t()} SEARCH FROM alice`)), uids('f3', 'f4').map((u) => seqs.get(u)!).sort((x, y) => x - y), 'by sequence number');
      // The other session still numbers the messages as before the expunge (no EXPUNGE during SEARCH, RFC 3501 §7.4.1).
      const during = await ok(other, 'o4 SEARCH FROM alice');
      assert.ok(!during.untagged.some((l) => /EXPUNGE/.test(l)), `no EXPUNGE during SEARCH: ${JSON.stringify(during.untagged)}`);
      assert.deepEqual(searchResult(during), uids('f3', 'f4').map((u) => oldOrder.indexOf(u) + 1).sort((x, y) => x - y),
        `the other session does not find the expunged message: ${JSON.stringify(all)}`);
      assert.ok((await ok(other, 'o5 NOOP')).untagged.some((l) => /^\* \d+ EXPUNGE$/.test(l)));
      assert.deepEqual(searchResult(await ok(other, 'o6 UID SEARCH FROM alice')), uids('f3', 'f4'));

      // imapflow agrees.
      f = await flow(imap, user, pw(user));
      await f.mailboxOpen('INBOX');
      const byFlow = ((await f.search({ from: 'alice' }, { uid: true })) || []).sort((x, y) => x - y);
      assert.deepEqual(byFlow, uids('f3', 'f4'));
      const sinceFlow = ((await f.search({ sentSince: new Date('2026-01-01T00:00:00Z') }, { uid: true })) || []).sort((x, y) => x - y);
      assert.deepEqual(sinceFlow, uids('f3', 'f4', ...fillers));
    } finally {
      c.close();
      other.close();
      await done(f);
    }
  });

  test('SENTON / SENTSINCE / SENTBEFORE compare the day written in the Date: header, disregarding time and timezone (RFC 3501 §6.4.4)', async () => {
    const user = 'dater';
    const mail = (mark: string, date: string) =>
      `From: sender@outside.test\r\nTo: dater@example.org\r\nSubject: ${mark}\r\nDate: ${date}\r\n\r\nbody\r\n.\r\n`;
    // The 10th where it was written, the 9th in UTC; and the other way round.
    const late = marker('late');
    const early = marker('early');
    await deliverTo(server, user, mail(late, 'Tue, 10 Feb 2026 00:30:00 +0100'), late);
    await deliverTo(server, user, mail(early, 'Mon, 09 Feb 2026 23:30:00 -0500'), early);
    const c = await rawLogin(imap, user, pw(user));
    try {
      await ok(c, 'd1 SELECT INBOX');
      const uid = await uidsOf(c, 'd2', [late, early]);
      let n = 2;
      const queries: [string, string[]][] = [
        ['SENTON 10-Feb-2026', [late]],
        ['SENTON 9-Feb-2026', [early]],
        ['SENTSINCE 10-Feb-2026', [late]],
        ['SENTBEFORE 10-Feb-2026', [early]],
      ];
      const got: string[] = [];
      const want: string[] = [];
      for (const [query, marks] of queries) {
        for (const suffix of ['', ' NOT BODY "no-such-text-anywhere"']) {
          const found = searchResult(await ok(c, `d${++n} UID SEARCH ${query}${suffix}`));
          got.push(`${query}${suffix}: ${found.join(',')}`);
          want.push(`${query}${suffix}: ${marks.map((m) => uid.get(m)!).sort((x, y) => x - y).join(',')}`);
        }
      }
      assert.deepEqual(got, want, `UID ${uid.get(late)} is dated the 10th (+0100), UID ${uid.get(early)} the 9th (-0500)`);
    } finally {
      c.close();
    }
  });
});
