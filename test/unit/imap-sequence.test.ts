// IMAP sequence sets: parsing, membership with `*`, bounded expansion, UID sets, compact text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compress, expand, inSet, parseSequenceSet, seqForUids, type SequenceSet } from '../../src/mailbox/imap/sequence.ts';

function set(text: string): SequenceSet {
  const parsed = parseSequenceSet(text);
  assert.ok(parsed, `${text} should parse`);
  return parsed;
}

const parsed: [string, SequenceSet][] = [
  ['1', [{ from: 1, to: 1 }]],
  ['1:5', [{ from: 1, to: 5 }]],
  ['5:1', [{ from: 5, to: 1 }]],
  ['*', [{ from: '*', to: '*' }]],
  ['3:*', [{ from: 3, to: '*' }]],
  ['*:3', [{ from: '*', to: 3 }]],
  ['1,3:4,9', [{ from: 1, to: 1 }, { from: 3, to: 4 }, { from: 9, to: 9 }]],
  ['4294967295', [{ from: 4294967295, to: 4294967295 }]],
];
for (const [text, expected] of parsed) {
  test(`sequence set ${text} parses`, () => assert.deepEqual(parseSequenceSet(text), expected));
}

const rejected = ['', '0', '1:0', '0:3', ',1', '1,', '1,,2', 'a', '1:2:3', '4294967296', '99999999999', '01', '$', '1 2', '-1', '1.5', '*:', ':1', '1:', '**', ' 1'];
for (const text of rejected) {
  test(`sequence set ${JSON.stringify(text)} is rejected`, () => assert.equal(parseSequenceSet(text), null));
}

const membership: [string, number, number, boolean][] = [
  ['1:5', 3, 10, true],
  ['1:5', 6, 10, false],
  ['5:1', 1, 10, true],
  ['*', 10, 10, true],
  ['*', 9, 10, false],
  ['*', 1, 0, false],
  ['3:*', 7, 10, true],
  ['3:*', 2, 10, false],
  ['3:*', 2, 2, true],
  ['3:*', 3, 0, false],
  ['1,3:4,9', 9, 10, true],
  ['1,3:4,9', 2, 10, false],
];
for (const [text, n, max, expected] of membership) {
  test(`${n} in ${text} with max ${max}: ${expected}`, () => assert.equal(inSet(set(text), n, max), expected));
}

const expansions: [string, number, number[]][] = [
  ['1:5', 3, [1, 2, 3]],
  ['5:1', 3, [1, 2, 3]],
  ['*', 4, [4]],
  ['*', 0, []],
  ['3:*', 0, []],
  ['1:*', 0, []],
  ['*:4', 2, [2]],
  ['3:*', 5, [3, 4, 5]],
  ['7:*', 5, [5]],
  ['1,3:4,9', 5, [1, 3, 4]],
  ['2,1,2:3,3', 9, [1, 2, 3]],
  ['4:6,1:5', 9, [1, 2, 3, 4, 5, 6]],
  ['1:4294967295', 10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
  ['4294967295', 10, []],
];
for (const [text, max, expected] of expansions) {
  test(`expand ${text} with max ${max}`, () => assert.deepEqual(expand(set(text), max), expected));
}

test('expand stays bounded by max and the set, whatever the ranges name', () => {
  const many = set(Array.from({ length: 5000 }, (_, i) => `${i + 1}:4294967295`).join(','));
  assert.equal(expand(many, 3).length, 3);
  assert.deepEqual(expand(set('1:4294967295,2:4294967294'), 2), [1, 2]);
});

const uids = [3, 7, 8, 20];
const byUid: [string, readonly number[], number[]][] = [
  ['7:8', uids, [2, 3]],
  ['8:7', uids, [2, 3]],
  ['*', uids, [4]],
  ['21:*', uids, [4]],
  ['*:100', uids, [4]],
  ['1:*', uids, [1, 2, 3, 4]],
  ['1:2', uids, []],
  ['4:6', uids, []],
  ['100', uids, []],
  ['8,3,8', uids, [1, 3]],
  ['1:7,5:20', uids, [1, 2, 3, 4]],
  ['*', [], []],
  ['1:*', [], []],
  ['1:4294967295', [], []],
];
for (const [text, list, expected] of byUid) {
  test(`UID set ${text} over ${JSON.stringify(list)} → sequence numbers ${JSON.stringify(expected)}`, () => {
    assert.deepEqual(seqForUids(list, set(text)), expected);
  });
}

const compact: [number[], string][] = [
  [[], ''],
  [[5], '5'],
  [[1, 2, 3, 7, 9, 10], '1:3,7,9:10'],
  [[1, 3, 5], '1,3,5'],
  [[3, 1, 2], '3,1:2'],
  [[4294967294, 4294967295], '4294967294:4294967295'],
];
for (const [numbers, expected] of compact) {
  test(`compress ${JSON.stringify(numbers)} → ${expected}`, () => assert.equal(compress(numbers), expected));
}

test('compress and parse round-trip', () => {
  const numbers = [1, 2, 3, 5, 8, 9, 10, 11, 40];
  assert.deepEqual(expand(set(compress(numbers)), 100), numbers);
});
