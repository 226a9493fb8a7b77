// SRS0/SRS1 rewriting of forwarded senders and its reversal: the address format, hash and age
// checks, secret rotation, the SRS1 chain, and the parser's room for long SRS local parts.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { type Address, parseAddress } from '../../src/mail.ts';
import { dayNumber, isSrs, type SrsKeys, srsForward, srsReverse } from '../../src/route/srs.ts';

const keys: SrsKeys = { secrets: ['s3cret'], domain: 'fwd.example.org', maxAgeDays: 21 };
/** Day 20000 is 20000 % 1024 = 544 = 17·32 + 0: timestamp "RA". */
const DAY = 20_000;
const alice: Address = { local: 'Alice.Smith', domain: 'orig.test' };

/** The hash as libsrs2 and postsrsd compute it: HMAC-SHA1 of the lower-cased parts, base64, 4 characters. */
const hmac = (secret: string, ...parts: string[]) => createHmac('sha1', secret).update(parts.join('').toLowerCase()).digest('base64').slice(0, 4);

const show = (a: Address) => `${a.local}@${a.domain}`;

function reversed(address: Address, k: SrsKeys, day: number): string {
  const result = srsReverse(address, k, day);
  return result.ok ? show(result.address) : `not ok: ${result.reason}`;
}

/** The same address with its SRS hash replaced by one that differs in more than case. */
function tamperHash(address: Address): Address {
  const m = /^(SRS[01]=)([^=]+)(=.*)$/.exec(address.local)!;
  const hash = m[2]!;
  const other = hash.toLowerCase().startsWith('0') ? '1' : '0';
  return { ...address, local: `${m[1]}${other}${hash.slice(1)}${m[3]}` };
}

test('dayNumber: whole days since the epoch', () => {
  assert.equal(dayNumber(0), 0);
  assert.equal(dayNumber(86_400_000 - 1), 0);
  assert.equal(dayNumber(86_400_000), 1);
  assert.equal(dayNumber(Date.parse('2024-10-04T12:00:00Z')), DAY);
});

test('srsForward: SRS0=HHHH=TT=domain=local@ourdomain, hash and timestamp as libsrs2 writes them', () => {
  const srs = srsForward(alice, keys, DAY);
  assert.equal(srs.domain, 'fwd.example.org');
  assert.equal(srs.local, `SRS0=${hmac('s3cret', 'RA', 'orig.test', 'Alice.Smith')}=RA=orig.test=Alice.Smith`);
  assert.match(srs.local, /^SRS0=[A-Za-z0-9+/]{4}=RA=orig\.test=Alice\.Smith$/);
});

test('srsForward: the timestamp is the day modulo 1024 in two base32 characters', () => {
  const stamps: [day: number, ts: string][] = [[0, 'AA'], [1, 'AB'], [31, 'A7'], [32, 'BA'], [1023, '77'], [1024, 'AA'], [DAY, 'RA']];
  for (const [day, ts] of stamps) assert.equal(srsForward(alice, keys, day).local.split('=')[2], ts, `day ${day}`);
});

const roundTrips: [name: string, sender: Address][] = [
  ['local part case kept', alice],
  ['a local part with "=" and "+"', { local: 'a=b+tag', domain: 'orig.test' }],
  ['a hyphenated domain', { local: 'bob', domain: 'mail-relay.orig.test' }],
];

for (const [name, sender] of roundTrips) {
  test(`srsReverse gives back the original: ${name}`, () => {
    assert.equal(reversed(srsForward(sender, keys, DAY), keys, DAY), show(sender));
  });
}

test('srsReverse: a tampered hash, local part, domain or timestamp does not match', () => {
  const srs = srsForward(alice, keys, DAY);
  const [tag, hash, ts, domain, local] = srs.local.split('=') as [string, string, string, string, string];
  const variants: [string, Address][] = [
    ['hash', tamperHash(srs)],
    ['local part', { ...srs, local: [tag, hash, ts, domain, 'mallory'].join('=') }],
    ['domain', { ...srs, local: [tag, hash, ts, 'evil.test', local].join('=') }],
    ['timestamp', { ...srs, local: [tag, hash, 'RB', domain, local].join('=') }],
  ];
  for (const [what, address] of variants) {
    assert.equal(reversed(address, keys, DAY), 'not ok: SRS hash does not match', what);
  }
});

test('srsReverse: an SRS address at another domain is not ours', () => {
  const srs = srsForward(alice, keys, DAY);
  assert.equal(reversed({ ...srs, domain: 'other.test' }, keys, DAY), 'not ok: not our SRS domain');
});

test('srsReverse: a plain address at our SRS domain is not an SRS address', () => {
  assert.equal(reversed({ local: 'postmaster', domain: 'fwd.example.org' }, keys, DAY), 'not ok: not an SRS address');
});

test('srsReverse: valid for maxAgeDays days, expired the day after', () => {
  const srs = srsForward(alice, keys, DAY);
  assert.equal(reversed(srs, keys, DAY + 21), show(alice));
  assert.equal(reversed(srs, keys, DAY + 22), 'not ok: SRS address expired');
  assert.equal(reversed(srs, { ...keys, maxAgeDays: 1 }, DAY + 1), show(alice));
  assert.equal(reversed(srs, { ...keys, maxAgeDays: 1 }, DAY + 2), 'not ok: SRS address expired');
});

test('srsReverse: the age is counted across the 1024-day wrap of the timestamp', () => {
  const day = 20 * 1024 - 3; // timestamp 1021 ("75"); day + 21 has timestamp 18
  const srs = srsForward(alice, keys, day);
  assert.equal(srs.local.split('=')[2], '75');
  assert.equal(reversed(srs, keys, day + 3), show(alice));
  assert.equal(reversed(srs, keys, day + 21), show(alice));
  assert.equal(reversed(srs, keys, day + 22), 'not ok: SRS address expired');
});

test('srsReverse: a timestamp from the future is refused', () => {
  assert.equal(reversed(srsForward(alice, keys, DAY + 2), keys, DAY), 'not ok: SRS address expired');
});

test('secret rotation: the first secret signs, every listed secret verifies, an unknown one does not', () => {
  const rotated: SrsKeys = { ...keys, secrets: ['n3w', 's3cret'] };
  const signedByOld = srsForward(alice, keys, DAY);
  assert.equal(reversed(signedByOld, rotated, DAY), show(alice));
  const signedByNew = srsForward(alice, rotated, DAY);
  assert.equal(signedByNew.local, `SRS0=${hmac('n3w', 'RA', 'orig.test', 'Alice.Smith')}=RA=orig.test=Alice.Smith`);
  assert.equal(reversed(signedByNew, { ...keys, secrets: ['n3w'] }, DAY), show(alice));
  assert.equal(reversed(signedByNew, keys, DAY), 'not ok: SRS hash does not match');
  const signedByStranger = srsForward(alice, { ...keys, secrets: ['unknown'] }, DAY);
  assert.equal(reversed(signedByStranger, rotated, DAY), 'not ok: SRS hash does not match');
});

test('srsReverse: hash and tag compared case-insensitively (a local part lower-cased on the way still reverses)', () => {
  const srs = srsForward(alice, keys, DAY);
  assert.ok(srs.local !== srs.local.toLowerCase(), 'the test needs upper-case letters to lower');
  assert.equal(reversed({ ...srs, local: srs.local.toLowerCase() }, keys, DAY), 'alice.smith@orig.test');
  assert.equal(reversed({ ...srs, local: srs.local.toUpperCase() }, keys, DAY), 'ALICE.SMITH@orig.test');
});

// The SRS chain: hop1.test forwarded alice's mail to us with an SRS0 of its own.
const hop1: SrsKeys = { secrets: ['hop1-secret'], domain: 'hop1.test', maxAgeDays: 21 };
const fromHop1 = srsForward(alice, hop1, DAY);

test('srsForward: somebody else\'s SRS0 becomes an SRS1 naming that somebody; it reverses to that SRS0', () => {
  const srs1 = srsForward(fromHop1, keys, DAY);
  const opaque = `=${fromHop1.local.slice(5)}`;
  assert.equal(srs1.domain, 'fwd.example.org');
  assert.equal(srs1.local, `SRS1=${hmac('s3cret', 'hop1.test', opaque)}=hop1.test=${opaque}`);
  assert.match(srs1.local, /^SRS1=[^=]{4}=hop1\.test==[^=]{4}=RA=orig\.test=Alice\.Smith$/);
  const back = srsReverse(srs1, keys, DAY);
  assert.ok(back.ok);
  assert.deepEqual(back.address, fromHop1);
  // And hop1 turns its own SRS0 back into alice.
  assert.equal(reversed(back.address, hop1, DAY), show(alice));
});

test('srsReverse: an SRS1 with a tampered hash does not match', () => {
  assert.equal(reversed(tamperHash(srsForward(fromHop1, keys, DAY)), keys, DAY), 'not ok: SRS hash does not match');
});

test('srsForward: an SRS1 forwarded again keeps the first hop, and reverses straight to it', () => {
  const hop2: SrsKeys = { secrets: ['hop2-secret'], domain: 'hop2.test', maxAgeDays: 21 };
  const fromHop2 = srsForward(fromHop1, hop2, DAY);
  assert.match(fromHop2.local, /^SRS1=[^=]{4}=hop1\.test==/);
  const ours = srsForward(fromHop2, keys, DAY);
  assert.equal(ours.domain, 'fwd.example.org');
  assert.equal(ours.local, `SRS1=${hmac('s3cret', 'hop1.test', `=${fromHop1.local.slice(5)}`)}=hop1.test==${fromHop1.local.slice(5)}`);
  assert.equal(reversed(ours, keys, DAY), show(fromHop1));
});

test('srsForward: an SRS1 from a forwarder whose SRS0 used "+" (libsrs2 keeps that separator) still reverses', () => {
  // libsrs2 builds SRS1 as SRS1=HHHH=firsthop=<SRS0 local part without "SRS0">, so an SRS0+… gives "=+…".
  const other: Address = { local: 'SRS1=abcd=hop1.test=+efgh=RA=orig.test=alice', domain: 'hop2.test' };
  const ours = srsForward(other, keys, DAY);
  assert.match(ours.local, /^SRS1=[^=]{4}=hop1\.test=\+efgh=RA=orig\.test=alice$/);
  assert.equal(reversed(ours, keys, DAY), 'SRS0+efgh=RA=orig.test=alice@hop1.test');
});

test('isSrs: SRS0 or SRS1 and a separator, any case', () => {
  const rows: [string, boolean][] = [
    ['SRS0=HHHH=TT=d=l', true], ['SRS1=HHHH=h==x', true], ['srs0=hhhh=tt=d=l', true], ['SRS0+x', true], ['SRS1-x', true],
    ['SRS2=x', false], ['SRS0', false], ['SRS0x', false], ['SRSalice', false], ['alice', false], ['xSRS0=x', false], ['', false],
  ];
  for (const [local, expected] of rows) assert.equal(isSrs(local), expected, local);
});

test('parseAddress: an SRS local part may pass 64 octets, a plain one may not', () => {
  const long = srsForward({ local: 'a.rather.long.local.part.of.somebody', domain: 'a-long-domain.example.com' }, keys, DAY);
  const text = `${long.local}@${long.domain}`;
  assert.ok(Buffer.byteLength(long.local) > 64, `${long.local.length} octets`);
  assert.deepEqual(parseAddress(text), long);
  assert.deepEqual(parseAddress(text.toLowerCase()), { local: long.local.toLowerCase(), domain: long.domain });
  const srs1 = `SRS1=abcd=hop1.test==${'x'.repeat(60)}@fwd.example.org`;
  assert.equal(parseAddress(srs1).local.length, 81);
  assert.equal(parseAddress(`${'a'.repeat(64)}@example.org`).local.length, 64);
  const refused: string[] = [`${'a'.repeat(65)}@example.org`, `SRS2=${'a'.repeat(60)}@example.org`, `xSRS0=${'a'.repeat(60)}@example.org`];
  for (const address of refused) {
    assert.throws(() => parseAddress(address), (err: Error & { status?: string }) => err.status === '5.1.3' && /local part too long/.test(err.message), address);
  }
});
