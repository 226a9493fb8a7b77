// Checks a login password against a stored userPassword value (RFC 2307 "{SCHEME}value" forms,
// crypt(3) strings, PHC Argon2). Never throws on bad input, never logs or returns a hash or password.
import { createHash, timingSafeEqual } from 'node:crypto';
import { argon2Verify, bcryptVerify } from 'hash-wasm';
import { desCrypt } from './crypt/descrypt.ts';
import { md5Crypt } from './crypt/md5crypt.ts';
import { shaCrypt } from './crypt/shacrypt.ts';
import { systemCrypt } from './crypt/system.ts';

export interface VerifyOptions {
  allowCleartext: boolean;
}

interface DigestScheme {
  readonly algorithm: string;
  readonly size: number;
  readonly salted: boolean;
}

const DIGEST_SCHEMES: Readonly<Record<string, DigestScheme>> = {
  MD5: { algorithm: 'md5', size: 16, salted: false },
  SMD5: { algorithm: 'md5', size: 16, salted: true },
  SHA: { algorithm: 'sha1', size: 20, salted: false },
  SSHA: { algorithm: 'sha1', size: 20, salted: true },
  SHA256: { algorithm: 'sha256', size: 32, salted: false },
  SSHA256: { algorithm: 'sha256', size: 32, salted: true },
  SHA384: { algorithm: 'sha384', size: 48, salted: false },
  SSHA384: { algorithm: 'sha384', size: 48, salted: true },
  SHA512: { algorithm: 'sha512', size: 64, salted: false },
  SSHA512: { algorithm: 'sha512', size: 64, salted: true },
};

type CryptFamily = 'md5' | 'sha256' | 'sha512' | 'bcrypt' | 'yescrypt' | 'des';

/** Dovecot's scheme names for crypt strings: the value must be of that one family. */
const CRYPT_FAMILY_SCHEMES: Readonly<Record<string, CryptFamily>> = {
  'MD5-CRYPT': 'md5',
  'SHA256-CRYPT': 'sha256',
  'SHA512-CRYPT': 'sha512',
  'BLF-CRYPT': 'bcrypt',
};

const OTHER_SCHEMES = new Set(['CRYPT', 'ARGON2', 'CLEARTEXT', 'PLAIN']);

/** bcrypt uses at most 72 password bytes; longer ones are cut, as every bcrypt does. */
const BCRYPT_MAX_BYTES = 72;

function splitScheme(stored: string): { scheme: string; value: string } | null {
  const match = /^\{([A-Za-z0-9._-]+)\}/.exec(stored);
  if (match === null || match[1] === undefined) return null;
  return { scheme: match[1].toUpperCase(), value: stored.slice(match[0].length) };
}

function isKnownScheme(scheme: string): boolean {
  return scheme in DIGEST_SCHEMES || scheme in CRYPT_FAMILY_SCHEMES || OTHER_SCHEMES.has(scheme);
}

/** The crypt(3) family of a string, or null when it is not one (crypt strings are printable ASCII). */
function cryptFamily(value: string): CryptFamily | null {
  if (!/^[\x21-\x7e]+$/.test(value)) return null;
  if (value.startsWith('$1$')) return 'md5';
  if (value.startsWith('$5$')) return 'sha256';
  if (value.startsWith('$6$')) return 'sha512';
  if (/^\$2[aby]\$/.test(value)) return 'bcrypt';
  if (value.startsWith('$y$')) return 'yescrypt';
  if (/^[./0-9A-Za-z]{13}$/.test(value)) return 'des';
  return null;
}

/** Constant-time equality that also hides the lengths: compares SHA-256 digests of both sides. */
function sameBytes(a: string | Buffer, b: string | Buffer): boolean {
  const digestA = createHash('sha256').update(a).digest();
  const digestB = createHash('sha256').update(b).digest();
  return timingSafeEqual(digestA, digestB);
}

/** Strict base64: canonical alphabet, padding only to a multiple of four, no stray bits. */
function decodeBase64(value: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return null;
  if (value.includes('=') && value.length % 4 !== 0) return null;
  const bytes = Buffer.from(value, 'base64');
  const canonical = bytes.toString('base64').replace(/=+$/, '');
  return canonical === value.replace(/=+$/, '') ? bytes : null;
}

/** {SHA}-style base64(H(pw)) or salted base64(H(pw‖salt)‖salt); a salt of at least one byte. */
function verifyDigest(scheme: DigestScheme, value: string, password: Buffer): boolean {
  const raw = decodeBase64(value);
  if (raw === null) return false;
  const sizeOk = scheme.salted ? raw.length > scheme.size : raw.length === scheme.size;
  if (!sizeOk) return false;
  const expected = raw.subarray(0, scheme.size);
  const actual = createHash(scheme.algorithm).update(password).update(raw.subarray(scheme.size)).digest();
  return timingSafeEqual(actual, expected);
}

async function verifyBcrypt(value: string, password: Buffer): Promise<boolean> {
  return bcryptVerify({ password: password.subarray(0, BCRYPT_MAX_BYTES), hash: value });
}

async function computeCrypt(family: CryptFamily, value: string, password: Buffer): Promise<string | null> {
  switch (family) {
    case 'md5':
      return md5Crypt(password, value);
    case 'sha256':
    case 'sha512':
      return shaCrypt(password, value);
    case 'des':
      return desCrypt(password, value);
    default:
      return null;
  }
}

/** A crypt(3) string, optionally required to be of one family. yescrypt goes to the system's crypt(3). */
async function verifyCrypt(value: string, password: Buffer, required?: CryptFamily): Promise<boolean> {
  const family = cryptFamily(value);
  if (family === null || (required !== undefined && family !== required)) return false;
  if (family === 'bcrypt') return verifyBcrypt(value, password);
  const computed = family === 'yescrypt' ? await systemCrypt(password, value) : await computeCrypt(family, value, password);
  return computed !== null && sameBytes(computed, value);
}

async function verifyArgon2(value: string, password: Buffer): Promise<boolean> {
  if (!/^\$argon2(?:id|i|d)\$/.test(value)) return false;
  return argon2Verify({ password, hash: value });
}

async function verifyWithScheme(scheme: string, value: string, password: Buffer, options: VerifyOptions): Promise<boolean> {
  const digest = DIGEST_SCHEMES[scheme];
  if (digest !== undefined) return verifyDigest(digest, value, password);
  const family = CRYPT_FAMILY_SCHEMES[scheme];
  if (family !== undefined) return verifyCrypt(value, password, family);
  switch (scheme) {
    case 'CRYPT':
      return verifyCrypt(value, password);
    case 'ARGON2':
      return verifyArgon2(value, password);
    case 'CLEARTEXT':
    case 'PLAIN':
      return options.allowCleartext && value.length > 0 && sameBytes(Buffer.from(value), password);
    default:
      return false;
  }
}

/**
 * true when `password` matches the stored userPassword value; false for a mismatch, an unknown
 * scheme (fail closed), or a malformed stored value. Never throws for bad input. A password that
 * is empty or contains NUL never matches (crypt(3) could not have hashed it whole).
 */
export async function verifyPassword(stored: string, password: string, options: VerifyOptions): Promise<boolean> {
  if (typeof stored !== 'string' || typeof password !== 'string') return false;
  if (password.length === 0 || password.includes('\0')) return false;
  const pw = Buffer.from(password, 'utf8');
  try {
    const parsed = splitScheme(stored);
    if (parsed === null) return await verifyCrypt(stored, pw);
    return await verifyWithScheme(parsed.scheme, parsed.value, pw, options);
  } catch {
    return false;
  }
}

/** the scheme name in upper case ("SSHA", "CRYPT", "ARGON2", "NONE" for a bare crypt string, "UNKNOWN") – for logs; never reveals the hash */
export function passwordScheme(stored: string): string {
  if (typeof stored !== 'string') return 'UNKNOWN';
  const parsed = splitScheme(stored);
  if (parsed === null) return cryptFamily(stored) === null ? 'UNKNOWN' : 'NONE';
  return isKnownScheme(parsed.scheme) ? parsed.scheme : 'UNKNOWN';
}
