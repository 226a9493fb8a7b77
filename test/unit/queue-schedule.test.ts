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

// Configured back-off (queue.retryMinSeconds / retryMaxSeconds): first 1 s, cap 4 s.
const custom: [attempts: number, baseMs: number][] = [[1, 1000], [2, 2000], [3, 4000], [4, 4000], [50, 4000]];

for (const [attempts, baseMs] of custom) {
  test(`first wait 1 s, cap 4 s: after attempt ${attempts} the wait is ${baseMs} ms, less up to 10 % jitter`, () => {
    for (const seed of ['', 'a', '01k82lvt5c00002boemi', 'zzzz']) {
      const delay = retryDelayMs(attempts, seed, 1000, 4000);
      assert.ok(delay <= baseMs, `${delay} <= ${baseMs}`);
      assert.ok(delay >= Math.floor(baseMs * (1 - JITTER)), `${delay} >= ${baseMs * (1 - JITTER)}`);
    }
  });
}

const customSteps: [name: string, input: Parameters<typeof nextStep>[0], minMs: number, maxMs: number][] = [
  ['first 1 s, cap 4 s, attempt 1: about 1 s', { attempts: 1, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY, seed: 'q1', firstRetryMs: 1000, maxRetryMs: 4000 }, 900, 1000],
  ['first 1 s, cap 4 s, attempt 2: about 2 s', { attempts: 2, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY, seed: 'q1', firstRetryMs: 1000, maxRetryMs: 4000 }, 1800, 2000],
  ['first 1 s, cap 4 s, attempt 20: capped at 4 s, not 1 h', { attempts: 20, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY, seed: 'q1', firstRetryMs: 1000, maxRetryMs: 4000 }, 3600, 4000],
  ['first 10 s, default cap: attempt 3 about 40 s', { attempts: 3, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY, seed: 'q1', firstRetryMs: 10_000 }, 36_000, 40_000],
  ['default first, cap 2 min: attempt 5 about 2 min', { attempts: 5, queuedAt: T0, now: T0 + 1000, lifetimeSeconds: DAY, seed: 'q1', maxRetryMs: 2 * MIN }, 108_000, 2 * MIN],
];

for (const [name, input, minMs, maxMs] of customSteps) {
  test(`nextStep honours the configured back-off: ${name}`, () => {
    const step = nextStep(input);
    assert.equal(step.expired, false);
    if (step.expired) return;
    const wait = step.nextAttempt - input.now;
    assert.ok(wait >= minMs && wait <= maxMs, `${wait} in [${minMs}, ${maxMs}]`);
    assert.equal(wait, retryDelayMs(input.attempts, input.seed, input.firstRetryMs, input.maxRetryMs));
  });
}

test('nextStep with a configured back-off still pulls the last retry to just past the deadline', () => {
  const step = nextStep({ attempts: 3, queuedAt: T0, now: T0 + (DAY - 1) * 1000, lifetimeSeconds: DAY, firstRetryMs: 1000, maxRetryMs: 4000 });
  assert.deepEqual(step, { expired: false, nextAttempt: T0 + DAY * 1000 + 1 });
});
