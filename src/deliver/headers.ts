// Reads the header section of a stored message (streaming, capped) and returns the values of the
// fields asked for. Used for loop detection before a delivery; never reads the body. Also drops
// header fields, from a whole message (withoutFields) or from one streaming past (FieldFilter).
import { type Readable, Transform, type TransformCallback } from 'node:stream';

const MAX_HEADER_BYTES = 256 * 1024;

/** Values of the named fields (lower-case names), unfolded and trimmed, in order. */
export async function headerValues(message: Readable, names: readonly string[]): Promise<Map<string, string[]>> {
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
  return fieldValues(text, names);
}

/** The same for a message already in memory. Pure. */
export function headerValuesOf(message: Buffer, names: readonly string[]): Map<string, string[]> {
  const text = message.subarray(0, MAX_HEADER_BYTES).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return fieldValues(end >= 0 ? text.slice(0, end) : text, names);
}

/** The header section's fields: the values of those in `names`, by lower-case name. Pure. */
function fieldValues(header: string, names: readonly string[]): Map<string, string[]> {
  const found = new Map<string, string[]>(names.map((n) => [n.toLowerCase(), []]));
  for (const field of header.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    found.get(name)?.push(field.slice(colon + 1).trim());
  }
  return found;
}

/**
 * The message without the header fields `drop` names (folded lines included), the body untouched:
 * what an MX does to X-Spam-* fields and Authentication-Results claiming its own name that arrive
 * from outside (RFC 8601 §5). Pure.
 */
export function withoutFields(message: Buffer, drop: (name: string, value: string) => boolean): Buffer {
  const text = message.subarray(0, MAX_HEADER_BYTES).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0) return message;
  const lines = text.slice(0, end).split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  let changed = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^[ \t]/.test(line)) {
      if (!dropping) kept.push(line);
      continue;
    }
    const colon = line.indexOf(':');
    // The whole field (with its folded continuation lines) for the test.
    let value = colon > 0 ? line.slice(colon + 1) : '';
    for (let j = i + 1; j < lines.length && /^[ \t]/.test(lines[j]!); j++) value += lines[j]!;
    dropping = colon > 0 && drop(line.slice(0, colon).trim().toLowerCase(), value.replace(/\r?\n/g, '').trim());
    if (dropping) changed = true;
    else kept.push(line);
  }
  if (!changed) return message;
  // The separator after the last kept field comes with the rest of the message.
  return Buffer.concat([Buffer.from(kept.join('').replace(/\r?\n$/, ''), 'latin1'), message.subarray(end)]);
}

/**
 * withoutFields() as a stream: holds the header section (at most MAX_HEADER_BYTES, as
 * withoutFields reads) until its empty line, lets withoutFields drop the fields, then passes
 * the body through untouched. Its output equals withoutFields() of the whole input.
 */
export class FieldFilter extends Transform {
  private head: Buffer[] = [];
  private headLength = 0;
  private passing = false;

  constructor(private readonly dropField: (name: string, value: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.passing) {
      callback(null, chunk);
      return;
    }
    // Where an empty line could start: from the last 2 bytes already held ("\n" + "\r\n" across chunks).
    const from = Math.max(0, this.headLength - 2);
    this.head.push(chunk);
    this.headLength += chunk.length;
    const held = Buffer.concat(this.head, this.headLength);
    if (this.headLength >= MAX_HEADER_BYTES || held.indexOf('\n\n', from) >= 0 || held.indexOf('\n\r\n', from) >= 0) this.release(held);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.passing) this.release(Buffer.concat(this.head, this.headLength));
    callback();
  }

  private release(held: Buffer): void {
    this.passing = true;
    this.head = [];
    this.push(withoutFields(held, this.dropField));
  }
}
