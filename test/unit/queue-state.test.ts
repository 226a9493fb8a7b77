// The todo file format and the pure state changes of settle; queue ids; disk-error mapping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress, permanent, temporary, type Envelope, type Outcome } from '../../src/mail.ts';
import { diskError } from '../../src/queue/disk.ts';
import { idTime, isMessageId, newMessageId } from '../../src/queue/id.ts';
import { retryDelayMs } from '../../src/queue/schedule.ts';
import { applyOutcomes, decodeTodo, encodeTodo, newTodo, type TodoState } from '../../src/queue/state.ts';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const [a, b, c] = ['a@example.org', 'B@example.org', 'c@remote.test'].map(parseAddress) as [ReturnType<typeof parseAddress>, ReturnType<typeof parseAddress>, ReturnType<typeof parseAddress>];
const envelope: Envelope = {
  sender: parseAddress('"odd local"@example.net'), recipients: [a, b, c],
  client: { ip: '192.0.2.1', helo: 'client.test', user: 'alice', tls: true }, receivedAt: new Date(T0 - 5),
};
const id = newMessageId(T0);
const fresh = (): TodoState => newTodo(id, envelope, 1234, T0);
const states = (t: TodoState) => t.recipients.map((r) => r.state);

test('ids: 20 chars of [0-9a-v], sortable by time, unique, carrying their time', () => {
  const ids = Array.from({ length: 5000 }, (_, i) => newMessageId(T0 + Math.floor(i / 1000)));
  assert.ok(ids.every(isMessageId));
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(idTime(ids[0]!), T0);
  for (const bad of ['', '../etc/passwd', 'ABCDEFGHIJKLMNOPQRST', `${id}x`, `${id}.json`]) assert.equal(isMessageId(bad), false, bad);
});

test('ids stay in order when the clock steps back', () => {
  const first = newMessageId(T0 + 10_000);
  const second = newMessageId(T0);
  assert.ok(second > first);
});

test('todo files round-trip, odd local parts and all', () => {
  const todo = applyOutcomes(fresh(), [{ recipient: a, ok: false, error: temporary('4.2.2', 'mailbox full') }], T0 + 1000, 3600).todo;
  const back = decodeTodo(encodeTodo(todo), id);
  assert.deepEqual(back, todo);
  assert.equal(back.envelope.sender?.local, 'odd local');
});

const corrupt: [string, string][] = [
  ['not JSON', '{"version":1,'],
  ['wrong version', encodeTodo(fresh()).replace('"version": 1', '"version": 2')],
  ['unknown state', encodeTodo(fresh()).replace('"pending"', '"sleeping"')],
  ['bad time', encodeTodo(fresh()).replace(/"queuedAt": "[^"]+"/, '"queuedAt": "yesterday"')],
  ['no recipients', JSON.stringify({ ...JSON.parse(encodeTodo(fresh())), recipients: [] })],
  ['unknown field', JSON.stringify({ ...JSON.parse(encodeTodo(fresh())), extra: 1 })],
  ['other id', encodeTodo({ ...fresh(), id: newMessageId(T0) })],
];
for (const [name, text] of corrupt) {
  test(`decodeTodo refuses: ${name}`, () => assert.throws(() => decodeTodo(text, id)));
}

const outcomeCases: [name: string, outcomes: Outcome[], now: number, lifetime: number, expect: string[], check?: (t: TodoState) => void][] = [
  ['all delivered', [a, b, c].map((r) => ({ recipient: r, ok: true as const })), T0, 3600, ['delivered', 'delivered', 'delivered']],
  ['partial: one each', [
    { recipient: a, ok: true },
    { recipient: b, ok: false, error: permanent('5.1.1', 'user unknown') },
    { recipient: c, ok: false, error: temporary('4.4.1', 'connection refused') },
  ], T0 + 1000, 3600, ['delivered', 'failed', 'pending'], (t) => {
    assert.deepEqual(t.recipients[1]?.lastError, { status: '5.1.1', text: 'user unknown', reply: 550 });
    assert.equal(t.recipients[2]?.attempts, 1);
    assert.equal(t.recipients[2]?.nextAttempt, T0 + 1000 + retryDelayMs(1, id));
    assert.equal(t.recipients[2]?.lastError?.status, '4.4.1');
  }],
  ['domain case does not matter', [{ recipient: parseAddress('B@EXAMPLE.org'), ok: true }], T0, 3600, ['pending', 'delivered', 'pending']],
  ['temporary after the lifetime: 5.4.7', [{ recipient: c, ok: false, error: temporary('4.4.1', 'connection refused') }],
    T0 + 3_600_001, 3600, ['pending', 'pending', 'failed'], (t) => {
      assert.equal(t.recipients[2]?.lastError?.status, '5.4.7');
      assert.match(t.recipients[2]?.lastError?.text ?? '', /^delivery time expired \(last error: 4\.4\.1 connection refused\)$/);
    }],
  ['recipients not named stay as they were', [], T0, 3600, ['pending', 'pending', 'pending']],
];
for (const [name, outcomes, now, lifetime, expect, check] of outcomeCases) {
  test(`applyOutcomes: ${name}`, () => {
    const { todo } = applyOutcomes(fresh(), outcomes, now, lifetime);
    assert.deepEqual(states(todo), expect);
    check?.(todo);
  });
}

test('applyOutcomes: outcomes for settled or unknown recipients are ignored and reported', () => {
  const once = applyOutcomes(fresh(), [{ recipient: a, ok: true }], T0, 3600).todo;
  const { todo, ignored } = applyOutcomes(once, [
    { recipient: a, ok: false, error: permanent('5.1.1', 'late') },
    { recipient: parseAddress('stranger@example.org'), ok: true },
  ], T0, 3600);
  assert.deepEqual(states(todo), ['delivered', 'pending', 'pending']);
  assert.equal(ignored.length, 2);
});

const errors: [code: string, status: string][] = [['ENOSPC', '4.3.1'], ['EDQUOT', '4.3.1'], ['EIO', '4.3.0'], ['EACCES', '4.3.0'], ['EROFS', '4.3.0']];
for (const [code, status] of errors) {
  test(`disk error ${code} is temporary ${status}`, () => {
    const err = diskError(Object.assign(new Error(code), { code }));
    assert.equal(err.kind, 'temporary');
    assert.equal(err.status, status);
    assert.equal(err.reply >= 400 && err.reply < 500, true);
  });
}

test('the delay-warning mark round-trips and is absent from files that never warned', () => {
  const warned: TodoState = { ...fresh(), warned: true };
  assert.deepEqual(decodeTodo(encodeTodo(warned), id), warned);
  assert.doesNotMatch(encodeTodo(fresh()), /warned/);
  assert.equal(decodeTodo(encodeTodo(fresh()), id).warned, undefined);
});

test('the hold mark round-trips and is absent from files that were never held', () => {
  const held: TodoState = { ...fresh(), held: true };
  assert.deepEqual(decodeTodo(encodeTodo(held), id), held);
  assert.doesNotMatch(encodeTodo(fresh()), /held/);
  assert.equal(decodeTodo(encodeTodo(fresh()), id).held, undefined);
});
