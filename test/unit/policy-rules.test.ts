// The RCPT-time rules and the route plan as tables: relaying, local domains, what each directory
// answer means at RCPT and where each copy goes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MailboxResolution, Resolution } from '../../src/directory/types.ts';
import { isLocalDomain, mayRelay, recipientVerdict, trustedNetworks } from '../../src/policy/rules.ts';
import { planDelivery } from '../../src/route/plan.ts';

const trusted = trustedNetworks(['127.0.0.0/8', '10.1.0.0/16', '::1/128', '2001:db8::/32']);

test('relaying: trusted networks (v4, v6, v4-mapped) or an authenticated user, nobody else', () => {
  const rows: [string, string | null, boolean][] = [
    ['127.0.0.1', null, true], ['10.1.2.3', null, true], ['10.2.0.1', null, false], ['::1', null, true],
    ['2001:db8::5', null, true], ['::ffff:127.0.0.1', null, true], ['192.0.2.1', null, false],
    ['192.0.2.1', 'alice', true], ['not-an-ip', null, false],
  ];
  for (const [ip, user, expected] of rows) assert.equal(mayRelay(ip, user, trusted), expected, `${ip} ${user}`);
});

test('network lists: the same answer however often asked, any form of the address; an empty list holds nothing', () => {
  for (let round = 0; round < 3; round++) { // answers are remembered per address after the first
    assert.equal(trusted.has('10.1.200.7'), true);
    assert.equal(trusted.has('10.2.0.1'), false);
    assert.equal(trusted.has('::FFFF:10.1.0.1'), true);
    assert.equal(trusted.has('fe80::1%eth0'), false);
    assert.equal(trusted.has('2001:DB8::9'), true);
    assert.equal(trusted.has(''), false);
  }
  const none = trustedNetworks([]);
  for (const ip of ['127.0.0.1', '::1', '0.0.0.0']) assert.equal(none.has(ip), false);
  assert.equal(trustedNetworks(['not-a-cidr', '192.0.2.0/24']).has('192.0.2.200'), true);
});

test('local domains: listed names only, trailing dot tolerated, address literals never', () => {
  const local = new Set(['example.org']);
  assert.equal(isLocalDomain('example.org', local), true);
  assert.equal(isLocalDomain('example.org.', local), true);
  assert.equal(isLocalDomain('sub.example.org', local), false);
  assert.equal(isLocalDomain('[127.0.0.1]', local), false);
});

const mailbox: MailboxResolution = {
  kind: 'mailbox', dn: 'uid=a', address: 'a@example.org', matched: 'a@example.org', extension: null, addresses: ['a@example.org'],
  accountStatus: 'active', mailHost: null, local: true, sizeMax: 1000, mailbox: '/var/mail/a/', quota: { bytes: null, count: null },
  delivery: { local: true, forward: true, program: false, reply: false }, forwards: [], programs: [], replyText: null,
};

test('RCPT verdicts: unknown 550 5.1.1, rejects keep their status, size over mailSizeMax 552 5.2.3, moderated lists 5.7.2', () => {
  const verdict = (r: Resolution, size: number | null = null) => {
    const e = recipientVerdict(r, size);
    return e === null ? 'ok' : `${e.reply} ${e.status}`;
  };
  assert.equal(verdict({ kind: 'unknown', tried: [] }), '550 5.1.1');
  assert.equal(verdict({ kind: 'reject', dn: 'x', matched: 'x', status: '5.2.1', reason: 'disabled' }), '550 5.2.1');
  assert.equal(verdict(mailbox), 'ok');
  assert.equal(verdict(mailbox, 1000), 'ok');
  assert.equal(verdict(mailbox, 1001), '552 5.2.3');
  const group = {
    ...mailbox, kind: 'group' as const, mailbox: null, members: { dn: [], rfc822: [], filter: [] }, senders: { dn: [], rfc822: [], filter: [] },
    moderators: { dn: [], rfc822: ['mod@example.org'] }, membersOnly: false, senderConfirm: false, bounceAdmin: [],
  };
  assert.equal(verdict(group), '550 5.7.2');
  assert.equal(verdict({ ...group, moderators: { dn: [], rfc822: [] } }), 'ok');
});

test('plans: mailbox copy and forwards per deliveryMode, other node by mailHost, failures carry their status', () => {
  const to = (r: Resolution) => planDelivery(r).map((p) => (p.to === 'fail' ? `fail ${p.error.status}` : p.to)).join(' ');
  assert.equal(to(mailbox), 'maildir');
  assert.equal(to({ ...mailbox, forwards: ['x@y.test'] }), 'maildir forward');
  assert.equal(to({ ...mailbox, forwards: ['x@y.test'], delivery: { ...mailbox.delivery, local: false } }), 'forward');
  assert.equal(to({ ...mailbox, forwards: ['x@y.test'], delivery: { ...mailbox.delivery, forward: false } }), 'maildir');
  assert.equal(to({ ...mailbox, delivery: { local: false, forward: false, program: false, reply: false } }), 'drop');
  assert.equal(to({ ...mailbox, local: false, mailHost: 'mx2.example.org' }), 'smtp');
  assert.equal(to({ ...mailbox, kind: 'forward', forwards: ['c@elsewhere.test'] } as Resolution), 'forward');
  assert.equal(to({ kind: 'unknown', tried: [] }), 'fail 5.1.1');
  assert.equal(to({ kind: 'reject', dn: 'x', matched: 'x', status: '5.2.1', reason: 'disabled' }), 'fail 5.2.1');
});
