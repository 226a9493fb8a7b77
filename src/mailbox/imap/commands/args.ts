// Reading command arguments: astrings, numbers, flag lists, dates. Pure; a wrong argument gives
// an ArgError whose text the session sends with BAD.
import type { Token } from '../types.ts';

export class ArgError extends Error {}

/** An astring (atom, quoted string or literal) as text (UTF-8). */
export function text(token: Token | undefined, what: string): string {
  if (token === undefined) throw new ArgError(`${what} is missing`);
  if (token.type === 'atom' && token.section === undefined) return token.value;
  if (token.type === 'string') return token.value.toString('utf8');
  throw new ArgError(`${what} must be a string`);
}

/** A folder name argument: "INBOX" in any case is INBOX. */
export function folderName(token: Token | undefined): string {
  const name = text(token, 'the folder name');
  return /^inbox$/i.test(name) ? 'INBOX' : /^inbox\./i.test(name) ? `INBOX${name.slice(5)}` : name;
}

export function atom(token: Token | undefined, what: string): string {
  if (token?.type !== 'atom' || token.section !== undefined) throw new ArgError(`${what} is missing or not an atom`);
  return token.value;
}

export function items(token: Token | undefined, what: string): readonly Token[] {
  if (token === undefined) throw new ArgError(`${what} is missing`);
  return token.type === 'list' ? token.items : [token];
}

/** A flag list "(\Seen \Flagged)" or a single flag. */
export function flags(token: Token | undefined): string[] {
  return items(token, 'the flag list').map((t) => {
    if (t.type !== 'atom' || !/^\\?[^\s()\\{"%*\]]+$/.test(t.value)) throw new ArgError('flags must be atoms like \\Seen');
    return t.value;
  });
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** RFC 3501 date-time "17-Jul-1996 02:44:25 -0700"; null when malformed. Pure. */
export function parseDateTime(value: string): Date | null {
  const m = /^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(value);
  if (m === null) return null;
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  if (month === -1) return null;
  const offset = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  const ms = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6])) - offset * 60_000;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) || Number(m[1]) > 31 || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60 ? null : date;
}
