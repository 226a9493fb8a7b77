// Greylisting: the first delivery attempt of a (client network, sender, recipient) triplet is
// refused temporarily; a retry after the delay passes and the triplet is remembered for the
// lifetime. The decision and the exemptions are pure; two stores keep the entries: this process's
// memory (bounded, swept) and Redis (shared by every node, one round trip per check, with passes
// remembered in process for a while so a known correspondent costs no round trip).
// Must never: refuse mail because the store failed. A Redis error is `unavailable` and the caller
// accepts the mail (fails open) and logs it.
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { type MailError, temporary } from '../mail.ts';
import { canonicalIp, ipv6Hex } from './dnsbl.ts';
import { type NetworkList, trustedNetworks } from './rules.ts';

// ---------------------------------------------------------------------------------------------
// The triplet and its key

/** The client's network as greylisting sees it: "192.0.2.0/24", "2001:0db8:0001:0002::/64". Pure. */
export function clientNetwork(ip: string): string {
  const plain = canonicalIp(ip);
  if (isIPv4(plain)) return `${plain.split('.').slice(0, 3).join('.')}.0/24`;
  const hex = ipv6Hex(plain);
  if (hex === null) return plain.toLowerCase();
  return `${hex.slice(0, 16).match(/.{4}/g)!.join(':')}::/64`;
}

/**
 * The sender as greylisting sees it: lower case, "<>" for the null sender, and without a BATV
 * tag ("prvs=1234abcd=user@example.org" → "user@example.org"), which changes with every message
 * and would otherwise greylist such a sender forever. Pure.
 */
export function greylistSender(sender: string | null): string {
  if (sender === null || sender === '' || sender === '<>') return '<>';
  const lower = sender.toLowerCase();
  const batv = /^prvs=[^=@]+=(.+@.+)$/.exec(lower);
  return batv !== null ? batv[1]! : lower;
}

export interface Triplet {
  readonly network: string;
  readonly sender: string;
  readonly recipient: string;
}

/** The triplet of a delivery attempt. `sender` null for the null sender (bounces). Pure. */
export function greylistTriplet(clientIp: string, sender: string | null, recipient: string): Triplet {
  return { network: clientNetwork(clientIp), sender: greylistSender(sender), recipient: recipient.toLowerCase() };
}

/** A short key for the triplet: 22 base64url characters (128 bits) of the SHA-256 of its fields, unambiguously joined. Pure. */
export function greylistKey(triplet: Triplet): string {
  return createHash('sha256').update(JSON.stringify([triplet.network, triplet.sender, triplet.recipient])).digest('base64url').slice(0, 22);
}

// ---------------------------------------------------------------------------------------------
// The decision

export interface GreylistEntry {
  /** Epoch ms of the first attempt. */
  readonly firstSeen: number;
  /** Epoch ms after which the entry counts as new: first sight + lifetime, or the last pass + lifetime. */
  readonly expiresAt: number;
  /** A retry came after the delay: the triplet passes until it expires. */
  readonly passed: boolean;
}

export interface GreylistTiming {
  /** A retry is accepted this long after the first attempt. */
  readonly delaySeconds: number;
  /** An entry lives this long after the first attempt, and after every pass. */
  readonly lifetimeSeconds: number;
}

export interface GreylistDecision {
  readonly pass: boolean;
  /** When refused: seconds until a retry would pass (at least 1). */
  readonly retryAfterSeconds?: number;
  /** The entry to keep (unchanged when an early retry is refused). */
  readonly entry: GreylistEntry;
}

/**
 * First sight (no entry, or one past its lifetime): keep a new entry, refuse. A retry before the
 * delay: refuse, the entry unchanged (an early retry does not restart the clock). A retry after
 * it, or a triplet that passed before: pass, and the entry lives another lifetime. Pure.
 * (The Redis store runs the same rules in Lua, see GREYLIST_SCRIPT; keep them in step.)
 */
export function decide(entry: GreylistEntry | null, now: number, timing: GreylistTiming): GreylistDecision {
  const delay = timing.delaySeconds * 1000;
  const lifetime = timing.lifetimeSeconds * 1000;
  if (entry === null || now >= entry.expiresAt) {
    return { pass: false, retryAfterSeconds: Math.max(1, Math.ceil(timing.delaySeconds)), entry: { firstSeen: now, expiresAt: now + lifetime, passed: false } };
  }
  if (entry.passed || now >= entry.firstSeen + delay) {
    return { pass: true, entry: { firstSeen: entry.firstSeen, expiresAt: now + lifetime, passed: true } };
  }
  return { pass: false, retryAfterSeconds: Math.max(1, Math.ceil((entry.firstSeen + delay - now) / 1000)), entry };
}

/** The answer to a refused attempt: 451 4.7.1 with the time to wait. Pure. */
export function greylistError(retryAfterSeconds: number): MailError {
  return temporary('4.7.1', `greylisted, please try again in ${Math.max(1, Math.ceil(retryAfterSeconds))} seconds`, undefined, 451);
}

/** "firstSeen,expiresAt,passed" — the form both stores keep. Pure. */
export function formatEntry(entry: GreylistEntry): string {
  return `${Math.floor(entry.firstSeen)},${Math.floor(entry.expiresAt)},${entry.passed ? 1 : 0}`;
}

/** The stored form back, or null for anything else (a damaged value counts as no entry). Pure. */
export function parseEntry(text: string | null | undefined): GreylistEntry | null {
  const m = /^(\d+),(\d+),([01])$/.exec(text ?? '');
  return m === null ? null : { firstSeen: Number(m[1]), expiresAt: Number(m[2]), passed: m[3] === '1' };
}

// ---------------------------------------------------------------------------------------------
// Exemptions

export interface GreylistWhitelist {
  readonly networks: NetworkList;
  /** Sender domains, lower case; a domain also covers its subdomains. */
  readonly domains: ReadonlySet<string>;
}

/** The configured lists as lookup structures (bad CIDRs are left out; the config schema checks them). */
export function greylistWhitelist(networks: readonly string[], domains: readonly string[]): GreylistWhitelist {
  return { networks: trustedNetworks(networks), domains: new Set(domains.map((d) => d.toLowerCase().replace(/\.$/, ''))) };
}

/** The client's address is in a whitelisted network. Pure. */
export function whitelistedNetwork(ip: string, list: GreylistWhitelist): boolean {
  return list.networks.has(ip);
}

/** The sender's domain (or a parent of it) is whitelisted; never for the null sender. Pure. */
export function whitelistedDomain(sender: string | null, list: GreylistWhitelist): boolean {
  if (sender === null) return false;
  const at = sender.lastIndexOf('@');
  if (at < 0) return false;
  const labels = sender.slice(at + 1).toLowerCase().replace(/\.$/, '').split('.');
  return labels.some((_, i) => list.domains.has(labels.slice(i).join('.')));
}

/**
 * Why this attempt is not greylisted, or null when it is. `spfPass` is the caller's: true only
 * when SPF passed for the sender and the configuration trusts that (skipOnSpfPass). Pure.
 */
export function greylistExemption(
  attempt: { readonly ip: string; readonly sender: string | null; readonly spfPass: boolean },
  list: GreylistWhitelist,
): 'network' | 'domain' | 'spf-pass' | null {
  if (whitelistedNetwork(attempt.ip, list)) return 'network';
  if (whitelistedDomain(attempt.sender, list)) return 'domain';
  if (attempt.spfPass) return 'spf-pass';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Stores

export type GreylistCheck =
  | ({ readonly status: 'checked' } & GreylistDecision)
  /** The store could not answer: accept the mail (fail open) and log `error`. */
  | { readonly status: 'unavailable'; readonly error: string };

export interface GreylistStore {
  /** Reads the entry of `key`, decides, keeps the new entry. Never throws. */
  check(key: string, now: number, timing: GreylistTiming): Promise<GreylistCheck>;
}

export interface MemoryStoreOptions {
  /** At most this many entries; past it, expired ones are swept, then the oldest dropped. Default 100 000. */
  readonly maxEntries?: number;
  /** Expired entries are swept at most this often (on a check; there is no timer). Default 60 s. */
  readonly sweepIntervalMs?: number;
}

/** In this process: a Map in least-recently-written order, bounded, swept of expired entries. */
export function memoryGreylistStore(options: MemoryStoreOptions = {}): GreylistStore & { size(): number } {
  const max = Math.max(1, options.maxEntries ?? 100_000);
  const sweepEvery = options.sweepIntervalMs ?? 60_000;
  const entries = new Map<string, GreylistEntry>();
  let lastSweep = -Infinity;

  function sweep(now: number): void {
    lastSweep = now;
    for (const [key, entry] of entries) if (now >= entry.expiresAt) entries.delete(key);
  }

  return {
    size: () => entries.size,
    async check(key, now, timing) {
      if (now - lastSweep >= sweepEvery) sweep(now);
      const old = entries.get(key) ?? null;
      const decision = decide(old, now, timing);
      if (decision.entry !== old) {
        entries.delete(key); // re-inserted last: the Map's order is the order of writes
        entries.set(key, decision.entry);
        if (entries.size > max) {
          sweep(now);
          for (const oldest of entries.keys()) {
            if (entries.size <= max) break;
            entries.delete(oldest);
          }
        }
      }
      return { status: 'checked', ...decision };
    },
  };
}

/**
 * decide() in Lua, so a check is one atomic round trip. KEYS[1]: the key; ARGV: now (epoch ms),
 * delay (ms), lifetime (ms). Writes the new entry (TTL = lifetime) and returns the old value,
 * from which the caller computes the same decision with decide().
 */
export const GREYLIST_SCRIPT = `
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local lifetime = tonumber(ARGV[3])
local old = redis.call('GET', KEYS[1])
local first, expires, passed
if old then
  local f, e, p = string.match(old, '^(%d+),(%d+),([01])$')
  if f then first = tonumber(f); expires = tonumber(e); passed = p end
end
if first == nil or now >= expires then
  redis.call('SET', KEYS[1], string.format('%.0f,%.0f,0', now, now + lifetime), 'PX', lifetime)
elseif passed == '1' or now >= first + delay then
  redis.call('SET', KEYS[1], string.format('%.0f,%.0f,1', first, now + lifetime), 'PX', lifetime)
end
return old
`;

const SCRIPT_SHA = createHash('sha1').update(GREYLIST_SCRIPT).digest('hex');

export interface RedisStoreOptions {
  /** Put before every key, e.g. "ldapmta:greylist:". */
  readonly prefix: string;
  /** A check slower than this is `unavailable`. Default 1000 ms. */
  readonly timeoutMs?: number;
}

/**
 * In Redis: one EVALSHA per check (an EVAL more after Redis lost its script cache). Give it a
 * connection without an offline queue (connectRedis in directory/cache.ts) so an outage answers
 * at once; the timeout covers any other connection.
 */
export function redisGreylistStore(redis: Redis, options: RedisStoreOptions): GreylistStore {
  const timeoutMs = options.timeoutMs ?? 1000;

  async function run(key: string, args: string[]): Promise<string | null> {
    try {
      return (await redis.evalsha(SCRIPT_SHA, 1, key, ...args)) as string | null;
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err;
      return (await redis.eval(GREYLIST_SCRIPT, 1, key, ...args)) as string | null;
    }
  }

  return {
    async check(key, now, timing) {
      const at = Math.floor(now);
      const args = [String(at), String(Math.round(timing.delaySeconds * 1000)), String(Math.max(1, Math.round(timing.lifetimeSeconds * 1000)))];
      let timer: NodeJS.Timeout | undefined;
      try {
        const work = run(options.prefix + key, args);
        work.catch(() => undefined);
        const old = await Promise.race([work, new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
        })]);
        return { status: 'checked', ...decide(parseEntry(old), at, timing) };
      } catch (err) {
        return { status: 'unavailable', error: (err as Error).message };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export interface PassCacheOptions {
  /** A pass is answered from memory for this long; 0 turns the cache off. */
  readonly ttlMs: number;
  /** At most this many remembered passes (the oldest go first). Default 100 000. */
  readonly maxEntries?: number;
}

/**
 * Passes remembered in this process in front of a shared store: a triplet that passed is answered
 * `pass` for ttlMs without a round trip, after which the store is asked again (and its entry's
 * lifetime renewed). Refusals and failures are never remembered, so a first attempt always
 * reaches the store. The cost: a triplet removed from Redis by hand still passes on a node that
 * remembers it, for up to ttlMs.
 */
export function passCachedStore(inner: GreylistStore, options: PassCacheOptions): GreylistStore {
  if (options.ttlMs <= 0) return inner;
  const max = Math.max(1, options.maxEntries ?? 100_000);
  /** key → the decision's entry and when it stops being answered from here; in insertion order. */
  const passes = new Map<string, { entry: GreylistEntry; until: number }>();
  return {
    async check(key, now, timing) {
      const remembered = passes.get(key);
      if (remembered !== undefined && now < remembered.until && now < remembered.entry.expiresAt) {
        return { status: 'checked', pass: true, entry: remembered.entry };
      }
      passes.delete(key);
      const result = await inner.check(key, now, timing);
      if (result.status === 'checked' && result.pass) {
        passes.set(key, { entry: result.entry, until: now + options.ttlMs });
        if (passes.size > max) passes.delete(passes.keys().next().value!);
      }
      return result;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One attempt, end to end

export interface GreylistAttempt {
  readonly ip: string;
  /** "local@domain", or null for the null sender. */
  readonly sender: string | null;
  readonly recipient: string;
  /** SPF passed and the configuration skips greylisting then. */
  readonly spfPass?: boolean;
}

export type GreylistOutcome =
  | { readonly action: 'exempt'; readonly reason: 'network' | 'domain' | 'spf-pass' }
  | { readonly action: 'pass' }
  /** Answer `error` (451 4.7.1) to this RCPT. */
  | { readonly action: 'defer'; readonly retryAfterSeconds: number; readonly error: MailError }
  /** The store failed: accept (fail open). Already logged when a logger was given. */
  | { readonly action: 'unavailable'; readonly error: string };

export interface GreylistDeps {
  readonly store: GreylistStore;
  readonly whitelist: GreylistWhitelist;
  readonly log?: Logger;
  readonly now?: () => number;
}

/**
 * Exemptions, then the store. Logs a store failure at warn once per outage (and that it is over).
 * Per-recipient opt-out (a directory attribute) is the caller's: do not call this for such a recipient.
 */
export function createGreylist(timing: GreylistTiming, deps: GreylistDeps): { check(attempt: GreylistAttempt): Promise<GreylistOutcome> } {
  const now = deps.now ?? Date.now;
  let failing = false;
  return {
    async check(attempt) {
      const exempt = greylistExemption({ ip: attempt.ip, sender: attempt.sender, spfPass: attempt.spfPass ?? false }, deps.whitelist);
      if (exempt !== null) return { action: 'exempt', reason: exempt };
      const result = await deps.store.check(greylistKey(greylistTriplet(attempt.ip, attempt.sender, attempt.recipient)), now(), timing);
      if (result.status === 'unavailable') {
        if (!failing) deps.log?.warn({ err: result.error }, 'greylist store unavailable; accepting mail without greylisting');
        failing = true;
        return { action: 'unavailable', error: result.error };
      }
      if (failing) deps.log?.info('greylist store is back');
      failing = false;
      if (result.pass) return { action: 'pass' };
      const retryAfterSeconds = result.retryAfterSeconds ?? Math.max(1, Math.ceil(timing.delaySeconds));
      return { action: 'defer', retryAfterSeconds, error: greylistError(retryAfterSeconds) };
    },
  };
}
