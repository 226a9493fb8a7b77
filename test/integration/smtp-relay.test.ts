// Open-relay probes from an untrusted client (research §2.3): whatever the address syntax, nothing
// for a foreign domain is accepted or queued. Forms that parse to a local address are looked up
// literally (no %-hack, no bang path); a source route is stripped or refused, never followed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript, type Reply } from '../harness/smtp-transcript.ts';
import { assertReply, queuedRecipients, todoFiles } from '../fixtures/smtp-helpers.ts';

let slapd: Slapd;
let server: TestServer;
before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd); // relay.trustedNetworks is [] here: 127.0.0.1 is untrusted
});
after(async () => {
  await server?.stop();
  await slapd?.stop();
});

/** [probe as written inside RCPT TO:<...>, why it must not relay] */
const PROBES: [string, string][] = [
  ['user%foreign.test@example.org', '%-hack: a local part, looked up literally'],
  ['"user@foreign.test"@example.org', 'quoted local part holding an @'],
  ['foreign.test!user@example.org', 'UUCP bang path: a local part, looked up literally'],
  ['user@[127.0.0.1]', 'address literal (never a local domain)'],
  ['@example.org:user@foreign.test', 'source route to a foreign domain'],
  ['user@foreign.test.', 'trailing dot'],
  ['USER@FOREIGN.TEST', 'upper case'],
  ['relaytest@example.org.foreign.test', 'local domain as a prefix'],
  ['relaytest@evilexample.org', 'local domain as a suffix'],
  ['relaytest@[IPv6:::1]', 'IPv6 address literal'],
  ['foreign.test!relaytest', 'bang path without a domain'],
  ['relaytest', 'unqualified'],
  ['relaytest@foreign.test@example.org', 'double @'],
];

/** One probe in its own session: MAIL, RCPT, and DATA too if RCPT was (wrongly) accepted. */
async function probe(rcptPath: string, from = 'antispam@foreign.test'): Promise<{ mail: Reply; rcpt: Reply; end: Reply | null }> {
  const t = await Transcript.open(server.smtpPort);
  try {
    await t.hello('probe.foreign.test');
    const mail = await t.command(`MAIL FROM:<${from}>`);
    const rcpt = await t.command(`RCPT TO:<${rcptPath}>`);
    let end: Reply | null = null;
    if (rcpt.code === 250) {
      const data = await t.command('DATA');
      if (data.code === 354) {
        t.write('From: antispam@foreign.test\r\nSubject: relay probe\r\n\r\nrelayed?\r\n.\r\n');
        end = await t.reply();
      }
    }
    return { mail, rcpt, end };
  } finally {
    t.close();
  }
}

/** A 5xx (501 included) and never a 250 or a 4xx a spammer could retry into acceptance. */
function assertRefused(reply: Reply, what: string): void {
  assert.ok(reply.code >= 500 && reply.code < 600, `${what}: expected a 5xx, got ${JSON.stringify(reply.raw)}`);
}

for (const [path, why] of PROBES) {
  test(`RCPT TO:<${path}> (${why}) is refused`, async () => {
    const { mail, rcpt } = await probe(path);
    assertReply(mail, 250, null, 'MAIL');
    assertRefused(rcpt, `RCPT TO:<${path}>`);
  });
}

test('local-looking forms are looked up literally: 550 5.1.1, not 5.7.1 and not routed', async () => {
  for (const path of ['user%foreign.test@example.org', 'foreign.test!user@example.org']) {
    const { rcpt } = await probe(path);
    assertReply(rcpt, 550, '5.1.1', path);
  }
  // smtp-server refuses an @ inside a quoted local part as bad syntax (501); a lookup (550 5.1.1) would do too.
  const { rcpt } = await probe('"user@foreign.test"@example.org');
  if (rcpt.code !== 501) assertReply(rcpt, 550, '5.1.1', 'quoted local part');
});

test('foreign domains, address literals and routes to them are 554 5.7.1 (relay access denied)', async () => {
  for (const path of ['user@[127.0.0.1]', '@example.org:user@foreign.test', 'user@foreign.test.', 'USER@FOREIGN.TEST', 'relaytest@evilexample.org']) {
    const { rcpt } = await probe(path);
    // A refused syntax (501) is acceptable for the route; a relay decision must be 554 5.7.1.
    if (rcpt.code === 501) continue;
    assertReply(rcpt, 554, '5.7.1', path);
  }
});

test('a spoofed local sender does not open the relay; the null sender neither', async () => {
  for (const from of ['alice@example.org', '']) {
    const { mail, rcpt } = await probe('relaytest@foreign.test', from);
    assertReply(mail, 250, null, `MAIL FROM:<${from}>`);
    assertReply(rcpt, 554, '5.7.1', `MAIL FROM:<${from}> RCPT foreign`);
  }
});

test('a source route to a local user may be stripped and accepted, never relayed', async () => {
  const { rcpt } = await probe('@foreign.test:alice@example.org');
  assert.ok(rcpt.code === 250 || rcpt.code === 501 || rcpt.code === 553, `got ${rcpt.raw}`);
});

test('case and spacing variants of RCPT are not a way around the relay check', async () => {
  const t = await Transcript.open(server.smtpPort);
  try {
    await t.hello('probe.foreign.test');
    assertReply(await t.command('mail from:<antispam@foreign.test>'), 250, null, 'mail from');
    assertRefused(await t.command('rcpt to:<relaytest@foreign.test>'), 'rcpt to: (lower case)');
    const spaced = await t.command('RCPT TO: <relaytest@foreign.test>');
    assertRefused(spaced, 'RCPT TO: <…> (space)');
  } finally {
    t.close();
  }
});

test('after all probes, the queue holds nothing for a foreign domain', async () => {
  // Run them all once more, then look at todo/.
  for (const [path] of PROBES) await probe(path);
  const recipients = await queuedRecipients(server.config.spool);
  const foreign = recipients.filter((r) => !/@example\.(org|net)$/.test(r));
  assert.deepEqual(foreign, [], `queued for a foreign domain: ${JSON.stringify(foreign)}`);
  // A probe accepted for a local user (the stripped source route) may still be on its way to the Maildir: wait for it.
  let todos = await todoFiles(server.config.spool);
  for (let waited = 0; todos.length > 0 && waited < 5000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    todos = await todoFiles(server.config.spool);
  }
  assert.equal(todos.length, 0, `nothing should stay queued: ${JSON.stringify(todos.map((t) => t.recipients))}`);
});
