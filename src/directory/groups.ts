// Group expansion (directory-model §3.11, plus groupOfNames/groupOfUniqueNames): members by
// literal address, by DN and by LDAP filter; member groups expanded in place, to a bounded depth,
// each group once (cycles end there); the result de-duplicated and capped. Also the members-only
// check. A directory that cannot answer is temporary; a member DN that does not exist is skipped.
import { ResultCodeError } from 'ldapts';
import type { Logger } from '../log.ts';
import { type Address, formatAddress, parseAddress, temporary } from '../mail.ts';
import { withoutUid } from './entry.ts';
import type { LdapEntry, LdapPool } from './pool.ts';
import { GROUP_OF_NAMES_MEMBERS, type Profile } from './profiles.ts';
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
}

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
  const mailAttribute = profile.address[0] ?? 'mail';
  const attributes = [...new Set(['objectClass', mailAttribute, ...(profile.groupClass === null ? [] : [g.dnMember, g.rfc822Member, g.filterMember]), ...GROUP_OF_NAMES_MEMBERS])];

  function listsOfEntry(entry: LdapEntry): Lists | null {
    const all = (name: string) => [...(entry.attrs.get(name.toLowerCase()) ?? [])];
    const classes = all('objectClass').map((c) => c.toLowerCase());
    if (profile.groupClass !== null && classes.includes(profile.groupClass.toLowerCase())) {
      return { dn: all(g.dnMember), rfc822: all(g.rfc822Member), filter: all(g.filterMember) };
    }
    if (classes.includes('groupofnames') || classes.includes('groupofuniquenames')) {
      return { dn: [...all('member'), ...all('uniqueMember').map(withoutUid)], rfc822: [], filter: [] };
    }
    return null;
  }

  async function expand(group: GroupResolution, which: 'members' | 'senders' = 'members'): Promise<GroupMembers> {
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
      const lists = listsOfEntry(entry);
      if (lists !== null) {
        if (enter(entry.dn, depth)) await walk(lists, depth + 1);
        return;
      }
      const mail = entry.attrs.get(mailAttribute.toLowerCase())?.[0];
      if (mail === undefined) return; // qmail-ldap skips members without mail
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

    await walk(which === 'senders' ? group.senders : group.members, 1);
    addresses.delete(group.address.toLowerCase());
    return { addresses: [...addresses], dns };
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
