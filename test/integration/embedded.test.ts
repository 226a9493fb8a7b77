// The embedded LDIF-backed directory (src/directory/embedded/, ldif.ts) driven by the real ldapts
// client over a real loopback socket. Owns only its temp fixture; never uses a mock library or a fixed port.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Attribute, Change, Client, InvalidCredentialsError, NoSuchObjectError, UnwillingToPerformError, type Entry } from 'ldapts';
import { startEmbeddedDirectory, type EmbeddedDirectory } from '../../src/directory/embedded/index.ts';
import { getAttribute, LdifError, parseLdif } from '../../src/directory/ldif.ts';
import { silentLogger } from '../../src/log.ts';

const BASE = 'dc=example,dc=org';
const PEOPLE = `ou=people,${BASE}`;
const ROOT_DN = `cn=admin,${BASE}`;
const ROOT_PASSWORD = 'root-secret';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

// Bob's cn is base64 (non-ASCII); carol's description is folded over three lines; DN spacing and
// case vary on purpose.
const FIXTURE = `version: 1
# a comment that is
 folded onto a second line

dn: ${BASE}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people, dc=example, dc=org
objectClass: organizationalUnit
ou: people

dn: uid=alice,${PEOPLE}
objectClass: inetOrgPerson
uid: alice
cn: Alice Smith
sn: Smith
mail: alice@example.org
mailAlternateAddress: a.smith@example.org
mailAlternateAddress: alice@example.net
userPassword: {SSHA}alice-stored-hash

dn: UID=Bob,OU=People,DC=Example,DC=Org
objectClass: inetOrgPerson
uid: bob
cn:: ${b64('Bøb Ünïcode')}
sn: Builder
mail: bob@example.org
description: path\\zone
userPassword: {SSHA}bob-stored-hash

dn: uid=carol,${PEOPLE}
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Jones
mail: carol@example.org
mailAlternateAddress: bob@example.net
description: a long description that is fo
 lded over three li
 nes
description: wild*card
`;

/** The test's password check: a plain function, no hashing, fixed strings. */
async function verifyPassword(stored: string, password: string): Promise<boolean> {
  return (stored === '{SSHA}alice-stored-hash' && password === 'alice-pw') || (stored === '{SSHA}bob-stored-hash' && password === 'bob-pw');
}

let dir: string;
let ldifPath: string;
let server: EmbeddedDirectory;
const clients: Client[] = [];

function client(): Client {
  const c = new Client({ url: server.url, timeout: 5000, connectTimeout: 5000 });
  clients.push(c);
  return c;
}

async function search(filter: string, options: { base?: string; scope?: 'base' | 'one' | 'sub'; attributes?: string[]; sizeLimit?: number; as?: Client } = {}): Promise<Entry[]> {
  const c = options.as ?? client();
  const { searchEntries } = await c.search(options.base ?? BASE, {
    scope: options.scope ?? 'sub',
    filter,
    ...(options.attributes ? { attributes: options.attributes } : {}),
    ...(options.sizeLimit ? { sizeLimit: options.sizeLimit } : {}),
  });
  return searchEntries;
}

const uids = (entries: Entry[]): string[] => entries.map((e) => String(e.uid)).sort();
/** Attribute names that carry values (ldapts adds requested-but-absent attributes as []). */
const present = (entry: Entry | undefined): string[] =>
  Object.entries(entry ?? {}).filter(([k, v]) => k !== 'dn' && !(Array.isArray(v) && v.length === 0)).map(([k]) => k).sort();
const lowerDns = (entries: Entry[]): string[] => entries.map((e) => e.dn.toLowerCase().replace(/\s+/g, '')).sort();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ldapmta-embedded-'));
  ldifPath = join(dir, 'directory.ldif');
  await writeFile(ldifPath, FIXTURE);
  server = await startEmbeddedDirectory({ ldifPath, rootDN: ROOT_DN, rootPassword: ROOT_PASSWORD, verifyPassword, log: silentLogger() });
});

after(async () => {
  await Promise.all(clients.map((c) => c.unbind().catch(() => {})));
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('LDIF parsing', () => {
  test('base64 values, folded lines, comments and version', () => {
    const entries = parseLdif(FIXTURE);
    assert.equal(entries.length, 5);
    const bob = entries[3]!;
    assert.equal(getAttribute(bob, 'CN')?.[0], 'Bøb Ünïcode');
    const carol = entries[4]!;
    assert.deepEqual(getAttribute(carol, 'description'), ['a long description that is folded over three lines', 'wild*card']);
    assert.equal(entries[1]!.dn, 'ou=people, dc=example, dc=org');
  });

  test('an error names the line', () => {
    assert.throws(() => parseLdif('dn: dc=x\nobjectClass: top\nthis line has no colon\n'), (err: unknown) => {
      assert.ok(err instanceof LdifError);
      assert.equal(err.line, 3);
      assert.match(err.message, /^line 3: /);
      return true;
    });
    assert.throws(() => parseLdif('dn: dc=x\n\ndn: dc=y\njpegPhoto:< file:///etc/passwd\n'), /line 4: URL values/);
    assert.throws(() => parseLdif('dn: dc=x\ncn:: not*base64\n'), /line 2: invalid base64/);
    assert.throws(() => parseLdif('objectClass: top\n'), /line 1: a record must start with "dn:"/);
  });

  test('a bad file fails startup with its path and line', async () => {
    const bad = join(dir, 'bad.ldif');
    await writeFile(bad, `dn: ${BASE}\nobjectClass: top\n\ndn: not a dn\nobjectClass: top\n`);
    await assert.rejects(
      startEmbeddedDirectory({ ldifPath: bad, rootDN: ROOT_DN, rootPassword: ROOT_PASSWORD, log: silentLogger() }),
      (err: Error) => err.message.includes(bad) && /line 4: invalid DN/.test(err.message),
    );
  });

  test('base64 and folded values arrive intact over LDAP', async () => {
    const [bob] = await search('(uid=bob)', { attributes: ['cn'] });
    assert.equal(bob?.cn, 'Bøb Ünïcode');
    const [carol] = await search('(description=*three lines)', { attributes: ['description'] });
    assert.deepEqual(carol?.description, ['a long description that is folded over three lines', 'wild*card']);
  });
});

describe('filters', () => {
  test('equality on mail ignores case', async () => {
    assert.deepEqual(uids(await search('(mail=Alice@EXAMPLE.org)')), ['alice']);
    assert.deepEqual(uids(await search('(MAIL=BOB@example.ORG)')), ['bob']);
    assert.deepEqual(uids(await search('(uid=ALICE)')), ['alice']);
  });

  test('OR over mail and mailAlternateAddress', async () => {
    const filter = (a: string): string => `(|(mail=${a})(mailAlternateAddress=${a}))`;
    assert.deepEqual(uids(await search(filter('A.Smith@example.org'))), ['alice']);
    assert.deepEqual(uids(await search(filter('bob@example.net'))), ['carol']);
    assert.deepEqual(uids(await search(filter('nobody@example.org'))), []);
    // AND with an objectClass restriction, as the resolver sends it
    assert.deepEqual(uids(await search(`(&(objectClass=InetOrgPerson)${filter('alice@example.net')})`)), ['alice']);
  });

  test('an escaped * (\\2a) is a literal, not a wildcard', async () => {
    assert.deepEqual(uids(await search('(mail=a\\2a)')), []);
    assert.deepEqual(uids(await search('(mail=\\2a)')), []);
    assert.deepEqual(uids(await search('(description=wild\\2acard)')), ['carol']);
    assert.deepEqual(uids(await search('(description=wild\\2a)')), []);
  });

  test('a backslash before an escaped * stays literal (ldapjs round-trip would make it a wildcard)', async () => {
    assert.deepEqual(uids(await search('(description=path\\5czone)')), ['bob']);
    assert.deepEqual(uids(await search('(description=path\\5cz\\2a)')), []);
  });

  test('real substrings, presence, not, >=', async () => {
    assert.deepEqual(uids(await search('(mail=a*)')), ['alice']);
    assert.deepEqual(uids(await search('(mail=*@EXAMPLE.org)')), ['alice', 'bob', 'carol']);
    assert.deepEqual(uids(await search('(cn=*ÜNÏ*)')), ['bob']);
    assert.deepEqual(uids(await search('(&(uid=*)(!(mailAlternateAddress=*)))')), ['bob']);
    assert.deepEqual(uids(await search('(&(objectClass=inetOrgPerson)(uid>=b))')), ['bob', 'carol']);
  });
});

describe('scopes and base', () => {
  test('base, one and sub', async () => {
    assert.deepEqual(lowerDns(await search('(objectClass=*)', { scope: 'base' })), [BASE]);
    assert.deepEqual(lowerDns(await search('(objectClass=*)', { scope: 'one' })), [PEOPLE]);
    assert.equal((await search('(objectClass=*)', { scope: 'sub' })).length, 5);
    assert.deepEqual(uids(await search('(objectClass=*)', { base: PEOPLE, scope: 'one' })), ['alice', 'bob', 'carol']);
    // base DN matched case- and space-insensitively; the entry comes back spelled as in the LDIF
    const [bob] = await search('(objectClass=*)', { base: 'uid=BOB, ou=people, dc=EXAMPLE, dc=org', scope: 'base' });
    assert.equal(bob?.dn, 'UID=Bob,OU=People,DC=Example,DC=Org');
  });

  test('a missing base is noSuchObject', async () => {
    await assert.rejects(search('(objectClass=*)', { base: `ou=nowhere,${BASE}` }), NoSuchObjectError);
    await assert.rejects(search('(objectClass=*)', { base: 'dc=example,dc=com' }), NoSuchObjectError);
  });

  test('the root DSE names the suffix', async () => {
    const [dse] = await search('(objectClass=*)', { base: '', scope: 'base' });
    assert.equal(dse?.namingContexts, BASE);
  });
});

describe('attributes and limits', () => {
  test('only the requested attributes, matched case-insensitively, in LDIF spelling', async () => {
    const [alice] = await search('(uid=alice)', { attributes: ['MAIL', 'mailalternateaddress'] });
    assert.deepEqual(present(alice), ['mail', 'mailAlternateAddress']);
    assert.deepEqual(alice!.mailAlternateAddress, ['a.smith@example.org', 'alice@example.net']);
    const [none] = await search('(uid=alice)', { attributes: ['1.1'] });
    assert.equal(none?.dn, `uid=alice,${PEOPLE}`);
    assert.deepEqual(present(none), []);
    const [all] = await search('(uid=alice)', { attributes: ['*'] });
    assert.ok('cn' in all! && 'sn' in all! && 'objectClass' in all!);
  });

  test('sizeLimit stops after N entries', async () => {
    assert.equal((await search('(objectClass=inetOrgPerson)', { sizeLimit: 2 })).length, 2);
    assert.equal((await search('(objectClass=inetOrgPerson)', { sizeLimit: 3 })).length, 3);
  });

  test('userPassword is hidden from anonymous and users, shown to the rootDN', async () => {
    const [anon] = await search('(uid=alice)', { attributes: ['userPassword', 'uid'] });
    assert.deepEqual(present(anon), ['uid']);
    // and cannot be probed through a filter
    assert.deepEqual(await search('(userPassword={SSHA}alice-stored-hash)'), []);
    assert.deepEqual(await search('(userPassword=*)'), []);

    const user = client();
    await user.bind(`uid=alice,${PEOPLE}`, 'alice-pw');
    const [self] = await search('(uid=alice)', { as: user });
    assert.ok(!present(self).includes('userPassword'));

    const root = client();
    await root.bind(ROOT_DN, ROOT_PASSWORD);
    const [full] = await search('(uid=alice)', { as: root });
    assert.equal(full?.userPassword, '{SSHA}alice-stored-hash');
    assert.equal((await search('(userPassword=*)', { as: root })).length, 2);
  });
});

describe('bind', () => {
  test('rootDN: right password ok, wrong or empty refused', async () => {
    await client().bind(ROOT_DN, ROOT_PASSWORD);
    await client().bind('CN=Admin, DC=Example, DC=Org', ROOT_PASSWORD);
    await assert.rejects(client().bind(ROOT_DN, 'wrong'), InvalidCredentialsError);
    await assert.rejects(client().bind(ROOT_DN, ''), InvalidCredentialsError);
  });

  test('user bind goes through verifyPassword', async () => {
    await client().bind(`uid=alice,${PEOPLE}`, 'alice-pw');
    await client().bind('uid=bob,ou=people,dc=example,dc=org', 'bob-pw');
    await assert.rejects(client().bind(`uid=alice,${PEOPLE}`, 'bob-pw'), InvalidCredentialsError);
    await assert.rejects(client().bind(`uid=alice,${PEOPLE}`, ''), InvalidCredentialsError);
    await assert.rejects(client().bind(`uid=carol,${PEOPLE}`, 'anything'), InvalidCredentialsError); // no userPassword
    await assert.rejects(client().bind(`uid=nobody,${PEOPLE}`, 'alice-pw'), InvalidCredentialsError);
  });

  test('without verifyPassword user binds fail', async () => {
    const bare = await startEmbeddedDirectory({ ldifPath, rootDN: ROOT_DN, rootPassword: ROOT_PASSWORD, log: silentLogger() });
    const c = new Client({ url: bare.url });
    try {
      await assert.rejects(c.bind(`uid=alice,${PEOPLE}`, 'alice-pw'), InvalidCredentialsError);
      await c.bind('', '');
    } finally {
      await c.unbind().catch(() => {});
      await bare.close();
    }
  });

  test('anonymous bind is allowed; a failed bind drops root privileges', async () => {
    const c = client();
    await c.bind('', '');
    await c.bind(ROOT_DN, ROOT_PASSWORD);
    assert.equal((await search('(uid=alice)', { as: c }))[0]?.userPassword, '{SSHA}alice-stored-hash');
    await assert.rejects(c.bind(ROOT_DN, 'wrong'), InvalidCredentialsError);
    assert.ok(!present((await search('(uid=alice)', { as: c }))[0]).includes('userPassword'));
  });
});

test('writes are refused with unwillingToPerform', async () => {
  const c = client();
  await c.bind(ROOT_DN, ROOT_PASSWORD);
  await assert.rejects(c.add(`uid=dave,${PEOPLE}`, { objectClass: 'inetOrgPerson', uid: 'dave', cn: 'Dave', sn: 'D' }), UnwillingToPerformError);
  await assert.rejects(c.modify(`uid=alice,${PEOPLE}`, new Change({ operation: 'replace', modification: new Attribute({ type: 'mail', values: ['x@example.org'] }) })), UnwillingToPerformError);
  await assert.rejects(c.del(`uid=alice,${PEOPLE}`), UnwillingToPerformError);
  await assert.rejects(c.modifyDN(`uid=alice,${PEOPLE}`, 'uid=alicia'), UnwillingToPerformError);
  assert.deepEqual(uids(await search('(mail=alice@example.org)')), ['alice']);
});

test('200 sequential searches over one connection are fast (TCP_NODELAY)', async () => {
  const c = client();
  await c.bind(ROOT_DN, ROOT_PASSWORD);
  await c.search(BASE, { filter: '(mail=alice@example.org)' }); // warm up
  const runs = 200;
  const started = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) {
    const { searchEntries } = await c.search(BASE, { scope: 'sub', filter: `(|(mail=alice@example.org)(mailAlternateAddress=alice@example.org))`, attributes: ['mail'] });
    assert.equal(searchEntries.length, 1);
  }
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`embedded directory: ${runs} searches in ${totalMs.toFixed(1)} ms, mean ${(totalMs / runs).toFixed(3)} ms/search`);
  assert.ok(totalMs < 2000, `200 searches took ${totalMs} ms; Nagle/delayed-ACK not disabled?`);
});
