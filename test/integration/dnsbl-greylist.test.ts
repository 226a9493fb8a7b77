// The connection checks over real sockets: DNS lists, FCrDNS and the DNS harness's TXT/PTR answers
// through node's own resolver (c-ares) against the loopback DNS server, greylisting against a real
// redis-server (and the in-process store) with short real delays, and Redis going away.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { reverseName, startDns, type DnsRecords, type TestDns } from '../harness/dns.ts';
import { memoryLog, WARN } from '../harness/log.ts';
import { sleep } from '../harness/ports.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { checkDnsLists, createPolicyDns, type DnsListZone, type PolicyDns } from '../../src/policy/dnsbl.ts';
import { checkFcrdns, heloChecks, MAX_PTR_NAMES } from '../../src/policy/fcrdns.ts';
import {
  createGreylist, decide, formatEntry, greylistKey, greylistTriplet, greylistWhitelist, memoryGreylistStore,
  passCachedStore, redisGreylistStore, type GreylistCheck, type GreylistEntry, type GreylistStore,
} from '../../src/policy/greylist.ts';

const V6_LISTED = '2001:db8:5::25';
/** "2001:db8:5::25" as a DNSBL query label sequence, built by hand, independent of the code under test. */
const V6_LABELS = reverseName(V6_LISTED).replace(/\.ip6\.arpa$/, '');

async function rejection(promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await promise;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  assert.fail('expected a rejection');
}

/** A UDP socket on loopback that reads every query and never answers. */
async function silentServer(): Promise<{ server: string; received: () => number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  let count = 0;
  socket.on('message', () => count++);
  await new Promise<void>((resolve) => socket.bind({ address: '127.0.0.1', port: 0 }, resolve));
  socket.unref();
  return {
    server: `127.0.0.1:${socket.address().port}`,
    received: () => count,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

describe('DNS harness: TXT, PTR and dropped queries', () => {
  const long = `v=DKIM1; k=rsa; p=${'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'.repeat(12)}`;
  let dns: TestDns;
  let resolver: Resolver;
  const RECORDS: DnsRecords = {
    txt: {
      'example.test': ['v=spf1 ip4:192.0.2.0/24 -all', 'google-site-verification=abc'],
      'sel._domainkey.example.test': [long],
      'split.example.test': [['v=spf1 ', 'ip4:192.0.2.1 ', '-all'], ''],
    },
    ptr: { [reverseName('192.0.2.1')]: ['mail.example.test.'], [reverseName('2001:db8::1')]: ['v6.example.test', 'other.example.test'] },
    a: { 'mail.example.test': ['192.0.2.1'] },
    servfail: ['*.broken.test'],
    drop: ['*.slow.test', 'exact.slow2.test', 'mail.example.test/TXT'],
  };
  before(async () => {
    dns = await startDns(RECORDS);
    resolver = new Resolver({ timeout: 400, tries: 1 });
    resolver.setServers([dns.server]);
  });
  after(() => dns?.close());

  test('reverseName: IPv4, IPv6, IPv4-mapped; anything else throws', () => {
    assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(reverseName('::ffff:192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(reverseName('2001:db8::1'), `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`);
    assert.throws(() => reverseName('example.test'), /not an IP address/);
  });

  test('TXT: several records per name, each string its own record', async () => {
    const records = await resolver.resolveTxt('Example.TEST.');
    assert.deepEqual(records.map((r) => r.join('')).sort(), ['google-site-verification=abc', 'v=spf1 ip4:192.0.2.0/24 -all']);
    assert.ok(records.every((r) => r.length === 1));
  });

  test('TXT: a long record is split into 255-byte strings that join back to it', async () => {
    assert.equal(long.length, 546);
    const [record, ...rest] = await resolver.resolveTxt('sel._domainkey.example.test');
    assert.equal(rest.length, 0);
    assert.deepEqual(record!.map((s) => s.length), [255, 255, 36]);
    assert.equal(record!.join(''), long);
  });

  test('TXT: explicit strings of one record are kept apart; an empty record is one empty string', async () => {
    const records = await resolver.resolveTxt('split.example.test');
    assert.deepEqual(records, [['v=spf1 ', 'ip4:192.0.2.1 ', '-all'], ['']]);
    assert.throws(() => dns.set({ txt: { 'x.test': [['y'.repeat(256)]] } }), /longer than 255/);
    assert.throws(() => dns.set({ txt: { 'x.test': [[]] } }), /at least one string/);
  });

  test('PTR, through resolvePtr and resolver.reverse, for IPv4 and IPv6', async () => {
    assert.deepEqual(await resolver.resolvePtr('1.2.0.192.in-addr.arpa'), ['mail.example.test']);
    assert.deepEqual(await resolver.reverse('192.0.2.1'), ['mail.example.test']);
    assert.deepEqual(await resolver.resolvePtr(reverseName('2001:db8::1')), ['v6.example.test', 'other.example.test']);
    assert.equal((await rejection(resolver.resolvePtr(reverseName('192.0.2.2')))).code, 'ENOTFOUND');
    // A name with only a PTR has no A: NODATA, not NXDOMAIN.
    assert.equal((await rejection(resolver.resolve4('1.2.0.192.in-addr.arpa'))).code, 'ENODATA');
    assert.equal((await rejection(resolver.resolve6('mail.example.test'))).code, 'ENODATA');
    assert.throws(() => dns.set({ ptr: { 'x.in-addr.arpa': [''] } }), /empty PTR target/);
  });

  test('"*.zone" SERVFAILs every name below the zone but not the zone itself', async () => {
    assert.equal((await rejection(resolver.resolve4('2.0.0.127.broken.test'))).code, 'ESERVFAIL');
    assert.equal((await rejection(resolver.resolveTxt('deep.er.broken.test'))).code, 'ESERVFAIL');
    assert.equal((await rejection(resolver.resolve4('broken.test'))).code, 'ENOTFOUND');
  });

  test('dropped queries are seen but never answered: the client times out', async () => {
    const started = Date.now();
    assert.equal((await rejection(resolver.resolve4('2.0.0.127.slow.test'))).code, 'ETIMEOUT');
    assert.ok(Date.now() - started >= 350, 'it waited for the timeout');
    assert.equal((await rejection(resolver.resolve4('exact.slow2.test'))).code, 'ETIMEOUT');
    assert.equal((await rejection(resolver.resolve4('other.slow2.test'))).code, 'ENOTFOUND', 'an exact name drops only itself');
    assert.ok(dns.queries().some((q) => q.name === '2.0.0.127.slow.test' && q.type === 'A'));
    // A "/TYPE" entry drops only that type: the A record of the same name still answers.
    assert.equal((await rejection(resolver.resolveTxt('mail.example.test'))).code, 'ETIMEOUT');
    assert.deepEqual(await resolver.resolve4('mail.example.test'), ['192.0.2.1']);
  });

  test('"/TYPE" entries: SERVFAIL for one type only; an unknown type is refused', async () => {
    dns.set({ a: { 'x.test': ['192.0.2.7'] }, txt: { 'x.test': ['hello'] }, servfail: ['x.test/TXT', '*.y.test/A'] });
    try {
      assert.equal((await rejection(resolver.resolveTxt('x.test'))).code, 'ESERVFAIL');
      assert.deepEqual(await resolver.resolve4('x.test'), ['192.0.2.7']);
      assert.equal((await rejection(resolver.resolve4('a.y.test'))).code, 'ESERVFAIL');
      assert.equal((await rejection(resolver.resolveTxt('a.y.test'))).code, 'ENOTFOUND');
      assert.throws(() => dns.set({ drop: ['x.test/NOPE'] }), /unknown type/);
    } finally {
      dns.set(RECORDS);
    }
  });
});

describe('DNS lists against the loopback DNS server', () => {
  const RECORDS: DnsRecords = {
    a: {
      '2.0.0.127.bl.test': ['127.0.0.2'],
      [`${V6_LABELS}.bl.test`]: ['127.0.0.4', '127.0.0.2'],
      '2.0.0.127.wl.test': ['127.0.10.3'],
      '2.0.0.127.public.test': ['127.255.255.254'],
      '2.0.0.127.wild.test': ['192.0.2.80'],
    },
    txt: { '2.0.0.127.bl.test': [['Listed by bl.test,', ' see https://bl.test/q?127.0.0.2']] },
    servfail: ['*.broken.test'],
    drop: ['*.slow.test'],
  };
  const ZONES: DnsListZone[] = [
    { zone: 'bl.test', weight: 10 },
    { zone: 'wl.test', weight: -4 },
    { zone: 'broken.test', weight: 10 },
    { zone: 'slow.test', weight: 10 },
    { zone: 'public.test', weight: 10 },
    { zone: 'wild.test', weight: 10 },
  ];
  const TIMEOUT = 600;
  let dns: TestDns;
  let client: PolicyDns;
  before(async () => {
    dns = await startDns(RECORDS);
    client = createPolicyDns({ dnsServers: [dns.server], timeoutMs: TIMEOUT });
  });
  after(() => dns?.close());

  test('127.0.0.2 is listed with the TXT reason; DNSWL subtracts; SERVFAIL, silence and a refusal are unknown, within the timeout', async () => {
    const { log, lines } = memoryLog();
    const started = Date.now();
    const result = await checkDnsLists('127.0.0.2', ZONES, { dns: client, timeoutMs: TIMEOUT, log });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= TIMEOUT - 50, `the silent zone was waited for (${elapsed} ms)`);
    assert.ok(elapsed < TIMEOUT + 700, `answered within the timeout (${elapsed} ms)`);
    assert.deepEqual(result.listings, [
      { zone: 'bl.test', type: 'block', codes: ['127.0.0.2'], weight: 10, reason: 'Listed by bl.test, see https://bl.test/q?127.0.0.2' },
      { zone: 'wl.test', type: 'allow', codes: ['127.0.10.3'], weight: -4 },
    ]);
    assert.equal(result.score, 6);
    assert.deepEqual([...result.unknown].sort(), ['broken.test', 'public.test', 'slow.test']);
    assert.deepEqual(Object.fromEntries(result.notes.map((n) => [n.zone, n.note])), {
      'broken.test': 'ESERVFAIL',
      'slow.test': 'ETIMEOUT',
      'public.test': 'list refused the query (127.255.255.254)',
      'wild.test': 'ignored answer 192.0.2.80',
    });
    // Every zone was asked, and the TXT only where listed.
    const asked = dns.queries();
    for (const z of ZONES) assert.ok(asked.some((q) => q.name === `2.0.0.127.${z.zone}` && q.type === 'A'), z.zone);
    assert.deepEqual(asked.filter((q) => q.type === 'TXT').map((q) => q.name).sort(), ['2.0.0.127.bl.test', '2.0.0.127.wl.test']);
    const warnings = lines().filter((l) => l.level === WARN);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.zone, 'public.test');
  });

  test('the zones are asked in parallel: three silent zones cost one timeout, not three', async () => {
    const zones: DnsListZone[] = [{ zone: 'slow.test', weight: 1 }, { zone: 'a.slow.test', weight: 1 }, { zone: 'b.slow.test', weight: 1 }, { zone: 'bl.test', weight: 1 }];
    const started = Date.now();
    const result = await checkDnsLists('127.0.0.2', zones, { dns: client, timeoutMs: 400 });
    assert.ok(Date.now() - started < 1000, `${Date.now() - started} ms`);
    assert.deepEqual(result.unknown, ['slow.test', 'a.slow.test', 'b.slow.test']);
    assert.equal(result.score, 1);
  });

  test('an address nobody lists: score 0, nothing unknown but the broken zones', async () => {
    const result = await checkDnsLists('192.0.2.1', ZONES.filter((z) => z.zone !== 'slow.test'), { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(result.listings, []);
    assert.equal(result.score, 0);
    assert.deepEqual(result.unknown, ['broken.test']);
  });

  test('an IPv6 address is asked by its nibbles; a listing without a TXT record has no reason', async () => {
    const result = await checkDnsLists(V6_LISTED, [{ zone: 'bl.test', weight: 7 }, { zone: 'wl.test', weight: -4 }], { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(result.listings, [{ zone: 'bl.test', type: 'block', codes: ['127.0.0.2', '127.0.0.4'], weight: 7 }]);
    assert.equal(result.score, 7);
    assert.ok(dns.queries().some((q) => q.name === `${V6_LABELS}.bl.test` && q.type === 'TXT'));
    // The same network, another address: not listed.
    assert.equal((await checkDnsLists('2001:db8:5::26', [{ zone: 'bl.test', weight: 7 }], { dns: client, timeoutMs: TIMEOUT })).score, 0);
  });

  test('an IPv4-mapped client address is asked as IPv4', async () => {
    const result = await checkDnsLists('::ffff:127.0.0.2', [{ zone: 'bl.test', weight: 3 }], { dns: client, timeoutMs: TIMEOUT, reasons: false });
    assert.deepEqual(result.listings, [{ zone: 'bl.test', type: 'block', codes: ['127.0.0.2'], weight: 3 }]);
  });

  test('a zone limited to other codes does not list; reasons: false asks no TXT', async () => {
    const before = dns.queries().filter((q) => q.type === 'TXT').length;
    const result = await checkDnsLists('127.0.0.2', [{ zone: 'bl.test', weight: 10, codes: ['127.0.0.10', '127.0.0.11'] }], { dns: client, timeoutMs: TIMEOUT });
    assert.equal(result.score, 0);
    assert.deepEqual(result.notes, [{ zone: 'bl.test', note: 'ignored answer 127.0.0.2' }]);
    await checkDnsLists('127.0.0.2', [{ zone: 'bl.test', weight: 10 }], { dns: client, timeoutMs: TIMEOUT, reasons: false });
    assert.equal(dns.queries().filter((q) => q.type === 'TXT').length, before);
  });

  test('a TXT lookup that never answers still leaves the listing, within the deadline', async () => {
    dns.set({ ...RECORDS, drop: [...RECORDS.drop!, '2.0.0.127.bl.test/TXT'] });
    try {
      const started = Date.now();
      const result = await checkDnsLists('127.0.0.2', [{ zone: 'bl.test', weight: 10 }], { dns: client, timeoutMs: 500 });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 450 && elapsed < 1200, `waited for the TXT until the deadline, no longer (${elapsed} ms)`);
      assert.deepEqual(result.listings, [{ zone: 'bl.test', type: 'block', codes: ['127.0.0.2'], weight: 10 }]);
    } finally {
      dns.set(RECORDS);
    }
  });

  test('a DNS server that never answers: every zone unknown within the timeout', async () => {
    const silent = await silentServer();
    try {
      const started = Date.now();
      const result = await checkDnsLists('127.0.0.2', ZONES, { dns: createPolicyDns({ dnsServers: [silent.server], timeoutMs: 500 }), timeoutMs: 500 });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 450 && elapsed < 1200, `${elapsed} ms`);
      assert.deepEqual(result, { listings: [], unknown: ZONES.map((z) => z.zone), score: 0, notes: ZONES.map((z) => ({ zone: z.zone, note: 'ETIMEOUT' })) });
      assert.ok(silent.received() >= ZONES.length, 'the queries did reach the server');
    } finally {
      await silent.close();
    }
  });

  test('no DNS server on the port (ICMP unreachable): unknown, not listed', async () => {
    const gone = await silentServer();
    await gone.close();
    const result = await checkDnsLists('127.0.0.2', [{ zone: 'bl.test', weight: 10 }], { dns: createPolicyDns({ dnsServers: [gone.server], timeoutMs: 500 }), timeoutMs: 500 });
    assert.deepEqual(result.listings, []);
    assert.deepEqual(result.unknown, ['bl.test']);
    assert.match(result.notes[0]!.note, /^E[A-Z]+$/);
  });

  test('not an address: every zone unknown, nothing asked', async () => {
    const count = dns.queries().length;
    const result = await checkDnsLists('not-an-ip', ZONES.slice(0, 2), { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(result.unknown, ['bl.test', 'wl.test']);
    assert.equal(result.score, 0);
    assert.equal(dns.queries().length, count);
  });
});

describe('FCrDNS against the loopback DNS server', () => {
  const many = Array.from({ length: MAX_PTR_NAMES + 2 }, (_, i) => `n${i}.many.test`);
  const RECORDS: DnsRecords = {
    ptr: {
      [reverseName('192.0.2.10')]: ['alias.good.test', 'Mail.Good.Test.'],
      [reverseName('192.0.2.11')]: ['liar.test'],
      [reverseName('192.0.2.14')]: ['slow.fwd.test', 'nxdomain.fwd.test'],
      [reverseName('192.0.2.15')]: many,
      [reverseName('192.0.2.16')]: ['slow.fwd.test', 'good2.test'],
      [reverseName('2001:db8::25')]: ['v6.good.test'],
      [reverseName('2001:db8::26')]: ['v4only.good.test'],
    },
    a: {
      'mail.good.test': ['192.0.2.99', '192.0.2.10'],
      'alias.good.test': ['192.0.2.98'],
      'liar.test': ['192.0.2.99'],
      'good2.test': ['192.0.2.16'],
      'v4only.good.test': ['192.0.2.26'],
      ...Object.fromEntries(many.map((name, i) => [name, [i === many.length - 1 ? '192.0.2.15' : '192.0.2.200']])),
    },
    aaaa: { 'v6.good.test': ['2001:db8:0:0::25'] },
    servfail: [reverseName('192.0.2.13')],
    drop: ['slow.fwd.test'],
  };
  const TIMEOUT = 500;
  let dns: TestDns;
  let client: PolicyDns;
  before(async () => {
    dns = await startDns(RECORDS);
    client = createPolicyDns({ dnsServers: [dns.server], timeoutMs: TIMEOUT });
  });
  after(() => dns?.close());

  test('confirmed: a PTR name whose A record holds the address; the other name is not confirmed', async () => {
    const result = await checkFcrdns('192.0.2.10', { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(result, { confirmed: true, names: ['mail.good.test'], ptr: ['alias.good.test', 'mail.good.test'], temporary: false });
    assert.deepEqual(await checkFcrdns('::ffff:192.0.2.10', { dns: client, timeoutMs: TIMEOUT }), result);
  });

  test('confirmed over IPv6 (AAAA), whatever the spelling', async () => {
    assert.deepEqual(await checkFcrdns('2001:DB8:0::25', { dns: client, timeoutMs: TIMEOUT }), { confirmed: true, names: ['v6.good.test'], ptr: ['v6.good.test'], temporary: false });
    // A name with only an A record does not confirm an IPv6 client.
    assert.deepEqual(await checkFcrdns('2001:db8::26', { dns: client, timeoutMs: TIMEOUT }), { confirmed: false, names: [], ptr: ['v4only.good.test'], temporary: false });
  });

  test('not confirmed: the PTR name points elsewhere; no PTR at all', async () => {
    assert.deepEqual(await checkFcrdns('192.0.2.11', { dns: client, timeoutMs: TIMEOUT }), { confirmed: false, names: [], ptr: ['liar.test'], temporary: false });
    assert.deepEqual(await checkFcrdns('192.0.2.12', { dns: client, timeoutMs: TIMEOUT }), { confirmed: false, names: [], ptr: [], temporary: false });
  });

  test('temporary: the PTR lookup SERVFAILs; a forward lookup times out (within the deadline)', async () => {
    assert.deepEqual(await checkFcrdns('192.0.2.13', { dns: client, timeoutMs: TIMEOUT }), { confirmed: false, names: [], ptr: [], temporary: true });
    const started = Date.now();
    assert.deepEqual(await checkFcrdns('192.0.2.14', { dns: client, timeoutMs: TIMEOUT }), { confirmed: false, names: [], ptr: ['slow.fwd.test', 'nxdomain.fwd.test'], temporary: true });
    assert.ok(Date.now() - started < TIMEOUT + 700, `${Date.now() - started} ms`);
    // One name confirming is enough, even when another one timed out.
    assert.deepEqual(await checkFcrdns('192.0.2.16', { dns: client, timeoutMs: TIMEOUT }), { confirmed: true, names: ['good2.test'], ptr: ['slow.fwd.test', 'good2.test'], temporary: false });
  });

  test(`at most ${MAX_PTR_NAMES} names are followed`, async () => {
    const result = await checkFcrdns('192.0.2.15', { dns: client, timeoutMs: TIMEOUT });
    assert.equal(result.confirmed, false, 'the confirming name is the 7th');
    assert.equal(result.ptr.length, many.length);
    const asked = new Set(dns.queries().filter((q) => q.type === 'A' && q.name.endsWith('.many.test')).map((q) => q.name));
    assert.deepEqual([...asked].sort(), many.slice(0, MAX_PTR_NAMES).sort());
  });

  test('the confirmed names feed the HELO checks: our name from a confirmed host of ours is fine', async () => {
    const { names } = await checkFcrdns('192.0.2.10', { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(heloChecks('mail.good.test', '192.0.2.10', names, ['mail.good.test']), []);
    const liar = await checkFcrdns('192.0.2.11', { dns: client, timeoutMs: TIMEOUT });
    assert.deepEqual(heloChecks('mail.good.test', '192.0.2.11', liar.names, ['mail.good.test']), ['helo-our-name']);
  });
});

/** Polls until `check` holds or the time is up. */
async function eventually(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const checked = (r: GreylistCheck): Extract<GreylistCheck, { status: 'checked' }> => {
  assert.equal(r.status, 'checked', JSON.stringify(r));
  return r as Extract<GreylistCheck, { status: 'checked' }>;
};

describe('greylisting against a real redis-server', () => {
  const PREFIX = 'test:greylist:';
  let server: RedisServer;
  let redis: Redis;
  let admin: Redis;
  before(async () => {
    server = await startRedis();
    // As directory/cache.ts connects: no offline queue, no retries per command, reconnects in the background.
    redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, retryStrategy: () => 100 });
    redis.on('error', () => undefined);
    admin = new Redis(server.url, { maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    admin.on('error', () => undefined);
    await eventually('redis ready', 5000, () => redis.status === 'ready' && admin.status === 'ready');
  });
  after(async () => {
    redis?.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  test('first attempt 451, an early retry 451, after the 1 s delay it passes; the entry is kept under the prefix', async () => {
    const timing = { delaySeconds: 1, lifetimeSeconds: 30 };
    const { log } = memoryLog();
    const greylist = createGreylist(timing, { store: redisGreylistStore(redis, { prefix: PREFIX }), whitelist: greylistWhitelist([], []), log });
    const attempt = { ip: '198.51.100.7', sender: 'Alice@Sender.Example', recipient: 'bob@ours.example' };

    const first = await greylist.check(attempt);
    assert.equal(first.action, 'defer');
    assert.ok(first.action === 'defer' && first.error.reply === 451 && first.error.status === '4.7.1' && first.error.temporary);
    assert.equal(first.action === 'defer' && first.retryAfterSeconds, 1);

    const key = PREFIX + greylistKey(greylistTriplet(attempt.ip, attempt.sender, attempt.recipient));
    assert.deepEqual(await admin.keys(`${PREFIX}*`), [key]);
    const ttl = await admin.pttl(key);
    assert.ok(ttl > 28_000 && ttl <= 30_000, `TTL ${ttl} ms`);

    const early = await greylist.check({ ...attempt, ip: '198.51.100.200' }); // same /24
    assert.equal(early.action, 'defer');

    await sleep(1100);
    assert.deepEqual(await greylist.check(attempt), { action: 'pass' });
    const stored = await admin.get(key);
    assert.match(stored ?? '', /^\d+,\d+,1$/);
    assert.deepEqual(await greylist.check({ ...attempt, sender: 'alice@sender.example' }), { action: 'pass' }, 'case-insensitive');

    // Another recipient, another network: new triplets, greylisted again.
    assert.equal((await greylist.check({ ...attempt, recipient: 'carol@ours.example' })).action, 'defer');
    assert.equal((await greylist.check({ ...attempt, ip: '198.51.101.7' })).action, 'defer');
  });

  test('exemptions never touch the store', async () => {
    const greylist = createGreylist({ delaySeconds: 1, lifetimeSeconds: 30 }, {
      store: redisGreylistStore(redis, { prefix: `${PREFIX}ex:` }), whitelist: greylistWhitelist(['203.0.113.0/24'], ['partner.example']),
    });
    assert.deepEqual(await greylist.check({ ip: '203.0.113.5', sender: 'x@y.example', recipient: 'a@ours.example' }), { action: 'exempt', reason: 'network' });
    assert.deepEqual(await greylist.check({ ip: '192.0.2.5', sender: 'x@mx.partner.example', recipient: 'a@ours.example' }), { action: 'exempt', reason: 'domain' });
    assert.deepEqual(await greylist.check({ ip: '192.0.2.5', sender: 'x@y.example', recipient: 'a@ours.example', spfPass: true }), { action: 'exempt', reason: 'spf-pass' });
    assert.deepEqual(await admin.keys(`${PREFIX}ex:*`), []);
  });

  test('entries expire in Redis after their lifetime; the triplet is then greylisted again', async () => {
    const store = redisGreylistStore(redis, { prefix: `${PREFIX}exp:` });
    const timing = { delaySeconds: 1, lifetimeSeconds: 1 };
    assert.equal(checked(await store.check('k', Date.now(), timing)).pass, false);
    assert.equal(await admin.exists(`${PREFIX}exp:k`), 1);
    await sleep(1100);
    assert.equal(await admin.exists(`${PREFIX}exp:k`), 0, 'gone after the lifetime');
    const again = checked(await store.check('k', Date.now(), timing));
    assert.equal(again.pass, false);
    assert.equal(again.retryAfterSeconds, 1);
  });

  test('the Lua script keeps exactly the entries decide() computes (fake clock, same sequence as the in-process store)', async () => {
    const timing = { delaySeconds: 60, lifetimeSeconds: 600 };
    const redisStore = redisGreylistStore(redis, { prefix: `${PREFIX}lua:` });
    const memory = memoryGreylistStore();
    const t0 = 1_700_000_000_000;
    // Offsets in seconds: first sight, early, just before, at the delay, later passes, after the lifetime, a damaged value.
    const steps = [0, 1, 59.999, 60, 61, 500, 1100, 1699.999, 1700, 1701, 1760, 1760.5];
    let expected: GreylistEntry | null = null;
    for (const s of steps) {
      const now = t0 + Math.round(s * 1000);
      const fromRedis = checked(await redisStore.check('k', now, timing));
      const fromMemory = checked(await memory.check('k', now, timing));
      const pure = decide(expected, now, timing);
      assert.deepEqual(fromRedis, { status: 'checked', ...pure }, `at +${s} s`);
      assert.deepEqual(fromMemory, fromRedis, `at +${s} s`);
      assert.equal(await admin.get(`${PREFIX}lua:k`), formatEntry(pure.entry), `stored at +${s} s`);
      expected = pure.entry;
    }
    // A damaged value counts as no entry and is overwritten.
    await admin.set(`${PREFIX}lua:k`, 'garbage');
    const fresh = checked(await redisStore.check('k', t0 + 2_000_000, timing));
    assert.deepEqual(fresh, { status: 'checked', ...decide(null, t0 + 2_000_000, timing) });
    assert.equal(await admin.get(`${PREFIX}lua:k`), formatEntry(fresh.entry));
  });

  test('passes remembered in process: no round trip while remembered, Redis asked again (and its lifetime renewed) after ttlMs', async () => {
    const timing = { delaySeconds: 1, lifetimeSeconds: 30 };
    const key = `${PREFIX}pc:k`;
    const store = passCachedStore(redisGreylistStore(redis, { prefix: `${PREFIX}pc:` }), { ttlMs: 1500 });
    const t = Date.now();
    assert.equal(checked(await store.check('k', t, timing)).pass, false);
    assert.equal(checked(await store.check('k', t + 1000, timing)).pass, true);
    await admin.del(key); // as an admin clearing the triplet by hand
    assert.equal(checked(await store.check('k', t + 1200, timing)).pass, true, 'remembered: Redis not asked');
    assert.equal(await admin.exists(key), 0, 'and not written');
    assert.equal(checked(await store.check('k', t + 2600, timing)).pass, false, 'after ttlMs Redis is asked: first sight again');
    assert.equal(await admin.exists(key), 1);
    const unremembered = redisGreylistStore(redis, { prefix: `${PREFIX}pc:` });
    assert.equal(passCachedStore(unremembered, { ttlMs: 0 }), unremembered);
  });

  test('a Redis that lost its scripts (SCRIPT FLUSH) is sent the script again', async () => {
    await admin.script('FLUSH');
    const store = redisGreylistStore(redis, { prefix: `${PREFIX}flush:` });
    assert.equal(checked(await store.check('k', Date.now(), { delaySeconds: 1, lifetimeSeconds: 5 })).pass, false);
    assert.equal(await admin.exists(`${PREFIX}flush:k`), 1);
  });

  test('a Redis that hangs: unavailable after the store\'s timeout', { timeout: 10_000 }, async () => {
    const paused = server as unknown as { pause(): Promise<void>; resume(): void };
    assert.equal(typeof paused.pause, 'function');
    // A connection with an offline queue and no command timeout: only the store's own timeout can end the wait.
    const patient = new Redis(server.url, { retryStrategy: () => 100 });
    patient.on('error', () => undefined);
    try {
      await eventually('ready', 5000, () => patient.status === 'ready');
      await paused.pause();
      try {
        const started = Date.now();
        const result = await redisGreylistStore(patient, { prefix: PREFIX, timeoutMs: 300 }).check('hang', Date.now(), { delaySeconds: 1, lifetimeSeconds: 5 });
        const elapsed = Date.now() - started;
        assert.equal(result.status, 'unavailable');
        assert.match(result.status === 'unavailable' ? result.error : '', /300 ms/);
        assert.ok(elapsed >= 250 && elapsed < 1500, `${elapsed} ms`);
      } finally {
        paused.resume();
      }
    } finally {
      patient.disconnect();
    }
  });

  test('Redis stopped: unavailable at once, the mail is not refused, one warning; back when Redis is', async () => {
    const { log, lines } = memoryLog();
    const timing = { delaySeconds: 1, lifetimeSeconds: 30 };
    const greylist = createGreylist(timing, { store: redisGreylistStore(redis, { prefix: `${PREFIX}down:` }), whitelist: greylistWhitelist([], []), log });
    const attempt = { ip: '192.0.2.44', sender: null, recipient: 'postmaster@ours.example' };
    await server.stop();
    try {
      await eventually('the client to notice', 5000, () => redis.status !== 'ready');
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const outcome = await greylist.check(attempt);
        assert.equal(outcome.action, 'unavailable', JSON.stringify(outcome));
        assert.ok(Date.now() - started < 900, `answered at once, not after the store's 1 s timeout (${Date.now() - started} ms)`);
      }
      const warnings = lines().filter((l) => l.level === WARN);
      assert.equal(warnings.length, 1, 'one warning per outage');
      assert.match(warnings[0]!.msg, /greylist store unavailable/);
    } finally {
      await server.start();
    }
    await eventually('redis ready again', 10_000, () => redis.status === 'ready');
    assert.equal((await greylist.check(attempt)).action, 'defer', 'greylisting again (the restarted redis is empty)');
    assert.ok(lines().some((l) => l.msg === 'greylist store is back'));
  });
});

describe('greylisting in process (real clock)', () => {
  test('first attempt deferred, early retry deferred, pass after the 1 s delay', async () => {
    const store: GreylistStore = memoryGreylistStore();
    const greylist = createGreylist({ delaySeconds: 1, lifetimeSeconds: 60 }, { store, whitelist: greylistWhitelist([], []) });
    const attempt = { ip: '2001:db8:7:7::1', sender: 'a@b.example', recipient: 'c@ours.example' };
    assert.equal((await greylist.check(attempt)).action, 'defer');
    assert.equal((await greylist.check({ ...attempt, ip: '2001:db8:7:7::ffff' })).action, 'defer', 'same /64');
    await sleep(1050);
    assert.deepEqual(await greylist.check(attempt), { action: 'pass' });
    assert.equal((await greylist.check({ ...attempt, ip: '2001:db8:7:8::1' })).action, 'defer', 'another /64');
  });
});
