// The in-memory directory: entries loaded from an LDIF file (through ../ldif.ts), keyed by normalised DN and
// indexed on mail/mailAlternateAddress/uid. Read-only once built; never speaks LDAP or decides who may see what.
import { readFile } from 'node:fs/promises';
import { LdifError, parseLdif, type LdifEntry } from '../ldif.ts';
import { DN, type FilterNode, type LdapDn } from './ldapjs.ts';
import { keyOf, normalizeAttributeValue, normalizeValue, rdnKeysOf, type StoredAttribute, type StoredEntry } from './match.ts';

/** Attributes whose lower-cased values are indexed for equality lookups. */
const INDEXED = new Set(['mail', 'mailalternateaddress', 'uid']);

export interface Directory {
  readonly entries: StoredEntry[];
  readonly byKey: Map<string, StoredEntry>;
  /** lower-cased attribute name → normalised value → entries, for INDEXED attributes. */
  readonly index: Map<string, Map<string, StoredEntry[]>>;
  readonly rootDse: StoredEntry;
}

/** Read and parse the LDIF file and build the directory from it. */
export async function loadDirectory(ldifPath: string): Promise<Directory> {
  let parsed: LdifEntry[];
  try {
    parsed = parseLdif(await readFile(ldifPath, 'utf8'));
  } catch (err) {
    if (err instanceof LdifError) throw new Error(`${ldifPath}: ${err.message}`, { cause: err });
    throw err;
  }
  return buildDirectory(parsed, ldifPath);
}

function storedAttributes(source: Map<string, string[]>): Map<string, StoredAttribute> {
  const attributes = new Map<string, StoredAttribute>();
  for (const [name, values] of source) {
    const lower = name.toLowerCase();
    const existing = attributes.get(lower);
    if (existing !== undefined) {
      existing.values.push(...values);
      existing.normalized.push(...values.map((v) => normalizeAttributeValue(lower, v)));
    } else {
      attributes.set(lower, { name, values: [...values], normalized: values.map((v) => normalizeAttributeValue(lower, v)) });
    }
  }
  return attributes;
}

function buildDirectory(parsed: LdifEntry[], source: string): Directory {
  const entries: StoredEntry[] = [];
  const byKey = new Map<string, StoredEntry>();
  const index = new Map<string, Map<string, StoredEntry[]>>([...INDEXED].map((name) => [name, new Map()]));
  const where = (entry: LdifEntry): string => (entry.line === undefined ? source : `${source}: line ${entry.line}`);

  for (const ldif of parsed) {
    let dn: LdapDn;
    try {
      dn = DN.fromString(ldif.dn);
    } catch (err) {
      throw new Error(`${where(ldif)}: invalid DN "${ldif.dn}": ${(err as Error).message}`, { cause: err });
    }
    if (dn.length === 0) throw new Error(`${where(ldif)}: an entry needs a non-empty DN`);
    const rdnKeys = rdnKeysOf(dn);
    const entry: StoredEntry = {
      ordinal: entries.length,
      dn: ldif.dn,
      rdnKeys,
      key: keyOf(rdnKeys),
      parentKey: keyOf(rdnKeys.slice(1)),
      attributes: storedAttributes(ldif.attributes),
    };
    const duplicate = byKey.get(entry.key);
    if (duplicate !== undefined) {
      throw new Error(`${where(ldif)}: duplicate entry "${ldif.dn}" (same DN as "${duplicate.dn}")`);
    }
    byKey.set(entry.key, entry);
    entries.push(entry);
    for (const [lower, values] of index) {
      for (const value of new Set(entry.attributes.get(lower)?.normalized ?? [])) {
        const list = values.get(value);
        if (list === undefined) values.set(value, [entry]);
        else list.push(entry);
      }
    }
  }

  const suffixes = entries.filter((e) => !byKey.has(e.parentKey)).map((e) => e.dn);
  const rootDse: StoredEntry = {
    ordinal: -1,
    dn: '',
    rdnKeys: [],
    key: keyOf([]),
    parentKey: '',
    attributes: storedAttributes(new Map([
      ['objectClass', ['top']],
      ['namingContexts', suffixes],
      ['supportedLDAPVersion', ['3']],
      ['vendorName', ['ldapmta embedded directory']],
    ])),
  };
  return { entries, byKey, index, rootDse };
}

/** Entries that could match, from the index, or null when the filter needs a scan. */
export function indexCandidates(directory: Directory, filter: FilterNode): StoredEntry[] | null {
  switch (filter.type) {
    case 'EqualityFilter':
    case 'ApproximateFilter': {
      const values = directory.index.get((filter.attribute ?? '').toLowerCase());
      if (values === undefined) return null;
      return values.get(normalizeValue(String(filter.value))) ?? [];
    }
    case 'OrFilter': {
      const union = new Set<StoredEntry>();
      for (const clause of filter.clauses ?? []) {
        const found = indexCandidates(directory, clause);
        if (found === null) return null;
        for (const entry of found) union.add(entry);
      }
      return [...union].sort((a, b) => a.ordinal - b.ordinal);
    }
    case 'AndFilter': {
      let best: StoredEntry[] | null = null;
      for (const clause of filter.clauses ?? []) {
        const found = indexCandidates(directory, clause);
        if (found !== null && (best === null || found.length < best.length)) best = found;
      }
      return best;
    }
    default:
      return null;
  }
}

/** The deepest existing ancestor of a missing base, for the result's matchedDN. */
export function matchedDn(directory: Directory, baseKeys: readonly string[]): string {
  for (let i = 1; i < baseKeys.length; i++) {
    const found = directory.byKey.get(keyOf(baseKeys.slice(i)));
    if (found !== undefined) return found.dn;
  }
  return '';
}
