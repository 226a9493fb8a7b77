// The pure parts of the connection checks: reversed names for DNS lists and PTR lookups, how a
// list's answers are read and scored, HELO sanity, the greylisting triplet, its decision over
// time (a fake clock) and its exemptions, and the in-process store's bounds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalIp, dnsListQueryName, ipv6Hex, listingReason, ptrName, readListAnswer, reversedLabels, sameIp, scoreDnsLists,
  type DnsListZone, type ZoneAnswer, zoneWeight,
} from '../../src/policy/dnsbl.ts';
import { heloChecks } from '../../src/policy/fcrdns.ts';
import {
  clientNetwork, decide, formatEntry, greylistError, greylistExemption, greylistKey, greylistSender, greylistTriplet,
  greylistWhitelist, memoryGreylistStore, parseEntry, passCachedStore, whitelistedDomain, type GreylistCheck, type GreylistStore,
} from '../../src/policy/greylist.ts';

describe('reversed names', () => {
  test('IPv4: octets reversed, leading zeros of the text form kept out', () => {
    assert.equal(reversedLabels('192.0.2.1'), '1.2.0.192');
    assert.equal(dnsListQueryName('127.0.0.2', 'zen.example.'), '2.0.0.127.zen.example');
    assert.equal(dnsListQueryName('10.20.30.40', 'BL.Example'), '40.30.20.10.bl.example');
    assert.equal(ptrName('198.51.100.7'), '7.100.51.198.in-addr.arpa');
  });

  test('IPv4-mapped IPv6 is asked as IPv4', () => {
    assert.equal(canonicalIp('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(canonicalIp('::FFFF:192.0.2.1'), '192.0.2.1');
    assert.equal(dnsListQueryName('::ffff:127.0.0.2', 'bl.test'), '2.0.0.127.bl.test');
    assert.equal(ptrName('::ffff:192.0.2.1'), '1.2.0.192.in-addr.arpa');
  });

  test('IPv6: 32 nibbles reversed (RFC 5782 §2.4 example)', () => {
    // The RFC's own example: 2001:db8:1:2:3:4:567:89ab.
    assert.equal(dnsListQueryName('2001:db8:1:2:3:4:567:89ab', 'ugly.example.com'),
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com');
    assert.equal(reversedLabels('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
    assert.equal(ptrName('::1'), `1.${'0.'.repeat(31)}ip6.arpa`);
    assert.equal(ipv6Hex('::'), '0'.repeat(32));
    assert.equal(ipv6Hex('2001:DB8::a:B'), '20010db80000000000000000000a000b');
    assert.equal(ipv6Hex('fe80::1%eth0'), 'fe800000000000000000000000000001');
    // An embedded IPv4 tail that is not the mapped prefix stays IPv6.
    assert.equal(ipv6Hex('64:ff9b::192.0.2.1'), '0064ff9b0000000000000000c0000201');
    assert.equal(reversedLabels('64:ff9b::192.0.2.1')?.split('.').length, 32);
  });

  test('not an address: null, never a name to ask', () => {
    for (const bad of ['', 'example.com', '1.2.3', '1.2.3.4.5', '300.1.1.1', '2001:db8::1::2', 'unix:/tmp/s']) {
      assert.equal(reversedLabels(bad), null, bad);
      assert.equal(dnsListQueryName(bad, 'bl.test'), null, bad);
      assert.equal(ptrName(bad), null, bad);
    }
  });

  test('sameIp compares spellings', () => {
    assert.ok(sameIp('::ffff:192.0.2.1', '192.0.2.1'));
    assert.ok(sameIp('2001:DB8:0:0::1', '2001:db8::1'));
    assert.ok(!sameIp('2001:db8::1', '2001:db8::2'));
    assert.ok(!sameIp('192.0.2.1', '192.0.2.10'));
    assert.ok(!sameIp('bogus', 'bogus'));
  });
});

describe('DNS list answers and the score', () => {
  const zen: DnsListZone = { zone: 'zen.test', weight: 10 };
  const wl: DnsListZone = { zone: 'wl.test', weight: -5 };

  test('127.0.0.0/8 answers are listings; others are ignored; refusal codes are neither', () => {
    assert.deepEqual(readListAnswer(zen, ['127.0.0.4', '127.0.0.2', '127.0.0.2']), { codes: ['127.0.0.2', '127.0.0.4'], refused: [], ignored: [] });
    assert.deepEqual(readListAnswer(zen, ['192.0.2.1', '127.0.0.10']), { codes: ['127.0.0.10'], refused: [], ignored: ['192.0.2.1'] });
    for (const refusal of ['127.0.0.1', '127.0.0.255', '127.255.255.252', '127.255.255.253', '127.255.255.254', '127.255.255.255']) {
      assert.deepEqual(readListAnswer(zen, [refusal]), { codes: [], refused: [refusal], ignored: [] }, refusal);
    }
    // Numeric, not textual, order.
    assert.deepEqual(readListAnswer(zen, ['127.0.0.10', '127.0.0.9']).codes, ['127.0.0.9', '127.0.0.10']);
  });

  test('a zone limited to some codes ignores the others', () => {
    const sbl: DnsListZone = { zone: 'zen.test', weight: 10, codes: ['127.0.0.2', '127.0.0.3'] };
    assert.deepEqual(readListAnswer(sbl, ['127.0.0.11', '127.0.0.3']), { codes: ['127.0.0.3'], refused: [], ignored: ['127.0.0.11'] });
  });

  test('an allow list counts negatively whatever the sign of its weight', () => {
    assert.equal(zoneWeight(zen), 10);
    assert.equal(zoneWeight(wl), -5);
    assert.equal(zoneWeight({ zone: 'x', weight: 5, type: 'allow' }), -5);
    assert.equal(zoneWeight({ zone: 'x', weight: -3, type: 'block' }), -3);
  });

  test('scoring: listings add up, NXDOMAIN is nothing, errors and refusals are unknown', () => {
    const answers: ZoneAnswer[] = [
      { zone: zen, kind: 'addresses', addresses: ['127.0.0.2'], reason: 'see https://zen.test/' },
      { zone: { zone: 'B2.TEST.', weight: 2.5 }, kind: 'addresses', addresses: ['127.0.0.3'] },
      { zone: wl, kind: 'addresses', addresses: ['127.0.10.2'] },
      { zone: { zone: 'clean.test', weight: 10 }, kind: 'none' },
      { zone: { zone: 'broken.test', weight: 10 }, kind: 'error', error: 'ESERVFAIL' },
      { zone: { zone: 'slow.test', weight: 10 }, kind: 'error', error: 'ETIMEOUT' },
      { zone: { zone: 'public.test', weight: 10 }, kind: 'addresses', addresses: ['127.255.255.254'] },
      { zone: { zone: 'wild.test', weight: 10 }, kind: 'addresses', addresses: ['192.0.2.80'] },
    ];
    const result = scoreDnsLists(answers);
    assert.deepEqual(result.listings, [
      { zone: 'zen.test', type: 'block', codes: ['127.0.0.2'], weight: 10, reason: 'see https://zen.test/' },
      { zone: 'b2.test', type: 'block', codes: ['127.0.0.3'], weight: 2.5 },
      { zone: 'wl.test', type: 'allow', codes: ['127.0.10.2'], weight: -5 },
    ]);
    assert.equal(result.score, 7.5);
    assert.deepEqual(result.unknown, ['broken.test', 'slow.test', 'public.test']);
    assert.deepEqual(result.notes, [
      { zone: 'broken.test', note: 'ESERVFAIL' },
      { zone: 'slow.test', note: 'ETIMEOUT' },
      { zone: 'public.test', note: 'list refused the query (127.255.255.254)' },
      { zone: 'wild.test', note: 'ignored answer 192.0.2.80' },
    ]);
  });

  test('scoring: nothing listed is a score of 0; fractional weights do not leave float noise', () => {
    assert.deepEqual(scoreDnsLists([]), { listings: [], unknown: [], score: 0, notes: [] });
    const tenth: DnsListZone = { zone: 'a.test', weight: 0.1 };
    const fifth: DnsListZone = { zone: 'b.test', weight: 0.2 };
    assert.equal(scoreDnsLists([
      { zone: tenth, kind: 'addresses', addresses: ['127.0.0.2'] }, { zone: fifth, kind: 'addresses', addresses: ['127.0.0.2'] },
    ]).score, 0.3);
  });

  test('a listing reason is one clean line: no CR/LF or control characters, bounded', () => {
    assert.equal(listingReason([['Listed by ', 'zen: see', '\r\n250 fake'], ['second']]), 'Listed by zen: see 250 fake / second');
    assert.equal(listingReason([['a\u0000b\u00e9c']]), 'a b c');
    const long = listingReason([['x'.repeat(500)]], 50);
    assert.equal(long.length, 50);
    assert.ok(long.endsWith('...'));
  });
});

describe('HELO checks', () => {
  const client = '192.0.2.10';
  test('a proper host name has no problems', () => {
    assert.deepEqual(heloChecks('mail.example.org', client, []), []);
    assert.deepEqual(heloChecks('MAIL.Example.ORG.', client, []), []);
    assert.deepEqual(heloChecks('a-b.x1.example', client, []), []);
  });

  test('address literals: the client\'s own is fine, another or a bad one is named', () => {
    assert.deepEqual(heloChecks('[192.0.2.10]', client, []), []);
    assert.deepEqual(heloChecks('[192.0.2.10]', '::ffff:192.0.2.10', []), []);
    assert.deepEqual(heloChecks('[IPv6:2001:db8::1]', '2001:DB8:0::1', []), []);
    assert.deepEqual(heloChecks('[192.0.2.99]', client, []), ['helo-ip-not-client']);
    assert.deepEqual(heloChecks('[IPv6:2001:db8::2]', '2001:db8::1', []), ['helo-ip-not-client']);
    assert.deepEqual(heloChecks('[mail.example.org]', client, []), ['helo-bad-literal']);
  });

  test('a bare address is named, and also when it is not the client\'s', () => {
    assert.deepEqual(heloChecks('192.0.2.10', client, []), ['helo-bare-ip']);
    assert.deepEqual(heloChecks('203.0.113.5', client, []), ['helo-bare-ip', 'helo-ip-not-client']);
    assert.deepEqual(heloChecks('2001:db8::1', client, []), ['helo-bare-ip', 'helo-ip-not-client']);
  });

  test('not a FQDN, bad syntax, empty', () => {
    assert.deepEqual(heloChecks('mailserver', client, []), ['helo-not-fqdn']);
    assert.deepEqual(heloChecks('host.123', client, []), ['helo-not-fqdn']);
    assert.deepEqual(heloChecks('my_host.example.org', client, []), ['helo-bad-syntax']);
    assert.deepEqual(heloChecks('-bad-.example.org', client, []), ['helo-bad-syntax']);
    assert.deepEqual(heloChecks('a..example.org', client, []), ['helo-bad-syntax']);
    assert.deepEqual(heloChecks('PC_1', client, []), ['helo-bad-syntax', 'helo-not-fqdn']);
    assert.deepEqual(heloChecks('  ', client, []), ['helo-empty']);
  });

  test('localhost from outside is named; from loopback it is fine', () => {
    assert.deepEqual(heloChecks('localhost', client, []), ['helo-localhost']);
    assert.deepEqual(heloChecks('LOCALHOST.localdomain', client, []), ['helo-localhost']);
    assert.deepEqual(heloChecks('x.localhost', client, []), ['helo-localhost']);
    assert.deepEqual(heloChecks('localhost', '127.0.0.1', []), []);
    assert.deepEqual(heloChecks('localhost', '::1', []), []);
  });

  test('our own name: named unless the client is us (loopback, or confirmed as one of our names)', () => {
    const own = ['mx.ours.example', 'MX2.ours.example.'];
    assert.deepEqual(heloChecks('mx.ours.example', client, [], own), ['helo-our-name']);
    assert.deepEqual(heloChecks('mx2.ours.example', client, ['other.example'], own), ['helo-our-name']);
    assert.deepEqual(heloChecks('mx.ours.example', client, ['mx2.ours.example'], own), []);
    assert.deepEqual(heloChecks('mx.ours.example', '127.0.0.1', [], own), []);
    assert.deepEqual(heloChecks('mx.ours.example', client, []), [], 'without ownNames nothing is ours');
    assert.deepEqual(heloChecks('mail.example.org', client, [], own), []);
  });
});

describe('greylisting: triplet and key', () => {
  test('client network: /24 for IPv4, /64 for IPv6, mapped addresses as IPv4', () => {
    assert.equal(clientNetwork('192.0.2.77'), '192.0.2.0/24');
    assert.equal(clientNetwork('::ffff:192.0.2.77'), '192.0.2.0/24');
    assert.equal(clientNetwork('2001:db8:1:2:aaaa::1'), '2001:0db8:0001:0002::/64');
    assert.equal(clientNetwork('2001:DB8:1:2::ffff'), '2001:0db8:0001:0002::/64');
    assert.notEqual(clientNetwork('2001:db8:1:3::1'), clientNetwork('2001:db8:1:2::1'));
  });

  test('sender: lower case, "<>" for the null sender, BATV tag removed', () => {
    assert.equal(greylistSender('Alice@Example.ORG'), 'alice@example.org');
    assert.equal(greylistSender(null), '<>');
    assert.equal(greylistSender(''), '<>');
    assert.equal(greylistSender('prvs=0123abcd=Bob@example.org'), 'bob@example.org');
  });

  test('the key: same for the same triplet in any spelling, different otherwise, short', () => {
    const key = (ip: string, from: string | null, to: string) => greylistKey(greylistTriplet(ip, from, to));
    const k = key('192.0.2.1', 'a@x.example', 'b@y.example');
    assert.match(k, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(key('192.0.2.200', 'A@X.example', 'B@Y.EXAMPLE'), k, 'same /24, case-insensitive');
    assert.equal(key('192.0.2.1', 'prvs=1111aaaa=a@x.example', 'b@y.example'), k, 'BATV tag ignored');
    assert.notEqual(key('192.0.3.1', 'a@x.example', 'b@y.example'), k);
    assert.notEqual(key('192.0.2.1', 'c@x.example', 'b@y.example'), k);
    assert.notEqual(key('192.0.2.1', 'a@x.example', 'c@y.example'), k);
    assert.notEqual(key('192.0.2.1', null, 'b@y.example'), k);
    // The separator keeps field boundaries: moving text between fields changes the key.
    assert.notEqual(key('192.0.2.1', 'a@x.example\nb', '@y.example'), key('192.0.2.1', 'a@x.example', 'b\n@y.example'));
  });
});

describe('greylisting: decide over time', () => {
  const timing = { delaySeconds: 300, lifetimeSeconds: 86_400 };
  const t0 = 1_700_000_000_000;

  test('first sight refused; early retry refused with the time left; after the delay passes', () => {
    const first = decide(null, t0, timing);
    assert.deepEqual(first, { pass: false, retryAfterSeconds: 300, entry: { firstSeen: t0, expiresAt: t0 + 86_400_000, passed: false } });

    const early = decide(first.entry, t0 + 100_500, timing);
    assert.equal(early.pass, false);
    assert.equal(early.retryAfterSeconds, 200, 'rounded up: 199.5 s left');
    assert.equal(early.entry, first.entry, 'an early retry does not restart the clock');

    const almost = decide(first.entry, t0 + 299_999, timing);
    assert.equal(almost.pass, false);
    assert.equal(almost.retryAfterSeconds, 1);

    const later = decide(first.entry, t0 + 300_000, timing);
    assert.deepEqual(later, { pass: true, entry: { firstSeen: t0, expiresAt: t0 + 300_000 + 86_400_000, passed: true } });
  });

  test('a passed triplet keeps passing and every pass extends it; past its lifetime it is new again', () => {
    const passed = decide(decide(null, t0, timing).entry, t0 + 400_000, timing).entry;
    const next = decide(passed, t0 + 80_000_000, timing);
    assert.equal(next.pass, true);
    assert.equal(next.entry.expiresAt, t0 + 80_000_000 + 86_400_000);
    const stale = decide(next.entry, next.entry.expiresAt, timing);
    assert.deepEqual(stale, { pass: false, retryAfterSeconds: 300, entry: { firstSeen: next.entry.expiresAt, expiresAt: next.entry.expiresAt + 86_400_000, passed: false } });
  });

  test('a triplet that passed keeps passing even on a node whose clock is behind the first sight', () => {
    const passed = { firstSeen: t0, expiresAt: t0 + 86_400_000, passed: true };
    const behind = decide(passed, t0 - 5_000, timing);
    assert.equal(behind.pass, true);
    const unconfirmed = { ...passed, passed: false };
    assert.equal(decide(unconfirmed, t0 - 5_000, timing).pass, false);
  });

  test('an unconfirmed entry past its lifetime is first sight again', () => {
    const first = decide(null, t0, { delaySeconds: 60, lifetimeSeconds: 120 });
    const again = decide(first.entry, t0 + 120_000, { delaySeconds: 60, lifetimeSeconds: 120 });
    assert.equal(again.pass, false);
    assert.equal(again.entry.firstSeen, t0 + 120_000);
  });

  test('the stored form round-trips; damage reads as no entry', () => {
    const entry = { firstSeen: t0, expiresAt: t0 + 5, passed: true };
    assert.equal(formatEntry(entry), `${t0},${t0 + 5},1`);
    assert.deepEqual(parseEntry(formatEntry(entry)), entry);
    for (const bad of [null, undefined, '', 'x', '1,2', '1,2,3', '-1,2,0', '1,2,0 ']) assert.equal(parseEntry(bad), null, String(bad));
  });

  test('the refusal is 451 4.7.1, temporary, with the time to wait', () => {
    const err = greylistError(59.2);
    assert.equal(err.reply, 451);
    assert.equal(err.status, '4.7.1');
    assert.ok(err.temporary);
    assert.match(err.message, /60 seconds/);
  });
});

describe('greylisting: exemptions', () => {
  const list = greylistWhitelist(['192.0.2.0/24', '2001:db8:ff::/48', 'not-a-cidr'], ['Partner.example', 'bank.example.']);

  test('networks, IPv4, mapped and IPv6', () => {
    assert.equal(greylistExemption({ ip: '192.0.2.9', sender: 'x@other.example', spfPass: false }, list), 'network');
    assert.equal(greylistExemption({ ip: '::ffff:192.0.2.9', sender: 'x@other.example', spfPass: false }, list), 'network');
    assert.equal(greylistExemption({ ip: '2001:db8:ff:1::5', sender: 'x@other.example', spfPass: false }, list), 'network');
    assert.equal(greylistExemption({ ip: '192.0.3.9', sender: 'x@other.example', spfPass: false }, list), null);
    assert.equal(greylistExemption({ ip: 'garbage', sender: 'x@other.example', spfPass: false }, list), null);
  });

  test('sender domains cover their subdomains, not look-alikes; never the null sender', () => {
    assert.ok(whitelistedDomain('a@partner.example', list));
    assert.ok(whitelistedDomain('a@MAIL.Partner.Example', list));
    assert.ok(whitelistedDomain('a@bank.example', list));
    assert.ok(!whitelistedDomain('a@notpartner.example', list));
    assert.ok(!whitelistedDomain('a@partner.example.evil', list));
    assert.ok(!whitelistedDomain(null, list));
    assert.ok(!whitelistedDomain('no-at-sign', list));
    assert.equal(greylistExemption({ ip: '203.0.113.1', sender: 'a@partner.example', spfPass: false }, list), 'domain');
  });

  test('an SPF pass the caller vouches for exempts; otherwise greylisted', () => {
    assert.equal(greylistExemption({ ip: '203.0.113.1', sender: 'a@x.example', spfPass: true }, list), 'spf-pass');
    assert.equal(greylistExemption({ ip: '203.0.113.1', sender: 'a@x.example', spfPass: false }, list), null);
  });
});

const checked = (r: GreylistCheck): Extract<GreylistCheck, { status: 'checked' }> => {
  assert.equal(r.status, 'checked', JSON.stringify(r));
  return r as Extract<GreylistCheck, { status: 'checked' }>;
};

describe('greylisting: the in-process store (fake clock)', () => {
  const timing = { delaySeconds: 60, lifetimeSeconds: 600 };

  test('first sight, early retry, pass after the delay, expiry', async () => {
    const store = memoryGreylistStore();
    const t = 1_000_000;
    const first = await store.check('k', t, timing);
    assert.ok(first.status === 'checked' && !first.pass && first.retryAfterSeconds === 60);
    const early = await store.check('k', t + 30_000, timing);
    assert.ok(early.status === 'checked' && !early.pass && early.retryAfterSeconds === 30);
    const ok = await store.check('k', t + 60_000, timing);
    assert.ok(ok.status === 'checked' && ok.pass);
    const still = await store.check('k', t + 60_000 + 599_999, timing);
    assert.ok(still.status === 'checked' && still.pass, 'the pass extended the entry');
    const expired = await store.check('k', t + 60_000 + 599_999 + 600_000, timing);
    assert.ok(expired.status === 'checked' && !expired.pass, 'past its lifetime: new again');
    assert.equal((await store.check('other', t, timing)).status, 'checked');
  });

  test('expired entries are swept; the size stays bounded, oldest writes dropped first', async () => {
    const store = memoryGreylistStore({ maxEntries: 3, sweepIntervalMs: 1000 });
    const t = 5_000_000;
    for (const key of ['a', 'b', 'c']) await store.check(key, t, timing);
    assert.equal(store.size(), 3);
    await store.check('d', t + 1, timing);
    assert.equal(store.size(), 3, 'bounded');
    const a = await store.check('a', t + 2, timing);
    assert.ok(a.status === 'checked' && !a.pass && a.retryAfterSeconds === 60, '"a" was the oldest and was dropped: first sight again');
    const b = await store.check('b', t + 60_000, timing);
    assert.ok(b.status === 'checked' && !b.pass, '"b" was dropped when "a" came back');
    const d = await store.check('d', t + 60_001, timing);
    assert.ok(d.status === 'checked' && d.pass, '"d" was kept');
    // Everything is past its lifetime: the next check sweeps it all away.
    await store.check('e', t + 10_000_000, timing);
    assert.equal(store.size(), 1);
  });

  test('a write moves an entry to the young end: the entry passed last is dropped last', async () => {
    const store = memoryGreylistStore({ maxEntries: 3 });
    const t = 5_000_000;
    for (const key of ['a', 'b', 'c']) await store.check(key, t, timing);
    assert.ok(checked(await store.check('a', t + 60_000, timing)).pass, '"a" passes and is written again');
    await store.check('d', t + 60_001, timing);
    assert.ok(checked(await store.check('a', t + 60_002, timing)).pass, '"a" was kept');
    assert.ok(!checked(await store.check('b', t + 120_000, timing)).pass, '"b", the oldest write, was dropped: first sight again');
  });

  test('expired entries are swept by time even while the store is far from full', async () => {
    const store = memoryGreylistStore({ maxEntries: 1000, sweepIntervalMs: 30_000 });
    const t = 9_000_000;
    for (const key of ['a', 'b', 'c']) await store.check(key, t, timing);
    await store.check('d', t + 20_000, timing);
    assert.equal(store.size(), 4, 'nothing expired yet');
    await store.check('e', t + 600_000, timing);
    assert.equal(store.size(), 2, 'a, b and c expired and were swept; d (written 20 s later) is still alive');
    await store.check('f', t + 625_000, timing);
    assert.equal(store.size(), 3, 'd has expired, but the last sweep was less than 30 s ago');
  });
});

describe('greylisting: passes remembered in front of a shared store', () => {
  const timing = { delaySeconds: 60, lifetimeSeconds: 3600 };
  /** The in-process store, counting how often it is asked. */
  function counted(): GreylistStore & { asked: number } {
    const inner = memoryGreylistStore();
    const store = { asked: 0, check: (key: string, now: number, t: typeof timing) => { store.asked++; return inner.check(key, now, t); } };
    return store;
  }

  test('refusals always reach the store; a pass is answered from memory until ttlMs, then the store is asked again', async () => {
    const inner = counted();
    const store = passCachedStore(inner, { ttlMs: 300_000 });
    const t = 1_000_000;
    assert.equal(checked(await store.check('k', t, timing)).pass, false);
    assert.equal(checked(await store.check('k', t + 1000, timing)).pass, false, 'an early retry');
    assert.equal(inner.asked, 2);
    const passed = checked(await store.check('k', t + 60_000, timing));
    assert.equal(passed.pass, true);
    assert.equal(inner.asked, 3);
    for (const at of [t + 60_001, t + 200_000, t + 359_999]) {
      assert.deepEqual(await store.check('k', at, timing), passed, `from memory at +${at - t} ms`);
    }
    assert.equal(inner.asked, 3, 'no round trip while remembered');
    assert.equal(checked(await store.check('k', t + 360_000, timing)).pass, true);
    assert.equal(inner.asked, 4, 'asked again after ttlMs (the stored lifetime is renewed there)');
    assert.equal(checked(await store.check('other', t + 360_001, timing)).pass, false, 'another key is its own');
  });

  test('never past the entry\'s own lifetime; failures are not remembered; ttlMs 0 is the store itself', async () => {
    const inner = counted();
    const store = passCachedStore(inner, { ttlMs: 10_000_000 });
    const t = 2_000_000;
    await store.check('k', t, timing);
    await store.check('k', t + 60_000, timing);
    const asked = inner.asked;
    assert.equal(checked(await store.check('k', t + 60_000 + 3_600_000, timing)).pass, false, 'expired: first sight again, from the store');
    assert.equal(inner.asked, asked + 1);

    let calls = 0;
    const down: GreylistStore = { check: async () => { calls++; return { status: 'unavailable', error: 'down' }; } };
    const overDown = passCachedStore(down, { ttlMs: 60_000 });
    assert.equal((await overDown.check('k', t, timing)).status, 'unavailable');
    assert.equal((await overDown.check('k', t + 1, timing)).status, 'unavailable');
    assert.equal(calls, 2);
    assert.equal(passCachedStore(down, { ttlMs: 0 }), down);
  });

  test('bounded: past maxEntries the oldest remembered pass is forgotten (and asked of the store again)', async () => {
    const inner = counted();
    const store = passCachedStore(inner, { ttlMs: 600_000, maxEntries: 2 });
    const t = 3_000_000;
    for (const key of ['a', 'b', 'c']) await store.check(key, t, timing);
    for (const key of ['a', 'b', 'c']) assert.ok(checked(await store.check(key, t + 60_000, timing)).pass);
    const asked = inner.asked;
    await store.check('c', t + 60_001, timing);
    await store.check('b', t + 60_002, timing);
    assert.equal(inner.asked, asked, 'b and c remembered');
    await store.check('a', t + 60_003, timing);
    assert.equal(inner.asked, asked + 1, 'a was forgotten');
  });
});
