// What the shared cache keeps of a resolution, and how each node reads it back: the mailbox
// relative to the mail base, `local` decided from the node's own names (directory/index.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forThisNode, portable } from '../../src/directory/index.ts';
import type { MailboxResolution, Resolution } from '../../src/directory/types.ts';

const judy: MailboxResolution = {
  kind: 'mailbox', dn: 'uid=judy', address: 'judy@example.org', matched: 'judy@example.org', extension: null, addresses: ['judy@example.org'],
  accountStatus: 'active', mailHost: 'mx2.example.org', local: false, sizeMax: null, mailbox: '/srv/mx1/mail/example.org/judy/',
  quota: { bytes: null, count: null }, delivery: { local: true, forward: true, program: false, reply: false }, forwards: [], programs: [], replyText: null,
};

test('a mailbox below the base is cached relative to it and read back below each node\'s own base', () => {
  const cached = portable(judy, '/srv/mx1/mail');
  assert.equal((cached as MailboxResolution).mailbox, 'example.org/judy/');
  const onMx2 = forThisNode(cached, new Set(['mx2.example.org']), '/srv/mx2/mail/') as MailboxResolution;
  assert.equal(onMx2.mailbox, '/srv/mx2/mail/example.org/judy/');
  assert.equal(onMx2.local, true, 'mx2 is judy\'s home');
  const onMx1 = forThisNode(cached, new Set(['mx1.example.org']), '/srv/mx1/mail') as MailboxResolution;
  assert.equal(onMx1.mailbox, judy.mailbox);
  assert.equal(onMx1.local, false);
});

test('a mailbox outside the base stays absolute (delivery refuses it on every node)', () => {
  const outside = { ...judy, mailbox: '/elsewhere/judy/' };
  assert.equal((portable(outside, '/srv/mx1/mail') as MailboxResolution).mailbox, '/elsewhere/judy/');
  assert.equal((forThisNode(outside, new Set(['mx2.example.org']), '/srv/mx2/mail') as MailboxResolution).mailbox, '/elsewhere/judy/');
  assert.equal((portable({ ...judy, mailbox: '/srv/mx1/mailx/judy/' }, '/srv/mx1/mail') as MailboxResolution).mailbox, '/srv/mx1/mailx/judy/', 'a sibling with the base as a string prefix');
});

test('no mailHost is local everywhere; unknown and reject answers pass through unchanged', () => {
  const anywhere = forThisNode({ ...judy, mailHost: null, local: false }, new Set(['mx9.example.org']), '/m');
  assert.equal((anywhere as MailboxResolution).local, true);
  const unknown: Resolution = { kind: 'unknown', tried: ['x@example.org'] };
  assert.equal(forThisNode(unknown, new Set(), '/m'), unknown);
  assert.equal(portable(unknown, '/m'), unknown);
});
