// Forwarding to other domains with SRS (and bounces to SRS addresses turned back), and mailHost
// clusters: two ldapmta nodes on one slapd and one Redis route each user's mail to its home node,
// and a node that would pass a message back to itself stops with 5.4.6. Real SMTP on loopback
// throughout: a loopback DNS server answers MX queries, a sink plays the other domains' MX.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { freePort } from '../harness/ports.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { startSink, type SmtpSink } from '../harness/smtp-sink.ts';
import { assertReply, marker, messagesWith, queueIdOf, simpleMessage, todoFiles, waitFor, waitForMessages, sendOnce } from '../fixtures/smtp-helpers.ts';

const send = sendOnce;

const OTHER_DOMAINS = ['elsewhere.test', 'partner.test', 'sender.test'];

async function otherDomainsDns(): Promise<TestDns> {
  return startDns({
    mx: Object.fromEntries(OTHER_DOMAINS.map((d) => [d, [{ preference: 10, exchange: 'mx.sink.test' }]])),
    a: { 'mx.sink.test': ['127.0.0.1'] },
  });
}

/** A list without a bounceadmin, with a local and an outside member. */
const FRIENDS = [
  'dn: cn=friends,ou=people,dc=example,dc=org', 'objectClass: inetOrgPerson', 'objectClass: qmailUser', 'objectClass: qmailGroup',
  'cn: friends', 'sn: friends', 'uid: friends', 'mail: friends@example.org', 'mailAlternateAddress: friends-list@example.org',
  'mailMessageStore: example.org/friends/',
  'dnmember: uid=alice,ou=people,dc=example,dc=org', 'rfc822member: outside@partner.test', '',
].join('\n');

const SRS0 = /^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=sender\.test=someone@mx1\.example\.org$/;

describe('forwarding to another domain rewrites the sender with SRS; bounces to it come back', () => {
  let slapd: Slapd;
  let dns: TestDns;
  let sink: SmtpSink;
  let server: TestServer;

  before(async () => {
    slapd = await startSlapd();
    await slapd.ldapadd(FRIENDS);
    dns = await otherDomainsDns();
    sink = await startSink();
    server = await startServer(slapd, {
      delivery: { dnsServers: [dns.server], remotePort: sink.port },
      srs: { secret: 'forward-test-secret' },
    });
  });
  after(async () => {
    await server?.stop();
    await sink?.close();
    await dns?.close();
    await slapd?.stop();
  });

  const forwardedWith = (subject: string) => waitFor(`the forwarded copy of ${subject} at the remote MX`, async () => sink.messages.find((m) => m.body.includes(subject)) ?? null, 10_000);

  test('forward-only (carol): the copy leaves with an SRS0 sender, Delivered-To on top, the rest byte-identical; no local copy', async () => {
    const subject = marker('srs-carol');
    const data = simpleMessage(subject, 'line one\r\n.starts with a dot\r\n');
    const result = await send(server.smtpPort, 'someone@sender.test', ['carol@example.org'], data);
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const copy = await forwardedWith(subject);
    assert.deepEqual(copy.recipients, ['carol@elsewhere.test']);
    assert.match(copy.sender, SRS0);
    const text = copy.body.toString('latin1');
    assert.ok(text.startsWith('Delivered-To: carol@example.org\r\nReceived: '), JSON.stringify(text.slice(0, 80)));
    assert.ok(text.endsWith(data.slice(0, -3)), 'the message as sent, after our trace fields');
  });

  test('a bounce to the SRS address is accepted from anyone and delivered to the original sender', async () => {
    const subject = marker('srs-bounce');
    await send(server.smtpPort, 'someone@sender.test', ['carol@example.org'], simpleMessage(subject));
    const copy = await forwardedWith(subject);
    const bounceSubject = marker('srs-returned');
    const result = await send(server.smtpPort, '', [copy.sender], simpleMessage(bounceSubject, 'your mail could not be delivered\r\n'));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT to our SRS address');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const returned = await forwardedWith(bounceSubject);
    assert.deepEqual(returned.recipients, ['someone@sender.test']);
    assert.equal(returned.sender, '');
  });

  test('a forged or altered SRS address is refused at RCPT with 550 5.1.1', async () => {
    const subject = marker('srs-forged');
    await send(server.smtpPort, 'someone@sender.test', ['carol@example.org'], simpleMessage(subject));
    const copy = await forwardedWith(subject);
    const altered = copy.sender.replace('=sender.test=someone@', '=sender.test=victim@');
    const forged = 'SRS0=abcd=AA=sender.test=someone@mx1.example.org';
    for (const address of [altered, forged]) {
      const result = await send(server.smtpPort, '', [address], simpleMessage('never'));
      assertReply(result.rcpts[0]!, 550, '5.1.1', address);
    }
  });

  test('mailbox + forward (dave): a local copy, and a copy for dave@partner.test with an SRS sender', async () => {
    const subject = marker('srs-dave');
    await send(server.smtpPort, 'someone@sender.test', ['dave@example.org'], simpleMessage(subject));
    await waitForMessages(server.maildir('dave'), subject);
    const copy = await forwardedWith(subject);
    assert.deepEqual(copy.recipients, ['dave@partner.test']);
    assert.match(copy.sender, SRS0);
  });

  test('a forward that pushes the Received and Delivered-To fields past the limit is a loop: 5.4.6 DSN, nothing sent', async () => {
    const subject = marker('hops');
    const received = Array.from({ length: 100 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Mon, 30 Nov 2026 00:00:00 +0000\r\n`).join('');
    const result = await send(server.smtpPort, 'bob@example.org', ['carol@example.org'], `${received}${simpleMessage(subject)}`);
    assertReply(result.end!, 250, '2.6.0', '100 Received fields are still accepted');
    const [dsn] = await waitForMessages(server.maildir('bob'), subject, 1, 10_000);
    assert.match(dsn!.body, /Status: 5\.4\.6/);
    assert.match(dsn!.body, /mail loop: 102 Received and Delivered-To fields/);
    assert.equal(sink.messages.filter((m) => m.body.includes(subject)).length, 0);
  });

  test('a list without a bounceadmin: the outside member\'s copy leaves with an SRS0 sender (as a forward does); the local member gets the message too', async () => {
    const subject = marker('list-srs');
    const result = await send(server.smtpPort, 'someone@sender.test', ['friends@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const copy = await forwardedWith(subject);
    assert.deepEqual(copy.recipients, ['outside@partner.test']);
    assert.match(copy.sender, SRS0);
    assert.match(copy.body.toString('latin1'), /^Delivered-To: friends@example\.org\r\nPrecedence: bulk\r\n/);
    await waitForMessages(server.maildir('alice'), subject, 1, 10_000);
  });

  test('a local sender is not rewritten (its own SPF already covers us)', async () => {
    const subject = marker('srs-local');
    await send(server.smtpPort, 'bob@example.org', ['carol@example.org'], simpleMessage(subject));
    const copy = await forwardedWith(subject);
    assert.equal(copy.sender, 'bob@example.org');
  });
});

describe('mailHost cluster: two nodes on one directory and one Redis', () => {
  let slapd: Slapd;
  let redis: RedisServer;
  let dns: TestDns;
  let sink: SmtpSink;
  let mx1: TestServer;
  let mx2: TestServer;
  let mx3: TestServer;
  let mx4: TestServer;

  before(async () => {
    slapd = await startSlapd();
    redis = await startRedis();
    dns = await otherDomainsDns();
    sink = await startSink();
    const [port1, port2, port3, port4] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const node = (hostname: string, port: number, hostMap: Record<string, string>) => startServer(slapd, {
      hostname,
      listen: { smtp: `127.0.0.1:${port}` },
      cache: { redis: redis.url, maxEntries: 0 },
      delivery: { dnsServers: [dns.server], remotePort: sink.port, hostMap },
      srs: { secret: 'cluster-secret' },
    });
    mx1 = await node('mx1.example.org', port1, { 'mx2.example.org': `127.0.0.1:${port2}` });
    mx2 = await node('mx2.example.org', port2, { 'mx1.example.org': `127.0.0.1:${port1}` });
    // A misconfigured node: it believes mx2.example.org is at its own address.
    mx3 = await node('mx3.example.org', port3, { 'mx2.example.org': `127.0.0.1:${port3}` });
    // Another: neither its hostMap nor DNS knows mx2.example.org.
    mx4 = await node('mx4.example.org', port4, {});
  });
  after(async () => {
    await mx1?.stop();
    await mx2?.stop();
    await mx3?.stop();
    await mx4?.stop();
    await sink?.close();
    await dns?.close();
    await redis?.stop();
    await slapd?.stop();
  });

  test('mail for judy (mailHost mx2) sent to mx1 lands in mx2\'s Maildir, marked with the hop', async () => {
    const subject = marker('cluster-judy');
    const result = await send(mx1.smtpPort, 'someone@sender.test', ['judy@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data at mx1');
    const [copy] = await waitForMessages(mx2.maildir('judy'), subject, 1, 10_000);
    assert.match(copy!.header, /^X-LdapMTA-Cluster-Hop: mx1\.example\.org judy@example\.org$/m);
    assert.match(copy!.header, /^Return-Path: <someone@sender\.test>$/m, 'the envelope sender is kept between nodes');
    assert.deepEqual(await messagesWith(mx1.maildir('judy'), subject), [], 'no copy on mx1');
  });

  test('mail for alice (mailHost mx1) sent to mx2 lands in mx1\'s Maildir', async () => {
    const subject = marker('cluster-alice');
    const result = await send(mx2.smtpPort, 'someone@sender.test', ['alice@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data at mx2');
    await waitForMessages(mx1.maildir('alice'), subject, 1, 10_000);
    assert.deepEqual(await messagesWith(mx2.maildir('alice'), subject), [], 'no copy on mx2');
  });

  test('a node that would pass a message back to itself stops at the second hop: 5.4.6 DSN to the sender', async () => {
    const subject = marker('cluster-loop');
    const result = await send(mx3.smtpPort, 'someone@sender.test', ['judy@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data at mx3');
    const dsn = await waitFor('the DSN at the sender\'s MX', async () => sink.messages.find((m) => m.body.includes(subject) && m.sender === '') ?? null, 10_000);
    assert.deepEqual(dsn.recipients, ['someone@sender.test']);
    const text = dsn.body.toString('latin1');
    assert.match(text, /Status: 5\.4\.6/);
    assert.match(text, /cluster loop/);
    assert.equal(text.match(/^X-LdapMTA-Cluster-Hop: mx3\.example\.org judy@example\.org$/gm)?.length, 1, 'it went round exactly once');
    assert.deepEqual(await messagesWith(mx2.maildir('judy'), subject), []);
  });

  test('a mailHost that DNS does not know (NXDOMAIN): the mail waits with 4.4.3 naming the mailHost, no bounce', async () => {
    const subject = marker('cluster-nxdomain');
    const result = await send(mx4.smtpPort, 'someone@sender.test', ['judy@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data at mx4');
    const id = queueIdOf(result.end!);
    const todo = await waitFor('the attempt to be recorded', async () => {
      const found = (await todoFiles(mx4.config.spool)).find((t) => t.id === id);
      if (found === undefined) return 'gone' as const;
      return found.recipients.every((r) => r.attempts >= 1) ? found : null;
    }, 10_000);
    assert.notEqual(todo, 'gone', 'the message left the queue (bounced) instead of waiting');
    if (todo === 'gone') return;
    const [r] = todo.recipients;
    assert.deepEqual([r!.state, r!.lastError?.status], ['pending', '4.4.3']);
    assert.match(r!.lastError?.text ?? '', /mx2\.example\.org not found \(the mailHost of the recipient; fix DNS or delivery\.hostMap\)/);
    assert.equal(sink.messages.some((m) => m.body.includes(subject)), false, 'no DSN went out');
  });
});
