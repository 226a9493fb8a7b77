// Pure: one LDAP entry found for a recipient becomes a Resolution, in qmail-ldap's order of checks
// (directory-model §2.6, §3.1–§3.5, §3.9): status, size limit, mailHost, mailbox location, uid,
// group, delivery modes; AD's userAccountControl and forward-only contacts (§6.4) on the same path.
// Never does I/O; never trusts an attribute value (paths are checked here).
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { temporary } from '../mail.ts';
import type { Candidate } from './candidates.ts';
import type { LdapEntry } from './pool.ts';
import { attributeHolding, entryAddresses, typedAddress, type Profile } from './profiles.ts';
import type { AccountStatus, DeliveryFlags, Matched, Quota, Resolution } from './types.ts';

export interface EntryContext {
  readonly profile: Profile;
  /** Lower-case names that count as this node. */
  readonly self: ReadonlySet<string>;
  /** Absolute base directory for relative stores; no mailbox may lie outside it. */
  readonly mailboxes: string;
  /** "./" or "./Maildir/": the Maildir relative to the mailbox home. */
  readonly defaultDelivery: string;
  readonly defaultQuotaSize: number;
  readonly defaultQuotaCount: number;
  readonly unknownAccountStatus: 'active' | 'tempfail';
  /** AD: what a disabled account (userAccountControl bit 0x2) means for its mail. */
  readonly disabledAs: 'noaccess' | 'disabled';
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
}

/** An attribute value that qmail-ldap would refuse: the recipient fails permanently with 5.3.5. */
class IllegalValue extends Error {}

export function toResolution(entry: LdapEntry, hit: Candidate, ctx: EntryContext): Resolution {
  try {
    return decide(entry, hit, ctx);
  } catch (err) {
    if (!(err instanceof IllegalValue)) throw err;
    ctx.warn({ dn: entry.dn, problem: err.message }, 'directory entry has an illegal value; recipient refused');
    return { kind: 'reject', dn: entry.dn, matched: hit.key, status: '5.3.5', reason: `mailbox misconfigured: ${err.message}` };
  }
}

function decide(entry: LdapEntry, hit: Candidate, ctx: EntryContext): Resolution {
  const p = ctx.profile;
  const read = reader(entry);

  // 1. accountStatus (§3.1), or AD's disabled bit mapped as configured (§6.4)
  let statusValue = (read.single(p.status) ?? 'active').toLowerCase();
  if (adDisabled(read, p)) statusValue = ctx.disabledAs;
  if (statusValue === 'disabled') return reject(entry, hit, '5.2.1', 'mailbox disabled');
  if (statusValue === 'deleted') return reject(entry, hit, '5.1.1', 'no such mailbox');
  let accountStatus: AccountStatus = 'active';
  if (statusValue === 'noaccess' || statusValue === 'nopop') accountStatus = 'noaccess';
  else if (statusValue !== 'active') {
    if (ctx.unknownAccountStatus === 'tempfail') throw temporary('4.3.5', 'directory entry has an unknown account status');
    ctx.warn({ dn: entry.dn, accountStatus: statusValue }, 'unknown accountStatus treated as active');
  }

  // 2. mailSizeMax (§3.10), 3. mailHost (§4)
  const sizeMax = read.integer(p.sizeMax);
  const mailHost = read.single(p.mailHost)?.toLowerCase().replace(/\.$/, '') ?? null;
  const addresses = entryAddresses(p, entry.attrs);
  if (addresses.problem !== null) ctx.warn({ dn: entry.dn, primary: addresses.primary }, addresses.problem);
  const matched: Matched = {
    dn: entry.dn,
    address: addresses.primary ?? hit.key,
    matched: hit.key,
    matchedBy: attributeHolding(p, entry.attrs, hit.key),
    extension: hit.extension,
    addresses: addresses.all,
    accountStatus,
    mailHost,
    local: mailHost === null || ctx.self.has(mailHost),
    sizeMax: sizeMax === 0 ? null : sizeMax,
    ...(p.junkScore === null ? {} : { junkScore: read.decimal(p.junkScore) }),
    ...(p.greylistOptOut === null ? {} : { greylist: !read.boolean(p.greylistOptOut) }),
  };

  // 4. mailbox location (§3.2); AD contacts have none, and a forward replaces it unless a copy is kept.
  const classes = read.all('objectClass').map((c) => c.toLowerCase());
  const forwards = forwardsOf(read, p);
  const forwardOnly = p.forwardOnlyClasses.some((c) => classes.includes(c))
    || (p.forwardReplacesMailbox && forwards.length > 0 && !read.boolean(p.keepCopy));
  const list = p.listClasses.some((c) => classes.includes(c)) && !(p.groupClass !== null && classes.includes(p.groupClass.toLowerCase()));
  const mailbox = forwardOnly || list ? null : mailboxPath(read, matched.address, ctx);

  // 6. groups (§3.11) come before the user's own delivery instructions.
  if (p.groupClass !== null && classes.includes(p.groupClass.toLowerCase())) {
    const g = p.group;
    return {
      kind: 'group', ...matched, mailbox,
      members: { dn: read.all(g.dnMember), rfc822: read.all(g.rfc822Member), filter: read.all(g.filterMember) },
      senders: { dn: read.all(g.dnSender), rfc822: read.all(g.rfc822Sender), filter: read.all(g.filterSender) },
      moderators: { dn: read.all(g.dnModerator), rfc822: read.all(g.rfc822Moderator) },
      membersOnly: read.boolean(g.membersOnly), senderConfirm: read.boolean(g.senderConfirm),
      bounceAdmin: read.all(g.bounceAdmin),
    };
  }

  // groupOfNames / groupOfUniqueNames (AD: group) with a mail address: a list of member DNs, open to
  // anyone. AD's members are read at expansion, not here (a large group's come in ranges).
  if (list) {
    const dns = p.membersAtExpansion ? [] : [...read.all('member'), ...read.all('uniqueMember').map(withoutUid)];
    return {
      kind: 'group', ...matched, mailbox: null,
      members: { dn: dns, rfc822: [], filter: [] }, senders: { dn: [], rfc822: [], filter: [] },
      moderators: { dn: [], rfc822: [] }, membersOnly: false, senderConfirm: false, bounceAdmin: [],
    };
  }

  if (mailbox === null) {
    if (forwards.length === 0) throw new IllegalValue('no mailbox and no forwarding address');
    return { kind: 'forward', ...matched, forwards };
  }

  // 5. uid and the numeric ids must be sane, as qmail-lspawn demands before a local delivery.
  if (read.single(p.login) === null) throw new IllegalValue(`${p.login} missing`);
  for (const idAttribute of p.uidNumber) {
    const id = read.integer(idAttribute);
    if (id !== null && (id < 100 || id > 65535)) throw new IllegalValue(`${idAttribute} out of range`);
  }

  // 7. delivery modes, dot mode, quota (§3.4, §3.5, §3.9)
  return {
    kind: 'mailbox', ...matched, mailbox, forwards,
    delivery: deliveryFlags(read.all(p.deliveryMode), read.single(p.dotMode)),
    programs: read.all(p.program),
    replyText: read.single(p.replyText),
    quota: quota(scaled(read.integer(p.quotaSize), p.quotaSizeUnit) ?? ctx.defaultQuotaSize, read.integer(p.quotaCount) ?? ctx.defaultQuotaCount),
  };
}

function reject(entry: LdapEntry, hit: Candidate, status: string, reason: string): Resolution {
  return { kind: 'reject', dn: entry.dn, matched: hit.key, status, reason };
}

/** §3.2: home and delivery instruction from homeDirectory, mailMessageStore and the defaults. */
function mailboxPath(read: Reader, primary: string, ctx: EntryContext): string | null {
  const p = ctx.profile;
  const home = read.path(p.home);
  const store = read.path(p.store);
  if (home !== null && !home.startsWith('/')) throw new IllegalValue(`${p.home} must be absolute`);
  let maildir: string;
  if (home !== null && store !== null) {
    if (!store.startsWith('/') && !store.startsWith('.')) throw new IllegalValue(`${p.store} must start with / or . when ${p.home} is set`);
    if (!store.endsWith('/')) throw new IllegalValue(`${p.store} names an mbox file; only Maildir is supported`);
    maildir = store.startsWith('/') ? store : join(home, store);
  } else if (home !== null) {
    maildir = join(home, ctx.defaultDelivery);
  } else if (store !== null) {
    maildir = join(store.startsWith('/') ? store : join(ctx.mailboxes, store), ctx.defaultDelivery);
  } else if (p.derivedStore !== null) {
    const at = primary.lastIndexOf('@');
    const derived = p.derivedStore.replace(/\{([A-Za-z][A-Za-z0-9-]*)\}/g, (_, name: string) => {
      if (name === 'domain') return primary.slice(at + 1);
      if (name === 'local') return primary.slice(0, at);
      const value = read.single(name);
      if (value === null || value === '') throw new IllegalValue(`${name} missing (the mailbox template needs it)`);
      return value.toLowerCase();
    });
    checkPathCharacters(derived, 'derived store');
    maildir = join(ctx.mailboxes, derived, ctx.defaultDelivery);
  } else {
    return null;
  }
  maildir = normalize(maildir);
  const inside = relative(ctx.mailboxes, maildir);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new IllegalValue('mailbox path lies outside the mailbox base directory');
  }
  return maildir.endsWith(sep) ? maildir : maildir + sep;
}

/** qmail-ldap's sanitypathcheck: only [A-Za-z0-9@_./:=-], no leading "-", no ".." component. */
function checkPathCharacters(value: string, what: string): void {
  if (!/^[A-Za-z0-9@_./:=-]+$/.test(value) || value.startsWith('-') || value.split('/').includes('..')) {
    throw new IllegalValue(`${what} contains characters or components that are not allowed`);
  }
}

/** §3.5 deliveryMode keywords combined with §3.4 qmailDotMode. */
export function deliveryFlags(modes: readonly string[], dotMode: string | null): DeliveryFlags {
  const set = new Set(modes.map((m) => m.trim().toLowerCase()));
  const dot = (dotMode ?? 'ldaponly').toLowerCase();
  const programsAllowed = dot === 'ldapwithprog' || dot === 'both' || dot === 'dotonly';
  const noneMode = dot === 'none';
  return {
    local: !(set.has('nolocal') || set.has('nombox') || set.has('forwardonly')),
    forward: !set.has('noforward') && !noneMode,
    program: programsAllowed && !set.has('noprogram') && !set.has('forwardonly'),
    reply: set.has('reply') && !noneMode,
  };
}

/** AD's userAccountControl with the ACCOUNTDISABLE bit (0x2) set. */
function adDisabled(read: Reader, p: Profile): boolean {
  const control = read.integer(p.accountControl);
  return control !== null && (control & 2) === 2;
}

/**
 * May this entry log in, as far as its attributes tell (the password is checked elsewhere)?
 * accountStatus noaccess/nopop/disabled/deleted, AD's disabled bit, or an accountExpires in the
 * past refuse it (§3.1, §6.4). An unreadable value refuses too. Pure.
 */
export function loginAllowed(entry: LdapEntry, p: Profile, now: number): boolean {
  try {
    const read = reader(entry);
    const status = (read.single(p.status) ?? 'active').toLowerCase();
    if (['noaccess', 'nopop', 'disabled', 'deleted'].includes(status) || adDisabled(read, p)) return false;
    const expires = read.single(p.accountExpires);
    if (expires === null || expires === '0' || expires === '9223372036854775807') return true;
    if (!/^\d{1,19}$/.test(expires)) return false;
    // 100-ns intervals since 1601-01-01 UTC; 11644473600 s lie between that and the Unix epoch.
    return Number(BigInt(expires) / 10_000n) - 11_644_473_600_000 > now;
  } catch {
    return false;
  }
}

/** Forwarding addresses; typed values (AD's "SMTP:x@y") lose their type and other types are ignored. */
function forwardsOf(read: Reader, p: Profile): string[] {
  const values = read.all(p.forward).map((f) => f.trim()).filter((f) => f !== '');
  if (!p.typedForward) return values;
  return values.map((v) => (v.includes(':') ? typedAddress(v)?.address ?? null : v)).filter((v) => v !== null);
}

function scaled(value: number | null, unit: number): number | null {
  return value === null ? null : value * unit;
}

function quota(size: number, count: number): Quota {
  return { bytes: size === 0 ? null : size, count: count === 0 ? null : count };
}

interface Reader {
  all(attribute: string | null): string[];
  single(attribute: string | null): string | null;
  integer(attribute: string | null): number | null;
  decimal(attribute: string | null): number | null;
  boolean(attribute: string | null): boolean;
  path(attribute: string | null): string | null;
}

/** A uniqueMember value without its optional "#'0101'B" uid part (RFC 4517 NameAndOptionalUID). */
export function withoutUid(value: string): string {
  return value.replace(/#'[01]*'B$/, '');
}

function reader(entry: LdapEntry): Reader {
  const all = (attribute: string | null): string[] => (attribute === null ? [] : [...(entry.attrs.get(attribute.toLowerCase()) ?? [])]);
  const single = (attribute: string | null): string | null => {
    const values = all(attribute);
    if (values.length > 1) throw new IllegalValue(`${attribute} is single-valued but holds ${values.length} values`);
    return values[0] ?? null;
  };
  return {
    all,
    single,
    integer(attribute) {
      const value = single(attribute);
      if (value === null) return null;
      if (!/^\d{1,15}$/.test(value)) throw new IllegalValue(`${attribute} is not a whole number`);
      return Number(value);
    },
    decimal(attribute) {
      const value = single(attribute);
      if (value === null) return null;
      if (!/^-?\d{1,6}(\.\d{1,3})?$/.test(value.trim())) throw new IllegalValue(`${attribute} is not a number`);
      return Number(value.trim());
    },
    boolean(attribute) {
      const value = single(attribute)?.toUpperCase();
      if (value === undefined) return false;
      if (value === 'TRUE' || value === '1') return true;
      if (value === 'FALSE' || value === '0') return false;
      throw temporary('4.3.5', `directory entry has an unreadable boolean in ${attribute}`);
    },
    path(attribute) {
      const value = single(attribute);
      if (value === null || value === '') return null;
      checkPathCharacters(value, attribute ?? 'path');
      return value;
    },
  };
}
