// What happens to a message after the MX port has taken it, seen from outside: Maildir++ quota at
// RCPT and at delivery (frank), Delivered-To loops and their RFC 3464 DSN, forwarding (catch-all,
// forward-only, mailbox + forward, a forwarding loop), mailbox paths that try to leave the mail
// base, directory changes between RCPT and DATA, 50 concurrent sessions and the connection limits.
// Real slapd, real sockets, real files; the server runs in-process with its own temp spool/mail.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript, type Reply } from '../harness/smtp-transcript.ts';
import {
  addressOf, assertReply, filesWith, marker, messagesWith, newNames, queuedWith, queueIdOf, simpleMessage, todoFiles, transaction, waitFor, waitForMessages, waitForQueueWithout, type StoredMessage, sendOnce,
} from '../fixtures/smtp-helpers.ts';

let slapd: Slapd;
/** Defaults; shared by the tests that only add their own markers and directory entries. */
let server: TestServer;
/** Servers started for one test or one group (own spool and mail base), stopped in after(). */
const others: TestServer[] = [];

before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd);
});
after(async () => {
  for (const s of others) await s.stop();
  await server?.stop();
  await slapd?.stop();
});

async function anotherServer(overrides: Record<string, unknown> = {}): Promise<TestServer> {
  const s = await startServer(slapd, overrides);
  others.push(s);
  return s;
}

const send = sendOnce;

/** RCPT TO:<address> after MAIL FROM:<from> [SIZE=n] in a fresh session, and its reply. */
async function rcpt(port: number, address: string, size: number | null = null, from = 'sender@outside.test'): Promise<Reply> {
  const t = await Transcript.open(port);
  try {
    await t.hello();
    assertReply(await t.command(`MAIL FROM:<${from}>${size === null ? '' : ` SIZE=${size}`}`), 250, null, 'MAIL');
    return await t.command(`RCPT TO:<${address}>`);
  } finally {
    t.close();
  }
}

/** Lines of 78 bytes (CRLF included) adding up to at least `bytes`. */
function bulkBody(bytes: number): string {
  return `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 78));
}

async function waitForQueueIdGone(spool: string, id: string, timeoutMs = 5000): Promise<void> {
  await waitFor(`queue entry ${id} to be removed`, async () => !(await todoFiles(spool)).some((t) => t.id === id), timeoutMs);
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A qmailUser/inetOrgPerson entry uid=<uid>,ou=people with mail <uid>@example.org; returns the address. */
async function addEntry(uid: string, attributes: Record<string, string | string[]>): Promise<string> {
  const lines = [`dn: uid=${uid},ou=people,dc=example,dc=org`, 'objectClass: inetOrgPerson', 'objectClass: qmailUser',
    `cn: ${uid}`, `sn: ${uid}`, `uid: ${uid}`, `mail: ${uid}@example.org`];
  for (const [name, value] of Object.entries(attributes)) for (const v of [value].flat()) lines.push(`${name}: ${v}`);
  await slapd.ldapadd(`${lines.join('\n')}\n`);
  return `${uid}@example.org`;
}

/**
 * An RFC 3464 bounce as stored in the sender's Maildir: null Return-Path, multipart/report with
 * the three parts in order, one failed recipient with `status`, and the original headers (which
 * hold `subject`).
 */
function assertDsn(message: StoredMessage, o: { sender: string; recipient: string; status: string; subject: string }): void {
  const lines = message.header.split('\n');
  assert.equal(lines[0], 'Return-Path: <>', 'a bounce has the null sender');
  assert.equal(lines[1], `Delivered-To: ${o.sender}`);
  assert.match(message.header, new RegExp(`^To: <${escapeRegExp(o.sender)}>$`, 'm'));
  assert.match(message.header, /^Auto-Submitted: auto-replied$/m);
  const type = /^Content-Type: multipart\/report; report-type=delivery-status; boundary="([^"]+)"$/m.exec(message.header);
  assert.ok(type, `not a multipart/report: ${message.header}`);
  const parts = message.body.split(`--${type[1]!}`);
  assert.equal(parts.length, 5, `three parts expected in ${message.body}`);
  assert.equal(parts.at(-1)?.trim(), '--', 'closing boundary');
  const [notification, report, headers] = parts.slice(1, -1);
  assert.match(notification!, /^Content-Type: text\/plain/m);
  assert.match(report!, /^Content-Type: message\/delivery-status$/m);
  assert.match(headers!, /^Content-Type: text\/rfc822-headers$/m);
  const finals = [...report!.matchAll(/^Final-Recipient: (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(finals, [`rfc822; ${o.recipient}`], 'the failed recipients');
  assert.match(report!, /^Action: failed$/m);
  assert.match(report!, new RegExp(`^Status: ${escapeRegExp(o.status)}$`, 'm'));
  assert.match(report!, new RegExp(`^Diagnostic-Code: .*\\b${escapeRegExp(o.status)}\\b`, 'm'));
  assert.match(headers!, new RegExp(`^Subject: ${escapeRegExp(o.subject)}$`, 'm'), 'the original headers are attached');
}

// ---------------------------------------------------------------------------------------------

describe('quota at RCPT (frank: mailQuotaSize 1 048 576, mailQuotaCount 1000)', () => {
  let quota: TestServer;
  before(async () => {
    quota = await anotherServer();
  });

  /** frank's Maildir, made afresh: tmp/ new/ cur/, the given cur/ file names (empty files), maildirsize when given. */
  async function frankMaildir(sizeFile: string | null, curNames: string[] = []): Promise<string> {
    const dir = quota.maildir('frank');
    await rm(dir, { recursive: true, force: true });
    for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    for (const name of curNames) await writeFile(join(dir, 'cur', name), '');
    if (sizeFile !== null) await writeFile(join(dir, 'maildirsize'), sizeFile);
    return dir;
  }

  const sizeFileOf = (dir: string) => readFile(join(dir, 'maildirsize'), 'utf8');

  test('usage above the size limit: RCPT frank → 452 4.2.2, alice in the same transaction → 250; only alice gets it; maildirsize untouched', async () => {
    const file = '1048576S,1000C\n1048577 300\n';
    const dir = await frankMaildir(file);
    const subject = marker('frank-full');
    const t = await Transcript.open(quota.smtpPort);
    await t.hello();
    const result = await transaction(t, 'sender@outside.test', ['frank@example.org', 'alice@example.org'], simpleMessage(subject));
    const rset = await t.command('RSET');
    t.close();
    assertReply(result.rcpts[0]!, 452, '4.2.2', 'RCPT frank over quota');
    assertReply(result.rcpts[1]!, 250, '2.1.5', 'RCPT alice after frank');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    assert.equal(rset.code, 250, 'the session goes on');
    const id = queueIdOf(result.end!);
    await waitForMessages(quota.maildir('alice'), subject);
    await waitForQueueIdGone(quota.config.spool, id);
    assert.deepEqual(await newNames(dir), [], 'frank got a copy');
    assert.equal(await sizeFileOf(dir), file, 'the RCPT check must not write maildirsize');
  });

  test('message count at the limit (1000 of 1000): RCPT frank → 452 4.2.2 even for a small message', async () => {
    await frankMaildir('1048576S,1000C\n5000 1000\n');
    assertReply(await rcpt(quota.smtpPort, 'frank@example.org'), 452, '4.2.2', 'count full');
  });

  test('with MAIL FROM SIZE: exactly filling the quota is accepted, one byte more is 452 4.2.2', async () => {
    await frankMaildir('1048576S,1000C\n1047000 300\n');
    assertReply(await rcpt(quota.smtpPort, 'frank@example.org', 1576), 250, '2.1.5', 'SIZE=1576 (1 047 000 + 1576 = the limit)');
    assertReply(await rcpt(quota.smtpPort, 'frank@example.org', 1577), 452, '4.2.2', 'SIZE=1577 (one byte over)');
    assertReply(await rcpt(quota.smtpPort, 'frank@example.org'), 250, '2.1.5', 'no SIZE: checked as an empty message');
  });

  test('no maildirsize: usage is recalculated from the ,S= sizes in cur/ (300 files, 1 048 577 bytes) → 452 4.2.2, nothing written', async () => {
    const names = Array.from({ length: 300 }, (_, i) => `1700000000.M${i}P1Q${i}.mx1,S=${i === 0 ? 1048577 - 299 * 3496 : 3496}:2,S`);
    const dir = await frankMaildir(null, names);
    assertReply(await rcpt(quota.smtpPort, 'frank@example.org'), 452, '4.2.2', 'over by the files');
    assert.equal(existsSync(join(dir, 'maildirsize')), false, 'the RCPT check created maildirsize');
  });

  test('a maildirsize that says "over" but has three lines is recalculated (empty Maildir) → 250, and delivery rewrites it', async () => {
    const dir = await frankMaildir('1048576S,1000C\n1000000 300\n48577 1\n');
    const subject = marker('frank-stale');
    const result = await send(quota.smtpPort, 'sender@outside.test', ['frank@example.org'], simpleMessage(subject));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT frank with a stale maildirsize');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const [message] = await waitForMessages(dir, subject);
    // The "<bytes> 1" line is appended after the file reaches new/; the queue settles after that.
    await waitForQueueIdGone(quota.config.spool, queueIdOf(result.end!));
    assert.equal(await sizeFileOf(dir), `1048576S,1000C\n0 0\n${message!.text.length} 1\n`, 'recalculated (0 0), then this delivery');
  });
});

describe('quota at delivery', () => {
  /**
   * frank's Maildir holds 1 047 000 of 1 048 576 bytes: a message sent without SIZE passes RCPT
   * (0 bytes fit) and is too big at delivery (about 3 500 bytes, far below mailSizeMax).
   */
  async function overAtDelivery(own: TestServer, what: string): Promise<{ dir: string; file: string; subject: string; id: string }> {
    const dir = own.maildir('frank');
    for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    const file = '1048576S,1000C\n1047000 300\n';
    await writeFile(join(dir, 'maildirsize'), file);
    const subject = marker(what);
    const result = await send(own.smtpPort, 'bob@example.org', ['frank@example.org'], simpleMessage(subject, bulkBody(3000)));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT frank without SIZE');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    return { dir, file, subject, id: queueIdOf(result.end!) };
  }

  test('by default (delivery.quotaDeferSeconds 0): bounced at once with 5.2.2, nothing delivered, maildirsize untouched', async () => {
    const own = await anotherServer();
    const { dir, file, subject, id } = await overAtDelivery(own, 'frank-bounce');
    const [dsn] = await waitForMessages(own.maildir('bob'), subject, 1, 10_000);
    assertDsn(dsn!, { sender: 'bob@example.org', recipient: 'frank@example.org', status: '5.2.2', subject });
    await waitForQueueIdGone(own.config.spool, id);
    assert.deepEqual(await newNames(dir), [], 'delivered over quota');
    assert.equal(await readFile(join(dir, 'maildirsize'), 'utf8'), file);
  });

  test('with delivery.quotaDeferSeconds: deferred 4.2.2, kept in the queue, not delivered, not bounced', async () => {
    const own = await anotherServer({ delivery: { quotaDeferSeconds: 86_400 } });
    const { dir, file, subject, id } = await overAtDelivery(own, 'frank-defer');
    const todo = await waitFor('the delivery attempt to be recorded', async () => {
      const found = (await todoFiles(own.config.spool)).find((t) => t.id === id);
      if (found === undefined) return 'gone' as const;
      return found.recipients.every((r) => r.attempts >= 1) ? found : null;
    });
    assert.notEqual(todo, 'gone', 'the message left the queue (delivered or bounced) instead of being deferred');
    if (todo === 'gone') return;
    assert.deepEqual(todo.recipients.map((r) => [addressOf(r.address), r.state, r.lastError?.status, r.lastError?.reply]),
      [['frank@example.org', 'pending', '4.2.2', 452]]);
    assert.deepEqual(await newNames(dir), [], 'delivered over quota');
    assert.equal(await readFile(join(dir, 'maildirsize'), 'utf8'), file);
    // No copy anywhere and no bounce to bob (whose Maildir is local).
    assert.deepEqual(await filesWith(own.config.mailboxes, subject), []);
    assert.deepEqual((await queuedWith(own.config.spool, subject)).map((q) => q.todo.id), [id], 'a bounce was queued');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Delivered-To loops', () => {
  test('a message from bob carrying Delivered-To: alice@example.org → 250 at DATA, not delivered to alice, a 5.4.6 DSN in bob\'s Maildir', async () => {
    const subject = marker('loop');
    const result = await send(server.smtpPort, 'bob@example.org', ['alice@example.org'],
      simpleMessage(subject, 'round and round\r\n', 'Delivered-To: alice@example.org\r\n'));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT alice');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const id = queueIdOf(result.end!);
    const [dsn] = await waitForMessages(server.maildir('bob'), subject);
    assertDsn(dsn!, { sender: 'bob@example.org', recipient: 'alice@example.org', status: '5.4.6', subject });
    await waitForQueueIdGone(server.config.spool, id);
    await waitForQueueWithout(server.config.spool, (r) => r === 'bob@example.org');
    assert.deepEqual(await messagesWith(server.maildir('alice'), subject), [], 'the looping message was delivered');
    assert.equal((await messagesWith(server.maildir('bob'), subject)).length, 1, 'exactly one DSN');
  });

  test('Delivered-To: someoneelse@example.org (and Delivered-To: alice in the body) does not stop a delivery to alice, and no DSN is sent', async () => {
    const subject = marker('no-loop');
    const result = await send(server.smtpPort, 'bob@example.org', ['alice@example.org'],
      simpleMessage(subject, 'just passing\r\nDelivered-To: alice@example.org\r\n', 'Delivered-To: someoneelse@example.org\r\n'));
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const id = queueIdOf(result.end!);
    const [message] = await waitForMessages(server.maildir('alice'), subject);
    const lines = message!.header.split('\n');
    assert.equal(lines[0], 'Return-Path: <bob@example.org>');
    assert.equal(lines[1], 'Delivered-To: alice@example.org');
    assert.match(message!.header, /^Delivered-To: someoneelse@example\.org$/m, 'the original Delivered-To is kept');
    assert.equal(message!.body, 'just passing\nDelivered-To: alice@example.org\n', 'a Delivered-To line in the body is not a header');
    await waitForQueueIdGone(server.config.spool, id);
    await waitForQueueWithout(server.config.spool, (r) => r === 'bob@example.org');
    assert.deepEqual(await messagesWith(server.maildir('bob'), subject), [], 'a DSN was sent');
  });
});

// ---------------------------------------------------------------------------------------------

describe('forwarding', () => {
  // nethelp (#13) is catchall@example.net with mailAlternateAddress @example.net, forward-only to alice.
  for (const address of ['catchall@example.net', 'whoever@example.net']) {
    test(`${address} (nethelp, forward-only) lands in alice's Maildir with Delivered-To: ${address} and the body intact`, async () => {
      const subject = marker('fwd-nethelp');
      const result = await send(server.smtpPort, 'bob@example.org', [address],
        simpleMessage(subject, 'first line\r\n..a line starting with a dot\r\n\r\nafter an empty line\r\n'));
      assertReply(result.rcpts[0]!, 250, '2.1.5', `RCPT ${address}`);
      assertReply(result.end!, 250, '2.6.0', 'end of data');
      const id = queueIdOf(result.end!);
      const [copy] = await waitForMessages(server.maildir('alice'), subject);
      const lines = copy!.header.split('\n');
      assert.equal(lines[0], 'Return-Path: <bob@example.org>', 'the original envelope sender is kept');
      assert.equal(lines[1], 'Delivered-To: alice@example.org');
      assert.equal(lines[2], `Delivered-To: ${address}`);
      assert.match(lines[3] ?? '', /^Received: from /);
      assert.match(copy!.header, new RegExp(`^\\tfor <${escapeRegExp(address)}>;$`, 'm'));
      assert.match(copy!.header, new RegExp(`^Subject: ${subject}$`, 'm'));
      assert.equal(copy!.body, 'first line\n.a line starting with a dot\n\nafter an empty line\n');
      await waitForQueueIdGone(server.config.spool, id);
      await waitForQueueWithout(server.config.spool, (r) => r === 'alice@example.org');
      assert.deepEqual(await filesWith(server.config.mailboxes, subject), [`example.org/alice/new/${copy!.name}`], 'exactly one copy, in alice\'s new/');
    });
  }

  test('carol (forward-only to carol@elsewhere.test): accepted, no local copy, a deferred message for carol@elsewhere.test in the spool', async () => {
    const subject = marker('fwd-carol');
    const result = await send(server.smtpPort, 'bob@example.org', ['carol@example.org'], simpleMessage(subject, 'for carol\r\n'));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT carol');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const id = queueIdOf(result.end!);
    const forwarded = await waitFor('a deferred copy for carol@elsewhere.test', async () => {
      const found = (await queuedWith(server.config.spool, subject)).filter((q) => q.todo.id !== id);
      return found.length === 1 && found[0]!.todo.recipients.every((r) => r.attempts >= 1) ? found[0]! : null;
    });
    await waitForQueueIdGone(server.config.spool, id);
    assert.deepEqual(forwarded.todo.recipients.map((r) => [addressOf(r.address), r.state, r.lastError?.status]),
      [['carol@elsewhere.test', 'pending', '4.4.3']], 'deferred: the harness points DNS at a closed port');
    assert.deepEqual(forwarded.todo.envelope.sender, { local: 'bob', domain: 'example.org' }, 'the original envelope sender is kept');
    assert.ok(forwarded.body.startsWith('Delivered-To: carol@example.org\r\nReceived: '), JSON.stringify(forwarded.body.slice(0, 80)));
    assert.ok(forwarded.body.endsWith(`Subject: ${subject}\r\n\r\nfor carol\r\n`), JSON.stringify(forwarded.body.slice(-80)));
    assert.deepEqual(await filesWith(server.config.mailboxes, subject), [], 'a local copy (or a DSN) was written');
    assert.deepEqual((await queuedWith(server.config.spool, subject)).map((q) => q.todo.id), [forwarded.todo.id]);
  });

  test('dave (mailbox + mailForwardingAddress): one copy in dave\'s Maildir and a deferred message for dave@partner.test', async () => {
    const subject = marker('fwd-dave');
    const result = await send(server.smtpPort, 'bob@example.org', ['dave@example.org'], simpleMessage(subject, 'for dave\r\n'));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT dave');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const id = queueIdOf(result.end!);
    const [copy] = await waitForMessages(server.maildir('dave'), subject);
    assert.equal(copy!.header.split('\n')[1], 'Delivered-To: dave@example.org');
    assert.equal(copy!.body, 'for dave\n');
    const forwarded = await waitFor('a deferred copy for dave@partner.test', async () => {
      const found = (await queuedWith(server.config.spool, subject)).filter((q) => q.todo.id !== id);
      return found.length === 1 && found[0]!.todo.recipients.every((r) => r.attempts >= 1) ? found[0]! : null;
    });
    await waitForQueueIdGone(server.config.spool, id);
    assert.deepEqual(forwarded.todo.recipients.map((r) => [addressOf(r.address), r.state, r.lastError?.status]),
      [['dave@partner.test', 'pending', '4.4.3']], 'deferred: the harness points DNS at a closed port');
    assert.deepEqual(forwarded.todo.envelope.sender, { local: 'bob', domain: 'example.org' });
    assert.ok(forwarded.body.startsWith('Delivered-To: dave@example.org\r\nReceived: '), JSON.stringify(forwarded.body.slice(0, 80)));
    assert.deepEqual(await filesWith(server.config.mailboxes, subject), [`example.org/dave/new/${copy!.name}`]);
  });

  test('two entries forwarding to each other: the loop is caught by Delivered-To and bob gets one 5.4.6 DSN; nothing stays queued', async () => {
    const tag = marker('fwdloop');
    const a = `${tag}-a@example.org`;
    const b = `${tag}-b@example.org`;
    await addEntry(`${tag}-a`, { mailForwardingAddress: b });
    await addEntry(`${tag}-b`, { mailForwardingAddress: a });
    const subject = marker('fwd-loop');
    const result = await send(server.smtpPort, 'bob@example.org', [a], simpleMessage(subject));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT the first forwarder');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const [dsn] = await waitForMessages(server.maildir('bob'), subject);
    assertDsn(dsn!, { sender: 'bob@example.org', recipient: a, status: '5.4.6', subject });
    await waitFor('the loop to leave the queue', async () => (await queuedWith(server.config.spool, subject)).length === 0);
    assert.deepEqual(await filesWith(server.config.mailboxes, subject), [`example.org/bob/new/${dsn!.name}`]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('mailbox paths that leave the mail base (mailMessageStore from the directory)', () => {
  const tag = marker('evil');
  /** [what, uid, mailMessageStore] */
  const cases: [string, string, string][] = [
    ['a relative store climbing out with ../..', `${tag}-up`, `../../etc/${tag}-up/`],
    ['an absolute store outside the base', `${tag}-abs`, `/etc/${tag}-abs/`],
    ['a ".." component below the domain directory', `${tag}-dotdot`, `example.org/../../${tag}-dotdot/`],
    ['a character qmail-ldap does not allow', `${tag}-char`, `example.org/${tag} char;x/`],
    ['the mail base itself', `${tag}-base`, './'],
  ];
  const control = `${tag}-ok`;
  before(async () => {
    for (const [, uid, store] of cases) await addEntry(uid, { mailMessageStore: store });
    // The same kind of entry with an absolute store inside the base: must be accepted and delivered.
    await addEntry(control, { mailMessageStore: `${server.config.mailboxes}/example.org/${control}/` });
  });

  /** Where a store would lead if it were followed (relative to the mail base). */
  const target = (store: string) => resolve(server.config.mailboxes, store);

  for (const [what, uid, store] of cases) {
    test(`${what} (${JSON.stringify(store)}) → RCPT 550 5.3.5`, async () => {
      assertReply(await rcpt(server.smtpPort, `${uid}@example.org`), 550, '5.3.5', store);
    });
  }

  test('in one transaction with a sane entry: each refused 550 5.3.5, the sane one delivered, nothing created outside the base', async () => {
    const subject = marker('evil-mix');
    const rcpts = [...cases.map(([, uid]) => `${uid}@example.org`), `${control}@example.org`];
    const result = await send(server.smtpPort, 'sender@outside.test', rcpts, simpleMessage(subject));
    for (const [i, [, , store]] of cases.entries()) assertReply(result.rcpts[i]!, 550, '5.3.5', store);
    assertReply(result.rcpts[cases.length]!, 250, '2.1.5', 'the sane entry');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const id = queueIdOf(result.end!);
    await waitForMessages(join(server.config.mailboxes, 'example.org', control), subject);
    await waitForQueueIdGone(server.config.spool, id);
    for (const [, , store] of cases) {
      if (store !== './') assert.equal(existsSync(target(store)), false, `${target(store)} was created`);
    }
    assert.deepEqual((await readdir(server.dir)).sort(), ['mail', 'spool'], 'something was created next to the mail base');
    assert.deepEqual(await readdir(server.config.mailboxes), ['example.org'], 'something was created in the mail base itself');
    assert.deepEqual(await filesWith(server.config.mailboxes, subject), [`example.org/${control}/new/${(await newNames(join(server.config.mailboxes, 'example.org', control)))[0]}`]);
  });

  test('a mailbox that is a symlink to a directory outside the base: 250 at RCPT, then a 5.3.5 DSN, nothing written at the target', async () => {
    const uid = `${tag}-link`;
    const outside = await mkdtemp(join(tmpdir(), 'ldapmta-outside-'));
    try {
      await mkdir(join(server.config.mailboxes, 'example.org'), { recursive: true });
      await symlink(outside, join(server.config.mailboxes, 'example.org', uid));
      const address = await addEntry(uid, { mailMessageStore: `example.org/${uid}/` });
      const subject = marker('evil-link');
      const result = await send(server.smtpPort, 'bob@example.org', [address], simpleMessage(subject));
      assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT (the store text itself is fine)');
      assertReply(result.end!, 250, '2.6.0', 'end of data');
      const [dsn] = await waitForMessages(server.maildir('bob'), subject);
      assertDsn(dsn!, { sender: 'bob@example.org', recipient: address, status: '5.3.5', subject });
      assert.deepEqual(await readdir(outside), [], 'something was created through the symlink');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  test('with a quota, a mailbox symlinked outside the base is refused at RCPT (550 5.3.5), not judged by the maildirsize out there', async () => {
    const uid = `${tag}-qlink`;
    const outside = await mkdtemp(join(tmpdir(), 'ldapmta-outside-'));
    try {
      for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(outside, sub));
      // "Over quota" out there: before the fix, RCPT answered 452 4.2.2 from this file.
      await writeFile(join(outside, 'maildirsize'), '1000S,10C\n5000 3\n');
      await mkdir(join(server.config.mailboxes, 'example.org'), { recursive: true });
      await symlink(outside, join(server.config.mailboxes, 'example.org', uid));
      const address = await addEntry(uid, { mailMessageStore: `example.org/${uid}/`, mailQuotaSize: '1000', mailQuotaCount: '10' });
      assertReply(await rcpt(server.smtpPort, address), 550, '5.3.5', 'RCPT to a quota mailbox leading outside');
      assert.equal(await readFile(join(outside, 'maildirsize'), 'utf8'), '1000S,10C\n5000 3\n');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  test('a store changed to ../../etc/… between RCPT and DATA: 250 at DATA, then a 5.3.5 DSN, and nothing written outside the base', async () => {
    const uid = `${tag}-late`;
    const address = await addEntry(uid, { mailMessageStore: `example.org/${uid}/` });
    const evil = `../../etc/${uid}/`;
    const subject = marker('evil-late');
    const t = await Transcript.open(server.smtpPort);
    await t.hello();
    assertReply(await t.command('MAIL FROM:<bob@example.org>'), 250, null, 'MAIL');
    assertReply(await t.command(`RCPT TO:<${address}>`), 250, '2.1.5', 'RCPT while the store is sane');
    await slapd.ldapmodify(`dn: uid=${uid},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mailMessageStore\nmailMessageStore: ${evil}\n-\n`);
    assertReply(await t.command('DATA'), 354, null, 'DATA');
    t.write(simpleMessage(subject));
    const end = await t.reply(15_000);
    t.close();
    assertReply(end, 250, '2.6.0', 'end of data');
    const [dsn] = await waitForMessages(server.maildir('bob'), subject);
    assertDsn(dsn!, { sender: 'bob@example.org', recipient: address, status: '5.3.5', subject });
    assert.equal(existsSync(target(evil)), false, `${target(evil)} was created`);
    assert.deepEqual(await newNames(server.maildir(uid)), []);
    assert.deepEqual((await readdir(server.dir)).sort(), ['mail', 'spool']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('directory changes between RCPT and DATA (decided again at delivery)', () => {
  const changes: [string, string, (dn: string) => string][] = [
    ['accountStatus set to disabled', '5.2.1', (dn) => `dn: ${dn}\nchangetype: modify\nreplace: accountStatus\naccountStatus: disabled\n-\n`],
    ['accountStatus set to deleted', '5.1.1', (dn) => `dn: ${dn}\nchangetype: modify\nreplace: accountStatus\naccountStatus: deleted\n-\n`],
    ['the entry removed from the directory', '5.1.1', (dn) => `dn: ${dn}\nchangetype: delete\n`],
  ];
  for (const [what, status, ldif] of changes) {
    test(`${what}: 250 at DATA, a ${status} DSN to the sender for that recipient only; alice in the same message is delivered`, async () => {
      const uid = marker('late');
      const address = await addEntry(uid, { mailMessageStore: `example.org/${uid}/` });
      const subject = marker('late-change');
      const t = await Transcript.open(server.smtpPort);
      await t.hello();
      assertReply(await t.command('MAIL FROM:<bob@example.org>'), 250, null, 'MAIL');
      assertReply(await t.command(`RCPT TO:<${address}>`), 250, '2.1.5', 'RCPT while active');
      assertReply(await t.command('RCPT TO:<alice@example.org>'), 250, '2.1.5', 'RCPT alice');
      await slapd.ldapmodify(ldif(`uid=${uid},ou=people,dc=example,dc=org`));
      assertReply(await t.command('DATA'), 354, null, 'DATA');
      t.write(simpleMessage(subject));
      const end = await t.reply(15_000);
      t.close();
      assertReply(end, 250, '2.6.0', 'end of data');
      const id = queueIdOf(end);
      const [dsn] = await waitForMessages(server.maildir('bob'), subject);
      assertDsn(dsn!, { sender: 'bob@example.org', recipient: address, status, subject });
      await waitForMessages(server.maildir('alice'), subject);
      await waitForQueueIdGone(server.config.spool, id);
      assert.deepEqual(await newNames(server.maildir(uid)), [], `${uid} got a copy`);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('concurrency', () => {
  test('50 nodemailer transports held open at once (one connection each) to alice and bob: all 250, each message lands exactly once', async () => {
    const busy = await anotherServer();
    const base = marker('burst');
    const subjectOf = (i: number) => `${base}-n${i}-end`;
    const N = 50;
    // A barrier: nodemailer asks for the message stream only once its session is up (after EHLO)
    // and cannot finish before the stream ends, so no message is released before all N sessions
    // are open together (a session refused at connect counts as arrived, or the rest would hang).
    let arrived = 0;
    let release!: () => void;
    const allArrived = new Promise<void>((done) => (release = done));
    const arrive = () => {
      if (++arrived === N) release();
    };
    const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
      const to = i % 2 === 0 ? 'alice@example.org' : 'bob@example.org';
      let counted = false;
      const raw = new Readable({
        read() {
          if (counted) return;
          counted = true;
          arrive();
          void allArrived.then(() => {
            this.push(`From: sender@outside.test\r\nTo: ${to}\r\nSubject: ${subjectOf(i)}\r\n\r\nmessage ${i} of ${N}\r\n`);
            this.push(null);
          });
        },
      });
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: busy.smtpPort, secure: false, ignoreTLS: true, pool: false });
      try {
        const info = await transport.sendMail({ envelope: { from: 'sender@outside.test', to: [to] }, raw });
        return { i, to, response: String(info.response), accepted: info.accepted };
      } catch (err) {
        if (!counted) {
          counted = true;
          arrive();
        }
        return { i, to, response: `error: ${(err as Error).message}`, accepted: [] };
      } finally {
        transport.close();
      }
    }));
    for (const r of results) {
      assert.match(r.response, /^250 2\.6\.0 Ok: queued as \S+$/, `message ${r.i}`);
      assert.deepEqual(r.accepted, [r.to], `message ${r.i}`);
    }
    assert.equal(new Set(results.map((r) => r.response)).size, N, 'every message got its own queue id');
    await waitForMessages(busy.maildir('alice'), base, N / 2, 15_000);
    await waitForMessages(busy.maildir('bob'), base, N / 2, 15_000);
    await waitForQueueWithout(busy.config.spool, () => true, 15_000);
    const inAlice = await messagesWith(busy.maildir('alice'), base);
    const inBob = await messagesWith(busy.maildir('bob'), base);
    assert.equal(inAlice.length + inBob.length, N);
    for (const r of results) {
      const [mine, other] = r.to === 'alice@example.org' ? [inAlice, inBob] : [inBob, inAlice];
      const subjectLine = `\nSubject: ${subjectOf(r.i)}\n`;
      const copies = mine.filter((m) => m.header.includes(subjectLine));
      assert.equal(copies.length, 1, `copies of message ${r.i} for ${r.to}`);
      assert.equal(copies[0]!.body, `message ${r.i} of ${N}\n`);
      assert.equal(other.filter((m) => m.header.includes(subjectLine)).length, 0, `message ${r.i} in the wrong Maildir`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('connection limits', () => {
  /** A new connection and the first reply the server sends on it. */
  async function connect(port: number): Promise<{ t: Transcript; reply: Reply }> {
    const t = await Transcript.open(port);
    try {
      return { t, reply: await t.reply(5000) };
    } catch (err) {
      t.close();
      throw err;
    }
  }

  async function assertClosedByServer(t: Transcript, what: string): Promise<void> {
    await assert.rejects(t.reply(5000), /connection closed/, `${what}: the server did not close the connection`);
  }

  /** Connects until greeted 220: the server frees a slot once it has seen a client's close. Bounded by waitFor. */
  function greetedOnceFree(port: number): Promise<Transcript> {
    return waitFor('a free connection slot', async () => {
      const { t, reply } = await connect(port);
      if (reply.code === 220) return t;
      t.close();
      return null;
    });
  }

  test('smtp.maxConnectionsPerIp 3: the 4th connection from 127.0.0.1 gets 421 4.7.0 and is closed; one closed, the next is greeted; the limit holds again', async () => {
    const limited = await anotherServer({ smtp: { maxConnectionsPerIp: 3 } });
    const open: Transcript[] = [];
    try {
      for (let i = 1; i <= 3; i++) {
        const { t, reply } = await connect(limited.smtpPort);
        open.push(t);
        assert.equal(reply.code, 220, `connection ${i}: ${reply.raw}`);
      }
      const fourth = await connect(limited.smtpPort);
      open.push(fourth.t);
      assertReply(fourth.reply, 421, '4.7.0', '4th connection');
      await assertClosedByServer(fourth.t, '4th connection');

      open[0]!.close();
      const replacement = await greetedOnceFree(limited.smtpPort);
      open.push(replacement);
      assert.equal((await replacement.command('EHLO client.example.test')).code, 250);

      const again = await connect(limited.smtpPort);
      open.push(again.t);
      assertReply(again.reply, 421, '4.7.0', 'a 4th connection again, with three open');
      await assertClosedByServer(again.t, 'the 4th connection again');
      for (const t of [open[1]!, open[2]!]) assert.equal((await t.command('EHLO client.example.test')).code, 250, 'the first sessions still work');
    } finally {
      for (const t of open) t.close();
    }
  });

  test('a connection refused for smtp.maxConnections does not lower its address\'s count for smtp.maxConnectionsPerIp', async () => {
    const limited = await anotherServer({ smtp: { maxConnections: 3, maxConnectionsPerIp: 2 } });
    const open: Transcript[] = [];
    const from = async (address: string): Promise<{ t: Transcript; reply: Reply }> => {
      const t = await Transcript.open(limited.smtpPort, '127.0.0.1', address);
      open.push(t);
      return { t, reply: await t.reply(5000) };
    };
    try {
      assert.equal((await from('127.0.0.1')).reply.code, 220, 'A from 127.0.0.1');
      const b = await from('127.0.0.2');
      const x = await from('127.0.0.2');
      assert.equal(b.reply.code, 220);
      assert.equal(x.reply.code, 220);
      const refused = await from('127.0.0.1');
      assert.equal(refused.reply.code, 421, `all ports busy: ${refused.reply.raw}`);
      await assertClosedByServer(refused.t, 'the connection over smtp.maxConnections');
      b.t.close();
      x.t.close();
      const d = await waitFor('a free slot for 127.0.0.1', async () => {
        const next = await from('127.0.0.1');
        if (next.reply.code === 220) return next;
        next.t.close();
        return null;
      });
      assert.equal(d.reply.code, 220, 'D from 127.0.0.1 (two open from it now)');
      // A third from 127.0.0.1: over its limit of 2, whatever the refused connection did to the count.
      const e = await from('127.0.0.1');
      assertReply(e.reply, 421, '4.7.0', 'a third connection from 127.0.0.1');
    } finally {
      for (const t of open) t.close();
    }
  });

  test('smtp.maxConnections 2: the 3rd connection gets a 421 with an RFC 3463 4.x.x status and is closed; one closed, the next is greeted', async () => {
    const limited = await anotherServer({ smtp: { maxConnections: 2 } });
    const open: Transcript[] = [];
    try {
      for (let i = 1; i <= 2; i++) {
        const { t, reply } = await connect(limited.smtpPort);
        open.push(t);
        assert.equal(reply.code, 220, `connection ${i}: ${reply.raw}`);
      }
      const third = await connect(limited.smtpPort);
      open.push(third.t);
      assert.equal(third.reply.code, 421, third.reply.raw);
      assert.match(third.reply.text, /^4\.\d{1,3}\.\d{1,3} /, `no enhanced status: ${third.reply.raw}`);
      await assertClosedByServer(third.t, '3rd connection');

      open[1]!.close();
      const replacement = await greetedOnceFree(limited.smtpPort);
      open.push(replacement);
      assert.equal((await replacement.command('EHLO client.example.test')).code, 250);

      const again = await connect(limited.smtpPort);
      open.push(again.t);
      assert.equal(again.reply.code, 421, `a 3rd connection again, with two open: ${again.reply.raw}`);
      await assertClosedByServer(again.t, 'the 3rd connection again');
      assert.equal((await open[0]!.command('EHLO client.example.test')).code, 250, 'the first session still works');
    } finally {
      for (const t of open) t.close();
    }
  });
});
