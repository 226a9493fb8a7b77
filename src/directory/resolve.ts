// Recipient resolution (directory-model §2): normalise the address, search for all its candidates
// at once (or one at a time when that answer cannot be split), apply the outcome table. A
// directory that cannot answer is a temporary MailError, never "unknown"; a miss is cached by the
// caller, an error never is.
import { domainToASCII } from 'node:url';
import { ResultCodeError } from 'ldapts';
import type { Logger } from '../log.ts';
import { type Address, permanent, temporary, MailError } from '../mail.ts';
import { candidates, type CandidateRules } from './candidates.ts';
import { toResolution, type EntryContext } from './entry.ts';
import { escapeFilterValue } from './escape.ts';
import { describe, type LdapEntry, type LdapPool } from './pool.ts';
import { addressTerms, entryAddresses, recipientAttributes, typedAddress, type Profile } from './profiles.ts';
import type { Resolution } from './types.ts';

export interface ResolverOptions {
  readonly baseDN: string;
  readonly objectClass: string;
  readonly profile: Profile;
  readonly rules: CandidateRules;
  readonly domainRules: ReadonlyMap<string, Partial<CandidateRules>>;
  readonly aliasDomains: ReadonlyMap<string, string>;
  readonly ambiguous: 'tempfail' | 'bounce';
  readonly entry: Omit<EntryContext, 'profile' | 'warn'>;
}

export interface Resolver {
  /** The cache key of an address: normalised local@domain, or null when it can never match. */
  key(address: Address): string | null;
  resolve(key: string): Promise<Resolution>;
  /** The filter searched for one candidate key (for logs and the CLI). */
  filterFor(candidateKey: string): string;
}

export function createResolver(options: ResolverOptions, deps: { pool: LdapPool; log: Logger }): Resolver {
  const { profile } = options;
  const attributes = recipientAttributes(profile);
  const context: EntryContext = { ...options.entry, profile, warn: (fields, message) => deps.log.warn(fields, message) };

  function key(address: Address): string | null {
    const local = address.local.toLowerCase();
    // An IA5 attribute cannot hold non-ASCII: such a key can never match, so ask nobody (§2.1.5).
    if (profile.asciiAddresses && /[^\x00-\x7f]/.test(local)) return null;
    // LDAP matching ignores surrounding spaces; `" alice"@d` must not find alice@d.
    if (local.trim() !== local) return null;
    let domain = address.domain.toLowerCase().replace(/\.$/, '');
    if (!domain.startsWith('[')) domain = domainToASCII(domain) || domain;
    domain = options.aliasDomains.get(domain) ?? domain;
    return `${local}@${domain}`;
  }

  /** The filter for any of `keys` (one key: the filter the CLI shows for it). */
  function filterForKeys(keys: readonly string[]): string {
    const terms = keys.flatMap((key) => addressTerms(profile, escapeFilterValue(key)));
    const match = terms.length === 1 ? terms[0]! : `(|${terms.join('')})`;
    if (options.objectClass === '') return match;
    const restriction = options.objectClass.startsWith('(') ? options.objectClass : `(objectClass=${escapeFilterValue(options.objectClass)})`;
    return `(&${restriction}${match})`;
  }

  function filterFor(candidateKey: string): string {
    return filterForKeys([candidateKey]);
  }

  async function resolve(normalised: string): Promise<Resolution> {
    const at = normalised.lastIndexOf('@');
    const local = normalised.slice(0, at);
    const domain = normalised.slice(at + 1);
    const rules = { ...options.rules, ...options.domainRules.get(domain) };
    const list = candidates(local, domain, rules);
    // One search for every candidate at once (an unknown address costs one round trip, not one per
    // candidate); the first candidate in order that has entries decides, exactly as one search per
    // candidate would. When the answer cannot be split by candidate, ask one candidate at a time.
    const byKey = list.length > 1 ? await searchAll(list.map((c) => c.key)) : null;
    const tried: string[] = [];
    for (const candidate of list) {
      tried.push(candidate.key);
      let entries: readonly LdapEntry[];
      if (byKey !== null) {
        entries = byKey.get(candidate.key) ?? [];
      } else {
        const filter = filterFor(candidate.key);
        entries = await search(filter, 2);
        deps.log.debug({ filter, found: entries.length }, 'directory search');
      }
      if (entries.length === 0) continue;
      if (entries.length > 1) {
        const dns = entries.map((e) => e.dn);
        deps.log.warn({ address: normalised, candidate: candidate.key, dns }, 'address claimed by more than one directory entry');
        if (options.ambiguous === 'bounce') {
          return { kind: 'reject', dn: dns[0]!, matched: candidate.key, status: '5.3.5', reason: 'address is ambiguous in the directory' };
        }
        throw temporary('4.3.5', 'address is ambiguous in the directory, try again later');
      }
      return toResolution(await withForwardDns(entries[0]!), candidate, context);
    }
    return { kind: 'unknown', tried };
  }

  /**
   * Entries for any of `keys`, grouped by the keys each holds in its address attributes (compared
   * in lower case); null when an entry matched by a rule this cannot reproduce (LDAP's space
   * handling, say) or the size limit cut the answer short.
   */
  async function searchAll(keys: readonly string[]): Promise<Map<string, LdapEntry[]> | null> {
    const filter = filterForKeys(keys);
    const limit = 2 * keys.length;
    const entries = await search(filter, limit);
    deps.log.debug({ filter, found: entries.length }, 'directory search');
    if (entries.length >= limit) return null;
    const wanted = new Set(keys);
    const byKey = new Map<string, LdapEntry[]>();
    for (const entry of entries) {
      const held = new Set(entryAddresses(profile, entry.attrs).all.filter((v) => wanted.has(v)));
      if (held.size === 0) return null;
      for (const key of held) byKey.set(key, [...(byKey.get(key) ?? []), entry]);
    }
    return byKey;
  }

  /**
   * A forwarding attribute that holds DNs (Exchange's altRecipient) names entries, not addresses:
   * each becomes its entry's target (targetAddress) or primary address. A DN that is gone is dropped.
   */
  async function withForwardDns(entry: LdapEntry): Promise<LdapEntry> {
    const name = profile.forward?.toLowerCase();
    const values = name === undefined ? [] : entry.attrs.get(name) ?? [];
    if (!values.some(isDn)) return entry;
    const forwards: string[] = [];
    for (const value of values) {
      if (!isDn(value)) {
        forwards.push(value);
        continue;
      }
      let found: LdapEntry[];
      try {
        found = await deps.pool.search(value, '(objectClass=*)', [...attributes, 'targetAddress'], { scope: 'base' });
      } catch (err) {
        if (err instanceof ResultCodeError && (err.code === 32 || err.code === 34)) {
          deps.log.warn({ dn: entry.dn, forward: value }, 'forwarding target entry not found; ignored');
          continue;
        }
        throw err instanceof MailError ? err : temporary('4.4.3', 'directory lookup failed, try again later', err);
      }
      // The target's own address (delivery resolves it further), else where a contact points.
      const target = found[0];
      const external = target?.attrs.get('targetaddress')?.[0];
      const address = target === undefined ? null : entryAddresses(profile, target.attrs).primary ?? (external === undefined ? null : typedAddress(external)?.address ?? null);
      if (address !== null) forwards.push(address);
    }
    return { dn: entry.dn, attrs: new Map([...entry.attrs, [name!, forwards]]) };
  }

  async function search(filter: string, sizeLimit: number): Promise<LdapEntry[]> {
    try {
      return await deps.pool.search(options.baseDN, filter, attributes, { scope: 'sub', sizeLimit });
    } catch (err) {
      if (err instanceof MailError) throw err;
      if (err instanceof ResultCodeError && err.code === 32) {
        // A static base that does not exist is a misconfiguration, not "no such user" (§2.4).
        deps.log.error({ baseDN: options.baseDN }, 'directory.baseDN does not exist on the directory server');
      } else {
        deps.log.warn({ filter, err: describe(err) }, 'directory search failed');
      }
      throw temporary('4.4.3', 'directory lookup failed, try again later', err);
    }
  }

  return { key, resolve, filterFor };
}

/** A DN rather than an address: "CN=x,OU=y,…" holds an "=" before any "@". Pure. */
function isDn(value: string): boolean {
  const eq = value.indexOf('=');
  const at = value.indexOf('@');
  return eq > 0 && (at < 0 || eq < at) && value.includes(',');
}

/** The definite answers turned into the SMTP errors the reference prescribes. */
export function resolutionError(resolution: Resolution): MailError | null {
  if (resolution.kind === 'unknown') return permanent('5.1.1', 'no such user here');
  if (resolution.kind === 'reject') return permanent(resolution.status, resolution.reason);
  return null;
}
