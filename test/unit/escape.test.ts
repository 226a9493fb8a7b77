// RFC 4515 / RFC 4514 escaping against the reference's vectors (directory-model §8.3).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeDnValue, escapeFilterValue, expandFilterTemplate } from '../../src/directory/escape.ts';

const vectors: [input: string, filter: string, dn: string][] = [
  ['alice@example.org', 'alice@example.org', 'alice@example.org'],
  ['a*b@example.org', 'a\\2ab@example.org', 'a*b@example.org'],
  ['x)(uid=*@example.org', 'x\\29\\28uid=\\2a@example.org', 'x)(uid\\3d*@example.org'],
  ['back\\slash@example.org', 'back\\5cslash@example.org', 'back\\\\slash@example.org'],
  ['Smith, John', 'Smith, John', 'Smith\\, John'],
  ['#tag', '#tag', '\\#tag'],
  [' lead', ' lead', '\\ lead'],
  ['trail ', 'trail ', 'trail\\ '],
  ['a+b;c<d>"e"', 'a+b;c<d>"e"', 'a\\+b\\;c\\<d\\>\\"e\\"'],
  ['jürgen@example.org', 'j\\c3\\bcrgen@example.org', 'jürgen@example.org'],
  ['nul\u0000byte', 'nul\\00byte', 'nul\\00byte'],
  ['CR\r\nLF', 'CR\\0d\\0aLF', 'CR\\0d\\0aLF'],
];

for (const [input, filter, dn] of vectors) {
  test(`escape ${JSON.stringify(input)}`, () => {
    assert.equal(escapeFilterValue(input), filter);
    assert.equal(escapeDnValue(input), dn);
  });
}

test('a DN used as an assertion value is filter-escaped as a whole', () => {
  assert.equal(escapeFilterValue('CN=G\\, Sales,DC=x'), 'CN=G\\5c, Sales,DC=x');
});

test('filter escaping leaves no special character unescaped, whatever the input', () => {
  const nasty = '*()\\\u0000\u007f\u0080' + 'x'.repeat(1000) + ')(|(mail=*';
  const out = escapeFilterValue(nasty);
  assert.doesNotMatch(out.replace(/\\[0-9a-f]{2}/g, ''), /[*()\\\u0000-\u001f\u007f-\uffff]/);
  assert.equal(Buffer.from(out.replace(/\\([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'), nasty);
});

test('filter templates escape each value and never the template', () => {
  assert.equal(expandFilterTemplate('(uid=%s)', 'al*ce'), '(uid=al\\2ace)');
  assert.equal(expandFilterTemplate('(|(mail=%s)(uid=%u)(dc=%d))', 'a(b@x.org'), '(|(mail=a\\28b@x.org)(uid=a\\28b)(dc=x.org))');
  assert.equal(expandFilterTemplate('(x=100%%)(uid=%U)', 'bob'), '(x=100%)(uid=bob)');
  assert.equal(expandFilterTemplate('(mail=%d)', 'bob'), null, '%d of a key without @ means no query');
  assert.equal(expandFilterTemplate('(uid=%u)', '@example.org'), null, 'empty local part means no query');
});
