// Two-tier read-through cache of resolved answers: an in-process LRU in front of Redis. Holds
// Resolutions (never raw LDAP entries), negatives with their own TTL, stale positives for LDAP
// outages, one load per key at a time. Redis is never the source of truth: when it is down or
// slow, the cache answers from memory and LDAP, and never fails a lookup because of Redis.
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { MailError } from '../mail.ts';
import type { Lookup, Resolution } from './types.ts';

interface Stored {
  readonly value: Resolution;
  /** Epoch ms after which the answer must be asked again. */
  readonly expiresAt: number;
  /** Epoch ms until which the answer may still be served while LDAP is down (positives only). */
  readonly staleUntil: number;
}

export interface ResolutionCache {
  /** Wait (bounded) for Redis at start-up, so a fresh process uses the shared tier at once. Never fails. */
  ready(): Promise<void>;
  get(key: string, load: () => Promise<Resolution>): Promise<Lookup>;
  /** Drop one key, or everything, from both tiers and from every other node's memory tier. */
  flush(key?: string): Promise<void>;
  /** 1 when Redis is connected, 0 when configured but not; null without Redis. */
  redisUp(): number | null;
  /** Drop everything from this process's memory tier only (a reload); Redis and other nodes keep theirs. */
  forgetLocal(): void;
  close(): Promise<void>;
}

export interface CacheDeps {
  log: Logger;
  now?: () => number;
}

const FLUSH_CHANNEL = 'flush';

export function createCache(config: CacheConfig, deps: CacheDeps): ResolutionCache {
  const now = deps.now ?? Date.now;
  const { log } = deps;
  const memory = config.maxEntries > 0 ? new LRUCache<string, Stored>({ max: config.maxEntries }) : null;
  const loading = new Map<string, Promise<Lookup>>();
  const redis = config.redis === '' ? null : connectRedis(config, log);
  const subscriber = redis === null ? null : subscribeFlushes(config, log, (key) => forget(key));

  function store(value: Resolution): Stored {
    const t = now();
    const negative = value.kind === 'unknown';
    const ttl = (negative ? config.negativeTtlSeconds : config.ttlSeconds) * 1000;
    return { value, expiresAt: t + ttl, staleUntil: negative ? t + ttl : t + ttl + config.staleIfErrorSeconds * 1000 };
  }

  function forget(key?: string): void {
    if (memory === null) return;
    if (key === undefined) memory.clear();
    else memory.delete(key);
  }

  async function get(key: string, load: () => Promise<Resolution>): Promise<Lookup> {
    const hit = memory?.get(key);
    if (hit !== undefined && now() < hit.expiresAt) return { resolution: hit.value, source: 'memory' };
    // Concurrent misses for one key share one load.
    let pending = loading.get(key);
    if (pending === undefined) {
      pending = fill(key, load, hit).finally(() => loading.delete(key));
      loading.set(key, pending);
    }
    return pending;
  }

  async function fill(key: string, load: () => Promise<Resolution>, stale: Stored | undefined): Promise<Lookup> {
    const shared = await readRedis(key);
    if (shared !== null && now() < shared.expiresAt) {
      memory?.set(key, shared);
      return { resolution: shared.value, source: 'redis' };
    }
    const fallback = [stale, shared].find((s): s is Stored => s !== undefined && s !== null && now() < s.staleUntil);
    let value: Resolution;
    try {
      value = await load();
    } catch (err) {
      if (err instanceof MailError && err.temporary && fallback !== undefined && fallback.value.kind !== 'unknown') {
        log.warn({ key, status: err.status }, 'directory unavailable; serving a stale cached answer');
        return { resolution: fallback.value, source: 'stale' };
      }
      throw err;
    }
    const entry = store(value);
    memory?.set(key, entry);
    writeRedis(key, entry);
    return { resolution: value, source: 'ldap' };
  }

  async function readRedis(key: string): Promise<Stored | null> {
    if (redis === null || redis.status !== 'ready') return null;
    let text: string | null;
    try {
      text = await redis.get(config.keyPrefix + key);
    } catch {
      return null; // slow or failed: answer from LDAP; the connection's events do the logging
    }
    if (text === null) return null;
    try {
      const parsed = JSON.parse(text) as Stored;
      if (typeof parsed?.expiresAt === 'number' && typeof parsed.value?.kind === 'string') return parsed;
    } catch { /* garbage: fall through and overwrite it */ }
    log.warn({ key }, 'unreadable cache entry in redis ignored');
    return null;
  }

  function writeRedis(key: string, entry: Stored): void {
    if (redis === null || redis.status !== 'ready') return;
    const ttl = Math.max(1, entry.staleUntil - now());
    redis.set(config.keyPrefix + key, JSON.stringify(entry), 'PX', ttl).catch(() => undefined);
  }

  async function flush(key?: string): Promise<void> {
    forget(key);
    if (redis === null) return;
    if (redis.status !== 'ready') await waitReady(redis, config.redisTimeoutMs * 10);
    if (key !== undefined) {
      await redis.del(config.keyPrefix + key);
    } else {
      let cursor = '0';
      do {
        const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${config.keyPrefix}*`, 'COUNT', 1000);
        cursor = nextCursor;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
    await redis.publish(config.keyPrefix + FLUSH_CHANNEL, key ?? '*');
  }

  async function ready(): Promise<void> {
    const limit = Math.max(config.redisTimeoutMs * 5, 1000);
    await Promise.all([redis, subscriber].map((r) => (r === null || r.status === 'ready' ? undefined : waitReady(r, limit).catch(() => undefined))));
  }

  async function close(): Promise<void> {
    redis?.disconnect();
    subscriber?.disconnect();
  }

  return { ready, get, flush, close, forgetLocal: () => forget(), redisUp: () => (redis === null ? null : redis.status === 'ready' ? 1 : 0) };
}

/**
 * Fail fast: no offline queue, no per-command retries, a short command timeout, reconnects in
 * the background. ioredis's defaults queue and retry, which turns an outage into long stalls.
 */
export function connectRedis(config: CacheConfig, log: Logger, role = 'cache'): Redis {
  const redis = new Redis(config.redis, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.redisTimeoutMs,
    connectTimeout: Math.max(config.redisTimeoutMs, 1000),
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    lazyConnect: false,
  });
  let healthy = true;
  redis.on('ready', () => {
    if (!healthy) log.info({ role }, 'redis is back; cache tier restored');
    healthy = true;
  });
  redis.on('error', (err: Error) => {
    // One warning per outage: the flush subscriber's connection fails with the cache's, so it only notes it.
    if (healthy) {
      if (role === 'cache') log.warn({ role, err: err.message }, 'redis unavailable; answering from memory and LDAP');
      else log.debug({ role, err: err.message }, 'redis unavailable');
    }
    healthy = false;
  });
  return redis;
}

function subscribeFlushes(config: CacheConfig, log: Logger, forget: (key?: string) => void): Redis {
  const subscriber = connectRedis({ ...config, redisTimeoutMs: Math.max(config.redisTimeoutMs, 1000) }, log, 'cache-flush-subscriber');
  // The subscription must survive reconnects; ioredis re-subscribes by itself, but the first
  // subscribe may come before the connection is ready, and there is no offline queue.
  subscriber.on('ready', () => {
    subscriber.subscribe(config.keyPrefix + FLUSH_CHANNEL).catch(() => undefined);
  });
  subscriber.on('message', (_channel: string, message: string) => {
    forget(message === '*' ? undefined : message);
  });
  return subscriber;
}

function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error('redis not reachable'));
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}
