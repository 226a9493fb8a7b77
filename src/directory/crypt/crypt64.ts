// The crypt(3) "base64" alphabet and the byte-group encodings shared by the crypt implementations.
// Pure encoding helpers only; never hashes, compares or decides whether a password is right.

export const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `count` characters of the 24-bit value b2‖b1‖b0, least significant six bits first. */
export function to64(b2: number, b1: number, b0: number, count: number): string {
  let value = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < count; i++) {
    out += CRYPT_ALPHABET[value & 0x3f];
    value >>>= 6;
  }
  return out;
}

/** Encodes `bytes` as the listed [b2, b1, b0] index triples, four characters each. */
export function encodeTriples(bytes: Uint8Array, triples: readonly (readonly number[])[]): string {
  let out = '';
  for (const [b2 = 0, b1 = 0, b0 = 0] of triples) {
    out += to64(bytes[b2] ?? 0, bytes[b1] ?? 0, bytes[b0] ?? 0, 4);
  }
  return out;
}

/** `source` repeated (and cut) to exactly `length` bytes. */
export function repeatTo(source: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = source[i % source.length] ?? 0;
  return out;
}
