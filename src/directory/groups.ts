// Group expansion (directory-model §3.11, plus groupOfNames/groupOfUniqueNames and AD's group):
// members by literal address, by DN and by LDAP filter; member groups expanded in place, to a
// bounded depth, each group once (cycles end there); the result de-duplicated and capped. In AD
// the server walks nested groups itself (in-chain rule, §6.5) in one paged search; elsewhere, or
// when told not to, member values are read in ranges (§6.7) and walked here. Also the members-only
// check. A directory that cannot answer is temporary; a member DN that does not exist is skipped.
import { ResultCodeError } from 'ldapts';
import type { Logger } from '../log.ts';
import { type Address, formatAddress, parseAddress, temporary } from '../mail.ts';
import { withoutUid } from './entry.ts';
import { escapeFilterValue } from './escape.ts';
import type { LdapEntry, LdapPool } from './pool.ts';
import { accountDisabled, entryAddresses, GROUP_OF_NAMES_MEMBERS, type Profile } from './profiles.ts';
import type { GroupResolution, Resolution } from './types.ts';

export interface GroupMembers {
  /** Lower-case addresses to deliver to, in first-seen order. */
  readonly addresses: readonly string[];
  /** Normalised DNs of the member entries (not of the groups passed through). */
  readonly dns: ReadonlySet<string>;
}

export interface GroupOptions {
  readonly baseDN: string;
  readonly profile: Profile;
  /** Most addresses one expansion may yield; more is a temporary failure (groupExpansionLimit). */
  readonly limit: number;
  /** Most levels of groups inside groups. */
  readonly maxDepth: number;
  readonly localDomains: ReadonlySet<string>;
  /** Nested AD groups by the server's in-chain rule: auto asks the rootDSE whether it is Active Directory. */
  readonly inChain?: 'auto' | 'always' | 'never';
  /** AD: "disabled" leaves accounts with userAccountControl bit 0x2 out of an expansion. */
  readonly disabledAs?: 'noaccess' | 'disabled';
  /** Read member values this many at a time; 0: as the server hands them out. */
  readonly memberRangeSize?: number;
}

/** supportedCapabilities value of Active Directory (and Samba's AD DC): LDAP_CAP_ACTIVE_DIRECTORY_OID. */
export const AD_CAPABILITY = '1.2.840.113556.1.4.800';
/** LDAP_MATCHING_RULE_IN_CHAIN: the server follows member links transitively. */
const IN_CHAIN = '1.2.840.113556.1.4.1941';
/** LDAP_MATCHING_RULE_BIT_AND on userAccountControl: the ACCOUNTDISABLE bit. */
const DISABLED_FILTER = '(userAccountControl:1.2.840.113556.1.4.803:=2)';

export interface GroupDeps {
  readonly pool: LdapPool;
  readonly resolve: (address: Address) => Promise<Resolution>;
  readonly log: Logger;
}

export interface Groups {
  expand(group: GroupResolution, which?: 'members' | 'senders'): Promise<GroupMembers>;
  /** May `sender` post to `group`? Always true unless the group is members-only. */
  mayPost(group: GroupResolution, sender: Address | null): Promise<boolean>;
}

type Lists = { readonly dn: readonly string[]; readonly rfc822: readonly string[]; readonly filter: readonly string[] };

/** DNs compared as qmail-ldap does (case-insensitively), with the spaces around separators ignored. Pure. */
export function normalizeDn(dn: string): string {
  return dn.trim().toLowerCase().replace(/\s*([,=+])\s*/g, '$1');
}

export function createGroups(options: GroupOptions, deps: GroupDeps): Groups {
  const { profile } = options;
  const g = profile.group;
  const rangeSize = options.memberRangeSize ?? 0;
  const memberAttributes = rangeSize > 0 ? GROUP_OF_NAMES_MEMBERS.map((m) => `${m};range=0-${rangeSize - 1}`) : GROUP_OF_NAMES_MEMBERS;
  const leafAttributes = [...profile.address, profile.proxyAddresses, profile.accountControl].filter((n): n is string => n !== null);
  const attributes = [...new Set(['objectClass', ...leafAttributes, ...(profile.groupClass === null ? [] : [g.dnMember, g.rfc822Member, g.filterMember]), ...memberAttributes])];
  const leaveOutDisabled = profile.accountControl !== null && options.disabledAs === 'disabled';

  async function listsOfEntry(entry: LdapEntry): Promise<Lists | null> {
    const all = (name: string) => [...(entry.attrs.get(name.toLowerCase()) ?? [])];
    const classes = all('objectClass').map((c) => c.toLowerCase());
    if (profile.groupClass !== null && classes.includes(profile.groupClass.toLowerCase())) {
      return { dn: all(g.dnMember), rfc822: all(g.rfc822Member), filter: all(g.filterMember) };
    }
    if (profile.listClasses.some((c) => classes.includes(c))) {
      const dn = [...await allValues(entry, 'member'), ...(await allValues(entry, 'uniqueMember')).map(withoutUid)];
      return { dn, rfc822: [], filter: [] };
    }
    return null;
  }

  /**
   * Every value of a multi-valued attribute (§6.7): a server that hands out a range
   * ("member;range=0-1499") is asked for the next one until a range ends in "*".
   */
  async function allValues(first: LdapEntry, attribute: string): Promise<string[]> {
    const name = attribute.toLowerCase();
    const values = [...(first.attrs.get(name) ?? [])];
    let entry: LdapEntry | undefined = first;
    for (;;) {
      // ldapts also lists the range asked for, empty, when the server answered another one.
      const key: string | undefined = [...(entry?.attrs.entries() ?? [])].find(([k, v]) => k.startsWith(`${name};range=`) && v.length > 0)?.[0];
      if (entry === undefined || key === undefined) return values;
      values.push(...entry.attrs.get(key)!);
      const range = /;range=(\d+)-(\d+|\*)$/.exec(key);
      if (range === null || range[2] === '*') return values;
      const next = Number(range[2]) + 1;
      const wanted = `${attribute};range=${next}-${rangeSize > 0 ? next + rangeSize - 1 : '*'}`;
      entry = (await read(first.dn, '(objectClass=*)', [wanted], 'base'))[0];
    }
  }

  async function read(base: string, filter: string, wanted: readonly string[], scope: 'base' | 'sub'): Promise<LdapEntry[]> {
    try {
      return await deps.pool.search(base, filter, wanted, { scope, ...(scope === 'sub' ? { paged: true } : {}) });
    } catch (err) {
      throw err instanceof ResultCodeError ? temporary('4.4.3', 'directory error expanding a group', err) : err;
    }
  }

  let inChainAnswer: Promise<boolean> | null = null;
  function useInChain(): Promise<boolean> {
    if (!profile.membersAtExpansion || options.inChain === 'never') return Promise.resolve(false);
    if (options.inChain === 'always') return Promise.resolve(true);
    inChainAnswer ??= deps.pool.rootDse('supportedCapabilities').then((capabilities) => {
      const supported = capabilities.includes(AD_CAPABILITY);
      deps.log.info({ inChain: supported }, supported ? 'directory is Active Directory: nested groups expanded by the server' : 'directory is not Active Directory: nested groups walked by ldapmta');
      return supported;
    }, (err: unknown) => {
      inChainAnswer = null;
      throw err;
    });
    return inChainAnswer;
  }

  /** AD: one paged search for every transitive member that is a person (user or contact), cycles handled by the server. */
  async function expandInChain(group: GroupResolution): Promise<GroupMembers> {
    const filter = `(&(memberOf:${IN_CHAIN}:=${escapeFilterValue(group.dn)})(objectCategory=person)(|(objectClass=user)(objectClass=contact))`
      + `${leaveOutDisabled ? `(!${DISABLED_FILTER})` : ''})`;
    const addresses = new Set<string>();
    const dns = new Set<string>();
    for (const entry of await read(options.baseDN, filter, attributes, 'sub')) {
      const primary = entryAddresses(profile, entry.attrs).primary;
      if (primary === null) continue;
      dns.add(normalizeDn(entry.dn));
      addresses.add(primary);
      if (addresses.size > options.limit) throw temporary('4.2.4', `group ${group.address} expands to more than ${options.limit} addresses`);
    }
    addresses.delete(group.address.toLowerCase());
    return { addresses: [...addresses], dns };
  }

  async function expand(group: GroupResolution, which: 'members' | 'senders' = 'members'): Promise<GroupMembers> {
    if (which === 'members' && await useInChain()) return expandInChain(group);
    const addresses = new Set<string>();
    const dns = new Set<string>();
    const visited = new Set<string>([normalizeDn(group.dn)]);

    function add(address: string): void {
      addresses.add(address.toLowerCase());
      if (addresses.size > options.limit) throw temporary('4.2.4', `group ${group.address} expands to more than ${options.limit} addresses`);
    }

    /** A group reached from inside the expansion: once, and not deeper than maxDepth. */
    function enter(dn: string, depth: number): boolean {
      const key = normalizeDn(dn);
      if (visited.has(key)) return false;
      if (depth > options.maxDepth) {
        deps.log.warn({ group: group.address, nested: dn, maxDepth: options.maxDepth }, 'nested group too deep; not expanded');
        return false;
      }
      visited.add(key);
      return true;
    }

    async function member(entry: LdapEntry, depth: number): Promise<void> {
      if (listClass(entry)) {
        if (!enter(entry.dn, depth)) return;
        const lists = await listsOfEntry(entry);
        if (lists !== null) await walk(lists, depth + 1);
        return;
      }
      const mail = entryAddresses(profile, entry.attrs).primary;
      if (mail === null) return; // qmail-ldap skips members without mail
      if (leaveOutDisabled && accountDisabled(profile, entry.attrs)) return;
      dns.add(normalizeDn(entry.dn));
      add(mail);
    }

    async function walk(lists: Lists, depth: number): Promise<void> {
      for (const text of lists.rfc822) {
        let address: Address;
        try {
          address = parseAddress(text.trim());
        } catch {
          deps.log.warn({ group: group.address, member: text }, 'unusable member address skipped');
          continue;
        }
        if (options.localDomains.has(address.domain)) {
          const resolution = await deps.resolve(address);
          if (resolution.kind === 'group') {
            if (enter(resolution.dn, depth)) await walk(resolution.members, depth + 1);
            continue;
          }
          if (resolution.kind !== 'unknown' && resolution.kind !== 'reject') dns.add(normalizeDn(resolution.dn));
        }
        add(formatAddress(address));
      }
      for (const dn of lists.dn) {
        let found: LdapEntry[];
        try {
          found = await deps.pool.search(dn, '(objectClass=*)', attributes, { scope: 'base' });
        } catch (err) {
          if (err instanceof ResultCodeError && (err.code === 32 || err.code === 34)) {
            deps.log.warn({ group: group.address, member: dn }, 'member DN not found; skipped');
            continue;
          }
          throw err instanceof ResultCodeError ? temporary('4.4.3', `directory error expanding ${group.address}`, err) : err;
        }
        for (const entry of found) await member(entry, depth);
      }
      for (const filter of lists.filter) {
        let found: LdapEntry[];
        try {
          found = await deps.pool.search(options.baseDN, filter, attributes, { scope: 'sub', paged: true });
        } catch (err) {
          throw err instanceof ResultCodeError ? temporary('4.4.3', `directory error expanding ${group.address} (filter ${filter})`, err) : err;
        }
        for (const entry of found) await member(entry, depth);
      }
    }

    if (profile.membersAtExpansion && which === 'members') {
      // The group's own members were not read with it: read them now, in ranges if need be.
      const own = (await read(group.dn, '(objectClass=*)', attributes, 'base'))[0];
      const lists = own === undefined ? null : await listsOfEntry(own);
      if (lists !== null) await walk(lists, 1);
    } else {
      await walk(which === 'senders' ? group.senders : group.members, 1);
    }
    addresses.delete(group.address.toLowerCase());
    return { addresses: [...addresses], dns };
  }

  /** Does this entry list members (a qmailGroup, groupOfNames or, in AD, group)? */
  function listClass(entry: LdapEntry): boolean {
    const classes = (entry.attrs.get('objectclass') ?? []).map((c) => c.toLowerCase());
    return (profile.groupClass !== null && classes.includes(profile.groupClass.toLowerCase())) || profile.listClasses.some((c) => classes.includes(c));
  }

  return {
    expand,
    async mayPost(group, sender) {
      if (!group.membersOnly) return true;
      if (sender === null) return false;
      const which = group.senders.dn.length + group.senders.rfc822.length + group.senders.filter.length > 0 ? 'senders' : 'members';
      const lists = which === 'senders' ? group.senders : group.members;
      const text = formatAddress(sender).toLowerCase();
      if (lists.rfc822.some((a) => a.trim().toLowerCase() === text)) return true;
      const resolution = await deps.resolve(sender);
      const matched = resolution.kind !== 'unknown' && resolution.kind !== 'reject';
      const own = matched ? [text, ...resolution.addresses] : [text];
      const allowed = await expand(group, which);
      if (matched && allowed.dns.has(normalizeDn(resolution.dn))) return true;
      return own.some((a) => allowed.addresses.includes(a));
    },
  };
}
