// Pure: one LDAP entry found for a recipient becomes a Resolution, in qmail-ldap's order of checks
// (directory-model §2.6, §3.1–§3.5, §3.9): status, size limit, mailHost, mailbox location, uid,
// group, delivery modes. Never does I/O; never trusts an attribute value (paths are checked here).
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { temporary } from '../mail.ts';
import type { Candidate } from './candidates.ts';
import type { LdapEntry } from './pool.ts';
import type { Profile } from './profiles.ts';
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

  // 1. accountStatus (§3.1)
  const statusValue = (read.single(p.status) ?? 'active').toLowerCase();
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
  const addresses = p.address.flatMap((a) => read.all(a)).map((a) => a.toLowerCase());
  const matched: Matched = {
    dn: entry.dn,
    address: read.all(p.address[0] ?? 'mail')[0]?.toLowerCase() ?? hit.key,
    matched: hit.key,
    extension: hit.extension,
    addresses: [...new Set(addresses)],
    accountStatus,
    mailHost,
    local: mailHost === null || ctx.self.has(mailHost),
    sizeMax: sizeMax === 0 ? null : sizeMax,
  };

  // 4. mailbox location (§3.2)
  const mailbox = mailboxPath(read, matched.address, ctx);
  const forwards = read.all(p.forward).map((f) => f.trim()).filter((f) => f !== '');

  // 6. groups (§3.11) come before the user's own delivery instructions.
  const classes = read.all('objectClass').map((c) => c.toLowerCase());
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

  // groupOfNames / groupOfUniqueNames with a mail address: a plain list of member DNs, open to anyone.
  if (classes.includes('groupofnames') || classes.includes('groupofuniquenames')) {
    const dns = [...read.all('member'), ...read.all('uniqueMember').map(withoutUid)];
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
    quota: quota(read.integer(p.quotaSize) ?? ctx.defaultQuotaSize, read.integer(p.quotaCount) ?? ctx.defaultQuotaCount),
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
    const derived = p.derivedStore.replace('%d', primary.slice(at + 1)).replace('%u', primary.slice(0, at));
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

function quota(size: number, count: number): Quota {
  return { bytes: size === 0 ? null : size, count: count === 0 ? null : count };
}

interface Reader {
  all(attribute: string | null): string[];
  single(attribute: string | null): string | null;
  integer(attribute: string | null): number | null;
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
