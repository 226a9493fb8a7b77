// What the directory answers, as plain serialisable data: the Resolution of one address and the
// result of a login. No LDAP types leak out of src/directory through these; no I/O here.
import type { Address } from '../mail.ts';

export type AccountStatus = 'active' | 'noaccess';

/** Which kinds of delivery deliveryMode (and qmailDotMode) leave switched on. */
export interface DeliveryFlags {
  readonly local: boolean;
  readonly forward: boolean;
  readonly program: boolean;
  readonly reply: boolean;
}

/** Effective Maildir++ limits; null means unlimited in that dimension. */
export interface Quota {
  readonly bytes: number | null;
  readonly count: number | null;
}

/** Fields every matched entry carries, whatever it resolves to. */
export interface Matched {
  readonly dn: string;
  /** The entry's primary address (its first mail value). */
  readonly address: string;
  /** The candidate that matched, e.g. "bob-catchall@example.org". */
  readonly matched: string;
  /** The attribute that holds it, e.g. "mail" or "proxyAddresses (smtp:)"; null when none does (a custom filter). */
  readonly matchedBy?: string | null;
  /** qmail EXT: the part of the local part after the matched catch-all prefix; null for an exact match. */
  readonly extension: string | null;
  /** Every address of the entry (mail and alternates, AD's smtp proxyAddresses), lower-cased, primary first. */
  readonly addresses: readonly string[];
  readonly accountStatus: AccountStatus;
  /** mailHost as stored (lower-cased), or null. */
  readonly mailHost: string | null;
  /** True when mailHost is absent or names this node. */
  readonly local: boolean;
  /** mailSizeMax in bytes; null: no per-user limit. */
  readonly sizeMax: number | null;
  /** The recipient's own junk score (filters.spam.userJunkScoreAttribute); null or absent: the configured one. */
  readonly junkScore?: number | null;
  /** False when the recipient opted out of greylisting (filters.greylist.optOutAttribute). */
  readonly greylist?: boolean;
}

export interface MailboxResolution extends Matched {
  readonly kind: 'mailbox';
  /** Absolute path of the Maildir (ends with "/"). */
  readonly mailbox: string;
  readonly quota: Quota;
  readonly delivery: DeliveryFlags;
  readonly forwards: readonly string[];
  readonly programs: readonly string[];
  readonly replyText: string | null;
}

/** An entry with neither store nor home: every message goes to its forwarding addresses. */
export interface ForwardResolution extends Matched {
  readonly kind: 'forward';
  readonly forwards: readonly string[];
}

export interface GroupResolution extends Matched {
  readonly kind: 'group';
  readonly mailbox: string | null;
  readonly members: { readonly dn: readonly string[]; readonly rfc822: readonly string[]; readonly filter: readonly string[] };
  readonly senders: { readonly dn: readonly string[]; readonly rfc822: readonly string[]; readonly filter: readonly string[] };
  readonly moderators: { readonly dn: readonly string[]; readonly rfc822: readonly string[] };
  readonly membersOnly: boolean;
  readonly senderConfirm: boolean;
  readonly bounceAdmin: readonly string[];
}

/** A definite, permanent answer from the directory: the entry exists but takes no mail. */
export interface RejectResolution {
  readonly kind: 'reject';
  readonly dn: string;
  readonly matched: string;
  /** RFC 3463 status: 5.2.1 disabled, 5.1.1 deleted, 5.3.5 illegal entry. */
  readonly status: string;
  readonly reason: string;
}

export interface UnknownResolution {
  readonly kind: 'unknown';
  /** The candidates that were tried, in order. */
  readonly tried: readonly string[];
}

export type Resolution = MailboxResolution | ForwardResolution | GroupResolution | RejectResolution | UnknownResolution;

/** Where an answer came from: LDAP now, one of the cache tiers, or a stale entry served during an outage. */
export type Source = 'ldap' | 'memory' | 'redis' | 'stale';

export interface Lookup {
  readonly resolution: Resolution;
  readonly source: Source;
}

export type LoginFailure = 'empty-password' | 'unknown-user' | 'bad-password' | 'account-disabled' | 'ambiguous';

export type LoginResult =
  | { readonly ok: true; readonly dn: string; readonly login: string; readonly addresses: readonly string[]; readonly mailHost: string | null; readonly mailbox: string | null; readonly sendAs?: readonly string[]; readonly quota?: Quota }
  | { readonly ok: false; readonly reason: LoginFailure };

export interface Directory {
  /** Resolve a recipient. Throws a temporary MailError when the directory cannot answer. */
  resolveRecipient(address: Address): Promise<Resolution>;
  /** The same, saying where the answer came from (for the CLI and logs). */
  lookup(address: Address): Promise<Lookup>;
  /** Check a login; throws a temporary MailError when the directory cannot answer. */
  authenticate(login: string, password: string): Promise<LoginResult>;
  /** The addresses a group distributes to (nested groups expanded, de-duplicated, capped); temporary MailError on directory trouble. */
  expandGroup(group: GroupResolution): Promise<readonly string[]>;
  /** Is the entry `dn` a member of `group` (nested groups included)? */
  isMember(group: GroupResolution, dn: string): Promise<boolean>;
  /** May `sender` post to `group` (members-only lists)? */
  mayPost(group: GroupResolution, sender: Address | null): Promise<boolean>;
  /** Drop one address from every cache tier, or everything when no address is given. */
  flush(address?: Address): Promise<void>;
  close(): Promise<void>;
}
