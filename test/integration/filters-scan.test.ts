// Content scanning over SMTP with the real daemons (Debian's clamd, spamd and rspamd, started by the
// harness on loopback): the EICAR test string is refused with 554 5.7.1 naming the signature and
// never delivered; a message with the test spam phrase lands in the recipient's Junk folder with
// X-Spam fields, or is refused (550 5.7.1) above rejectScore, or stays in the inbox for a recipient
// with a higher junk score of their own; a clean message is delivered with X-Spam-Flag: NO; a
// scanner that is down gives 451 4.7.1, or accept-and-tag when failing open.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EICAR, EICAR_SIGNATURE, startClamd, type Clamd } from '../harness/clamd.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startRspamd } from '../harness/rspamd.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { SPAM_TEST_PHRASE, SPAM_TEST_RULE, startSpamd, type Spamd } from '../harness/spamd.ts';
import { spoolEntries } from '../fixtures/crash-smtp.ts';
import { assertReply, marker, messagesWith, sendOnce, simpleMessage, waitForMessages } from '../fixtures/smtp-helpers.ts';

describe('content scanning with clamd and spamd/rspamd', () => {
  let slapd: Slapd;
  let clamd: Clamd;
  let spamd: Spamd;
  let rspamd: Awaited<ReturnType<typeof startRspamd>>;
  const servers: TestServer[] = [];
  const start = async (filters: Record<string, unknown>) => {
    const server = await startServer(slapd, { filters, relay: { trustedNetworks: [] } });
    servers.push(server);
    return server;
  };
  const spamFilters = (extra: Record<string, unknown> = {}) => ({
    clamav: { address: `127.0.0.1:${clamd.port}`, maxBytes: clamd.streamMaxLength },
    spam: { scanner: 'spamd', address: `127.0.0.1:${spamd.port}`, tagScore: 5, junkScore: 5, rejectScore: 25, userJunkScoreAttribute: 'description', ...extra },
  });

  before(async () => {
    slapd = await startSlapd();
    [clamd, spamd, rspamd] = await Promise.all([startClamd(), startSpamd(), startRspamd()]);
    // bob tolerates more spam than the default junk score.
    await slapd.ldapmodify('dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: 50\n');
  });
  after(async () => {
    for (const s of servers) await s.stop();
    await Promise.all([clamd?.stop(), spamd?.stop(), rspamd?.stop()]);
    await slapd?.stop();
  });

  test('a message carrying EICAR: 554 5.7.1 naming the signature, nothing delivered', async () => {
    const server = await start(spamFilters());
    const mark = marker('virus');
    const sent = await sendOnce(server.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(mark, `${EICAR}\r\n`));
    assertReply(sent.end!, 554, '5.7.1', 'virus');
    assert.match(sent.end!.text, new RegExp(EICAR_SIGNATURE.replace(/\./g, '\\.')));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await messagesWith(server.maildir('alice'), mark), []);
    // The queue's file was opened while the message was checked: a refusal leaves nothing behind.
    for (const sub of ['mess', 'todo', 'tmp']) assert.deepEqual(spoolEntries(server.config.spool, sub), [], `spool/${sub} empty`);
  });

  test('the spam phrase (score 20): delivered into alice\'s Junk with X-Spam fields; bob (junk score 50) gets it in his inbox', async () => {
    const server = await start(spamFilters());
    const mark = marker('spammy');
    const sent = await sendOnce(server.smtpPort, 'someone@outside.test', ['alice@example.org', 'bob@example.org'], simpleMessage(mark, `buy now ${SPAM_TEST_PHRASE}\r\n`));
    assertReply(sent.end!, 250, null, 'accepted under rejectScore 25');
    const [junk] = await waitForMessages(join(server.maildir('alice'), '.Junk'), mark, 1);
    assert.match(junk!.header, /^X-Spam-Flag: YES$/m);
    assert.match(junk!.header, /^X-Spam-Score: 20\.0$/m);
    assert.match(junk!.header, new RegExp(`^X-Spam-Status: Yes, score=20\\.0 required=5\\.0 tests=.*${SPAM_TEST_RULE}`, 'm'));
    assert.deepEqual(await messagesWith(server.maildir('alice'), mark), [], 'not in alice\'s inbox');
    await waitForMessages(server.maildir('bob'), mark, 1);
  });

  test('above rejectScore the spam phrase is refused, 550 5.7.1; a clean message is delivered with X-Spam-Flag: NO', async () => {
    const server = await start(spamFilters({ rejectScore: 15 }));
    const spammy = await sendOnce(server.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(marker('refused'), `${SPAM_TEST_PHRASE}\r\n`));
    assertReply(spammy.end!, 550, '5.7.1', 'spam');
    const mark = marker('clean');
    const clean = await sendOnce(server.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(mark, 'see you tomorrow\r\n'));
    assertReply(clean.end!, 250, null, 'clean');
    const [stored] = await waitForMessages(server.maildir('alice'), mark, 1);
    assert.match(stored!.header, /^X-Spam-Flag: NO$/m);
  });

  test('rspamd as the scanner: the phrase is scored and filed in Junk', async () => {
    const server = await start({ spam: { scanner: 'rspamd', address: rspamd.url, junkScore: 5, rejectScore: 100 } });
    const mark = marker('rspamd');
    assertReply((await sendOnce(server.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(mark, `${SPAM_TEST_PHRASE}\r\n`))).end!, 250, null, 'accepted');
    const [junk] = await waitForMessages(join(server.maildir('alice'), '.Junk'), mark, 1);
    assert.match(junk!.header, /^X-Spam-Flag: YES$/m);
  });

  test('a scanner that is down: 451 4.7.1 (the sender retries); with failOpen the message is accepted and tagged Unknown', async () => {
    const closed = await start({ clamav: { address: '127.0.0.1:9', timeoutMs: 1000 } });
    assertReply((await sendOnce(closed.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(marker('down')))).end!, 451, '4.7.1', 'clamd down');
    const open = await start({ clamav: { address: '127.0.0.1:9', timeoutMs: 1000, failOpen: true } });
    const mark = marker('failopen');
    assertReply((await sendOnce(open.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(mark))).end!, 250, null, 'fail open');
    const [stored] = await waitForMessages(open.maildir('alice'), mark, 1);
    assert.match(stored!.header, /^X-Spam-Status: Unknown/m);
    await spamd.pause();
    try {
      const stalled = await start({ spam: { scanner: 'spamd', address: `127.0.0.1:${spamd.port}`, timeoutMs: 800 } });
      assertReply((await sendOnce(stalled.smtpPort, 'someone@outside.test', ['alice@example.org'], simpleMessage(marker('stalled')))).end!, 451, '4.7.1', 'spamd not answering');
    } finally {
      spamd.resume();
    }
  });
});
