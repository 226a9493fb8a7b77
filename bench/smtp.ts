// npm run bench:smtp — ldapmta against the Postfix+Dovecot+LDAP peer, same machine, same run, same
// load generator (../shared/peers: smtp-source scenarios deliver, unknown, repeat, latency), plus
// transaction latency at 20 concurrent sessions, RSS with 200 idle and 200 busy sessions, a per-process
// CPU profile and the disk's fsync limit. A measurement, not a test: it prints figures and asserts nothing.
//
// What it starts and stops: ldapmta (`node dist/cli.js serve`, built first with `npm run build`), its
// own slapd (test harness, loaded with the peers' 10,000 users, mailMessageStore under $BENCH_DIR/mail)
// and its own redis-server. What it starts and LEAVES RUNNING: the peer (../shared/peers/start.sh;
// stop it with ../shared/peers/stop.sh), unless STOP_PEER=1.
// With --filters (npm run bench:smtp -- --filters): instead, the cost of the filter chain (issue 9):
// ldapmta alone, the same deliver load unfiltered, with the chain without content scanning (DNS
// lists, FCrDNS/HELO scoring, greylisting in Redis, SPF/DKIM/DMARC against a loopback DNS) and with
// clamd and spamd (Debian's stock rules) in the loop; M_SCAN (1000) messages for the scanner run;
// unfiltered and chain alternate ROUNDS (5) times, ABBA, and their costs are compared; QUICK=1 runs
// only those rounds.
// Knobs (environment): BENCH_DIR (/tmp/ldapmta-bench), BENCH_PORT (2525), M/C/SIZE (passed to the
// peers' bench.sh: 5000/20/4096), LAT_SESSIONS (20), LAT_TXNS (2000), IDLE_SESSIONS (200),
// BUSY_M (4000), QUICK=1 (ldapmta alone: deliver and unknown, for development), SKIP_PEER_START=1, STOP_PEER=1, KEEP_MAIL=1, LOG_LEVEL (info), NODE_FLAGS (extra flags for
// the ldapmta process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startClamd } from '../test/harness/clamd.ts';
import { reverseName, startDns } from '../test/harness/dns.ts';
import { startRedis, type RedisServer } from '../test/harness/redis.ts';
import { startSpamd } from '../test/harness/spamd.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../test/harness/slapd.ts';
import { SmtpConnection } from '../test/fixtures/crash-smtp.ts';

const PEERS = resolve(REPO_ROOT, '..', 'shared', 'peers');
const WORK = resolve(process.env.BENCH_DIR ?? '/tmp/ldapmta-bench');
const MAIL = join(WORK, 'mail');
const SPOOL = join(WORK, 'spool');
const PORT = Number(process.env.BENCH_PORT ?? 2525);
const PEERS_RUN = resolve(process.env.PEERS_RUN ?? '/tmp/ldapmta-peers');
const PEER_MX = Number(process.env.PEERS_PORT_BASE ?? 30000) + 25;
const USERS = Number(process.env.PEERS_USERS ?? 10_000);
const DOMAIN = 'example.test';
/** qmailUID/qmailGID of our copy of the directory (see the generation step). */
const ID = 5000;
const BASE = 'dc=example,dc=test';
const LAT_SESSIONS = Number(process.env.LAT_SESSIONS ?? 20);
const LAT_TXNS = Number(process.env.LAT_TXNS ?? 2000);
const IDLE_SESSIONS = Number(process.env.IDLE_SESSIONS ?? 200);
const BUSY_M = Number(process.env.BUSY_M ?? 4000);
const SIZE = Number(process.env.SIZE ?? 4096);
const RESULTS = join(WORK, 'results.jsonl');
const TAG = `bench-smtp-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
const started = Date.now();

function progress(text: string): void {
  process.stderr.write(`[bench:smtp +${((Date.now() - started) / 1000).toFixed(0)}s] ${text}\n`);
}

/** Runs a program with the given environment; its stdout is echoed and returned. Throws on failure. */
function run(command: string, args: string[], env: Record<string, string | undefined> = {}, options: { quiet?: boolean } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const merged = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
    const child = spawn(command, args, { cwd: REPO_ROOT, env: merged, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!options.quiet) process.stdout.write(chunk);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc

function procStatus(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(Vm\w+|Threads):\s+(\d+)/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** CPU seconds (utime+stime) of each thread of a process, by thread id. */
function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  const tick = 100; // USER_HZ on Linux
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(fields[11]) + Number(fields[12])) / tick);
    } catch {
      // thread ended
    }
  }
  return out;
}

/** The main (JavaScript) thread's CPU and the other threads' (libuv pool: file system calls and fsync; GC), in s. */
function threadSplit(pid: number, before: Map<number, number>, after: Map<number, number>): { mainS: number; otherThreadsS: number[] } {
  const delta = [...after].map(([tid, s]) => [tid, s - (before.get(tid) ?? 0)] as const);
  const main = delta.find(([tid]) => tid === pid)?.[1] ?? 0;
  const others = delta.filter(([tid, d]) => tid !== pid && d > 0.05).map(([, d]) => Math.round(d * 100) / 100).sort((a, b) => b - a);
  return { mainS: Math.round(main * 100) / 100, otherThreadsS: others };
}

const mb = (kb: number | undefined): number => Math.round(((kb ?? 0) / 1024) * 10) / 10;

/** Samples VmRSS every 100 ms until stopped; returns the largest value seen, in MB. */
function rssSampler(pid: number): { stop: () => number } {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, procStatus(pid).VmRSS ?? 0);
    } catch {
      // process gone
    }
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, procStatus(pid).VmRSS ?? 0);
      return mb(peak);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ldapmta

interface Ldapmta {
  child: ChildProcess;
  pid: number;
  pidFile: string;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startLdapmta(slapd: Slapd, redis: RedisServer, extra: Record<string, unknown> = {}): Promise<Ldapmta> {
  const config = {
    ...extra,
    hostname: 'mx1.example.test',
    localDomains: [DOMAIN],
    listen: { smtp: `127.0.0.1:${PORT}`, submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    // smtp-source connects from 127.0.0.1 only; the 200-session runs need more than the default 50 per address.
    smtp: { maxConnectionsPerIp: 250 },
    directory: { urls: [slapd.url], bindDN: `cn=admin,${BASE}`, bindPassword: 'secret', baseDN: BASE },
    cache: { redis: redis.url },
    spool: SPOOL,
    mailboxes: MAIL,
    log: { level: process.env.LOG_LEVEL ?? 'info' },
  };
  const configFile = join(WORK, 'ldapmta.yaml');
  writeFileSync(configFile, `# generated by bench/smtp.ts\n${JSON.stringify(config, null, 2)}\n`);
  const logFile = join(WORK, 'ldapmta.log');
  const fd = openSync(logFile, 'w');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LDAPMTA_') && k !== 'NODE_OPTIONS'));
  const flags = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, 'dist/cli.js', 'serve', '--config', configFile], { cwd: REPO_ROOT, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  let dead = false;
  void exited.then(() => (dead = true));
  const pidFile = join(WORK, 'ldapmta.pid');
  writeFileSync(pidFile, `${child.pid}\n`);
  for (const deadline = Date.now() + 30_000; ;) {
    if (dead) throw new Error(`ldapmta exited at start-up; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    try {
      const c = await SmtpConnection.connect(PORT, { timeoutMs: 1000 });
      const greeting = await c.reply().finally(() => c.close());
      if (greeting.code === 220) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`ldapmta did not greet on ${PORT} within 30 s; see ${logFile}`);
    await sleep(100);
  }
  return { child, pid: child.pid!, pidFile, logFile, exited };
}

/** Counts of warn/error/fatal lines, and the first few, from the JSON log. */
function logProblems(logFile: string): { warn: number; error: number; samples: string[] } {
  let warn = 0;
  let error = 0;
  const samples: string[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (line === '') continue;
    let level = 0;
    try {
      level = (JSON.parse(line) as { level: number }).level;
    } catch {
      level = 50; // not JSON: a crash trace
    }
    if (level >= 50) error++;
    else if (level >= 40) warn++;
    else continue;
    if (samples.length < 5) samples.push(line.slice(0, 400));
  }
  return { warn, error, samples };
}

// ---------------------------------------------------------------------------------------------
// Our own scenarios

interface Latency { target: string; sessions: number; transactions: number; errors: number; seconds: number; msgsPerS: number; p50: number; p90: number; p99: number; max: number; firstError: string | null }

/** LAT_SESSIONS sessions, each running MAIL..end of DATA transactions back to back; every one timed. */
async function latencyUnderLoad(target: string, port: number): Promise<Latency> {
  const body = `Subject: latency under load\r\n\r\n${`${'x'.repeat(76)}\r\n`.repeat(Math.floor(SIZE / 78))}.\r\n`;
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let issued = 0;
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2_147_483_648) / 2_147_483_648);
  async function sessionLoop(): Promise<void> {
    const c = await SmtpConnection.connect(port);
    try {
      await c.expect(null, 220);
      await c.expect('EHLO client.example.org', 250);
      while (issued < LAT_TXNS) {
        issued++;
        const to = `${1 + Math.floor(random() * USERS)}.rnd@${DOMAIN}`;
        const t0 = process.hrtime.bigint();
        try {
          await c.expect('MAIL FROM:<bench@example.org>', 250);
          await c.expect(`RCPT TO:<${to}>`, 250);
          await c.expect('DATA', 354);
          await c.write(body);
          const reply = await c.reply();
          if (reply.code !== 250) throw new Error(`end of DATA → ${reply.code} ${reply.text}`);
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          if (c.isClosed) return;
          await c.command('RSET').catch(() => undefined);
          continue;
        }
        samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      await c.command('QUIT').catch(() => undefined);
    } finally {
      c.close();
    }
  }
  const t0 = Date.now();
  await Promise.all(Array.from({ length: LAT_SESSIONS }, sessionLoop));
  const seconds = (Date.now() - t0) / 1000;
  samples.sort((a, b) => a - b);
  const q = (p: number) => Math.round((samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN) * 100) / 100;
  return { target, sessions: LAT_SESSIONS, transactions: samples.length, errors, seconds, msgsPerS: Math.round((samples.length / seconds) * 10) / 10, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1), firstError };
}

/** Opens `n` SMTP sessions that greet and EHLO, then sit idle; returns them for closing. */
async function idleSessions(n: number, port: number): Promise<{ open: SmtpConnection[]; failed: number; firstError: string | null }> {
  const open: SmtpConnection[] = [];
  let failed = 0;
  let firstError: string | null = null;
  await Promise.all(Array.from({ length: n }, async () => {
    try {
      const c = await SmtpConnection.connect(port);
      open.push(c);
      await c.expect(null, 220);
      await c.expect('EHLO idle.example.org', 250);
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    }
  }));
  return { open, failed, firstError };
}

function countFiles(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

/** Waits (up to 2 min) until ldapmta's spool has nothing left to deliver. */
async function queueEmpty(): Promise<void> {
  for (const deadline = Date.now() + 120_000; countFiles(join(SPOOL, 'todo')) > 0 && Date.now() < deadline;) await sleep(250);
}

/** Waits (up to 2 min) until the peer Postfix's queue is empty, so it does not compete for the CPU. */
async function peerQueueEmpty(): Promise<void> {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(500)) {
    const out = await run('postqueue', ['-c', join(PEERS_RUN, 'postfix-conf'), '-p'], {}, { quiet: true }).catch(() => 'error');
    if (/queue is empty/i.test(out)) return;
  }
}

// ---------------------------------------------------------------------------------------------

interface BenchLine { target: string; scenario: string; tag: string; [k: string]: unknown }

function readResults(tag: string): BenchLine[] {
  if (!existsSync(RESULTS)) return [];
  return readFileSync(RESULTS, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as BenchLine).filter((r) => r.tag === tag);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:smtp needs root (the peers start.sh runs Postfix and Dovecot)');
  if (!existsSync(join(PEERS, 'compare.sh'))) throw new Error(`${PEERS}/compare.sh not found: the benchmark needs ../shared/peers beside the checkout`);
  mkdirSync(WORK, { recursive: true });
  rmSync(MAIL, { recursive: true, force: true });
  rmSync(SPOOL, { recursive: true, force: true });

  if (process.env.SKIP_PEER_START !== '1') {
    progress('starting the Postfix+Dovecot peer (../shared/peers/start.sh)');
    await run(join(PEERS, 'start.sh'), []);
  }
  progress('npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });

  progress(`generating ${USERS} users (mailMessageStore ${MAIL}/userK) into our own slapd, plus a redis-server`);
  const ldif = join(WORK, 'users.ldif');
  // Same users, aliases and quotas as the peer's directory, but qmailUID/qmailGID 5000 instead of 8 (Debian's
  // `mail`): ldapmta, like qmail-ldap, refuses a recipient whose qmailUID is outside 100..65535 (5.3.5).
  writeFileSync(ldif, execFileSync('python3', [join(PEERS, 'gen-directory.py'), '-n', String(USERS), '--base', BASE, '--domain', DOMAIN,
    '--store-prefix', MAIL, '--uid', String(ID), '--gid', String(ID)], { maxBuffer: 256 << 20 }));
  const slapd = await startSlapd({ suffix: BASE, sample: false, ldif: [ldif] });
  const redis = await startRedis();
  let ldapmta: Ldapmta | null = null;
  const summary: Record<string, unknown> = { tag: TAG, date: new Date().toISOString(), node: process.version, nodeFlags: process.env.NODE_FLAGS ?? '' };
  try {
    ldapmta = await startLdapmta(slapd, redis);
    progress(`ldapmta pid ${ldapmta.pid} on 127.0.0.1:${PORT}; slapd pid ${slapd.pid} on ${slapd.url}; redis pid ${redis.pid}`);
    const roots = `ldapmta=${ldapmta.pid},slapd=${slapd.pid},redis=${redis.pid}`;
    const ours = { ROOTS: roots, MAILDIR_GLOB: `${MAIL}/*`, LDAP_URI: slapd.url, RESULTS, PEERS_USERS: String(USERS) };
    const peerEnv = { ROOTS: undefined, MAILDIR_GLOB: undefined, LDAP_URI: undefined, E2E: undefined, RESULTS, PEERS_USERS: String(USERS) };

    if (process.env.QUICK === '1') {
      // A development aid: ldapmta alone, deliver and unknown, no peer, no comparison.
      progress('QUICK=1: deliver twice (the first warms the cache and creates the Maildirs), then unknown, ldapmta only');
      await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver'], { ...ours, TAG: `${TAG}-warmup` });
      await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver', 'unknown'], { ...ours, TAG });
      summary.results = readResults(TAG);
      summary.log = logProblems(ldapmta.logFile);
      return;
    }
    progress('warm-up: deliver to the peer, then to ldapmta (TAG=warmup)');
    await run(join(PEERS, 'bench.sh'), ['postfix-dovecot', String(PEER_MX), 'deliver'], { ...peerEnv, TAG: 'warmup' });
    await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver'], { ...ours, TAG: `${TAG}-warmup` });
    const warm = readResults(`${TAG}-warmup`)[0];
    if (warm === undefined || warm.e2e_complete !== true || warm.client_errors !== 0) {
      throw new Error(`the ldapmta warm-up did not deliver every message, so the comparison would be meaningless: ${JSON.stringify(warm)}\n` +
        `ldapmta log problems: ${JSON.stringify(logProblems(ldapmta.logFile))}`);
    }

    progress(`compare.sh ldapmta ${PORT} (TAG=${TAG}): deliver unknown repeat latency, peer first`);
    const rssCompare = rssSampler(ldapmta.pid);
    const table = await run(join(PEERS, 'compare.sh'), ['ldapmta', String(PORT)], { ...ours, TAG });
    summary.compareTable = table.split('\n').filter((l) => l.startsWith('|')).join('\n');
    summary.results = readResults(TAG);
    summary.rssPeakDuringCompareMB = rssCompare.stop();

    progress(`latency under load: ${LAT_SESSIONS} sessions, ${LAT_TXNS} transactions each target (peer first)`);
    const lat = [await latencyUnderLoad('postfix-dovecot', PEER_MX)];
    await peerQueueEmpty();
    await sleep(2000);
    lat.push(await latencyUnderLoad('ldapmta', PORT));
    summary.latencyUnderLoad = lat;
    console.log(JSON.stringify({ scenario: `latency-${LAT_SESSIONS}-sessions`, results: lat }));

    progress(`RSS: ${IDLE_SESSIONS} idle sessions, then smtp-source -s ${IDLE_SESSIONS} -m ${BUSY_M}`);
    await queueEmpty();
    await sleep(2000);
    const before = procStatus(ldapmta.pid);
    const idle = await idleSessions(IDLE_SESSIONS, PORT);
    await sleep(2000);
    const withIdle = procStatus(ldapmta.pid);
    for (const c of idle.open) c.close();
    await sleep(1000);
    const busyRss = rssSampler(ldapmta.pid);
    const busyStart = Date.now();
    const busyErrors: string[] = [];
    await new Promise<void>((resolvePromise) => {
      const child = spawn('/usr/sbin/smtp-source', ['-N', '-m', String(BUSY_M), '-s', String(IDLE_SESSIONS), '-l', String(SIZE), '-M', 'client.example.org', '-f', 'bench@example.org', '-t', `.rnd@${DOMAIN}`, `127.0.0.1:${PORT}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr.setEncoding('utf8').on('data', (c: string) => busyErrors.push(...c.split('\n').filter(Boolean)));
      child.once('close', () => resolvePromise());
    });
    const busySeconds = (Date.now() - busyStart) / 1000;
    const busyPeak = busyRss.stop();
    summary.rss = {
      beforeIdleMB: mb(before.VmRSS),
      idleSessions: IDLE_SESSIONS - idle.failed,
      idleFailed: idle.failed,
      idleFirstError: idle.firstError,
      withIdleSessionsMB: mb(withIdle.VmRSS),
      busySessions: IDLE_SESSIONS,
      busyMessages: BUSY_M,
      busyAcceptMsgsPerS: Math.round((BUSY_M / busySeconds) * 10) / 10,
      busyClientErrors: busyErrors.length,
      busyErrorSample: busyErrors.slice(0, 3),
      peakDuringBusyMB: busyPeak,
      vmHwmMB: mb(procStatus(ldapmta.pid).VmHWM),
      slapdVmHwmMB: mb(procStatus(slapd.pid).VmHWM),
    };
    console.log(JSON.stringify({ scenario: 'rss', ...summary.rss as object }));

    // Let the queue drain, then profile one more deliver run per process, and probe the disk.
    await queueEmpty();
    const deliver = (summary.results as BenchLine[]).find((r) => r.target === 'ldapmta' && r.scenario === 'deliver');
    const seconds = Math.ceil(Number(deliver?.e2e_wall_s ?? deliver?.accept_wall_s ?? 30)) + 4;
    progress(`CPU profile: cpu-sample.py ${seconds} s during one more ldapmta deliver run (TAG=profile)`);
    const sampler = run('python3', [join(PEERS, 'cpu-sample.py'), String(seconds), roots], {}, { quiet: true });
    const threads0 = threadCpu(ldapmta.pid);
    await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver'], { ...ours, TAG: `${TAG}-profile` }, { quiet: true });
    const threads = threadSplit(ldapmta.pid, threads0, threadCpu(ldapmta.pid));
    summary.cpuProfile = { run: readResults(`${TAG}-profile`)[0] ?? null, byProcess: JSON.parse((await sampler).trim() || '{}') as unknown, ldapmtaThreads: threads };
    console.log(JSON.stringify({ scenario: 'cpu-profile', ...summary.cpuProfile as object }));
    progress('fsync-bench.py on the disk under BENCH_DIR');
    summary.fsync = JSON.parse(await run('python3', [join(PEERS, 'fsync-bench.py'), join(WORK, 'fsync-test')], {}, { quiet: true })) as unknown;
    console.log(JSON.stringify({ scenario: 'fsync', ...summary.fsync as object }));

    await queueEmpty();
    summary.queueLeft = { todo: countFiles(join(SPOOL, 'todo')), corrupt: countFiles(join(SPOOL, 'corrupt')) };
    summary.log = logProblems(ldapmta.logFile);
  } finally {
    if (ldapmta !== null) {
      ldapmta.child.kill('SIGTERM');
      const timer = setTimeout(() => ldapmta?.child.kill('SIGKILL'), 20_000);
      summary.ldapmtaExit = await ldapmta.exited;
      clearTimeout(timer);
    }
    await redis.stop();
    await slapd.stop();
    if (process.env.KEEP_MAIL !== '1') rmSync(MAIL, { recursive: true, force: true });
    if (process.env.STOP_PEER === '1') await run(join(PEERS, 'stop.sh'), []);
  }
  writeFileSync(join(WORK, `${TAG}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  appendFileSync(join(WORK, 'summaries.jsonl'), `${JSON.stringify(summary)}\n`);
  report(summary);
}

// ---------------------------------------------------------------------------------------------

function report(s: Record<string, unknown>): void {
  const results = (s.results as BenchLine[] | undefined) ?? [];
  const get = (target: string, scenario: string) => results.find((r) => r.target === target && r.scenario === scenario);
  const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
  const ours = (sc: string, k: string) => num(get('ldapmta', sc)?.[k]);
  const peer = (sc: string, k: string) => num(get('postfix-dovecot', sc)?.[k]);
  const lat = (s.latencyUnderLoad as Latency[] | undefined) ?? [];
  const latOurs = lat.find((l) => l.target === 'ldapmta');
  const latPeer = lat.find((l) => l.target === 'postfix-dovecot');
  const rss = (s.rss ?? {}) as Record<string, number | undefined>;
  const e2e = ours('deliver', 'e2e_msgs_per_s');
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const lines = [
    '',
    `## bench:smtp ${s.tag} (${s.date})${s.nodeFlags ? ` with NODE_FLAGS="${s.nodeFlags}"` : ''}`,
    '',
    s.compareTable as string,
    '',
    `| figure | peer | ldapmta | ldapmta/peer |`,
    `|---|---:|---:|---:|`,
    `| latency at ${LAT_SESSIONS} sessions p50 / p99 ms | ${latPeer?.p50} / ${latPeer?.p99} | ${latOurs?.p50} / ${latOurs?.p99} | ${((latOurs?.p99 ?? NaN) / (latPeer?.p99 ?? NaN)).toFixed(2)} (p99) |`,
    `| latency at ${LAT_SESSIONS} sessions: msgs/s, errors | ${latPeer?.msgsPerS}, ${latPeer?.errors} | ${latOurs?.msgsPerS}, ${latOurs?.errors} | |`,
    `| ldapmta RSS: peak during compare / VmHWM | | ${s.rssPeakDuringCompareMB} / ${rss.vmHwmMB} MB | |`,
    `| ldapmta RSS: before / with ${rss.idleSessions} idle sessions | | ${rss.beforeIdleMB} / ${rss.withIdleSessionsMB} MB | |`,
    `| ldapmta RSS: peak with ${rss.busySessions} busy sessions (${rss.busyAcceptMsgsPerS} msgs/s, ${rss.busyClientErrors} client errors) | | ${rss.peakDuringBusyMB} MB | |`,
    '',
    'Targets (issue 3 item 7):',
    `- end-to-end >= 1,000 msgs/s: ${e2e} -> ${verdict(e2e >= 1000)}`,
    `- end-to-end >= 3x the peer in the same run: ${(e2e / peer('deliver', 'e2e_msgs_per_s')).toFixed(2)}x -> ${verdict(e2e >= 3 * peer('deliver', 'e2e_msgs_per_s'))}`,
    `- rejects >= 3,000/s: ${ours('unknown', 'rejects_per_s')} -> ${verdict(ours('unknown', 'rejects_per_s') >= 3000)}`,
    `- p99 < 50 ms at ${LAT_SESSIONS} sessions: ${latOurs?.p99} ms -> ${verdict((latOurs?.p99 ?? Infinity) < 50 && (latOurs?.errors ?? 1) === 0)}`,
    `- RSS < 300 MB at ${IDLE_SESSIONS} sessions: idle ${rss.withIdleSessionsMB} MB, busy peak ${rss.peakDuringBusyMB} MB -> ${verdict((rss.withIdleSessionsMB ?? Infinity) < 300 && (rss.peakDuringBusyMB ?? Infinity) < 300 && rss.idleFailed === 0)}`,
    '',
    `ldapmta log: ${JSON.stringify(s.log)}; queue left: ${JSON.stringify(s.queueLeft)}; exit: ${JSON.stringify(s.ldapmtaExit)}`,
    `CPU by process (profile deliver run): ${JSON.stringify((s.cpuProfile as { byProcess?: unknown } | undefined)?.byProcess)}`,
    `ldapmta CPU by thread (same run; main = JavaScript, others = libuv pool and GC): ${JSON.stringify((s.cpuProfile as { ldapmtaThreads?: unknown } | undefined)?.ldapmtaThreads)}`,
    `fsync: ${JSON.stringify(s.fsync)}`,
    `summary: ${join(WORK, `${s.tag}.json`)}; the peer is ${process.env.STOP_PEER === '1' ? 'stopped' : 'still running (../shared/peers/stop.sh stops it)'}`,
  ];
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// --filters: what the filter chain costs

async function filtersBench(): Promise<void> {
  if (!existsSync(join(PEERS, 'bench.sh'))) throw new Error(`${PEERS}/bench.sh not found: the benchmark needs ../shared/peers beside the checkout`);
  const mScan = Number(process.env.M_SCAN ?? 1000);
  mkdirSync(WORK, { recursive: true });
  rmSync(MAIL, { recursive: true, force: true });
  rmSync(SPOOL, { recursive: true, force: true });
  progress('npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  progress(`generating ${USERS} users into our own slapd; redis-server, a loopback DNS, clamd and spamd (Debian's rules)`);
  const ldif = join(WORK, 'users.ldif');
  writeFileSync(ldif, execFileSync('python3', [join(PEERS, 'gen-directory.py'), '-n', String(USERS), '--base', BASE, '--domain', DOMAIN,
    '--store-prefix', MAIL, '--uid', String(ID), '--gid', String(ID)], { maxBuffer: 256 << 20 }));
  const slapd = await startSlapd({ suffix: BASE, sample: false, ldif: [ldif] });
  const redis = await startRedis();
  // smtp-source sends from bench@example.org with HELO client.example.org, from 127.0.0.1.
  const dns = await startDns({
    txt: { 'example.org': ['v=spf1 ip4:127.0.0.1 -all'], '_dmarc.example.org': ['v=DMARC1; p=none'] },
    ptr: { [reverseName('127.0.0.1')]: ['client.example.org'] },
    a: { 'client.example.org': ['127.0.0.1'] },
  });
  const [clamd, spamd] = await Promise.all([startClamd({ streamMaxLength: 64 << 20 }), startSpamd({ rules: 'debian' })]);
  // CHAIN (a JSON object) replaces the chain, to measure one part of it alone.
  const chain: Record<string, unknown> = process.env.CHAIN ? JSON.parse(process.env.CHAIN) as Record<string, unknown> : {
    dnsbl: { zones: [{ zone: 'bl.bench.test', weight: 10 }, { zone: 'wl.bench.test', weight: -5 }], rejectScore: 10, noFcrdnsWeight: 3, badHeloWeight: 2 },
    greylist: { enabled: true, delaySeconds: 1, skipOnSpfPass: false },
    authentication: { enabled: true },
  };
  // Unfiltered and chain alternate (ROUNDS times, default 5), each round the other one first
  // (ABBA), so that drift of the machine and the growing Maildirs hit both alike.
  const rounds = Number(process.env.ROUNDS ?? 5);
  const m = Number(process.env.M ?? 5000);
  const runs: [string, Record<string, unknown>, number][] = [
    ...Array.from({ length: rounds }, (_, round): [string, Record<string, unknown>, number][] => (round % 2 === 0
      ? [['unfiltered', {}, m], ['chain', chain, m]] : [['chain', chain, m], ['unfiltered', {}, m]])).flat(),
    ['chain+clamd+spamd', {
      ...chain, clamav: { address: `127.0.0.1:${clamd.port}`, maxBytes: clamd.streamMaxLength },
      spam: { scanner: 'spamd', address: `127.0.0.1:${spamd.port}`, rejectScore: 1000, junkScore: 1000 },
    }, mScan],
    ['unfiltered', {}, mScan],
  ];
  const rows: { name: string; m: number; line: BenchLine | undefined }[] = [];
  try {
    // QUICK=1: the unfiltered and chain runs only (for tuning the chain).
    for (const [index, [name, filters, m]] of (process.env.QUICK === '1' ? runs.slice(0, 2 * rounds) : runs).entries()) {
      const ldapmta = await startLdapmta(slapd, redis, { filters, delivery: { dnsServers: [dns.server] }, relay: { trustedNetworks: [] } });
      try {
        const roots = `ldapmta=${ldapmta.pid},slapd=${slapd.pid},redis=${redis.pid},clamd=${clamd.pid},spamd=${spamd.pid}`;
        const env = { ROOTS: roots, MAILDIR_GLOB: `${MAIL}/*`, LDAP_URI: slapd.url, RESULTS, PEERS_USERS: String(USERS), M: String(m) };
        const tag = `${TAG}-${index}-${name}-${m}`;
        if ((filters as { greylist?: unknown }).greylist !== undefined) {
          // smtp-source gives up a session at the first 451, so the greylist triplets of the load's
          // recipients (i.rnd@DOMAIN from bench@example.org) are first made known by RCPTs of our own.
          progress(`${name}: seeding ${m} greylist triplets`);
          await seedGreylist(m);
          await sleep(1500);
        }
        progress(`${name}, M=${m}: a first pass (cache, Maildirs), then the measured one`);
        await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver'], { ...env, TAG: `${tag}-warmup`, E2E: '0' }, { quiet: true });
        const threadsBefore = threadCpu(ldapmta.pid);
        const asked = dns.queries().length;
        await run(join(PEERS, 'bench.sh'), ['ldapmta', String(PORT), 'deliver'], { ...env, TAG: tag });
        const queries = dns.queries().slice(asked);
        if (queries.length > 0) progress(`${name}: ${queries.length} DNS queries in the measured pass (${[...new Set(queries.map((q) => `${q.type} ${q.name}`))].slice(0, 5).join(', ')})`);
        if (process.env.THREADS === '1') {
          const split = threadSplit(ldapmta.pid, threadsBefore, threadCpu(ldapmta.pid));
          progress(`${name}: ldapmta CPU s: main thread ${split.mainS.toFixed(2)}, others ${split.otherThreadsS.map((x) => x.toFixed(2)).join(' ')}`);
        }
        rows.push({ name, m, line: readResults(tag)[0] });
        copyFileSync(ldapmta.logFile, join(WORK, `${tag}.log`)); // each run's log kept, for its "received" latencies
        const problems = logProblems(ldapmta.logFile);
        if (problems.error > 0) progress(`${name}: ${problems.error} error lines in the log: ${problems.samples.join(' | ')}`);
      } finally {
        ldapmta.child.kill('SIGTERM');
        await ldapmta.exited;
      }
    }
  } finally {
    await Promise.all([clamd.stop(), spamd.stop(), dns.close(), redis.stop()]);
    await slapd.stop();
    if (process.env.KEEP_MAIL !== '1') rmSync(MAIL, { recursive: true, force: true });
  }
  const fig = (row: { line: BenchLine | undefined }, k: string) => (typeof row.line?.[k] === 'number' ? row.line[k] as number : NaN);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  /** The median end-to-end rate of the unfiltered runs with this M. */
  const baseE2e = (m: number) => median(rows.filter((r) => r.name === 'unfiltered' && r.m === m).map((r) => fig(r, 'e2e_msgs_per_s')));
  const base = (m: number) => ({ line: { e2e_msgs_per_s: baseE2e(m) } as unknown as BenchLine });
  const lines = [
    '', `## bench:smtp --filters ${TAG} (${new Date().toISOString()})`, '',
    '| run | M | accepted msgs/s | end-to-end msgs/s | CPU ms/msg (all processes) | client errors | e2e vs unfiltered |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.m} | ${fig(r, 'accept_msgs_per_s')} | ${fig(r, 'e2e_msgs_per_s')} | ${fig(r, 'cpu_ms_per_msg')} | ${fig(r, 'client_errors')} | ${(fig(r, 'e2e_msgs_per_s') / fig(base(r.m), 'e2e_msgs_per_s')).toFixed(2)} |`),
    '',
  ];
  const chainRows = rows.filter((r) => r.name === 'chain');
  const chainE2e = median(chainRows.map((r) => fig(r, 'e2e_msgs_per_s')));
  const cost = 1 - chainE2e / baseE2e(chainRows[0]!.m);
  // Each round's two runs ran back to back: the cost within each round, and its median.
  const paired = Array.from({ length: chainRows.length }, (_, round) => {
    const [a, b] = [rows[2 * round]!, rows[2 * round + 1]!];
    const [u, c] = a.name === 'chain' ? [b, a] : [a, b];
    return 1 - fig(c, 'e2e_msgs_per_s') / fig(u, 'e2e_msgs_per_s');
  });
  const pairedCost = median(paired);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  lines.push(`Medians of ${chainRows.length} alternating rounds: unfiltered ${baseE2e(chainRows[0]!.m)}, chain ${chainE2e} end-to-end msgs/s: cost ${pct(cost)}.`);
  lines.push(`Cost within each round: ${paired.map(pct).join(', ')}; median ${pct(pairedCost)}.`);
  lines.push(`Target (issue 9 item 7): the chain without content scanning costs < 15% of unfiltered throughput (both measures): ${cost < 0.15 && pairedCost < 0.15 ? 'met' : 'NOT met'}`);
  console.log(lines.join('\n'));
  appendFileSync(join(WORK, 'summaries.jsonl'), `${JSON.stringify({ tag: TAG, filters: rows.map((r) => ({ name: r.name, m: r.m, ...r.line })) })}\n`);
}

/** MAIL and RCPT (then RSET) for 1..m.rnd@DOMAIN from bench@example.org, over 10 connections: each triplet gets its first 451. */
async function seedGreylist(m: number): Promise<void> {
  await Promise.all(Array.from({ length: 10 }, async (_, lane) => {
    const c = await SmtpConnection.connect(PORT, { timeoutMs: 10_000 });
    try {
      await c.expect(null, 220);
      await c.expect('EHLO client.example.org', 250);
      for (let i = lane + 1; i <= m; i += 10) {
        await c.expect('MAIL FROM:<bench@example.org>', 250);
        const reply = await c.command(`RCPT TO:<${i}.rnd@${DOMAIN}>`);
        if (reply.code !== 451 && reply.code !== 250) throw new Error(`seeding ${i}.rnd: ${reply.code}`);
        await c.expect('RSET', 250);
      }
    } finally {
      c.close();
    }
  }));
}

(process.argv.includes('--filters') ? filtersBench() : main()).catch((err: unknown) => {
  console.error(`bench:smtp failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
