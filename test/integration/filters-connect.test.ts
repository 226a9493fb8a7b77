// Connection- and envelope-stage filters on the MX listener: a client that talks before the
// greeting (with smtp.greetingDelayMs) is refused with 554 5.5.1 and closed, as postscreen's
// pregreet test does (filters.earlyTalker off: smtp-server's own 421); DNS lists against a loopback
// DNS server (554 5.7.1 naming the list; an allow list; a list that never answers refuses nobody);
// greylisting in process and in Redis (451 4.7.1, then 250 after the delay), its exemptions, and
// Redis down letting mail through.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { reverseName, startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply, marker, sendOnce, simpleMessage, waitForMessages } from '../fixtures/smtp-helpers.ts';

/** Connects, optionally writes at once, and collects what the server says until it closes or `ms` pass. */
function talk(port: number, early: string | null, ms: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (early !== null) socket.write(early);
    });
    setTimeout(() => {
      socket.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

describe('early talkers', () => {
  let slapd: Slapd;
  let strict: TestServer;
  let lenient: TestServer;

  before(async () => {
    slapd = await startSlapd();
    strict = await startServer(slapd, { smtp: { greetingDelayMs: 400 } });
    lenient = await startServer(slapd, { smtp: { greetingDelayMs: 400 }, filters: { earlyTalker: false } });
  });
  after(async () => {
    await strict?.stop();
    await lenient?.stop();
    await slapd?.stop();
  });

  test('a command before the greeting: 554 5.5.1 and the connection closed, no greeting', async () => {
    const { text, closed } = await talk(strict.smtpPort, 'EHLO hasty.example\r\n', 1500);
    assert.match(text, /^554 5\.5\.1 .*talked before the greeting\r\n$/);
    assert.ok(closed, 'closed by the server');
  });

  test('a patient client is greeted', async () => {
    const { text } = await talk(strict.smtpPort, null, 900);
    assert.match(text, /^220 /);
  });

  test('with filters.earlyTalker off: smtp-server\'s own temporary 421 instead', async () => {
    const { text } = await talk(lenient.smtpPort, 'EHLO hasty.example\r\n', 1200);
    assert.match(text, /^421 .*too soon\r\n/);
    assert.doesNotMatch(text, /^554/m);
  });
});

describe('DNS lists and greylisting at RCPT', () => {
  let slapd: Slapd;
  let dns: TestDns;
  let redis: RedisServer;
  const servers: TestServer[] = [];
  const start = async (filters: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const server = await startServer(slapd, { filters, delivery: { dnsServers: [dns.server] }, relay: { trustedNetworks: [] }, ...extra });
    servers.push(server);
    return server;
  };

  before(async () => {
    slapd = await startSlapd();
    redis = await startRedis();
    dns = await startDns({
      a: { '1.0.0.127.bl.test': ['127.0.0.2'], '1.0.0.127.wl.test': ['127.0.9.1'] },
      txt: { '1.0.0.127.bl.test': ['listed for testing'], 'spf-pass.example': ['v=spf1 ip4:127.0.0.1 -all'] },
    });
    await slapd.ldapmodify('dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: TRUE\n');
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await dns?.close();
    await redis?.stop();
    await slapd?.stop();
  });

  async function rcpt(server: TestServer, from: string, to: string) {
    const t = await Transcript.open(server.smtpPort);
    try {
      await t.hello();
      assertReply(await t.command(`MAIL FROM:<${from}>`), 250, null, 'MAIL');
      return await t.command(`RCPT TO:<${to}>`);
    } finally {
      t.close();
    }
  }

  test('a client on a block list at the reject score: 554 5.7.1 naming the list; an allow list can keep it in', async () => {
    const blocked = await start({ dnsbl: { zones: [{ zone: 'bl.test', weight: 10 }], rejectScore: 10 } });
    const reply = await rcpt(blocked, 'someone@outside.test', 'alice@example.org');
    assertReply(reply, 554, '5.7.1', 'listed');
    assert.match(reply.text, /bl\.test/);
    const allowed = await start({ dnsbl: { zones: [{ zone: 'bl.test', weight: 10 }, { zone: 'wl.test', weight: -5 }], rejectScore: 10 } });
    assertReply(await rcpt(allowed, 'someone@outside.test', 'alice@example.org'), 250, null, 'score 5 under 10');
    const unlisted = await start({ dnsbl: { zones: [{ zone: 'other.test', weight: 10 }], rejectScore: 10 } });
    assertReply(await rcpt(unlisted, 'someone@outside.test', 'alice@example.org'), 250, null, 'not listed');
  });

  test('a list that never answers: the client is not refused (DNS trouble is never a rejection)', async () => {
    dns.set({
      a: { '1.0.0.127.bl.test': ['127.0.0.2'] }, drop: ['*.slow.test'],
      txt: { 'spf-pass.example': ['v=spf1 ip4:127.0.0.1 -all'] },
    });
    const slow = await start({ dnsbl: { zones: [{ zone: 'slow.test', weight: 10 }], rejectScore: 10, timeoutMs: 300 } });
    assertReply(await rcpt(slow, 'someone@outside.test', 'alice@example.org'), 250, null, 'unknown is not listed');
  });

  test('FCrDNS and the HELO name as score inputs: no PTR plus a bare HELO reach the reject score; a confirmed PTR does not', async () => {
    const scored = await start({ dnsbl: { noFcrdnsWeight: 6, badHeloWeight: 5, rejectScore: 10 } });
    const ask = async (helo: string) => {
      const t = await Transcript.open(scored.smtpPort);
      try {
        await t.hello(helo);
        await t.command('MAIL FROM:<x@outside.test>');
        return await t.command('RCPT TO:<alice@example.org>');
      } finally {
        t.close();
      }
    };
    const refused = await ask('nodots');
    assertReply(refused, 554, '5.7.1', 'no PTR (6) + HELO not a FQDN (5)');
    assert.match(refused.text, /reverse DNS not confirmed, HELO helo-not-fqdn/);
    assertReply(await ask('mail.outside.test'), 250, null, 'no PTR alone (6) is under 10');
    dns.set({
      ptr: { [reverseName('127.0.0.1')]: ['mail.outside.test'] }, a: { 'mail.outside.test': ['127.0.0.1'] },
      txt: { 'spf-pass.example': ['v=spf1 ip4:127.0.0.1 -all'] },
    });
    const confirmed = await start({ dnsbl: { noFcrdnsWeight: 6, badHeloWeight: 5, rejectScore: 10 } });
    const t = await Transcript.open(confirmed.smtpPort);
    try {
      await t.hello('nodots');
      await t.command('MAIL FROM:<x@outside.test>');
      assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, null, 'confirmed PTR: only the HELO (5)');
    } finally {
      t.close();
    }
  });

  for (const [store, extra] of [['in-process', {}], ['Redis', 'redis']] as const) {
    test(`greylisting (${store} store): first attempt 451 4.7.1, an early retry too, a retry after the delay 250 and delivered`, async () => {
      const server = await start({ greylist: { enabled: true, delaySeconds: 1, optOutAttribute: 'description' } }, extra === 'redis' ? { cache: { redis: redis.url } } : {});
      const sender = `grey-${store.replace(/\W/g, '')}@outside.test`;
      const first = await rcpt(server, sender, 'alice@example.org');
      assertReply(first, 451, '4.7.1', 'first');
      assertReply(await rcpt(server, sender, 'alice@example.org'), 451, '4.7.1', 'too early');
      await new Promise((r) => setTimeout(r, 1200));
      const mark = marker('grey');
      const sent = await sendOnce(server.smtpPort, sender, ['alice@example.org'], simpleMessage(mark));
      assertReply(sent.rcpts[0]!, 250, null, 'after the delay');
      assertReply(sent.end!, 250, null, 'queued');
      await waitForMessages(server.maildir('alice'), mark, 1);
      assertReply(await rcpt(server, 'another@outside.test', 'alice@example.org'), 451, '4.7.1', 'another sender is a new triplet');
    });
  }

  test('greylisting exemptions: an opted-out recipient, an SPF pass, a whitelisted network; Redis down lets mail through', async () => {
    const server = await start({ greylist: { enabled: true, delaySeconds: 60, optOutAttribute: 'description' } }, { cache: { redis: redis.url } });
    assertReply(await rcpt(server, 'x@outside.test', 'bob@example.org'), 250, null, 'bob opted out (description: TRUE)');
    assertReply(await rcpt(server, 'news@spf-pass.example', 'alice@example.org'), 250, null, 'SPF pass');
    const network = await start({ greylist: { enabled: true, delaySeconds: 60, networks: ['127.0.0.0/8'] } });
    assertReply(await rcpt(network, 'x@outside.test', 'alice@example.org'), 250, null, 'whitelisted network');
    await redis.stop();
    try {
      assertReply(await rcpt(server, 'fresh@outside.test', 'alice@example.org'), 250, null, 'Redis down: accepted, not greylisted');
    } finally {
      await redis.start();
    }
  });
});
