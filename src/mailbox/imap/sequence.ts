// RFC 3501 sequence sets (§9 `sequence-set`): parsing, membership, expansion against the numbers
// in use, the UID form (§6.4.8) and the compact text form for UIDPLUS and SEARCH answers.
// Pure functions; `*` stays symbolic until a function is told the largest number in use.

/** One end of a range: a number, or `*` (the largest number in use). */
export type SeqNumber = number | '*';

/** One item of a set: `n` is `{ from: n, to: n }`; `5:1` is kept as sent (ends are unordered). */
export interface SeqRange {
  readonly from: SeqNumber;
  readonly to: SeqNumber;
}

/** A parsed sequence set: one or more ranges, never empty. */
export type SequenceSet = readonly SeqRange[];

/** The largest number a sequence set may name (nz-number is 32-bit unsigned). */
export const MAX_SEQ_NUMBER = 4294967295;

/** `1`, `1:5`, `5:1`, `*`, `3:*`, `1,3:4,9`; null when the text is not a sequence set (`$` included). */
export function parseSequenceSet(text: string): SequenceSet | null {
  const ranges: SeqRange[] = [];
  for (const item of text.split(',')) {
    const range = parseRange(item);
    if (range === null) return null;
    ranges.push(range);
  }
  return ranges;
}

function parseRange(item: string): SeqRange | null {
  const ends = item.split(':');
  if (ends.length > 2) return null;
  const from = parseEnd(ends[0] ?? '');
  const to = ends.length === 2 ? parseEnd(ends[1] ?? '') : from;
  return from === null || to === null ? null : { from, to };
}

function parseEnd(text: string): SeqNumber | null {
  if (text === '*') return '*';
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return null;
  const n = Number(text);
  return n <= MAX_SEQ_NUMBER ? n : null;
}

/** A range as an ordered pair of numbers, `*` read as `max`; null when it names `*` and max is 0. */
function resolve(range: SeqRange, max: number): [number, number] | null {
  if ((range.from === '*' || range.to === '*') && max < 1) return null;
  const a = range.from === '*' ? max : range.from;
  const b = range.to === '*' ? max : range.to;
  return a <= b ? [a, b] : [b, a];
}

/** Whether n is in the set, `*` meaning max (nothing when max is 0). n itself is not checked against max. */
export function inSet(set: SequenceSet, n: number, max: number): boolean {
  for (const range of set) {
    const bounds = resolve(range, max);
    if (bounds !== null && bounds[0] <= n && n <= bounds[1]) return true;
  }
  return false;
}

/** The numbers 1..max in the set, ascending and unique; the work is bounded by the set's size and max. */
export function expand(set: SequenceSet, max: number): number[] {
  const intervals: [number, number][] = [];
  for (const range of set) {
    const bounds = resolve(range, max);
    if (bounds === null) continue;
    const lo = Math.max(bounds[0], 1);
    const hi = Math.min(bounds[1], max);
    if (lo <= hi) intervals.push([lo, hi]);
  }
  return enumerate(intervals);
}

/**
 * For UID commands: the sequence numbers (ascending, unique) of the messages whose UID is in the set.
 * `uids` is ascending, index = sequence number - 1. `*` is the highest UID in use, so `N:*` with N above
 * it still names the last message (RFC 3501 §6.4.8); with no messages nothing matches.
 */
export function seqForUids(uids: readonly number[], set: SequenceSet): number[] {
  const highest = uids.length > 0 ? (uids[uids.length - 1] ?? 0) : 0;
  const intervals: [number, number][] = [];
  for (const range of set) {
    const bounds = resolve(range, highest);
    if (bounds === null) continue;
    const first = lowerBound(uids, bounds[0]);
    const last = lowerBound(uids, bounds[1] + 1) - 1;
    if (first <= last) intervals.push([first + 1, last + 1]);
  }
  return enumerate(intervals);
}

/** The first index whose value is >= target (uids.length when none). */
function lowerBound(values: readonly number[], target: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] ?? 0) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Every number in the union of inclusive intervals, ascending and unique. */
function enumerate(intervals: [number, number][]): number[] {
  intervals.sort((x, y) => x[0] - y[0]);
  const out: number[] = [];
  let next = 1;
  for (const [lo, hi] of intervals) {
    for (let n = Math.max(lo, next); n <= hi; n++) out.push(n);
    next = Math.max(next, hi + 1);
  }
  return out;
}

/**
 * The compact text of a list of numbers, in the order given: runs of consecutive ascending numbers become
 * ranges (`1,2,3,7,9,10` → `1:3,7,9:10`). Not sorted here, so COPYUID's two lists keep their pairing;
 * sort first for the shortest form. An empty list gives ''.
 */
export function compress(numbers: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < numbers.length) {
    const start = numbers[i] ?? 0;
    let end = start;
    while (i + 1 < numbers.length && numbers[i + 1] === end + 1) {
      end += 1;
      i += 1;
    }
    parts.push(start === end ? String(start) : `${start}:${end}`);
    i += 1;
  }
  return parts.join(',');
}
