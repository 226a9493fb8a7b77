// The auto-reply rules (route/autoreply.ts), one line each, the reply's format, and the disk memory's sweep.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { diskReplyMemory, SWEEP_EVERY, sweepReplyDir } from '../../src/deliver/reply-memory.ts';
import { waitFor } from '../fixtures/smtp-helpers.ts';
import { composeReply, replyKey, whyNoReply } from '../../src/route/autoreply.ts';
import { parseAddress } from '../../src/mail.ts';

const erin = parseAddress('erin@example.org');
const ask = (sender: string | null, fields: Record<string, string[]>, onlyWhenAddressed = true) => whyNoReply({
  sender: sender === null ? null : parseAddress(sender), recipient: erin, addresses: ['erin@example.org', 'shared@example.org'],
  fields: new Map(Object.entries({ to: ['erin@example.org'], ...fields })), onlyWhenAddressed,
});

const rules: [string, string | null, Record<string, string[]>, string | null][] = [
  ['an ordinary message', 'fan@sender.test', {}, null],
  ['the null sender', null, {}, 'null sender'],
  ['MAILER-DAEMON', 'MAILER-DAEMON@sender.test', {}, 'machine sender'],
  ['a -request address', 'list-request@sender.test', {}, 'machine sender'],
  ['an owner- address', 'owner-list@sender.test', {}, 'machine sender'],
  ['postmaster', 'postmaster@sender.test', {}, 'machine sender'],
  ['the user writing to herself (an alternate address)', 'shared@example.org', {}, 'sender is the recipient'],
  ['Auto-Submitted: auto-replied', 'fan@sender.test', { 'auto-submitted': ['auto-replied'] }, 'Auto-Submitted'],
  ['Auto-Submitted: no (a person)', 'fan@sender.test', { 'auto-submitted': ['no'] }, null],
  ['Precedence: list', 'fan@sender.test', { precedence: ['List'] }, 'Precedence'],
  ['Precedence: first-class', 'fan@sender.test', { precedence: ['first-class'] }, null],
  ['List-Unsubscribe', 'fan@sender.test', { 'list-unsubscribe': ['<mailto:x@y>'] }, 'list-unsubscribe'],
  ['X-Spam-Status: Yes', 'fan@sender.test', { 'x-spam-status': ['Yes, score=9'] }, 'X-Spam-Status'],
  ['only in Bcc', 'fan@sender.test', { to: ['someone@else.test'] }, 'not addressed in To or Cc'],
  ['only a longer address that ends in hers (jimerin@)', 'fan@sender.test', { to: ['jimerin@example.org'] }, 'not addressed in To or Cc'],
  ['in Cc by an alternate address', 'fan@sender.test', { to: ['a@b.test'], cc: ['"Shared" <Shared@Example.org>'.toLowerCase()] }, null],
];
for (const [what, sender, fields, expected] of rules) {
  test(`auto-reply rule: ${what} → ${expected ?? 'reply'}`, () => assert.equal(ask(sender, fields), expected));
}

test('only-when-addressed can be turned off', () => {
  assert.equal(ask('fan@sender.test', { to: ['someone@else.test'] }, false), null);
});

test('the memory key changes with the sender and with the reply text, not with case', () => {
  const a = replyKey('uid=erin', parseAddress('fan@sender.test'), 'away');
  assert.equal(a, replyKey('UID=erin', parseAddress('FAN@SENDER.TEST'), 'away'));
  assert.notEqual(a, replyKey('uid=erin', parseAddress('other@sender.test'), 'away'));
  assert.notEqual(a, replyKey('uid=erin', parseAddress('fan@sender.test'), 'back on Monday'));
});

test('the reply: %HEADER% fields the user may set, forced fields, CRLF, no header injection', () => {
  const bytes = composeReply({
    from: erin, to: parseAddress('fan@sender.test'), hostname: 'mx1.example.org', now: new Date(0), unique: 'u1',
    text: '%HEADER%\nSubject: Away: %SUBJECT%\nTo: evil@x.test\nBcc: evil@x.test\nX-Note: kept\n\nI am away.\n.dot line',
    fields: new Map([['subject', ['Lunch?\r\nBcc: injected@x.test']], ['message-id', ['<m1@sender.test>']]]),
  }).toString();
  const [head, body] = bytes.split('\r\n\r\n');
  assert.match(head!, /^Subject: Away: Lunch\? Bcc: injected@x\.test$/m, 'the original subject is kept on one line');
  assert.match(head!, /^To: <fan@sender\.test>$/m);
  assert.doesNotMatch(head!, /^Bcc:/m);
  assert.doesNotMatch(head!, /evil/);
  assert.match(head!, /^X-Note: kept$/m);
  assert.match(head!, /^Auto-Submitted: auto-replied$/m);
  assert.match(head!, /^In-Reply-To: <m1@sender\.test>$/m);
  assert.equal(body, 'I am away.\r\n.dot line\r\n');
});

test('without %HEADER% the subject is "[Auto-Reply] <original>", or "Your Mail" when there was none', () => {
  const reply = (subject: string[]) => composeReply({ from: erin, to: parseAddress('a@b.test'), hostname: 'h', now: new Date(0), unique: 'u', text: 'away', fields: new Map([['subject', subject]]) }).toString();
  assert.match(reply(['Hello']), /^Subject: \[Auto-Reply\] Hello\r$/m);
  assert.match(reply([]), /^Subject: \[Auto-Reply\] Your Mail\r$/m);
});

test('the address the mail was sent to counts as addressed (an extension address)', () => {
  const why = whyNoReply({
    sender: parseAddress('fan@sender.test'), recipient: parseAddress('erin-lists@example.org'), addresses: ['erin@example.org'],
    fields: new Map([['to', ['Erin <erin-lists@example.org>']]]), onlyWhenAddressed: true,
  });
  assert.equal(why, null);
});

test('disk reply memory: files older than the period are swept a fan-out directory at a time, younger ones kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reply-memory-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let now = 1_000_000_000_000;
  const memory = diskReplyMemory(dir, () => now);
  const day = 86_400_000;
  const key = (n: number) => `00${n.toString(16).padStart(62, '0')}`;
  assert.equal(await memory.claim(key(1), day), true);
  assert.equal(await memory.claim(key(1), day), false, 'remembered within the period');
  now += 2 * day;
  assert.equal(await memory.claim(key(2), day), true);
  assert.equal(await sweepReplyDir(join(dir, '00'), day, now), 1, 'the expired one goes');
  assert.deepEqual(readdirSync(join(dir, '00')), [key(2)]);
  // Claims trigger the sweep on their own: directory "00" comes first, after SWEEP_EVERY claims.
  now += 2 * day;
  for (let i = 0; i < SWEEP_EVERY; i++) await memory.claim(`ff${i.toString(16).padStart(62, '0')}`, day);
  await waitFor('the sweep of 00', async () => (readdirSync(join(dir, '00')).length === 0 ? true : null), 2000);
});
