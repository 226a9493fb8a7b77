// Remembers who got an auto-reply, so each sender gets at most one per period: in Redis when the
// cache has one (shared by every node, expiring by itself), else one small file per key under a
// directory of the spool, expired files swept a directory at a time as claims come in.
import { mkdir, open, readdir, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheConfig } from '../config.ts';
import { connectRedis } from '../directory/cache.ts';
import type { Logger } from '../log.ts';

export interface ReplyMemory {
  /** True (and remembered from now) when `key` got no reply within the last `periodMs`. Throws when it cannot tell. */
  claim(key: string, periodMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Claims between two sweeps of one fan-out directory: all 256 are swept every 256 × this many claims. */
export const SWEEP_EVERY = 64;

/**
 * Removes the files of one fan-out directory older than `periodMs`: a claim would succeed for them
 * anyway, so they only take space. Returns how many went. Best effort.
 */
export async function sweepReplyDir(sub: string, periodMs: number, now: number): Promise<number> {
  let removed = 0;
  for (const name of await readdir(sub).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const file = join(sub, name);
    const info = await stat(file).catch(() => null);
    if (info === null || !info.isFile() || now - info.mtimeMs < periodMs) continue;
    await unlink(file).then(() => removed++, () => undefined);
  }
  return removed;
}

export function diskReplyMemory(dir: string, clock: () => number = Date.now): ReplyMemory {
  let made: Promise<unknown> | null = null;
  let claims = 0;
  let nextSweep = 0;
  return {
    async claim(key, periodMs) {
      // Every SWEEP_EVERY claims, one of the 256 fan-out directories loses its expired files (in turn).
      if (++claims % SWEEP_EVERY === 0) {
        const sub = join(dir, (nextSweep++ % 256).toString(16).padStart(2, '0'));
        void sweepReplyDir(sub, periodMs, clock()).catch(() => undefined);
      }
      if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('reply memory keys are sha256 hex');
      made ??= mkdir(dir, { recursive: true, mode: 0o700 });
      await made;
      // Two levels of fan-out keep directories small; the file's mtime is the time of the last reply.
      const sub = join(dir, key.slice(0, 2));
      const file = join(sub, key);
      const now = clock();
      try {
        const handle = await open(file, 'wx', 0o600).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          await mkdir(sub, { recursive: true, mode: 0o700 });
          return open(file, 'wx', 0o600);
        });
        await handle.close();
        await utimes(file, now / 1000, now / 1000);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const last = (await stat(file)).mtimeMs;
      if (now - last < periodMs) return false;
      await utimes(file, now / 1000, now / 1000);
      return true;
    },
    async close() {},
  };
}

export function redisReplyMemory(config: CacheConfig, log: Logger): ReplyMemory {
  const redis = connectRedis(config, log, 'autoreply');
  return {
    async claim(key, periodMs) {
      return (await redis.set(`${config.keyPrefix}reply:${key}`, '1', 'PX', periodMs, 'NX')) === 'OK';
    },
    async close() {
      redis.disconnect();
    },
  };
}
