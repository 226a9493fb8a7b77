// npm run bench:imap — IMAP against ldapmta and, in the same run, the Dovecot IMAP of ../shared/peers
// (127.0.0.1:30143): the same users (userK/pwK of the peers' generated directory) with the same Maildir
// files on both sides. MAILBOXES users with MESSAGES realistic mails each (2-6 KB, varied senders,
// subjects and dates, some multipart; a quarter unseen), plus user<MAILBOXES+1> with BIG messages.
// The load generator (bench/imap-client.mjs) is its own process, over raw sockets, and checks every
// answer. Scenarios, each against Dovecot, then ldapmta:
//   big folder   SELECT INBOX and FETCH 1:* (FLAGS) of the BIG-message folder: the first time (cold:
//                nothing has opened it since it was written) and REPEATS more times (warm, p50/p99);
//   load         CONCURRENCY clients, one session per mailbox in turn: LOGIN, SELECT INBOX, FETCH 1:*
//                (UID FLAGS ENVELOPE), UID FETCH of BODIES random bodies (BODY.PEEK[], one command), UID
//                SEARCH UNSEEN, UID SEARCH FROM "<sender>", IDLE (DONE after IDLE_MS), LOGOUT; each command
//                is one op. "cold": the first session on each mailbox; "warm": WARM_SESSIONS more;
//   idle         IDLE_SESSIONS connections (users 1..MAILBOXES in turn) logged in, INBOX selected, in IDLE;
//                then the servers' memory: ldapmta's process RSS (and PSS), Dovecot's summed over all the
//                processes of its instance (master, imap, imap-login, auth, ...). On ldapmta twice: in the
//                process that served the loads (caches full, heap grown), then in a freshly started one.
// ldapmta runs as a child process (`npm run build`, then node dist/cli.js serve), with its own slapd
// (test harness, the peers' first MAILBOXES+1 users) and redis-server, so its RSS and CPU are its own.
// Server CPU is /proc utime+stime (Dovecot: its whole process tree, exited children included); slapd
// and Redis are not counted on either side. Prints JSON lines, then a table with ldapmta/Dovecot ratios.
// Needs root (the peer, and the Dovecot Maildirs owned by uid 8). The peer is left running.
// Knobs: MAILBOXES (100), MESSAGES (1000), BIG (10000), CONCURRENCY (20), WARM_SESSIONS (5×MAILBOXES),
// BODIES (50), IDLE_MS (50), REPEATS (20), IDLE_SESSIONS (500), IMAP_PORT (a free one), LOG_LEVEL (warn),
// SKIP_PEER_START=1, KEEP_MAIL=1 (keep ldapmta's Maildirs), TARGETS (dovecot,ldapmta: development aid).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/harness/ports.ts';
import { startRedis } from '../test/harness/redis.ts';
import { REPO_ROOT, startSlapd } from '../test/harness/slapd.ts';

const MAILBOXES = Number(process.env.MAILBOXES ?? 100);
const MESSAGES = Number(process.env.MESSAGES ?? 1000);
const BIG = Number(process.env.BIG ?? 10_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 20);
const WARM_SESSIONS = Number(process.env.WARM_SESSIONS ?? 5 * MAILBOXES);
const BODIES = Number(process.env.BODIES ?? 50);
const IDLE_MS = Number(process.env.IDLE_MS ?? 50);
const REPEATS = Number(process.env.REPEATS ?? 20);
const IDLE_SESSIONS = Number(process.env.IDLE_SESSIONS ?? 500);
const SETTLE_S = Number(process.env.SETTLE_S ?? 60);
const TARGETS = (process.env.TARGETS ?? 'dovecot,ldapmta').split(',');
const PEERS = resolve(REPO_ROOT, '..', 'shared', 'peers');
const PEERS_RUN = resolve(process.env.PEERS_RUN ?? '/tmp/ldapmta-peers');
const PEER_IMAP = Number(process.env.PEERS_PORT_BASE ?? 30000) + 143;
const BENCH = '/tmp/ldapmta-bench-imap';
const BASE = 'dc=example,dc=test';
const BIG_USER = MAILBOXES + 1;
const started = Date.now();
const progress = (text: string) => console.error(`[bench:imap +${Math.round((Date.now() - started) / 1000)}s] ${text}`);

type Figures = Record<string, unknown>;

function reachable(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); done(true); });
    s.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------
// The messages

/** Deterministic PRNG (mulberry32): the same mails on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Message i comes from SENDERS[i % 13]; the load generator searches FROM "<local part>" and checks the count. */
const SENDERS = [
  ['Alice Martin', 'alice.martin', 'northwind.example'],
  ['"Okafor, Bob"', 'bob.okafor', 'contoso.example'],
  ['Chen Wei', 'chen.wei', 'fabrikam.example'],
  ['Dana Kowalski', 'dana.kowalski', 'lists.example.org'],
  ['Erik Lund', 'erik.lund', 'tailspin.example'],
  ['Fatima Zahra', 'fatima.zahra', 'contoso.example'],
  ['Giulia Rossi', 'giulia.rossi', 'adatum.example'],
  ['Hiro Tanaka', 'hiro.tanaka', 'fabrikam.example'],
  ['=?UTF-8?Q?In=C3=AAs_Duarte?=', 'ines.duarte', 'wingtip.example'],
  ['Jamal Reed', 'jamal.reed', 'northwind.example'],
  ['Katya Ivanova', 'katya.ivanova', 'adatum.example'],
  ['Billing', 'noreply-billing', 'contoso.example'],
  ['Weekly Digest', 'digest-weekly', 'lists.example.org'],
] as const;
/** Message i is unseen (no S in its Maildir info) when i % UNSEEN_EVERY == 0. */
const UNSEEN_EVERY = 4;
const SUBJECTS = [
  (i: number) => `Re: Q${1 + (i % 4)} budget review`,
  (i: number) => `Meeting notes, week ${1 + (i % 52)}`,
  (i: number) => `[dev-list] Build failure on main (#${4000 + i})`,
  (i: number) => `Invoice ${10000 + i} from Contoso`,
  () => '=?UTF-8?Q?Caf=C3=A9_order_confirmation?=',
  (i: number) => `Fwd: travel itinerary for trip ${i % 17}`,
  (i: number) => `Your weekly digest: ${3 + (i % 9)} new posts`,
  (i: number) => `Re: Re: contract draft v${1 + (i % 6)}`,
];
const WORDS = ('the of and to in is that for it as was with be by on not he this are or his from at which but have an ' +
  'they you were her she there been one all we their has would when if so no will more can out up about who said what ' +
  'project review deadline budget meeting schedule release server mailbox directory report customer invoice draft ' +
  'update please thanks attached regards team agenda quarter numbers proposal feedback').split(' ');

function paragraph(rnd: () => number, bytes: number): string {
  const lines: string[] = [];
  let line = '';
  let total = 0;
  while (total < bytes) {
    const w = WORDS[Math.floor(rnd() * WORDS.length)]!;
    if (line.length + w.length + 1 > 72) {
      lines.push(line);
      total += line.length + 1;
      line = '';
    }
    line = line === '' ? w[0]!.toUpperCase() + w.slice(1) : `${line} ${w}`;
  }
  if (line !== '') lines.push(`${line}.`);
  return `${lines.join('\n')}\n`;
}

const rfc5322Date = (secs: number) => new Date(secs * 1000).toUTCString().replace('GMT', '+0000');
/** Messages are dated from here backwards, one every 2-10 hours. */
const LATEST = 1_796_000_000;

/** The text (LF line ends) of message i of a user, and its Unix date. */
function message(user: number, i: number, count: number): { text: string; secs: number } {
  const rnd = random(user * 1_000_003 + i);
  const secs = LATEST - (count - i) * 21_600 + Math.floor(rnd() * 14_400);
  const [name, local, domain] = SENDERS[i % SENDERS.length]!;
  const date = rfc5322Date(secs);
  const target = 2000 + Math.floor(rnd() * 4000);
  const kind = i % 10 === 7 ? 'mixed' : i % 4 === 1 ? 'alternative' : 'plain';
  const boundary = `=_bench_${user}_${i}`;
  const head = [
    `Return-Path: <${local}@${domain}>`,
    `Received: from mail.${domain} (mail.${domain} [192.0.2.${1 + (i % 250)}])\n\tby mx1.example.test with ESMTPS id ${(user * 100_000 + i).toString(36).toUpperCase()}\n\tfor <user${user}@example.test>; ${date}`,
    `Date: ${date}`,
    `From: ${name} <${local}@${domain}>`,
    `To: User ${user} <user${user}@example.test>`,
    ...(i % 5 === 2 ? [`Cc: team-${i % 7}@example.test, "Lee, Sam" <sam.lee@example.test>`] : []),
    `Subject: ${SUBJECTS[i % SUBJECTS.length]!(i)}`,
    `Message-ID: <${i}.${user}.${secs}@${domain}>`,
    ...(i % 3 === 0 && i > 0 ? [`In-Reply-To: <${i - 1}.${user}.${secs - 3600}@${domain}>`] : []),
    'MIME-Version: 1.0',
    kind === 'plain' ? 'Content-Type: text/plain; charset=utf-8; format=flowed' : `Content-Type: multipart/${kind}; boundary="${boundary}"`,
    ...(kind === 'plain' ? ['Content-Transfer-Encoding: 7bit'] : []),
    'X-Bench-Check: 0000000',
  ].join('\n');
  let body: string;
  const room = Math.max(200, target - head.length);
  if (kind === 'plain') {
    body = paragraph(rnd, room);
  } else if (kind === 'alternative') {
    const text = paragraph(rnd, room * 0.45);
    const html = `<html><body>\n${paragraph(rnd, room * 0.4).split('\n').filter(Boolean).map((l) => `<p>${l}</p>`).join('\n')}\n</body></html>\n`;
    body = `This is a multi-part message in MIME format.\n\n--${boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n${text}\n--${boundary}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n${html}\n--${boundary}--\n`;
  } else {
    const text = paragraph(rnd, room * 0.35);
    const raw = Buffer.from(Array.from({ length: Math.floor(room * 0.45) }, () => Math.floor(rnd() * 256)));
    const b64 = raw.toString('base64').replace(/.{1,76}/g, '$&\n');
    body = `--${boundary}\nContent-Type: text/plain; charset=utf-8\n\n${text}\n--${boundary}\nContent-Type: application/pdf; name="report-${i}.pdf"\nContent-Disposition: attachment; filename="report-${i}.pdf"\nContent-Transfer-Encoding: base64\n\n${b64}--${boundary}--\n`;
  }
  let text = `${head}\n\n${body}`;
  const crlf = Buffer.byteLength(text) + (text.match(/\n/g)?.length ?? 0);
  text = text.replace('X-Bench-Check: 0000000', `X-Bench-Check: ${String(crlf).padStart(7, '0')}`);
  return { text, secs };
}

/** The same files into ldapmta's Maildir and the peer's (both emptied first), in cur/ with their flags. */
function fill(user: number, count: number): void {
  const dirs = [join(BENCH, 'mail', `user${user}`), join(PEERS_RUN, 'mail', `user${user}`)];
  for (const maildir of dirs) {
    rmSync(maildir, { recursive: true, force: true });
    for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
  }
  for (let i = 0; i < count; i++) {
    const { text, secs } = message(user, i, count);
    const bytes = Buffer.byteLength(text);
    const lines = text.split('\n').length - 1;
    const name = `${secs}.M${i}P${process.pid}.bench,S=${bytes},W=${bytes + lines}:2,${i % UNSEEN_EVERY === 0 ? '' : 'S'}`;
    for (const maildir of dirs) {
      const path = join(maildir, 'cur', name);
      writeFileSync(path, text);
      utimesSync(path, secs, secs);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of a process tree

interface Proc { pid: number; ppid: number; comm: string; cpuTicks: number; childTicks: number }

function processes(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const f = stat.slice(close + 2).split(' ');
      out.set(Number(entry), {
        pid: Number(entry), ppid: Number(f[1]), comm: stat.slice(stat.indexOf('(') + 1, close),
        cpuTicks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]),
      });
    } catch {
      // gone
    }
  }
  return out;
}

function tree(root: number): Proc[] {
  const all = processes();
  const members = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all.values()) if (!members.has(p.pid) && members.has(p.ppid)) { members.add(p.pid); grew = true; }
  }
  return [...members].map((pid) => all.get(pid)).filter((p): p is Proc => p !== undefined);
}

/** CPU seconds of a process tree, reaped children included (USER_HZ = 100). */
const treeCpuS = (root: number) => tree(root).reduce((s, p) => s + p.cpuTicks + p.childTicks, 0) / 100;

function statusKb(pid: number, file: string, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** RSS and PSS of a process tree, summed, in MB; and how many processes of each name. */
function treeMemory(root: number): { rssMB: number; pssMB: number; processes: Record<string, number> } {
  let rss = 0;
  let pss = 0;
  const names: Record<string, number> = {};
  for (const p of tree(root)) {
    rss += statusKb(p.pid, 'status', 'VmRSS');
    pss += statusKb(p.pid, 'smaps_rollup', 'Pss');
    names[p.comm] = (names[p.comm] ?? 0) + 1;
  }
  return { rssMB: Math.round(rss / 102.4) / 10, pssMB: Math.round(pss / 102.4) / 10, processes: names };
}

// ---------------------------------------------------------------------------------------------
// ldapmta, the load generator

interface Ldapmta { child: ChildProcess; pid: number; port: number; logFile: string; exited: Promise<string> }

/** Waits for an IMAP greeting ("* OK") on the port. */
function greets(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    const end = (ok: boolean) => { s.destroy(); done(ok); };
    s.setTimeout(2000, () => end(false));
    s.on('data', (d) => { got += d.toString('latin1'); if (got.includes('\r\n')) end(got.startsWith('* OK')); });
    s.once('error', () => end(false));
  });
}

async function startLdapmta(config: object, port: number, logName: string): Promise<Ldapmta> {
  const configFile = join(BENCH, 'ldapmta.yaml');
  writeFileSync(configFile, `# generated by bench/imap.ts\n${JSON.stringify({ ...config, listen: { ...(config as { listen: object }).listen, imap: `127.0.0.1:${port}` } }, null, 2)}\n`);
  const logFile = join(BENCH, logName);
  const fd = openSync(logFile, 'w');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LDAPMTA_') && k !== 'NODE_OPTIONS'));
  const child = spawn(process.execPath, ['dist/cli.js', 'serve', '--config', configFile], { cwd: REPO_ROOT, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let dead = false;
  const exited = new Promise<string>((r) => child.once('exit', (code, signal) => { dead = true; r(signal ?? `exit ${code}`); }));
  for (const deadline = Date.now() + 30_000; !(await greets(port));) {
    if (dead) throw new Error(`ldapmta exited at start-up; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`ldapmta did not greet on ${port} within 30 s; see ${logFile}`);
    await sleep(100);
  }
  return { child, pid: child.pid!, port, logFile, exited };
}

/** SIGTERM (SIGKILL after 15 s); says how it ended and what its log holds. */
async function stopLdapmta(l: Ldapmta): Promise<string> {
  l.child.kill('SIGTERM');
  let how = await Promise.race([l.exited, sleep(15_000).then(() => null)]);
  if (how === null) {
    l.child.kill('SIGKILL');
    how = `still running after SIGTERM + 15 s, killed (${await l.exited})`;
  }
  const log = readFileSync(l.logFile, 'utf8').split('\n').filter(Boolean);
  return `ldapmta pid ${l.pid} stopped (${how}); ${l.logFile} has ${log.length} lines${log.length > 0 ? `, the first: ${log[0]!.slice(0, 300)}` : ''}`;
}

function client(args: object, onLine?: (line: Figures, child: ChildProcess) => void): Promise<Figures[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bench', 'imap-client.mjs'), JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: Figures[] = [];
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = JSON.parse(out.slice(0, nl)) as Figures;
        out = out.slice(nl + 1);
        lines.push(line);
        onLine?.(line, child);
      }
    });
    child.once('close', (code) => (code === 0 ? resolvePromise(lines) : reject(new Error(`imap-client exited ${code}`))));
  });
}

interface Target { name: 'dovecot' | 'ldapmta'; port: number; root: number }

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function loadRun(t: Target, sessions: number): Promise<Figures> {
  const cpu0 = treeCpuS(t.root);
  const [r] = await client({ mode: 'load', port: t.port, sessions, concurrency: CONCURRENCY, firstUser: 1, users: MAILBOXES, bodies: BODIES, idleMs: IDLE_MS, unseenEvery: UNSEEN_EVERY, senders: SENDERS.map((s) => s[1]) });
  const cpu = treeCpuS(t.root) - cpu0;
  return { ...r, serverCpuS: round(cpu), serverCpuMsPerOp: round((cpu * 1000) / Math.max(1, Number(r!.ops))) };
}

async function idleRun(t: Target): Promise<Figures> {
  const before = treeMemory(t.root);
  let during: ReturnType<typeof treeMemory> | null = null;
  let settled: ReturnType<typeof treeMemory> | null = null;
  const lines = await client({ mode: 'idle', port: t.port, sessions: IDLE_SESSIONS, concurrency: CONCURRENCY, firstUser: 1, users: MAILBOXES, timeoutMs: (SETTLE_S + 60) * 1000 }, (line, child) => {
    if (!('idling' in line)) return;
    // A second for whatever the logins left to do, then the memory of the server with every session parked;
    // again after SETTLE_S seconds parked (V8 gives back the heap a load grew once the process is idle).
    setTimeout(() => {
      during = treeMemory(t.root);
      setTimeout(() => {
        settled = treeMemory(t.root);
        child.stdin!.write('done\n');
      }, SETTLE_S * 1000);
    }, 1000);
  });
  const d = during as ReturnType<typeof treeMemory> | null;
  const z = settled as ReturnType<typeof treeMemory> | null;
  return {
    ...lines[0], ...lines[1], rssBeforeMB: before.rssMB, pssBeforeMB: before.pssMB,
    rssMB: d?.rssMB ?? null, pssMB: d?.pssMB ?? null, rssSettledMB: z?.rssMB ?? null, pssSettledMB: z?.pssMB ?? null, imapProcesses: d?.processes.imap ?? null, processCount: d === null ? null : Object.values(d.processes).reduce((a, b) => a + b, 0),
    vmHwmMB: t.name === 'ldapmta' ? round(statusKb(t.root, 'status', 'VmHWM') / 1024, 1) : null,
  };
}

// ---------------------------------------------------------------------------------------------

if (process.getuid?.() !== 0) throw new Error('bench:imap needs root (the peer runs Dovecot, its Maildirs are owned by uid 8)');
const withDovecot = TARGETS.includes('dovecot');
const withLdapmta = TARGETS.includes('ldapmta');
if (withDovecot && process.env.SKIP_PEER_START !== '1' && !(await reachable(PEER_IMAP))) {
  progress('starting the Postfix+Dovecot peer (../shared/peers/start.sh)');
  execFileSync(join(PEERS, 'start.sh'), [], { stdio: 'inherit' });
}
if (withDovecot && !(await reachable(PEER_IMAP))) throw new Error(`the peer's Dovecot IMAP is not on ${PEER_IMAP}`);
if (withLdapmta) {
  progress('npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

progress(`generating ${MAILBOXES + 1} users of the peers' directory into our own slapd, plus a redis-server`);
rmSync(BENCH, { recursive: true, force: true });
mkdirSync(BENCH, { recursive: true });
const ldif = join(BENCH, 'users.ldif');
writeFileSync(ldif, execFileSync('python3', [join(PEERS, 'gen-directory.py'), '-n', String(MAILBOXES + 1), '--base', BASE, '--domain', 'example.test',
  '--store-prefix', join(BENCH, 'mail'), '--uid', '5000', '--gid', '5000', '--no-bench-aliases'], { maxBuffer: 64 << 20 }));
const slapd = await startSlapd({ suffix: BASE, sample: false, ldif: [ldif] });
const redis = await startRedis();

progress(`filling ${MAILBOXES} x ${MESSAGES} messages, and user${BIG_USER} with ${BIG}, into both sides' Maildirs`);
for (let k = 1; k <= MAILBOXES; k++) fill(k, MESSAGES);
fill(BIG_USER, BIG);
execFileSync('chown', ['-R', '8:8', ...Array.from({ length: MAILBOXES + 1 }, (_, k) => join(PEERS_RUN, 'mail', `user${k + 1}`))]);
progress('sync (so that no write-back runs during the measurements)');
execFileSync('sync');

const targets: Target[] = [];
if (withDovecot) targets.push({ name: 'dovecot', port: PEER_IMAP, root: Number(readFileSync(join(PEERS_RUN, 'dovecot', 'run', 'master.pid'), 'utf8').trim()) });
let ldapmta: Ldapmta | null = null;
const ldapmtaConfig = {
    hostname: 'mx1.example.test', localDomains: ['example.test'], spool: join(BENCH, 'spool'), mailboxes: join(BENCH, 'mail'),
    listen: { smtp: '', submission: '', submissions: '', pop3: '', imaps: '', admin: '' },
    imap: { allowPlaintextAuthOnLoopback: true, maxConnectionsPerIp: 10_000 }, // every client is 127.0.0.1
    directory: { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: BASE },
    cache: { redis: redis.url },
    limits: { authFailuresPerIp: 1_000_000 },
    log: { level: process.env.LOG_LEVEL ?? 'warn' },
};
const ldapmtaPort = Number(process.env.IMAP_PORT ?? await freePort());
if (withLdapmta) {
  ldapmta = await startLdapmta(ldapmtaConfig, ldapmtaPort, 'ldapmta.log');
  progress(`ldapmta pid ${ldapmta.pid}, IMAP on 127.0.0.1:${ldapmta.port}, log ${ldapmta.logFile}`);
  targets.push({ name: 'ldapmta', port: ldapmta.port, root: ldapmta.pid });
}
const startRss = ldapmta === null ? null : round(statusKb(ldapmta.pid, 'status', 'VmRSS') / 1024, 1);

const results: Record<string, Partial<Record<Target['name'], Figures>>> = {};
const record = (scenario: string, t: Target, figures: Figures) => {
  (results[scenario] ??= {})[t.name] = figures;
  console.log(JSON.stringify({ scenario, target: t.name, ...figures }));
};
try {
  for (const t of targets) {
    progress(`big folder (${BIG} messages), SELECT and FETCH 1:* (FLAGS), cold then ${REPEATS - 1} warm: ${t.name}`);
    const [r] = await client({ mode: 'latency', port: t.port, user: BIG_USER, repeats: REPEATS });
    record('big', t, r!);
  }
  for (const t of targets) {
    progress(`load, cold (${MAILBOXES} sessions, each mailbox's first): ${t.name}`);
    record('cold', t, await loadRun(t, MAILBOXES));
  }
  for (const t of targets) {
    progress(`load, warm (${WARM_SESSIONS} sessions): ${t.name}`);
    record('warm', t, await loadRun(t, WARM_SESSIONS));
  }
  for (const t of targets) {
    progress(`${IDLE_SESSIONS} sessions in IDLE: ${t.name}`);
    record('idle', t, await idleRun(t));
  }
  // The figures above are of a process that has just served the loads (caches full, heap grown). The same
  // IDLE sessions on a freshly started ldapmta show what the sessions themselves cost.
  if (ldapmta !== null) {
    progress(await stopLdapmta(ldapmta));
    const old = ldapmta;
    ldapmta = null;
    ldapmta = await startLdapmta(ldapmtaConfig, old.port, 'ldapmta-fresh.log');
    progress(`${IDLE_SESSIONS} sessions in IDLE: a fresh ldapmta (pid ${ldapmta.pid})`);
    (results['idle-fresh'] ??= {}).dovecot = results.idle?.dovecot;
    record('idle-fresh', { name: 'ldapmta', port: ldapmta.port, root: ldapmta.pid }, await idleRun({ name: 'ldapmta', port: ldapmta.port, root: ldapmta.pid }));
  }
} finally {
  if (ldapmta !== null) progress(await stopLdapmta(ldapmta));
  await redis.stop();
  await slapd.stop();
  if (process.env.KEEP_MAIL !== '1') rmSync(join(BENCH, 'mail'), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The table

const fmt = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'number' ? String(v) : String(v));
const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' && a > 0 ? (b / a).toFixed(2) : '-');
const LABELS: Record<string, string> = {
  big: `${BIG}-msg folder`, cold: 'load, cold', warm: 'load, warm', idle: `${IDLE_SESSIONS} IDLE, after the loads`, 'idle-fresh': `${IDLE_SESSIONS} IDLE, fresh ldapmta`,
};
/** Counts, not measures: no ratio. */
const NO_RATIO = new Set(['errors', 'idling', 'processCount', 'lostWhileIdle']);
type Check = (mine: Figures, peer: Figures | undefined) => boolean | null;
const rows: [string, string, string, string, Check?][] = [
  ['big', `SELECT ${BIG} msgs, cold ms`, 'selectColdMs', ''],
  ['big', `FETCH 1:* (FLAGS), cold ms`, 'fetchFlagsColdMs', ''],
  ['big', 'SELECT, warm p50 ms', 'selectWarmP50ms', '< 100 ms', (m) => typeof m.selectWarmP50ms === 'number' ? m.selectWarmP50ms < 100 : null],
  ['big', 'SELECT, warm p99 ms', 'selectWarmP99ms', ''],
  ['big', 'FETCH 1:* (FLAGS), warm p50 ms', 'fetchFlagsWarmP50ms', '< 200 ms', (m) => typeof m.fetchFlagsWarmP50ms === 'number' ? m.fetchFlagsWarmP50ms < 200 : null],
  ['big', 'FETCH 1:* (FLAGS), warm p99 ms', 'fetchFlagsWarmP99ms', ''],
  ['big', 'errors', 'errors', ''],
];
for (const s of ['cold', 'warm']) {
  rows.push(
    [s, 'ops/s', 'opsPerS', s === 'warm' ? '≥ 0.5× Dovecot' : '', s === 'warm' ? (m, p) => (typeof m.opsPerS === 'number' && typeof p?.opsPerS === 'number' ? m.opsPerS >= 0.5 * p.opsPerS : null) : undefined],
    [s, 'sessions/s', 'sessionsPerS', ''],
    [s, 'body MB/s', 'bodyMbPerS', ''],
    [s, 'LOGIN p50 ms', 'loginP50ms', ''],
    [s, 'SELECT p50 / p99 ms', 'selectP50ms|selectP99ms', ''],
    [s, 'FETCH 1:* (UID FLAGS ENVELOPE) p50 / p99 ms', 'fetchEnvelopeP50ms|fetchEnvelopeP99ms', ''],
    [s, `UID FETCH ${BODIES} bodies p50 / p99 ms`, 'fetchBodiesP50ms|fetchBodiesP99ms', ''],
    [s, 'UID SEARCH UNSEEN p50 / p99 ms', 'searchUnseenP50ms|searchUnseenP99ms', ''],
    [s, 'UID SEARCH FROM p50 / p99 ms', 'searchFromP50ms|searchFromP99ms', ''],
    [s, `IDLE (+${IDLE_MS} ms) p50 ms`, 'idleP50ms', ''],
    [s, 'server CPU ms/op', 'serverCpuMsPerOp', ''],
    [s, 'load generator CPU ms', 'clientCpuMs', ''],
    [s, 'socket reads per session / bytes per read', 'readsPerSession|bytesPerRead', ''],
    [s, 'errors', 'errors', ''],
  );
}
rows.push(
  ['idle', 'sessions in IDLE', 'idling', ''],
  ['idle', 'RSS MB before / with the sessions', 'rssBeforeMB|rssMB', ''],
  ['idle', `RSS MB with the sessions, ${SETTLE_S} s later`, 'rssSettledMB', '< 300 MB', (m) => (typeof m.rssSettledMB === 'number' ? m.rssSettledMB < 300 : null)],
  ['idle', 'PSS MB before / with the sessions / later', 'pssBeforeMB|pssMB|pssSettledMB', ''],
  ['idle', 'processes', 'processCount', ''],
  ['idle', 'seconds to open them', 'openSeconds', ''],
  ['idle', 'lost while idle', 'lostWhileIdle', ''],
  ['idle-fresh', 'sessions in IDLE', 'idling', ''],
  ['idle-fresh', 'RSS MB before / with the sessions', 'rssBeforeMB|rssMB', '< 300 MB', (m) => (typeof m.rssMB === 'number' ? m.rssMB < 300 : null)],
  ['idle-fresh', `RSS MB with the sessions, ${SETTLE_S} s later`, 'rssSettledMB', ''],
  ['idle-fresh', 'PSS MB before / with the sessions / later', 'pssBeforeMB|pssMB|pssSettledMB', ''],
  ['idle-fresh', 'seconds to open them', 'openSeconds', ''],
  ['idle-fresh', 'lost while idle', 'lostWhileIdle', ''],
);
console.log(`\nbench:imap: ${MAILBOXES} mailboxes x ${MESSAGES} messages + 1 x ${BIG}; ${CONCURRENCY} clients; ldapmta RSS at start ${fmt(startRss)} MB, peak (VmHWM) through the loads ${fmt(results.idle?.ldapmta?.vmHwmMB)} MB\n`);
console.log('| scenario | figure | Dovecot | ldapmta | ldapmta/Dovecot | target | met |\n|---|---|---:|---:|---:|---|---|');
for (const [scenario, figure, keys, target, check] of rows) {
  const peer = results[scenario]?.dovecot;
  const mine = results[scenario]?.ldapmta;
  const cells = keys.split('|');
  const show = (f: Figures | undefined) => (f === undefined ? '-' : cells.map((k) => fmt(f[k])).join(' / '));
  const ratios = cells.map((k) => (NO_RATIO.has(k) ? '-' : ratio(peer?.[k], mine?.[k]))).join(' / ');
  const met = check === undefined || mine === undefined ? '' : ({ true: 'yes', false: '**no**', null: '-' } as const)[String(check(mine, peer)) as 'true' | 'false' | 'null'];
  console.log(`| ${LABELS[scenario] ?? scenario} | ${figure} | ${show(peer)} | ${show(mine)} | ${ratios} | ${target} | ${met} |`);
}
for (const [scenario, byTarget] of Object.entries(results)) {
  for (const [name, f] of Object.entries(byTarget)) {
    const errs = f?.firstErrors as string[] | undefined;
    if (errs && errs.length > 0) console.log(`\n${scenario}, ${name}: first errors:\n  ${errs.join('\n  ')}`);
    const lost = f?.firstLost as string[] | undefined;
    if (lost && lost.length > 0) console.log(`\n${scenario}, ${name}: lost while idle:\n  ${lost.join('\n  ')}`);
  }
}
