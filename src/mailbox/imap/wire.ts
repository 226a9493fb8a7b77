// IMAP's string forms (RFC 3501 §4.3, §9): quoted where the bytes allow, a literal where they do
// not, NIL for absent values. Pure functions; every response text is built through them.

/** A quoted string when the text is short 7-bit without CR, LF or NUL; otherwise a literal. */
export function istring(value: string | Buffer): string {
  const text = typeof value === 'string' ? value : value.toString('latin1');
  if (text.length < 1024 && /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(text)) {
    return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return `{${bytes.length}}\r\n${bytes.toString('latin1')}`;
}

/** nstring: NIL for null or undefined. */
export function nstring(value: string | Buffer | null | undefined): string {
  return value === null || value === undefined ? 'NIL' : istring(value);
}

/** astring for a mailbox name or similar: an atom when it is one, else istring. */
export function astring(value: string): string {
  return /^[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|~\]]+$/.test(value) ? value : istring(value);
}

/** A literal of raw bytes (the response is assembled as latin1 text, so every byte survives). */
export function literal(bytes: Buffer): string {
  return `{${bytes.length}}\r\n${bytes.toString('latin1')}`;
}

/** A parenthesised list of already formatted items; NIL for an empty list when `nilIfEmpty`. */
export function list(items: readonly string[], nilIfEmpty = false): string {
  return items.length === 0 && nilIfEmpty ? 'NIL' : `(${items.join(' ')})`;
}

/** RFC 3501 date-time: "17-Jul-1996 02:44:25 -0700" (written in UTC). */
export function dateTime(date: Date): string {
  const day = String(date.getUTCDate()).padStart(2, ' ');
  const month = MONTHS[date.getUTCMonth()];
  const time = [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  return `"${day}-${month}-${date.getUTCFullYear()} ${time} +0000"`;
}

export const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
