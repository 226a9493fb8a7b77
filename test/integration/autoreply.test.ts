// Auto-replies from mailReplyText (erin in the sample directory: deliveryMode reply, a %HEADER%
// text with "Subject: Away: %SUBJECT%"): one per sender per period, with the disk memory and with
// Redis, never to lists, bulk mail, automatic mail, the null sender or mail not addressed to her.
// Real SMTP in, real SMTP out: replies leave through a loopback DNS to a sink.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { startSink, type SmtpSink } from '../harness/smtp-sink.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply, marker, todoFiles, transaction, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

async function send(port: number, from: string, to: string, headers: string, subject: string): Promise<void> {
  const t = await Transcript.open(port);
  try {
    await t.hello();
    const data = `From: <${from || 'nobody@sender.test'}>\r\n${headers}Subject: ${subject}\r\nMessage-ID: <${subject}@sender.test>\r\n\r\nhello erin\r\n.\r\n`;
    const result = await transaction(t, from, [to], data);
    assertReply(result.end!, 250, '2.6.0', `end of data for ${subject}`);
    await t.command('QUIT').catch(() => undefined);
  } finally {
    t.close();
  }
}

const toErin = 'To: Erin <erin@example.org>\r\n';

describe('auto-reply', () => {
  let slapd: Slapd;
  let redis: RedisServer;
  let dns: TestDns;
  let sink: SmtpSink;
  let disk: TestServer;
  let shared: TestServer;

  before(async () => {
    slapd = await startSlapd();
    redis = await startRedis();
    dns = await startDns({ mx: { 'sender.test': [{ preference: 10, exchange: 'mx.sender.test' }] }, a: { 'mx.sender.test': ['127.0.0.1'] } });
    sink = await startSink();
    const delivery = { dnsServers: [dns.server], remotePort: sink.port };
    disk = await startServer(slapd, { delivery });
    shared = await startServer(slapd, { delivery, cache: { redis: redis.url, maxEntries: 0 } });
  });
  after(async () => {
    await disk?.stop();
    await shared?.stop();
    await sink?.close();
    await dns?.close();
    await redis?.stop();
    await slapd?.stop();
  });

  /** Delivers to erin on `server` and waits until its queue is empty (the reply, if any, has left). */
  async function deliver(server: TestServer, from: string, headers: string, subject: string): Promise<void> {
    await send(server.smtpPort, from, 'erin@example.org', headers, subject);
    await waitForMessages(server.maildir('erin'), subject);
    await waitFor('the queue to drain', async () => (await todoFiles(server.config.spool)).length === 0, 10_000);
  }

  const repliesTo = (address: string) => sink.messages.filter((m) => m.sender === '' && m.recipients.includes(address));

  test('the first message from a sender gets one reply in the user\'s format; the next ones within the period none', async () => {
    const from = `${marker('fan')}@sender.test`;
    const first = marker('first');
    await deliver(disk, from, toErin, first);
    const [reply] = await sink.waitFor(1).then(() => waitFor('the reply', async () => repliesTo(from)[0] ?? null, 10_000)).then((r) => [r]);
    const text = reply!.body.toString('utf8');
    assert.match(text, new RegExp(`^Subject: Away: ${first}\\r$`, 'm'));
    assert.match(text, /^Auto-Submitted: auto-replied\r$/m);
    assert.match(text, /^From: <erin@example\.org>\r$/m);
    assert.match(text, new RegExp(`^To: <${from}>\\r$`, 'm'));
    assert.match(text, new RegExp(`^In-Reply-To: <${first}@sender\\.test>\\r$`, 'm'));
    assert.match(text, /\r\n\r\nI am away until Monday\.\r\n$/);
    await deliver(disk, from, toErin, marker('second'));
    await deliver(disk, from, toErin, marker('third'));
    assert.equal(repliesTo(from).length, 1, 'one reply per sender per period');
  });

  const quiet: [string, string, string][] = [
    ['Precedence: bulk', `${toErin}Precedence: bulk\r\n`, 'bulk'],
    ['List-Id', `${toErin}List-Id: <news.sender.test>\r\n`, 'list'],
    ['Auto-Submitted: auto-generated', `${toErin}Auto-Submitted: auto-generated\r\n`, 'auto'],
    ['not addressed in To or Cc', 'To: undisclosed-recipients:;\r\n', 'bcc'],
  ];
  for (const [what, headers, tag] of quiet) {
    test(`no reply to a message with ${what}`, async () => {
      const from = `${marker(tag)}@sender.test`;
      await deliver(disk, from, headers, marker(tag));
      // The same sender with an ordinary message does get one: the refusal above was the rule's doing.
      const plain = marker(`${tag}-plain`);
      await deliver(disk, from, toErin, plain);
      await waitFor('the control reply', async () => repliesTo(from).length > 0, 10_000);
      assert.equal(repliesTo(from).length, 1);
      assert.match(repliesTo(from)[0]!.body.toString(), new RegExp(`^Subject: Away: ${plain}\r$`, 'm'), 'the reply answers the ordinary message');
    });
  }

  test('no reply to the null sender or to a machine sender', async () => {
    await deliver(disk, '', toErin, marker('null'));
    await deliver(disk, 'mailer-daemon@sender.test', toErin, marker('daemon'));
    await deliver(disk, 'news-request@sender.test', toErin, marker('request'));
    await deliver(disk, 'someone@sender.test', toErin, marker('control'));
    await waitFor('the control reply', async () => repliesTo('someone@sender.test').length > 0, 10_000);
    for (const address of ['mailer-daemon@sender.test', 'news-request@sender.test']) assert.deepEqual(repliesTo(address), [], address);
  });

  test('with Redis the memory is shared: a second node does not reply again', async () => {
    const from = `${marker('redis')}@sender.test`;
    await deliver(shared, from, toErin, marker('r1'));
    await waitFor('the reply', async () => repliesTo(from).length > 0, 10_000);
    await deliver(shared, from, toErin, marker('r2'));
    assert.equal(repliesTo(from).length, 1);
    const keys = await redisKeys(redis.port);
    assert.ok(keys.some((k) => k.startsWith('ldapmta:v1:reply:')), keys.join(' '));
  });
});

/** KEYS * over a raw RESP connection (the harness has no client). */
async function redisKeys(port: number): Promise<string[]> {
  const { Redis } = await import('ioredis');
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  await client.connect();
  try {
    return await client.keys('*');
  } finally {
    client.disconnect();
  }
}
