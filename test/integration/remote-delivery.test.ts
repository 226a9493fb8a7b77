// Remote delivery seen from outside: a trusted client relays through the real server, which finds
// the next hop in a loopback DNS server (MX preference, null MX, NXDOMAIN, SERVFAIL, a host map, a
// smarthost) and hands the message to fake remote MXs (smtp-sink) over real SMTP: byte-exact
// copies, retries after 4xx, RFC 3464 DSNs for 5xx, expiry, 8BITMIME and SIZE, STARTTLS and the
// connection cache. Real slapd for the sender's Maildir (bob); every part on 127.0.0.1.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDns, type DnsRecords, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { freePort } from '../harness/ports.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { startSink, type SinkMessage, type SinkReply, type SinkStage, type SmtpSink } from '../harness/smtp-sink.ts';
import {
  addressOf, assertReply, marker, messagesWith, queuedWith, queueIdOf, todoFiles, waitFor, waitForMessages, type StoredMessage, type TransactionResult, sendOnce,
} from '../fixtures/smtp-helpers.ts';

const TLS = {
  key: readFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.key')),
  cert: readFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.crt')),
};

/** The local sample user every relayed test message comes from: DSNs land in its Maildir. */
const SENDER = 'bob@example.org';
const RETRY = { retryMinSeconds: 1, retryMaxSeconds: 2 };

let slapd: Slapd;
let dns: TestDns;
/** Servers and sinks started anywhere in this file, stopped in after() (servers first). */
const servers: TestServer[] = [];
const sinks: SmtpSink[] = [];

/** Every zone of this file, served from the start (the host map points the MX names at the sinks). */
const RECORDS: DnsRecords = {
  mx: {
    'remote.test': [{ preference: 10, exchange: 'mx.remote.test' }],
    // Listed worst first: the order must come from the preferences.
    'pref.test': [
      { preference: 30, exchange: 'mx30.pref.test' },
      { preference: 20, exchange: 'mx20.pref.test' },
      { preference: 10, exchange: 'mx10.pref.test' },
      { preference: 5, exchange: 'mx5.pref.test' },
    ],
    'nullmx.test': [{ preference: 0, exchange: '' }],
    'tls.test': [{ preference: 10, exchange: 'mx.tls.test' }],
    '7bit.test': [{ preference: 10, exchange: 'mx.7bit.test' }],
    '8bit.test': [{ preference: 10, exchange: 'mx.8bit.test' }],
    'small.test': [{ preference: 10, exchange: 'mx.small.test' }],
    'small-hidden.test': [{ preference: 10, exchange: 'mx.small-hidden.test' }],
    'bulk.test': [{ preference: 10, exchange: 'mx.bulk.test' }],
    'serial.test': [{ preference: 10, exchange: 'mx.serial.test' }],
    'down.test': [{ preference: 10, exchange: 'mx.down.test' }],
    // Smarthost test: if the smarthost were ignored these would lead to the remotePort of that server.
    'anywhere.test': [{ preference: 10, exchange: 'mx.anywhere.test' }],
    'elsewhere.test': [{ preference: 10, exchange: 'mx.anywhere.test' }],
  },
  a: {
    'mx.remote.test': ['127.0.0.1'],
    // A null MX domain with an address as well: a wrong implicit-MX fallback would reach the main sink.
    'nullmx.test': ['127.0.0.1'],
    'mx.down.test': ['127.0.0.1'],
    'mx.anywhere.test': ['127.0.0.1'],
    'relay.test': ['127.0.0.1'],
  },
  servfail: ['servfail.test'],
};

before(async () => {
  slapd = await startSlapd();
  dns = await startDns(RECORDS);
});
after(async () => {
  for (const s of servers) await s.stop();
  for (const s of sinks) await s.close();
  await dns?.close();
  await slapd?.stop();
});

async function server(overrides: Record<string, unknown>): Promise<TestServer> {
  const s = await startServer(slapd, { relay: { trustedNetworks: ['127.0.0.0/8'] }, ...overrides });
  servers.push(s);
  return s;
}

async function sink(options: Parameters<typeof startSink>[0] = {}): Promise<SmtpSink> {
  const s = await startSink(options);
  sinks.push(s);
  return s;
}

/** A loopback port where nothing listens (free a moment ago, and nobody here binds it). */
const closedPort = freePort;

/** One whole transaction on a fresh connection, from the local sample sender unless told. */
const send = (port: number, rcpts: readonly string[], data: string | Buffer, from = SENDER): Promise<TransactionResult> => sendOnce(port, from, rcpts, data);

/** Sends and asserts every RCPT and the end of DATA were accepted; returns the queue id. */
async function relay(port: number, rcpts: readonly string[], data: string | Buffer): Promise<string> {
  const result = await send(port, rcpts, data);
  assertReply(result.mail, 250, null, 'MAIL');
  result.rcpts.forEach((r, i) => assertReply(r, 250, null, `RCPT ${rcpts[i]}`));
  assert.ok(result.end, `DATA was not accepted: ${JSON.stringify(result.data?.raw)}`);
  assertReply(result.end, 250, '2.6.0', 'end of data');
  return queueIdOf(result.end);
}

/** A message with a unique subject, as written on the wire (CRLF, dot-stuffed by the caller, ending in CRLF.CRLF). */
function wire(subject: string, to: string, body = 'hello\r\n'): string {
  return `From: ${SENDER}\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\n${body}.\r\n`;
}

/** What the server stores for `data` as sent: without the final dot line, dot-unstuffed. */
function unstuffed(data: string): string {
  assert.ok(data.endsWith('\r\n.\r\n'));
  return data.slice(0, -3).replace(/(^|\r\n)\./g, '$1');
}

/** The server's own Received field at the top of a relayed copy, and the bytes after it. */
function splitReceived(body: Buffer): { received: string; rest: string } {
  const text = body.toString('latin1');
  const m = /^Received: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*/.exec(text);
  assert.ok(m, `no Received field on top: ${JSON.stringify(text.slice(0, 200))}`);
  return { received: m[0], rest: text.slice(m[0].length) };
}

const withMarker = (s: SmtpSink, mark: string): SinkMessage[] => s.messages.filter((m) => m.body.includes(mark));

async function waitForQueueIdGone(spool: string, id: string, timeoutMs = 5000): Promise<void> {
  // The queue removes todo/<id>.json first, then mess/<id>.
  await waitFor(`queue entry ${id} (todo/ and mess/) to be removed`, async () =>
    !(await todoFiles(spool)).some((t) => t.id === id) && !existsSync(join(spool, 'mess', id)), timeoutMs);
}

/** Waits until nothing in the queue holds `mark` (the message and any bounce about it are done). */
async function waitForQueueWithout(spool: string, mark: string, timeoutMs = 8000): Promise<void> {
  await waitFor(`nothing queued with ${mark}`, async () => (await queuedWith(spool, mark)).length === 0, timeoutMs);
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Dsn {
  /** The human-readable part, the message/delivery-status part, the attached headers. */
  notification: string;
  report: string;
  headers: string;
}

/**
 * An RFC 3464 bounce in the sender's Maildir: null Return-Path, multipart/report with its three
 * parts, exactly the `recipients` as failed with `status`, and the original headers holding `subject`.
 */
function assertDsn(message: StoredMessage, o: { recipients: string[]; status: string; subject: string }): Dsn {
  const lines = message.header.split('\n');
  assert.equal(lines[0], 'Return-Path: <>', 'a bounce has the null sender');
  assert.equal(lines[1], `Delivered-To: ${SENDER}`);
  assert.match(message.header, new RegExp(`^To: <${escapeRegExp(SENDER)}>$`, 'm'));
  const type = /^Content-Type: multipart\/report; report-type=delivery-status; boundary="([^"]+)"$/m.exec(message.header);
  assert.ok(type, `not a multipart/report: ${message.header}`);
  const parts = message.body.split(`--${type[1]!}`);
  assert.equal(parts.length, 5, `three parts expected in ${message.body}`);
  const [notification, report, headers] = parts.slice(1, -1) as [string, string, string];
  assert.match(report, /^Content-Type: message\/delivery-status$/m);
  assert.match(headers, /^Content-Type: text\/rfc822-headers$/m);
  const finals = [...report.matchAll(/^Final-Recipient: (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(finals, o.recipients.map((r) => `rfc822; ${r}`), 'the failed recipients');
  const statuses = [...report.matchAll(/^Status: (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(statuses, o.recipients.map(() => o.status), `statuses in ${report}`);
  assert.match(report, new RegExp(`^Diagnostic-Code: .*\\b${escapeRegExp(o.status)}\\b`, 'm'));
  assert.match(headers, new RegExp(`^Subject: ${escapeRegExp(o.subject)}$`, 'm'), 'the original headers are attached');
  return { notification, report, headers };
}

/** Waits for the one DSN about `subject` in bob's Maildir, lets the queue drain, and checks no second one came. */
async function theOneDsn(s: TestServer, subject: string, timeoutMs = 8000): Promise<StoredMessage> {
  const [dsn] = await waitForMessages(s.maildir('bob'), subject, 1, timeoutMs);
  await waitForQueueWithout(s.config.spool, subject);
  assert.equal((await messagesWith(s.maildir('bob'), subject)).length, 1, 'exactly one DSN');
  return dsn!;
}

// ---------------------------------------------------------------------------------------------

describe('relayed to remote MXs found in DNS (one server, remotePort = the main sink)', () => {
  /** The main remote MX (mx.remote.test, via DNS A records): per-recipient scripted replies. */
  let main: SmtpSink;
  /** RCPT decisions by recipient (lower case); `n` counts the RCPTs for that address so far, from 1. */
  const rcptRules = new Map<string, (n: number) => SinkReply | null>();
  const rcptCounts = new Map<string, number>();
  const rcptTimes = new Map<string, number[]>();
  let refusing: SmtpSink;
  let backup: SmtpSink;
  let unused: SmtpSink;
  let tlsSink: SmtpSink;
  let sevenBit: SmtpSink;
  let eightBit: SmtpSink;
  let small: SmtpSink;
  let smallHidden: SmtpSink;
  let bulk: SmtpSink;
  let serial: SmtpSink;
  let mta: TestServer;

  before(async () => {
    main = await sink({
      decide(stage: SinkStage, address: string) {
        if (stage !== 'rcpt') return null;
        const key = address.toLowerCase();
        const n = (rcptCounts.get(key) ?? 0) + 1;
        rcptCounts.set(key, n);
        rcptTimes.set(key, [...(rcptTimes.get(key) ?? []), Date.now()]);
        return rcptRules.get(key)?.(n) ?? null;
      },
    });
    refusing = await sink({ greeting: { code: 421, message: '4.3.2 service not available, closing channel' } });
    backup = await sink();
    unused = await sink();
    tlsSink = await sink({ tls: TLS });
    sevenBit = await sink({ hide: ['8BITMIME'] });
    eightBit = await sink();
    small = await sink({ size: 4096 });
    smallHidden = await sink({ size: 4096, hide: ['SIZE'] });
    bulk = await sink();
    serial = await sink();
    const at = (s: SmtpSink | number) => `127.0.0.1:${typeof s === 'number' ? s : s.port}`;
    mta = await server({
      queue: RETRY,
      delivery: {
        dnsServers: [dns.server],
        remotePort: main.port,
        concurrencyPerDestination: 2,
        hostMap: {
          'mx5.pref.test': at(await closedPort()),
          'mx10.pref.test': at(refusing),
          'mx20.pref.test': at(backup),
          'mx30.pref.test': at(unused),
          'mx.tls.test': at(tlsSink),
          'mx.7bit.test': at(sevenBit),
          'mx.8bit.test': at(eightBit),
          'mx.small.test': at(small),
          'mx.small-hidden.test': at(smallHidden),
          'mx.bulk.test': at(bulk),
          'mx.serial.test': at(serial),
        },
      },
    });
  });

  test('1. relayed to user@remote.test: the sink gets our Received field and then the original bytes exactly (a leading-dot line too), from the original sender; the spool is emptied', async () => {
    const subject = marker('exact');
    const to = `${subject}@remote.test`;
    // Dot-stuffed on the wire: the stored lines are ".leading dot" and "..two dots" and ".".
    const body = 'line one\r\n..leading dot\r\n...two dots\r\n..\r\n\ttab and trailing space \r\nlast\r\n';
    const data = `From: ${SENDER}\r\nTo: <${to}>\r\nSubject: ${subject}\r\nX-Odd:  spaces\tand tab\r\n\r\n${body}.\r\n`;
    const id = await relay(mta.smtpPort, [to], data);
    const [copy] = await waitFor('the copy at the sink', async () => (withMarker(main, subject).length > 0 ? withMarker(main, subject) : null));
    assert.equal(withMarker(main, subject).length, 1, 'one copy');
    assert.equal(copy!.sender, SENDER, 'the original envelope sender');
    assert.deepEqual(copy!.recipients, [to]);
    assert.equal(copy!.helo, 'mx1.example.org');
    const { received, rest } = splitReceived(copy!.body);
    assert.match(received, new RegExp(`^Received: from [^\\r\\n]+\\r\\n\\tby mx1\\.example\\.org \\(ldapmta\\) with E?SMTP id ${escapeRegExp(id)}\\r\\n\\tfor <${escapeRegExp(to)}>;\\r\\n\\t[^\\r\\n]+\\r\\n$`));
    assert.equal(rest, unstuffed(data), 'the original message, byte for byte');
    assert.ok(rest.includes('\r\n.leading dot\r\n..two dots\r\n.\r\n'), 'dot lines unstuffed exactly once');
    await waitForQueueIdGone(mta.config.spool, id);
  });

  test('1b. above 256 KiB (read from the spool 64 KiB at a time): byte-exact when the last read is a whole line, the final LF alone, or two bytes; a dot line right at a read boundary', async () => {
    const base = marker('big');
    const CHUNK = 65_536; // fs.createReadStream's default highWaterMark
    // The Received field's length for a recipient of this length (queue ids and dates have fixed widths).
    const probe = `${base}-p@remote.test`;
    await relay(mta.smtpPort, [probe], wire(`${base}-probe`, probe));
    const [probeCopy] = await waitFor('the probe at the sink', async () => (withMarker(main, `${base}-probe`).length > 0 ? withMarker(main, `${base}-probe`) : null));
    const receivedLength = splitReceived(probeCopy!.body).received.length;
    const line = `.${'x'.repeat(75)}\r\n`; // 78 bytes as stored, each line starting with a dot
    for (const extra of [0, 1, 2]) {
      const subject = `${base}-x${extra}`;
      const to = `${base}-${extra}@remote.test`; // as long as the probe's recipient
      const head = `From: ${SENDER}\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\n`;
      // A first line that makes a dot line begin exactly at the first read boundary.
      let first = (CHUNK - receivedLength - head.length) % 78;
      if (first < 3) first += 78;
      const fill = `${'f'.repeat(first - 2)}\r\n`;
      const total = 5 * CHUNK + extra;
      const rest = total - receivedLength - head.length - fill.length;
      const n = Math.floor((rest - 10) / 78);
      const last = `${'z'.repeat(rest - 78 * n - 2)}\r\n`;
      const stored = head + fill + line.repeat(n) + last;
      assert.equal(receivedLength + stored.length, total);
      assert.equal((CHUNK - receivedLength - head.length - fill.length) % 78, 0, 'a line starts at the boundary');
      const id = await relay(mta.smtpPort, [to], `${stored.replace(/(^|\r\n)\./g, '$1..')}.\r\n`);
      const [copy] = await waitFor(`the ${total}-byte copy`, async () => (withMarker(main, subject).length > 0 ? withMarker(main, subject) : null), 8000);
      assert.equal(copy!.body.length, total, `a message of ${total} bytes (${extra} past 5 × 64 KiB) arrived as ${copy!.body.length} bytes`);
      const { received, rest: got } = splitReceived(copy!.body);
      assert.equal(received.length, receivedLength);
      assert.ok(got === stored, `${total} bytes: the copy differs from the original; its last bytes are ${JSON.stringify(got.slice(-12))}`);
      await waitForQueueIdGone(mta.config.spool, id);
    }
  });

  test('2. MX preference: pref 5 (nothing listening) and 10 (421 greeting) fail, 20 takes the message, 30 is never contacted', async () => {
    const subject = marker('pref');
    const to = `${subject}@pref.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const [copy] = await backup.waitFor(1, 8000);
    assert.ok(copy!.body.includes(subject));
    assert.deepEqual(copy!.recipients, [to]);
    assert.equal(refusing.connections(), 1, 'the pref 10 host was tried (once) before pref 20');
    assert.equal(unused.connections(), 0, 'the pref 30 host was contacted');
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal((await messagesWith(mta.maildir('bob'), subject)).length, 0, 'a DSN for a delivered message');
  });

  test('3. 451 to the first RCPT, accepted at the retry about a second later: one copy at the sink, no DSN', async () => {
    const subject = marker('greylist');
    const to = `${subject}@remote.test`;
    rcptRules.set(to, (n) => (n === 1 ? { code: 451, message: `4.7.1 greylisted ${subject}, come back later` } : null));
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const deferred = await waitFor('the deferral on record', async () => {
      const todo = (await todoFiles(mta.config.spool)).find((t) => t.id === id);
      return todo !== undefined && todo.recipients[0]!.attempts === 1 ? todo : null;
    });
    const r = deferred.recipients[0]!;
    assert.equal(r.state, 'pending');
    assert.equal(r.lastError?.status, '4.7.1');
    assert.equal(r.lastError?.reply, 451);
    assert.match(r.lastError?.text ?? '', new RegExp(`greylisted ${escapeRegExp(subject)}`));
    await waitFor('the copy at the sink', async () => withMarker(main, subject).length > 0, 8000);
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal(withMarker(main, subject).length, 1, 'one copy');
    assert.equal(rcptCounts.get(to), 2, 'RCPT attempts');
    const [first, second] = rcptTimes.get(to)!;
    assert.ok(second! - first! >= 850, `retried after ${second! - first!} ms, before retryMinSeconds (1 s, less 10 % jitter)`);
    assert.equal((await messagesWith(mta.maildir('bob'), subject)).length, 0, 'a DSN for a delivered message');
  });

  test('4. 550 5.1.1 to RCPT: exactly one DSN to bob naming the recipient and the remote server\'s words; the spool is emptied', async () => {
    const subject = marker('unknown');
    const to = `${subject}@remote.test`;
    rcptRules.set(to, () => ({ code: 550, message: `5.1.1 no mailbox here by that name (${subject}-said)` }));
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const dsn = assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.1.1', subject });
    assert.match(dsn.report, new RegExp(`^Diagnostic-Code: smtp; 550 5\\.1\\.1 .*no mailbox here by that name \\(${escapeRegExp(subject)}-said\\)`, 'm'));
    assert.ok(dsn.notification.includes(`<${to}>: 5.1.1 `), dsn.notification);
    assert.ok(dsn.notification.includes(`${subject}-said`), 'the remote text in the notification');
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal(withMarker(main, subject).length, 0);
    assert.equal(rcptCounts.get(to), 1, 'a permanent refusal is not retried');
  });

  test('5. one transaction, two recipients at one domain, one refused 550: one copy for the accepted one only, one DSN for the other', async () => {
    const subject = marker('mixed');
    const good = `${subject}-good@remote.test`;
    const bad = `${subject}-bad@remote.test`;
    rcptRules.set(bad, () => ({ code: 550, message: '5.1.1 user unknown' }));
    const id = await relay(mta.smtpPort, [bad, good], wire(subject, `${bad}, ${good}`));
    const dsn = assertDsn(await theOneDsn(mta, subject), { recipients: [bad], status: '5.1.1', subject });
    assert.ok(!dsn.report.includes(good), 'the delivered recipient is in the DSN');
    const copies = withMarker(main, subject);
    assert.equal(copies.length, 1, 'copies at the sink');
    assert.deepEqual(copies[0]!.recipients, [good]);
    assert.equal(rcptCounts.get(bad), 1);
    assert.equal(rcptCounts.get(good), 1, 'one RCPT each: both in one transaction, no retry');
    await waitForQueueIdGone(mta.config.spool, id);
  });

  test('7a. null MX: a 5.1.10 DSN, with no address lookup and no connection anywhere', async () => {
    const subject = marker('nullmx');
    const to = `${subject}@nullmx.test`;
    const seen = dns.queries().length;
    const connections = main.connections();
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.1.10', subject });
    await waitForQueueIdGone(mta.config.spool, id);
    const asked = dns.queries().slice(seen).filter((q) => q.name === 'nullmx.test' || q.name === '');
    assert.deepEqual(asked, [{ name: 'nullmx.test', type: 'MX' }], 'DNS questions about the domain');
    assert.equal(main.connections(), connections, 'a connection to the address of the null-MX domain');
    assert.equal(withMarker(main, subject).length, 0);
  });

  test('7b. NXDOMAIN: a 5.1.2 DSN', async () => {
    const subject = marker('nxdomain');
    const to = `${subject}@nxdomain.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const dsn = assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.1.2', subject });
    assert.match(dsn.report, /nxdomain\.test/);
    await waitForQueueIdGone(mta.config.spool, id);
  });

  test('7c. SERVFAIL: stays queued, deferred 4.4.3 in todo/, retried, and no DSN', async () => {
    const subject = marker('servfail');
    const to = `${subject}@servfail.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const todo = await waitFor('two deferred attempts on record', async () => {
      const found = (await todoFiles(mta.config.spool)).find((t) => t.id === id);
      return found !== undefined && found.recipients[0]!.attempts >= 2 ? found : null;
    }, 8000);
    assert.deepEqual(todo.recipients.map((r) => [addressOf(r.address), r.state, r.lastError?.status]), [[to, 'pending', '4.4.3']]);
    assert.match(todo.recipients[0]!.lastError!.text, /servfail\.test/);
    assert.equal((await messagesWith(mta.maildir('bob'), subject)).length, 0, 'a DSN for a deferred message');
    assert.ok(dns.queries().some((q) => q.name === to.split('@')[1] && q.type === 'MX'));
  });

  test('8. STARTTLS offered by the remote: the message travels encrypted', async () => {
    const subject = marker('tls');
    const to = `${subject}@tls.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to));
    const [copy] = await tlsSink.waitFor(1, 8000);
    assert.ok(copy!.body.includes(subject));
    assert.equal(copy!.tls, true, 'delivered in plain text');
    await waitForQueueIdGone(mta.config.spool, id);
  });

  test('9. connection reuse: 20 messages to one domain sent at once all arrive, over a handful of connections', async () => {
    const base = marker('bulk');
    const N = 20;
    const subjects = Array.from({ length: N }, (_, i) => `${base}-n${i}-end`);
    const ids = await Promise.all(subjects.map((subject, i) => relay(mta.smtpPort, [`${base}-${i}@bulk.test`], wire(subject, `${base}-${i}@bulk.test`))));
    assert.equal(new Set(ids).size, N);
    await bulk.waitFor(N, 15_000);
    for (const [i, subject] of subjects.entries()) {
      const copies = bulk.messages.filter((m) => m.body.includes(`Subject: ${subject}\r\n`));
      assert.equal(copies.length, 1, `copies of message ${i}`);
      assert.deepEqual(copies[0]!.recipients, [`${base}-${i}@bulk.test`]);
    }
    assert.equal(bulk.messages.length, N);
    assert.ok(bulk.connections() <= 5, `${bulk.connections()} connections for ${N} messages (concurrencyPerDestination 2)`);
    for (const id of ids) await waitForQueueIdGone(mta.config.spool, id);
  });

  test('9b. one message after another, each sent once the previous arrived: all over one cached connection', async () => {
    const base = marker('serial');
    for (let i = 0; i < 5; i++) {
      const to = `${base}-${i}@serial.test`;
      await relay(mta.smtpPort, [to], wire(`${base}-n${i}-end`, to));
      await serial.waitFor(i + 1, 8000);
    }
    assert.deepEqual(serial.messages.map((m) => m.connection), [1, 1, 1, 1, 1], 'the connection of each message');
    assert.equal(serial.connections(), 1);
  });

  test('10a. an 8-bit message to a server without 8BITMIME: a 5.6.3 DSN and nothing sent (a 7-bit one to the same server goes through)', async () => {
    const subject = marker('8bit-refused');
    const to = `${subject}@7bit.test`;
    const id = await relay(mta.smtpPort, [to], Buffer.from(wire(subject, to, 'Grüße aus Köln – ½ €\r\n'), 'utf8'));
    assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.6.3', subject });
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal(sevenBit.messages.length, 0, 'the 8-bit message was sent anyway');
    const plain = marker('7bit-ok');
    const plainTo = `${plain}@7bit.test`;
    await relay(mta.smtpPort, [plainTo], wire(plain, plainTo));
    const [copy] = await sevenBit.waitFor(1, 8000);
    assert.ok(copy!.body.includes(plain));
  });

  test('10b. the same 8-bit message to a server offering 8BITMIME: delivered with its bytes intact', async () => {
    const subject = marker('8bit-ok');
    const to = `${subject}@8bit.test`;
    const data = Buffer.from(wire(subject, to, 'Grüße aus Köln – ½ €\r\n'), 'utf8');
    const id = await relay(mta.smtpPort, [to], data);
    const [copy] = await eightBit.waitFor(1, 8000);
    assert.equal(splitReceived(copy!.body).rest, unstuffed(data.toString('latin1')), 'the UTF-8 bytes, unchanged');
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal((await messagesWith(mta.maildir('bob'), subject)).length, 0);
  });

  test('12a. larger than the SIZE the remote announces: a 5.3.4 DSN and nothing sent (a small one goes through)', async () => {
    const subject = marker('too-big');
    const to = `${subject}@small.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to, `${'x'.repeat(76)}\r\n`.repeat(100)));
    const dsn = assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.3.4', subject });
    assert.match(dsn.report, /\b4096\b/, 'the remote limit named');
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal(small.messages.length, 0);
    const ok = marker('small-ok');
    await relay(mta.smtpPort, [`${ok}@small.test`], wire(ok, `${ok}@small.test`));
    const [copy] = await small.waitFor(1, 8000);
    assert.ok(copy!.body.includes(ok));
  });

  test('12b. larger than an unannounced limit (552 5.3.4 at the end of DATA): a 5.3.4 DSN', async () => {
    const subject = marker('too-big-hidden');
    const to = `${subject}@small-hidden.test`;
    const id = await relay(mta.smtpPort, [to], wire(subject, to, `${'x'.repeat(76)}\r\n`.repeat(100)));
    const dsn = assertDsn(await theOneDsn(mta, subject), { recipients: [to], status: '5.3.4', subject });
    assert.match(dsn.report, /^Diagnostic-Code: smtp; 552 5\.3\.4 /m);
    await waitForQueueIdGone(mta.config.spool, id);
    assert.equal(smallHidden.messages.length, 0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a remote that stays down (queue.lifetimeSeconds 3)', () => {
  test('6. nothing listening: retried, then a 5.4.7 DSN once the lifetime is over, naming the last error', async () => {
    const down = await server({
      queue: { ...RETRY, lifetimeSeconds: 3 },
      delivery: { dnsServers: [dns.server], remotePort: await closedPort() },
    });
    const subject = marker('down');
    const to = `${subject}@down.test`;
    const started = Date.now();
    const id = await relay(down.smtpPort, [to], wire(subject, to));
    let attempts = 0;
    const [message] = await waitFor('the DSN', async () => {
      const todo = (await todoFiles(down.config.spool)).find((t) => t.id === id);
      if (todo !== undefined) attempts = Math.max(attempts, todo.recipients[0]!.attempts);
      const found = await messagesWith(down.maildir('bob'), subject);
      return found.length > 0 ? found : null;
    }, 15_000);
    assert.ok(Date.now() - started >= 3000, `bounced after ${Date.now() - started} ms, before the 3 s lifetime`);
    assert.ok(attempts >= 2, `${attempts} attempt(s) recorded before the bounce`);
    const dsn = assertDsn(message!, { recipients: [to], status: '5.4.7', subject });
    assert.match(dsn.report, /^Diagnostic-Code: smtp; 550 5\.4\.7 delivery time expired \(last error: 4\.4\.1 /m);
    await waitForQueueIdGone(down.config.spool, id);
    assert.equal((await messagesWith(down.maildir('bob'), subject)).length, 1, 'exactly one DSN');
  });
});

describe('smarthost (delivery.smarthost relay.test, in the host map)', () => {
  test('11. mail for any domain goes to the smarthost, with no DNS question about the domains', async () => {
    const smart = await sink();
    // If the smarthost (or its host map entry) were ignored, DNS would lead to this sink.
    const wrong = await sink();
    const relayed = await server({
      delivery: { dnsServers: [dns.server], remotePort: wrong.port, smarthost: 'relay.test', hostMap: { 'relay.test': `127.0.0.1:${smart.port}` } },
    });
    const seen = dns.queries().length;
    const subject = marker('smarthost');
    const a = `${subject}-a@anywhere.test`;
    const b = `${subject}-b@elsewhere.test`;
    const id = await relay(relayed.smtpPort, [a, b], wire(subject, `${a}, ${b}`));
    const [copy] = await smart.waitFor(1, 8000);
    assert.ok(copy!.body.includes(subject));
    assert.equal(copy!.sender, SENDER);
    assert.deepEqual(copy!.recipients, [a, b], 'one transaction for both domains');
    await waitForQueueIdGone(relayed.config.spool, id);
    assert.equal(wrong.connections(), 0, 'the MX of a recipient domain was contacted');
    const asked = dns.queries().slice(seen).filter((q) => ['anywhere.test', 'elsewhere.test', 'mx.anywhere.test', 'relay.test'].includes(q.name));
    assert.deepEqual(asked, [], 'DNS questions while using the smarthost');
  });
});

describe('smarthost with AUTH (delivery.smarthostUser/Password)', () => {
  /** A smarthost that offers STARTTLS (or not) and AUTH PLAIN for one user; records logins and messages. */
  async function authSmarthost(tls: boolean): Promise<{ port: number; logins: string[]; messages: string[]; close(): Promise<void> }> {
    const { SMTPServer } = await import('smtp-server');
    const logins: string[] = [];
    const messages: string[] = [];
    const smtp = new SMTPServer({
      ...(tls ? TLS : {}), hideSTARTTLS: !tls, disabledCommands: tls ? [] : ['STARTTLS'], allowInsecureAuth: !tls,
      authMethods: ['PLAIN'], logger: false, disableReverseLookup: true,
      onAuth(auth, _session, callback) {
        logins.push(`${auth.username}:${auth.password}`);
        if (auth.username === 'relay-user' && auth.password === 'relay-pass') callback(null, { user: auth.username });
        else callback(Object.assign(new Error('5.7.8 authentication failed'), { responseCode: 535 }));
      },
      onData(stream, _session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          messages.push(Buffer.concat(chunks).toString());
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
    const port = (smtp.server.address() as { port: number }).port;
    return { port, logins, messages, close: () => new Promise<void>((resolve) => smtp.close(() => resolve())) };
  }

  const withAuth = (port: number, password: string) => server({
    queue: { retryMinSeconds: 600 },
    delivery: { dnsServers: [dns.server], smarthost: `127.0.0.1:${port}`, smarthostUser: 'relay-user', smarthostPassword: password },
  });

  test('after STARTTLS the agent logs in with AUTH PLAIN and the smarthost takes the message', async () => {
    const smart = await authSmarthost(true);
    try {
      const mta = await withAuth(smart.port, 'relay-pass');
      const subject = marker('auth');
      await relay(mta.smtpPort, [`${subject}@anywhere.test`], wire(subject, `${subject}@anywhere.test`));
      await waitFor('the message at the smarthost', async () => smart.messages.some((m) => m.includes(subject)), 10_000);
      assert.deepEqual(smart.logins, ['relay-user:relay-pass']);
    } finally {
      await smart.close();
    }
  });

  test('a refused login keeps the message queued (4.4.1, the reason kept); no TLS offered: the password is never sent', async () => {
    for (const [tls, password, reason] of [[true, 'wrong', /authentication failed: 535/], [false, 'relay-pass', /offered no STARTTLS/]] as const) {
      const smart = await authSmarthost(tls);
      try {
        const mta = await withAuth(smart.port, password);
        const subject = marker('noauth');
        const id = await relay(mta.smtpPort, [`${subject}@anywhere.test`], wire(subject, `${subject}@anywhere.test`));
        const r = await waitFor('the deferral', async () => (await todoFiles(mta.config.spool)).find((t) => t.id === id)?.recipients.find((x) => x.attempts > 0) ?? null, 10_000);
        assert.equal(r.state, 'pending');
        assert.equal(r.lastError?.status, '4.4.1');
        assert.match(r.lastError?.text ?? '', reason);
        assert.deepEqual(smart.messages, []);
        if (!tls) assert.deepEqual(smart.logins, [], 'no password over plain text');
      } finally {
        await smart.close();
      }
    }
  });
});

describe('SMTPUTF8 (delivery to a non-ASCII address)', () => {
  /** MAIL FROM with SMTPUTF8 and one RCPT to a non-ASCII local part, as a client would send it. */
  async function relayUtf8(port: number, to: string, subject: string): Promise<void> {
    const t = await Transcript.open(port);
    try {
      await t.hello();
      assertReply(await t.command(`MAIL FROM:<${SENDER}> SMTPUTF8`), 250, null, 'MAIL SMTPUTF8');
      t.write(Buffer.from(`RCPT TO:<${to}>\r\n`, 'utf8')); // UTF-8 on the wire (command() writes Latin-1)
      assertReply(await t.reply(), 250, null, 'RCPT');
      assertReply(await t.command('DATA'), 354, null, 'DATA');
      t.write(Buffer.from(`${wire(subject, to)}.\r\n`, 'utf8'));
      assertReply(await t.reply(), 250, null, 'end of data');
      await t.command('QUIT').catch(() => undefined);
    } finally {
      t.close();
    }
  }

  test('to a server without SMTPUTF8: a 5.6.7 DSN and nothing sent; to one that offers it: delivered', async () => {
    const without = await sink({ hide: ['SMTPUTF8'] });
    const withIt = await sink();
    const mta = await server({
      delivery: { dnsServers: [dns.server], hostMap: { 'ascii-only.test': `127.0.0.1:${without.port}`, 'utf8.test': `127.0.0.1:${withIt.port}` } },
    });
    const refused = marker('utf8-refused');
    await relayUtf8(mta.smtpPort, `jösé-${refused}@ascii-only.test`, refused);
    const [dsn] = await waitForMessages(mta.maildir('bob'), refused, 1, 10_000);
    assert.match(dsn!.body, /Status: 5\.6\.7/);
    assert.equal(without.messages.length, 0, 'nothing was sent to the server without SMTPUTF8');
    const ok = marker('utf8-ok');
    await relayUtf8(mta.smtpPort, `jösé-${ok}@utf8.test`, ok);
    const [copy] = await withIt.waitFor(1, 10_000);
    assert.deepEqual(copy!.recipients, [`jösé-${ok}@utf8.test`]);
  });

  test('an ASCII local part at a Unicode domain, to a server without SMTPUTF8: sent with the domain in A-labels', async () => {
    const without = await sink({ hide: ['SMTPUTF8'] });
    const mta = await server({ delivery: { dnsServers: [dns.server], hostMap: { 'bücher.test': `127.0.0.1:${without.port}` } } });
    const m = marker('alabel');
    await relayUtf8(mta.smtpPort, `ascii-${m}@bücher.test`, m);
    const [copy] = await without.waitFor(1, 10_000);
    const [mail, ...rcpts] = without.envelopeLines;
    assert.match(mail ?? '', new RegExp(`^MAIL FROM:<${SENDER}>`));
    assert.doesNotMatch(mail ?? '', /SMTPUTF8/);
    assert.deepEqual(rcpts, [`RCPT TO:<ascii-${m}@xn--bcher-kva.test>`]);
    assert.deepEqual(copy!.recipients, [`ascii-${m}@bücher.test`], 'smtp-server shows the domain decoded again');
    assert.ok(copy!.body.toString('utf8').includes(m), 'the message itself went');
  });
});
