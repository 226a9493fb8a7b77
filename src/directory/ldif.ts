// RFC 2849 LDIF content-record parser: text in, entries out, every error naming its line.
// Pure: never reads files (an "attr:< URL" value is rejected, not fetched), never touches LDAP.

/** One content record. Attribute names keep the spelling of their first occurrence. */
export interface LdifEntry {
  dn: string;
  attributes: Map<string, string[]>;
  /** 1-based line of the record's "dn:" line, for error messages; absent for hand-built entries. */
  line?: number;
}

/** A malformed LDIF input; `line` is the 1-based physical line the problem starts on. */
export class LdifError extends Error {
  readonly line: number;

  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'LdifError';
    this.line = line;
  }
}

/** The values of `name` in `entry`, matching the attribute name case-insensitively. */
export function getAttribute(entry: LdifEntry, name: string): string[] | undefined {
  const exact = entry.attributes.get(name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  for (const [key, values] of entry.attributes) {
    if (key.toLowerCase() === lower) return values;
  }
  return undefined;
}

/** The first value of `name`, case-insensitive on the name; undefined when absent. */
export function getFirstValue(entry: LdifEntry, name: string): string | undefined {
  return getAttribute(entry, name)?.[0];
}

interface LogicalLine {
  text: string;
  line: number;
}

/** AttributeDescription: a descriptor or numeric OID, then ;options (RFC 4512 §2.5). */
const ATTRIBUTE_DESCRIPTION = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)(?:;[A-Za-z0-9-]+)*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const utf8 = new TextDecoder('utf-8');

/**
 * Parse LDIF content records. Supports comments, folded lines, "attr: value", "attr:: base64"
 * (decoded as UTF-8), an optional leading "version: 1" and "changetype: add" (treated as content).
 * Throws LdifError naming the line for anything else, including "attr:< URL".
 */
export function parseLdif(text: string): LdifEntry[] {
  const records = splitRecords(text);
  const entries: LdifEntry[] = [];
  records.forEach((record, index) => {
    let lines = record;
    if (index === 0) {
      const first = lines[0];
      if (first !== undefined && /^version:/i.test(first.text)) {
        const version = first.text.slice('version:'.length).trim();
        if (version !== '1') throw new LdifError(first.line, `unsupported LDIF version "${version}" (only 1 is known)`);
        lines = lines.slice(1);
        if (lines.length === 0) return;
      }
    }
    entries.push(parseRecord(lines));
  });
  return entries;
}

/** Unfold continuation lines, drop comments, and group logical lines into blank-line-separated records. */
function splitRecords(text: string): LogicalLine[][] {
  const physical = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const records: LogicalLine[][] = [];
  let current: LogicalLine[] = [];
  let last: LogicalLine | null = null; // the logical line a continuation would extend
  let inComment = false; // a folded comment continues as comment

  physical.forEach((raw, i) => {
    const lineNo = i + 1;
    if (raw.startsWith(' ')) {
      if (inComment) return;
      if (last === null) throw new LdifError(lineNo, 'continuation line (starting with a space) with nothing to continue');
      last.text += raw.slice(1);
      return;
    }
    inComment = false;
    if (raw === '') {
      if (current.length > 0) records.push(current);
      current = [];
      last = null;
      return;
    }
    if (raw.startsWith('#')) {
      inComment = true;
      return;
    }
    last = { text: raw, line: lineNo };
    current.push(last);
  });
  if (current.length > 0) records.push(current);
  return records;
}

function parseRecord(lines: LogicalLine[]): LdifEntry {
  const [dnLine, ...rest] = lines;
  if (dnLine === undefined) throw new Error('unreachable: empty record');
  const dnSpec = splitLine(dnLine);
  if (dnSpec.name.toLowerCase() !== 'dn') {
    throw new LdifError(dnLine.line, `a record must start with "dn:", found "${dnSpec.name}:"`);
  }
  const entry: LdifEntry = { dn: dnSpec.value.trim(), attributes: new Map(), line: dnLine.line };
  const spellings = new Map<string, string>(); // lower-cased name -> first spelling

  for (const logical of rest) {
    const { name, value } = splitLine(logical);
    const lower = name.toLowerCase();
    if (lower === 'dn') throw new LdifError(logical.line, 'second "dn:" in one record (missing blank line between entries?)');
    if (lower === 'control') throw new LdifError(logical.line, 'LDIF controls are not supported; only content records are');
    if (lower === 'changetype') {
      if (value.trim().toLowerCase() === 'add') continue;
      throw new LdifError(logical.line, `changetype "${value.trim()}" is not supported; only content records (or changetype: add) are`);
    }
    const spelling = spellings.get(lower);
    if (spelling === undefined) {
      spellings.set(lower, name);
      entry.attributes.set(name, [value]);
    } else {
      entry.attributes.get(spelling)!.push(value);
    }
  }
  return entry;
}

/** Split one logical line into attribute name and decoded value. */
function splitLine(logical: LogicalLine): { name: string; value: string } {
  const { text, line } = logical;
  const colon = text.indexOf(':');
  if (colon < 0) throw new LdifError(line, `expected "attribute: value", found "${preview(text)}"`);
  const name = text.slice(0, colon);
  if (!ATTRIBUTE_DESCRIPTION.test(name)) throw new LdifError(line, `invalid attribute name "${preview(name)}"`);
  const after = text.slice(colon + 1);

  if (after.startsWith(':')) {
    const encoded = after.slice(1).replace(/^ +/, '').replace(/ +$/, '');
    if (!BASE64.test(encoded)) throw new LdifError(line, `invalid base64 value for "${name}"`);
    return { name, value: utf8.decode(Buffer.from(encoded, 'base64')) };
  }
  if (after.startsWith('<')) {
    throw new LdifError(line, `URL values ("${name}:< ...") are not supported; inline the value or base64-encode it with "${name}::"`);
  }
  return { name, value: after.replace(/^ +/, '') };
}

function preview(text: string): string {
  return text.length > 40 ? text.slice(0, 40) + '…' : text;
}
