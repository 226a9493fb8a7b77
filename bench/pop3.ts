// npm run bench:pop3 — POP3 against ldapmta and, in the same run, the Dovecot POP3 of ../shared/peers:
// the same 200 users (userK/pwK of the peers' generated directory) with the same 50 messages of 4 KB
// in their Maildirs on both sides; 20 concurrent clients (bench/pop3-client.mjs, its own process).
// Scenarios, each on both servers: "retrieve" (USER/PASS, UIDL, RETR of all 50, QUIT) cold and warm,
// and "login" (USER/PASS/QUIT only) warm. Prints both, and the ratios. Needs root (the peer).
// Knobs: MAILBOXES (200), MESSAGES (50), CONCURRENCY (20), SKIP_PEER_START=1.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { validateConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { start } from '../src/main.ts';
import { startRedis } from '../test/harness/redis.ts';
import { REPO_ROOT, startSlapd } from '../test/harness/slapd.ts';

const MAILBOXES = Number(process.env.MAILBOXES ?? 200);
const MESSAGES = Number(process.env.MESSAGES ?? 50);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 20);
const PEERS = resolve(REPO_ROOT, '..', 'shared', 'peers');
const PEERS_RUN = resolve(process.env.PEERS_RUN ?? '/tmp/ldapmta-peers');
const PEER_POP3 = 30110;
const BENCH = '/tmp/ldapmta-bench-pop3';
const BASE = 'dc=example,dc=test';
const progress = (text: string) => console.error(`[bench:pop3] ${text}`);

function reachable(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); done(true); });
    s.once('error', () => done(false));
  });
}

function message(user: number, i: number): string {
  const head = `From: sender${i}@example.net\nTo: user${user}@example.test\nSubject: bench message ${i}\nMessage-ID: <pop3-${user}-${i}@example.net>\nDate: Mon, 30 Nov 2026 05:00:00 +0000\n\n`;
  const line = 'The quick brown fox jumps over the lazy dog, 0123456789 abcdefghij.\n';
  return head + line.repeat(Math.ceil((4096 - head.length) / line.length));
}

/** The same messages into one Maildir (emptied first), named as a delivery agent would; owner uid/gid. */
function fill(maildir: string, user: number, owner: number): void {
  rmSync(maildir, { recursive: true, force: true });
  for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
  for (let i = 0; i < MESSAGES; i++) {
    const text = message(user, i);
    const lines = text.split('\n').length - 1;
    const name = `${1796000000 + i}.M${i}P1Q${user}.bench,S=${Buffer.byteLength(text)},W=${Buffer.byteLength(text) + lines}`;
    writeFileSync(join(maildir, 'new', name), text);
  }
  for (const path of [maildir, ...['new', 'cur', 'tmp'].map((s) => join(maildir, s)), ...readdirSync(join(maildir, 'new')).map((n) => join(maildir, 'new', n))]) chownSync(path, owner, owner);
}

function load(port: number, mode: 'full' | 'login'): Promise<Record<string, number | string | null>> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bench', 'pop3-client.mjs'), String(port), String(MAILBOXES), String(CONCURRENCY), '1', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('close', (code) => (code === 0 ? resolvePromise(JSON.parse(out)) : reject(new Error(`pop3-client exited ${code}`))));
  });
}

if (process.getuid?.() !== 0) throw new Error('bench:pop3 needs root (the peer runs Dovecot, mailboxes owned by uid 8)');
if (process.env.SKIP_PEER_START !== '1' && !(await reachable(PEER_POP3))) {
  progress('starting the Postfix+Dovecot peer (../shared/peers/start.sh)');
  execFileSync(join(PEERS, 'start.sh'), [], { stdio: 'inherit' });
}
if (!(await reachable(PEER_POP3))) throw new Error(`the peer's Dovecot POP3 is not on ${PEER_POP3}`);

progress(`generating ${MAILBOXES} users of the peers' directory into our own slapd, plus a redis-server`);
rmSync(BENCH, { recursive: true, force: true });
mkdirSync(BENCH, { recursive: true });
const ldif = join(BENCH, 'users.ldif');
writeFileSync(ldif, execFileSync('python3', [join(PEERS, 'gen-directory.py'), '-n', String(MAILBOXES), '--base', BASE, '--domain', 'example.test',
  '--store-prefix', join(BENCH, 'mail'), '--uid', '5000', '--gid', '5000', '--no-bench-aliases'], { maxBuffer: 64 << 20 }));
const slapd = await startSlapd({ suffix: BASE, sample: false, ldif: [ldif] });
const redis = await startRedis();
progress(`filling ${MAILBOXES} x ${MESSAGES} messages into both sides' Maildirs`);
for (let k = 1; k <= MAILBOXES; k++) {
  fill(join(BENCH, 'mail', `user${k}`), k, 0);
  fill(join(PEERS_RUN, 'mail', `user${k}`), k, 8);
}
const config = validateConfig({
  hostname: 'mx1.example.test', localDomains: ['example.test'], spool: join(BENCH, 'spool'), mailboxes: join(BENCH, 'mail'),
  listen: { smtp: '', submission: '', submissions: '', pop3: '127.0.0.1:0', imap: '', admin: '' },
  pop3: { allowPlaintextAuthOnLoopback: true },
  directory: { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: BASE },
  cache: { redis: redis.url },
  limits: { authFailuresPerIp: 1_000_000 },
  log: { level: 'silent' },
});
const running = await start(config, { log: silentLogger() });
const ours = running.ports.pop3!;

const rows: [string, string, Record<string, number | string | null>, Record<string, number | string | null>][] = [];
for (const [scenario, mode] of [['retrieve, cold', 'full'], ['retrieve, warm', 'full'], ['login only, warm', 'login']] as const) {
  progress(`${scenario}: Dovecot, then ldapmta`);
  const peer = await load(PEER_POP3, mode);
  const cpu0 = process.cpuUsage();
  const mine = await load(ours, mode);
  const cpu = process.cpuUsage(cpu0);
  mine.cpuMsPerSession = Math.round((cpu.user + cpu.system) / 1000 / MAILBOXES * 100) / 100;
  rows.push([scenario, mode, peer, mine]);
  console.log(JSON.stringify({ scenario, dovecot: peer, ldapmta: mine }));
}
await running.stop();
await redis.stop();
await slapd.stop();

const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' && a > 0 ? (b / a).toFixed(2) : '-');
console.log('\n| scenario | figure | Dovecot | ldapmta | ldapmta/Dovecot |\n|---|---|---:|---:|---:|');
for (const [scenario, , peer, mine] of rows) {
  for (const figure of ['sessionsPerS', 'mbPerS', 'loginP50ms', 'loginP99ms', 'clientCpuMs', 'errors']) {
    if (figure === 'mbPerS' && scenario.startsWith('login')) continue;
    console.log(`| ${scenario} | ${figure} | ${peer[figure]} | ${mine[figure]} | ${ratio(peer[figure], mine[figure])} |`);
  }
}
if (!existsSync(BENCH)) mkdirSync(BENCH);
