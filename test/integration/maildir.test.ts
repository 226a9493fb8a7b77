// Owns: proof on real temp directories that deliverToMaildir writes one safe, durable file per message.
// Must never: mock the file system, or leave anything behind outside its own temp directories.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { deliverToMaildir, sweepTmp } from '../../src/deliver/maildir.ts';
import type { MaildirDelivery } from '../../src/deliver/types.ts';
import { MailError } from '../../src/mail.ts';

const NO_QUOTA = { bytes: null, count: null };
let scratch: string;
let base: string;
let outside: string;

before(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'ldapmta-maildir-'));
  base = path.join(scratch, 'mail');
  outside = path.join(scratch, 'outside');
  await fs.mkdir(base);
  await fs.mkdir(outside);
});
after(async () => fs.rm(scratch, { recursive: true, force: true }));

const delivery = (maildir: string, extra: Partial<MaildirDelivery> = {}): MaildirDelivery =>
  ({ maildir, base, quota: NO_QUOTA, header: 'Return-Path: <a@example.org>\r\nDelivered-To: b@example.org\r\n', size: 100, ...extra });

const body = (text: string): Readable => Readable.from([Buffer.from(text)]);

async function rejects(promise: Promise<unknown>, kind: 'temporary' | 'permanent', status: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MailError, String(err));
    assert.equal(err.kind, kind);
    assert.equal(err.status, status);
    return true;
  });
}

const list = async (dir: string): Promise<string[]> => fs.readdir(dir).catch(() => []);

describe('delivery', () => {
  test('creates the Maildir on first delivery and writes one LF file in new/ with the right ,S=', async () => {
    const maildir = path.join(base, 'example.org', 'alice') + '/';
    const result = await deliverToMaildir(delivery(maildir), Readable.from([Buffer.from('Subject: hi\r\n\r\nline one\r'), Buffer.from('\nline\rtwo\r\n')]));
    const names = await list(path.join(maildir, 'new'));
    assert.equal(names.length, 1);
    assert.equal(result.file, path.join(maildir, 'new', names[0]!));
    assert.match(names[0]!, new RegExp(`^\\d+\\.M\\d+P${process.pid}Q\\d+\\..+,S=${result.bytes},W=\\d+$`));
    const content = await fs.readFile(result.file, 'latin1');
    assert.equal(content, 'Return-Path: <a@example.org>\nDelivered-To: b@example.org\nSubject: hi\n\nline one\nline\rtwo\n');
    assert.equal(result.bytes, Buffer.byteLength(content, 'latin1'));
    assert.equal((await fs.stat(result.file)).size, result.bytes);
    assert.equal((await fs.stat(result.file)).mode & 0o777, 0o600);
    for (const dir of ['example.org', 'example.org/alice', 'example.org/alice/tmp', 'example.org/alice/new', 'example.org/alice/cur']) {
      assert.equal((await fs.stat(path.join(base, dir))).mode & 0o777, 0o700, dir);
    }
    assert.deepEqual(await list(path.join(maildir, 'tmp')), []);
    assert.deepEqual(await list(path.join(maildir, 'cur')), []);
  });

  test('50 concurrent deliveries to one new Maildir all land under unique names', async () => {
    const maildir = path.join(base, 'busy') + '/';
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => deliverToMaildir(delivery(maildir), body(`Subject: ${i}\r\n\r\nbody ${i}\r\n`))));
    const names = await list(path.join(maildir, 'new'));
    assert.equal(names.length, 50);
    assert.equal(new Set(results.map((r) => r.file)).size, 50);
    const bodies = await Promise.all(names.map((n) => fs.readFile(path.join(maildir, 'new', n), 'utf8')));
    assert.deepEqual(new Set(bodies.map((b) => /Subject: (\d+)/.exec(b)?.[1])).size, 50);
    assert.deepEqual(await list(path.join(maildir, 'tmp')), []);
  });

  test('a body stream error, early or midway, leaves nothing in tmp/ or new/ and is temporary', async () => {
    const maildir = path.join(base, 'broken') + '/';
    const early = new Readable({ read() {} });
    setImmediate(() => early.destroy(new Error('queue file vanished')));
    let reads = 0;
    const midway = new Readable({
      read() {
        if (++reads <= 3) this.push(Buffer.from(`Subject: half\r\n\r\n${'x'.repeat(70_000)}\r\n`));
        else this.destroy(new Error('disk read error'));
      },
    });
    for (const failing of [early, midway]) {
      await rejects(deliverToMaildir(delivery(maildir), failing), 'temporary', '4.3.0');
      assert.deepEqual(await list(path.join(maildir, 'tmp')), []);
      assert.deepEqual(await list(path.join(maildir, 'new')), []);
    }
    assert.ok(reads > 3, 'the midway stream was read before it failed');
  });
});

describe('path safety', () => {
  test('a Maildir outside the base is permanent 5.3.5 and nothing is created', async () => {
    const elsewhere = path.join(scratch, 'x') + '/';
    await rejects(deliverToMaildir(delivery(elsewhere), body('x\r\n')), 'permanent', '5.3.5');
    await assert.rejects(fs.stat(elsewhere));
    await rejects(deliverToMaildir(delivery(`${base}/../etc/`), body('x\r\n')), 'permanent', '5.3.5');
    await rejects(deliverToMaildir(delivery(`${base}/alice/../bob/`), body('x\r\n')), 'permanent', '5.3.5');
    await rejects(deliverToMaildir(delivery('relative/'), body('x\r\n')), 'permanent', '5.3.5');
    await rejects(deliverToMaildir(delivery(`${base}/`), body('x\r\n')), 'permanent', '5.3.5');
    assert.deepEqual(await list(path.join(scratch, 'etc')), []);
  });

  test('a symlink inside the base leading outside is permanent 5.3.5 and nothing is written outside', async () => {
    await fs.symlink(outside, path.join(base, 'evil'));
    await rejects(deliverToMaildir(delivery(path.join(base, 'evil') + '/'), body('x\r\n')), 'permanent', '5.3.5');
    await rejects(deliverToMaildir(delivery(path.join(base, 'evil', 'user', 'Maildir') + '/'), body('x\r\n')), 'permanent', '5.3.5');
    assert.deepEqual(await list(outside), []);
  });

  test('tmp/ or new/ planted as a symlink is refused, even one pointing inside the base', async () => {
    for (const sub of ['new', 'tmp']) {
      const maildir = path.join(base, `planted-${sub}`) + '/';
      await deliverToMaildir(delivery(maildir), body('first\r\n'));
      await fs.rm(path.join(maildir, sub), { recursive: true });
      await fs.symlink(sub === 'new' ? outside : path.join(maildir, 'cur'), path.join(maildir, sub));
      await rejects(deliverToMaildir(delivery(maildir), body('second\r\n')), 'permanent', '5.3.5');
    }
    assert.deepEqual(await list(outside), []);
    assert.deepEqual(await list(path.join(base, 'planted-tmp', 'cur')), []);
  });

  test('a dangling symlink is refused and nothing is created at its target', async () => {
    await fs.symlink(path.join(outside, 'later'), path.join(base, 'dangling'));
    await rejects(deliverToMaildir(delivery(path.join(base, 'dangling') + '/'), body('x\r\n')), 'permanent', '5.3.5');
    assert.deepEqual(await list(outside), []);
  });

  test('a symlink that stays inside the base is followed', async () => {
    await fs.mkdir(path.join(base, 'real'), { mode: 0o700 });
    await fs.symlink(path.join(base, 'real'), path.join(base, 'alias'));
    const result = await deliverToMaildir(delivery(path.join(base, 'alias', 'carol') + '/'), body('x\r\n'));
    assert.equal(result.file.startsWith(path.join(base, 'real', 'carol', 'new') + '/'), true);
  });

  test('a file where a directory should be is permanent 5.3.5', async () => {
    await fs.writeFile(path.join(base, 'plainfile'), 'x');
    await rejects(deliverToMaildir(delivery(path.join(base, 'plainfile', 'Maildir') + '/'), body('x\r\n')), 'permanent', '5.3.5');
  });

  test('a missing mail base is temporary (an operator error, the message stays queued)', async () => {
    const gone = path.join(scratch, 'no-base');
    await rejects(deliverToMaildir({ ...delivery(path.join(gone, 'a') + '/'), base: gone }, body('x\r\n')), 'temporary', '4.3.0');
  });
});

describe('tmp/ debris', () => {
  test('sweepTmp removes Maildir-named files older than 36 hours; keeps younger ones, other names, directories and symlinks', async () => {
    const maildir = path.join(base, 'example.org', 'sweep') + '/';
    await deliverToMaildir(delivery(maildir), body('Subject: x\r\n\r\nx\r\n'));
    const tmp = path.join(maildir, 'tmp');
    const old = new Date(Date.now() - 37 * 3600 * 1000);
    const nearly = new Date(Date.now() - 35 * 3600 * 1000);
    const plant = async (name: string, when: Date): Promise<void> => {
      await fs.writeFile(path.join(tmp, name), 'x');
      await fs.utimes(path.join(tmp, name), when, when);
    };
    await plant('1700000000.M1P2Q3.host', old);
    await plant('1700000001.M1P2.otherhost', nearly);
    await plant('@sender@example.net', old); // qmail-ldap's auto-reply stamp: not a message
    await fs.mkdir(path.join(tmp, '1700000002.dir'));
    await fs.utimes(path.join(tmp, '1700000002.dir'), old, old);
    await fs.writeFile(path.join(outside, 'target'), 'not ours');
    await fs.utimes(path.join(outside, 'target'), old, old);
    await fs.symlink(path.join(outside, 'target'), path.join(tmp, '1700000003.link'));
    assert.equal(await sweepTmp(maildir), 1);
    assert.deepEqual((await list(tmp)).sort(), ['1700000001.M1P2.otherhost', '1700000002.dir', '1700000003.link', '@sender@example.net']);
    assert.equal(await fs.readFile(path.join(outside, 'target'), 'utf8'), 'not ours');
    assert.equal((await list(path.join(maildir, 'new'))).length, 1);
  });
});
