// The retry schedule: exponential back-off from 1 min, capped at 1 h, deterministic jitter, expiry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FIRST_RETRY_MS, JITTER, MAX_RETRY_MS, nextStep, retryDelayMs } from '../../src/queue/schedule.ts';

const MIN = 60_000;
const base: [attempts: number, baseMs: number][] = [
  [0, 1 * MIN], [1, 1 * MIN], [2, 2 * MIN], [3, 4 * MIN], [4, 8 * MIN], [5, 16 * MIN], [6, 32 * MIN],
  [7, 60 * MIN], [8, 60 * MIN], [50, 60 * MIN], [10_000, 60 * MIN],
];

for (const [attempts, baseMs] of base) {
  test(`after attempt ${attempts} the wait is ${baseMs / MIN} min, less up to 10 % jitter`, () => {
    for (const seed of ['', 'a', '01k82lvt5c00002boemi', 'zzzz']) {
      const delay = retryDelayMs(attempts, seed);
      assert.ok(delay <= baseMs, `${delay} <= ${baseMs}`);
      assert.ok(delay >= Math.floor(baseMs * (1 - JITTER)), `${delay} >= ${baseMs * (1 - JITTER)}`);
      assert.equal(retryDelayMs(attempts, seed), delay, 'deterministic');
    }
  });
}

test('the constants are the documented ones', () => {
  assert.equal(FIRST_RETRY_MS, MIN);
  assert.equal(MAX_RETRY_MS, 60 * MIN);
});

test('jitter spreads messages that failed together', () => {
  const delays = new Set(Array.from({ length: 50 }, (_, i) => retryDelayMs(3, `id${i}`)));
  assert.ok(delays.size > 40, `${delays.size} distinct delays`);
});

const T0 = Date.parse('2030-01-01T00:00:00Z');
const DAY = 86_400;
const steps: [name: string, input: Parameters<typeof nextStep>[0], expected: ReturnType<typeof nextStep> | 'retry'][] = [
  ['young message: retry', { attempts: 1, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY }, 'retry'],
  ['exactly at the lifetime: one more try', { attempts: 9, queuedAt: T0, now: T0 + DAY * 1000, lifetimeSeconds: DAY }, { expired: false, nextAttempt: T0 + DAY * 1000 + 1 }],
  ['one ms past the lifetime: expired', { attempts: 9, queuedAt: T0, now: T0 + DAY * 1000 + 1, lifetimeSeconds: DAY }, { expired: true }],
  ['lifetime 0: expired at once', { attempts: 1, queuedAt: T0, now: T0 + 1, lifetimeSeconds: 0 }, { expired: true }],
  ['near the deadline: the retry is pulled to just past it', { attempts: 7, queuedAt: T0, now: T0 + (DAY - 60) * 1000, lifetimeSeconds: DAY }, { expired: false, nextAttempt: T0 + DAY * 1000 + 1 }],
  ['clock behind queuedAt: retry, not expiry', { attempts: 1, queuedAt: T0, now: T0 - 3_600_000, lifetimeSeconds: 60 }, 'retry'],
];

for (const [name, input, expected] of steps) {
  test(`nextStep: ${name}`, () => {
    const step = nextStep(input);
    if (expected === 'retry') {
      assert.equal(step.expired, false);
      if (!step.expired) assert.equal(step.nextAttempt, input.now + retryDelayMs(input.attempts, input.seed));
    } else {
      assert.deepEqual(step, expected);
    }
  });
}
