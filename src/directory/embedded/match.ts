// Pure LDAP semantics over stored entries: value and DN normalisation, search scope, RFC 4515 filter matching,
// attribute selection and filter rendering for the log. No I/O, no state; never reveals userPassword to a non-root session.
import type { FilterNode, LdapDn } from './ldapjs.ts';

export const SCOPE_BASE = 0;
export const SCOPE_ONE = 1;
export const SCOPE_NAMES = ['base', 'one', 'sub'];
export const USER_PASSWORD = 'userpassword';

export interface StoredAttribute {
  /** Spelling from the LDIF. */
  readonly name: string;
  readonly values: string[];
  /** normalizeValue() of each value (for userPassword: the values unchanged). */
  readonly normalized: string[];
}

export interface StoredEntry {
  readonly ordinal: number;
  /** As written in the LDIF (trimmed); returned to clients verbatim. */
  readonly dn: string;
  /** Normalised RDNs, leaf first. */
  readonly rdnKeys: string[];
  readonly key: string;
  readonly parentKey: string;
  /** Keyed by lower-cased attribute name. */
  readonly attributes: Map<string, StoredAttribute>;
}

/** caseIgnoreMatch-style: trim, collapse inner whitespace, lower-case. */
export function normalizeValue(value: string): string {
  return value.trim().replace(/\s+/g, ' ').toLowerCase();
}

export function normalizeAttributeValue(lowerName: string, value: string): string {
  return lowerName === USER_PASSWORD ? value : normalizeValue(value);
}

/** Normalised RDN keys, leaf first: attribute types and values case-folded, multi-valued RDNs sorted. */
export function rdnKeysOf(dn: LdapDn): string[] {
  const keys: string[] = [];
  for (let i = 0; i < dn.length; i++) {
    const rdn = dn.rdnAt(i);
    if (rdn === undefined) continue;
    const pairs: [string, string][] = [];
    for (const name of rdn.keys()) {
      const value = rdn.getValue(name);
      // "#hex" values arrive as a BerReader; their RDN string form is canonical enough.
      pairs.push([name.toLowerCase(), typeof value === 'string' ? normalizeValue(value) : rdn.toString().toLowerCase()]);
    }
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    keys.push(JSON.stringify(pairs));
  }
  return keys;
}

export function keyOf(rdnKeys: readonly string[]): string {
  return '[' + rdnKeys.join(',') + ']';
}

export function inScope(entry: StoredEntry, baseKeys: readonly string[], baseKey: string, scope: number): boolean {
  if (scope === SCOPE_BASE) return entry.key === baseKey;
  if (scope === SCOPE_ONE) return entry.rdnKeys.length === baseKeys.length + 1 && entry.parentKey === baseKey;
  const offset = entry.rdnKeys.length - baseKeys.length;
  if (offset < 0) return false;
  for (let i = baseKeys.length - 1; i >= 0; i--) {
    if (entry.rdnKeys[offset + i] !== baseKeys[i]) return false;
  }
  return true;
}

function compareOrdered(a: string, b: string): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function matchesSubstring(value: string, filter: FilterNode): boolean {
  const piece = (s: string): string => s.replace(/\s+/g, ' ').toLowerCase();
  let position = 0;
  if (filter.initial) {
    const initial = piece(filter.initial);
    if (!value.startsWith(initial)) return false;
    position = initial.length;
  }
  for (const any of filter.any ?? []) {
    if (!any) continue;
    const found = value.indexOf(piece(any), position);
    if (found < 0) return false;
    position = found + piece(any).length;
  }
  if (filter.final) {
    const final = piece(filter.final);
    return value.length - final.length >= position && value.endsWith(final);
  }
  return true;
}

/**
 * RFC 4515 matching with every value compared case-insensitively (userPassword exactly).
 * Filters on userPassword never match unless the session is bound as the rootDN, so the
 * directory cannot be used as an oracle for password hashes. Extensible matches never match.
 */
export function matches(filter: FilterNode, entry: StoredEntry, isRoot: boolean): boolean {
  switch (filter.type) {
    case 'AndFilter':
      return (filter.clauses ?? []).every((c) => matches(c, entry, isRoot));
    case 'OrFilter':
      return (filter.clauses ?? []).some((c) => matches(c, entry, isRoot));
    case 'NotFilter': {
      const inner = filter.clauses?.[0];
      return inner !== undefined && !matches(inner, entry, isRoot);
    }
    default:
      break;
  }
  const lower = (filter.attribute ?? '').toLowerCase();
  if (lower === USER_PASSWORD && !isRoot) return false;
  const attribute = entry.attributes.get(lower);
  if (attribute === undefined || attribute.values.length === 0) return false;
  switch (filter.type) {
    case 'PresenceFilter':
      return true;
    case 'EqualityFilter':
    case 'ApproximateFilter': {
      const wanted = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.includes(wanted);
    }
    case 'SubstringFilter':
      return lower !== USER_PASSWORD && attribute.normalized.some((v) => matchesSubstring(v, filter));
    case 'GreaterThanEqualsFilter': {
      const bound = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.some((v) => compareOrdered(v, bound) >= 0);
    }
    case 'LessThanEqualsFilter': {
      const bound = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.some((v) => compareOrdered(v, bound) <= 0);
    }
    default:
      return false; // ExtensibleFilter and anything unknown
  }
}

export function selectAttributes(entry: StoredEntry, requested: readonly string[], isRoot: boolean, typesOnly: boolean): { type: string; values: string[] }[] {
  const wanted = new Set(requested.map((a) => a.toLowerCase()));
  const all = wanted.size === 0 || wanted.has('*');
  const out: { type: string; values: string[] }[] = [];
  for (const [lower, attribute] of entry.attributes) {
    if (lower === USER_PASSWORD && !isRoot) continue;
    if (!all && !wanted.has(lower)) continue;
    out.push({ type: attribute.name, values: typesOnly ? [] : attribute.values });
  }
  return out;
}

/** RFC 4515 rendering for the log, with userPassword values masked. */
export function describeFilter(filter: FilterNode): string {
  const esc = (v: unknown): string =>
    String(v).replace(/[*()\\\u0000-\u001f]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
  const value = (v: unknown): string => ((filter.attribute ?? '').toLowerCase() === USER_PASSWORD ? '***' : esc(v));
  switch (filter.type) {
    case 'AndFilter': return '(&' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'OrFilter': return '(|' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'NotFilter': return '(!' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'PresenceFilter': return `(${filter.attribute}=*)`;
    case 'EqualityFilter': return `(${filter.attribute}=${value(filter.value)})`;
    case 'ApproximateFilter': return `(${filter.attribute}~=${value(filter.value)})`;
    case 'GreaterThanEqualsFilter': return `(${filter.attribute}>=${value(filter.value)})`;
    case 'LessThanEqualsFilter': return `(${filter.attribute}<=${value(filter.value)})`;
    case 'SubstringFilter':
      return `(${filter.attribute}=${[filter.initial ?? '', ...(filter.any ?? []), filter.final ?? ''].map(value).join('*')})`;
    default: return `(${filter.type})`;
  }
}
