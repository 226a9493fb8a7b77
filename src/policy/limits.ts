// Abuse limits for authenticated submission: failed logins per client IP and per login (growing
// delay, then a lockout), and messages and recipients per user per hour. Counters live in Redis
// when the cache has one (so every node sees them), else in this process. A Redis that does not
// answer falls back to the in-process counters: limits loosen for the outage, mail keeps flowing.
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';

export interface LimitsConfig {
  readonly authFailuresPerIp: number;
  readonly authFailuresPerLogin: number;
  /** Failures are counted over this window. */
  readonly authWindowSeconds: number;
  readonly lockoutSeconds: number;
  readonly messagesPerUserPerHour: number;
  readonly recipientsPerUserPerHour: number;
}

export interface Limits {
  /** Seconds left of a lockout of this IP or login, or 0 when a login may be tried. */
  lockedFor(ip: string, login: string): Promise<number>;
  /** Records a failed login; returns the delay (ms) to wait before answering it. */
  failed(ip: string, login: string): Promise<number>;
  /** Messages and recipients this user sent in the current hour. */
  usage(user: string): Promise<{ messages: number; recipients: number }>;
  /** Records one message with this many recipients. */
  sent(user: string, recipients: number): Promise<void>;
  /** Records an unknown recipient asked for by this client (directory harvesting); the count over the last hour. */
  unknownRecipient(ip: string): Promise<number>;
}

/** The delay before answering the n-th failure in a row: 250 ms, doubling, at most 8 s. Pure. */
export function failureDelayMs(failures: number): number {
  return Math.min(250 * 2 ** Math.max(0, failures - 1), 8000);
}

/** The counter store: add to a key that expires after ttl (set on creation), read a key's remaining life. */
interface Counters {
  add(key: string, by: number, ttlMs: number): Promise<number>;
  get(key: string): Promise<number>;
  set(key: string, ttlMs: number): Promise<void>;
  ttlMs(key: string): Promise<number>;
}

export function memoryCounters(clock: () => number = Date.now): Counters {
  const map = new Map<string, { value: number; until: number }>();
  const live = (key: string) => {
    const e = map.get(key);
    if (e !== undefined && e.until <= clock()) map.delete(key);
    return map.get(key);
  };
  return {
    async add(key, by, ttlMs) {
      if (map.size > 100_000) for (const [k, e] of map) if (e.until <= clock()) map.delete(k);
      const e = live(key) ?? { value: 0, until: clock() + ttlMs };
      e.value += by;
      map.set(key, e);
      return e.value;
    },
    async get(key) {
      return live(key)?.value ?? 0;
    },
    async set(key, ttlMs) {
      map.set(key, { value: 1, until: clock() + ttlMs });
    },
    async ttlMs(key) {
      const e = live(key);
      return e === undefined ? 0 : e.until - clock();
    },
  };
}

export function redisCounters(redis: Redis, prefix: string): Counters {
  return {
    async add(key, by, ttlMs) {
      const [[, value]] = (await redis.multi().incrby(prefix + key, by).pexpire(prefix + key, ttlMs, 'NX').exec()) as [[Error | null, number]];
      return value;
    },
    async get(key) {
      return Number(await redis.get(prefix + key) ?? 0);
    },
    async set(key, ttlMs) {
      await redis.set(prefix + key, '1', 'PX', ttlMs);
    },
    async ttlMs(key) {
      return Math.max(0, await redis.pttl(prefix + key));
    },
  };
}

export function createLimits(config: LimitsConfig, deps: { shared: Counters | null; log: Logger; clock?: () => number }): Limits {
  const clock = deps.clock ?? Date.now;
  const local = memoryCounters(clock);
  const window = config.authWindowSeconds * 1000;
  const lockout = config.lockoutSeconds * 1000;
  let warned = false;

  /** The shared store when it answers, else this process's. */
  async function use<T>(work: (c: Counters) => Promise<T>): Promise<T> {
    if (deps.shared !== null) {
      try {
        const result = await work(deps.shared);
        warned = false;
        return result;
      } catch (err) {
        if (!warned) deps.log.warn({ err: (err as Error).message }, 'redis unavailable for abuse limits; counting in this process');
        warned = true;
      }
    }
    return work(local);
  }

  const hour = () => Math.floor(clock() / 3_600_000);
  const who = (login: string) => login.toLowerCase();

  return {
    lockedFor: (ip, login) => use(async (c) => {
      const left = Math.max(await c.ttlMs(`lock:ip:${ip}`), await c.ttlMs(`lock:login:${who(login)}`));
      return Math.ceil(left / 1000);
    }),
    failed: (ip, login) => use(async (c) => {
      const byIp = await c.add(`fail:ip:${ip}`, 1, window);
      const byLogin = await c.add(`fail:login:${who(login)}`, 1, window);
      if (byIp >= config.authFailuresPerIp) await c.set(`lock:ip:${ip}`, lockout);
      if (byLogin >= config.authFailuresPerLogin) await c.set(`lock:login:${who(login)}`, lockout);
      if (byIp >= config.authFailuresPerIp || byLogin >= config.authFailuresPerLogin) {
        deps.log.warn({ ip, login, failuresByIp: byIp, failuresByLogin: byLogin, lockoutSeconds: config.lockoutSeconds }, 'too many failed logins: locked out');
      }
      return failureDelayMs(Math.max(byIp, byLogin));
    }),
    usage: (user) => use(async (c) => ({
      messages: await c.get(`sent:msg:${who(user)}:${hour()}`),
      recipients: await c.get(`sent:rcpt:${who(user)}:${hour()}`),
    })),
    sent: (user, recipients) => use(async (c) => {
      await c.add(`sent:msg:${who(user)}:${hour()}`, 1, 3_600_000);
      await c.add(`sent:rcpt:${who(user)}:${hour()}`, recipients, 3_600_000);
    }),
    unknownRecipient: (ip) => use((c) => c.add(`unknown:ip:${ip}`, 1, 3_600_000)),
  };
}
