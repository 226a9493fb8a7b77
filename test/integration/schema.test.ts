// Owns: proof that schema/qmail.schema, qmail.ldif and sample-directory.ldif load into a real slapd and match §1/§9.1, and that the slapd/redis harnesses start, stop and restart.
// Must never: mock LDAP or Redis, use a fixed port, or touch a system-wide slapd or redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, type Entry } from 'ldapts';
import {
  DEFAULT_SUFFIX, ROOT_PASSWORD, SERVICE_DN, SERVICE_PASSWORD,
  requireBinaries, startSlapd, startSlapdCnConfig,
  type Slapd,
} from '../harness/slapd.ts';
import { redisPing, startRedis } from '../harness/redis.ts';
import { canConnect } from '../harness/ports.ts';

const PEOPLE = `ou=people,${DEFAULT_SUFFIX}`;
const ROOT_DN = `cn=admin,${DEFAULT_SUFFIX}`;

// ---------------------------------------------------------------------------------------------
// Helpers

async function withClient<T>(url: string, bindAs: [string, string] | null, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ url, connectTimeout: 2000, timeout: 5000 });
  try {
    if (bindAs !== null) await client.bind(bindAs[0], bindAs[1]);
    return await fn(client);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

async function search(url: string, bindAs: [string, string] | null, base: string, filter: string, attributes: string[] = ['*'], scope: 'base' | 'one' | 'sub' = 'sub'): Promise<Entry[]> {
  return withClient(url, bindAs, async (client) => (await client.search(base, { scope, filter, attributes })).searchEntries);
}

/** Entry attributes as lower-cased name → string values; attributes without values are left out. */
function values(entry: Entry): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'dn') continue;
    const list = Array.isArray(value) ? value : [value];
    if (list.length === 0) continue; // ldapts pre-fills every requested attribute name with []
    out.set(key.toLowerCase(), list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)));
  }
  return out;
}

/** assert.rejects validator: the ldapts error class for one LDAP result code. */
const ldapError = (name: string) => (err: unknown): boolean => {
  assert.ok(err instanceof Error);
  assert.equal(err.name, name, err.message);
  return true;
};

const sorted = (list: readonly string[]): string[] => [...list].sort();
const lowerSorted = (list: readonly string[]): string[] => sorted(list.map((v) => v.toLowerCase()));

// ---------------------------------------------------------------------------------------------
// The reference (directory model §9.1 entries #1-#13, §5.3 hashes), typed again independently of the LDIF.

const PERSON = ['inetOrgPerson', 'qmailUser'];

const EXPECTED: Record<string, Record<string, string[]>> = {
  'uid=alice': {
    objectClass: PERSON, mail: ['alice@example.org'], mailAlternateAddress: ['a.smith@example.org', 'alice@example.net'],
    uid: ['alice'], userPassword: ['{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA=='],
    mailMessageStore: ['example.org/alice/'], mailHost: ['mx1.example.org'], mailQuotaSize: ['104857600'],
    mailQuotaCount: ['10000'], accountStatus: ['active'],
  },
  'uid=bob': {
    objectClass: PERSON, mail: ['bob@example.org'], mailAlternateAddress: ['bob-catchall@example.org'], uid: ['bob'],
    userPassword: ['{SHA}ts21aLnuUCFWXnboLAYgOfLofFE='], mailMessageStore: ['example.org/bob/'], mailHost: ['mx1.example.org'],
  },
  'uid=carol': {
    objectClass: PERSON, mail: ['carol@example.org'], uid: ['carol'], mailForwardingAddress: ['carol@elsewhere.test'],
  },
  'uid=dave': {
    objectClass: PERSON, mail: ['dave@example.org'], mailAlternateAddress: ['shared@example.org'], uid: ['dave'],
    userPassword: ['{CRYPT}$6$ldapmtaSalt0001$6J7g1RKXEqZijAewJk94uFaMp2TloJADf395f9VyFE.c2Szx2A7X8G4bwwsStgpP4YqsyFBXh/AVzDCog4VAB1'],
    mailMessageStore: ['example.org/dave/'], mailForwardingAddress: ['dave@partner.test'],
  },
  'uid=erin': {
    objectClass: PERSON, mail: ['erin@example.org'], mailAlternateAddress: ['shared@example.org'], uid: ['erin'],
    userPassword: ['{SSHA512}KaREoalqXX+LvhqDxKKtkHiwraiDRKfoA2Su34EMspPr5i2bzeyICnZILl6yj8ZdBuHHrMtlRfpnE6Q2+5GCT3NhbHRzYWx0'],
    mailMessageStore: ['example.org/erin/'], deliveryMode: ['reply'],
    mailReplyText: ['%HEADER%\nSubject: Away: %SUBJECT%\n\nI am away until Monday.'],
  },
  'uid=frank': {
    objectClass: PERSON, mail: ['frank@example.org'], uid: ['frank'], userPassword: ['$1$qmailldp$KZyihZMBM7dG5LC2XPcLn1'],
    mailMessageStore: ['example.org/frank/'], mailQuotaSize: ['1048576'], mailQuotaCount: ['1000'], mailSizeMax: ['524288'],
  },
  'uid=grace': {
    objectClass: PERSON, mail: ['grace@example.org'], uid: ['grace'], mailMessageStore: ['example.org/grace/'], accountStatus: ['disabled'],
  },
  'uid=heidi': {
    objectClass: PERSON, mail: ['heidi@example.org'], uid: ['heidi'], mailMessageStore: ['example.org/heidi/'],
    accountStatus: ['deleted'], qmailAccountPurge: ['1767225600'],
  },
  'uid=ivan': {
    objectClass: PERSON, mail: ['ivan@example.org'], uid: ['ivan'], userPassword: ['<fresh {SSHA} of Ivan-pw-9>'],
    mailMessageStore: ['example.org/ivan/'], accountStatus: ['NoAccess'],
  },
  'uid=judy': {
    objectClass: PERSON, mail: ['judy@example.org'], uid: ['judy'],
    userPassword: ['{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$nXYtnC0msPbEFEKz6Bv4lw$h/53PyrDV5f6QDCVnw5UzDNLDfsFeB8Q9/1RVZwKt1c'],
    mailMessageStore: ['example.org/judy/'], mailHost: ['mx2.example.org'], departmentNumber: ['42'],
  },
  'uid=ticket': {
    objectClass: PERSON, mail: ['ticket@example.org'], uid: ['ticket'], homeDirectory: ['/var/mail/example.org/ticket'],
    qmailDotMode: ['ldapwithprog'], deliveryProgramPath: ['/usr/local/bin/ticket-intake --queue support'], deliveryMode: ['nolocal'],
  },
  'cn=staff': {
    objectClass: ['inetOrgPerson', 'qmailUser', 'qmailGroup'], mail: ['staff@example.org'],
    mailAlternateAddress: ['staff-catchall@example.org'], uid: ['staff'], mailMessageStore: ['example.org/staff/'],
    membersonly: ['TRUE'], senderconfirm: ['FALSE'],
    dnmember: [`uid=alice,${PEOPLE}`, `uid=bob,${PEOPLE}`], rfc822member: ['outside@partner.test'],
    filtermember: ['(&(objectClass=qmailUser)(departmentNumber=42))'], bounceadmin: ['postmaster@example.org'],
  },
  'uid=nethelp': {
    objectClass: PERSON, mail: ['catchall@example.net'], mailAlternateAddress: ['@example.net'], uid: ['nethelp'],
    mailForwardingAddress: ['alice@example.org'],
  },
};

/** §1.3-§1.5: name → [OID, syntax (with {len} where the reference gives one), EQUALITY or null, single-valued]. */
type AttrSpec = [oid: string, syntax: string, equality: string | null, single: boolean];
const Q = '1.3.6.1.4.1.7914.1';
const ATTRIBUTES: Record<string, AttrSpec> = {
  qmailUID: [`${Q}.2.1.1`, '27', 'integerMatch', true],
  qmailGID: [`${Q}.2.1.2`, '27', 'integerMatch', true],
  mailMessageStore: [`${Q}.2.1.3`, '26{256}', 'caseExactIA5Match', true],
  mailAlternateAddress: [`${Q}.2.1.4`, '26{256}', 'caseIgnoreIA5Match', false],
  mailHost: [`${Q}.2.1.6`, '26{256}', 'caseIgnoreIA5Match', true],
  mailForwardingAddress: [`${Q}.2.1.7`, '26{256}', 'caseIgnoreIA5Match', false],
  deliveryProgramPath: [`${Q}.2.1.8`, '26{256}', 'caseExactIA5Match', false],
  qmailDotMode: [`${Q}.2.1.9`, '26{32}', 'caseIgnoreIA5Match', true],
  deliveryMode: [`${Q}.2.1.10`, '26{32}', 'caseIgnoreIA5Match', false],
  mailReplyText: [`${Q}.2.1.11`, '15{4096}', 'caseIgnoreMatch', true],
  accountStatus: [`${Q}.2.1.12`, '26', 'caseIgnoreIA5Match', true],
  qmailAccountPurge: [`${Q}.2.1.14`, '36', 'numericStringMatch', true],
  mailQuotaSize: [`${Q}.2.1.15`, '27', 'integerMatch', true],
  mailQuotaCount: [`${Q}.2.1.16`, '27', 'integerMatch', true],
  mailSizeMax: [`${Q}.2.1.17`, '27', 'integerMatch', true],
  dnmember: [`${Q}.3.1.1`, '12', 'distinguishedNameMatch', false],
  rfc822member: [`${Q}.3.1.2`, '26{256}', 'caseIgnoreIA5Match', false],
  filtermember: [`${Q}.3.1.3`, '26{512}', 'caseIgnoreIA5Match', false],
  senderconfirm: [`${Q}.3.1.4`, '7', 'booleanMatch', true],
  membersonly: [`${Q}.3.1.5`, '7', 'booleanMatch', true],
  confirmtext: [`${Q}.3.1.6`, '15{4096}', null, true],
  dnmoderator: [`${Q}.3.1.7`, '12', null, false],
  rfc822moderator: [`${Q}.3.1.8`, '26{256}', null, false],
  moderatortext: [`${Q}.3.1.9`, '15{4096}', null, true],
  dnsender: [`${Q}.3.1.10`, '12', null, false],
  rfc822sender: [`${Q}.3.1.11`, '26{256}', null, false],
  filtersender: [`${Q}.3.1.12`, '26{512}', null, false],
  bounceadmin: [`${Q}.3.1.13`, '26{256}', null, false],
  qlaDnManager: [`${Q}.4.1.1`, '12', null, false],
  qlaDomainList: [`${Q}.4.1.2`, '26', null, false],
  qlaUidPrefix: [`${Q}.4.1.3`, '26', null, true],
  qlaQmailUid: [`${Q}.4.1.4`, '27', null, true],
  qlaQmailGid: [`${Q}.4.1.5`, '27', null, true],
  qlaMailMStorePrefix: [`${Q}.4.1.6`, '26', null, true],
  qlaMailQuotaSize: [`${Q}.4.1.7`, '27', null, true],
  qlaMailQuotaCount: [`${Q}.4.1.8`, '27', null, true],
  qlaMailSizeMax: [`${Q}.4.1.9`, '27', null, true],
  qlaMailHostList: [`${Q}.4.1.10`, '26', null, false],
};

const OBJECT_CLASSES: Record<string, { oid: string; must: string[]; may: string[] }> = {
  qmailUser: {
    oid: `${Q}.2.2.1`,
    must: ['mail'],
    may: ['uid', 'mailMessageStore', 'homeDirectory', 'userPassword', 'mailAlternateAddress', 'qmailUID', 'qmailGID',
      'mailHost', 'mailForwardingAddress', 'deliveryProgramPath', 'qmailDotMode', 'deliveryMode', 'mailReplyText',
      'accountStatus', 'qmailAccountPurge', 'mailQuotaSize', 'mailQuotaCount', 'mailSizeMax'],
  },
  qmailGroup: {
    oid: `${Q}.3.2.1`,
    must: ['mail', 'mailAlternateAddress', 'mailMessageStore'],
    may: ['dnmember', 'rfc822member', 'filtermember', 'senderconfirm', 'membersonly', 'confirmtext', 'dnmoderator',
      'rfc822moderator', 'moderatortext', 'dnsender', 'rfc822sender', 'filtersender', 'bounceadmin'],
  },
  qldapAdmin: {
    oid: `${Q}.4.2.1`,
    must: ['qlaDnManager', 'qlaDomainList', 'qlaMailMStorePrefix', 'qlaMailHostList'],
    may: ['qlaUidPrefix', 'qlaQmailUid', 'qlaQmailGid', 'qlaMailQuotaSize', 'qlaMailQuotaCount', 'qlaMailSizeMax'],
  },
};

/** The qmail-ldap (PEN 7914) definitions of a server's subschema, whitespace-normalised and sorted. */
async function qmailSubschema(url: string): Promise<{ attributeTypes: string[]; objectClasses: string[] }> {
  const [subschema] = await search(url, null, 'cn=Subschema', '(objectClass=subschema)', ['attributeTypes', 'objectClasses'], 'base');
  assert.ok(subschema, 'cn=Subschema readable');
  const v = values(subschema);
  const pick = (name: string): string[] =>
    sorted((v.get(name) ?? []).filter((d) => d.includes(`( ${Q}.`)).map((d) => d.replace(/\s+/g, ' ').trim()));
  return { attributeTypes: pick('attributetypes'), objectClasses: pick('objectclasses') };
}

function field(definition: string, keyword: string): string | null {
  const match = new RegExp(`\\s${keyword}\\s+(\\([^)]*\\)|'[^']*'|\\S+)`).exec(definition);
  return match?.[1]?.replace(/^'|'$/g, '') ?? null;
}

function nameList(definition: string, keyword: string): string[] {
  const raw = field(definition, keyword);
  if (raw === null) return [];
  return raw.replace(/[()]/g, ' ').split(/[\s$]+/).filter(Boolean).map((n) => n.toLowerCase()).sort();
}

// ---------------------------------------------------------------------------------------------

before(() => requireBinaries());

describe('slapd with schema/qmail.schema and the sample directory', () => {
  let slapd: Slapd;

  before(async () => {
    const started = performance.now();
    slapd = await startSlapd();
    const ms = performance.now() - started;
    process.stderr.write(`# startSlapd (slapadd + slapd ready) took ${ms.toFixed(0)} ms on ${slapd.url}, pid ${slapd.pid}\n`);
  });
  after(async () => {
    await slapd?.stop();
  });

  test('harness fields describe the running server', () => {
    assert.match(slapd.url, /^ldap:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(slapd.url, `ldap://127.0.0.1:${slapd.port}`);
    assert.equal(slapd.baseDN, DEFAULT_SUFFIX);
    assert.equal(slapd.rootDN, ROOT_DN);
    assert.equal(slapd.rootPassword, ROOT_PASSWORD);
    assert.ok(slapd.pid > 0);
    assert.equal(fs.readFileSync(path.join(slapd.dir, 'slapd.pid'), 'utf8').trim(), String(slapd.pid));
    const conf = fs.readFileSync(path.join(slapd.dir, 'slapd.conf'), 'utf8');
    assert.match(conf, /^rootpw \{SSHA\}/m, 'rootpw stored hashed');
    assert.ok(conf.includes(path.resolve(import.meta.dirname, '..', '..', 'schema', 'qmail.schema')), 'repo schema included');
  });

  test('every entry #1-#13 holds exactly the reference values', async () => {
    const entries = await search(slapd.url, [ROOT_DN, ROOT_PASSWORD], PEOPLE, '(objectClass=qmailUser)');
    assert.equal(entries.length, 13);
    for (const [rdn, expected] of Object.entries(EXPECTED)) {
      const dn = `${rdn},${PEOPLE}`;
      const entry = entries.find((e) => e.dn.toLowerCase() === dn.toLowerCase());
      assert.ok(entry, `${dn} present`);
      const got = values(entry);
      assert.ok(got.get('cn')?.length, `${dn} has cn`);
      assert.ok(got.get('sn')?.length, `${dn} has sn`);
      const gotNames = sorted([...got.keys()].filter((k) => k !== 'cn' && k !== 'sn'));
      assert.deepEqual(gotNames, sorted(Object.keys(expected).map((k) => k.toLowerCase())), `${dn}: attribute set`);
      for (const [name, want] of Object.entries(expected)) {
        const have = got.get(name.toLowerCase()) ?? [];
        if (rdn === 'uid=ivan' && name === 'userPassword') {
          assert.equal(have.length, 1);
          assert.match(have[0] ?? '', /^\{SSHA\}[A-Za-z0-9+/]{32}$/, 'ivan: 20-byte digest + 4-byte salt');
        } else if (name === 'objectClass') {
          assert.deepEqual(lowerSorted(have), lowerSorted(want), `${dn}: objectClass`);
        } else {
          assert.deepEqual(sorted(have), sorted(want), `${dn}: ${name}`);
        }
      }
    }
  });

  test('each entry is found by the lookups the mail path makes', async () => {
    const anon = async (filter: string): Promise<string[]> =>
      (await search(slapd.url, null, DEFAULT_SUFFIX, filter, ['1.1'])).map((e) => e.dn.toLowerCase()).sort();
    const dn = (rdn: string): string => `${rdn},${PEOPLE}`.toLowerCase();
    for (const rdn of Object.keys(EXPECTED)) {
      const uid = rdn === 'cn=staff' ? 'staff' : rdn.slice('uid='.length);
      assert.deepEqual(await anon(`(&(objectClass=qmailUser)(uid=${uid}))`), [dn(rdn)], `uid=${uid}`);
      const mail = EXPECTED[rdn]?.mail?.[0] ?? '';
      assert.deepEqual(await anon(`(|(mail=${mail})(mailAlternateAddress=${mail}))`), [dn(rdn)], mail);
    }
    assert.deepEqual(await anon('(mail=Alice@EXAMPLE.org)'), [dn('uid=alice')], 'mail matches case-insensitively');
    assert.deepEqual(await anon('(mailAlternateAddress=A.Smith@example.org)'), [dn('uid=alice')]);
    assert.deepEqual(await anon('(mailAlternateAddress=alice@example.net)'), [dn('uid=alice')]);
    assert.deepEqual(await anon('(mailAlternateAddress=bob-catchall@example.org)'), [dn('uid=bob')]);
    assert.deepEqual(await anon('(mailAlternateAddress=shared@example.org)'), [dn('uid=dave'), dn('uid=erin')], 'deliberate conflict');
    assert.deepEqual(await anon('(mailAlternateAddress=@example.net)'), [dn('uid=nethelp')]);
    assert.deepEqual(await anon('(mail=catchall@example.net)'), [dn('uid=nethelp')]);
    assert.deepEqual(await anon('(&(objectClass=qmailUser)(departmentNumber=42))'), [dn('uid=judy')], 'staff filtermember');
    assert.deepEqual(await anon('(objectClass=qmailGroup)'), [dn('cn=staff')]);
    assert.deepEqual(await anon('(accountStatus=noaccess)'), [dn('uid=ivan')], 'accountStatus compares case-insensitively');
    assert.deepEqual(await anon('(mailQuotaSize=1048576)'), [dn('uid=frank')], 'integerMatch');
    assert.deepEqual(await anon('(membersonly=TRUE)'), [dn('cn=staff')], 'booleanMatch');
    assert.deepEqual(await anon(`(dnmember=UID=Bob,OU=People,DC=example,DC=org)`), [dn('cn=staff')], 'distinguishedNameMatch');
    assert.deepEqual(await anon('(mail=x\\29\\28mail=\\2a@example.org)'), [], 'escaped filter value is no wildcard');
    const all = await search(slapd.url, null, DEFAULT_SUFFIX, '(objectClass=*)', ['1.1']);
    assert.equal(all.length, 16, 'base + ou=people + service account + 13 entries');
  });

  test('userPassword: anonymous may only bind, the service account and the rootdn may read', async () => {
    const [anonymous] = await search(slapd.url, null, DEFAULT_SUFFIX, '(uid=alice)', ['userPassword', 'mail']);
    assert.ok(anonymous);
    assert.equal(values(anonymous).get('userpassword'), undefined, 'hidden from anonymous');
    assert.deepEqual(values(anonymous).get('mail'), ['alice@example.org'], 'other attributes readable');
    const [alice] = await search(slapd.url, [`uid=alice,${PEOPLE}`, 'Alice-pw-1'], DEFAULT_SUFFIX, '(uid=bob)', ['userPassword']);
    assert.ok(alice);
    assert.equal(values(alice).get('userpassword'), undefined, 'hidden from other users');
    const [service] = await search(slapd.url, [SERVICE_DN, SERVICE_PASSWORD], DEFAULT_SUFFIX, '(uid=alice)', ['userPassword']);
    assert.ok(service);
    assert.deepEqual(values(service).get('userpassword'), ['{SSHA}hVzzAEYGonGcwmOEEbXuzoyR5HEBAgMEBQYHCA==']);
    // slapd itself checks these schemes (no modules needed): SSHA, SHA, CRYPT.
    for (const [uid, password] of [['alice', 'Alice-pw-1'], ['bob', 'Bob-pw-2'], ['dave', 'Dave-pw-4'], ['ivan', 'Ivan-pw-9']] as const) {
      await withClient(slapd.url, [`uid=${uid},${PEOPLE}`, password], async () => undefined);
    }
    await assert.rejects(withClient(slapd.url, [`uid=alice,${PEOPLE}`, 'wrong'], async () => undefined), ldapError('InvalidCredentialsError'));
  });

  test('the subschema matches §1.3-§1.5 (OIDs, syntaxes, matching rules, SINGLE-VALUE, classes)', async () => {
    const { attributeTypes, objectClasses } = await qmailSubschema(slapd.url);
    assert.equal(attributeTypes.length, Object.keys(ATTRIBUTES).length, 'no extra or missing 7914 attributes');
    for (const [name, [oid, syntax, equality, single]] of Object.entries(ATTRIBUTES)) {
      const definition = attributeTypes.find((d) => d.startsWith(`( ${oid} `));
      assert.ok(definition, `${name} (${oid}) defined`);
      assert.equal(field(definition, 'NAME'), name, `${oid} NAME`);
      const gotSyntax = (field(definition, 'SYNTAX') ?? '').replace('1.3.6.1.4.1.1466.115.121.1.', '');
      if (syntax.includes('{')) assert.equal(gotSyntax, syntax, `${name} SYNTAX`);
      else assert.equal(gotSyntax.replace(/\{\d+\}$/, ''), syntax, `${name} SYNTAX`);
      if (equality !== null) assert.equal(field(definition, 'EQUALITY'), equality, `${name} EQUALITY`);
      else assert.notEqual(field(definition, 'EQUALITY'), null, `${name} has an EQUALITY rule`);
      assert.equal(/\sSINGLE-VALUE\s/.test(definition), single, `${name} SINGLE-VALUE`);
    }
    for (const gap of [`${Q}.2.1.5`, `${Q}.2.1.13`]) {
      assert.ok(!attributeTypes.some((d) => d.startsWith(`( ${gap} `)), `${gap} stays unused`);
    }
    assert.equal(objectClasses.length, 3);
    for (const [name, spec] of Object.entries(OBJECT_CLASSES)) {
      const definition = objectClasses.find((d) => d.startsWith(`( ${spec.oid} `));
      assert.ok(definition, `${name} defined`);
      assert.equal(field(definition, 'NAME'), name);
      assert.match(definition, /\sSUP top AUXILIARY\s/, `${name} is auxiliary`);
      assert.deepEqual(nameList(definition, 'MUST'), lowerSorted(spec.must), `${name} MUST`);
      assert.deepEqual(nameList(definition, 'MAY'), lowerSorted(spec.may), `${name} MAY`);
    }
  });

  test('the schema is enforced: qmailUser needs mail, single-valued attributes take one value', async () => {
    await withClient(slapd.url, [ROOT_DN, ROOT_PASSWORD], async (client) => {
      await assert.rejects(
        client.add(`uid=nomail,${PEOPLE}`, { objectClass: ['inetOrgPerson', 'qmailUser'], cn: 'x', sn: 'x', uid: 'nomail' }),
        ldapError('ObjectClassViolationError'),
      );
      await assert.rejects(
        client.add(`uid=twohosts,${PEOPLE}`, {
          objectClass: ['inetOrgPerson', 'qmailUser'], cn: 'x', sn: 'x', uid: 'twohosts', mail: 'twohosts@example.org',
          mailHost: ['mx1.example.org', 'mx2.example.org'],
        }),
        ldapError('ConstraintViolationError'),
      );
      await assert.rejects(
        client.add(`uid=badquota,${PEOPLE}`, {
          objectClass: ['inetOrgPerson', 'qmailUser'], cn: 'x', sn: 'x', uid: 'badquota', mail: 'badquota@example.org', mailQuotaSize: '10M',
        }),
        ldapError('InvalidSyntaxError'),
      );
    });
  });

  test('cn=Monitor is enabled', async () => {
    const [monitor] = await search(slapd.url, [ROOT_DN, ROOT_PASSWORD], 'cn=Monitor', '(objectClass=*)', ['1.1'], 'base');
    assert.ok(monitor);
    assert.equal(monitor.dn.toLowerCase(), 'cn=monitor');
  });

  test('ldapadd / ldapmodify, stop and start keep data and port; a crash (SIGKILL) too', async () => {
    const { port, url, dir } = slapd;
    const firstPid = slapd.pid;
    await slapd.ldapadd([
      `dn: uid=oscar,${PEOPLE}`,
      'objectClass: inetOrgPerson',
      'objectClass: qmailUser',
      'cn: Oscar',
      'sn: Oscar',
      'uid: oscar',
      'mail: oscar@example.org',
      '',
    ].join('\n'));
    await slapd.ldapmodify([
      `dn: uid=oscar,${PEOPLE}`,
      'changetype: modify',
      'replace: mailHost',
      'mailHost: mx2.example.org',
      '',
    ].join('\n'));
    await assert.rejects(slapd.ldapadd(`dn: uid=oscar,${PEOPLE}\nobjectClass: inetOrgPerson\ncn: x\nsn: x\n`), /already exists/i);

    await slapd.stop();
    assert.equal(await canConnect(port), false, 'port closed after stop()');
    await slapd.stop(); // idempotent

    let started = performance.now();
    await slapd.start();
    process.stderr.write(`# slapd restart took ${(performance.now() - started).toFixed(0)} ms\n`);
    assert.equal(slapd.port, port);
    assert.equal(slapd.url, url);
    assert.equal(slapd.dir, dir);
    assert.notEqual(slapd.pid, firstPid);
    const [oscar] = await search(slapd.url, null, DEFAULT_SUFFIX, '(mail=oscar@example.org)', ['mailHost']);
    assert.ok(oscar, 'added entry survived the restart');
    assert.deepEqual(values(oscar).get('mailhost'), ['mx2.example.org']);
    assert.equal((await search(slapd.url, null, PEOPLE, '(objectClass=qmailUser)', ['1.1'])).length, 14);

    const secondPid = slapd.pid;
    slapd.kill('SIGKILL');
    started = performance.now();
    await slapd.start(); // waits for the killed process first
    process.stderr.write(`# slapd start after SIGKILL took ${(performance.now() - started).toFixed(0)} ms\n`);
    assert.notEqual(slapd.pid, secondPid);
    assert.equal(slapd.port, port);
    assert.equal((await search(slapd.url, null, DEFAULT_SUFFIX, '(uid=oscar)', ['1.1'])).length, 1);
    await slapd.start(); // no-op while running
  });
});

describe('slapd harness options', () => {
  test('sample: false with an extra LDIF under another suffix', async () => {
    const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-test-'));
    try {
      const ldif = path.join(tmp, 'base.ldif');
      await fsp.writeFile(ldif, [
        'dn: dc=test', 'objectClass: dcObject', 'objectClass: organization', 'dc: test', 'o: Test', '',
        'dn: uid=solo,dc=test', 'objectClass: inetOrgPerson', 'objectClass: qmailUser', 'cn: solo', 'sn: solo',
        'uid: solo', 'mail: solo@test.example', '',
      ].join('\n'));
      const slapd = await startSlapd({ suffix: 'dc=test', ldif: [ldif] });
      try {
        assert.equal(slapd.rootDN, 'cn=admin,dc=test');
        const entries = await search(slapd.url, null, 'dc=test', '(objectClass=*)', ['1.1']);
        assert.deepEqual(entries.map((e) => e.dn).sort(), ['dc=test', 'uid=solo,dc=test']);
      } finally {
        await slapd.stop();
      }
      await assert.rejects(startSlapd({ suffix: 'dc=test', sample: true }), /sample directory/);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('schema/qmail.ldif in a cn=config slapd', () => {
  let slapd: Slapd;
  let classicUrl: string;
  let classic: Slapd;

  before(async () => {
    classic = await startSlapd();
    classicUrl = classic.url;

    slapd = await startSlapdCnConfig({ global: ['olcSizeLimit: unlimited'], database: ['olcDbIndex: objectClass eq', 'olcDbIndex: mail,mailAlternateAddress,uid eq'] });
  });
  after(async () => {
    await slapd?.stop();
    await classic?.stop();
  });

  test('cn=qmail is loaded under cn=schema,cn=config and defines qmailUser', async () => {
    const entries = await search(slapd.url, ['cn=admin,cn=config', ROOT_PASSWORD], 'cn=schema,cn=config', '(cn=*qmail)', ['olcObjectClasses', 'olcAttributeTypes'], 'one');
    assert.equal(entries.length, 1);
    const [entry] = entries;
    assert.ok(entry);
    assert.match(entry.dn, /^cn=\{4\}qmail,cn=schema,cn=config$/);
    const v = values(entry);
    assert.equal(v.get('olcobjectclasses')?.length, 3);
    assert.equal(v.get('olcattributetypes')?.length, Object.keys(ATTRIBUTES).length);
    assert.ok(v.get('olcobjectclasses')?.some((d) => d.includes(`${Q}.2.2.1 NAME 'qmailUser'`)));
  });

  test('the sample directory loads and qmailUser/qmailGroup/qldapAdmin entries can be added', async () => {
    assert.equal((await search(slapd.url, null, PEOPLE, '(objectClass=qmailUser)', ['1.1'])).length, 13);
    await withClient(slapd.url, [ROOT_DN, ROOT_PASSWORD], async (client) => {
      await client.add(`uid=newbie,${PEOPLE}`, {
        objectClass: ['inetOrgPerson', 'qmailUser'], cn: 'Newbie', sn: 'Newbie', uid: 'newbie',
        mail: 'newbie@example.org', qmailUID: '2000', qmailGID: '2000', mailQuotaSize: '0',
      });
      await client.add(`ou=admins,${DEFAULT_SUFFIX}`, {
        objectClass: ['organizationalUnit', 'qldapAdmin'], ou: 'admins',
        qlaDnManager: ROOT_DN, qlaDomainList: 'example.org', qlaMailMStorePrefix: 'example.org/', qlaMailHostList: 'mx1.example.org',
      });
    });
    const [newbie] = await search(slapd.url, null, DEFAULT_SUFFIX, '(&(objectClass=qmailUser)(qmailUID=2000))', ['mail']);
    assert.ok(newbie);
    assert.deepEqual(values(newbie).get('mail'), ['newbie@example.org']);
  });

  test('qmail.ldif and qmail.schema define exactly the same attribute types and classes', async () => {
    assert.deepEqual(await qmailSubschema(slapd.url), await qmailSubschema(classicUrl));
  });

  test('stop and start keep data and port (cn=config)', async () => {
    const port = slapd.port;
    await slapd.stop();
    await slapd.start();
    assert.equal(slapd.port, port);
    assert.equal((await search(slapd.url, null, DEFAULT_SUFFIX, '(uid=newbie)', ['1.1'])).length, 1);
  });
});

describe('redis harness', () => {
  test('starts, answers PING, stops, starts again on the same port', async () => {
    const started = performance.now();
    const redis = await startRedis();
    process.stderr.write(`# startRedis took ${(performance.now() - started).toFixed(0)} ms on ${redis.url}\n`);
    try {
      assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
      assert.ok(redis.pid > 0);
      assert.equal(await redisPing(redis.port), true);
      const { port, pid } = redis;
      await redis.stop();
      assert.equal(await redisPing(port), false);
      await redis.start();
      assert.equal(redis.port, port);
      assert.notEqual(redis.pid, pid);
      assert.equal(await redisPing(redis.port), true);
      redis.kill('SIGKILL');
      await redis.start();
      assert.equal(await redisPing(redis.port), true);
    } finally {
      await redis.stop();
    }
  });
});
