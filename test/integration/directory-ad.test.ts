// The `ad` directory profile against a real Samba AD domain controller (issue 7): the DC is
// provisioned into a temp dir, its schema extended with the Exchange attributes an Exchange install
// adds, and loaded with schema/ad-sample.ldif (docs/directory-ad.md). Checked through ldapmta's own
// directory layer and over its real SMTP and submission sockets: primary and secondary
// proxyAddresses, contacts and mail users forward-only, altRecipient, quota and mailHost from
// configured attributes, disabled accounts (noaccess or refused), nested groups with a cycle (the
// server's in-chain rule and ldapmta's own walk with ranged member reads and small pages), logins
// by sAMAccountName, UPN and address (bound as the UPN), LDAPS, StartTLS and the Global Catalog.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, validateConfig } from '../../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../../src/directory/index.ts';
import type { Resolution } from '../../src/directory/types.ts';
import { silentLogger } from '../../src/log.ts';
import { parseAddress } from '../../src/mail.ts';
import { assertReply, marker, sendOnce, simpleMessage, waitForMessages } from '../fixtures/smtp-helpers.ts';
import { cli, showCli } from '../harness/cli.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSambaDc, type SambaDc } from '../harness/samba.ts';
import { REPO_ROOT } from '../harness/slapd.ts';
import { memoryLog } from '../harness/log.ts';
import { Transcript } from '../harness/smtp-transcript.ts';

const SERVICE = { upn: 'ldapmta@example.test', password: 'Service-Pw-2026!' };
const PASSWORDS = { alice: 'Alice-Pw-2026!', bob: 'Bob-Pw-2026!', leaver: 'Leaver-Pw-2026!' } as const;
const AD_ATTRIBUTES = { mailHost: 'extensionAttribute1', quotaSize: 'mDBStorageQuota' };

let dc: SambaDc;
const dir = mkdtempSync(join(tmpdir(), 'ldapmta-ad-'));
const open: { close(): Promise<void> }[] = [];

before(async () => {
  dc = await startSambaDc();
  await dc.extendSchemaForExchange();
  await dc.add(readFileSync(join(REPO_ROOT, 'schema', 'ad-sample.ldif'), 'utf8'));
  await dc.tool(['user', 'setpassword', 'ldapmta', `--newpassword=${SERVICE.password}`]);
  for (const [user, password] of Object.entries(PASSWORDS)) await dc.tool(['user', 'setpassword', user, `--newpassword=${password}`]);
  // Setting a password enables the account again (it was created disabled, 546): disable it after.
  await dc.tool(['user', 'disable', 'leaver']);
});

after(async () => {
  for (const o of open.splice(0)) await o.close().catch(() => undefined);
  await dc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The directory section for the DC; `extra` is merged in (one level deep for ad/attributes/tls). */
function directorySection(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { ad, attributes, tls, ...rest } = extra as { ad?: object; attributes?: object; tls?: object };
  return {
    profile: 'ad', urls: [dc.url], bindDN: SERVICE.upn, bindPassword: SERVICE.password, baseDN: dc.baseDN,
    timeoutMs: 5000, connectTimeoutMs: 1000, quotaSizeUnit: 'kilobytes',
    attributes: { ...AD_ATTRIBUTES, ...attributes }, ad: { ...ad }, tls: { ...tls }, ...rest,
  };
}

async function directoryWith(extra: Record<string, unknown> = {}, log = silentLogger()): Promise<DirectoryHandle> {
  const config = validateConfig({
    hostname: 'mx1.example.test', localDomains: ['example.test'], mailboxes: join(dir, 'mail'),
    cache: { maxEntries: 0 }, log: { level: 'silent' }, directory: directorySection(extra),
  });
  const directory = await createDirectory(config, { log, baseDir: dir });
  open.push(directory);
  return directory;
}

const resolve = (d: DirectoryHandle, address: string): Promise<Resolution> => d.resolveRecipient(parseAddress(address));
const sorted = (list: readonly string[]) => [...list].sort();

describe('recipients from Active Directory (profile ad)', () => {
  let directory: DirectoryHandle;
  before(async () => {
    directory = await directoryWith();
  });

  test('primary (SMTP:) and secondary (smtp:) proxyAddresses, in any case, reach one mailbox from {domain}/{sAMAccountName}; lookup says which attribute matched', async () => {
    for (const address of ['alice@example.test', 'A.Smith@EXAMPLE.test']) {
      const r = await resolve(directory, address);
      assert.equal(r.kind, 'mailbox', address);
      if (r.kind !== 'mailbox') return;
      assert.equal(r.dn, `CN=Alice Smith,CN=Users,${dc.baseDN}`);
      assert.equal(r.address, 'alice@example.test');
      assert.equal(r.mailbox, join(dir, 'mail', 'example.test', 'alice') + '/');
      assert.deepEqual(sorted(r.addresses), ['a.smith@example.test', 'alice@example.test']);
      assert.equal(r.accountStatus, 'active');
      assert.equal(r.local, true);
    }
    const secondary = await directory.lookup(parseAddress('a.smith@example.test'));
    assert.equal(secondary.resolution.kind === 'mailbox' && secondary.resolution.matchedBy, 'proxyAddresses (smtp:)');
    // The same through the command an admin runs.
    const config = join(dir, 'lookup.yaml');
    writeFileSync(config, JSON.stringify({ hostname: 'mx1.example.test', localDomains: ['example.test'], mailboxes: join(dir, 'mail'), directory: directorySection() }));
    const shown = await cli(['lookup', 'A.Smith@example.test', '--config', config]);
    assert.equal(shown.code, 0, showCli(shown));
    assert.match(shown.stdout, /A\.Smith@example\.test: mailbox/);
    assert.match(shown.stdout, /matched by\s+proxyAddresses \(smtp:\)/, showCli(shown));
    assert.match(shown.stdout, /address\s+alice@example\.test/);
    const primary = await directory.lookup(parseAddress('alice@example.test'));
    assert.equal(primary.resolution.kind === 'mailbox' && primary.resolution.matchedBy, 'mail');
  });

  test('only smtp-typed values are addresses: the X400 value and unknown addresses are not found', async () => {
    assert.equal((await resolve(directory, 'nobody@example.test')).kind, 'unknown');
    assert.equal((await resolve(directory, 's=smith@example.test')).kind, 'unknown');
  });

  test('quota from mDBStorageQuota in kilobytes; mailHost from extensionAttribute1 routes to the other node', async () => {
    const alice = await resolve(directory, 'alice@example.test');
    assert.deepEqual(alice.kind === 'mailbox' && alice.quota, { bytes: 1_024_000, count: null });
    const dave = await resolve(directory, 'dave@example.test');
    assert.equal(dave.kind, 'mailbox');
    assert.equal(dave.kind === 'mailbox' && dave.mailHost, 'mx2.example.test');
    assert.equal(dave.kind === 'mailbox' && dave.local, false);
  });

  test('a contact and a mail user (targetAddress) are forward-only recipients', async () => {
    const partner = await resolve(directory, 'partner@example.test');
    assert.equal(partner.kind, 'forward');
    assert.deepEqual(partner.kind === 'forward' && partner.forwards, ['partner@partner.example']);
    const carol = await resolve(directory, 'carol@example.test');
    assert.equal(carol.kind, 'forward');
    assert.deepEqual(carol.kind === 'forward' && carol.forwards, ['carol@elsewhere.example']);
  });

  test('altRecipient (a DN) forwards to that entry\'s address, keeping a copy when deliverAndRedirect is TRUE', async () => {
    const keep = await directoryWith({ attributes: { forward: 'altRecipient', keepCopy: 'deliverAndRedirect' } });
    const erin = await resolve(keep, 'erin@example.test');
    assert.equal(erin.kind, 'mailbox');
    assert.deepEqual(erin.kind === 'mailbox' && erin.forwards, ['partner@example.test']);
    const replace = await directoryWith({ attributes: { forward: 'altRecipient', keepCopy: '' } });
    const moved = await resolve(replace, 'erin@example.test');
    assert.equal(moved.kind, 'forward');
    assert.deepEqual(moved.kind === 'forward' && moved.forwards, ['partner@example.test']);
  });

  test('a disabled account (userAccountControl 0x2): noaccess by default, its mail accepted; refused with 5.2.1 when ad.disabledAs is disabled', async () => {
    const leaver = await resolve(directory, 'leaver@example.test');
    assert.equal(leaver.kind, 'mailbox');
    assert.equal(leaver.kind === 'mailbox' && leaver.accountStatus, 'noaccess');
    const strict = await directoryWith({ ad: { disabledAs: 'disabled' } });
    const refused = await resolve(strict, 'leaver@example.test');
    assert.equal(refused.kind, 'reject');
    assert.equal(refused.kind === 'reject' && refused.status, '5.2.1');
  });

  test('a group with an address expands through nested groups and a cycle to its people (users and contacts), by the in-chain rule', async () => {
    const memory = memoryLog();
    const auto = await directoryWith({}, memory.log);
    for (const address of ['staff@example.test', 'everyone@example.test']) {
      const staff = await resolve(auto, address);
      assert.equal(staff.kind, 'group', address);
      if (staff.kind !== 'group') return;
      assert.deepEqual(sorted(await auto.expandGroup(staff)), ['alice@example.test', 'bob@example.test', 'leaver@example.test', 'partner@example.test']);
    }
    // ad.inChain auto saw the AD capability in the root DSE and let the server walk the groups.
    assert.equal(memory.lines().filter((l) => l.inChain === true).length, 1, memory.text());
    assert.equal((await resolve(directory, 'team@example.test')).kind, 'unknown', 'a group without an address is not a recipient');
  });

  test('the same expansion walked by ldapmta (ad.inChain never) with member values read two at a time and pages of two; disabled members left out when refused', async () => {
    const cases: [Record<string, unknown>, string[]][] = [
      [{ ad: { inChain: 'never', memberRangeSize: 2 }, pageSize: 2 }, ['alice@example.test', 'bob@example.test', 'leaver@example.test', 'partner@example.test']],
      [{ ad: { inChain: 'never', disabledAs: 'disabled' } }, ['alice@example.test', 'bob@example.test', 'partner@example.test']],
      [{ ad: { inChain: 'always', disabledAs: 'disabled' }, pageSize: 2 }, ['alice@example.test', 'bob@example.test', 'partner@example.test']],
    ];
    for (const [extra, expected] of cases) {
      const d = await directoryWith(extra);
      const staff = await resolve(d, 'staff@example.test');
      assert.equal(staff.kind, 'group');
      if (staff.kind !== 'group') return;
      assert.deepEqual(sorted(await d.expandGroup(staff)), expected, JSON.stringify(extra));
      assert.equal(await d.isMember(staff, `CN=Bob Jones,CN=Users,${dc.baseDN}`), true);
      assert.equal(await d.isMember(staff, `CN=Carol,CN=Users,${dc.baseDN}`), false);
    }
  });

  test('the Global Catalog port (3268) answers the same lookups, also searched forest-wide (baseDN "")', async () => {
    const forest = await directoryWith({ urls: [dc.gcUrl], baseDN: '' });
    assert.equal((await resolve(forest, 'bob@example.test')).kind, 'mailbox');
    const gc = await directoryWith({ urls: [dc.gcUrl] });
    const alice = await resolve(gc, 'a.smith@example.test');
    assert.equal(alice.kind === 'mailbox' && alice.dn, `CN=Alice Smith,CN=Users,${dc.baseDN}`);
    const staff = await resolve(gc, 'staff@example.test');
    assert.equal(staff.kind, 'group');
    if (staff.kind === 'group') assert.equal((await gc.expandGroup(staff)).length, 4);
  });

  test('LDAPS and StartTLS with directory.tls.ca; a certificate that cannot be checked fails temporarily (4.4.3), never "unknown"', async () => {
    const ca = join(dir, 'dc-ca.pem');
    writeFileSync(ca, dc.tlsCa);
    for (const extra of [{ urls: [dc.ldapsUrl], tls: { ca } }, { urls: ['ldap://localhost:389'], tls: { ca, startTls: true } }, { urls: [dc.gcLdapsUrl], tls: { ca } }]) {
      const d = await directoryWith(extra);
      assert.equal((await resolve(d, 'alice@example.test')).kind, 'mailbox', JSON.stringify(extra));
      assert.deepEqual(await d.authenticate('alice', PASSWORDS.alice).then((r) => r.ok), true, `login over ${JSON.stringify(extra)}`);
    }
    await assert.rejects(directoryWith({ urls: [dc.ldapsUrl], tls: { ca: join(dir, 'missing.pem') } }), (err: unknown) => err instanceof ConfigError && /^directory\.tls\.ca: cannot read/.test(err.problems[0]!));
    for (const extra of [{ urls: [dc.ldapsUrl] }, { urls: ['ldap://localhost:389'], tls: { startTls: true } }]) {
      const d = await directoryWith(extra);
      await assert.rejects(resolve(d, 'alice@example.test'), { kind: 'temporary', status: '4.4.3' }, JSON.stringify(extra));
    }
  });

  test('a service account with a wrong password fails temporarily (4.4.3)', async () => {
    const d = await directoryWith({ bindPassword: 'wrong' });
    await assert.rejects(resolve(d, 'alice@example.test'), { kind: 'temporary', status: '4.4.3' });
  });
});

describe('logins against Active Directory (bound as the UPN)', () => {
  let directory: DirectoryHandle;
  before(async () => {
    directory = await directoryWith();
  });

  test('by sAMAccountName, by UPN (also one that is not a mail address) and by any smtp address', async () => {
    for (const [login, password, dn] of [
      ['alice', PASSWORDS.alice, 'CN=Alice Smith'], ['ALICE', PASSWORDS.alice, 'CN=Alice Smith'], ['alice@example.test', PASSWORDS.alice, 'CN=Alice Smith'],
      ['a.smith@example.test', PASSWORDS.alice, 'CN=Alice Smith'], ['bob', PASSWORDS.bob, 'CN=Bob Jones'],
      ['robert@corp.example.test', PASSWORDS.bob, 'CN=Bob Jones'], ['bob@example.test', PASSWORDS.bob, 'CN=Bob Jones'],
    ] as const) {
      const result = await directory.authenticate(login, password);
      assert.equal(result.ok, true, login);
      if (!result.ok) return;
      assert.equal(result.dn, `${dn},CN=Users,${dc.baseDN}`);
    }
    const alice = await directory.authenticate('alice', PASSWORDS.alice);
    assert.deepEqual(alice.ok && sorted(alice.addresses), ['a.smith@example.test', 'alice@example.test']);
    assert.equal(alice.ok && alice.mailbox, join(dir, 'mail', 'example.test', 'alice') + '/');
  });

  test('refused: a wrong password, an empty one, a disabled account (with its right password), an unknown name, a filter injection', async () => {
    assert.deepEqual(await directory.authenticate('alice', 'wrong'), { ok: false, reason: 'bad-password' });
    assert.deepEqual(await directory.authenticate('alice', ''), { ok: false, reason: 'empty-password' });
    const leaver = await directory.authenticate('leaver', PASSWORDS.leaver);
    assert.equal(leaver.ok, false);
    assert.equal(!leaver.ok && ['account-disabled', 'bad-password'].includes(leaver.reason), true);
    assert.deepEqual(await directory.authenticate('nobody', 'x'), { ok: false, reason: 'unknown-user' });
    assert.equal((await directory.authenticate('*', PASSWORDS.alice)).ok, false);
    assert.equal((await directory.authenticate('al*', PASSWORDS.alice)).ok, false);
  });

  test('ad.loginBy limits the names: with only userPrincipalName, a sAMAccountName or a secondary address does not log in', async () => {
    const upnOnly = await directoryWith({ ad: { loginBy: ['userPrincipalName'] } });
    assert.equal((await upnOnly.authenticate('alice@example.test', PASSWORDS.alice)).ok, true);
    assert.deepEqual(await upnOnly.authenticate('alice', PASSWORDS.alice), { ok: false, reason: 'unknown-user' });
    assert.deepEqual(await upnOnly.authenticate('a.smith@example.test', PASSWORDS.alice), { ok: false, reason: 'unknown-user' });
  });
});

describe('SMTP and submission against Active Directory', () => {
  let server: TestServer;
  let strict: TestServer;
  const maildir = (s: TestServer, user: string) => join(s.dir, 'mail', 'example.test', user);
  const common = (extra: Record<string, unknown> = {}) => ({
    hostname: 'mx1.example.test', localDomains: ['example.test'],
    directory: directorySection(extra),
  });

  before(async () => {
    server = await startServer(null, { ...common(), listen: { submission: '127.0.0.1:0' }, submission: { allowPlaintextAuthOnLoopback: true } });
    open.push({ close: () => server.stop() });
    strict = await startServer(null, common({ ad: { disabledAs: 'disabled' } }));
    open.push({ close: () => strict.stop() });
  });

  test('mail to the primary and to a secondary address lands in the one Maildir; to a group in each member\'s; unknown gets 550 5.1.1', async () => {
    const mark = marker('ad');
    const result = await sendOnce(server.smtpPort, 'sender@outside.test', ['alice@example.test', 'A.Smith@example.test', 'nobody@example.test'], simpleMessage(mark));
    assertReply(result.rcpts[0]!, 250, null, 'primary');
    assertReply(result.rcpts[1]!, 250, null, 'secondary');
    assertReply(result.rcpts[2]!, 550, '5.1.1', 'unknown');
    assertReply(result.end!, 250, null, 'end of data');
    await waitForMessages(maildir(server, 'alice'), mark, 1);

    const list = marker('staff');
    const toList = await sendOnce(server.smtpPort, 'sender@outside.test', ['everyone@example.test'], simpleMessage(list));
    assertReply(toList.end!, 250, null, 'to the group');
    for (const user of ['alice', 'bob', 'leaver']) await waitForMessages(maildir(server, user), list, 1);
  });

  test('a disabled account\'s mail: accepted and delivered by default; 550 5.2.1 at RCPT with ad.disabledAs disabled', async () => {
    const mark = marker('leaver');
    const accepted = await sendOnce(server.smtpPort, 'sender@outside.test', ['leaver@example.test'], simpleMessage(mark));
    assertReply(accepted.end!, 250, null, 'noaccess');
    await waitForMessages(maildir(server, 'leaver'), mark, 1);
    const refused = await sendOnce(strict.smtpPort, 'sender@outside.test', ['leaver@example.test', 'bob@example.test'], simpleMessage(marker('refused')));
    assertReply(refused.rcpts[0]!, 550, '5.2.1', 'disabled');
    assertReply(refused.rcpts[1]!, 250, null, 'bob in the same transaction');
  });

  test('AUTH PLAIN on submission by sAMAccountName and by UPN: 235; a disabled account and a wrong password: 535', async () => {
    const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');
    const tries: [string, string, number][] = [
      ['alice', PASSWORDS.alice, 235], ['robert@corp.example.test', PASSWORDS.bob, 235],
      ['leaver', PASSWORDS.leaver, 535], ['bob', 'wrong', 535],
    ];
    for (const [user, pass, code] of tries) {
      const t = await Transcript.open(server.running.ports.submission!);
      try {
        await t.hello();
        assertReply(await t.command(`AUTH PLAIN ${plain(user, pass)}`), code, code === 235 ? '2.7.0' : '5.7.8', user);
      } finally {
        t.close();
      }
    }
  });
});
