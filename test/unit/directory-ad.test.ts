// Active Directory profile (directory-model §6.3 proxyAddresses, §6.4 account state): typed
// addresses, the primary-address rules, filter terms, profileFor's configuration, and AD entries
// through toResolution and loginAllowed. Pure tables, no LDAP, no I/O.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Candidate } from '../../src/directory/candidates.ts';
import { loginAllowed, toResolution, type EntryContext } from '../../src/directory/entry.ts';
import type { LdapEntry } from '../../src/directory/pool.ts';
import {
  AD, INETORGPERSON, QMAIL, addressTerms, attributeHolding, entryAddresses, profileFor, recipientAttributes,
  templateAttributes, typedAddress, type Profile, type ProfileSettings,
} from '../../src/directory/profiles.ts';
import type { Resolution } from '../../src/directory/types.ts';

type Attrs = Record<string, string | readonly string[]>;

/** An attribute map as pool.ts builds it: lower-case names, every value a list. */
function attrs(values: Attrs): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const [k, v] of Object.entries(values)) map.set(k.toLowerCase(), typeof v === 'string' ? [v] : [...v]);
  return map;
}

const USER = ['top', 'person', 'organizationalPerson', 'user'];
const CONTACT = ['top', 'person', 'organizationalPerson', 'contact'];
const GROUP = ['top', 'group'];

function adEntry(values: Attrs, dn = 'CN=Alice Smith,OU=Staff,DC=example,DC=test'): LdapEntry {
  return { dn, attrs: attrs(values) };
}

/** A typical mailbox-enabled AD user. */
const alice: Attrs = {
  objectClass: USER,
  sAMAccountName: 'Alice',
  userPrincipalName: 'alice@corp.example.test',
  userAccountControl: '512',
  mail: 'alice@example.test',
  proxyAddresses: ['SMTP:Alice.Smith@example.test', 'smtp:alice@example.test', 'smtp:as@example.test', 'X500:/o=Org/ou=Exchange/cn=Recipients/cn=alice'],
};

const warnings: string[] = [];
const ctx: EntryContext = {
  profile: AD, self: new Set(['mx1.example.test']), mailboxes: '/var/mail', defaultDelivery: './',
  defaultQuotaSize: 0, defaultQuotaCount: 0, unknownAccountStatus: 'active', disabledAs: 'noaccess',
  warn: (_fields, message) => { warnings.push(message); },
};

const hitFor = (key: string): Candidate => ({ key, extension: null });
const resolve = (values: Attrs, key = 'alice@example.test', c: Partial<EntryContext> = {}): Resolution =>
  toResolution(adEntry(values), hitFor(key), { ...ctx, ...c });

function settings(overrides: Partial<ProfileSettings> = {}): ProfileSettings {
  return {
    profile: 'ad', mailboxTemplate: '', attributes: {}, quotaSizeUnit: 'bytes',
    loginBy: ['sAMAccountName', 'userPrincipalName', 'mail'], ...overrides,
  };
}

function pick(r: Resolution) {
  return { kind: r.kind, ...(r.kind === 'reject' ? { status: r.status } : {}) };
}

// ---------------------------------------------------------------------------------------------
// 1. typedAddress
// ---------------------------------------------------------------------------------------------

test('typedAddress: "SMTP:" (exact upper case) is the primary address', () => {
  assert.deepEqual(typedAddress('SMTP:a@b'), { address: 'a@b', primary: true });
});

test('typedAddress: "smtp:" is a secondary address', () => {
  assert.deepEqual(typedAddress('smtp:a@b'), { address: 'a@b', primary: false });
});

test('typedAddress: mixed-case "Smtp:"/"sMTP:" is smtp-typed but secondary; only exact "SMTP:" is primary', () => {
  assert.deepEqual(typedAddress('Smtp:a@b'), { address: 'a@b', primary: false });
  assert.deepEqual(typedAddress('sMTP:a@b'), { address: 'a@b', primary: false });
  assert.deepEqual(typedAddress('SMTp:a@b'), { address: 'a@b', primary: false });
});

test('typedAddress: other address types (X400, X500, SIP, EUM) are not mail addresses → null', () => {
  assert.equal(typedAddress('X400:c=US;a= ;p=Org;o=Exchange;s=Smith;g=Alice;'), null);
  assert.equal(typedAddress('X500:/o=Org/ou=Exchange/cn=Recipients/cn=alice'), null);
  assert.equal(typedAddress('x500:/o=Org/cn=alice'), null);
  assert.equal(typedAddress('SIP:alice@example.test'), null);
  assert.equal(typedAddress('sip:alice@example.test'), null);
  assert.equal(typedAddress('EUM:1234;phone-context=x'), null);
  assert.equal(typedAddress('SMTPX:a@b'), null);
});

test('typedAddress: a value without a colon has no type → null', () => {
  assert.equal(typedAddress('a@b'), null);
  assert.equal(typedAddress(''), null);
});

test('typedAddress: an empty address ("smtp:", "SMTP:   ") → null', () => {
  assert.equal(typedAddress('smtp:'), null);
  assert.equal(typedAddress('SMTP:'), null);
  assert.equal(typedAddress('SMTP:   '), null);
});

test('typedAddress: the address is trimmed and split at the first colon only', () => {
  assert.deepEqual(typedAddress('SMTP:  a@b  '), { address: 'a@b', primary: true });
  assert.deepEqual(typedAddress('smtp:\ta@b\n'), { address: 'a@b', primary: false });
  assert.deepEqual(typedAddress('smtp:x:y@b'), { address: 'x:y@b', primary: false });
});

// ---------------------------------------------------------------------------------------------
// 2. entryAddresses
// ---------------------------------------------------------------------------------------------

test('entryAddresses (AD): exactly one "SMTP:" value is the primary, even when mail differs; no problem', () => {
  const a = entryAddresses(AD, attrs({ mail: 'alice@example.test', proxyAddresses: ['smtp:alice@example.test', 'SMTP:Alice.Smith@Example.test'] }));
  assert.equal(a.primary, 'alice.smith@example.test');
  assert.equal(a.problem, null);
  assert.deepEqual(a.all, ['alice.smith@example.test', 'alice@example.test']);
});

test('entryAddresses (AD): no upper-case "SMTP:" value → mail is the primary and a problem is reported', () => {
  const a = entryAddresses(AD, attrs({ mail: 'Alice@Example.test', proxyAddresses: ['smtp:a1@example.test', 'smtp:a2@example.test'] }));
  assert.equal(a.primary, 'alice@example.test');
  assert.notEqual(a.problem, null);
  assert.match(a.problem!, /no primary/);
  assert.deepEqual(a.all, ['alice@example.test', 'a1@example.test', 'a2@example.test']);
});

test('entryAddresses (AD): several upper-case "SMTP:" values → mail is the primary and a problem is reported', () => {
  const a = entryAddresses(AD, attrs({ mail: 'alice@example.test', proxyAddresses: ['SMTP:one@example.test', 'SMTP:two@example.test'] }));
  assert.equal(a.primary, 'alice@example.test');
  assert.notEqual(a.problem, null);
  assert.match(a.problem!, /more than one/);
  assert.deepEqual(a.all, ['alice@example.test', 'one@example.test', 'two@example.test']);
});

test('entryAddresses (AD): no mail and several upper-case values → the first upper-case value (server order)', () => {
  const a = entryAddresses(AD, attrs({ proxyAddresses: ['smtp:sec@example.test', 'SMTP:One@example.test', 'SMTP:two@example.test'] }));
  assert.equal(a.primary, 'one@example.test');
  assert.notEqual(a.problem, null);
  assert.deepEqual(a.all, ['one@example.test', 'sec@example.test', 'two@example.test']);
});

test('entryAddresses (AD): no mail and only secondary "smtp:" values → the first secondary value', () => {
  const a = entryAddresses(AD, attrs({ proxyAddresses: ['X500:/o=Org/cn=x', 'smtp:First@example.test', 'smtp:second@example.test'] }));
  assert.equal(a.primary, 'first@example.test');
  assert.notEqual(a.problem, null);
  assert.deepEqual(a.all, ['first@example.test', 'second@example.test']);
});

test('entryAddresses (AD): an empty mail value counts as no mail for the fallback', () => {
  const a = entryAddresses(AD, attrs({ mail: '  ', proxyAddresses: ['smtp:first@example.test', 'smtp:second@example.test'] }));
  assert.equal(a.primary, 'first@example.test');
  assert.deepEqual(a.all, ['first@example.test', 'second@example.test']);
});

test('entryAddresses (AD): X500 and X400 (and other non-smtp) values are ignored', () => {
  const a = entryAddresses(AD, attrs({
    mail: 'alice@example.test',
    proxyAddresses: ['X500:/o=Org/cn=alice', 'x500:/o=Org/cn=old', 'X400:c=US;a= ;p=Org;s=Smith;', 'SIP:alice@example.test', 'SMTP:alice@example.test'],
  }));
  assert.equal(a.primary, 'alice@example.test');
  assert.equal(a.problem, null);
  assert.deepEqual(a.all, ['alice@example.test']);
  // Only non-smtp proxies: nothing typed counts, so mail stands alone and no problem is raised.
  const b = entryAddresses(AD, attrs({ mail: 'alice@example.test', proxyAddresses: ['X500:/o=Org/cn=alice', 'X400:c=US;'] }));
  assert.deepEqual(b, { primary: 'alice@example.test', all: ['alice@example.test'], problem: null });
});

test('entryAddresses (AD): `all` is lower-cased, deduplicated and starts with the primary', () => {
  const a = entryAddresses(AD, attrs({
    mail: 'ALICE@example.test',
    proxyAddresses: ['smtp:alice@EXAMPLE.test', 'smtp:Extra@example.test', 'SMTP:Primary@Example.Test', 'smtp:extra@example.test'],
  }));
  assert.equal(a.primary, 'primary@example.test');
  assert.deepEqual(a.all, ['primary@example.test', 'alice@example.test', 'extra@example.test']);
  assert.equal(new Set(a.all).size, a.all.length);
  for (const address of a.all) assert.equal(address, address.toLowerCase());
});

test('entryAddresses (AD): mail without proxyAddresses is the primary, with no problem', () => {
  assert.deepEqual(entryAddresses(AD, attrs({ mail: 'Bob@Example.test' })), { primary: 'bob@example.test', all: ['bob@example.test'], problem: null });
});

test('entryAddresses (AD): an entry with no address at all has primary null and no addresses', () => {
  assert.deepEqual(entryAddresses(AD, attrs({ sAMAccountName: 'svc' })), { primary: null, all: [], problem: null });
});

test('entryAddresses (QMAIL): mail\'s first value is primary and mailAlternateAddress is included; no proxyAddresses logic', () => {
  const a = entryAddresses(QMAIL, attrs({
    mail: ['Pat@Example.org', 'p@example.org'], mailAlternateAddress: ['pat.alias@example.org', 'P@example.org'],
    proxyAddresses: 'SMTP:ignored@example.org',
  }));
  assert.deepEqual(a, { primary: 'pat@example.org', all: ['pat@example.org', 'p@example.org', 'pat.alias@example.org'], problem: null });
});

test('entryAddresses (QMAIL): the primary is mail\'s first value even when mailAlternateAddress comes first in the entry', () => {
  const map = new Map<string, string[]>([['mailalternateaddress', ['alt@example.org']], ['mail', ['main@example.org']]]);
  const a = entryAddresses(QMAIL, map);
  assert.equal(a.primary, 'main@example.org');
  assert.deepEqual(a.all, ['main@example.org', 'alt@example.org']);
  assert.equal(a.problem, null);
});

// ---------------------------------------------------------------------------------------------
// 3. attributeHolding
// ---------------------------------------------------------------------------------------------

test('attributeHolding: an address in mail is held by "mail"', () => {
  assert.equal(attributeHolding(AD, attrs(alice), 'alice@example.test'), 'mail');
});

test('attributeHolding: a secondary proxy address is held by "proxyAddresses (smtp:)"', () => {
  assert.equal(attributeHolding(AD, attrs(alice), 'as@example.test'), 'proxyAddresses (smtp:)');
});

test('attributeHolding: the primary proxy address is held by "proxyAddresses (SMTP:)"', () => {
  assert.equal(attributeHolding(AD, attrs(alice), 'alice.smith@example.test'), 'proxyAddresses (SMTP:)');
});

test('attributeHolding: matching ignores case on both sides', () => {
  assert.equal(attributeHolding(AD, attrs(alice), 'ALICE.SMITH@EXAMPLE.TEST'), 'proxyAddresses (SMTP:)');
  assert.equal(attributeHolding(AD, attrs({ mail: 'Bob@Example.TEST' }), 'bob@example.test'), 'mail');
  assert.equal(attributeHolding(QMAIL, attrs({ mail: 'a@example.org', mailAlternateAddress: 'Alt@Example.org' }), 'ALT@example.ORG'), 'mailAlternateAddress');
});

test('attributeHolding: null when no attribute holds the address (catch-all keys, non-smtp proxies)', () => {
  assert.equal(attributeHolding(AD, attrs(alice), 'nobody@example.test'), null);
  assert.equal(attributeHolding(AD, attrs(alice), '@example.test'), null);
  assert.equal(attributeHolding(AD, attrs({ proxyAddresses: 'SIP:alice@example.test' }), 'alice@example.test'), null);
});

// ---------------------------------------------------------------------------------------------
// 4. addressTerms
// ---------------------------------------------------------------------------------------------

test('addressTerms (AD): (mail=x) and (proxyAddresses=smtp:x)', () => {
  assert.deepEqual(addressTerms(AD, 'a@example.test'), ['(mail=a@example.test)', '(proxyAddresses=smtp:a@example.test)']);
  // The argument is already escaped: it is put in verbatim.
  assert.deepEqual(addressTerms(AD, 'a\\2a@example.test'), ['(mail=a\\2a@example.test)', '(proxyAddresses=smtp:a\\2a@example.test)']);
});

test('addressTerms (QMAIL): mail and mailAlternateAddress terms only, no proxyAddresses', () => {
  assert.deepEqual(addressTerms(QMAIL, 'a@example.org'), ['(mail=a@example.org)', '(mailAlternateAddress=a@example.org)']);
  assert.deepEqual(addressTerms(INETORGPERSON, 'a@example.org'), ['(mail=a@example.org)', '(mailLocalAddress=a@example.org)']);
});

// ---------------------------------------------------------------------------------------------
// 5. profileFor, templateAttributes, recipientAttributes
// ---------------------------------------------------------------------------------------------

test('profileFor (AD): all three loginBy names give the full default filters', () => {
  const p = profileFor(settings());
  assert.equal(p.loginFilter, '(sAMAccountName=%s)');
  assert.equal(p.loginFilterWithAt, '(|(userPrincipalName=%s)(mail=%s)(proxyAddresses=smtp:%s))');
  assert.equal(p.loginFilterWithAt, AD.loginFilterWithAt);
});

test('profileFor (AD): only sAMAccountName → loginFilter set, loginFilterWithAt empty (finds nobody)', () => {
  const p = profileFor(settings({ loginBy: ['sAMAccountName'] }));
  assert.equal(p.loginFilter, '(sAMAccountName=%s)');
  assert.equal(p.loginFilterWithAt, '');
});

test('profileFor (AD): only mail → loginFilter empty, loginFilterWithAt searches mail and smtp proxies', () => {
  const p = profileFor(settings({ loginBy: ['mail'] }));
  assert.equal(p.loginFilter, '');
  assert.equal(p.loginFilterWithAt, '(|(mail=%s)(proxyAddresses=smtp:%s))');
});

test('profileFor (AD): only userPrincipalName → a single unwrapped term', () => {
  const p = profileFor(settings({ loginBy: ['userPrincipalName'] }));
  assert.equal(p.loginFilter, '');
  assert.equal(p.loginFilterWithAt, '(userPrincipalName=%s)');
});

test('profileFor (AD): sAMAccountName and userPrincipalName → both filters, no address terms', () => {
  const p = profileFor(settings({ loginBy: ['sAMAccountName', 'userPrincipalName'] }));
  assert.equal(p.loginFilter, '(sAMAccountName=%s)');
  assert.equal(p.loginFilterWithAt, '(userPrincipalName=%s)');
});

test('profileFor (QMAIL): loginBy does not touch a profile without proxyAddresses', () => {
  const p = profileFor(settings({ profile: 'qmail', loginBy: ['mail'] }));
  assert.equal(p.loginFilter, QMAIL.loginFilter);
  assert.equal(p.loginFilterWithAt, QMAIL.loginFilterWithAt);
});

test('profileFor: attribute overrides — a name replaces, "" means none (null), undefined keeps the profile default', () => {
  const p = profileFor(settings({ attributes: { mailHost: 'msExchHomeServerName', forward: '', keepCopy: 'deliverAndRedirect', quotaSize: undefined } }));
  assert.equal(p.mailHost, 'msExchHomeServerName');
  assert.equal(p.forward, null);
  assert.equal(p.keepCopy, 'deliverAndRedirect');
  assert.equal(p.quotaSize, AD.quotaSize);
  assert.equal(p.quotaCount, AD.quotaCount);
  assert.equal(p.sizeMax, AD.sizeMax);
  const q = profileFor(settings({ profile: 'qmail', attributes: { quotaSize: '', sizeMax: undefined } }));
  assert.equal(q.quotaSize, null);
  assert.equal(q.sizeMax, 'mailSizeMax');
  assert.equal(q.forward, 'mailForwardingAddress');
});

test('profileFor: mailboxTemplate "" keeps the profile\'s derived store; a template replaces it', () => {
  assert.equal(profileFor(settings()).derivedStore, '{domain}/{sAMAccountName}/');
  assert.equal(profileFor(settings({ profile: 'inetorgperson' })).derivedStore, '{domain}/{local}/');
  assert.equal(profileFor(settings({ profile: 'qmail' })).derivedStore, null);
  assert.equal(profileFor(settings({ mailboxTemplate: '{domain}/{local}/' })).derivedStore, '{domain}/{local}/');
});

test('profileFor: quotaSizeUnit kilobytes → 1024 bytes per unit, bytes → 1', () => {
  assert.equal(profileFor(settings({ quotaSizeUnit: 'kilobytes' })).quotaSizeUnit, 1024);
  assert.equal(profileFor(settings({ quotaSizeUnit: 'bytes' })).quotaSizeUnit, 1);
});

test('profileFor: an unknown profile name throws', () => {
  assert.throws(() => profileFor(settings({ profile: 'exchange' })), /unknown directory profile/);
  assert.throws(() => profileFor(settings({ profile: 'AD' })), /unknown directory profile/);
});

test('profileFor: the result is a fresh object; the AD table row is not changed', () => {
  const before = { ...AD };
  profileFor(settings({ loginBy: ['mail'], mailboxTemplate: '{local}/', attributes: { forward: '' } }));
  assert.deepEqual({ ...AD }, before);
});

test('templateAttributes: names the entry attributes a template reads, not {domain} or {local}', () => {
  assert.deepEqual(templateAttributes('{domain}/{sAMAccountName}/'), ['sAMAccountName']);
  assert.deepEqual(templateAttributes('{domain}/{local}/'), []);
  assert.deepEqual(templateAttributes('{employeeID}/{domain}/{sAMAccountName}/'), ['employeeID', 'sAMAccountName']);
  assert.deepEqual(templateAttributes(null), []);
});

test('recipientAttributes (AD): asks for proxyAddresses, userAccountControl, sAMAccountName, targetAddress, not member', () => {
  const names = recipientAttributes(AD);
  for (const n of ['mail', 'proxyAddresses', 'userAccountControl', 'sAMAccountName', 'targetAddress', 'objectClass']) {
    assert.ok(names.includes(n), `${n} missing from ${names.join(',')}`);
  }
  assert.ok(!names.includes('member'), 'member must be read at expansion');
  assert.ok(!names.includes('uniqueMember'));
  assert.equal(new Set(names).size, names.length, 'no duplicates');
});

test('recipientAttributes: configured attributes and template attributes are requested too', () => {
  const names = recipientAttributes(profileFor(settings({
    mailboxTemplate: '{domain}/{employeeID}/', attributes: { keepCopy: 'deliverAndRedirect', quotaSize: 'mDBStorageQuota' },
  })));
  for (const n of ['employeeID', 'deliverAndRedirect', 'mDBStorageQuota']) assert.ok(names.includes(n), n);
});

test('recipientAttributes (QMAIL): includes member and uniqueMember and the qmailGroup attributes', () => {
  const names = recipientAttributes(QMAIL);
  for (const n of ['member', 'uniqueMember', 'mail', 'mailAlternateAddress', 'dnmember', 'accountStatus']) assert.ok(names.includes(n), n);
  assert.ok(!names.includes('proxyAddresses'));
});

// ---------------------------------------------------------------------------------------------
// 6. toResolution with AD
// ---------------------------------------------------------------------------------------------

test('toResolution (AD): a user is a mailbox under {domain}/{sAMAccountName}/ with the primary SMTP: address', () => {
  const r = resolve(alice);
  assert.equal(r.kind, 'mailbox');
  if (r.kind !== 'mailbox') return;
  assert.equal(r.mailbox, '/var/mail/example.test/alice/');
  assert.equal(r.address, 'alice.smith@example.test');
  assert.deepEqual(r.addresses, ['alice.smith@example.test', 'alice@example.test', 'as@example.test']);
  assert.equal(r.accountStatus, 'active');
  assert.deepEqual(r.forwards, []);
  assert.equal(r.local, true);
  assert.deepEqual(r.quota, { bytes: null, count: null });
  assert.equal(r.dn, 'CN=Alice Smith,OU=Staff,DC=example,DC=test');
});

test('toResolution (AD): matchedBy names the attribute that holds the hit key', () => {
  const by = (key: string) => {
    const r = resolve(alice, key);
    return r.kind === 'mailbox' ? r.matchedBy : r.kind;
  };
  assert.equal(by('alice@example.test'), 'mail');
  assert.equal(by('as@example.test'), 'proxyAddresses (smtp:)');
  assert.equal(by('alice.smith@example.test'), 'proxyAddresses (SMTP:)');
  assert.equal(by('@example.test'), null);
});

test('toResolution (AD): userAccountControl 512 (normal account) is active', () => {
  const r = resolve({ ...alice, userAccountControl: '512' });
  assert.equal(r.kind === 'mailbox' && r.accountStatus, 'active');
});

test('toResolution (AD): userAccountControl 514 (disabled) with disabledAs noaccess → mailbox, accountStatus noaccess', () => {
  const r = resolve({ ...alice, userAccountControl: '514' });
  assert.equal(r.kind, 'mailbox');
  assert.equal(r.kind === 'mailbox' && r.accountStatus, 'noaccess');
  assert.equal(r.kind === 'mailbox' && r.mailbox, '/var/mail/example.test/alice/');
  const other = resolve({ ...alice, userAccountControl: String(0x10202) });
  assert.equal(other.kind === 'mailbox' && other.accountStatus, 'noaccess');
});

test('toResolution (AD): userAccountControl 514 with disabledAs disabled → reject 5.2.1', () => {
  assert.deepEqual(pick(resolve({ ...alice, userAccountControl: '514' }, 'alice@example.test', { disabledAs: 'disabled' })), { kind: 'reject', status: '5.2.1' });
  // The enabled account is unaffected by the setting.
  assert.equal(resolve({ ...alice, userAccountControl: '512' }, 'alice@example.test', { disabledAs: 'disabled' }).kind, 'mailbox');
});

test('toResolution (AD): a non-numeric or multi-valued userAccountControl is an illegal value → reject 5.3.5', () => {
  for (const value of ['enabled', '-2', '0x202', ['512', '514']] as const) {
    assert.deepEqual(pick(resolve({ ...alice, userAccountControl: value })), { kind: 'reject', status: '5.3.5' }, JSON.stringify(value));
  }
});

test('toResolution (AD): a contact with targetAddress "SMTP:" → forward to the stripped address', () => {
  const r = resolve({ objectClass: CONTACT, mail: 'bob@example.test', targetAddress: 'SMTP:bob@partner.example' }, 'bob@example.test');
  assert.equal(r.kind, 'forward');
  if (r.kind !== 'forward') return;
  assert.deepEqual(r.forwards, ['bob@partner.example']);
  assert.equal(r.address, 'bob@example.test');
  assert.equal(r.matchedBy, 'mail');
});

test('toResolution (AD): a contact whose only targetAddress is not smtp-typed (X400) → reject 5.3.5 (no mailbox, no forwarding address)', () => {
  const r = resolve({ objectClass: CONTACT, mail: 'bob@example.test', targetAddress: 'X400:c=US;a= ;p=Partner;s=Bob;' }, 'bob@example.test');
  assert.deepEqual(pick(r), { kind: 'reject', status: '5.3.5' });
  assert.match(r.kind === 'reject' ? r.reason : '', /no mailbox and no forwarding address/);
});

test('toResolution (AD): a contact never gets a mailbox, even with sAMAccountName-less template inputs', () => {
  // No sAMAccountName: the template is never evaluated for a forward-only class.
  const r = resolve({ objectClass: CONTACT, mail: 'carol@example.test', targetAddress: 'smtp:carol@partner.example' }, 'carol@example.test');
  assert.equal(r.kind, 'forward');
  assert.deepEqual(r.kind === 'forward' && r.forwards, ['carol@partner.example']);
});

test('toResolution (AD): a user with targetAddress (Exchange mail user) → forward, the mailbox is replaced', () => {
  const r = resolve({ ...alice, targetAddress: 'SMTP:alice@external.example' });
  assert.equal(r.kind, 'forward');
  assert.deepEqual(r.kind === 'forward' && r.forwards, ['alice@external.example']);
});

test('toResolution (AD): with keepCopy configured and TRUE, a user with targetAddress keeps the mailbox and forwards', () => {
  const profile = profileFor(settings({ attributes: { keepCopy: 'deliverAndRedirect' } }));
  const r = resolve({ ...alice, targetAddress: 'SMTP:alice@external.example', deliverAndRedirect: 'TRUE' }, 'alice@example.test', { profile });
  assert.equal(r.kind, 'mailbox');
  if (r.kind !== 'mailbox') return;
  assert.equal(r.mailbox, '/var/mail/example.test/alice/');
  assert.deepEqual(r.forwards, ['alice@external.example']);
  // FALSE (or absent) still replaces the mailbox.
  assert.equal(resolve({ ...alice, targetAddress: 'SMTP:alice@external.example', deliverAndRedirect: 'FALSE' }, 'alice@example.test', { profile }).kind, 'forward');
  assert.equal(resolve({ ...alice, targetAddress: 'SMTP:alice@external.example' }, 'alice@example.test', { profile }).kind, 'forward');
});

test('toResolution (AD): a group with mail → kind group, members.dn empty (members are read at expansion)', () => {
  const r = resolve({
    objectClass: GROUP, sAMAccountName: 'staff', mail: 'staff@example.test', proxyAddresses: 'SMTP:staff@example.test',
    member: ['CN=Alice Smith,OU=Staff,DC=example,DC=test', 'CN=Bob,OU=Staff,DC=example,DC=test'],
  }, 'staff@example.test');
  assert.equal(r.kind, 'group');
  if (r.kind !== 'group') return;
  assert.deepEqual(r.members, { dn: [], rfc822: [], filter: [] });
  assert.equal(r.mailbox, null);
  assert.equal(r.address, 'staff@example.test');
  assert.equal(r.membersOnly, false);
});

// AD group names commonly contain spaces ("All Staff") and need no sAMAccountName-derived path: a
// group's mailbox is always null, so the mailbox template (and its path sanity check) must not turn
// a mail-enabled group into a 5.3.5 reject.
const GROUP_DN = 'CN=All Staff,OU=Groups,DC=example,DC=test';

test('toResolution (AD): a group whose sAMAccountName has a space still resolves to a group (no mailbox template applies)', () => {
  const r = toResolution(adEntry({ objectClass: GROUP, sAMAccountName: 'All Staff', mail: 'all@example.test' }, GROUP_DN), hitFor('all@example.test'), ctx);
  assert.equal(r.kind, 'group', JSON.stringify(r));
});

test('toResolution (AD): a group lacking the attribute a custom mailbox template names still resolves to a group', () => {
  const profile = profileFor(settings({ mailboxTemplate: '{domain}/{employeeID}/' }));
  const r = toResolution(adEntry({ objectClass: GROUP, sAMAccountName: 'staff', mail: 'staff@example.test' }, GROUP_DN), hitFor('staff@example.test'), { ...ctx, profile });
  assert.equal(r.kind, 'group', JSON.stringify(r));
});

test('toResolution (AD): mailboxTemplate "{domain}/{local}/" via profileFor uses the primary address\'s parts', () => {
  const profile = profileFor(settings({ mailboxTemplate: '{domain}/{local}/' }));
  const r = resolve(alice, 'alice@example.test', { profile });
  assert.equal(r.kind === 'mailbox' && r.mailbox, '/var/mail/example.test/alice.smith/');
});

test('toResolution (AD): a template naming an attribute the entry lacks → reject 5.3.5', () => {
  const profile = profileFor(settings({ mailboxTemplate: '{domain}/{employeeID}/' }));
  const r = resolve(alice, 'alice@example.test', { profile });
  assert.deepEqual(pick(r), { kind: 'reject', status: '5.3.5' });
  assert.match(r.kind === 'reject' ? r.reason : '', /employeeID/);
  // With the attribute present, its lower-cased value is used.
  const ok = resolve({ ...alice, employeeID: 'E1234' }, 'alice@example.test', { profile });
  assert.equal(ok.kind === 'mailbox' && ok.mailbox, '/var/mail/example.test/e1234/');
});

test('toResolution (AD): a user without sAMAccountName (the default template needs it) → reject 5.3.5', () => {
  const { sAMAccountName: _, ...rest } = alice;
  assert.deepEqual(pick(resolve(rest)), { kind: 'reject', status: '5.3.5' });
});

test('toResolution (AD): a sAMAccountName with a space, "..", or path parts → reject 5.3.5, never a path outside /var/mail', () => {
  for (const name of ['Alice Smith', '..', '../../etc', '../..', 'a/../../..', 'a;b', 'a\\b']) {
    const r = resolve({ ...alice, sAMAccountName: name });
    assert.deepEqual(pick(r), { kind: 'reject', status: '5.3.5' }, name);
  }
  // Whatever the name, a mailbox that is produced lies strictly inside the base.
  for (const name of ['a..b', 'a.b', 'A_B-c', 'x@y', '-rf', 'a/b']) {
    const r = resolve({ ...alice, sAMAccountName: name });
    if (r.kind === 'mailbox') assert.ok(r.mailbox.startsWith('/var/mail/example.test/') && !r.mailbox.includes('/../'), `${name}: ${r.mailbox}`);
  }
});

test('toResolution (AD): quotaSize mDBStorageQuota in kilobytes → quota.bytes scaled by 1024', () => {
  const profile = profileFor(settings({ attributes: { quotaSize: 'mDBStorageQuota' }, quotaSizeUnit: 'kilobytes' }));
  const r = resolve({ ...alice, mDBStorageQuota: '1000' }, 'alice@example.test', { profile });
  assert.equal(r.kind, 'mailbox');
  assert.deepEqual(r.kind === 'mailbox' && r.quota, { bytes: 1024000, count: null });
  // Without the attribute the default applies, unscaled.
  const d = resolve(alice, 'alice@example.test', { profile, defaultQuotaSize: 5000 });
  assert.deepEqual(d.kind === 'mailbox' && d.quota, { bytes: 5000, count: null });
});

test('toResolution (AD): an ambiguous primary (no SMTP: value) warns and uses mail', () => {
  const before = warnings.length;
  const r = resolve({ ...alice, proxyAddresses: ['smtp:alice@example.test', 'smtp:as@example.test'] });
  assert.equal(r.kind === 'mailbox' && r.address, 'alice@example.test');
  assert.equal(warnings.length, before + 1);
  assert.match(warnings.at(-1)!, /no primary SMTP/);
});

// ---------------------------------------------------------------------------------------------
// 7. loginAllowed
// ---------------------------------------------------------------------------------------------

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
/** A Windows FILETIME (100-ns intervals since 1601-01-01 UTC) for a Unix time in ms, as AD stores it. */
const fileTime = (ms: number) => ((BigInt(ms) + 11644473600000n) * 10000n).toString();
const login = (values: Attrs, profile: Profile = AD, now = NOW) => loginAllowed(adEntry(values), profile, now);

test('loginAllowed (AD): userAccountControl 512 (normal, enabled) → true', () => {
  assert.equal(login({ ...alice, userAccountControl: '512' }), true);
});

test('loginAllowed (AD): userAccountControl 514 (disabled) → false', () => {
  assert.equal(login({ ...alice, userAccountControl: '514' }), false);
});

test('loginAllowed (AD): 66050 (0x10202: disabled + don\'t-expire-password + normal) → false', () => {
  assert.equal(login({ ...alice, userAccountControl: '66050' }), false);
  assert.equal(login({ ...alice, userAccountControl: String(0x10200) }), true);
});

test('loginAllowed (AD): a garbage userAccountControl refuses the login', () => {
  assert.equal(login({ ...alice, userAccountControl: 'enabled' }), false);
});

test('loginAllowed (AD): accountExpires "0" and "9223372036854775807" mean never → true', () => {
  assert.equal(login({ ...alice, accountExpires: '0' }), true);
  assert.equal(login({ ...alice, accountExpires: '9223372036854775807' }), true);
  assert.equal(login({ ...alice }), true);
});

test('loginAllowed (AD): accountExpires in the past → false, in the future → true', () => {
  assert.equal(fileTime(0), '116444736000000000'); // the Unix epoch as a FILETIME
  assert.equal(login({ ...alice, accountExpires: fileTime(NOW - 86_400_000) }), false);
  assert.equal(login({ ...alice, accountExpires: fileTime(NOW - 1000) }), false);
  assert.equal(login({ ...alice, accountExpires: fileTime(NOW + 86_400_000) }), true);
  assert.equal(login({ ...alice, accountExpires: fileTime(NOW + 1000) }), true);
  assert.equal(login({ ...alice, accountExpires: '1' }), false); // 1601
});

test('loginAllowed (AD): an unreadable accountExpires (garbage, negative, multi-valued) → false', () => {
  for (const value of ['never', '-1', '1.5e17', ' 0', '12345678901234567890123', ['0', '0']] as const) {
    assert.equal(login({ ...alice, accountExpires: value }), false, JSON.stringify(value));
  }
});

test('loginAllowed (AD): an expired account is refused even when enabled; a disabled one even when not expired', () => {
  assert.equal(login({ ...alice, userAccountControl: '512', accountExpires: fileTime(NOW - 60_000) }), false);
  assert.equal(login({ ...alice, userAccountControl: '514', accountExpires: '0' }), false);
});

test('loginAllowed (QMAIL): accountStatus noaccess, nopop, disabled, deleted → false; active or missing → true', () => {
  const base = { mail: 'u@example.org', uid: 'u', objectClass: ['qmailUser'] };
  for (const status of ['noaccess', 'nopop', 'disabled', 'deleted', 'NoAccess', 'DISABLED']) {
    assert.equal(login({ ...base, accountStatus: status }, QMAIL), false, status);
  }
  assert.equal(login({ ...base, accountStatus: 'active' }, QMAIL), true);
  assert.equal(login({ ...base, accountStatus: 'Active' }, QMAIL), true);
  assert.equal(login(base, QMAIL), true);
  // QMAIL reads neither AD attribute.
  assert.equal(login({ ...base, userAccountControl: '514', accountExpires: '1' }, QMAIL), true);
});
