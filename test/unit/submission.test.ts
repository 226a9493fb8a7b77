// Submission rules (policy/submission.ts) and the abuse-limit arithmetic (policy/limits.ts), one line each.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress } from '../../src/mail.ts';
import { silentLogger } from '../../src/log.ts';
import { createLimits, failureDelayMs, memoryCounters } from '../../src/policy/limits.ts';
import { fromRefusal, headerAddresses, missingFields, senderRefusal } from '../../src/policy/submission.ts';

const alice = { login: 'alice', dn: 'uid=alice', addresses: ['alice@example.org', 'a.smith@example.org'] };

const senders: [string | null, string | null][] = [
  ['alice@example.org', null], ['Alice@Example.ORG', null], ['a.smith@example.org', null], [null, null],
  ['bob@example.org', '5.7.1'], ['alice@example.org.evil.test', '5.7.1'],
];
for (const [sender, expected] of senders) {
  test(`MAIL FROM:<${sender ?? ''}> as alice → ${expected ?? 'ok'}`, () => {
    const refusal = senderRefusal(alice, sender === null ? null : parseAddress(sender));
    assert.equal(refusal?.status ?? null, expected);
    if (refusal !== null) assert.equal(refusal.reply, 553);
  });
}

const froms: [string, string[]][] = [
  ['Alice <alice@example.org>', ['alice@example.org']],
  ['"Bob <bob@example.org>" <alice@example.org>', ['alice@example.org']],
  ['alice@example.org (Bob <bob@example.org>)', ['alice@example.org']],
  ['alice@example.org, Bob <bob@example.org>', ['alice@example.org', 'bob@example.org']],
  ['Team: alice@example.org, bob@example.org;', ['alice@example.org', 'bob@example.org']],
  ['', []],
];
for (const [value, expected] of froms) {
  test(`From: ${JSON.stringify(value)} names ${expected.join(', ') || 'nobody'}`, () => assert.deepEqual(headerAddresses([value]), expected));
}

test('From: must name only the principal\'s addresses; a message without From: passes', () => {
  assert.equal(fromRefusal(alice, ['Alice <ALICE@example.org>']), null);
  assert.equal(fromRefusal(alice, []), null);
  assert.equal(fromRefusal(alice, ['alice@example.org, bob@example.org'])?.status, '5.7.1');
  assert.match(fromRefusal(alice, ['"alice@example.org" <bob@example.org>'])?.message ?? '', /bob@example\.org/);
});

test('missing Message-ID and Date are added, present ones left alone', () => {
  const now = new Date(Date.UTC(2026, 10, 30, 5, 0, 0));
  assert.equal(missingFields(new Set(), now, 'u1', 'mx1.example.org'), 'Message-ID: <u1@mx1.example.org>\r\nDate: Mon, 30 Nov 2026 05:00:00 +0000\r\n');
  assert.equal(missingFields(new Set(['message-id', 'date']), now, 'u1', 'h'), '');
});

test('failure delays: 250 ms doubling, capped at 8 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 10].map(failureDelayMs), [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

test('lockout per login and per address, over a window; usage counts per hour', async () => {
  let now = 1_000_000;
  const clock = () => now;
  const limits = createLimits({ authFailuresPerIp: 4, authFailuresPerLogin: 2, authWindowSeconds: 60, lockoutSeconds: 30, messagesPerUserPerHour: 1, recipientsPerUserPerHour: 1 },
    { shared: memoryCounters(clock), log: silentLogger(), clock });
  assert.equal(await limits.lockedFor('10.0.0.1', 'bob'), 0);
  await limits.failed('10.0.0.1', 'bob');
  assert.equal(await limits.lockedFor('10.0.0.1', 'bob'), 0);
  await limits.failed('10.0.0.1', 'BOB');
  assert.equal(await limits.lockedFor('10.0.0.2', 'bob'), 30, 'the login is locked from any address, whatever its case');
  assert.equal(await limits.lockedFor('10.0.0.1', 'carol'), 0, 'the address is not locked yet');
  await limits.failed('10.0.0.1', 'carol');
  await limits.failed('10.0.0.1', 'dave');
  assert.equal(await limits.lockedFor('10.0.0.1', 'erin'), 30, 'four failures from one address lock it');
  now += 31_000;
  assert.equal(await limits.lockedFor('10.0.0.1', 'bob'), 0, 'the lockout ends');
  await limits.sent('alice', 3);
  assert.deepEqual(await limits.usage('Alice'), { messages: 1, recipients: 3 });
  now += 3_600_000;
  assert.deepEqual(await limits.usage('alice'), { messages: 0, recipients: 0 }, 'a new hour');
});
