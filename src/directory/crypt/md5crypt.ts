// MD5-crypt ("$1$", Poul-Henning Kamp's FreeBSD scheme), written from the published description.
// Computes the crypt string for a password and a setting; never compares or logs a password.
import { createHash } from 'node:crypto';
import { encodeTriples, repeatTo, to64 } from './crypt64.ts';

const MAGIC = '$1$';
const ROUNDS = 1000;
const TRIPLES = [[0, 6, 12], [1, 7, 13], [2, 8, 14], [3, 9, 15], [4, 10, 5]] as const;

function md5(...parts: Uint8Array[]): Buffer {
  const hash = createHash('md5');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** The initial digest: password, magic, salt, the alternate digest and the length-bit mix. */
function initialDigest(password: Buffer, salt: Buffer): Buffer {
  const alternate = md5(password, salt, password);
  const parts: Uint8Array[] = [password, Buffer.from(MAGIC), salt, repeatTo(alternate, password.length)];
  for (let bits = password.length; bits > 0; bits >>>= 1) {
    parts.push(bits & 1 ? Buffer.of(0) : password.subarray(0, 1));
  }
  return md5(...parts);
}

function stretch(digest: Buffer, password: Buffer, salt: Buffer): Buffer {
  let current = digest;
  for (let i = 0; i < ROUNDS; i++) {
    const parts: Uint8Array[] = [i & 1 ? password : current];
    if (i % 3 !== 0) parts.push(salt);
    if (i % 7 !== 0) parts.push(password);
    parts.push(i & 1 ? current : password);
    current = md5(...parts);
  }
  return current;
}

/** crypt(3) for a "$1$salt[$...]" setting (salt: up to 8 characters); null for any other setting. */
export function md5Crypt(password: Buffer, setting: string): string | null {
  if (!setting.startsWith(MAGIC)) return null;
  const saltText = (setting.slice(MAGIC.length).split('$')[0] ?? '').slice(0, 8);
  const salt = Buffer.from(saltText, 'latin1');
  const final = stretch(initialDigest(password, salt), password, salt);
  return `${MAGIC}${saltText}$${encodeTriples(final, TRIPLES)}${to64(0, 0, final[11] ?? 0, 2)}`;
}
