// Owns: tables for the pure Maildir++ quota parts (directory-model §3.9): definitions, maildirsize, decisions.
// Must never: touch the file system (test/integration/maildir-quota.test.ts does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatQuotaDefinition, hasQuota, isOver, overQuota, parseMaildirsize, parseMessageName, parseQuotaDefinition,
  recalcWhenOver, RECALC_AGE_MS, sameQuota, trustedFile,
} from '../../src/deliver/quota.ts';

const definitions: [text: string, bytes: number | null, count: number | null, canonical: string][] = [
  ['104857600S,10000C', 104857600, 10000, '104857600S,10000C'],
  ['1048576S', 1048576, null, '1048576S'],
  ['1000C', null, 1000, '1000C'],
  ['1000C,2000S', 2000, 1000, '2000S,1000C'],
  ['0S,5C', null, 5, '5C'],
  ['', null, null, ''],
  ['garbage', null, null, ''],
  ['12X,7S', 7, null, '7S'],
  ['  100S , 3C  ', 100, 3, '100S,3C'],
];

for (const [text, bytes, count, canonical] of definitions) {
  test(`quota definition ${JSON.stringify(text)}`, () => {
    assert.deepEqual(parseQuotaDefinition(text), { bytes, count });
    assert.equal(formatQuotaDefinition({ bytes, count }), canonical);
  });
}

test('0 and null both mean unlimited', () => {
  assert.equal(hasQuota({ bytes: null, count: null }), false);
  assert.equal(hasQuota({ bytes: 0, count: 0 }), false);
  assert.equal(hasQuota({ bytes: 1, count: null }), true);
  assert.equal(sameQuota({ bytes: 0, count: 5 }, { bytes: null, count: 5 }), true);
  assert.equal(sameQuota({ bytes: 1, count: 5 }, { bytes: null, count: 5 }), false);
});

const files: [text: string, expected: ReturnType<typeof parseMaildirsize>][] = [
  ['1048576S,1000C\n1046000 300\n', { definition: { bytes: 1048576, count: 1000 }, usage: { bytes: 1046000, count: 300 }, lines: 2 }],
  ['100S\n   10    1\n  -4   -1\n20 2\n', { definition: { bytes: 100, count: null }, usage: { bytes: 26, count: 2 }, lines: 4 }],
  ['100S\n10 1\n\n', { definition: { bytes: 100, count: null }, usage: { bytes: 10, count: 1 }, lines: 2 }],
  ['5C\n10 1\n-50 -3\n', { definition: { bytes: null, count: 5 }, usage: { bytes: 0, count: 0 }, lines: 3 }],
  ['5C\n', { definition: { bytes: null, count: 5 }, usage: { bytes: 0, count: 0 }, lines: 1 }],
  ['5C\n10 1\n12', null],
  ['5C\nten one\n', null],
];

for (const [text, expected] of files) {
  test(`maildirsize ${JSON.stringify(text)}`, () => assert.deepEqual(parseMaildirsize(text), expected));
}

const checks: [bytes: number | null, count: number | null, usageBytes: number, usageCount: number, size: number, over: boolean][] = [
  [1048576, 1000, 1046000, 300, 2000, false],
  [1048576, 1000, 1046000, 300, 2576, false], // equality allowed
  [1048576, 1000, 1046000, 300, 2577, true],
  [1048576, 1000, 1048050, 301, 4000, true],
  [null, 10, 10 ** 12, 9, 10 ** 9, false],
  [null, 10, 0, 10, 1, true],
  [100, null, 0, 10 ** 6, 100, false],
  [null, null, 10 ** 12, 10 ** 9, 10 ** 9, false],
];

for (const [bytes, count, usageBytes, usageCount, size, over] of checks) {
  test(`over quota ${bytes}S,${count}C with ${usageBytes} ${usageCount} + ${size} → ${over}`, () => {
    assert.equal(isOver({ bytes, count }, { bytes: usageBytes, count: usageCount }, size), over);
  });
}

test('trustedFile: missing, ≥ 5120 bytes, other definition or malformed → recalculate (null)', () => {
  const quota = { bytes: 1000, count: null };
  const ok = { text: '1000S\n10 1\n', size: 11, mtimeMs: 0 };
  assert.equal(trustedFile(null, quota), null);
  assert.notEqual(trustedFile(ok, quota), null);
  assert.equal(trustedFile({ ...ok, size: 5120 }, quota), null);
  assert.notEqual(trustedFile({ ...ok, size: 5119 }, quota), null);
  assert.equal(trustedFile(ok, { bytes: 2000, count: null }), null);
  assert.equal(trustedFile(ok, { bytes: 1000, count: 5 }), null);
  assert.equal(trustedFile({ ...ok, text: '1000S\nx\n' }, quota), null);
});

test('recalcWhenOver: more than two lines, or 900 s old', () => {
  const two = parseMaildirsize('1000S\n10 1\n')!;
  const three = parseMaildirsize('1000S\n10 1\n10 1\n')!;
  const now = 10_000_000;
  assert.equal(recalcWhenOver(two, now - 1000, now), false);
  assert.equal(recalcWhenOver(two, now - RECALC_AGE_MS + 1, now), false);
  assert.equal(recalcWhenOver(two, now - RECALC_AGE_MS, now), true);
  assert.equal(recalcWhenOver(three, now, now), true);
});

const names: [name: string, size: number | null, trashed: boolean][] = [
  ['1700000000.M1P2Q3.host,S=1234', 1234, false],
  ['1700000000.M1P2Q3.host,S=1234:2,S', 1234, false],
  ['1700000000.M1P2Q3.host,S=1234:2,ST', 1234, true],
  ['1700000000.M1P2Q3.host,S=1234,W=1260:2,FRT', 1234, true],
  ['1700000000.M1P2Q3.host:2,T', null, true],
  ['1700000000.M1P2Q3.host', null, false],
  ['1700000000.M1P2Q3.T,S=5', 5, false],
];

for (const [name, size, trashed] of names) {
  test(`message name ${name}`, () => assert.deepEqual(parseMessageName(name), { size, trashed }));
}

test('over quota at delivery: bounced 5.2.2 at once by default; deferred 4.2.2 while younger than delivery.quotaDeferSeconds', () => {
  const T0 = Date.parse('2026-12-05T00:00:00Z');
  const rows: [deferSeconds: number, ageMs: number, expected: string][] = [
    [0, 0, 'permanent 5.2.2 552'],
    [0, 5 * 86_400_000, 'permanent 5.2.2 552'],
    [3600, 0, 'temporary 4.2.2 452'],
    [3600, 3_599_999, 'temporary 4.2.2 452'],
    [3600, 3_600_000, 'permanent 5.2.2 552'],
  ];
  for (const [deferSeconds, ageMs, expected] of rows) {
    const err = overQuota(T0, T0 + ageMs, deferSeconds);
    assert.equal(`${err.kind} ${err.status} ${err.reply}`, expected, `defer ${deferSeconds} s, age ${ageMs} ms`);
  }
});
