// Sender Rewriting Scheme (Shevek's SRS0/SRS1, as libsrs2 and postsrsd write it): the envelope
// sender of a forwarded copy becomes an address of ours that only we can turn back, so the next
// hop's SPF check passes and a bounce still finds the original sender. Pure: the day number is
// passed in, the HMAC is a function of its inputs.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Address } from '../mail.ts';

export interface SrsKeys {
  /** Secrets: the first signs, every one verifies (so a secret can be rotated). */
  readonly secrets: readonly string[];
  /** The domain of every rewritten address. */
  readonly domain: string;
  /** How many days a rewritten address stays valid (postsrsd: 21). */
  readonly maxAgeDays: number;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HASH_LENGTH = 4;

export function dayNumber(nowMs: number): number {
  return Math.floor(nowMs / 86_400_000);
}

function timestamp(day: number): string {
  const t = day % 1024;
  return BASE32[t >> 5]! + BASE32[t & 31]!;
}

function hash(secret: string, parts: readonly string[]): string {
  return createHmac('sha1', secret).update(parts.join('').toLowerCase()).digest('base64').slice(0, HASH_LENGTH);
}

function hashMatches(keys: SrsKeys, given: string, parts: readonly string[]): boolean {
  const wanted = Buffer.from(given.toLowerCase());
  return keys.secrets.some((secret) => {
    const mine = Buffer.from(hash(secret, parts).toLowerCase());
    return mine.length === wanted.length && timingSafeEqual(mine, wanted);
  });
}

/** Is this local part an SRS address (of anybody's)? */
export function isSrs(local: string): boolean {
  return /^SRS[01][=+-]/i.test(local);
}

/** The rewritten sender for a forwarded copy of mail from `sender`. */
export function srsForward(sender: Address, keys: SrsKeys, day: number): Address {
  const secret = keys.secrets[0]!;
  const m1 = /^SRS1[=+-]([^=]+)=([^=]+)=(.*)$/i.exec(sender.local);
  if (m1 !== null) {
    // Already an SRS1: keep the first hop and its opaque part, sign it again as ours.
    const [, , firstHop, opaque] = m1;
    return { local: `SRS1=${hash(secret, [firstHop!, opaque!])}=${firstHop}=${opaque}`, domain: keys.domain };
  }
  if (/^SRS0[=+-]/i.test(sender.local)) {
    // Somebody's SRS0: wrap it in an SRS1 naming that somebody as the hop to return to.
    const opaque = `=${sender.local.slice(5)}`;
    return { local: `SRS1=${hash(secret, [sender.domain, opaque])}=${sender.domain}=${opaque}`, domain: keys.domain };
  }
  const ts = timestamp(day);
  return { local: `SRS0=${hash(secret, [ts, sender.domain, sender.local])}=${ts}=${sender.domain}=${sender.local}`, domain: keys.domain };
}

export type SrsReverse =
  | { readonly ok: true; readonly address: Address }
  | { readonly ok: false; readonly reason: string };

/** The address an SRS address of ours stands for, if its hash and age are good. */
export function srsReverse(address: Address, keys: SrsKeys, day: number): SrsReverse {
  if (address.domain !== keys.domain) return { ok: false, reason: 'not our SRS domain' };
  const m0 = /^SRS0[=+-]([^=]+)=([A-Z2-7]{2})=([^=]+)=(.+)$/i.exec(address.local);
  if (m0 !== null) {
    const [, given, ts, domain, local] = m0;
    if (!hashMatches(keys, given!, [ts!, domain!, local!])) return { ok: false, reason: 'SRS hash does not match' };
    const stamp = (BASE32.indexOf(ts![0]!.toUpperCase()) << 5) | BASE32.indexOf(ts![1]!.toUpperCase());
    const age = (day % 1024 - stamp + 1024) % 1024;
    if (age > keys.maxAgeDays) return { ok: false, reason: 'SRS address expired' };
    return { ok: true, address: { local: local!, domain: domain!.toLowerCase() } };
  }
  // The opaque part keeps the first hop's own separator after its SRS0 (libsrs2 does so).
  const m1 = /^SRS1[=+-]([^=]+)=([^=]+)=([=+-].+)$/i.exec(address.local);
  if (m1 !== null) {
    const [, given, firstHop, opaque] = m1;
    if (!hashMatches(keys, given!, [firstHop!, opaque!])) return { ok: false, reason: 'SRS hash does not match' };
    return { ok: true, address: { local: `SRS0${opaque}`, domain: firstHop!.toLowerCase() } };
  }
  return { ok: false, reason: 'not an SRS address' };
}
