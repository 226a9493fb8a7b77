// Program lines, exit codes and the run-as user (deliver/program.ts), one rule per line.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { exitMeaning, programArgv, toLf, unprivilegedUser } from '../../src/deliver/program.ts';
import { MailError } from '../../src/mail.ts';

const allow = ['/usr/local/bin/filter'];
const lines: [string, string[] | string][] = [
  ['/usr/local/bin/filter', ['/usr/local/bin/filter']],
  ['  /usr/local/bin/filter --to=inbox  x@y ', ['/usr/local/bin/filter', '--to=inbox', 'x@y']],
  ['/usr/local/bin/filter; rm -rf /', '5.3.5'],
  ['/usr/local/bin/filter | mail x', '5.3.5'],
  ['/usr/local/bin/filter $(id)', '5.3.5'],
  ['/usr/local/bin/filter > /etc/passwd', '5.3.5'],
  ['-/usr/local/bin/filter', '5.3.5'],
  ['/bin/sh -c id', '5.3.5'],
  ['/usr/local/bin/filter2', '5.3.5'],
  ['', '5.3.5'],
];
for (const [line, expected] of lines) {
  test(`program line ${JSON.stringify(line)} → ${Array.isArray(expected) ? 'runs' : expected}`, () => {
    const argv = programArgv(line, allow);
    if (Array.isArray(expected)) assert.deepEqual(argv, expected);
    else assert.ok(argv instanceof MailError && argv.status === expected && !argv.temporary);
  });
}

const codes: [number | null, string][] = [
  [0, 'ok'], [99, 'stop'], [100, 'permanent'], [64, 'permanent'], [65, 'permanent'], [70, 'permanent'], [76, 'permanent'],
  [77, 'permanent'], [78, 'permanent'], [112, 'permanent'], [1, 'temporary'], [75, 'temporary'], [111, 'temporary'], [null, 'temporary'],
];
for (const [code, expected] of codes) {
  test(`exit ${code} → ${expected}`, () => {
    const meaning = exitMeaning(code, 'program x');
    const got = meaning instanceof MailError ? meaning.kind : meaning.stop ? 'stop' : 'ok';
    assert.equal(got, expected);
  });
}

test('the run-as user: by name from passwd, by uid:gid, never root, unknown names refused', () => {
  const passwd = join(mkdtempSync(join(tmpdir(), 'ldapmta-passwd-')), 'passwd');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nmailer:x:0:8::/:/bin/false\n');
  assert.deepEqual(unprivilegedUser('nobody', passwd), { uid: 65534, gid: 65534 });
  assert.deepEqual(unprivilegedUser('5000:100', passwd), { uid: 5000, gid: 100 });
  assert.throws(() => unprivilegedUser('root', passwd), /never run as root/);
  assert.throws(() => unprivilegedUser('mailer', passwd), /never run as root/);
  assert.throws(() => unprivilegedUser('0', passwd), /never run as root/);
  assert.throws(() => unprivilegedUser('ghost', passwd), /not found/);
});

test('programs get LF line ends, also when a CRLF is split across chunks; a lone CR stays', async () => {
  const chunks = ['a\r\nb\r', '\nc\r', 'x\r\n', '.\r'].map((t) => Buffer.from(t));
  const out = Buffer.concat(await Readable.from(chunks).pipe(toLf()).toArray()).toString();
  assert.equal(out, 'a\nb\nc\rx\n.\r');
});
