// The network test doubles for remote delivery, exercised for real over loopback: the DNS server
// through node's own resolver (c-ares), the SMTP sink through nodemailer and raw transcripts.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { startDns, type DnsRecords, type TestDns } from '../harness/dns.ts';
import { REPO_ROOT } from '../harness/slapd.ts';
import { startSink, type SinkOptions, type SmtpSink } from '../harness/smtp-sink.ts';
import { Transcript } from '../harness/smtp-transcript.ts';

const RECORDS: DnsRecords = {
  mx: {
    'example.test': [{ preference: 20, exchange: 'mx2.example.test' }, { preference: 10, exchange: 'MX1.example.test.' }],
    'nullmx.test': [{ preference: 0, exchange: '' }],
  },
  a: { 'mx1.example.test': ['127.0.0.1', '192.0.2.5'], 'a-only.test': ['192.0.2.9'] },
  aaaa: { 'MX1.Example.Test.': ['::1', '2001:db8::25', '::ffff:192.0.2.1'] },
  servfail: ['broken.test'],
};

async function rejection(promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await promise;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  assert.fail('expected a rejection');
}

describe('test DNS server', () => {
  let dns: TestDns;
  let resolver: Resolver;
  before(async () => {
    dns = await startDns(RECORDS);
    resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([dns.server]);
  });
  after(async () => {
    await dns?.close();
  });

  test('MX, A and AAAA answers; names are case-insensitive and a trailing dot is ignored', async () => {
    assert.match(dns.server, /^127\.0\.0\.1:\d+$/);
    const mx = await resolver.resolveMx('Example.TEST.');
    assert.deepEqual(mx.sort((x, y) => x.priority - y.priority), [
      { exchange: 'MX1.example.test', priority: 10 },
      { exchange: 'mx2.example.test', priority: 20 },
    ]);
    assert.deepEqual(await resolver.resolve4('mx1.example.test'), ['127.0.0.1', '192.0.2.5']);
    assert.deepEqual(await resolver.resolve4('mx1.example.test', { ttl: true }), [
      { address: '127.0.0.1', ttl: 60 }, { address: '192.0.2.5', ttl: 60 },
    ]);
    assert.deepEqual(await resolver.resolve6('mx1.example.test'), ['::1', '2001:db8::25', '::ffff:192.0.2.1']);
  });

  test('NXDOMAIN, NODATA and SERVFAIL come back as ENOTFOUND, ENODATA and ESERVFAIL', async () => {
    assert.equal((await rejection(resolver.resolveMx('nowhere.test'))).code, 'ENOTFOUND');
    assert.equal((await rejection(resolver.resolve4('nowhere.test'))).code, 'ENOTFOUND');
    assert.equal((await rejection(resolver.resolveMx('a-only.test'))).code, 'ENODATA');
    assert.equal((await rejection(resolver.resolve6('a-only.test'))).code, 'ENODATA');
    assert.equal((await rejection(resolver.resolveTxt('example.test'))).code, 'ENODATA');
    assert.equal((await rejection(resolver.resolveMx('broken.test'))).code, 'ESERVFAIL');
  });

  test('a null MX (RFC 7505) is served as preference 0, exchange "."', async () => {
    assert.deepEqual(await resolver.resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
  });

  test('queries() lists every question; set() replaces the records', async () => {
    assert.ok(dns.queries().some((q) => q.name === 'example.test' && q.type === 'MX'), JSON.stringify(dns.queries()));
    assert.ok(dns.queries().some((q) => q.name === 'example.test' && q.type === 'TXT'));
    dns.set({ mx: { 'example.test': [{ preference: 5, exchange: 'new.example.test' }] } });
    assert.deepEqual(await resolver.resolveMx('example.test'), [{ exchange: 'new.example.test', priority: 5 }]);
    assert.equal((await rejection(resolver.resolve4('mx1.example.test'))).code, 'ENOTFOUND');
    assert.throws(() => dns.set({ a: { 'x.test': ['not-an-ip'] } }), /bad A record/);
    dns.set(RECORDS);
  });

  test('answers beyond 512 bytes are sent whole over UDP (no TCP fallback needed)', async () => {
    const many = Array.from({ length: 60 }, (_, i) => `10.0.0.${i + 1}`);
    dns.set({ ...RECORDS, a: { ...RECORDS.a, 'many.test': many } });
    assert.deepEqual(await resolver.resolve4('many.test'), many);
    dns.set(RECORDS);
  });

  test('malformed packets are ignored and the server keeps answering', async () => {
    const socket = dgram.createSocket('udp4');
    const garbage = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(12, 0xff), Buffer.from('000001000001000000000000c00c00010001', 'hex'),
      Buffer.from('0000010000010000000000003f61', 'hex')];
    for (const packet of garbage) await new Promise((resolve) => socket.send(packet, dns.port, '127.0.0.1', resolve));
    socket.close();
    assert.deepEqual(await resolver.resolve4('a-only.test'), ['192.0.2.9']);
  });
});

const tls = {
  key: readFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.key')),
  cert: readFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.crt')),
};

/** A fresh sink for one test, closed when the test ends. */
async function withSink(options: SinkOptions, fn: (sink: SmtpSink) => Promise<void>): Promise<void> {
  const sink = await startSink(options);
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

const transport = (port: number, extra: Record<string, unknown> = {}) =>
  nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'Client.Example.Test', ...extra });

describe('SMTP sink', () => {
  test('keeps the message byte-exact, dot-stuffed lines included', () => withSink({}, async (sink) => {
    const raw = Buffer.from('Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n caf\u00e9 \r\nend\r\n', 'utf8');
    const info = await transport(sink.port).sendMail({ envelope: { from: 'from@origin.test', to: ['to@sink.test'] }, raw });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as sink-1/);
    const [message] = await sink.waitFor(1);
    assert.ok(message);
    assert.equal(message.body.toString('hex'), raw.toString('hex'));
    assert.equal(message.sender, 'from@origin.test');
    assert.deepEqual(message.recipients, ['to@sink.test']);
    assert.equal(message.tls, false);
    assert.equal(message.helo, 'client.example.test');
    assert.equal(message.connection, 1);
  }));

  test('decide refuses one recipient with 550 and the other is delivered', () => withSink({
    decide: (stage, address) => (stage === 'rcpt' && address.startsWith('bad@') ? { code: 550, message: '5.1.1 no such user' } : null),
  }, async (sink) => {
    const seen: unknown[] = [];
    sink.update({
      decide: (stage, address, message) => {
        seen.push({ stage, address, ...message });
        return stage === 'rcpt' && address.startsWith('bad@') ? { code: 550, message: '5.1.1 no such user' } : null;
      },
    });
    const info = await transport(sink.port).sendMail({ envelope: { from: 's@origin.test', to: ['bad@sink.test', 'good@sink.test'] }, raw: 'Subject: x\r\n\r\nhi\r\n' });
    assert.deepEqual(info.rejected, ['bad@sink.test']);
    assert.deepEqual(info.accepted, ['good@sink.test']);
    assert.deepEqual(sink.messages.map((m) => m.recipients), [['good@sink.test']]);
    assert.deepEqual(seen, [
      { stage: 'mail', address: 's@origin.test', sender: 's@origin.test', recipients: [] },
      { stage: 'rcpt', address: 'bad@sink.test', sender: 's@origin.test', recipients: [] },
      { stage: 'rcpt', address: 'good@sink.test', sender: 's@origin.test', recipients: [] },
      { stage: 'data', address: 's@origin.test', sender: 's@origin.test', recipients: ['good@sink.test'] },
    ]);
  }));

  test('a refused DATA is answered with the given reply and not recorded', () => withSink({
    decide: (stage) => (stage === 'data' ? { code: 451, message: '4.3.0 try later' } : null),
  }, async (sink) => {
    const err = await rejection(transport(sink.port).sendMail({ envelope: { from: 's@origin.test', to: ['a@sink.test'] }, raw: 'Subject: x\r\n\r\nhi\r\n' }));
    assert.equal((err as { responseCode?: number }).responseCode, 451);
    assert.match(String((err as { response?: string }).response), /^451 4\.3\.0 try later/);
    assert.equal(sink.messages.length, 0);
    await assert.rejects(sink.waitFor(1, 50), /expected 1 message\(s\) within 50 ms, 0 arrived/);
  }));

  test('STARTTLS is offered with a certificate, and used', () => withSink({ tls }, async (sink) => {
    const t = await Transcript.open(sink.port);
    const ehlo = await t.hello();
    t.close();
    assert.match(ehlo.text, /^STARTTLS$/m);
    await transport(sink.port, { requireTLS: true, tls: { rejectUnauthorized: false } })
      .sendMail({ envelope: { from: 's@origin.test', to: ['a@sink.test'] }, raw: 'Subject: tls\r\n\r\nhi\r\n' });
    const [message] = await sink.waitFor(1);
    assert.equal(message?.tls, true);
    assert.equal(message?.helo, 'client.example.test');
    assert.equal(message?.connection, 2);
  }));

  test('EHLO: no STARTTLS without a certificate; hide and size', () => withSink({ size: 1000 }, async (sink) => {
    const ehlo = async (): Promise<string> => {
      const t = await Transcript.open(sink.port);
      try {
        const reply = await t.hello();
        if (!/^STARTTLS$/m.test(reply.text)) assert.equal((await t.command('STARTTLS')).code, 500);
        return reply.text;
      } finally {
        t.close();
      }
    };
    const full = await ehlo();
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE 1000']) assert.match(full, new RegExp(`^${ext}$`, 'm'));
    assert.doesNotMatch(full, /STARTTLS|AUTH/);
    sink.update({ hide: ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE', 'STARTTLS'] });
    assert.doesNotMatch(await ehlo(), /PIPELINING|8BITMIME|SMTPUTF8|SIZE|STARTTLS/);
    // Hidden SIZE is still enforced at the end of DATA.
    const err = await rejection(transport(sink.port).sendMail({ envelope: { from: 's@origin.test', to: ['a@sink.test'] }, raw: `Subject: big\r\n\r\n${'x'.repeat(2000)}\r\n` }));
    assert.equal((err as { responseCode?: number }).responseCode, 552);
    assert.equal(sink.messages.length, 0);
    assert.throws(() => sink.update({ hide: ['AUTH'] }), /cannot hide AUTH/);
  }));

  test('a 421 greeting refuses the connection; update() lifts it; connections() counts them all', () => withSink({
    greeting: { code: 421, message: '4.3.2 not now' },
  }, async (sink) => {
    const t = await Transcript.open(sink.port);
    const greeting = await t.reply();
    assert.equal(greeting.raw, '421 4.3.2 not now\r\n');
    await assert.rejects(t.reply(2000), /connection closed/);
    t.close();
    const err = await rejection(transport(sink.port).sendMail({ envelope: { from: 's@origin.test', to: ['a@sink.test'] }, raw: 'Subject: x\r\n\r\nhi\r\n' }));
    assert.match(String(err.message), /421/);
    sink.update({ greeting: null });
    const mailer = transport(sink.port);
    for (let i = 0; i < 2; i++) await mailer.sendMail({ envelope: { from: 's@origin.test', to: ['a@sink.test'] }, raw: `Subject: ${i}\r\n\r\nhi\r\n` });
    const messages = await sink.waitFor(2);
    assert.deepEqual(messages.map((m) => m.connection), [3, 4]);
    assert.equal(sink.connections(), 4);
  }));

  test('close() does not wait for idle client connections', async () => {
    const sink = await startSink();
    const t = await Transcript.open(sink.port);
    await t.hello();
    const started = Date.now();
    await sink.close();
    assert.ok(Date.now() - started < 500, `close took ${Date.now() - started} ms`);
    await assert.rejects(t.reply(2000), /connection closed/);
    t.close();
  });
});
