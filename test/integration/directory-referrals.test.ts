// Search result references (directory-model §6.6) against two real slapds: the first holds a
// referral object for ou=partners pointing at the second. Not followed by default (the entry
// behind it is unknown, as with qmail-ldap and Postfix); followed when directory.followReferrals
// is on, binding as the service account; a reference whose server is down fails temporarily.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateConfig } from '../../src/config.ts';
import { createDirectory } from '../../src/directory/index.ts';
import { silentLogger } from '../../src/log.ts';
import { parseAddress } from '../../src/mail.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-referrals-'));
let main: Slapd;
let partners: Slapd;

before(async () => {
  const partnersLdif = join(dir, 'partners.ldif');
  writeFileSync(partnersLdif, [
    'dn: dc=example,dc=org', 'objectClass: dcObject', 'objectClass: organization', 'dc: example', 'o: Example', '',
    'dn: ou=partners,dc=example,dc=org', 'objectClass: organizationalUnit', 'ou: partners', '',
    'dn: uid=pat,ou=partners,dc=example,dc=org', 'objectClass: inetOrgPerson', 'objectClass: qmailUser', 'cn: Pat', 'sn: Pat',
    'uid: pat', 'mail: pat@example.org', 'mailMessageStore: example.org/pat/', '',
  ].join('\n'));
  partners = await startSlapd({ sample: false, ldif: [partnersLdif] });
  const referralLdif = join(dir, 'referral.ldif');
  writeFileSync(referralLdif, [
    'dn: ou=partners,dc=example,dc=org', 'objectClass: referral', 'objectClass: extensibleObject', 'ou: partners',
    `ref: ${partners.url}/ou=partners,dc=example,dc=org`, '',
  ].join('\n'));
  main = await startSlapd({ ldif: [referralLdif] });
});

after(async () => {
  await main?.stop();
  await partners?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function directoryFor(followReferrals: boolean) {
  const config = validateConfig({
    hostname: 'mx1.example.org', mailboxes: join(dir, 'mail'), cache: { maxEntries: 0 }, log: { level: 'silent' },
    directory: { urls: [main.url], bindDN: main.rootDN, bindPassword: main.rootPassword, baseDN: main.baseDN, followReferrals, timeoutMs: 2000, connectTimeoutMs: 500 },
  });
  return createDirectory(config, { log: silentLogger() });
}

test('by default a search reference is not followed: the entry behind it is unknown, entries here still resolve', async () => {
  const directory = await directoryFor(false);
  try {
    assert.equal((await directory.resolveRecipient(parseAddress('pat@example.org'))).kind, 'unknown');
    assert.equal((await directory.resolveRecipient(parseAddress('alice@example.org'))).kind, 'mailbox');
  } finally {
    await directory.close();
  }
});

test('directory.followReferrals: the reference is followed with the service account, and the entry on the other server resolves', async () => {
  const directory = await directoryFor(true);
  try {
    const pat = await directory.resolveRecipient(parseAddress('pat@example.org'));
    assert.equal(pat.kind, 'mailbox');
    assert.equal(pat.kind === 'mailbox' && pat.dn, 'uid=pat,ou=partners,dc=example,dc=org');
    assert.equal(pat.kind === 'mailbox' && pat.mailbox, join(dir, 'mail', 'example.org', 'pat') + '/');
    assert.equal((await directory.resolveRecipient(parseAddress('alice@example.org'))).kind, 'mailbox');
    assert.equal((await directory.resolveRecipient(parseAddress('nobody@example.org'))).kind, 'unknown');
  } finally {
    await directory.close();
  }
});

test('a reference whose server is down fails the lookup temporarily (4.4.3), never "unknown"', async () => {
  const directory = await directoryFor(true);
  await partners.stop();
  try {
    await assert.rejects(directory.resolveRecipient(parseAddress('pat@example.org')), { kind: 'temporary', status: '4.4.3' });
  } finally {
    await directory.close();
    await partners.start();
  }
});
