// Directory-harvest protection on the MX listener: unknown recipients in one session are answered
// more slowly past filters.harvest.slowAfter and end the session with 421 4.7.0 at disconnectAfter;
// across sessions and nodes (a shared Redis) perIpPerHour does the same. Clients in
// relay.trustedNetworks are never slowed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply } from '../fixtures/smtp-helpers.ts';

const harvest = { slowAfter: 2, delayMs: 400, disconnectAfter: 4, perIpPerHour: 100 };

async function session(port: number) {
  const t = await Transcript.open(port);
  await t.hello();
  assertReply(await t.command('MAIL FROM:<probe@outside.test>'), 250, null, 'MAIL');
  return t;
}

async function timed(t: Transcript, line: string) {
  const started = Date.now();
  const reply = await t.command(line);
  return { reply, ms: Date.now() - started };
}

describe('directory-harvest protection', () => {
  let slapd: Slapd;
  let redis: RedisServer;
  let server: TestServer;
  let trusted: TestServer;
  let nodeA: TestServer;
  let nodeB: TestServer;

  before(async () => {
    slapd = await startSlapd();
    redis = await startRedis();
    server = await startServer(slapd, { filters: { harvest }, relay: { trustedNetworks: [] } });
    trusted = await startServer(slapd, { filters: { harvest }, relay: { trustedNetworks: ['127.0.0.0/8'] } });
    const shared = { filters: { harvest: { ...harvest, disconnectAfter: 50, perIpPerHour: 3 } }, relay: { trustedNetworks: [] }, cache: { redis: redis.url } };
    nodeA = await startServer(slapd, shared);
    nodeB = await startServer(slapd, shared);
  });
  after(async () => {
    for (const s of [server, trusted, nodeA, nodeB]) await s?.stop();
    await redis?.stop();
    await slapd?.stop();
  });

  test('in one session: quick 550s, then slowed ones past slowAfter, then 421 4.7.0 and the connection closed; known recipients unaffected before that', async () => {
    const t = await session(server.smtpPort);
    try {
      for (const n of [1, 2]) {
        const { reply, ms } = await timed(t, `RCPT TO:<nobody${n}@example.org>`);
        assertReply(reply, 550, '5.1.1', `unknown ${n}`);
        assert.ok(ms < 300, `not slowed yet (${ms} ms)`);
      }
      assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, null, 'a known recipient');
      const third = await timed(t, 'RCPT TO:<nobody3@example.org>');
      assertReply(third.reply, 550, '5.1.1', 'unknown 3');
      assert.ok(third.ms >= 380, `slowed (${third.ms} ms)`);
      const fourth = await t.command('RCPT TO:<nobody4@example.org>');
      assertReply(fourth, 421, '4.7.0', 'too many');
      await assert.rejects(t.command('NOOP'), /closed/);
    } finally {
      t.close();
    }
  });

  test('a trusted client is never slowed or dropped', async () => {
    const t = await session(trusted.smtpPort);
    try {
      for (let n = 1; n <= 6; n++) {
        const { reply, ms } = await timed(t, `RCPT TO:<nobody${n}@example.org>`);
        assertReply(reply, 550, '5.1.1', `unknown ${n}`);
        assert.ok(ms < 300, `not slowed (${ms} ms)`);
      }
    } finally {
      t.close();
    }
  });

  test('perIpPerHour counts across sessions and nodes through the shared Redis', async () => {
    for (const [port, n] of [[nodeA.smtpPort, 1], [nodeB.smtpPort, 2]] as const) {
      const t = await session(port);
      try {
        assertReply(await t.command(`RCPT TO:<gone${n}@example.org>`), 550, '5.1.1', `session ${n}`);
      } finally {
        t.close();
      }
    }
    const t = await session(nodeA.smtpPort);
    try {
      assertReply(await t.command('RCPT TO:<gone3@example.org>'), 421, '4.7.0', 'the third from this address this hour');
    } finally {
      t.close();
    }
  });
});
