// The Samba AD domain controller of the test harness (for issue 7's `ad` profile), and the Active
// Directory behaviour the profile will rely on, checked against the real DC: proxyAddresses matched
// without regard to case, nested groups through the in-chain matching rule, userAccountControl's
// disabled bit, and logins (a bind as the UPN works; a bare sAMAccountName is refused with 52e).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, InvalidCredentialsError } from 'ldapts';
import { startSambaDc, type SambaDc } from '../harness/samba.ts';

let dc: SambaDc;
let admin: Client;

before(async () => {
  dc = await startSambaDc();
  admin = new Client({ url: dc.url });
  await admin.bind(dc.adminUpn, dc.adminPassword);
  await dc.tool(['user', 'create', 'alice', 'Alice-Pw-2026!', '--mail-address=alice@example.test']);
  await dc.tool(['user', 'create', 'leaver', 'Leaver-Pw-2026!', '--mail-address=leaver@example.test']);
  await dc.tool(['user', 'disable', 'leaver']);
  await dc.tool(['group', 'add', 'inner']);
  await dc.tool(['group', 'add', 'outer']);
  await dc.tool(['group', 'addmembers', 'inner', 'alice']);
  await dc.tool(['group', 'addmembers', 'outer', 'inner']);
  await dc.modify([
    `dn: CN=alice,CN=Users,${dc.baseDN}`,
    'changetype: modify',
    'add: proxyAddresses',
    'proxyAddresses: SMTP:alice@example.test',
    'proxyAddresses: smtp:a.smith@example.test',
    'proxyAddresses: X400:c=US;a= ;p=Example;o=Exchange;s=alice',
    '',
  ].join('\n'));
});

after(async () => {
  await admin?.unbind().catch(() => undefined);
  await dc?.stop();
});

async function search(filter: string, attributes: string[] = ['dn']) {
  const { searchEntries } = await admin.search(dc.baseDN, { scope: 'sub', filter, attributes });
  return searchEntries;
}

test('proxyAddresses: the smtp: prefix and the address match without regard to case; other prefixes are there too', async () => {
  const found = await search('(proxyAddresses=smtp:A.SMITH@EXAMPLE.TEST)', ['proxyAddresses', 'userPrincipalName']);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.dn, `CN=alice,CN=Users,${dc.baseDN}`);
  assert.deepEqual([...(found[0]!.proxyAddresses as string[])].sort(), ['SMTP:alice@example.test', 'X400:c=US;a= ;p=Example;o=Exchange;s=alice', 'smtp:a.smith@example.test']);
  assert.equal(found[0]!.userPrincipalName, 'alice@example.test');
});

test('nested groups: the in-chain matching rule finds alice in outer through inner; a plain memberOf does not', async () => {
  const outer = `CN=outer,CN=Users,${dc.baseDN}`;
  const chained = await search(`(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=${outer}))`);
  assert.deepEqual(chained.map((e) => e.dn), [`CN=alice,CN=Users,${dc.baseDN}`]);
  assert.deepEqual(await search(`(&(objectClass=user)(memberOf=${outer}))`), []);
});

test('userAccountControl: the disabled bit (0x2) is set for a disabled account, and a bitwise filter finds it', async () => {
  const [leaver] = await search('(sAMAccountName=leaver)', ['userAccountControl']);
  assert.equal(Number(leaver!.userAccountControl) & 2, 2);
  const disabled = await search('(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2)(mail=*))', ['sAMAccountName']);
  assert.deepEqual(disabled.map((e) => e.sAMAccountName), ['leaver']);
});

test('logins: a bind as the UPN or the DN works; a bare sAMAccountName is refused (52e), so it must be looked up first', async () => {
  for (const name of ['alice@example.test', `CN=alice,CN=Users,${dc.baseDN}`]) {
    const c = new Client({ url: dc.url });
    await c.bind(name, 'Alice-Pw-2026!');
    await c.unbind();
  }
  const c = new Client({ url: dc.url });
  await assert.rejects(c.bind('alice', 'Alice-Pw-2026!'), (err: unknown) => err instanceof InvalidCredentialsError && /52e/.test((err as Error).message));
  await assert.rejects(new Client({ url: dc.url }).bind('leaver@example.test', 'Leaver-Pw-2026!'), InvalidCredentialsError, 'a disabled account cannot bind');
});
