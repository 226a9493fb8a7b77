// The next hop of a copy as tables: MX or smarthost for other domains, another cluster node for a
// mailbox whose mailHost is elsewhere, the grouping key of each hop, and the loop's pure helpers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasEightBit, parseSmarthost } from '../../src/deliver/index.ts';
import type { MailboxResolution, Resolution } from '../../src/directory/types.ts';
import { type Hop, hopKey, type Plan, planDelivery, planRemote } from '../../src/route/plan.ts';

test('planRemote: without a smarthost, the recipient domain\'s MX', () => {
  assert.deepEqual(planRemote('example.net', null), { to: 'smtp', hop: { via: 'mx', domain: 'example.net' } });
});

test('planRemote: with a smarthost, the smarthost whatever the domain, its port kept', () => {
  const rows: [domain: string, smarthost: { host: string; port: number | null }, expected: Hop][] = [
    ['example.net', { host: 'relay.test', port: null }, { via: 'smarthost', host: 'relay.test', port: null }],
    ['example.com', { host: 'relay.test', port: 2525 }, { via: 'smarthost', host: 'relay.test', port: 2525 }],
    ['example.com', { host: '10.0.0.1', port: 587 }, { via: 'smarthost', host: '10.0.0.1', port: 587 }],
  ];
  for (const [domain, smarthost, hop] of rows) assert.deepEqual(planRemote(domain, smarthost), { to: 'smtp', hop }, `${domain} ${smarthost.host}`);
});

test('hopKey: one key per via, domain, host and port', () => {
  const hops: Hop[] = [
    { via: 'mx', domain: 'example.net' }, { via: 'mx', domain: 'example.com' }, { via: 'mx', domain: 'relay.test' },
    { via: 'smarthost', host: 'relay.test', port: null }, { via: 'smarthost', host: 'relay.test', port: 25 },
    { via: 'smarthost', host: 'relay.test', port: 2525 }, { via: 'smarthost', host: 'relay2.test', port: null },
    { via: 'cluster', host: 'relay.test' }, { via: 'cluster', host: 'mx2.example.org' }, { via: 'cluster', host: 'mx3.example.org' },
  ];
  const keys = hops.map(hopKey);
  assert.equal(new Set(keys).size, hops.length, keys.join(' '));
});

test('hopKey: the same hop gives the same key, so its recipients share one transaction', () => {
  assert.equal(hopKey(planHop(planRemote('example.net', null))), hopKey({ via: 'mx', domain: 'example.net' }));
  assert.equal(hopKey(planHop(planRemote('example.net', { host: 'relay.test', port: 25 }))),
    hopKey(planHop(planRemote('example.com', { host: 'relay.test', port: 25 }))));
  assert.equal(hopKey({ via: 'cluster', host: 'mx2.example.org' }), hopKey({ via: 'cluster', host: 'mx2.example.org' }));
});

function planHop(plan: Plan): Hop {
  if (plan.to !== 'smtp') assert.fail(`expected an smtp plan, got ${plan.to}`);
  return plan.hop;
}

const mailbox: MailboxResolution = {
  kind: 'mailbox', dn: 'uid=a', address: 'a@example.org', matched: 'a@example.org', extension: null, addresses: ['a@example.org'],
  accountStatus: 'active', mailHost: null, local: true, sizeMax: 1000, mailbox: '/var/mail/a/', quota: { bytes: null, count: null },
  delivery: { local: true, forward: true, program: false, reply: false }, forwards: [], programs: [], replyText: null,
};

test('planDelivery: a mailbox on another node goes there as one cluster hop, its forwards left to the owner', () => {
  const rows: [name: string, resolution: Resolution][] = [
    ['plain', { ...mailbox, local: false, mailHost: 'mx2.example.org' }],
    ['with forwards', { ...mailbox, local: false, mailHost: 'mx2.example.org', forwards: ['x@y.test'] }],
    ['with local delivery off', { ...mailbox, local: false, mailHost: 'mx2.example.org', delivery: { ...mailbox.delivery, local: false } }],
  ];
  for (const [name, resolution] of rows) {
    assert.deepEqual(planDelivery(resolution), [{ to: 'smtp', hop: { via: 'cluster', host: 'mx2.example.org' } }], name);
  }
});

test('planDelivery: a mailHost naming this node delivers here', () => {
  const plans = planDelivery({ ...mailbox, local: true, mailHost: 'mx1.example.org' });
  assert.deepEqual(plans, [{ to: 'maildir', maildir: '/var/mail/a/', quota: { bytes: null, count: null }, sizeMax: 1000 }]);
});

const smarthosts: [text: string, expected: ReturnType<typeof parseSmarthost>][] = [
  ['', null],
  ['relay.test', { host: 'relay.test', port: null }],
  ['relay.test:2525', { host: 'relay.test', port: 2525 }],
  ['[10.0.0.1]:587', { host: '10.0.0.1', port: 587 }],
  ['[10.0.0.1]', { host: '10.0.0.1', port: null }],
  ['10.0.0.1:25', { host: '10.0.0.1', port: 25 }],
  ['[2001:db8::1]:25', { host: '2001:db8::1', port: 25 }],
];

for (const [text, expected] of smarthosts) {
  test(`parseSmarthost: ${JSON.stringify(text)} → ${expected === null ? 'none' : `${expected.host} port ${expected.port ?? 'default'}`}`, () => {
    assert.deepEqual(parseSmarthost(text), expected);
  });
}

const eightBit: [name: string, data: Buffer, expected: boolean][] = [
  ['empty', Buffer.alloc(0), false],
  ['ASCII text', Buffer.from('Subject: hi\r\n\r\nhello\r\n'), false],
  ['every 7-bit byte, controls and DEL included', Buffer.from(Array.from({ length: 128 }, (_, i) => i)), false],
  ['0x80', Buffer.from([0x41, 0x80, 0x41]), true],
  ['0xff', Buffer.from([0xff]), true],
  ['UTF-8 text', Buffer.from('Grüße\r\n'), true],
  ['one 8-bit byte at the end of a long body', Buffer.concat([Buffer.alloc(100_000, 0x61), Buffer.from([0xe9])]), true],
];

for (const [name, data, expected] of eightBit) {
  test(`hasEightBit: ${name} → ${expected}`, () => {
    assert.equal(hasEightBit(data), expected);
  });
}

// The reference's §3.5 combination table at the plan level: which instructions run, in qmail-local's
// order (reply, programs, mailbox, forwards last). Flags as deliveryFlags gives them for each mode.
const withAll: MailboxResolution = { ...mailbox, forwards: ['f@elsewhere.test'], programs: ['/usr/bin/filter'], replyText: 'away' };
const flags = (local: boolean, forward: boolean, program: boolean, reply: boolean) => ({ ...withAll, delivery: { local, forward, program, reply } });
const combinations: [modes: string, resolution: Resolution, plans: string][] = [
  ['(none), ldaponly', flags(true, true, false, false), 'maildir forward'],
  ['(none), ldapwithprog', flags(true, true, true, false), 'program maildir forward'],
  ['noforward', flags(true, false, false, false), 'maildir'],
  ['nolocal', flags(false, true, false, false), 'forward'],
  ['nolocal noforward', flags(false, false, false, false), 'drop'],
  ['nolocal noforward, ldapwithprog', flags(false, false, true, false), 'program'],
  ['reply', flags(true, true, false, true), 'reply maildir forward'],
  ['reply nolocal', flags(false, true, false, true), 'reply forward'],
  ['reply nolocal noforward', flags(false, false, false, true), 'reply drop'],
  ['noprogram, ldapwithprog', flags(true, true, false, false), 'maildir forward'],
  ['reply without mailReplyText', { ...flags(true, false, false, true), replyText: null }, 'maildir'],
  ['forwards on but none listed', { ...flags(true, true, false, false), forwards: [] }, 'maildir'],
  ['forward-only entry', { kind: 'forward', dn: 'uid=f', address: 'f@example.org', matched: 'f@example.org', extension: null, addresses: ['f@example.org'],
    accountStatus: 'active', mailHost: null, local: true, sizeMax: null, forwards: ['x@elsewhere.test'] }, 'forward'],
  ['unknown', { kind: 'unknown', tried: ['x@example.org'] }, 'fail 5.1.1'],
  ['disabled', { kind: 'reject', dn: 'uid=g', matched: 'g@example.org', status: '5.2.1', reason: 'disabled' }, 'fail 5.2.1'],
];
for (const [modes, resolution, expected] of combinations) {
  test(`planDelivery: ${modes} → ${expected}`, () => {
    const plans = planDelivery(resolution).map((p) => (p.to === 'fail' ? `fail ${p.error.status}` : p.to)).join(' ');
    assert.equal(plans, expected);
  });
}
