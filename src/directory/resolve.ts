// Recipient resolution (directory-model §2): normalise the address, walk the candidates, search
// once per candidate, apply the outcome table. A directory that cannot answer is a temporary
// MailError, never "unknown"; a miss is cached by the caller, an error never is.
import { domainToASCII } from 'node:url';
import { ResultCodeError } from 'ldapts';
import type { Logger } from '../log.ts';
import { type Address, permanent, temporary, MailError } from '../mail.ts';
import { candidates, type CandidateRules } from './candidates.ts';
import { toResolution, type EntryContext } from './entry.ts';
import { escapeFilterValue } from './escape.ts';
import { describe, type LdapPool } from './pool.ts';
import { recipientAttributes, type Profile } from './profiles.ts';
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

  function filterFor(candidateKey: string): string {
    const value = escapeFilterValue(candidateKey);
    const any = profile.address.map((a) => `(${a}=${value})`).join('');
    const match = profile.address.length === 1 ? any : `(|${any})`;
    if (options.objectClass === '') return match;
    const restriction = options.objectClass.startsWith('(') ? options.objectClass : `(objectClass=${escapeFilterValue(options.objectClass)})`;
    return `(&${restriction}${match})`;
  }

  async function resolve(normalised: string): Promise<Resolution> {
    const at = normalised.lastIndexOf('@');
    const local = normalised.slice(0, at);
    const domain = normalised.slice(at + 1);
    const rules = { ...options.rules, ...options.domainRules.get(domain) };
    const tried: string[] = [];
    for (const candidate of candidates(local, domain, rules)) {
      tried.push(candidate.key);
      const filter = filterFor(candidate.key);
      const entries = await search(filter);
      deps.log.debug({ filter, found: entries.length }, 'directory search');
      if (entries.length === 0) continue;
      if (entries.length > 1) {
        const dns = entries.map((e) => e.dn);
        deps.log.warn({ address: normalised, candidate: candidate.key, dns }, 'address claimed by more than one directory entry');
        if (options.ambiguous === 'bounce') {
          return { kind: 'reject', dn: dns[0]!, matched: candidate.key, status: '5.3.5', reason: 'address is ambiguous in the directory' };
        }
        throw temporary('4.3.5', 'address is ambiguous in the directory, try again later');
      }
      return toResolution(entries[0]!, candidate, context);
    }
    return { kind: 'unknown', tried };
  }

  async function search(filter: string) {
    try {
      return await deps.pool.search(options.baseDN, filter, attributes, { scope: 'sub', sizeLimit: 2 });
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

/** The definite answers turned into the SMTP errors the reference prescribes. */
export function resolutionError(resolution: Resolution): MailError | null {
  if (resolution.kind === 'unknown') return permanent('5.1.1', 'no such user here');
  if (resolution.kind === 'reject') return permanent(resolution.status, resolution.reason);
  return null;
}
