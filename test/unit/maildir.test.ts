// Owns: tables for the pure parts of Maildir delivery: unique names, CRLF→LF across chunks, path checks.
// Must never: touch the file system (the integration tests do that with real directories).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crlfToLf, escapeHostname, uniqueName } from '../../src/deliver/maildir-file.ts';
import { isWithin, maildirPathProblem } from '../../src/deliver/maildir-path.ts';

test('host names escape / and : as the Maildir convention says', () => {
  assert.equal(escapeHostname('mx1.example.org'), 'mx1.example.org');
  assert.equal(escapeHostname('a/b:c'), 'a\\057b\\072c');
});

test('unique names are <seconds>.M<micros>P<pid>Q<counter>.<host>', () => {
  assert.equal(uniqueName(1_700_000_000_123.456, 4242, 7, 'mx:1'), '1700000000.M123456P4242Q7.mx\\0721');
  assert.equal(uniqueName(1_700_000_000_000, 1, 1, 'h'), '1700000000.M0P1Q1.h');
});

const convert = (chunks: string[]): string => {
  const state = { cr: false };
  const out = chunks.map((c) => crlfToLf(Buffer.from(c, 'latin1'), state).toString('latin1')).join('');
  return out + (state.cr ? '\r' : '');
};

const lineEndings: [chunks: string[], expected: string][] = [
  [['a\r\nb\r\n'], 'a\nb\n'],
  [['a\r', '\nb'], 'a\nb'],
  [['a\r', 'b'], 'a\rb'],
  [['a\r', '', '\nb'], 'a\nb'],
  [['lone\rcr\n'], 'lone\rcr\n'],
  [['\r\r\n'], '\r\n'],
  [['end\r'], 'end\r'],
  [['\r', '\r', '\n'], '\r\n'],
  [['no line ending'], 'no line ending'],
  [[''], ''],
];

for (const [chunks, expected] of lineEndings) {
  test(`CRLF→LF ${JSON.stringify(chunks)}`, () => assert.equal(convert(chunks), expected));
}

test('CRLF→LF gives the same result whatever the chunking', () => {
  const text = 'Subject: x\r\n\r\nline\r\nwith\rlone CR\r\n.\r\n\r';
  const whole = convert([text]);
  for (let cut = 0; cut <= text.length; cut++) assert.equal(convert([text.slice(0, cut), text.slice(cut)]), whole, `cut at ${cut}`);
  assert.equal(convert(text.split('')), whole);
});

test('isWithin compares whole path components', () => {
  assert.equal(isWithin('/srv/mail', '/srv/mail/a'), true);
  assert.equal(isWithin('/srv/mail', '/srv/mail'), false);
  assert.equal(isWithin('/srv/mail', '/srv/mail', true), true);
  assert.equal(isWithin('/srv/mail', '/srv/mailx/a'), false);
  assert.equal(isWithin('/srv/mail', '/srv/mail/..x'), true);
  assert.equal(isWithin('/srv/mail', '/srv'), false);
});

const paths: [maildir: string, problem: RegExp | null][] = [
  ['/srv/mail/alice/', null],
  ['/srv/mail/example.org/alice/Maildir/', null],
  ['/srv/mail/./alice/', null],
  ['../../../../tmp/pwned/', /not absolute/],
  ['', /not absolute/],
  ['./', /not absolute/],
  ['/', /outside/],
  ['/etc/cron.d/', /outside/],
  ['/srv/mail/', /outside/],
  ['/srv/mailx/alice/', /outside/],
  ['/srv/mail/../../etc/', /"\.\."/],
  ['/srv/mail/alice/../bob/', /"\.\."/],
  ['/srv/mail/e\nve/', /control/],
  ['/srv/mail/nul\u0000/', /control/],
  [`/srv/mail/${'a'.repeat(5000)}/`, /too long/],
];

for (const [maildir, problem] of paths) {
  test(`maildir path ${JSON.stringify(maildir.slice(0, 40))}`, () => {
    const found = maildirPathProblem(maildir, '/srv/mail');
    if (problem === null) assert.equal(found, null);
    else assert.match(found ?? '', problem);
  });
}

test('a relative mail base is refused', () => {
  assert.match(maildirPathProblem('/srv/mail/a/', 'srv/mail') ?? '', /base/);
});
