// Authenticated submission on 587 (STARTTLS) and 465 (implicit TLS) against the directory: nodemailer
// as the mail client, raw sockets for what a client library would not send. Logins, 530 without
// AUTH, no AUTH before TLS, sender and From: ownership, Message-ID/Date added, DKIM signed (and
// verified with mailauth), lockout after failed logins, hourly limits, the STARTTLS injection.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply, marker, waitForMessages } from '../fixtures/smtp-helpers.ts';

const TLS = { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') };

function transport(port: number, user: string, pass: string, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user, pass }, ...extra,
  });
}

/** EHLO, STARTTLS and EHLO again on a raw socket; returns a function that sends a line and reads one reply. */
async function tlsSession(port: number): Promise<{ command(line: string): Promise<string>; close(): void }> {
  const plain = await Transcript.open(port);
  await plain.hello();
  assertReply(await plain.command('STARTTLS'), 220, null, 'STARTTLS');
  const socket = tlsConnect({ socket: (plain as unknown as { socket: Socket }).socket, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (buffer += d));
  const reply = async (): Promise<string> => {
    for (let i = 0; i < 500; i++) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n/.exec(buffer);
      if (m) {
        buffer = buffer.slice(m[0].length);
        return m[0];
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no reply; got ${JSON.stringify(buffer)}`);
  };
  const command = async (line: string) => {
    socket.write(`${line}\r\n`);
    return reply();
  };
  await command('EHLO client.example.test');
  return { command, close: () => socket.destroy() };
}

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

describe('submission', () => {
  let slapd: Slapd;
  let server: TestServer;
  let tight: TestServer;
  let publicKey: string;
  let submission: number;

  before(async () => {
    slapd = await startSlapd();
    const dir = mkdtempSync(join(tmpdir(), 'ldapmta-dkim-'));
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(join(dir, 'example.org.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    publicKey = (keys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
    const common = {
      smtp: { tls: TLS },
      relay: { trustedNetworks: [] },
      dkim: { domains: { 'example.org': { selector: 's1', keyFile: join(dir, 'example.org.pem') } } },
    };
    server = await startServer(slapd, { ...common, listen: { submission: '127.0.0.1:0', submissions: '127.0.0.1:0' } });
    submission = server.running.ports.submission!;
    tight = await startServer(slapd, {
      ...common, listen: { submission: '127.0.0.1:0' },
      limits: { authFailuresPerLogin: 3, authFailuresPerIp: 100, lockoutSeconds: 60, messagesPerUserPerHour: 2, recipientsPerUserPerHour: 3 },
    });
  });
  after(async () => {
    await server?.stop();
    await tight?.stop();
    await slapd?.stop();
  });

  test('alice logs in (PLAIN after STARTTLS) and sends to bob: delivered, with Message-ID and Date added and a DKIM signature that verifies', async () => {
    const subject = marker('submit');
    const raw = `From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: ${subject}\r\n\r\nhello bob\r\n`;
    const info = await transport(submission, 'alice', 'Alice-pw-1').sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.org'] }, raw });
    assert.match(info.response, /^250 2\.6\.0 /);
    const [copy] = await waitForMessages(server.maildir('bob'), subject);
    assert.match(copy!.header, /^Message-ID: <[^@\s]+@mx1\.example\.org>$/m);
    assert.match(copy!.header, /^Date: \w{3}, \d{2} \w{3} \d{4} /m);
    assert.match(copy!.header, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org;/m);
    const file = readFileSync(join(server.maildir('bob'), 'new', copy!.name));
    const result = await dkimVerify(file, {
      resolver: async (name: string, type: string) => {
        if (name === 's1._domainkey.example.org' && type === 'TXT') return [[`v=DKIM1; k=rsa; p=${publicKey}`]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(result.results[0]?.status.result, 'pass', JSON.stringify(result.results[0]?.status));
  });

  test('AUTH LOGIN, a login by mail address, and port 465 (implicit TLS) work too; relaying to another domain is allowed after AUTH', async () => {
    const login = await transport(submission, 'alice@example.org', 'Alice-pw-1', { authMethod: 'LOGIN' })
      .sendMail({ from: 'alice@example.org', to: 'bob@example.org', subject: marker('login'), text: 'x' });
    assert.match(login.response, /^250 /);
    const implicit = await nodemailer.createTransport({ host: '127.0.0.1', port: server.running.ports.submissions!, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'bob', pass: 'Bob-pw-2' } })
      .sendMail({ from: 'bob@example.org', to: 'someone@remote.test', subject: marker('465'), text: 'x' });
    assert.match(implicit.response, /^250 2\.6\.0 /);
  });

  test('bad password, empty password, a disabled account (noaccess) and an unknown user: 535 5.7.8', async () => {
    for (const [user, pass] of [['alice', 'wrong'], ['ivan', 'Ivan-pw-9'], ['nobody-here', 'x']] as const) {
      await assert.rejects(transport(submission, user, pass).verify(), (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 535, `${user}: ${err.message}`);
        assert.match(err.response ?? '', /^535 5\.7\.8 /);
        return true;
      });
    }
    const s = await tlsSession(submission);
    try {
      assert.match(await s.command(`AUTH PLAIN ${plain('alice', '')}`), /^535 5\.7\.8 /);
    } finally {
      s.close();
    }
  });

  test('without AUTH: MAIL FROM gets 530 5.7.0; before STARTTLS AUTH is not offered and not taken; after it, it is offered', async () => {
    const t = await Transcript.open(submission);
    try {
      const ehlo = await t.hello();
      assert.doesNotMatch(ehlo.raw, /AUTH/, 'no AUTH in EHLO before TLS');
      assert.match(ehlo.raw, /STARTTLS/);
      assertReply(await t.command('MAIL FROM:<alice@example.org>'), 530, '5.7.0', 'MAIL without AUTH');
      const auth = await t.command(`AUTH PLAIN ${plain('alice', 'Alice-pw-1')}`);
      assert.equal(auth.code, 500, auth.raw);
      assertReply(await t.command('MAIL FROM:<alice@example.org>'), 530, '5.7.0', 'still not logged in');
    } finally {
      t.close();
    }
    const s = await tlsSession(submission);
    try {
      assert.match(await s.command('EHLO client.example.test'), /^250-AUTH PLAIN LOGIN\r$/m);
    } finally {
      s.close();
    }
  });

  test('submission.allowPlaintextAuthOnLoopback: a loopback client may log in without TLS', async () => {
    const open = await startServer(slapd, { listen: { submission: '127.0.0.1:0' }, submission: { allowPlaintextAuthOnLoopback: true } });
    try {
      const t = await Transcript.open(open.running.ports.submission!);
      try {
        assert.match((await t.hello()).raw, /AUTH PLAIN LOGIN/);
        assertReply(await t.command(`AUTH PLAIN ${plain('alice', 'Alice-pw-1')}`), 235, '2.7.0', 'AUTH in clear from loopback');
        assertReply(await t.command('MAIL FROM:<alice@example.org>'), 250, null, 'MAIL after AUTH');
      } finally {
        t.close();
      }
    } finally {
      await open.stop();
    }
  });

  test('sender ownership: another user\'s MAIL FROM or From: is 553 5.7.1; an alternate address of one\'s own is fine', async () => {
    const alice = transport(submission, 'alice', 'Alice-pw-1');
    await assert.rejects(alice.sendMail({ from: 'bob@example.org', to: 'bob@example.org', subject: 'x', text: 'x' }), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^553 5\.7\.1 /);
      return true;
    });
    await assert.rejects(alice.sendMail({ envelope: { from: 'alice@example.org', to: ['bob@example.org'] }, from: 'Boss <bob@example.org>', to: 'bob@example.org', subject: 'x', text: 'x' }), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^553 5\.7\.1 From: address <bob@example\.org>/);
      return true;
    });
    const dave = await transport(submission, 'dave', 'Dave-pw-4').sendMail({ from: 'shared@example.org', to: 'bob@example.org', subject: marker('alt'), text: 'x' });
    assert.match(dave.response, /^250 /);
  });

  test('commands pipelined after STARTTLS are discarded, never run inside TLS', async () => {
    const t = await Transcript.open(submission);
    await t.hello();
    t.write('STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n');
    assertReply(await t.reply(), 220, null, 'STARTTLS');
    const socket = tlsConnect({ socket: (t as unknown as { socket: Socket }).socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    socket.write('NOOP\r\n');
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy();
    assert.match(received, /^250 /, `the first reply inside TLS answers NOOP: ${JSON.stringify(received)}`);
    assert.equal(received.split('\r\n').filter((l) => l !== '').length, 1, `one reply only: ${JSON.stringify(received)}`);
  });

  test('failed logins: after authFailuresPerLogin the login is locked out (454 4.7.0), even with the right password', async () => {
    const port = tight.running.ports.submission!;
    for (let i = 0; i < 3; i++) {
      await assert.rejects(transport(port, 'bob', 'wrong').verify(), (err: Error & { responseCode?: number }) => err.responseCode === 535);
    }
    const started = Date.now();
    await assert.rejects(transport(port, 'bob', 'Bob-pw-2').verify(), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^454 4\.7\.0 too many failed logins/);
      return true;
    });
    assert.ok(Date.now() - started < 2000, 'a locked-out login is answered at once');
  });

  test('hourly limits: the third message (messagesPerUserPerHour 2) and the fourth recipient (3) get 451 4.7.1', async () => {
    const port = tight.running.ports.submission!;
    const alice = transport(port, 'alice', 'Alice-pw-1');
    await alice.sendMail({ from: 'alice@example.org', to: ['bob@example.org', 'dave@example.org'], subject: marker('one'), text: 'x' });
    // Two recipients used; the next message gets one more, and its second recipient is over the limit.
    const partial = await alice.sendMail({ from: 'alice@example.org', to: ['bob@example.org', 'dave@example.org'], subject: marker('two'), text: 'x' }) as unknown as { accepted: string[]; rejectedErrors?: { response?: string }[] };
    assert.deepEqual(partial.accepted, ['bob@example.org']);
    assert.match(partial.rejectedErrors?.[0]?.response ?? '', /^451 4\.7\.1 recipient limit reached/);
    await assert.rejects(alice.sendMail({ from: 'alice@example.org', to: 'bob@example.org', subject: 'x', text: 'x' }), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^451 4\.7\.1 message limit reached/);
      return true;
    });
  });
});

describe('abuse limits shared through Redis', () => {
  let slapd: Slapd;
  let redis: RedisServer;
  let nodes: TestServer[];

  before(async () => {
    slapd = await startSlapd();
    redis = await startRedis();
    const node = () => startServer(slapd, {
      smtp: { tls: TLS }, listen: { submission: '127.0.0.1:0' }, cache: { redis: redis.url, maxEntries: 0 },
      limits: { authFailuresPerLogin: 2, lockoutSeconds: 60 },
    });
    nodes = [await node(), await node()];
  });
  after(async () => {
    for (const n of nodes ?? []) await n.stop();
    await redis?.stop();
    await slapd?.stop();
  });

  test('failures on one node lock the login out on the other', async () => {
    const [one, two] = nodes as [TestServer, TestServer];
    for (let i = 0; i < 2; i++) {
      await assert.rejects(transport(one.running.ports.submission!, 'dave', 'wrong').verify(), (err: Error & { responseCode?: number }) => err.responseCode === 535);
    }
    await assert.rejects(transport(two.running.ports.submission!, 'dave', 'Dave-pw-4').verify(), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^454 4\.7\.0 /);
      return true;
    });
  });
});

describe('send-as: list members and a send-as attribute', () => {
  let slapd: Slapd;
  let server: TestServer;

  before(async () => {
    slapd = await startSlapd();
    server = await startServer(slapd, {
      smtp: { tls: TLS }, listen: { submission: '127.0.0.1:0' },
      submission: { sendAsGroupMembers: true },
      // Any attribute will do for the test: dave's mailForwardingAddress (dave@partner.test) becomes a send-as address.
      directory: { auth: { sendAsAttribute: 'mailForwardingAddress' } },
    });
  });
  after(async () => {
    await server?.stop();
    await slapd?.stop();
  });

  test('a member of staff (alice) may send as staff@example.org, in MAIL FROM and From:; a non-member (dave) may not', async () => {
    const port = server.running.ports.submission!;
    const ok = await transport(port, 'alice', 'Alice-pw-1').sendMail({ from: 'Staff <staff@example.org>', to: 'bob@example.org', subject: marker('as-list'), text: 'x' });
    assert.match(ok.response, /^250 /);
    await assert.rejects(transport(port, 'dave', 'Dave-pw-4').sendMail({ from: 'staff@example.org', to: 'bob@example.org', subject: 'x', text: 'x' }), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^553 5\.7\.1 /);
      return true;
    });
  });

  test('directory.auth.sendAsAttribute: the values of that attribute count as the user\'s own', async () => {
    const port = server.running.ports.submission!;
    const ok = await transport(port, 'dave', 'Dave-pw-4').sendMail({ from: 'dave@partner.test', to: 'bob@example.org', subject: marker('as-attr'), text: 'x' });
    assert.match(ok.response, /^250 /);
    await assert.rejects(transport(port, 'bob', 'Bob-pw-2').sendMail({ from: 'dave@partner.test', to: 'bob@example.org', subject: 'x', text: 'x' }), (err: Error & { response?: string }) => {
      assert.match(err.response ?? '', /^553 5\.7\.1 /);
      return true;
    });
  });
});
