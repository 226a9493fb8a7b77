// Queue ids: time-sortable, unique per host and process, safe as a file name ([0-9a-v], 20 chars).
// Owns the id format and its check; never touches the disk.
import { randomBytes } from 'node:crypto';
import type { MessageId } from '../mail.ts';

const DIGITS = '0123456789abcdefghijklmnopqrstuv'; // base32hex: lexical order = numeric order
const ID_PATTERN = /^[0-9a-v]{20}$/;

let lastTime = 0;
let sequence = 0;

function base32(value: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = DIGITS[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

/**
 * 10 chars of milliseconds since the epoch, 4 of a per-millisecond sequence, 6 random (30 bits).
 * The clock is made monotonic within the process, so ids from one process sort in creation order.
 */
export function newMessageId(now: number = Date.now()): MessageId {
  if (now > lastTime) {
    lastTime = now;
    sequence = 0;
  } else if (++sequence >= 32 ** 4) {
    lastTime++; // more than a million ids in one millisecond: borrow the next one
    sequence = 0;
  }
  const random = randomBytes(4).readUInt32BE(0) % 32 ** 6;
  return base32(lastTime, 10) + base32(sequence, 4) + base32(random, 6);
}

export function isMessageId(text: string): boolean {
  return ID_PATTERN.test(text);
}

/** The creation time written into the id. */
export function idTime(id: MessageId): number {
  let value = 0;
  for (const c of id.slice(0, 10)) value = value * 32 + DIGITS.indexOf(c);
  return value;
}
