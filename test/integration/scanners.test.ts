// The content-scanner clients against the real Debian daemons on loopback: clamd (INSTREAM over TCP
// and a Unix socket, with a one-signature EICAR database), spamd (SPAMC/SPAMD) and rspamd (/checkv2).
// Every way a daemon can fail to answer (down, stopped with SIGSTOP, a peer that accepts and never
// answers, a peer that answers garbage) must be a temporary 4.7.1 and never a clean result.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { MailError } from '../../src/mail.ts';
import { createClamd, parseClamdReply } from '../../src/policy/scan/clamd.ts';
import { createRspamd, parseRspamdReply } from '../../src/policy/scan/rspamd.ts';
import { createSpamd, parseSpamdReply } from '../../src/policy/scan/spamd.ts';
import type { SpamContext } from '../../src/policy/scan/types.ts';
import { EICAR, EICAR_SIGNATURE, startClamd, type Clamd } from '../harness/clamd.ts';
import { startRspamd, type Rspamd } from '../harness/rspamd.ts';
import { SPAM_TEST_PHRASE, SPAM_TEST_RULE, SPAM_TEST_SCORE, startSpamd, type Spamd } from '../harness/spamd.ts';

/** Short enough to keep the suite quick, long enough for a loaded CI machine's real answers. */
const HANG_TIMEOUT_MS = 400;
const SCAN_TIMEOUT_MS = 10_000;

function mail(body: string, extraHeaders = ''): Buffer {
  return Buffer.from(
    'From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: scanner test\r\n' +
    'Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <scanner-test@example.org>\r\nMIME-Version: 1.0\r\n' +
    `${extraHeaders}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`,
  );
}

/** A message carrying the EICAR file as a base64 attachment, as a real infected mail would. */
function eicarAttachment(): Buffer {
  const encoded = Buffer.from(EICAR, 'latin1').toString('base64');
  return Buffer.from(
    'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
    '--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n' +
    '--b1\r\nContent-Type: application/octet-stream; name="invoice.com"\r\nContent-Transfer-Encoding: base64\r\n' +
    `Content-Disposition: attachment; filename="invoice.com"\r\n\r\n${encoded}\r\n--b1--\r\n`,
  );
}

const CLEAN = mail('Hello Bob,\r\n\r\nthe meeting is at ten tomorrow.\r\n\r\nAlice');
const SPAMMY = mail(`Hello Bob,\r\n\r\nbuy now: ${SPAM_TEST_PHRASE}\r\n\r\nAlice`);

const CONTEXT: SpamContext = {
  sender: 'alice@example.org', recipients: ['bob@example.org'], clientIp: '192.0.2.7', helo: 'mx.example.org', user: null, queueId: 'Q1',
};

/** Awaits a rejection that must be a temporary MailError 4.7.1; returns it and how long it took. */
async function temporary471(promise: Promise<unknown>): Promise<{ error: MailError; ms: number }> {
  const started = Date.now();
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (err) {
    const ms = Date.now() - started;
    assert.ok(err instanceof MailError, `expected a MailError, got ${String(err)}`);
    assert.equal(err.kind, 'temporary');
    assert.equal(err.status, '4.7.1');
    assert.equal(err.reply, 451);
    return { error: err, ms };
  }
  assert.fail(`expected a temporary 4.7.1, got ${JSON.stringify(outcome)}`);
}

const causeOf = (error: MailError): string => String((error.cause as Error | undefined)?.message);

/** A TCP peer on a random loopback port that accepts and then does `onConnection` (nothing, by default). */
async function fakePeer(onConnection: (socket: net.Socket) => void = () => undefined): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => count,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Asserts a timeout rejection came after timeoutMs, and not much later. */
function assertTimedOut(ms: number, timeoutMs: number): void {
  assert.ok(ms >= timeoutMs - 20, `rejected after ${ms} ms, before the ${timeoutMs} ms timeout`);
  assert.ok(ms < timeoutMs + 2000, `rejected after ${ms} ms, long after the ${timeoutMs} ms timeout`);
}

// ---------------------------------------------------------------------------------------------

describe('clamd (ClamAV INSTREAM)', () => {
  let clamd: Clamd;
  before(async () => {
    clamd = await startClamd({ streamMaxLength: 256 * 1024 });
    console.log(`clamd started in ${clamd.startMs} ms`);
  });
  after(async () => {
    await clamd?.stop();
  });

  test('the EICAR file in an attachment is infected, with the signature named (TCP)', async () => {
    const scanner = createClamd({ host: '127.0.0.1', port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    assert.equal(scanner.name, 'clamd');
    assert.deepEqual(await scanner.scan(eicarAttachment()), { infected: true, signature: EICAR_SIGNATURE });
    assert.match(EICAR_SIGNATURE, /^Eicar-Test-Signature/);
  });

  test('the EICAR string in a text body is infected (Unix socket)', async () => {
    const scanner = createClamd({ socket: clamd.socket, timeoutMs: SCAN_TIMEOUT_MS });
    assert.deepEqual(await scanner.scan(mail(`look: ${EICAR} !`)), { infected: true, signature: EICAR_SIGNATURE });
  });

  test('a clean message is not infected, over TCP and the Unix socket, also when it spans many chunks', async () => {
    const tcp = createClamd({ port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    const unix = createClamd({ socket: clamd.socket, timeoutMs: SCAN_TIMEOUT_MS });
    assert.deepEqual(await tcp.scan(CLEAN), { infected: false });
    assert.deepEqual(await unix.scan(CLEAN), { infected: false });
    // 200 KiB: several 64 KiB chunks, under the 256 KiB StreamMaxLength.
    const long = mail('lorem ipsum dolor sit amet\r\n'.repeat(7300));
    assert.ok(long.length > 3 * 64 * 1024 && long.length < clamd.streamMaxLength);
    assert.deepEqual(await tcp.scan(long), { infected: false });
    // The signature is still found past the first chunk.
    assert.deepEqual(await unix.scan(Buffer.concat([long, Buffer.from(`${EICAR}\r\n`)])), { infected: true, signature: EICAR_SIGNATURE });
  });

  test('several scans at once each get their own answer', async () => {
    const scanner = createClamd({ port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    const results = await Promise.all([CLEAN, eicarAttachment(), CLEAN, mail(EICAR)].map((m) => scanner.scan(m)));
    assert.deepEqual(results.map((r) => r.infected), [false, true, false, true]);
  });

  test('a message over clamd\'s StreamMaxLength is a temporary 4.7.1, and clamd keeps serving', async () => {
    const big = Buffer.concat([mail('x'.repeat(clamd.streamMaxLength + 64 * 1024)), Buffer.from(EICAR)]);
    for (const scanner of [createClamd({ port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS }), createClamd({ socket: clamd.socket, timeoutMs: SCAN_TIMEOUT_MS })]) {
      const { error } = await temporary471(scanner.scan(big));
      // clamd answers "INSTREAM size limit exceeded. ERROR" and closes; now and then the close
      // (a reset: it leaves the rest unread) reaches the client's next write before the reply is read.
      assert.match(causeOf(error), /INSTREAM size limit exceeded|closed by clamd while the message was being sent/);
      assert.deepEqual(await scanner.scan(CLEAN), { infected: false });
    }
  });

  test('with maxBytes, a larger message is refused without contacting clamd', async () => {
    const peer = await fakePeer((socket) => socket.end('stream: OK\0'));
    try {
      const scanner = createClamd({ port: peer.port, timeoutMs: SCAN_TIMEOUT_MS, maxBytes: 1000 });
      const { error } = await temporary471(scanner.scan(Buffer.alloc(1001, 'a')));
      assert.match(causeOf(error), /over the stream limit of 1000/);
      assert.equal(peer.connections(), 0);
      // At the limit it is sent (and this peer says OK).
      assert.deepEqual(await scanner.scan(Buffer.alloc(1000, 'a')), { infected: false });
      assert.equal(peer.connections(), 1);
    } finally {
      await peer.close();
    }
  });

  test('clamd stopped: a temporary 4.7.1 at once, over TCP and the Unix socket; started again, it scans', async () => {
    const tcp = createClamd({ port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    const unix = createClamd({ socket: clamd.socket, timeoutMs: SCAN_TIMEOUT_MS });
    await clamd.stop();
    try {
      const refused = await temporary471(tcp.scan(eicarAttachment()));
      assert.ok(refused.ms < SCAN_TIMEOUT_MS, `took ${refused.ms} ms`);
      assert.match(causeOf(refused.error), /ECONNREFUSED/);
      const missing = await temporary471(unix.scan(eicarAttachment()));
      assert.ok(missing.ms < SCAN_TIMEOUT_MS, `took ${missing.ms} ms`);
      assert.match(causeOf(missing.error), /ENOENT|ECONNREFUSED/);
    } finally {
      await clamd.start();
    }
    assert.deepEqual(await tcp.scan(eicarAttachment()), { infected: true, signature: EICAR_SIGNATURE });
    assert.deepEqual(await unix.scan(CLEAN), { infected: false });
  });

  test('clamd hung (SIGSTOP): the kernel accepts, nobody answers: a temporary 4.7.1 after timeoutMs', async () => {
    const scanner = createClamd({ port: clamd.port, timeoutMs: HANG_TIMEOUT_MS });
    await clamd.pause();
    try {
      const { error, ms } = await temporary471(scanner.scan(eicarAttachment()));
      assertTimedOut(ms, HANG_TIMEOUT_MS);
      assert.match(causeOf(error), /no answer within 400 ms/);
    } finally {
      clamd.resume();
    }
    assert.deepEqual(await createClamd({ port: clamd.port, timeoutMs: SCAN_TIMEOUT_MS }).scan(CLEAN), { infected: false });
  });

  test('a peer that accepts and never answers: a temporary 4.7.1 after timeoutMs', async () => {
    const peer = await fakePeer();
    try {
      const { ms } = await temporary471(createClamd({ port: peer.port, timeoutMs: HANG_TIMEOUT_MS }).scan(eicarAttachment()));
      assertTimedOut(ms, HANG_TIMEOUT_MS);
      assert.equal(peer.connections(), 1);
    } finally {
      await peer.close();
    }
  });

  test('a malformed reply, an ERROR reply and a close without a reply are temporary 4.7.1, never clean', async () => {
    const replies: Array<[string, RegExp]> = [
      ['stream: MAYBE\0', /malformed reply/],
      ['PONG\0', /malformed reply/],
      ['stream:  FOUND\0', /malformed reply/],
      ['stream: lstat() failed. ERROR\0', /lstat\(\) failed \(ERROR\)/],
      ['', /closed without a reply/],
    ];
    for (const [reply, cause] of replies) {
      const peer = await fakePeer((socket) => socket.end(reply));
      try {
        const { error } = await temporary471(createClamd({ port: peer.port, timeoutMs: SCAN_TIMEOUT_MS }).scan(CLEAN));
        assert.match(causeOf(error), cause);
      } finally {
        await peer.close();
      }
    }
    // What clamd itself sends.
    assert.deepEqual(parseClamdReply('stream: OK', 'x'), { infected: false });
    assert.deepEqual(parseClamdReply('stream: Win.Test.EICAR_HDB-1 FOUND', 'x'), { infected: true, signature: 'Win.Test.EICAR_HDB-1' });
    assert.throws(() => parseClamdReply('INSTREAM size limit exceeded. ERROR', 'x'), (err: MailError) => err.status === '4.7.1' && /too large/.test(err.message));
  });

  test('neither a socket nor a port is a configuration error', () => {
    assert.throws(() => createClamd({ timeoutMs: 1000 }), /socket path or a TCP port/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('spamd (SpamAssassin, SPAMC/SPAMD), harness rules only', () => {
  let spamd: Spamd;
  before(async () => {
    spamd = await startSpamd();
    console.log(`spamd (local rules) started in ${spamd.startMs} ms`);
  });
  after(async () => {
    await spamd?.stop();
  });

  test('the test phrase scores at least 20 and names the rule; the required score is spamd\'s', async () => {
    const scanner = createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    assert.equal(scanner.name, 'spamd');
    const result = await scanner.score(SPAMMY, CONTEXT);
    assert.ok(result.score >= SPAM_TEST_SCORE, `score ${result.score}`);
    assert.ok(result.rules.includes(SPAM_TEST_RULE), `rules ${result.rules.join(',')}`);
    assert.equal(result.required, spamd.requiredScore);
  });

  test('a plain message scores low and fires no rule', async () => {
    const result = await createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS }).score(CLEAN, CONTEXT);
    assert.ok(result.score < spamd.requiredScore, `score ${result.score}`);
    assert.deepEqual(result.rules, []);
    assert.equal(result.required, 5);
  });

  test('with a User header, and with messages scanned in parallel', async () => {
    const scanner = createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS, user: 'nobody' });
    const results = await Promise.all([SPAMMY, CLEAN, SPAMMY, CLEAN].map((m) => scanner.score(m, CONTEXT)));
    assert.deepEqual(results.map((r) => r.rules.includes(SPAM_TEST_RULE)), [true, false, true, false]);
  });

  test('spamd stopped: a temporary 4.7.1 at once; started again, it scores', async () => {
    const scanner = createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    await spamd.stop();
    try {
      const { error, ms } = await temporary471(scanner.score(SPAMMY, CONTEXT));
      assert.ok(ms < SCAN_TIMEOUT_MS, `took ${ms} ms`);
      assert.match(causeOf(error), /ECONNREFUSED/);
    } finally {
      await spamd.start();
    }
    assert.ok((await scanner.score(SPAMMY, CONTEXT)).rules.includes(SPAM_TEST_RULE));
  });

  test('spamd hung (SIGSTOP on its process group): a temporary 4.7.1 after timeoutMs', async () => {
    const scanner = createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: HANG_TIMEOUT_MS });
    await spamd.pause();
    try {
      const { ms } = await temporary471(scanner.score(SPAMMY, CONTEXT));
      assertTimedOut(ms, HANG_TIMEOUT_MS);
    } finally {
      spamd.resume();
    }
    assert.ok((await createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT)).score >= SPAM_TEST_SCORE);
  });

  test('a peer that accepts and never answers: a temporary 4.7.1 after timeoutMs', async () => {
    const peer = await fakePeer();
    try {
      const { ms } = await temporary471(createSpamd({ host: '127.0.0.1', port: peer.port, timeoutMs: HANG_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
      assertTimedOut(ms, HANG_TIMEOUT_MS);
    } finally {
      await peer.close();
    }
  });

  test('an error status, a reply without a Spam header, a cut body and a close without a reply are temporary 4.7.1', async () => {
    const replies: Array<[string, RegExp]> = [
      ['SPAMD/1.0 76 Bad header line: (EOF)\r\n', /error 76 Bad header line/],
      // A non-zero status wins even over a well-formed rest.
      ['SPAMD/1.1 74 EX_IOERR\r\nSpam: False ; 0.0 / 5.0\r\n\r\n', /error 74 EX_IOERR/],
      ['SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n', /no Spam header/],
      ['SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 20.0 / 5.0\r\n\r\nLDAPMTA_TEST_SPAM', /cut short/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots / 5.0\r\n\r\n', /malformed Spam header/],
      ['HTTP/1.1 200 OK\r\n\r\n', /malformed status line/],
      ['', /closed without a reply/],
    ];
    for (const [reply, cause] of replies) {
      const peer = await fakePeer((socket) => socket.once('data', () => socket.end(reply)));
      try {
        const { error } = await temporary471(createSpamd({ host: '127.0.0.1', port: peer.port, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
        assert.match(causeOf(error), cause);
      } finally {
        await peer.close();
      }
    }
    // A reply recorded from spamd 4.0.1 with Debian's stock rules, byte for byte.
    assert.deepEqual(
      parseSpamdReply(Buffer.from('SPAMD/1.1 0 EX_OK\r\nContent-length: 62\r\nSpam: False ; 3.3 / 5.0\r\n\r\nMISSING_DATE,MISSING_MID,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO'), 'x'),
      { score: 3.3, required: 5, rules: ['MISSING_DATE', 'MISSING_MID', 'NO_RECEIVED', 'NO_RELAYS', 'TVD_SPACE_RATIO'] },
    );
    assert.deepEqual(parseSpamdReply(Buffer.from('SPAMD/1.1 0 EX_OK\r\nSpam: True ; -1.5 / 5.0\r\n\r\n'), 'x'), { score: -1.5, required: 5, rules: [] });
  });
});

describe('spamd with Debian\'s stock rules (no sa-update, local tests only)', () => {
  let spamd: Spamd;
  before(async () => {
    spamd = await startSpamd({ rules: 'debian' });
    console.log(`spamd (Debian rules) started in ${spamd.startMs} ms`);
  });
  after(async () => {
    await spamd?.stop();
  });

  test('stock rules fire and score in fractions; the harness rule still decides the spam', async () => {
    const scanner = createSpamd({ host: '127.0.0.1', port: spamd.port, timeoutMs: SCAN_TIMEOUT_MS });
    // No Date, no Message-ID: stock rules MISSING_DATE and MISSING_MID fire.
    const bare = Buffer.from('From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello there\r\n');
    const plain = await scanner.score(bare, CONTEXT);
    assert.ok(plain.rules.includes('MISSING_DATE') && plain.rules.includes('MISSING_MID'), `rules ${plain.rules.join(',')}`);
    assert.ok(plain.score > 0 && plain.score < spamd.requiredScore, `score ${plain.score}`);
    assert.notEqual(plain.score, Math.round(plain.score), 'stock scores are fractional');
    const spam = await scanner.score(SPAMMY, CONTEXT);
    assert.ok(spam.score >= SPAM_TEST_SCORE && spam.rules.includes(SPAM_TEST_RULE), `score ${spam.score} rules ${spam.rules.join(',')}`);
  });
});

// ---------------------------------------------------------------------------------------------

/** Lua probes: each symbol fires only when rspamd saw that part of the envelope as sent. */
const PROBES = `
local function probe(name, check)
  rspamd_config:register_symbol({ name = name, score = 0.0, group = 'ldapmta', callback = function(task)
    if check(task) then return true end
    return false
  end })
end
probe('PROBE_IP', function(task) return tostring(task:get_from_ip()) == '192.0.2.7' end)
probe('PROBE_HELO', function(task) return task:get_helo() == 'mx.example.org' end)
probe('PROBE_FROM', function(task) local f = task:get_from('smtp'); return f ~= nil and f[1] ~= nil and f[1].addr == 'alice@example.org' end)
probe('PROBE_NULL_FROM', function(task) local f = task:get_from('smtp'); return f ~= nil and f[1] ~= nil and f[1].addr == '' end)
probe('PROBE_RCPTS', function(task)
  local r = task:get_recipients('smtp') or {}
  local seen = {}
  for _, a in ipairs(r) do table.insert(seen, a.addr) end
  -- rspamd's addr is the unquoted form of a quoted local part
  return table.concat(seen, ' ') == 'bob@example.org carol@example.net odd,local@example.org'
end)
probe('PROBE_USER', function(task) return task:get_user() == 'alice' end)
probe('PROBE_QUEUE_ID', function(task) return task:get_queue_id() == 'Q123' end)
`;

describe('rspamd (/checkv2)', () => {
  let rspamd: Rspamd;
  before(async () => {
    rspamd = await startRspamd({ extraLua: PROBES });
    console.log(`rspamd started in ${rspamd.startMs} ms`);
  });
  after(async () => {
    await rspamd?.stop();
  });

  test('the test phrase scores at least 20 and names the rule; required is the reject score', async () => {
    const scanner = createRspamd({ url: rspamd.url, timeoutMs: SCAN_TIMEOUT_MS });
    assert.equal(scanner.name, 'rspamd');
    const result = await scanner.score(SPAMMY, CONTEXT);
    assert.ok(result.score >= SPAM_TEST_SCORE, `score ${result.score}`);
    assert.ok(result.rules.includes(SPAM_TEST_RULE), `rules ${result.rules.join(',')}`);
    assert.equal(result.required, rspamd.actions.reject);
  });

  test('a plain message scores low and does not fire the rule', async () => {
    const result = await createRspamd({ url: `${rspamd.url}/`, timeoutMs: SCAN_TIMEOUT_MS }).score(CLEAN, CONTEXT);
    assert.ok(result.score < rspamd.actions.greylist, `score ${result.score}`);
    assert.ok(!result.rules.includes(SPAM_TEST_RULE));
  });

  test('the envelope reaches rspamd: IP, Helo, From, every Rcpt, User, Queue-Id', async () => {
    const scanner = createRspamd({ url: rspamd.url, timeoutMs: SCAN_TIMEOUT_MS });
    const full = await scanner.score(CLEAN, {
      sender: 'alice@example.org', recipients: ['bob@example.org', 'carol@example.net', '"odd,local"@example.org'],
      clientIp: '192.0.2.7', helo: 'mx.example.org', user: 'alice', queueId: 'Q123',
    });
    for (const probe of ['PROBE_IP', 'PROBE_HELO', 'PROBE_FROM', 'PROBE_RCPTS', 'PROBE_USER', 'PROBE_QUEUE_ID']) {
      assert.ok(full.rules.includes(probe), `${probe} did not fire: ${full.rules.join(',')}`);
    }
    assert.ok(!full.rules.includes('PROBE_NULL_FROM'));
    const bounce = await scanner.score(CLEAN, { sender: null, recipients: ['bob@example.org'], clientIp: '2001:db8::7', helo: 'mx.example.org', user: null });
    assert.ok(bounce.rules.includes('PROBE_NULL_FROM'), `rules ${bounce.rules.join(',')}`);
    for (const probe of ['PROBE_IP', 'PROBE_FROM', 'PROBE_RCPTS', 'PROBE_USER', 'PROBE_QUEUE_ID']) assert.ok(!bounce.rules.includes(probe), probe);
  });

  test('the controller answers /checkv2 with its password; without it (401) a temporary 4.7.1', async () => {
    const withPassword = createRspamd({ url: rspamd.controllerUrl, timeoutMs: SCAN_TIMEOUT_MS, password: rspamd.controllerPassword });
    assert.ok((await withPassword.score(SPAMMY, CONTEXT)).rules.includes(SPAM_TEST_RULE));
    const { error } = await temporary471(createRspamd({ url: rspamd.controllerUrl, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
    assert.match(causeOf(error), /HTTP 401/);
    await temporary471(createRspamd({ url: rspamd.controllerUrl, timeoutMs: SCAN_TIMEOUT_MS, password: 'wrong' }).score(SPAMMY, CONTEXT));
  });

  test('a wrong path (500 invalid command) is a temporary 4.7.1', async () => {
    const { error } = await temporary471(createRspamd({ url: `${rspamd.url}/nosuch/`, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
    assert.match(causeOf(error), /HTTP 500/);
  });

  test('rspamd stopped: a temporary 4.7.1 at once; started again, it scores', async () => {
    const scanner = createRspamd({ url: rspamd.url, timeoutMs: SCAN_TIMEOUT_MS });
    await rspamd.stop();
    try {
      const { error, ms } = await temporary471(scanner.score(SPAMMY, CONTEXT));
      assert.ok(ms < SCAN_TIMEOUT_MS, `took ${ms} ms`);
      assert.match(causeOf(error), /ECONNREFUSED/);
    } finally {
      await rspamd.start();
    }
    assert.ok((await scanner.score(SPAMMY, CONTEXT)).rules.includes(SPAM_TEST_RULE));
  });

  test('rspamd hung (SIGSTOP on its process group): a temporary 4.7.1 after timeoutMs', async () => {
    const scanner = createRspamd({ url: rspamd.url, timeoutMs: HANG_TIMEOUT_MS });
    await rspamd.pause();
    try {
      const { error, ms } = await temporary471(scanner.score(SPAMMY, CONTEXT));
      assertTimedOut(ms, HANG_TIMEOUT_MS);
      assert.match(causeOf(error), /no answer within 400 ms/);
    } finally {
      rspamd.resume();
    }
    assert.ok((await createRspamd({ url: rspamd.url, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT)).score >= SPAM_TEST_SCORE);
  });

  test('a peer that accepts and never answers, or stalls inside the body: a temporary 4.7.1 after timeoutMs', async () => {
    const silent = await fakePeer();
    const stalling = await fakePeer((socket) => socket.once('data', () =>
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"score": 1')));
    try {
      for (const peer of [silent, stalling]) {
        const { ms } = await temporary471(createRspamd({ url: `http://127.0.0.1:${peer.port}`, timeoutMs: HANG_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
        assertTimedOut(ms, HANG_TIMEOUT_MS);
        assert.equal(peer.connections(), 1);
      }
    } finally {
      await silent.close();
      await stalling.close();
    }
  });

  test('a 200 that is not a scan result is a temporary 4.7.1', async () => {
    const bodies: Array<[string, RegExp]> = [
      ['not json', /not JSON/],
      ['[]', /not a JSON object/],
      ['{"error":"bad"}', /error: bad/],
      ['{"score":"high"}', /no numeric score/],
      ['{"score":1,"symbols":[]}', /symbols is not an object/],
    ];
    for (const [body, cause] of bodies) {
      const peer = await fakePeer((socket) => socket.once('data', () =>
        socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)));
      try {
        const { error } = await temporary471(createRspamd({ url: `http://127.0.0.1:${peer.port}`, timeoutMs: SCAN_TIMEOUT_MS }).score(SPAMMY, CONTEXT));
        assert.match(causeOf(error), cause);
      } finally {
        await peer.close();
      }
    }
    assert.deepEqual(parseRspamdReply({ score: 2.5, required_score: 15, action: 'no action', symbols: { A: {}, B: {} } }, 'x'), { score: 2.5, required: 15, rules: ['A', 'B'] });
  });
});
