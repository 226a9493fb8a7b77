// SHA-256-crypt ("$5$") and SHA-512-crypt ("$6$") per Ulrich Drepper's specification.
// Computes the crypt string for a password and a setting; never compares or logs a password.
import { createHash } from 'node:crypto';
import { encodeTriples, repeatTo, to64 } from './crypt64.ts';

const DEFAULT_ROUNDS = 5000;
const MIN_ROUNDS = 1000;
const MAX_ROUNDS = 999_999_999;
const MAX_SALT = 16;

interface Variant { readonly algorithm: string; readonly size: number }

const VARIANTS: Readonly<Record<string, Variant>> = {
  '5': { algorithm: 'sha256', size: 32 },
  '6': { algorithm: 'sha512', size: 64 },
};

/** Triples (x, x+spread, x+2·spread) mod m for x = step·i mod m: the published output order. */
function rotatingTriples(count: number, step: number, spread: number, modulus: number): number[][] {
  return Array.from({ length: count }, (_, i) => {
    const x = (step * i) % modulus;
    return [x, (x + spread) % modulus, (x + 2 * spread) % modulus];
  });
}

const SHA256_TRIPLES = rotatingTriples(10, 21, 10, 30);
const SHA512_TRIPLES = rotatingTriples(21, 22, 21, 63);

function encodeDigest(variant: Variant, digest: Buffer): string {
  if (variant.size === 32) {
    return encodeTriples(digest, SHA256_TRIPLES) + to64(0, digest[31] ?? 0, digest[30] ?? 0, 3);
  }
  return encodeTriples(digest, SHA512_TRIPLES) + to64(0, 0, digest[63] ?? 0, 2);
}

export interface ShaSetting { readonly id: string; readonly rounds: number; readonly explicitRounds: boolean; readonly salt: string }

/**
 * Parses "$5$[rounds=N$]salt[$...]". Returns null for any other id and for a rounds field that
 * crypt(3) would rewrite (out of range or not canonical decimal): such a string is never a hash
 * crypt(3) produced, so a verifier may refuse it without spending the rounds.
 */
export function parseShaSetting(setting: string): ShaSetting | null {
  const match = /^\$([56])\$(?:rounds=([0-9]+)\$)?([^$]*)/.exec(setting);
  const id = match?.[1];
  if (match === null || id === undefined) return null;
  const roundsText = match[2];
  const salt = (match[3] ?? '').slice(0, MAX_SALT);
  if (roundsText === undefined) return { id, rounds: DEFAULT_ROUNDS, explicitRounds: false, salt };
  const rounds = Number(roundsText);
  if (String(rounds) !== roundsText || rounds < MIN_ROUNDS || rounds > MAX_ROUNDS) return null;
  return { id, rounds, explicitRounds: true, salt };
}

function hash(algorithm: string, ...parts: Uint8Array[]): Buffer {
  const h = createHash(algorithm);
  for (const part of parts) h.update(part);
  return h.digest();
}

/** Digest A (steps 1-12): password, salt, the alternate digest B and the length-bit mix. */
function digestA(algorithm: string, password: Buffer, salt: Buffer): Buffer {
  const b = hash(algorithm, password, salt, password);
  const parts: Uint8Array[] = [password, salt, repeatTo(b, password.length)];
  for (let bits = password.length; bits > 0; bits >>>= 1) parts.push(bits & 1 ? b : password);
  return hash(algorithm, ...parts);
}

/** The P (steps 13-16) and S (steps 17-20) byte sequences. */
function sequences(algorithm: string, password: Buffer, salt: Buffer, a: Buffer): [Buffer, Buffer] {
  const dp = hash(algorithm, ...Array<Uint8Array>(password.length).fill(password));
  const ds = hash(algorithm, ...Array<Uint8Array>(16 + (a[0] ?? 0)).fill(salt));
  return [repeatTo(dp, password.length), repeatTo(ds, salt.length)];
}

/** Rounds between two yields to the event loop: about 2 ms of SHA-512 here, so other sessions go on meanwhile. */
const ROUNDS_PER_SLICE = 1000;

/** Step 21: the rounds loop, in slices (5,000 rounds of SHA-512 take about 10 ms; the field allows 999,999,999). */
async function stretch(algorithm: string, rounds: number, a: Buffer, p: Buffer, s: Buffer): Promise<Buffer> {
  let c = a;
  for (let i = 0; i < rounds; i++) {
    if (i > 0 && i % ROUNDS_PER_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    const h = createHash(algorithm);
    h.update(i & 1 ? p : c);
    if (i % 3 !== 0) h.update(s);
    if (i % 7 !== 0) h.update(p);
    h.update(i & 1 ? c : p);
    c = h.digest();
  }
  return c;
}

/** crypt(3) for a "$5$" or "$6$" setting; null for any other or a non-canonical rounds field. */
export async function shaCrypt(password: Buffer, setting: string): Promise<string | null> {
  const parsed = parseShaSetting(setting);
  const variant = parsed === null ? undefined : VARIANTS[parsed.id];
  if (parsed === null || variant === undefined) return null;
  const salt = Buffer.from(parsed.salt, 'latin1');
  const a = digestA(variant.algorithm, password, salt);
  const [p, s] = sequences(variant.algorithm, password, salt, a);
  const c = await stretch(variant.algorithm, parsed.rounds, a, p, s);
  const roundsField = parsed.explicitRounds ? `rounds=${parsed.rounds}$` : '';
  return `$${parsed.id}$${roundsField}${parsed.salt}$${encodeDigest(variant, c)}`;
}
