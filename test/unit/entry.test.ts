// LDAP entry → Resolution (directory-model §2.6, §3.1–§3.5): statuses, mailbox location and
// path safety, delivery modes, quota, groups, illegal values. Pure tables, no LDAP.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliveryFlags, toResolution, type EntryContext } from '../../src/directory/entry.ts';
import type { LdapEntry } from '../../src/directory/pool.ts';
import { INETORGPERSON, QMAIL } from '../../src/directory/profiles.ts';

const warnings: string[] = [];
const ctx: EntryContext = {
  profile: QMAIL, self: new Set(['mx1.example.org']), mailboxes: '/var/mail', defaultDelivery: './',
  defaultQuotaSize: 0, defaultQuotaCount: 0, unknownAccountStatus: 'active', disabledAs: 'noaccess',
  warn: (_fields, message) => { warnings.push(message); },
};

function entry(attrs: Record<string, string | string[]>): LdapEntry {
  const map = new Map<string, string[]>();
  for (const [k, v] of Object.entries({ mail: 'u@example.org', uid: 'u', objectClass: ['inetOrgPerson', 'qmailUser'], ...attrs })) {
    map.set(k.toLowerCase(), Array.isArray(v) ? v : [v]);
  }
  return { dn: 'uid=u,ou=people,dc=example,dc=org', attrs: map };
}
const hit = { key: 'u@example.org', extension: null };
const resolve = (attrs: Record<string, string | string[]>, c: EntryContext = ctx) => toResolution(entry(attrs), hit, c);

test('accountStatus: disabled 5.2.1, deleted 5.1.1, noaccess/nopop accepted, unknown values active', () => {
  const store = { mailMessageStore: 'example.org/u/' };
  assert.deepEqual(pick(resolve({ ...store, accountStatus: 'disabled' })), { kind: 'reject', status: '5.2.1' });
  assert.deepEqual(pick(resolve({ ...store, accountStatus: 'DELETED' })), { kind: 'reject', status: '5.1.1' });
  for (const s of ['NoAccess', 'nopop']) {
    const r = resolve({ ...store, accountStatus: s });
    assert.equal(r.kind, 'mailbox');
    assert.equal(r.kind === 'mailbox' && r.accountStatus, 'noaccess');
  }
  const before = warnings.length;
  const r = resolve({ ...store, accountStatus: 'actve' });
  assert.equal(r.kind === 'mailbox' && r.accountStatus, 'active');
  assert.equal(warnings.length, before + 1);
  assert.throws(() => resolve({ ...store, accountStatus: 'weird' }, { ...ctx, unknownAccountStatus: 'tempfail' }), { kind: 'temporary' });
});

test('mailbox location follows §3.2 and stays inside the mailbox base', () => {
  const rows: [Record<string, string>, string | null][] = [
    [{ mailMessageStore: 'example.org/u/' }, '/var/mail/example.org/u/'],
    [{ mailMessageStore: '/var/mail/abs/u' }, '/var/mail/abs/u/'],
    [{ homeDirectory: '/var/mail/h/u' }, '/var/mail/h/u/'],
    [{ homeDirectory: '/var/mail/h/u', mailMessageStore: './Maildir/' }, '/var/mail/h/u/Maildir/'],
    [{ homeDirectory: '/var/mail/h/u', mailMessageStore: '/var/mail/other/' }, '/var/mail/other/'],
  ];
  for (const [attrs, expected] of rows) {
    const r = resolve(attrs);
    assert.equal(r.kind === 'mailbox' ? r.mailbox : r.kind, expected, JSON.stringify(attrs));
  }
  const withMaildir = resolve({ mailMessageStore: 'example.org/u/' }, { ...ctx, defaultDelivery: './Maildir/' });
  assert.equal(withMaildir.kind === 'mailbox' && withMaildir.mailbox, '/var/mail/example.org/u/Maildir/');
});

test('paths that escape the base or carry forbidden bytes are refused with 5.3.5', () => {
  for (const attrs of [
    { mailMessageStore: '../../etc/' }, { mailMessageStore: 'a/../../../etc/' }, { mailMessageStore: '/etc/' },
    { mailMessageStore: 'x;rm -rf/' }, { mailMessageStore: '-x/' }, { homeDirectory: 'relative/home' },
    { homeDirectory: '/var/mail/h', mailMessageStore: 'mbox-file' }, { homeDirectory: '/var/mail/h', mailMessageStore: 'x/' },
    { mailMessageStore: '/var/mail' }, { mailMessageStore: 'a b/' },
  ]) {
    assert.deepEqual(pick(resolve(attrs as Record<string, string>)), { kind: 'reject', status: '5.3.5' }, JSON.stringify(attrs));
  }
});

test('no store and no home: forward-only, or 5.3.5 without a forwarding address', () => {
  const r = resolve({ mailForwardingAddress: 'carol@elsewhere.test' });
  assert.equal(r.kind, 'forward');
  assert.deepEqual(r.kind === 'forward' && r.forwards, ['carol@elsewhere.test']);
  assert.deepEqual(pick(resolve({})), { kind: 'reject', status: '5.3.5' });
});

test('illegal integers, doubled single values, missing uid and out-of-range ids are 5.3.5', () => {
  const store = { mailMessageStore: 'example.org/u/' };
  for (const attrs of [
    { ...store, mailQuotaSize: '10M' }, { ...store, mailSizeMax: '-1' }, { ...store, mailHost: ['a', 'b'] },
    { ...store, uid: [] as unknown as string }, { ...store, qmailUID: '0' }, { ...store, qmailGID: '70000' },
  ]) {
    assert.deepEqual(pick(resolve(attrs as Record<string, string>)), { kind: 'reject', status: '5.3.5' }, JSON.stringify(attrs));
  }
});

test('quota, size limit and mailHost', () => {
  const r = resolve({ mailMessageStore: 'example.org/u/', mailQuotaSize: '1048576', mailQuotaCount: '0', mailSizeMax: '524288', mailHost: 'MX2.example.org.' });
  assert.equal(r.kind, 'mailbox');
  if (r.kind !== 'mailbox') return;
  assert.deepEqual(r.quota, { bytes: 1048576, count: null });
  assert.equal(r.sizeMax, 524288);
  assert.equal(r.mailHost, 'mx2.example.org');
  assert.equal(r.local, false);
  const d = resolve({ mailMessageStore: 'example.org/u/', mailHost: 'mx1.example.org' }, { ...ctx, defaultQuotaSize: 5000 });
  assert.equal(d.kind === 'mailbox' && d.local, true);
  assert.deepEqual(d.kind === 'mailbox' && d.quota, { bytes: 5000, count: null });
});

test('deliveryMode and qmailDotMode combinations (§3.5 table)', () => {
  const rows: [string[], string | null, [boolean, boolean, boolean, boolean]][] = [
    [[], null, [true, true, false, false]],
    [[], 'ldapwithprog', [true, true, true, false]],
    [['noforward'], 'ldapwithprog', [true, false, true, false]],
    [['nolocal'], 'ldapwithprog', [false, true, true, false]],
    [['NOMBOX', 'noforward'], null, [false, false, false, false]],
    [['reply'], null, [true, true, false, true]],
    [['reply', 'nolocal'], null, [false, true, false, true]],
    [['noprogram'], 'both', [true, true, false, false]],
    [['forwardonly'], 'ldapwithprog', [false, true, false, false]],
    [['normal', 'local', 'noreply'], null, [true, true, false, false]],
    [['reply'], 'none', [true, false, false, false]],
  ];
  for (const [modes, dot, [local, forward, program, reply]] of rows) {
    assert.deepEqual(deliveryFlags(modes, dot), { local, forward, program, reply }, `${modes} ${dot}`);
  }
});

test('qmailGroup entries resolve to a group with their member and sender lists', () => {
  const r = resolve({
    objectClass: ['inetOrgPerson', 'qmailUser', 'qmailGroup'], mailMessageStore: 'example.org/staff/',
    dnmember: ['uid=a,dc=x', 'uid=b,dc=x'], rfc822member: 'outside@partner.test', filtermember: '(departmentNumber=42)',
    membersonly: 'TRUE', senderconfirm: 'FALSE', bounceadmin: 'postmaster@example.org',
  });
  assert.equal(r.kind, 'group');
  if (r.kind !== 'group') return;
  assert.deepEqual(r.members, { dn: ['uid=a,dc=x', 'uid=b,dc=x'], rfc822: ['outside@partner.test'], filter: ['(departmentNumber=42)'] });
  assert.equal(r.membersOnly, true);
  assert.equal(r.senderConfirm, false);
  assert.throws(() => resolve({ objectClass: ['qmailUser', 'qmailGroup'], mailMessageStore: 'x/', membersonly: 'maybe' }), { kind: 'temporary' });
});

test('the inetorgperson profile derives a store from the address and forwards by mailRoutingAddress', () => {
  const c = { ...ctx, profile: INETORGPERSON };
  const r = toResolution(entry({ mail: ['Pat@Example.org', 'p@example.org'], mailLocalAddress: 'pat.alias@example.org' }), hit, c);
  assert.equal(r.kind === 'mailbox' && r.mailbox, '/var/mail/example.org/pat/');
  assert.deepEqual(r.kind === 'mailbox' && r.addresses, ['pat@example.org', 'p@example.org', 'pat.alias@example.org']);
});

function pick(r: { kind: string; status?: string }) {
  return { kind: r.kind, ...(r.status === undefined ? {} : { status: r.status }) };
}
