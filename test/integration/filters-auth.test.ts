// SPF, DKIM and DMARC of mail from outside (filters.authentication), against a loopback DNS server
// serving the SPF, DKIM and DMARC records: a signed message from an aligned domain gets one
// Authentication-Results field saying pass; a forged one under p=reject is refused (550 5.7.1) and
// nothing is delivered; one under p=quarantine lands in the recipient's Junk folder; forged results
// and spam fields arriving from outside are removed; a trusted client is not filtered at all.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { assertReply, marker, messagesWith, sendOnce, waitForMessages } from '../fixtures/smtp-helpers.ts';

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const privateKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const publicKey = keys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

function message(from: string, subject: string, extra = ''): string {
  return `From: <${from}>\r\nTo: <alice@example.org>\r\nSubject: ${subject}\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <${subject}@test>\r\n${extra}\r\nhello\r\n`;
}

async function signed(text: string, domain: string): Promise<string> {
  const signer = { signingDomain: domain, selector: 'sel', privateKey, algorithm: 'rsa-sha256', canonicalization: 'relaxed/relaxed' };
  const result = await dkimSign(Buffer.from(text), { ...signer, signatureData: [signer] });
  assert.deepEqual(result.errors, []);
  return result.signatures.replace(/\r?\n/g, '\r\n') + text;
}

const dot = (text: string) => `${text.replace(/^\./gm, '..')}.\r\n`;

describe('filters.authentication against a loopback DNS', () => {
  let slapd: Slapd;
  let dns: TestDns;
  let server: TestServer;
  let trusted: TestServer;

  before(async () => {
    slapd = await startSlapd();
    dns = await startDns({
      txt: {
        'signed.example': ['v=spf1 ip4:127.0.0.1 -all'],
        'sel._domainkey.signed.example': [`v=DKIM1; k=rsa; p=${publicKey}`],
        '_dmarc.signed.example': ['v=DMARC1; p=reject'],
        'forged.example': ['v=spf1 ip4:192.0.2.1 -all'],
        '_dmarc.forged.example': ['v=DMARC1; p=reject'],
        'doubtful.example': ['v=spf1 ip4:192.0.2.1 -all'],
        '_dmarc.doubtful.example': ['v=DMARC1; p=quarantine'],
      },
    });
    const filters = { authentication: { enabled: true } };
    server = await startServer(slapd, { filters, delivery: { dnsServers: [dns.server] }, relay: { trustedNetworks: [] } });
    trusted = await startServer(slapd, { filters, delivery: { dnsServers: [dns.server] }, relay: { trustedNetworks: ['127.0.0.0/8'] } });
  });

  after(async () => {
    await server?.stop();
    await trusted?.stop();
    await dns?.close();
    await slapd?.stop();
  });

  test('a DKIM-signed message from an SPF-passing, aligned domain: delivered with one Authentication-Results saying pass', async () => {
    const subject = marker('signed');
    const sent = await sendOnce(server.smtpPort, 'news@signed.example', ['alice@example.org'], dot(await signed(message('news@signed.example', subject), 'signed.example')));
    assertReply(sent.end!, 250, null, 'accepted');
    const [stored] = await waitForMessages(server.maildir('alice'), subject, 1);
    const results = stored!.header.match(/^Authentication-Results:.*(\r?\n[ \t].*)*/gm) ?? [];
    assert.equal(results.length, 1, stored!.header);
    assert.match(results[0]!, /^Authentication-Results: mx1\.example\.org;/);
    assert.match(results[0]!, /dkim=pass/);
    assert.match(results[0]!, /spf=pass/);
    assert.match(results[0]!, /dmarc=pass/);
  });

  test('a forged sender under DMARC p=reject: 550 5.7.1 after DATA, nothing delivered', async () => {
    const subject = marker('forged');
    const sent = await sendOnce(server.smtpPort, 'ceo@forged.example', ['alice@example.org'], dot(message('ceo@forged.example', subject)));
    assertReply(sent.end!, 550, '5.7.1', 'DMARC reject');
    assert.match(sent.end!.text, /forged\.example/);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await messagesWith(server.maildir('alice'), subject), []);
  });

  test('a DMARC failure under p=quarantine lands in the Junk folder, not the inbox', async () => {
    const subject = marker('doubtful');
    const sent = await sendOnce(server.smtpPort, 'someone@doubtful.example', ['alice@example.org'], dot(message('someone@doubtful.example', subject)));
    assertReply(sent.end!, 250, null, 'accepted');
    const junk = join(server.maildir('alice'), '.Junk');
    const [stored] = await waitForMessages(junk, subject, 1);
    assert.match(stored!.header, /^X-LdapMTA-Quarantine: dmarc/m);
    assert.deepEqual(await messagesWith(server.maildir('alice'), subject), [], 'not in the inbox');
    assert.deepEqual(readdirSync(junk).sort(), ['cur', 'maildirfolder', 'new', 'tmp']);
  });

  test('results and spam fields arriving from outside are removed; those of another host are kept', async () => {
    const subject = marker('claims');
    const claims = 'Authentication-Results: mx1.example.org; dkim=pass header.d=bank.example\r\nX-Spam-Score: -100\r\nX-Spam-Flag: NO\r\nAuthentication-Results: relay.other.example; spf=pass\r\n';
    const sent = await sendOnce(server.smtpPort, 'news@signed.example', ['alice@example.org'], dot(await signed(message('news@signed.example', subject, claims), 'signed.example')));
    assertReply(sent.end!, 250, null, 'accepted');
    const [stored] = await waitForMessages(server.maildir('alice'), subject, 1);
    assert.doesNotMatch(stored!.header, /bank\.example/);
    assert.doesNotMatch(stored!.header, /X-Spam-Score: -100/);
    assert.match(stored!.header, /Authentication-Results: relay\.other\.example; spf=pass/);
    assert.equal((stored!.header.match(/^Authentication-Results: mx1\.example\.org;/gm) ?? []).length, 1, 'only ours');
  });

  test('a client in relay.trustedNetworks is not filtered: no Authentication-Results, a forged sender delivered', async () => {
    const subject = marker('trusted');
    const sent = await sendOnce(trusted.smtpPort, 'ceo@forged.example', ['alice@example.org'], dot(message('ceo@forged.example', subject)));
    assertReply(sent.end!, 250, null, 'accepted');
    const [stored] = await waitForMessages(trusted.maildir('alice'), subject, 1);
    assert.doesNotMatch(stored!.header, /Authentication-Results/);
  });
});
