// The candidate sequence of directory-model §2.3, qmail and postfix modes, as a table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { candidates, type CandidateRules } from '../../src/directory/candidates.ts';

const qmail: CandidateRules = { mode: 'qmail', dashExt: true, dashExtLevels: 4, catchall: 'catchall', recipientDelimiter: '+' };
const basic: CandidateRules = { ...qmail, dashExt: false };
const postfix: CandidateRules = { ...qmail, mode: 'postfix', recipientDelimiter: '+-' };

const table: [rules: CandidateRules, local: string, expected: string[]][] = [
  [qmail, 'bob', ['bob@d', 'catchall@d']],
  [qmail, 'bob-lists', ['bob-lists@d', 'bob-catchall@d', 'catchall@d']],
  [qmail, 'a-b-c', ['a-b-c@d', 'a-b-catchall@d', 'a-catchall@d', 'catchall@d']],
  [qmail, 'a-b-c-d-e-f', ['a-b-c-d-e-f@d', 'a-b-c-d-catchall@d', 'a-b-c-catchall@d', 'a-b-catchall@d', 'a-catchall@d', 'catchall@d']],
  [qmail, '-x', ['-x@d', 'catchall@d']],
  [qmail, 'catchall', ['catchall@d']],
  [qmail, 'bobby-x', ['bobby-x@d', 'bobby-catchall@d', 'catchall@d']],
  [basic, 'bob-lists', ['bob-lists@d', 'catchall@d']],
  [postfix, 'user+ext', ['user+ext@d', 'user@d', '@d']],
  [postfix, 'user-ext+more', ['user-ext+more@d', 'user@d', '@d']],
  [postfix, 'plain', ['plain@d', '@d']],
  [postfix, '+x', ['+x@d', '@d']],
];

for (const [rules, local, expected] of table) {
  test(`${rules.mode}${rules.dashExt ? '' : ' (no dashExt)'}: ${local}@d`, () => {
    assert.deepEqual(candidates(local, 'd', rules).map((c) => c.key), expected);
  });
}

test('extensions: what follows the matched prefix; the whole local part for a domain catch-all', () => {
  const c = candidates('bob-lists', 'd', qmail);
  assert.deepEqual(c.map((x) => x.extension), [null, 'lists', 'bob-lists']);
  assert.deepEqual(candidates('user+ext', 'd', postfix).map((x) => x.extension), [null, 'ext', 'user+ext']);
});

test('a long dash chain never yields more than six searches', () => {
  assert.equal(candidates('a-'.repeat(500) + 'z', 'd', qmail).length, 6);
});
