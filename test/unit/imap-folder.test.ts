// The Maildir side of IMAP: flags in info letters, the uid index (parsing, torn lines, rebuild
// under a new uidvalidity), folder names and LIST patterns, and one Folder on a real temp Maildir.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { lfToCrlf } from '../../src/mailbox/imap/commands/messages.ts';
import { CACHE_FILE, flagsOf, Folder, INDEX_FILE, nameWithFlags, parseIndex, systemFlag } from '../../src/mailbox/imap/folder.ts';
import { canonicalName, FolderRegistry, MailStore, nameProblem, patternRegExp } from '../../src/mailbox/imap/mailstore.ts';

test('flags from info letters, in a fixed order; unknown letters ignored', () => {
  assert.deepEqual(flagsOf('1.M1.h,S=3:2,FRS'), ['\\Seen', '\\Answered', '\\Flagged']);
  assert.deepEqual(flagsOf('1.M1.h,S=3:2,DTPa'), ['\\Deleted', '\\Draft']);
  assert.deepEqual(flagsOf('1.M1.h,S=3'), []);
});

test('a name carries new flags and keeps letters IMAP does not know (P, keywords)', () => {
  assert.equal(nameWithFlags('1.M1.h,S=3:2,Pa', ['\\Seen', '\\Flagged']), '1.M1.h,S=3:2,FPSa');
  assert.equal(nameWithFlags('1.M1.h,S=3', ['\\Deleted']), '1.M1.h,S=3:2,T');
  assert.equal(nameWithFlags('1.M1.h:2,S', []), '1.M1.h:2,');
  assert.equal(systemFlag('\\seen'), '\\Seen');
  assert.equal(systemFlag('$Junk'), null);
  assert.equal(systemFlag('\\Recent'), null);
});

test('the index: header, lines, a torn last line that does not parse ignored, uidnext above every uid', () => {
  const parsed = parseIndex('ldapmta-uidlist 1 1700000000 3\n1 a\n2 b\n7 c\n8 d-torn');
  assert.ok(parsed !== null);
  assert.equal(parsed.uidValidity, 1700000000);
  assert.equal(parsed.uidNext, 9, 'the torn line "8 d-torn" still parses as a line, so 8 is used up');
  assert.deepEqual([...parsed.uids], [['a', 1], ['b', 2], ['c', 7], ['d-torn', 8]]);
  assert.equal(parseIndex('garbage'), null);
  assert.equal(parseIndex('ldapmta-uidlist 1 1 1\n5 x\n1')!.uidNext, 6);
});

test('folder names: INBOX in any case, refused names', () => {
  assert.equal(canonicalName('inbox'), 'INBOX');
  assert.equal(canonicalName('Inbox.Sub'), 'INBOX.Sub');
  assert.equal(canonicalName('Sent'), 'Sent');
  for (const bad of ['', '../x', 'a/b', 'a\\b', '.hidden', 'trailing.', 'a..b', 'x\x01', 'st*r', 'pc%', '&bad']) {
    assert.notEqual(nameProblem(bad), null, bad);
  }
  for (const good of ['Sent', 'Projects.2026', 'Entw&APw-rfe', 'a b', '&-']) assert.equal(nameProblem(good), null, good);
});

test('LIST patterns: * crosses the separator, % does not, INBOX case-insensitive', () => {
  assert.ok(patternRegExp('', '*').test('Projects.2026'));
  assert.ok(patternRegExp('', '%').test('Projects'));
  assert.ok(!patternRegExp('', '%').test('Projects.2026'));
  assert.ok(patternRegExp('Projects.', '%').test('Projects.2026'));
  assert.ok(patternRegExp('', 'inbox').test('INBOX'));
  assert.ok(!patternRegExp('', 'S(e)nt').test('Sent'), 'regex characters are literal');
});

test('LF → CRLF keeps existing CRLF and bytes', () => {
  assert.equal(lfToCrlf(Buffer.from('a\nb\r\nc\n')).toString(), 'a\r\nb\r\nc\r\n');
  assert.equal(lfToCrlf(Buffer.from('no newline')).toString(), 'no newline');
  assert.deepEqual(lfToCrlf(Buffer.from([0xff, 0x0a])), Buffer.from([0xff, 0x0d, 0x0a]));
});

function maildir(): string {
  const root = mkdtempSync(join(tmpdir(), 'imap-folder-'));
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(root, d));
  return root;
}

test('a Folder: uids in delivery order, stable across reopen, new mail gets the next uid, flags and expunge', async (t) => {
  const root = maildir();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'new', '1000.M2P1.h,S=2,W=3'), 'b\n');
  writeFileSync(join(root, 'new', '999.M1P1.h,S=2,W=3'), 'a\n');
  writeFileSync(join(root, 'cur', '1001.M3P1.h,S=2,W=3:2,S'), 'c\n');
  const folder = new Folder(root);
  await folder.open();
  assert.deepEqual(folder.entries.map((e) => [e.uid, e.unique, e.recent]), [[1, '999.M1P1.h', true], [2, '1000.M2P1.h', true], [3, '1001.M3P1.h', false]]);
  assert.deepEqual(readdirSync(join(root, 'new')), [], 'new/ moved to cur/');
  const validity = folder.uidValidity;

  const again = new Folder(root);
  await again.open();
  assert.equal(again.uidValidity, validity);
  assert.deepEqual(again.entries.map((e) => e.uid), [1, 2, 3]);

  const changes: unknown[] = [];
  folder.onChange((c) => changes.push(c));
  writeFileSync(join(root, 'new', '1002.M4P1.h,S=2,W=3'), 'd\n');
  await folder.sync(true);
  assert.deepEqual(folder.entries.map((e) => e.uid), [1, 2, 3, 4]);

  await folder.setFlags([1, 2], 'add', ['\\Seen', '\\Deleted']);
  assert.ok(readdirSync(join(root, 'cur')).includes('999.M1P1.h,S=2,W=3:2,ST'));
  const { uids, bytes } = await folder.expunge([1, 2]);
  assert.deepEqual(uids, [1, 2]);
  assert.equal(bytes, 4);
  assert.deepEqual(folder.entries.map((e) => e.uid), [3, 4]);
  assert.ok(changes.length >= 3, 'listeners told of arrival, flags and expunge');

  // Another process removes a file and renames one: a sync finds both.
  unlinkSync(join(root, 'cur', '1002.M4P1.h,S=2,W=3:2,'));
  await again.sync(true);
  assert.deepEqual(again.entries.map((e) => e.uid), [3]);
});

test('a lost index gets a new uidvalidity; a torn line does not reuse a uid', async (t) => {
  const root = maildir();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'cur', '1.M1.h:2,'), 'x\n');
  const first = new Folder(root);
  await first.open();
  appendFileSync(join(root, INDEX_FILE), '5 half-writ');
  writeFileSync(join(root, 'cur', '2.M2.h:2,'), 'y\n');
  const second = new Folder(root);
  await second.open();
  assert.deepEqual(second.entries.map((e) => e.uid), [1, 6], 'uid 5 was taken by the torn line');
  unlinkSync(join(root, INDEX_FILE));
  await new Promise((r) => setTimeout(r, 1100));
  const third = new Folder(root);
  await third.open();
  assert.notEqual(third.uidValidity, first.uidValidity);
  assert.deepEqual(third.entries.map((e) => e.uid), [1, 2]);
  assert.match(readFileSync(join(root, INDEX_FILE), 'utf8'), /^ldapmta-uidlist 1 \d+ 1\n1 1\.M1\.h\n2 2\.M2\.h\n$/);
});

test('MailStore: special folders on first login, create/rename/delete with children and subscriptions', async (t) => {
  const root = maildir();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const store = new MailStore(root, new FolderRegistry());
  await store.prepare();
  assert.deepEqual(await store.folders(), ['INBOX', 'Drafts', 'Junk', 'Sent', 'Trash']);
  assert.deepEqual([...(await store.subscriptions())].sort(), ['Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
  assert.ok(readdirSync(join(root, '.Sent')).includes('maildirfolder'));
  assert.equal(await store.create('Projects.2026'), true);
  assert.equal(await store.create('Projects'), false, 'the parent was created too');
  await store.subscribe('Projects.2026');
  assert.equal(await store.delete('Projects'), 'children');
  assert.equal(await store.rename('Projects', 'Work'), 'ok');
  assert.deepEqual(await store.folders(), ['INBOX', 'Drafts', 'Junk', 'Sent', 'Trash', 'Work', 'Work.2026']);
  assert.ok((await store.subscriptions()).has('Work.2026'));
  writeFileSync(join(root, 'maildirsize'), '1000S\n0 0\n');
  writeFileSync(join(root, '.Work.2026', 'cur', '1.M1.h,S=10,W=11:2,'), 'x'.repeat(10));
  assert.equal(await store.delete('Work.2026'), 'ok');
  assert.equal(await store.delete('Work.2026'), 'missing');
  assert.match(readFileSync(join(root, 'maildirsize'), 'utf8'), /\n-10 -1\n$/);
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'nothing left behind');
});

test('the per-folder cache: memos saved as JSON lines, read back by a new Folder, torn lines and gone messages ignored', async (t) => {
  const root = maildir();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'cur', '1.M1.h:2,'), 'x\n');
  writeFileSync(join(root, 'cur', '2.M2.h:2,'), 'y\n');
  const folder = new Folder(root);
  await folder.open();
  await folder.loadMemos();
  const [a, b] = folder.entries;
  const memo = folder.memo(a!);
  memo.envelope = '("date" "subject" NIL NIL NIL NIL NIL NIL NIL NIL)';
  folder.memoChanged(a!, memo);
  folder.memo(b!).fields = { from: ['Bob'] };
  folder.memoChanged(b!, folder.memo(b!));
  await folder.saveMemos();
  appendFileSync(join(root, CACHE_FILE), '3.M3.h\t{"envelope":"gone"}\n2.M2.h\t{"sent":5\n');
  folder.dropMemos();

  const again = new Folder(root);
  await again.open();
  await again.loadMemos();
  assert.equal(again.memo(again.entries[0]!).envelope, memo.envelope);
  assert.deepEqual(again.memo(again.entries[1]!), { fields: { from: ['Bob'] } }, 'the torn line changed nothing');
  assert.equal(again.entries.length, 2);
});
