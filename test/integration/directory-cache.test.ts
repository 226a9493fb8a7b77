// The two-tier lookup cache against real slapd and redis-server: memory hits, negative and positive TTLs,
// the shared Redis tier, Redis outages, stale-if-error, single-flight loads and flushes (API and CLI).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Client } from 'ldapts';
import { validateConfig, type Config } from '../../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../../src/directory/index.ts';
import type { Lookup } from '../../src/directory/types.ts';
import type { Logger } from '../../src/log.ts';
import { MailError, parseAddress } from '../../src/mail.ts';
import { sleep } from '../harness/ports.ts';
import { cli, showCli } from '../harness/cli.ts';
import { memoryLog, WARN } from '../harness/log.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

const addr = parseAddress;

interface Overrides {
  directory?: Record<string, unknown>;
  cache?: Record<string, unknown>;
}

function directoryTree(slapd: Slapd, overrides: Overrides = {}) {
  return {
    urls: [slapd.url],
    bindDN: 'cn=admin,dc=example,dc=org',
    bindPassword: 'secret',
    baseDN: 'dc=example,dc=org',
    timeoutMs: 1000,
    connectTimeoutMs: 500,
    ...overrides.directory,
  };
}

function config(slapd: Slapd, overrides: Overrides = {}): Config {
  return validateConfig({
    hostname: 'mx1.example.org',
    localDomains: ['example.org', 'example.net'],
    mailboxes: '/var/mail',
    directory: directoryTree(slapd, overrides),
    cache: { ...overrides.cache },
    log: { level: 'silent' },
  });
}

/** Polls `probe` until it returns a value that is not undefined; fails after `timeoutMs`. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** One short-lived admin connection to the test redis-server. */
async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  await redis.connect();
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/**
 * Waits until exactly `directories` open directories are connected to Redis and ready: each one
 * holds a cache connection that has passed ioredis's ready check (it sent a command) and a
 * flush subscriber subscribed to `<prefix>flush`. createDirectory() does not wait for Redis,
 * and a cache whose connection is not ready yet skips the Redis tier (by design).
 */
async function waitRedisReady(url: string, prefix: string, directories: number): Promise<void> {
  await waitFor(`${directories} directories connected to redis`, 8000, () => withRedis(url, async (redis) => {
    const self = String(await redis.client('ID'));
    const list = String(await redis.client('LIST')).split('\n').filter((l) => l.trim() !== '');
    const active = list.filter((l) => !l.startsWith(`id=${self} `) && !/ cmd=NULL /.test(l)).length;
    const numsub = (await redis.pubsub('NUMSUB', `${prefix}flush`)) as [string, number];
    return active === 2 * directories && Number(numsub[1]) === directories ? true : undefined;
  }));
  await sleep(50); // the ready-check reply is on its way to the client
}

function quotaBytes(lookup: Lookup): number | null {
  assert.equal(lookup.resolution.kind, 'mailbox', JSON.stringify(lookup.resolution));
  return lookup.resolution.kind === 'mailbox' ? lookup.resolution.quota.bytes : null;
}

function setBobQuota(slapd: Slapd, bytes: number): Promise<void> {
  return slapd.ldapmodify(`dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mailQuotaSize\nmailQuotaSize: ${bytes}\n`);
}

/** cn=Monitor's count of completed search operations, read on a connection of its own. */
async function completedSearches(slapd: Slapd): Promise<number> {
  const client = new Client({ url: slapd.url, connectTimeout: 2000, timeout: 5000 });
  try {
    await client.bind(slapd.rootDN, slapd.rootPassword);
    const { searchEntries } = await client.search('cn=Search,cn=Operations,cn=Monitor', {
      scope: 'base', filter: '(objectClass=*)', attributes: ['monitorOpCompleted'],
    });
    const value = searchEntries[0]?.monitorOpCompleted;
    const n = Number(Array.isArray(value) ? value[0] : value);
    assert.ok(Number.isInteger(n), `unreadable monitorOpCompleted: ${JSON.stringify(searchEntries)}`);
    return n;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}


/**
 * The LDAP searches slapd completed while `work` ran, less the monitor reads' own (each read of
 * cn=Monitor is itself a search that may count, so that overhead is measured first).
 */
async function searchesDuring<T>(slapd: Slapd, work: () => Promise<T>): Promise<{ searches: number; result: T }> {
  await sleep(50);
  const c0 = await completedSearches(slapd);
  await sleep(50);
  const c1 = await completedSearches(slapd);
  const result = await work();
  await sleep(50);
  const c2 = await completedSearches(slapd);
  return { searches: c2 - c1 - (c1 - c0), result };
}

// ---------------------------------------------------------------------------------------------

describe('directory cache (real slapd and redis-server)', () => {
  let slapd: Slapd;
  let redis: RedisServer;
  const open = new Set<DirectoryHandle>();
  const tmp = mkdtempSync(join(tmpdir(), 'ldapmta-cache-test-'));

  async function directory(cfg: Config, log: Logger = memoryLog().log): Promise<DirectoryHandle> {
    const d = await createDirectory(cfg, { log });
    open.add(d);
    return d;
  }
  async function close(d: DirectoryHandle): Promise<void> {
    open.delete(d);
    await d.close();
  }

  before(async () => {
    [slapd, redis] = await Promise.all([startSlapd(), startRedis()]);
  });

  after(async () => {
    await Promise.all([...open].map((d) => d.close()));
    await Promise.all([slapd?.stop(), redis?.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a first lookup comes from LDAP, the second from memory', async () => {
    const d = await directory(config(slapd));
    try {
      const first = await d.lookup(addr('alice@example.org'));
      assert.equal(first.source, 'ldap');
      assert.equal(first.resolution.kind, 'mailbox');
      const second = await d.lookup(addr('Alice@Example.org'));
      assert.equal(second.source, 'memory');
      assert.deepEqual(second.resolution, first.resolution);
    } finally {
      await close(d);
    }
  });

  test('negative answers are cached with their own TTL', async () => {
    const d = await directory(config(slapd, { cache: { ttlSeconds: 60, negativeTtlSeconds: 1 } }));
    try {
      const miss = await d.lookup(addr('newbie@example.org'));
      assert.deepEqual([miss.resolution.kind, miss.source], ['unknown', 'ldap']);
      const cached = await d.lookup(addr('newbie@example.org'));
      assert.deepEqual([cached.resolution.kind, cached.source], ['unknown', 'memory']);

      await slapd.ldapadd([
        'dn: uid=newbie,ou=people,dc=example,dc=org',
        'objectClass: inetOrgPerson',
        'objectClass: qmailUser',
        'cn: Newbie',
        'sn: Newbie',
        'uid: newbie',
        'mail: newbie@example.org',
        'mailMessageStore: example.org/newbie/',
        '',
      ].join('\n'));
      const stillCached = await d.lookup(addr('newbie@example.org'));
      assert.deepEqual([stillCached.resolution.kind, stillCached.source], ['unknown', 'memory']);

      await sleep(1100);
      const found = await d.lookup(addr('newbie@example.org'));
      assert.deepEqual([found.resolution.kind, found.source], ['mailbox', 'ldap']);
      if (found.resolution.kind === 'mailbox') assert.equal(found.resolution.mailbox, '/var/mail/example.org/newbie/');
    } finally {
      await close(d);
    }
  });

  test('positive answers expire after ttlSeconds', async () => {
    await setBobQuota(slapd, 1000000);
    const d = await directory(config(slapd, { cache: { ttlSeconds: 1 } }));
    try {
      const before = await d.lookup(addr('bob@example.org'));
      assert.equal(before.source, 'ldap');
      assert.equal(quotaBytes(before), 1000000);

      await setBobQuota(slapd, 2000000);
      const cached = await d.lookup(addr('bob@example.org'));
      assert.equal(cached.source, 'memory');
      assert.equal(quotaBytes(cached), 1000000);

      await sleep(1100);
      const fresh = await d.lookup(addr('bob@example.org'));
      assert.equal(fresh.source, 'ldap');
      assert.equal(quotaBytes(fresh), 2000000);
    } finally {
      await close(d);
    }
  });

  test('the Redis tier is shared: a second directory gets the answer from redis', async () => {
    const prefix = 'ldapmta:test-shared:';
    const cfg = config(slapd, { cache: { redis: redis.url, keyPrefix: prefix } });
    const a = await directory(cfg);
    try {
      await waitRedisReady(redis.url, prefix, 1);
      const fromLdap = await a.lookup(addr('carol@example.org'));
      assert.equal(fromLdap.source, 'ldap');
      assert.equal(fromLdap.resolution.kind, 'forward');

      const b = await directory(cfg);
      try {
        await waitRedisReady(redis.url, prefix, 2);
        const fromRedis = await b.lookup(addr('carol@example.org'));
        assert.equal(fromRedis.source, 'redis');
        assert.deepEqual(fromRedis.resolution, fromLdap.resolution);
        assert.equal((await b.lookup(addr('carol@example.org'))).source, 'memory');
      } finally {
        await close(b);
      }
    } finally {
      await close(a);
    }
  });

  test('Redis down: lookups go on from LDAP with one warning; the tier is used again once Redis is back', async () => {
    const prefix = 'ldapmta:test-outage:';
    const cfg = config(slapd, { cache: { redis: redis.url, keyPrefix: prefix } });
    const { log, lines, text } = memoryLog();
    const a = await directory(cfg, log);
    try {
      await waitRedisReady(redis.url, prefix, 1);
      assert.equal((await a.lookup(addr('alice@example.org'))).source, 'ldap');

      await redis.stop();
      try {
        const addresses = ['bob', 'carol', 'dave', 'erin', 'frank', 'judy', 'ticket', 'staff', 'nobody-1', 'nobody-2'];
        for (const [i, local] of addresses.entries()) {
          const started = Date.now();
          const result = await a.lookup(addr(`${local}@example.org`));
          const elapsed = Date.now() - started;
          assert.equal(result.source, 'ldap', local);
          assert.ok(elapsed < 1000, `lookup of ${local} took ${elapsed} ms while redis was down`);
          if (i === 4) await sleep(700); // let ioredis fail a few reconnects in between
        }
        await sleep(300);
      } finally {
        await redis.start();
      }
      const unavailable = lines().filter((l) => l.level === WARN && /redis unavailable/.test(l.msg));
      assert.equal(unavailable.length, 1, `expected exactly one "redis unavailable" warning:\n${text()}`);
      assert.equal(unavailable[0]!.role, 'cache');

      // ioredis reconnects in the background (back-off capped at 2 s).
      await waitFor('the cache to report redis back', 5000, async () =>
        lines().some((l) => l.role === 'cache' && /redis is back/.test(l.msg)) ? true : undefined);
      await waitRedisReady(redis.url, prefix, 1);

      const written = await a.lookup(addr('grace@example.org'));
      assert.equal(written.source, 'ldap');
      const c = await directory(cfg);
      try {
        await waitRedisReady(redis.url, prefix, 2);
        const shared = await c.lookup(addr('grace@example.org'));
        assert.equal(shared.source, 'redis');
        assert.deepEqual(shared.resolution, written.resolution);
      } finally {
        await close(c);
      }
    } finally {
      await close(a);
    }
  });

  test('stale-if-error: an expired positive is served while LDAP is down; an expired negative is not', async () => {
    const d = await directory(config(slapd, { cache: { ttlSeconds: 1, negativeTtlSeconds: 1, staleIfErrorSeconds: 60 } }));
    try {
      const fresh = await d.lookup(addr('alice@example.org'));
      assert.deepEqual([fresh.resolution.kind, fresh.source], ['mailbox', 'ldap']);
      const miss = await d.lookup(addr('nobody-stale@example.org'));
      assert.deepEqual([miss.resolution.kind, miss.source], ['unknown', 'ldap']);
      await sleep(1100);

      await slapd.stop();
      try {
        const stale = await d.lookup(addr('alice@example.org'));
        assert.equal(stale.source, 'stale');
        assert.deepEqual(stale.resolution, fresh.resolution);
        await assert.rejects(d.lookup(addr('nobody-stale@example.org')), (err: unknown) => {
          assert.ok(err instanceof MailError, String(err));
          assert.equal(err.kind, 'temporary');
          assert.equal(err.status, '4.4.3');
          return true;
        });
      } finally {
        await slapd.start();
      }
      const back = await d.lookup(addr('alice@example.org'));
      assert.equal(back.source, 'ldap');
    } finally {
      await close(d);
    }
  });

  test('an unknown address costs one LDAP search for all its candidates, dashed ones too', async () => {
    const d = await directory(config(slapd, { directory: { healthCheckSeconds: 0 } }));
    try {
      assert.equal((await d.lookup(addr('alice@example.org'))).source, 'ldap');
      const { searches, result: [plain, dashed] } = await searchesDuring(slapd, async () =>
        [await d.lookup(addr('nobody-here@example.org')), await d.lookup(addr('no-such-body-at-all@example.org'))] as const);
      assert.equal(plain.resolution.kind, 'unknown');
      assert.equal(dashed.resolution.kind, 'unknown');
      // The candidates are all tried, in the reference's order, in one search each lookup.
      assert.ok(dashed.resolution.kind === 'unknown' && dashed.resolution.tried.length > 2, JSON.stringify(dashed.resolution));
      assert.equal(searches, 2);
    } finally {
      await close(d);
    }
  });

  test('an entry whose address only LDAP\'s space rules match is still found (one candidate at a time)', async () => {
    // mail: " spaced@example.org" (base64, so LDIF keeps the leading space): slapd's matching
    // ignores it, a plain comparison does not, so the combined answer cannot be split by candidate.
    await slapd.ldapadd('dn: uid=spaced,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nobjectClass: qmailUser\n' +
      `cn: spaced\nsn: spaced\nuid: spaced\nmail:: ${Buffer.from(' spaced@example.org').toString('base64')}\nmailMessageStore: example.org/spaced/\n`);
    const d = await directory(config(slapd));
    try {
      const found = await d.lookup(addr('spaced@example.org'));
      assert.equal(found.resolution.kind, 'mailbox', JSON.stringify(found.resolution));
      assert.equal(found.resolution.kind === 'mailbox' && found.resolution.dn, 'uid=spaced,ou=people,dc=example,dc=org');
    } finally {
      await close(d);
    }
  });

  test('single-flight: 50 concurrent lookups of one uncached address make one LDAP search', async () => {
    const d = await directory(config(slapd, { directory: { healthCheckSeconds: 0 } }));
    try {
      // Warm the pool (bind) so that connection set-up does not overlap the measurement.
      assert.equal((await d.lookup(addr('alice@example.org'))).source, 'ldap');
      const { searches, result: results } = await searchesDuring(slapd, () =>
        Promise.all(Array.from({ length: 50 }, () => d.lookup(addr('frank@example.org')))));
      assert.equal(searches, 1);
      for (const r of results) {
        assert.equal(r.resolution.kind, 'mailbox');
        assert.equal(r.source, 'ldap');
      }
      assert.equal((await d.lookup(addr('frank@example.org'))).source, 'memory');
    } finally {
      await close(d);
    }
  });

  test('flush(address) drops a cached answer: the next lookup asks LDAP', async () => {
    await setBobQuota(slapd, 3000000);
    const d = await directory(config(slapd, { cache: { ttlSeconds: 300 } }));
    try {
      assert.equal(quotaBytes(await d.lookup(addr('bob@example.org'))), 3000000);
      await setBobQuota(slapd, 4000000);
      const cached = await d.lookup(addr('bob@example.org'));
      assert.deepEqual([cached.source, quotaBytes(cached)], ['memory', 3000000]);

      await d.flush(addr('BOB@example.org'));
      const fresh = await d.lookup(addr('bob@example.org'));
      assert.deepEqual([fresh.source, quotaBytes(fresh)], ['ldap', 4000000]);
    } finally {
      await close(d);
    }
  });

  test('ldapmta cache flush ADDRESS (CLI) flushes Redis and the memory tier of a running directory', async () => {
    const prefix = 'ldapmta:test-cli-flush:';
    await setBobQuota(slapd, 5000000);
    const cfg = config(slapd, { cache: { redis: redis.url, keyPrefix: prefix, ttlSeconds: 3600 } });
    const file = join(tmp, 'flush.yaml');
    writeFileSync(file, JSON.stringify({
      hostname: 'mx1.example.org',
      mailboxes: '/var/mail',
      directory: directoryTree(slapd),
      cache: { redis: redis.url, keyPrefix: prefix, ttlSeconds: 3600 },
      log: { level: 'warn' },
    }, null, 2)); // JSON is YAML
    const a = await directory(cfg);
    try {
      await waitRedisReady(redis.url, prefix, 1);
      assert.equal(quotaBytes(await a.lookup(addr('bob@example.org'))), 5000000);
      await sleep(50); // the Redis write is not awaited by the lookup
      await setBobQuota(slapd, 6000000);
      const cached = await a.lookup(addr('bob@example.org'));
      assert.deepEqual([cached.source, quotaBytes(cached)], ['memory', 5000000]);
      assert.equal(await withRedis(redis.url, (r) => r.exists(`${prefix}bob@example.org`)), 1, 'the answer was not written to redis');

      const flushed = await cli(['cache', 'flush', 'bob@example.org'], { LDAPMTA_CONFIG: file });
      assert.equal(flushed.code, 0, showCli(flushed));
      assert.match(flushed.stdout, /bob@example\.org: flushed/);

      const fresh = await waitFor('the running directory to drop bob from memory', 1000, async () => {
        const l = await a.lookup(addr('bob@example.org'));
        return l.source === 'memory' ? undefined : l;
      });
      assert.deepEqual([fresh.source, quotaBytes(fresh)], ['ldap', 6000000]);
    } finally {
      await close(a);
    }
  });
});
