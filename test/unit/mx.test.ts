// MX ordering (RFC 5321 §5.1: lower preference first, equals in random order) and how a DNS error
// becomes a queue decision. Pure: the randomness is injected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dnsFailure, type MxRecord, orderMx, ownHostFailure } from '../../src/deliver/mx.ts';
import { type MailError, permanent } from '../../src/mail.ts';

/** A random() that returns the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => {
    assert.ok(i < values.length, 'random() called more often than there are records');
    return values[i++]!;
  };
}

const names = (records: readonly MxRecord[]) => records.map((r) => r.exchange).join(' ');

// Preferences 5, 10 and 100 also catch a sort that compares them as text.
const records: MxRecord[] = [
  { priority: 10, exchange: 'b1' }, { priority: 100, exchange: 'c' }, { priority: 5, exchange: 'a1' },
  { priority: 10, exchange: 'b2' }, { priority: 5, exchange: 'a2' }, { priority: 10, exchange: 'b3' },
];

test('orderMx: lower preference first, numerically', () => {
  const order = orderMx(records, () => 0.5);
  assert.deepEqual(order.map((r) => r.priority), [5, 5, 10, 10, 10, 100]);
});

test('orderMx: different preferences are ordered whatever random says', () => {
  const distinct: MxRecord[] = [{ priority: 30, exchange: 'z' }, { priority: 20, exchange: 'y' }, { priority: 10, exchange: 'x' }];
  assert.equal(names(orderMx(distinct, sequence(0, 0.5, 0.99))), 'x y z');
  assert.equal(names(orderMx(distinct, sequence(0.99, 0.5, 0))), 'x y z');
});

test('orderMx: equal preferences follow the injected random; two randoms, two orders, groups still in order', () => {
  const first = orderMx(records, sequence(0.1, 0.5, 0.2, 0.3, 0.9, 0.8));
  const second = orderMx(records, sequence(0.9, 0.5, 0.8, 0.7, 0.1, 0.2));
  assert.equal(names(first), 'a1 a2 b1 b2 b3 c');
  assert.equal(names(second), 'a2 a1 b3 b2 b1 c');
  assert.notEqual(names(first), names(second));
  for (const order of [first, second]) assert.deepEqual(order.map((r) => r.priority), [5, 5, 10, 10, 10, 100]);
});

test('orderMx: with Math.random every order keeps the preference groups and the same records', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const order = orderMx(records);
    assert.deepEqual(order.map((r) => r.priority), [5, 5, 10, 10, 10, 100]);
    assert.deepEqual(order.map((r) => r.exchange).sort(), ['a1', 'a2', 'b1', 'b2', 'b3', 'c']);
    seen.add(names(order));
  }
  // 2 × 6 orders are possible; 200 draws that all land on one would mean no shuffling at all.
  assert.ok(seen.size > 1, `${seen.size} distinct orders`);
});

test('orderMx: the input is left as it was', () => {
  const copy = records.map((r) => ({ ...r }));
  orderMx(records, sequence(0.9, 0.8, 0.7, 0.6, 0.5, 0.4));
  assert.deepEqual(records, copy);
});

const failures: [code: string | undefined, kind: 'permanent' | 'temporary', status: string, reply: number][] = [
  ['ENOTFOUND', 'permanent', '5.1.2', 550],
  ['ESERVFAIL', 'temporary', '4.4.3', 451],
  ['ETIMEOUT', 'temporary', '4.4.3', 451],
  ['ECONNREFUSED', 'temporary', '4.4.3', 451],
  [undefined, 'temporary', '4.4.3', 451],
];

for (const [code, kind, status, reply] of failures) {
  test(`dnsFailure: ${code ?? 'no code'} → ${kind} ${status}`, () => {
    const error = dnsFailure('example.net', code, 'MX lookup');
    assert.deepEqual({ kind: error.kind, status: error.status, reply: error.reply }, { kind, status, reply });
    assert.match(error.message, /^MX lookup: .*example\.net/);
  });
}

test('ownHostFailure: a mailHost or smarthost that DNS does not know waits (4.4.3); every other error passes unchanged', () => {
  const gone = ownHostFailure(dnsFailure('mx9.example.org', 'ENOTFOUND', 'host lookup'), 'smarthost') as MailError;
  assert.deepEqual({ kind: gone.kind, status: gone.status, reply: gone.reply }, { kind: 'temporary', status: '4.4.3', reply: 451 });
  assert.match(gone.message, /mx9\.example\.org not found \(the smarthost; fix DNS or delivery\.hostMap\), will retry/);
  const noAddress = ownHostFailure(permanent('5.1.2', 'host mx9.example.org has no address'), 'mailHost of the recipient') as MailError;
  assert.equal(noAddress.status, '4.4.3');
  for (const other of [dnsFailure('x.example', 'ESERVFAIL', 'host lookup'), permanent('5.1.10', 'null MX'), new Error('boom'), 'text']) {
    assert.equal(ownHostFailure(other, 'smarthost'), other);
  }
});
