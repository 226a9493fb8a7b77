// When a temporarily failed recipient is tried again, and when the queue gives up on it.
// Pure: a function of attempt count, age and a seed; never reads the clock or the disk.

export const FIRST_RETRY_MS = 60_000;
export const MAX_RETRY_MS = 3_600_000;
/** Retries are pulled earlier by up to this fraction, so messages failing together spread out. */
export const JITTER = 0.1;

/** FNV-1a of the text, as a fraction in [0, 1). */
function fraction(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash / 2 ** 32;
}

/**
 * The wait after the `attempts`-th failed attempt (1, 2, …): 1 min, 2, 4, … capped at 1 h (or the configured first wait and cap), then
 * shortened by a deterministic jitter of up to 10 % derived from `seed` (the queue id).
 */
export function retryDelayMs(attempts: number, seed = '', firstMs = FIRST_RETRY_MS, maxMs = MAX_RETRY_MS): number {
  const exponent = Math.max(0, Math.min(attempts - 1, 30));
  const base = Math.min(firstMs * 2 ** exponent, Math.max(firstMs, maxMs));
  return Math.round(base * (1 - JITTER * fraction(`${seed}:${attempts}`)));
}

export type NextStep = { readonly expired: true } | { readonly expired: false; readonly nextAttempt: number };

export interface ScheduleInput {
  /** Failed attempts so far, this one included. */
  readonly attempts: number;
  /** Times in milliseconds since the epoch. */
  readonly queuedAt: number;
  readonly now: number;
  readonly lifetimeSeconds: number;
  readonly seed?: string;
  /** The first wait and the cap (queue.retryMinSeconds / retryMaxSeconds); 1 min and 1 h when absent. */
  readonly firstRetryMs?: number;
  readonly maxRetryMs?: number;
}

/**
 * After a temporary failure: expired once the message is older than its lifetime, otherwise the
 * next attempt time. The last retry is never later than just past the deadline, so an expired
 * message bounces on time rather than up to an hour late.
 */
export function nextStep(input: ScheduleInput): NextStep {
  const lifetimeMs = input.lifetimeSeconds * 1000;
  if (input.now - input.queuedAt > lifetimeMs) return { expired: true };
  const next = input.now + retryDelayMs(input.attempts, input.seed, input.firstRetryMs, input.maxRetryMs);
  return { expired: false, nextAttempt: Math.min(next, input.queuedAt + lifetimeMs + 1) };
}
