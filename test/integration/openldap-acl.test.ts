// Owns: proof that the OpenLDAP setup docs/admin-guide.md gives works in a real slapd: the ACL of
// schema/openldap-acl.conf (slapd.conf) and schema/openldap-acl.ldif (cn=config) lets ldapmta's service account
// resolve, log in and expand lists exactly as the rootdn does, read nothing else and write nothing; the guide's
// olcDbIndex and olcLimits changes apply to a stock (Debian-like) cn=config database.
// Must never: bind ldapmta's directory layer as the rootdn where the service account is the point, mock LDAP,
// or touch a system slapd.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from 'ldapts';
import { validateConfig, type Config } from '../../src/config.ts';
import { createDirectory, type DirectoryHandle } from '../../src/directory/index.ts';
import { profileFor, recipientAttributes } from '../../src/directory/profiles.ts';
import type { GroupResolution, Resolution } from '../../src/directory/types.ts';
import type { Logger } from '../../src/log.ts';
import { silentLogger } from '../../src/log.ts';
import { MailError, parseAddress } from '../../src/mail.ts';
import { memoryLog, WARN } from '../harness/log.ts';
import {
  DEFAULT_SUFFIX, REPO_ROOT, ROOT_PASSWORD, SERVICE_DN, SERVICE_PASSWORD,
  binaryPath, run, sshaHash, startSlapd, startSlapdCnConfig, CONFIG_ROOT_DN, type Slapd,
} from '../harness/slapd.ts';

const ACL_CONF = path.join(REPO_ROOT, 'schema', 'openldap-acl.conf');
const ACL_LDIF = path.join(REPO_ROOT, 'schema', 'openldap-acl.ldif');
const GUIDE = path.join(REPO_ROOT, 'docs', 'admin-guide.md');
const PEOPLE = `ou=people,${DEFAULT_SUFFIX}`;
const ROOT_DN = `cn=admin,${DEFAULT_SUFFIX}`;

// ---------------------------------------------------------------------------------------------
// The two files and the guide, read as text

/** The slapd.conf lines of a file: comments and blank lines left out, continuation lines kept as they are. */
function confLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

const squash = (text: string): string => text.replace(/\s+/g, ' ').trim();

/** Each `access to` directive of slapd.conf text as one line, without "access ", whitespace squashed. */
function confRules(text: string): string[] {
  const rules: string[] = [];
  for (const line of confLines(text)) {
    if (/^\s/.test(line)) rules[rules.length - 1] += ` ${line}`;
    else rules.push(line);
  }
  return rules.map((rule) => squash(rule).replace(/^access /, ''));
}

/** LDIF lines unfolded (RFC 2849: a line starting with one space continues the previous one), comments dropped. */
function ldifLines(text: string): string[] {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    if (line.startsWith(' ') && lines.length > 0) lines[lines.length - 1] += line.slice(1);
    else lines.push(line);
  }
  return lines;
}

/** The olcAccess values of an LDIF, without their {n} prefix, whitespace squashed. */
function ldifRules(text: string): string[] {
  return ldifLines(text).filter((l) => l.startsWith('olcAccess: ')).map((l) => squash(l.slice('olcAccess: '.length)).replace(/^\{\d+\}/, ''));
}

/** The attribute names of a rule's attrs= clause, lower-cased. */
function attrsOf(rule: string): string[] {
  const m = /\battrs=(\S+)/.exec(rule);
  return m === null ? [] : m[1]!.split(',').map((a) => a.toLowerCase());
}

/** The fenced code blocks of the guide in one language. */
function guideBlocks(language: string): string[] {
  const text = fs.readFileSync(GUIDE, 'utf8');
  return [...text.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```', 'gm'))].map((m) => m[1]!);
}

/** The one block of the guide in `language` that contains `marker`. */
function guideBlock(language: string, marker: string): string {
  const found = guideBlocks(language).filter((b) => b.includes(marker));
  assert.equal(found.length, 1, `docs/admin-guide.md: one \`\`\`${language} block containing ${marker}`);
  return found[0]!;
}

/** Is `needle` (lines) a subsequence of `haystack` (lines), each compared without trailing blanks? */
function inOrder(haystack: readonly string[], needle: readonly string[]): string | null {
  let i = 0;
  for (const line of needle) {
    while (i < haystack.length && haystack[i]!.trimEnd() !== line.trimEnd()) i++;
    if (i === haystack.length) return line;
    i++;
  }
  return null;
}

/** The guide's rules with auth.method bind: "none" for "read" on the service account's line of the userPassword rule. */
function bindVariant(lines: readonly string[]): string[] {
  let inPasswordRule = false;
  return lines.map((line) => {
    if (!/^\s/.test(line)) inPasswordRule = /\battrs=userPassword$/.test(line.trim());
    return inPasswordRule && line.includes(`dn.exact="${SERVICE_DN}"`) ? line.replace(/ read$/, ' none') : line;
  });
}

// ---------------------------------------------------------------------------------------------
// LDAP helpers

async function withClient<T>(url: string, bindAs: [string, string] | null, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ url, connectTimeout: 2000, timeout: 5000 });
  try {
    if (bindAs !== null) await client.bind(bindAs[0], bindAs[1]);
    return await fn(client);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** Attribute names (lower case) → values of the entries a search returns to `bindAs`. */
async function read(url: string, bindAs: [string, string] | null, base: string, filter: string, attributes: string[], scope: 'base' | 'sub' = 'base'): Promise<Map<string, string[]>[]> {
  return withClient(url, bindAs, async (client) => (await client.search(base, { scope, filter, attributes })).searchEntries.map((entry) => {
    const out = new Map<string, string[]>();
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'dn') continue;
      const list = (Array.isArray(value) ? value : [value]).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
      if (list.length > 0) out.set(key.toLowerCase(), list); // ldapts pre-fills every requested name with []
    }
    return out;
  }));
}

const SERVICE: [string, string] = [SERVICE_DN, SERVICE_PASSWORD];
const ROOT: [string, string] = [ROOT_DN, ROOT_PASSWORD];
const ALICE: [string, string] = [`uid=alice,${PEOPLE}`, 'Alice-pw-1'];

/** Runs ldapmodify as `bindDN` (the password from a 0600 file, as the harness does), LDIF on stdin. */
async function ldapmodifyAs(url: string, [bindDN, password]: [string, string], ldif: string): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-acl-pw-'));
  try {
    const file = path.join(dir, 'pw');
    await fsp.writeFile(file, password, { mode: 0o600 });
    await run(binaryPath('ldapmodify'), ['-x', '-H', url, '-D', bindDN, '-y', file], { input: ldif, env: { ...process.env, LDAPNOINIT: '1' } });
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** assert.rejects validator: ldapmodify exited with insufficientAccessRights (50). */
function insufficientAccess(err: unknown): boolean {
  assert.ok(err instanceof Error);
  assert.match(err.message, /failed \(code 50\)/, err.message);
  assert.match(err.message, /Insufficient access \(50\)/, err.message);
  return true;
}

/** Every write the service account might try: each must be refused, whatever the site's later rules allow. */
const WRITES: [what: string, ldif: string][] = [
  ['replace a value it may read (mail)', `dn: uid=alice,${PEOPLE}\nchangetype: modify\nreplace: mail\nmail: mallory@example.org\n`],
  ['add an attribute it may not read (description)', `dn: uid=alice,${PEOPLE}\nchangetype: modify\nadd: description\ndescription: written by ldapmta\n`],
  ['forward a mailbox (mailForwardingAddress)', `dn: uid=bob,${PEOPLE}\nchangetype: modify\nadd: mailForwardingAddress\nmailForwardingAddress: mallory@evil.test\n`],
  ['change its own password', `dn: ${SERVICE_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: ${sshaHash(SERVICE_PASSWORD)}\n`],
  ['add an entry', `dn: uid=mallory,${PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nobjectClass: qmailUser\ncn: Mallory\nsn: Mallory\nuid: mallory\nmail: mallory@example.org\n`],
  ['delete an entry', `dn: uid=bob,${PEOPLE}\nchangetype: delete\n`],
];

// ---------------------------------------------------------------------------------------------
// ldapmta's directory layer

function config(url: string, bindAs: [string, string], method: 'hash' | 'bind' = 'hash'): Config {
  return validateConfig({
    hostname: 'mx1.example.org',
    localDomains: ['example.org', 'example.net'],
    mailboxes: '/var/mail',
    directory: { urls: [url], bindDN: bindAs[0], bindPassword: bindAs[1], baseDN: DEFAULT_SUFFIX, timeoutMs: 3000, auth: { method } },
    cache: { maxEntries: 0, redis: '' },
    log: { level: 'silent' },
  });
}

function open(url: string, bindAs: [string, string], method: 'hash' | 'bind' = 'hash', log: Logger = silentLogger()): Promise<DirectoryHandle> {
  return createDirectory(config(url, bindAs, method), { log });
}

/** What the directory says about an address: its resolution, or the status of the error it throws. */
async function outcome(directory: DirectoryHandle, address: string): Promise<Resolution | { error: string }> {
  try {
    return await directory.resolveRecipient(parseAddress(address));
  } catch (err) {
    if (err instanceof MailError) return { error: `${err.kind} ${err.status}` };
    throw err;
  }
}

async function group(directory: DirectoryHandle, address: string): Promise<GroupResolution> {
  const r = await directory.resolveRecipient(parseAddress(address));
  assert.equal(r.kind, 'group', JSON.stringify(r));
  return r as GroupResolution;
}

/** The sample directory's cases (docs/directory.md), each answered by one entry or by none. */
const ADDRESSES = [
  'alice@example.org', 'a.smith@example.org', 'alice@example.net', 'bob@example.org', 'bob-lists@example.org', 'bobby-x@example.org',
  'carol@example.org', 'dave@example.org', 'shared@example.org', 'erin@example.org', 'frank@example.org', 'grace@example.org',
  'heidi@example.org', 'ivan@example.org', 'judy@example.org', 'ticket@example.org', 'staff@example.org',
  'staff-return-x@example.org', 'whoever@example.net', 'nobody@example.org',
];

const LOGINS: [login: string, password: string][] = [
  ['alice', 'Alice-pw-1'], ['a.smith@example.org', 'Alice-pw-1'], ['bob', 'Bob-pw-2'], ['dave', 'Dave-pw-4'], ['erin', 'Erin-pw-5'],
  ['frank', 'Frank-pw-6'], ['judy', 'Judy-pw-11'], ['alice', 'wrong'], ['ivan', 'Ivan-pw-9'], ['nobody', 'x'],
];

/**
 * The guide's promise for an ACL'd server: the service account gets the same answers as the rootdn (which
 * no ACL limits), for recipients, logins, list members and members-only checks.
 */
function sameAnswersAsRootdn(url: () => string) {
  let service: DirectoryHandle;
  let root: DirectoryHandle;
  before(async () => {
    service = await open(url(), SERVICE);
    root = await open(url(), ROOT);
  });
  after(async () => {
    await service?.close();
    await root?.close();
  });

  test('every sample address resolves for the service account as for the rootdn', async () => {
    for (const address of ADDRESSES) {
      assert.deepEqual(await outcome(service, address), await outcome(root, address), address);
    }
    const alice = await service.resolveRecipient(parseAddress('alice@example.org'));
    assert.equal(alice.kind, 'mailbox');
    assert.equal(alice.kind === 'mailbox' && alice.mailbox, '/var/mail/example.org/alice/');
    assert.deepEqual(alice.kind === 'mailbox' && alice.quota, { bytes: 104857600, count: 10000 });
  });

  test('logins with auth.method hash: the same results, alice and her a.smith alias log in', async () => {
    for (const [login, password] of LOGINS) {
      assert.deepEqual(await service.authenticate(login, password), await root.authenticate(login, password), login);
    }
    const alice = await service.authenticate('alice', 'Alice-pw-1');
    assert.ok(alice.ok, JSON.stringify(alice));
    assert.equal(alice.dn, `uid=alice,${PEOPLE}`);
    assert.deepEqual(await service.authenticate('alice', 'wrong'), { ok: false, reason: 'bad-password' });
  });

  test('the staff list expands to the same members, judy through its departmentNumber filter (search access only)', async () => {
    const staff = await group(service, 'staff@example.org');
    const members = [...await service.expandGroup(staff)].sort();
    assert.deepEqual(members, [...await root.expandGroup(await group(root, 'staff@example.org'))].sort());
    assert.ok(members.includes('judy@example.org'), members.join(' '));
    assert.ok(members.includes('alice@example.org') && members.includes('outside@partner.test'), members.join(' '));
    assert.equal(await service.mayPost(staff, parseAddress('alice@example.org')), true);
    assert.equal(await service.mayPost(staff, parseAddress('judy@example.org')), true);
    assert.equal(await service.mayPost(staff, parseAddress('stranger@remote.test')), false);
  });

  test('the root DSE answers (what /readyz and the pool health check ask)', async () => {
    await service.ping();
  });
}

// ---------------------------------------------------------------------------------------------
// The files agree with each other, with the code and with the guide

describe('schema/openldap-acl.conf and .ldif', () => {
  const conf = fs.readFileSync(ACL_CONF, 'utf8');
  const ldif = fs.readFileSync(ACL_LDIF, 'utf8');

  test('hold the same rules, for dc=example,dc=org and the sample service account', () => {
    assert.deepEqual(ldifRules(ldif), confRules(conf));
    assert.equal(confRules(conf).length, 4);
    for (const rule of confRules(conf)) {
      assert.match(rule, /^to dn\.subtree="dc=example,dc=org"/, rule);
      assert.match(rule, new RegExp(`by dn\\.exact="${SERVICE_DN}" (read|search|none) by \\* break$`), rule);
    }
    assert.match(ldif, /^dn: olcDatabase=\{1\}mdb,cn=config\nchangetype: modify\nadd: olcAccess\n/m);
  });

  test('name exactly the attributes ldapmta asks for: userPassword (auth.method hash) apart, the rest read, nothing written', () => {
    const cfg = validateConfig({});
    const wanted = recipientAttributes(profileFor({ ...cfg.directory, loginBy: cfg.directory.ad.loginBy })).map((a) => a.toLowerCase());
    const [password, readable, searchable, rest] = confRules(conf);
    assert.deepEqual(attrsOf(password!), ['userpassword']);
    assert.match(password!, new RegExp(`by dn\\.exact="${SERVICE_DN}" read `));
    assert.deepEqual(attrsOf(readable!).filter((a) => a !== 'entry').sort(), [...wanted].sort());
    assert.ok(attrsOf(readable!).includes('entry'), 'the entry pseudo-attribute, without which no entry is returned');
    assert.match(readable!, new RegExp(`by dn\\.exact="${SERVICE_DN}" read `));
    assert.deepEqual(attrsOf(searchable!), ['departmentnumber']);
    assert.match(searchable!, new RegExp(`by dn\\.exact="${SERVICE_DN}" search `));
    assert.deepEqual(attrsOf(rest!), []);
    assert.match(rest!, new RegExp(`by dn\\.exact="${SERVICE_DN}" none `));
  });

  test('docs/admin-guide.md shows both files\' rules word for word', () => {
    const guide = fs.readFileSync(GUIDE, 'utf8').split('\n');
    assert.equal(inOrder(guide, confLines(conf)), null, 'a line of schema/openldap-acl.conf missing from the guide');
    const ldifBody = ldif.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    assert.equal(inOrder(guide, ldifBody), null, 'a line of schema/openldap-acl.ldif missing from the guide');
  });
});

// ---------------------------------------------------------------------------------------------
// slapd.conf: the guide's rules in front of a site's rules that would let every user read and write anything

/** A site's own rules after the guide's, as permissive as they come: whatever the service account is refused, the guide's rules refused. */
const PERMISSIVE_SITE = [
  'access to attrs=userPassword',
  '  by self write',
  '  by anonymous auth',
  '  by * none',
  'access to *',
  '  by users write',
  '  by * read',
];

describe('slapd.conf with schema/openldap-acl.conf (auth.method hash)', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ acl: [...confLines(fs.readFileSync(ACL_CONF, 'utf8')), ...PERMISSIVE_SITE] });
    await slapd.ldapmodify(`dn: uid=alice,${PEOPLE}\nchangetype: modify\nadd: telephoneNumber\ntelephoneNumber: +1 555 0100\n-\nadd: description\ndescription: not for ldapmta\n`);
  });
  after(async () => {
    await slapd?.stop();
  });

  sameAnswersAsRootdn(() => slapd.url);

  test('every write by the service account is refused with insufficientAccessRights (50)', async () => {
    for (const [what, ldif] of WRITES) {
      await assert.rejects(ldapmodifyAs(slapd.url, SERVICE, ldif), insufficientAccess, what);
    }
    // The site's rules let an ordinary user write (alice, her own entry): the refusals above are the guide's rules.
    await ldapmodifyAs(slapd.url, ALICE, `dn: uid=alice,${PEOPLE}\nchangetype: modify\nreplace: description\ndescription: alice wrote this\n`);
    const [bob] = await read(slapd.url, ROOT, `uid=bob,${PEOPLE}`, '(objectClass=*)', ['mailForwardingAddress']);
    assert.equal(bob?.get('mailforwardingaddress'), undefined);
  });

  test('attributes outside the list are not readable, and not searchable, by the service account', async () => {
    const [asService] = await read(slapd.url, SERVICE, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['*', 'telephoneNumber', 'description', 'cn', 'sn']);
    assert.ok(asService, 'the entry itself is visible');
    assert.deepEqual(asService.get('mail'), ['alice@example.org']);
    assert.deepEqual(asService.get('userpassword'), ['{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA==']);
    for (const hidden of ['telephonenumber', 'description', 'cn', 'sn']) assert.equal(asService.get(hidden), undefined, hidden);
    assert.deepEqual(await read(slapd.url, SERVICE, DEFAULT_SUFFIX, '(telephoneNumber=*)', ['1.1'], 'sub'), []);
    // departmentNumber: search only. judy is found by it, but its value is not handed out.
    const found = await read(slapd.url, SERVICE, DEFAULT_SUFFIX, '(departmentNumber=42)', ['mail', 'departmentNumber'], 'sub');
    assert.deepEqual(found.map((e) => e.get('mail')), [['judy@example.org']]);
    assert.equal(found[0]?.get('departmentnumber'), undefined);
    // Anyone else still reads them under the site's rules: the guide's rules only narrow the service account.
    const [asAnonymous] = await read(slapd.url, null, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['telephoneNumber', 'description']);
    assert.deepEqual(asAnonymous?.get('telephonenumber'), ['+1 555 0100']);
  });
});

describe('slapd.conf with schema/openldap-acl.conf for auth.method bind ("none" for "read" on userPassword)', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ acl: [...bindVariant(confLines(fs.readFileSync(ACL_CONF, 'utf8'))), ...PERMISSIVE_SITE] });
  });
  after(async () => {
    await slapd?.stop();
  });

  test('the variant changes one line only', () => {
    const lines = confLines(fs.readFileSync(ACL_CONF, 'utf8'));
    const changed = bindVariant(lines).filter((line, i) => line !== lines[i]);
    assert.deepEqual(changed, [`  by dn.exact="${SERVICE_DN}" none`]);
  });

  test('the service account sees no password hash; auth.method bind logs in, hash cannot (and says why)', async () => {
    const [alice] = await read(slapd.url, SERVICE, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['mail', 'userPassword']);
    assert.deepEqual(alice?.get('mail'), ['alice@example.org']);
    assert.equal(alice?.get('userpassword'), undefined);

    const bind = await open(slapd.url, SERVICE, 'bind');
    try {
      const ok = await bind.authenticate('alice', 'Alice-pw-1');
      assert.ok(ok.ok, JSON.stringify(ok));
      assert.deepEqual(await bind.authenticate('alice', 'wrong'), { ok: false, reason: 'bad-password' });
      assert.equal((await bind.resolveRecipient(parseAddress('alice@example.org'))).kind, 'mailbox');
    } finally {
      await bind.close();
    }

    const memory = memoryLog();
    const hash = await open(slapd.url, SERVICE, 'hash', memory.log);
    try {
      assert.deepEqual(await hash.authenticate('alice', 'Alice-pw-1'), { ok: false, reason: 'bad-password' });
    } finally {
      await hash.close();
    }
    assert.ok(memory.lines().some((l) => l.level === WARN && /is it readable by the service account\?/.test(l.msg)), memory.text());
  });
});

// ---------------------------------------------------------------------------------------------
// cn=config: a database as Debian's slapd package sets it up, changed only with the guide's LDIF

/** Debian's stock olcAccess and olcDbIndex for the mdb database (slapd 2.5 postinst). */
const DEBIAN_ACCESS = [
  'to attrs=userPassword by self write by anonymous auth by * none',
  'to attrs=shadowLastChange by self write by * read',
  'to * by * read',
];
const DEBIAN_INDEX = ['objectClass eq', 'cn,uid eq', 'uidNumber,gidNumber eq', 'member,memberUid eq'];
/** Members of the big list: more than slapd's default size limit (500). */
const BIG = 600;

describe('cn=config (a stock Debian database) with the guide\'s index, schema/openldap-acl.ldif and limits', () => {
  let slapd: Slapd;
  const configAdmin: [string, string] = [CONFIG_ROOT_DN, ROOT_PASSWORD];

  before(async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-acl-big-'));
    let big = '';
    for (let i = 0; i < BIG; i++) {
      big += `dn: uid=m${i},${PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: qmailUser\ncn: m${i}\nsn: m${i}\nuid: m${i}\n`
        + `mail: m${i}@example.org\nmailMessageStore: example.org/m${i}/\ndepartmentNumber: 7\n\n`;
    }
    big += `dn: cn=everyone,${PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: qmailUser\nobjectClass: qmailGroup\ncn: everyone\nsn: everyone\n`
      + 'mail: everyone@example.org\nmailAlternateAddress: everyone-catchall@example.org\nmailMessageStore: example.org/everyone/\n'
      + 'filtermember: (departmentNumber=7)\n\n';
    await fsp.writeFile(path.join(dir, 'big.ldif'), big);
    try {
      slapd = await startSlapdCnConfig({
        database: [...DEBIAN_INDEX.map((i) => `olcDbIndex: ${i}`), ...DEBIAN_ACCESS.map((a, n) => `olcAccess: {${n}}${a}`)],
        ldif: [path.join(dir, 'big.ldif')],
      });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
  after(async () => {
    await slapd?.stop();
  });

  async function mdbConfig(): Promise<Map<string, string[]>> {
    const [entry] = await read(slapd.url, configAdmin, 'olcDatabase={1}mdb,cn=config', '(objectClass=*)', ['olcAccess', 'olcDbIndex', 'olcLimits']);
    assert.ok(entry);
    return entry;
  }

  async function expandEveryone(): Promise<readonly string[]> {
    const directory = await open(slapd.url, SERVICE);
    try {
      return await directory.expandGroup(await group(directory, 'everyone@example.org'));
    } finally {
      await directory.close();
    }
  }

  test('before: Debian\'s rules let the service account read everything and change its own password; a list over 500 fails', async () => {
    const [alice] = await read(slapd.url, SERVICE, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['cn']);
    assert.deepEqual(alice?.get('cn'), ['Alice Smith']);
    await ldapmodifyAs(slapd.url, SERVICE, `dn: ${SERVICE_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: ${sshaHash(SERVICE_PASSWORD)}\n`);
    await assert.rejects(expandEveryone(), (err: unknown) => err instanceof MailError && err.kind === 'temporary' && err.status === '4.4.3' && /SizeLimitExceeded/.test(String(err.cause)));
  });

  test('the guide\'s olcDbIndex, schema/openldap-acl.ldif and the guide\'s olcLimits apply with ldapmodify', async () => {
    await ldapmodifyAs(slapd.url, configAdmin, guideBlock('ldif', 'olcDbIndex'));
    await ldapmodifyAs(slapd.url, configAdmin, fs.readFileSync(ACL_LDIF, 'utf8'));
    await ldapmodifyAs(slapd.url, configAdmin, guideBlock('ldif', 'olcLimits'));
    const mdb = await mdbConfig();
    assert.deepEqual(mdb.get('olcdbindex'), [...DEBIAN_INDEX, 'mail,mailAlternateAddress eq']);
    // The four rules come first, in order; Debian's follow, unchanged.
    const access = (mdb.get('olcaccess') ?? []).map((a) => squash(a).replace(/^\{\d+\}/, ''));
    assert.deepEqual(access, [...confRules(fs.readFileSync(ACL_CONF, 'utf8')), ...DEBIAN_ACCESS]);
    assert.deepEqual(mdb.get('olclimits')?.map((l) => l.replace(/^\{\d+\}/, '')), [`dn.exact="${SERVICE_DN}" size=unlimited`]);
  });

  sameAnswersAsRootdn(() => slapd.url);

  test('after: no write, not even its own password (Debian\'s "by self write"); nothing outside the list is readable', async () => {
    for (const [what, ldif] of WRITES) {
      await assert.rejects(ldapmodifyAs(slapd.url, SERVICE, ldif), insufficientAccess, what);
    }
    const [alice] = await read(slapd.url, SERVICE, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['mail', 'cn', 'sn', 'userPassword']);
    assert.deepEqual(alice?.get('mail'), ['alice@example.org']);
    assert.equal(alice?.get('cn'), undefined);
    assert.equal(alice?.get('sn'), undefined);
    assert.deepEqual(alice?.get('userpassword'), ['{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA==']);
    // Users still bind, and anonymous still reads what Debian's "to * by * read" gives: only ldapmta is narrowed.
    const [asAlice] = await read(slapd.url, ALICE, `uid=alice,${PEOPLE}`, '(objectClass=*)', ['cn']);
    assert.deepEqual(asAlice?.get('cn'), ['Alice Smith']);
  });

  test('after: the list of more than 500 expands in full (olcLimits)', async () => {
    const members = await expandEveryone();
    assert.equal(members.length, BIG);
  });
});
