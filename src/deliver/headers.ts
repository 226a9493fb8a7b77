// Reads the header section of a stored message (streaming, capped) and returns the values of the
// fields asked for. Used for loop detection before a delivery; never reads the body.
import type { Readable } from 'node:stream';

const MAX_HEADER_BYTES = 256 * 1024;

/** Values of the named fields (lower-case names), unfolded and trimmed, in order. */
export async function headerValues(message: Readable, names: readonly string[]): Promise<Map<string, string[]>> {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const found = new Map<string, string[]>(names.map((n) => [n.toLowerCase(), []]));
  let text = '';
  for await (const chunk of message) {
    text += (chunk as Buffer).toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    if (end >= 0) {
      text = text.slice(0, end);
      break;
    }
    if (text.length > MAX_HEADER_BYTES) break;
  }
  message.destroy();
  return fieldValues(text, wanted, found);
}

/** The same for a message already in memory. Pure. */
export function headerValuesOf(message: Buffer, names: readonly string[]): Map<string, string[]> {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const found = new Map<string, string[]>(names.map((n) => [n.toLowerCase(), []]));
  let text = message.subarray(0, MAX_HEADER_BYTES).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  if (end >= 0) text = text.slice(0, end);
  return fieldValues(text, wanted, found);
}

function fieldValues(header: string, wanted: ReadonlySet<string>, found: Map<string, string[]>): Map<string, string[]> {
  for (const field of header.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (wanted.has(name)) found.get(name)!.push(field.slice(colon + 1).trim());
  }
  return found;
}
