// The directory going away under a running MX (research §3.1, §2.16): every recipient decision
// that needs it becomes 451 4.4.3 — never a 5xx that would bounce good mail — and the server
// recovers by itself when slapd comes back. The harness starts the server with the cache off.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript, type Reply } from '../harness/smtp-transcript.ts';
import { assertReply, marker, simpleMessage, transaction, waitForMessages } from '../fixtures/smtp-helpers.ts';

let slapd: Slapd;
let server: TestServer;
before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd);
  assert.equal(server.config.cache.maxEntries, 0, 'the harness must start the server with the cache off');
});
after(async () => {
  await server?.stop();
  await slapd?.stop();
});

async function rcptReplies(addresses: readonly string[]): Promise<Reply[]> {
  const t = await Transcript.open(server.smtpPort);
  try {
    await t.hello();
    assertReply(await t.command('MAIL FROM:<sender@outside.test>'), 250, null, 'MAIL');
    const replies: Reply[] = [];
    for (const address of addresses) replies.push(await t.command(`RCPT TO:<${address}>`, 15_000));
    return replies;
  } finally {
    t.close();
  }
}

test('directory up: alice → 250', async () => {
  const [reply] = await rcptReplies(['alice@example.org']);
  assert.equal(reply!.code, 250, reply!.raw);
});

test('directory down: RCPT → 451 4.4.3, never 5xx; back up: 250 and delivered', async () => {
  await slapd.stop();
  try {
    const started = Date.now();
    const replies = await rcptReplies(['alice@example.org', 'bobby-x@example.org', 'grace@example.org', 'nobody@example.net']);
    const names = ['alice', 'bobby-x (unknown)', 'grace (disabled)', 'nobody@example.net (catch-all)'];
    replies.forEach((reply, i) => assertReply(reply, 451, '4.4.3', `${names[i]} with the directory down`));
    assert.ok(Date.now() - started < 12_000, `the refusals took ${Date.now() - started} ms`);
    // A foreign domain needs no directory: still refused as a relay attempt, not deferred.
    const [foreign] = await rcptReplies(['someone@foreign.test']);
    assertReply(foreign!, 554, '5.7.1', 'foreign with the directory down');
  } finally {
    await slapd.start();
  }
  const [back] = await rcptReplies(['alice@example.org']);
  assert.equal(back!.code, 250, `after slapd restarted: ${back!.raw}`);

  const subject = marker('after-outage');
  const t = await Transcript.open(server.smtpPort);
  await t.hello();
  const result = await transaction(t, 'sender@outside.test', ['alice@example.org'], simpleMessage(subject));
  t.close();
  assertReply(result.end!, 250, '2.6.0', 'end of data');
  await waitForMessages(server.maildir('alice'), subject);
});
