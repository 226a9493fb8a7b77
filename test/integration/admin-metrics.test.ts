// The admin listener's /metrics, /healthz and /readyz on a running server (issue 8, part 1): the
// Prometheus text after real SMTP traffic (accepted, refused by status, delivered locally with a
// latency, lookups by result and tier, queue and LDAP gauges), and readiness that follows the
// directory (down: 503 naming it once stale-if-error is over) and the spool (not writable: 503).
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRedis } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { assertReply, marker, sendOnce, simpleMessage, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** The value of one sample line `name{labels} value`; labels given in the order prom-client prints them. */
function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

describe('admin: metrics and health', () => {
  let slapd: Slapd;
  let server: TestServer;
  let strict: TestServer;
  const admin = (s: TestServer) => s.running.ports.admin!;

  before(async () => {
    slapd = await startSlapd();
    server = await startServer(slapd, { listen: { admin: '127.0.0.1:0' }, cache: { maxEntries: 1000 } });
    strict = await startServer(slapd, { listen: { admin: '127.0.0.1:0' }, cache: { maxEntries: 0, staleIfErrorSeconds: 0 } });
  });
  after(async () => {
    await server?.stop();
    await strict?.stop();
    await slapd?.stop();
  });

  test('/metrics counts what happened: connections, a 250, a 550 5.1.1 by stage, a local delivery with its latency, lookups by result and tier, and the gauges', async () => {
    const before = await get(admin(server), '/metrics');
    assert.equal(before.status, 200);
    assert.match(before.type, /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(before.body, 'ldapmta_messages_accepted_total{listener="smtp"}'), null, 'nothing accepted yet');

    const mark = marker('metrics');
    const sent = await sendOnce(server.smtpPort, 'sender@outside.test', ['alice@example.org', 'nobody@example.org'], simpleMessage(mark));
    assertReply(sent.rcpts[1]!, 550, '5.1.1', 'unknown');
    assertReply(sent.end!, 250, null, 'accepted');
    await waitForMessages(server.maildir('alice'), mark, 1);
    // Once more for alice: the second lookup is served from the in-process tier.
    assertReply((await sendOnce(server.smtpPort, 'sender@outside.test', ['alice@example.org'], simpleMessage(`${mark}-2`))).end!, 250, null, 'again');

    const text = await waitFor('the deliveries to be counted', async () => {
      const { body } = await get(admin(server), '/metrics');
      return (sample(body, 'ldapmta_deliveries_total{outcome="delivered",transport="local"}') ?? 0) >= 2 ? body : null;
    });
    assert.equal(sample(text, 'ldapmta_connections_total{listener="smtp"}'), 2);
    assert.equal(sample(text, 'ldapmta_sessions{listener="smtp"}'), 0);
    assert.equal(sample(text, 'ldapmta_messages_accepted_total{listener="smtp"}'), 2);
    assert.equal(sample(text, 'ldapmta_smtp_rejections_total{listener="smtp",stage="recipient",status="5.1.1"}'), 1);
    assert.equal(sample(text, 'ldapmta_delivery_latency_seconds_count{transport="local"}'), 2);
    assert.equal(sample(text, 'ldapmta_directory_lookups_total{result="unknown",tier="ldap"}'), 1);
    assert.ok((sample(text, 'ldapmta_directory_lookups_total{result="mailbox",tier="ldap"}') ?? 0) >= 1, text);
    assert.ok((sample(text, 'ldapmta_directory_lookups_total{result="mailbox",tier="memory"}') ?? 0) >= 1, text);
    assert.equal(sample(text, 'ldapmta_queue_messages{state="active"}'), 0);
    assert.equal(sample(text, 'ldapmta_queue_messages{state="deferred"}'), 0);
    assert.ok((sample(text, 'ldapmta_ldap_connections{state="open"}') ?? 0) >= 1, text);
    assert.equal(sample(text, 'ldapmta_redis_up'), null, 'no Redis configured: no redis_up sample');
    assert.ok(sample(text, 'ldapmta_process_resident_memory_bytes') !== null, 'process metrics');
  });

  test('with cache.redis: ldapmta_redis_up is 1 while Redis answers and 0 once it is gone', async () => {
    const redis = await startRedis();
    const cached = await startServer(slapd, { listen: { admin: '127.0.0.1:0' }, cache: { redis: redis.url } });
    try {
      assert.equal(sample((await get(admin(cached), '/metrics')).body, 'ldapmta_redis_up'), 1);
      await redis.stop();
      await waitFor('redis_up to drop', async () => sample((await get(admin(cached), '/metrics')).body, 'ldapmta_redis_up') === 0);
    } finally {
      await cached.stop();
      await redis.stop();
    }
  });

  test('/healthz answers while the process runs; /readyz is 200 with each check named', async () => {
    assert.deepEqual(JSON.parse((await get(admin(server), '/healthz')).body), { ok: true });
    const ready = await get(admin(strict), '/readyz');
    assert.equal(ready.status, 200, ready.body);
    const body = JSON.parse(ready.body) as { ready: boolean; checks: Record<string, string> };
    assert.equal(body.ready, true);
    assert.equal(body.checks.directory, 'ok');
    assert.equal(body.checks.spool, 'ok');
    assert.match(body.checks.listeners!, /^smtp:\d+$/);
  });

  test('/readyz with the directory down: 503 naming it once stale-if-error is over; still 200 within it', async () => {
    await slapd.stop();
    try {
      const down = await get(admin(strict), '/readyz');
      assert.equal(down.status, 503, down.body);
      assert.match((JSON.parse(down.body) as { checks: Record<string, string> }).checks.directory!, /^unreachable for \d+ s/);
      const within = await get(admin(server), '/readyz');
      assert.equal(within.status, 200, within.body);
      assert.match((JSON.parse(within.body) as { checks: Record<string, string> }).checks.directory!, /cached answers serve for up to 3600 s/);
    } finally {
      await slapd.start();
    }
    await waitFor('the directory to be ready again', async () => (await get(admin(strict), '/readyz')).status === 200);
  });

  test('/readyz with a spool that takes no writes: 503 naming the spool', async () => {
    const spool = strict.config.spool;
    renameSync(spool, `${spool}.away`);
    writeFileSync(spool, 'not a directory');
    try {
      const broken = await get(admin(strict), '/readyz');
      assert.equal(broken.status, 503, broken.body);
      assert.match((JSON.parse(broken.body) as { checks: Record<string, string> }).checks.spool!, /^not writable: ENOTDIR/);
    } finally {
      rmSync(spool);
      renameSync(`${spool}.away`, spool);
      mkdirSync(spool, { recursive: true });
    }
    assert.equal((await get(admin(strict), '/readyz')).status, 200);
  });
});
