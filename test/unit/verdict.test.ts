// The filter verdict (pure): DNS lists scored against the reject level, the order of the checks
// after DATA (virus, scanner trouble, DMARC, spam score), fail-open, the X-Spam-* fields, the
// header rewrite that drops fields only this server may write, and the Junk decision at delivery.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { FieldFilter, withoutFields } from '../../src/deliver/headers.ts';
import { isJunk } from '../../src/deliver/index.ts';
import { temporary } from '../../src/mail.ts';
import { combine, contentVerdict, describeVerdict, dnsListVerdict, final, spamHeaders, ACCEPT } from '../../src/policy/verdict.ts';

const T = { tagScore: 5, junkScore: 6, rejectScore: 15 };
const down = temporary('4.7.1', 'connection refused');

test('DNS lists: weights add up; at the reject score 554 5.7.1 names the block lists; an allow list can keep a client in', () => {
  const listed = dnsListVerdict([{ zone: 'bl.test', weight: 10, codes: ['127.0.0.2'] }], 10);
  assert.equal(listed.action, 'reject');
  assert.equal(listed.error?.reply, 554);
  assert.equal(listed.error?.status, '5.7.1');
  assert.match(listed.error!.message, /bl\.test/);
  const under = dnsListVerdict([{ zone: 'bl.test', weight: 5, codes: ['127.0.0.2'] }], 10);
  assert.equal(under.action, 'accept');
  assert.equal(under.score, 5);
  const allowed = dnsListVerdict([{ zone: 'bl.test', weight: 10, codes: ['127.0.0.2'] }, { zone: 'wl.test', weight: -5, codes: ['127.0.9.1'] }], 10);
  assert.equal(allowed.action, 'accept');
  assert.deepEqual(allowed.reasons.map((r) => r.check), ['dnsbl', 'dnswl']);
  assert.equal(dnsListVerdict([], 10).action, 'accept');
});

test('after DATA: a virus is refused with its name before anything else; a scanner that is down is 451 4.7.1, or a tag when failing open', () => {
  const virus = contentVerdict({ virus: { infected: true, signature: 'Eicar-Test' }, spam: { score: 0, required: 5, rules: [] } }, T);
  assert.equal(virus.action, 'reject');
  assert.equal(virus.error?.reply, 554);
  assert.match(virus.error!.message, /Eicar-Test/);
  const closed = contentVerdict({ virus: down }, T);
  assert.equal(closed.action, 'tempfail');
  assert.equal(closed.error?.status, '4.7.1');
  assert.equal(closed.error?.kind, 'temporary');
  assert.equal(contentVerdict({ virus: down, virusFailOpen: true }, T).action, 'tag');
  assert.equal(contentVerdict({ spam: down }, T).action, 'tempfail');
  assert.equal(contentVerdict({ spam: down, spamFailOpen: true }, T).action, 'tag');
  assert.ok(final(closed) && final(virus) && !final(ACCEPT));
});

test('spam score against the thresholds: tag, junk, reject (550 5.7.1), accept below', () => {
  const at = (score: number) => contentVerdict({ virus: { infected: false }, spam: { score, required: 5, rules: ['R1'] } }, T);
  assert.equal(at(1).action, 'accept');
  assert.equal(at(5).action, 'tag');
  assert.equal(at(6).action, 'junk');
  assert.equal(at(15).action, 'reject');
  assert.equal(at(15).error?.reply, 550);
  assert.equal(at(7.25).score, 7.25);
  assert.equal(describeVerdict(at(6)), 'junk: clamav clean; spam 6.0 R1');
});

test('DMARC: p=reject refused (550 5.7.1) unless not honoured; p=quarantine is junk or a tag; a pass changes nothing', () => {
  const fail = (policy: string) => ({ result: 'fail', policy, domain: 'example.com' });
  const rejected = contentVerdict({ dmarc: fail('reject') }, T);
  assert.equal(rejected.action, 'reject');
  assert.equal(rejected.error?.reply, 550);
  assert.match(rejected.error!.message, /example\.com/);
  assert.equal(contentVerdict({ dmarc: fail('reject'), dmarcReject: false }, T).action, 'accept');
  assert.equal(contentVerdict({ dmarc: fail('quarantine') }, T).action, 'junk');
  assert.equal(contentVerdict({ dmarc: fail('quarantine'), dmarcQuarantine: 'tag' }, T).action, 'tag');
  assert.equal(contentVerdict({ dmarc: { result: 'pass', policy: 'reject', domain: 'example.com' } }, T).action, 'accept');
  assert.equal(contentVerdict({ dmarc: fail('none') }, T).action, 'accept');
});

test('combine keeps the most severe action, the highest score and every reason', () => {
  const a = contentVerdict({ spam: { score: 6, required: 5, rules: [] } }, T);
  const b = dnsListVerdict([{ zone: 'bl.test', weight: 10, codes: ['127.0.0.2'] }], 10);
  const both = combine(a, b);
  assert.equal(both.action, 'reject');
  assert.equal(both.score, 10);
  assert.equal(both.reasons.length, 2);
  assert.equal(combine(ACCEPT, a).action, 'junk');
});

test('X-Spam-* fields: flag, score and status with the rules; a tag without a scanner result says it was unavailable', () => {
  const spam = { score: 7.3, required: 5, rules: ['A', 'B'] };
  const v = contentVerdict({ spam }, T);
  assert.equal(spamHeaders(v, spam, T), 'X-Spam-Flag: YES\r\nX-Spam-Score: 7.3\r\nX-Spam-Status: Yes, score=7.3 required=5.0 tests=A,B\r\n');
  const low = { score: 1, required: 5, rules: [] };
  assert.match(spamHeaders(contentVerdict({ spam: low }, T), low, T), /^X-Spam-Flag: NO\r\nX-Spam-Score: 1\.0\r\nX-Spam-Status: No, score=1\.0 required=5\.0\r\n$/);
  assert.match(spamHeaders(contentVerdict({ spam: down, spamFailOpen: true }, T), undefined, T), /^X-Spam-Status: Unknown/);
});

test('withoutFields drops whole fields (folded lines too) and keeps the rest byte for byte', () => {
  const message = Buffer.from('From: a@b\r\nX-Spam-Score: 99\r\nAuthentication-Results: mx1.example.org;\r\n spf=pass\r\nSubject: hi\r\nX-Spam-Flag: YES\r\n\r\nX-Spam-Score: body stays\r\n');
  const drop = (name: string, value: string) => name.startsWith('x-spam-') || (name === 'authentication-results' && value.startsWith('mx1.example.org'));
  assert.equal(withoutFields(message, drop).toString(), 'From: a@b\r\nSubject: hi\r\n\r\nX-Spam-Score: body stays\r\n');
  const theirs = Buffer.from('Authentication-Results: other.example; spf=pass\r\n\r\nbody');
  assert.equal(withoutFields(theirs, drop), theirs, 'nothing to drop: the same buffer');
  assert.equal(withoutFields(Buffer.from('no header end'), drop).toString(), 'no header end');
});

test('isJunk: the score this server wrote against the recipient\'s junk score; a DMARC quarantine always', () => {
  const fields = (score?: string, quarantine?: string) => new Map<string, string[]>([['x-spam-score', score === undefined ? [] : [score]], ['x-ldapmta-quarantine', quarantine === undefined ? [] : [quarantine]]]);
  assert.equal(isJunk(fields('7.3'), 6), true);
  assert.equal(isJunk(fields('5.9'), 6), false);
  assert.equal(isJunk(fields('5.9'), 5), true, 'a recipient with a lower junk score');
  assert.equal(isJunk(fields(), 6), false);
  assert.equal(isJunk(fields('garbage'), 6), false);
  assert.equal(isJunk(fields(undefined, 'dmarc'), 6), true);
});

test('FieldFilter (the streaming withoutFields) gives the same bytes at every chunk boundary', async () => {
  const drop = (name: string) => name.startsWith('x-spam-');
  const through = async (chunks: Buffer[]) => {
    const out: Buffer[] = [];
    for await (const c of Readable.from(chunks).pipe(new FieldFilter(drop))) out.push(c as Buffer);
    return Buffer.concat(out);
  };
  const messages = [
    'From: a@b\r\nX-Spam-Score: 99\r\n\tfolded\r\nSubject: hi\r\n\r\nX-Spam-Score: body stays\r\n',
    'X-Spam-Flag: YES\nFrom: a@b\n\nbody\n', // bare LF (refused elsewhere, but the same either way)
    'From: a@b\r\nX-Spam-Flag: YES\r\n', // no body, no empty line
    '',
  ].map((m) => Buffer.from(m));
  for (const message of messages) {
    const expected = withoutFields(message, drop);
    for (let cut = 0; cut <= message.length; cut++) {
      for (const size of [1, 2, 3]) {
        const chunks = [message.subarray(0, cut)];
        for (let i = cut; i < message.length; i += size) chunks.push(message.subarray(i, i + size));
        assert.equal((await through(chunks.filter((c) => c.length > 0))).toString(), expected.toString(), `cut ${cut}, then ${size}-byte chunks`);
      }
    }
  }
  // It streams: the header section goes out once its empty line is in (split across writes), the body as it comes.
  const filter = new FieldFilter(drop);
  const seen: string[] = [];
  filter.on('data', (c: Buffer) => seen.push(c.toString()));
  filter.write('From: a@b\r\nX-Spam-Flag: YES\r\n\r');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [], 'no empty line yet: held');
  filter.write('\nbody 1\r\n');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['From: a@b\r\n\r\nbody 1\r\n']);
  filter.write('body 2\r\n');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['From: a@b\r\n\r\nbody 1\r\n', 'body 2\r\n'], 'before the end');
  filter.end();
  // A header section past the 256 KiB that withoutFields reads is passed on unchanged, as withoutFields does.
  const long = Buffer.from(`X-Spam-Flag: YES\r\nX-Long: ${'a'.repeat(300 * 1024)}\r\n\r\nbody\r\n`);
  assert.ok((await through([long.subarray(0, 100_000), long.subarray(100_000)])).equals(withoutFields(long, drop)));
  assert.ok(withoutFields(long, drop).equals(long));
});
