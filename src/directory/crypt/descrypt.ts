// Traditional DES crypt(3) (FIPS 46 DES, 25 encryptions of a zero block, salt-swapped E bits), from the
// published descriptions. Computes the 13-character string only; never compares or logs a password.
import { CRYPT_ALPHABET } from './crypt64.ts';

// FIPS 46 tables, 1-based bit positions.
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
  62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
  57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
  61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];
const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];
const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
  41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
const S_BOXES = [
  [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
    4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
  [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
    0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
  [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
    13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
  [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
    10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
  [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
    4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
  [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
    9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
  [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
    1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
  [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
    7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
];
/** The final permutation is the inverse of IP. */
const FP = IP.map((_, i) => IP.indexOf(i + 1) + 1);
/** E: each 6-bit row r takes R bits 4r-1 … 4r+4 (1-based, wrapping). */
const E = Array.from({ length: 48 }, (_, i) => ((4 * Math.floor(i / 6) + (i % 6) - 1 + 32) % 32) + 1);

type Bits = Uint8Array;

function permute(input: Bits, table: readonly number[]): Bits {
  return Uint8Array.from(table, (position) => input[position - 1] ?? 0);
}

function rotateLeft(half: Bits, count: number): Bits {
  return Uint8Array.from(half, (_, i) => half[(i + count) % half.length] ?? 0);
}

function subkeys(key: Bits): Bits[] {
  const cd = permute(key, PC1);
  let c = cd.subarray(0, 28);
  let d = cd.subarray(28);
  return SHIFTS.map((shift) => {
    c = rotateLeft(c, shift);
    d = rotateLeft(d, shift);
    return permute(Uint8Array.of(...c, ...d), PC2);
  });
}

/** The salted E table: salt bit k swaps entries k and k+24 (k = 0 … 11). */
function saltedE(salt: number): number[] {
  const table = [...E];
  for (let k = 0; k < 12; k++) {
    if ((salt >> k) & 1) [table[k], table[k + 24]] = [table[k + 24] ?? 0, table[k] ?? 0];
  }
  return table;
}

function feistel(right: Bits, subkey: Bits, eTable: readonly number[]): Bits {
  const x = permute(right, eTable).map((bit, i) => bit ^ (subkey[i] ?? 0));
  const out = new Uint8Array(32);
  for (let box = 0; box < 8; box++) {
    const b = x.subarray(6 * box, 6 * box + 6);
    const row = ((b[0] ?? 0) << 1) | (b[5] ?? 0);
    const column = ((b[1] ?? 0) << 3) | ((b[2] ?? 0) << 2) | ((b[3] ?? 0) << 1) | (b[4] ?? 0);
    const value = S_BOXES[box]?.[row * 16 + column] ?? 0;
    for (let j = 0; j < 4; j++) out[4 * box + j] = (value >> (3 - j)) & 1;
  }
  return permute(out, P);
}

function encryptBlock(block: Bits, keys: readonly Bits[], eTable: readonly number[]): Bits {
  const lr = permute(block, IP);
  let left = lr.subarray(0, 32);
  let right = lr.subarray(32);
  for (const subkey of keys) {
    const next = feistel(right, subkey, eTable).map((bit, i) => bit ^ (left[i] ?? 0));
    left = right;
    right = next;
  }
  return permute(Uint8Array.of(...right, ...left), FP);
}

/** Key bits: seven low bits of each of the first eight bytes, shifted left one (parity bit 0). */
function keyBits(password: Buffer): Bits {
  const key = new Uint8Array(64);
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 7; j++) key[8 * i + j] = ((password[i] ?? 0) >> (6 - j)) & 1;
  }
  return key;
}

function encodeBlock(block: Bits): string {
  let out = '';
  for (let i = 0; i < 11; i++) {
    let value = 0;
    for (let j = 0; j < 6; j++) value = (value << 1) | (block[6 * i + j] ?? 0);
    out += CRYPT_ALPHABET[value];
  }
  return out;
}

/** crypt(3) with a two-character salt from the crypt alphabet; null for any other setting. */
export function desCrypt(password: Buffer, setting: string): string | null {
  const saltText = setting.slice(0, 2);
  const low = CRYPT_ALPHABET.indexOf(saltText[0] ?? '');
  const high = CRYPT_ALPHABET.indexOf(saltText[1] ?? '');
  if (saltText.length !== 2 || low < 0 || high < 0) return null;
  const keys = subkeys(keyBits(password));
  const eTable = saltedE(low | (high << 6));
  let block: Bits = new Uint8Array(64);
  for (let i = 0; i < 25; i++) block = encryptBlock(block, keys, eTable);
  return saltText + encodeBlock(block);
}
