// npm run bench:lookup — recipient resolution throughput and latency over a generated
// 10,000-user directory in a real slapd: cold (LDAP, pool of 8), warm in-process, warm via Redis.
// Prints a table and one JSON line; a measurement, not a test (it asserts nothing).
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { validateConfig, type Config } from '../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../src/directory/index.ts';
import { silentLogger } from '../src/log.ts';
import type { Address } from '../src/mail.ts';
import { startRedis } from '../test/harness/redis.ts';
import { REPO_ROOT, startSlapd } from '../test/harness/slapd.ts';

const USERS = Number(process.env.USERS ?? 10_000);
const COLD = Number(process.env.COLD ?? 10_000);
const WARM = Number(process.env.WARM ?? 1_000_000);
const REDIS_N = Number(process.env.REDIS_N ?? 100_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const POOL = Number(process.env.POOL ?? 8);
const DOMAIN = 'example.test';
const BASE = 'dc=example,dc=test';

interface Figure { name: string; ops: number; seconds: number; perSecond: number; p50ms: number; p99ms: number }

function generateDirectory(): string {
  const generator = resolve(REPO_ROOT, '..', 'shared', 'peers', 'gen-directory.py');
  if (!existsSync(generator)) throw new Error(`${generator} not found: the benchmark uses the peers' directory generator (../shared beside the checkout)`);
  const file = join(tmpdir(), `ldapmta-bench-users-${USERS}.ldif`);
  const ldif = execFileSync('python3', [generator, '-n', String(USERS), '--base', BASE, '--domain', DOMAIN, '--store-prefix', '/var/mail/bench'], { maxBuffer: 256 << 20 });
  writeFileSync(file, ldif);
  return file;
}

function config(url: string, cache: Record<string, unknown>): Config {
  return validateConfig({
    hostname: 'mx1.example.test', localDomains: [DOMAIN], mailboxes: '/var/mail',
    directory: { urls: [url], bindDN: `cn=admin,${BASE}`, bindPassword: 'secret', baseDN: BASE, poolSize: POOL, healthCheckSeconds: 0 },
    cache, log: { level: 'silent' },
  });
}

const user = (k: number): Address => ({ local: `user${k}`, domain: DOMAIN });

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Run `n` operations with `concurrency` in flight; each one timed. */
async function measure(name: string, n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Figure> {
  const latencies = new Float64Array(n);
  let next = 0;
  const started = process.hrtime.bigint();
  async function worker(): Promise<void> {
    while (next < n) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      await op(i);
      latencies[i] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort();
  return { name, ops: n, seconds, perSecond: n / seconds, p50ms: percentile(latencies, 0.5), p99ms: percentile(latencies, 0.99) };
}

async function main(): Promise<void> {
  const ldif = generateDirectory();
  const slapd = await startSlapd({ suffix: BASE, sample: false, ldif: [ldif] });
  const redis = await startRedis();
  const figures: Figure[] = [];
  const directories: DirectoryHandle[] = [];
  try {
    // Cold: every lookup goes to slapd (cache off), distinct users, CONCURRENCY in flight over the pool.
    const cold = await createDirectory(config(slapd.url, { maxEntries: 0 }), { log: silentLogger() });
    directories.push(cold);
    await measure('warm-up', 500, CONCURRENCY, (i) => cold.resolveRecipient(user((i % USERS) + 1)));
    figures.push(await measure(`cold (LDAP, pool ${POOL}, ${CONCURRENCY} in flight)`, COLD, CONCURRENCY, (i) => cold.resolveRecipient(user((i % USERS) + 1))));
    figures.push(await measure('cold, unknown address (both candidates in 1 search)', Math.floor(COLD / 2), CONCURRENCY, (i) => cold.resolveRecipient({ local: `nouser${i}`, domain: DOMAIN })));

    // Warm in-process: 1,000 cached users, one caller in a tight loop.
    const memory = await createDirectory(config(slapd.url, {}), { log: silentLogger() });
    directories.push(memory);
    for (let k = 1; k <= 1000; k++) await memory.lookup(user(k));
    const warmAddresses = Array.from({ length: 1000 }, (_, k) => user(k + 1));
    figures.push(await measure('warm in-process', WARM, 1, (i) => memory.lookup(warmAddresses[i % 1000]!)));

    // Via Redis: the in-process tier off, every lookup a Redis GET.
    const viaRedis = await createDirectory(config(slapd.url, { maxEntries: 0, redis: redis.url }), { log: silentLogger() });
    directories.push(viaRedis);
    await new Promise((r) => setTimeout(r, 300));
    for (let k = 1; k <= 1000; k++) await viaRedis.lookup(user(k));
    const check = await viaRedis.lookup(user(1));
    if (check.source !== 'redis') throw new Error(`expected answers from redis, got ${check.source}`);
    figures.push(await measure(`warm via Redis (${CONCURRENCY} in flight)`, REDIS_N, CONCURRENCY, (i) => viaRedis.lookup(warmAddresses[i % 1000]!)));
  } finally {
    await Promise.all(directories.map((d) => d.close()));
    await redis.stop();
    await slapd.stop();
  }

  const rows = figures.filter((f) => f.name !== 'warm-up');
  console.log(`\nbench:lookup — ${USERS} users in slapd, node ${process.version}, ${new Date().toISOString()}`);
  console.log('| scenario | lookups | lookups/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|');
  for (const f of rows) console.log(`| ${f.name} | ${f.ops} | ${Math.round(f.perSecond).toLocaleString('en')} | ${f.p50ms.toFixed(3)} | ${f.p99ms.toFixed(3)} |`);
  console.log(JSON.stringify({ bench: 'lookup', users: USERS, pool: POOL, concurrency: CONCURRENCY, figures: rows }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
