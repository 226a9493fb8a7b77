// Owns: proof on real temp directories of Maildir++ quota at delivery and at RCPT (directory-model §3.9).
// Must never: mock the file system, or leave anything behind outside its own temp directory.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createDeliverToMaildir, deliverToMaildir } from '../../src/deliver/maildir.ts';
import { checkQuota, installSizeFile, scanUsage, sharedRecalculations } from '../../src/deliver/quota.ts';
import type { Quota } from '../../src/directory/types.ts';
import { MailError } from '../../src/mail.ts';

const HEADER = 'Return-Path: <a@example.org>\r\nDelivered-To: frank@example.org\r\n';
const FRANK: Quota = { bytes: 1048576, count: 1000 };
let base: string;
let seq = 0;

before(async () => { base = await fs.mkdtemp(path.join(os.tmpdir(), 'ldapmta-quota-')); });
after(async () => fs.rm(base, { recursive: true, force: true }));

/** A fresh Maildir with `files` (path below the Maildir → content) and optionally a maildirsize. */
async function maildir(files: Record<string, string> = {}, sizeFile?: string): Promise<string> {
  const dir = path.join(base, `box${++seq}`) + '/';
  for (const sub of ['tmp', 'new', 'cur']) await fs.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  if (sizeFile !== undefined) await fs.writeFile(path.join(dir, 'maildirsize'), sizeFile);
  return dir;
}

/** Delivers a message of exactly `size` bytes (queued size, CRLF-free so nothing shrinks). */
function deliver(dir: string, quota: Quota, size: number) {
  const text = `Subject: t\n\n${'x'.repeat(Math.max(0, size - 13))}\n`.slice(0, size);
  return deliverToMaildir({ maildir: dir, base, quota, header: HEADER, size }, Readable.from([Buffer.from(text)]));
}

const sizeFile = (dir: string) => fs.readFile(path.join(dir, 'maildirsize'), 'utf8');

async function rejectsFull(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof MailError && err.kind === 'temporary' && err.status === '4.2.2');
}

/** 300 messages whose names say 1 046 000 bytes, as frank's mailbox in the reference. */
function frankFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 300; i++) files[`cur/1700000000.M${i}P1Q${i}.host,S=${i === 0 ? 1046000 - 299 * 3486 : 3486}:2,S`] = '';
  return files;
}

test('frank: 2000 bytes fit and append the stored size; 4000 more are over, recalculated, still over → 4.2.2', async () => {
  const dir = await maildir(frankFiles(), '1048576S,1000C\n1046000 300\n');
  const first = await deliver(dir, FRANK, 2000);
  assert.equal(first.bytes, 2000 + HEADER.length - 2);
  assert.equal(await sizeFile(dir), `1048576S,1000C\n1046000 300\n${first.bytes} 1\n`);
  await rejectsFull(deliver(dir, FRANK, 4000));
  assert.equal(await sizeFile(dir), `1048576S,1000C\n${1046000 + first.bytes} 301\n`, 'recalculated from the files');
  assert.equal((await fs.readdir(path.join(dir, 'new'))).length, 1);
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
});

test('a stale, over-quota maildirsize is recalculated from the files and the message delivered', async () => {
  const dir = await maildir({}, '1048576S,1000C\n1046000 300\n10 1\n');
  const result = await deliver(dir, FRANK, 4000);
  assert.equal(await sizeFile(dir), `1048576S,1000C\n0 0\n${result.bytes} 1\n`);
});

test('over by a two-line file: no recalculation while it is younger than 900 s, one after', async () => {
  const dir = await maildir({}, '1000S\n900 1\n');
  await rejectsFull(deliver(dir, { bytes: 1000, count: null }, 200));
  assert.equal(await sizeFile(dir), '1000S\n900 1\n');
  const old = new Date(Date.now() - 901_000);
  await fs.utimes(path.join(dir, 'maildirsize'), old, old);
  await deliver(dir, { bytes: 1000, count: null }, 200);
  assert.match(await sizeFile(dir), /^1000S\n0 0\n\d+ 1\n$/);
});

test('a missing maildirsize is recalculated from the files: ,S= names, stat() for the rest', async () => {
  const dir = await maildir({ 'new/1.M1P1Q1.h,S=300': '', 'cur/2.M1P1Q1.h:2,S': 'x'.repeat(123), 'cur/3.M1P1Q1.h,S=77:2,RS': '' });
  const result = await deliver(dir, { bytes: 10_000, count: 50 }, 100);
  assert.equal(await sizeFile(dir), `10000S,50C\n500 3\n${result.bytes} 1\n`);
});

test('a definition that differs from the directory\'s limits triggers a recalculation', async () => {
  const dir = await maildir({ 'cur/1.M1P1Q1.h,S=40:2,S': '' }, '500S\n450 9\n');
  const result = await deliver(dir, { bytes: 1000, count: null }, 100);
  assert.equal(await sizeFile(dir), `1000S\n40 1\n${result.bytes} 1\n`);
});

test('a maildirsize of 5120 bytes or more is recalculated', async () => {
  const dir = await maildir({}, `1000S\n${'1 0\n'.repeat(1280)}`);
  const result = await deliver(dir, { bytes: 1000, count: null }, 100);
  assert.equal(await sizeFile(dir), `1000S\n0 0\n${result.bytes} 1\n`);
});

test('padded and negative lines are summed without recalculation', async () => {
  const dir = await maildir({ 'cur/1.M1P1Q1.h,S=999:2,S': '' }, '1000S\n   900     1\n  -800    -1\n');
  const result = await deliver(dir, { bytes: 1000, count: null }, 300);
  assert.equal(await sizeFile(dir), `1000S\n   900     1\n  -800    -1\n${result.bytes} 1\n`);
});

test('the count limit: two messages fit in 2C, the third is 4.2.2', async () => {
  const dir = await maildir();
  await deliver(dir, { bytes: null, count: 2 }, 50);
  await deliver(dir, { bytes: null, count: 2 }, 50);
  await rejectsFull(deliver(dir, { bytes: null, count: 2 }, 50));
  assert.equal((await fs.readdir(path.join(dir, 'new'))).length, 2);
});

test('T-flagged messages, .Trash, dot files and folder symlinks are not counted; other folders are', async () => {
  const dir = await maildir({
    'cur/1.M1P1Q1.h,S=100:2,S': '',
    'cur/2.M1P1Q1.h,S=5000:2,ST': '',
    'new/.hidden,S=5000': '',
    '.Trash/cur/3.M1P1Q1.h,S=5000:2,S': '',
    '.Sent/cur/4.M1P1Q1.h,S=20:2,S': '',
    '.Sent/new/5.M1P1Q1.h,S=3': '',
    '.Sent/maildirfolder': '',
  });
  await fs.symlink(path.join(dir, '.Trash'), path.join(dir, '.Linked'));
  assert.deepEqual((await scanUsage(dir)).usage, { bytes: 123, count: 3 });
  await deliver(dir, { bytes: 1000, count: null }, 877);
  assert.match(await sizeFile(dir), /^1000S\n123 3\n\d+ 1\n$/);
});

test('no quota in either dimension: no maildirsize work at all', async () => {
  const dir = await maildir({}, 'garbage that would fail a parse\n');
  await deliver(dir, { bytes: null, count: null }, 100);
  assert.equal(await sizeFile(dir), 'garbage that would fail a parse\n');
  const fresh = await maildir();
  await deliver(fresh, { bytes: 0, count: 0 }, 100);
  await assert.rejects(sizeFile(fresh));
});

test('a recalculation that races with a directory change is discarded', async () => {
  const dir = await maildir({ 'cur/1.M1P1Q1.h,S=10:2,S': '' });
  const scan = await scanUsage(dir);
  const stale = { ...scan, dirs: scan.dirs.map(([d, m]): [string, number] => [d, m - 1]) };
  assert.equal(await installSizeFile(dir, { bytes: 100, count: null }, stale), false);
  await assert.rejects(sizeFile(dir));
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
  assert.equal(await installSizeFile(dir, { bytes: 100, count: null }, scan), true);
  assert.equal(await sizeFile(dir), '100S\n10 1\n');
});

test('checkQuota: never writes; a missing Maildir is empty', async () => {
  const missing = path.join(base, 'nobody') + '/';
  assert.equal(await checkQuota(missing, { bytes: 1000, count: 5 }, 1000), 'ok');
  assert.equal(await checkQuota(missing, { bytes: 1000, count: 5 }, 1001), 'over');
  await assert.rejects(fs.stat(missing));

  const dir = await maildir(frankFiles(), '1048576S,1000C\n1046000 300\n');
  assert.equal(await checkQuota(dir, FRANK, 2576), 'ok');
  assert.equal(await checkQuota(dir, FRANK, 2577), 'over');
  assert.equal(await checkQuota(dir, { bytes: null, count: 300 }, 0), 'over', 'recalculated (definition differs), not written');
  assert.equal(await checkQuota(dir, { bytes: null, count: 301 }, 0), 'ok');
  assert.equal(await checkQuota(dir, { bytes: null, count: null }, 10 ** 12), 'ok');
  assert.equal(await sizeFile(dir), '1048576S,1000C\n1046000 300\n');
  assert.deepEqual(await fs.readdir(path.join(dir, 'tmp')), []);
});

test('sharedRecalculations: concurrent work for one key runs once and all get its result; a later call runs again', async () => {
  const shared = sharedRecalculations();
  let runs = 0;
  const work = async () => {
    runs++;
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { bytes: runs, count: 1 };
  };
  const results = await Promise.all(Array.from({ length: 10 }, () => shared.share('a', work)));
  assert.equal(runs, 1);
  assert.ok(results.every((r) => r === results[0]));
  const other = await shared.share('b', work);
  assert.equal(other.bytes, 2);
  assert.equal((await shared.share('a', work)).bytes, 3, 'a finished recalculation is not reused');
  await assert.rejects(Promise.all([shared.share('c', async () => { throw new Error('disk'); }), shared.share('c', work)]), /disk/);
});

test('30 concurrent deliveries to a Maildir whose maildirsize must be recalculated: one shared scan, all delivered, the file adds up', async () => {
  // 5120 bytes or more: every one of them would rescan the Maildir and race the others' files.
  const dir = await maildir({ 'cur/1.M1P1Q1.h,S=500:2,S': 'x'.repeat(500) }, `100000S,1000C\n${'1 0\n'.repeat(1280)}`);
  const shared = sharedRecalculations();
  let scans = 0;
  const agent = createDeliverToMaildir({ recalculations: { share: (key, work) => shared.share(key, () => { scans++; return work(); }) } });
  const quota = { bytes: 100_000, count: 1000 };
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => agent(
    { maildir: dir, base, quota, header: HEADER, size: 200 },
    Readable.from([Buffer.from(`Subject: ${i}\n\n${'y'.repeat(180)}\n`)]))));
  assert.equal(results.length, 30);
  assert.equal(scans, 1, 'recalculations run');
  assert.equal((await fs.readdir(path.join(dir, 'new'))).length, 30);
  const lines = (await sizeFile(dir)).trimEnd().split('\n');
  assert.equal(lines[0], '100000S,1000C');
  const sum = lines.slice(1).map((l) => l.trim().split(/\s+/).map(Number)).reduce((a, [b, c]) => [a[0]! + b!, a[1]! + c!], [0, 0]);
  const stored = results.reduce((n, r) => n + r.bytes, 0);
  assert.deepEqual(sum, [500 + stored, 31], `maildirsize:\n${lines.join('\n')}`);
});
