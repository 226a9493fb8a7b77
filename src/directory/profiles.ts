// Profiles map the directory model onto attribute names: a plain data table, one row per schema
// family, adjusted by a few configuration keys (profileFor). Code elsewhere names concepts (store,
// forward, status), never attributes directly. Also the pure readers of what an address attribute
// holds: AD's typed proxyAddresses ("SMTP:" primary, "smtp:" secondary, other types ignored).

export interface Profile {
  readonly name: string;
  /** Attributes holding plain addresses, searched for a recipient; the first value of the first is the primary address. */
  readonly address: readonly string[];
  /** An attribute of typed addresses ("TYPE:address"; only smtp-typed ones count, "SMTP:" marks the primary): AD's proxyAddresses. */
  readonly proxyAddresses: string | null;
  /** True when the address attributes are IA5 (ASCII only): a non-ASCII key cannot match. */
  readonly asciiAddresses: boolean;
  /** Default login filters (Postfix %s/%u/%d templates) for names without and with "@". */
  readonly loginFilter: string;
  readonly loginFilterWithAt: string;
  readonly password: string;
  readonly login: string;
  /** For a login by bind: the attribute whose value is bound as (AD: userPrincipalName); the DN when absent or null. */
  readonly bindName: string | null;
  readonly store: string | null;
  readonly home: string | null;
  /**
   * When neither store nor home is set: a store template below the mail base, or null for
   * forward-only. {domain} and {local} are the primary address's parts, any other {name} the
   * entry's single value of that attribute; all lower-cased.
   */
  readonly derivedStore: string | null;
  readonly mailHost: string | null;
  readonly forward: string | null;
  /** Forwarding values may be typed ("SMTP:x@y", AD's targetAddress): the type is stripped, non-smtp values ignored. */
  readonly typedForward: boolean;
  /** A forwarding address replaces the mailbox (AD mail users, Exchange's altRecipient) unless keepCopy is TRUE. */
  readonly forwardReplacesMailbox: boolean;
  readonly keepCopy: string | null;
  /** Object classes whose entries never have a mailbox of their own (AD contacts): forward-only recipients. */
  readonly forwardOnlyClasses: readonly string[];
  readonly program: string | null;
  readonly dotMode: string | null;
  readonly deliveryMode: string | null;
  readonly replyText: string | null;
  readonly status: string | null;
  /** AD's userAccountControl: an integer whose bit 0x2 marks a disabled account. */
  readonly accountControl: string | null;
  /** AD's accountExpires: 100-ns intervals since 1601; 0 or 2^63-1 is never. Expired: logins refused. */
  readonly accountExpires: string | null;
  readonly quotaSize: string | null;
  /** Bytes per unit of quotaSize (1024 for Exchange's mDBStorageQuota, in KB). */
  readonly quotaSizeUnit: number;
  readonly quotaCount: string | null;
  readonly sizeMax: string | null;
  readonly uidNumber: readonly string[];
  /** Object class that marks a qmailGroup-style entry, and its attributes. */
  readonly groupClass: string | null;
  readonly group: {
    readonly dnMember: string; readonly rfc822Member: string; readonly filterMember: string;
    readonly dnSender: string; readonly rfc822Sender: string; readonly filterSender: string;
    readonly dnModerator: string; readonly rfc822Moderator: string;
    readonly membersOnly: string; readonly senderConfirm: string; readonly bounceAdmin: string;
  };
  /** A recipient's own junk score (filters.spam.userJunkScoreAttribute), and a boolean that turns greylisting off for it. */
  readonly junkScore: string | null;
  readonly greylistOptOut: string | null;
  /** Lower-case object classes whose member/uniqueMember values list member DNs (groupOfNames; AD's group). */
  readonly listClasses: readonly string[];
  /**
   * AD: group members are not read with the group (a large group's member values come in ranges);
   * expansion asks the server for the transitive members (in-chain rule) or walks them itself.
   */
  readonly membersAtExpansion: boolean;
}

const QMAIL_GROUP = {
  dnMember: 'dnmember', rfc822Member: 'rfc822member', filterMember: 'filtermember',
  dnSender: 'dnsender', rfc822Sender: 'rfc822sender', filterSender: 'filtersender',
  dnModerator: 'dnmoderator', rfc822Moderator: 'rfc822moderator',
  membersOnly: 'membersonly', senderConfirm: 'senderconfirm', bounceAdmin: 'bounceadmin',
} as const;

/** qmail-ldap's qmailUser/qmailGroup schema (the default). */
export const QMAIL: Profile = {
  name: 'qmail',
  address: ['mail', 'mailAlternateAddress'],
  proxyAddresses: null,
  asciiAddresses: true,
  loginFilter: '(uid=%s)',
  loginFilterWithAt: '(|(mail=%s)(mailAlternateAddress=%s))',
  password: 'userPassword',
  login: 'uid',
  bindName: null,
  store: 'mailMessageStore',
  home: 'homeDirectory',
  derivedStore: null,
  mailHost: 'mailHost',
  forward: 'mailForwardingAddress',
  typedForward: false,
  forwardReplacesMailbox: false,
  keepCopy: null,
  forwardOnlyClasses: [],
  program: 'deliveryProgramPath',
  dotMode: 'qmailDotMode',
  deliveryMode: 'deliveryMode',
  replyText: 'mailReplyText',
  status: 'accountStatus',
  accountControl: null,
  accountExpires: null,
  quotaSize: 'mailQuotaSize',
  quotaSizeUnit: 1,
  quotaCount: 'mailQuotaCount',
  sizeMax: 'mailSizeMax',
  uidNumber: ['qmailUID', 'qmailGID'],
  groupClass: 'qmailGroup',
  group: QMAIL_GROUP,
  junkScore: null,
  greylistOptOut: null,
  listClasses: ['groupofnames', 'groupofuniquenames'],
  membersAtExpansion: false,
};

/**
 * Plain inetOrgPerson with inetLocalMailRecipient (misc.schema): every mail and mailLocalAddress
 * value is an address, mailRoutingAddress forwards, mailHost owns the mailbox. Entries without a
 * store get "<domain>/<local>/" under the mailbox base. qmail attributes are honoured if present.
 */
export const INETORGPERSON: Profile = {
  ...QMAIL,
  name: 'inetorgperson',
  address: ['mail', 'mailLocalAddress'],
  loginFilterWithAt: '(|(mail=%s)(mailLocalAddress=%s))',
  derivedStore: '{domain}/{local}/',
  forward: 'mailRoutingAddress',
  groupClass: null,
};

/**
 * Active Directory with no schema extension: addresses from mail and the smtp-typed proxyAddresses,
 * logins by sAMAccountName, userPrincipalName or address (checked by binding, as the UPN), the
 * disabled bit of userAccountControl, mailboxes derived from a template, contacts and mail users
 * (targetAddress) forward-only, groups (objectClass group) expanded through the server's in-chain rule.
 */
export const AD: Profile = {
  name: 'ad',
  address: ['mail'],
  proxyAddresses: 'proxyAddresses',
  asciiAddresses: false,
  loginFilter: '(sAMAccountName=%s)',
  loginFilterWithAt: '(|(userPrincipalName=%s)(mail=%s)(proxyAddresses=smtp:%s))',
  password: 'userPassword', // never readable in AD: logins are checked by binding
  login: 'sAMAccountName',
  bindName: 'userPrincipalName',
  store: null,
  home: null,
  derivedStore: '{domain}/{sAMAccountName}/',
  mailHost: null,
  forward: 'targetAddress',
  typedForward: true,
  forwardReplacesMailbox: true,
  keepCopy: null,
  forwardOnlyClasses: ['contact'],
  program: null,
  dotMode: null,
  deliveryMode: null,
  replyText: null,
  status: null,
  accountControl: 'userAccountControl',
  accountExpires: 'accountExpires',
  quotaSize: null,
  quotaSizeUnit: 1,
  quotaCount: null,
  sizeMax: null,
  uidNumber: [],
  groupClass: null,
  group: QMAIL_GROUP,
  junkScore: null,
  greylistOptOut: null,
  listClasses: ['group'],
  membersAtExpansion: true,
};

export const PROFILES: Readonly<Record<string, Profile>> = { qmail: QMAIL, inetorgperson: INETORGPERSON, ad: AD };

/** The attribute names configuration may set on any profile; '' means "none". */
export interface ProfileSettings {
  readonly profile: string;
  /** Empty: the profile's own derivedStore. */
  readonly mailboxTemplate: string;
  readonly attributes: {
    readonly mailHost?: string | undefined; readonly forward?: string | undefined; readonly keepCopy?: string | undefined;
    readonly quotaSize?: string | undefined; readonly quotaCount?: string | undefined; readonly sizeMax?: string | undefined;
  };
  readonly quotaSizeUnit: 'bytes' | 'kilobytes';
  /** AD: which names a login may be given as. */
  readonly loginBy: readonly ('sAMAccountName' | 'userPrincipalName' | 'mail')[];
  /** Per-recipient filter settings read from the directory (filters.spam.userJunkScoreAttribute, filters.greylist.optOutAttribute); '' or absent: none. */
  readonly junkScoreAttribute?: string;
  readonly greylistOptOutAttribute?: string;
}

/** The profile a configuration describes: the table's row with the configured names put in. Pure. */
export function profileFor(settings: ProfileSettings): Profile {
  const base = PROFILES[settings.profile];
  if (base === undefined) throw new Error(`unknown directory profile ${JSON.stringify(settings.profile)}`);
  const a = settings.attributes;
  const name = (value: string | undefined, fallback: string | null) => (value === undefined ? fallback : value === '' ? null : value);
  let profile: Profile = {
    ...base,
    derivedStore: settings.mailboxTemplate === '' ? base.derivedStore : settings.mailboxTemplate,
    mailHost: name(a.mailHost, base.mailHost),
    forward: name(a.forward, base.forward),
    keepCopy: name(a.keepCopy, base.keepCopy),
    quotaSize: name(a.quotaSize, base.quotaSize),
    quotaCount: name(a.quotaCount, base.quotaCount),
    sizeMax: name(a.sizeMax, base.sizeMax),
    quotaSizeUnit: settings.quotaSizeUnit === 'kilobytes' ? 1024 : 1,
    junkScore: settings.junkScoreAttribute ? settings.junkScoreAttribute : null,
    greylistOptOut: settings.greylistOptOutAttribute ? settings.greylistOptOutAttribute : null,
  };
  if (base.proxyAddresses !== null) {
    const by = new Set(settings.loginBy);
    const withAt = [
      ...(by.has('userPrincipalName') ? ['(userPrincipalName=%s)'] : []),
      ...(by.has('mail') ? ['(mail=%s)', `(${base.proxyAddresses}=smtp:%s)`] : []),
    ];
    profile = {
      ...profile,
      // A sAMAccountName holds no "@"; an empty filter finds nobody.
      loginFilter: by.has('sAMAccountName') ? '(sAMAccountName=%s)' : '',
      loginFilterWithAt: withAt.length === 0 ? '' : withAt.length === 1 ? withAt[0]! : `(|${withAt.join('')})`,
    };
  }
  return profile;
}

/** Member attributes of groupOfNames and groupOfUniqueNames (core schema), honoured in every profile. */
export const GROUP_OF_NAMES_MEMBERS = ['member', 'uniqueMember'] as const;

/** The attribute names a mailbox template reads ({domain} and {local} come from the address). */
export function templateAttributes(template: string | null): string[] {
  if (template === null) return [];
  return [...template.matchAll(/\{([A-Za-z][A-Za-z0-9-]*)\}/g)].map((m) => m[1]!).filter((n) => n !== 'domain' && n !== 'local');
}

/** Every attribute a recipient lookup asks for. */
export function recipientAttributes(profile: Profile): string[] {
  const names = [
    ...profile.address, profile.proxyAddresses, profile.login, profile.store, profile.home, profile.mailHost, profile.forward,
    profile.keepCopy, profile.program, profile.dotMode, profile.deliveryMode, profile.replyText, profile.status,
    profile.accountControl, profile.quotaSize, profile.quotaCount, profile.sizeMax, ...profile.uidNumber, 'objectClass',
    profile.junkScore, profile.greylistOptOut,
    ...templateAttributes(profile.derivedStore),
    ...(profile.groupClass === null ? [] : Object.values(profile.group)),
    ...(profile.membersAtExpansion ? [] : GROUP_OF_NAMES_MEMBERS),
  ];
  return [...new Set(names.filter((n): n is string => n !== null))];
}

/** The smtp address of one typed value ("SMTP:a@b" primary, "smtp:a@b" secondary); null for other types. Pure. */
export function typedAddress(value: string): { readonly address: string; readonly primary: boolean } | null {
  const colon = value.indexOf(':');
  if (colon < 0 || value.slice(0, colon).toLowerCase() !== 'smtp') return null;
  const address = value.slice(colon + 1).trim();
  return address === '' ? null : { address, primary: value.startsWith('SMTP:') };
}

export interface EntryAddresses {
  /** The reply address, lower-cased; null when the entry holds none. */
  readonly primary: string | null;
  /** Every deliverable address, lower-cased, primary first, no duplicates. */
  readonly all: readonly string[];
  /** Why the primary was chosen by a fallback rule (directory-model §6.3), for a warning; null when clear. */
  readonly problem: string | null;
}

type Attributes = ReadonlyMap<string, readonly string[]>;
const values = (attrs: Attributes, name: string | null) => (name === null ? [] : attrs.get(name.toLowerCase()) ?? []);

/**
 * The addresses an entry holds (directory-model §2, §6.3): the plain address attributes, and the
 * smtp-typed values of proxyAddresses whose one upper-case "SMTP:" value is the primary; with none
 * or several, mail is, else the first upper-case value, else the first secondary one. Pure.
 */
export function entryAddresses(profile: Profile, attrs: Attributes): EntryAddresses {
  const plain = profile.address.flatMap((a) => values(attrs, a)).map((v) => v.trim().toLowerCase()).filter((v) => v !== '');
  const typed = values(attrs, profile.proxyAddresses).map(typedAddress).filter((t) => t !== null);
  const mail = values(attrs, profile.address[0] ?? null)[0]?.trim().toLowerCase() || null;
  let primary = mail;
  let problem: string | null = null;
  if (profile.proxyAddresses !== null && typed.length > 0) {
    const upper = typed.filter((t) => t.primary);
    if (upper.length === 1) primary = upper[0]!.address.toLowerCase();
    else {
      problem = `${upper.length === 0 ? 'no' : 'more than one'} primary SMTP: value in ${profile.proxyAddresses}`;
      primary = mail ?? (upper[0] ?? typed[0])!.address.toLowerCase();
    }
  }
  const all = [...new Set([...(primary === null ? [] : [primary]), ...plain, ...typed.map((t) => t.address.toLowerCase())])];
  return { primary, all, problem };
}

/** AD's ACCOUNTDISABLE bit (0x2) of userAccountControl is set; false for profiles without one. Pure. */
export function accountDisabled(profile: Profile, attrs: Attributes): boolean {
  const control = values(attrs, profile.accountControl)[0];
  return control !== undefined && /^\d+$/.test(control) && (Number(control) & 2) === 2;
}

/** Which attribute of the entry holds `address` (for `ldapmta lookup`), e.g. "proxyAddresses (smtp:)"; null if none. Pure. */
export function attributeHolding(profile: Profile, attrs: Attributes, address: string): string | null {
  const wanted = address.toLowerCase();
  for (const name of profile.address) {
    if (values(attrs, name).some((v) => v.trim().toLowerCase() === wanted)) return name;
  }
  for (const value of values(attrs, profile.proxyAddresses)) {
    const typed = typedAddress(value);
    if (typed !== null && typed.address.toLowerCase() === wanted) return `${profile.proxyAddresses} (${value.slice(0, value.indexOf(':') + 1)})`;
  }
  return null;
}

/** The filter terms that find `escaped` (an already filter-escaped address) in the address attributes. Pure. */
export function addressTerms(profile: Profile, escaped: string): string[] {
  const terms = profile.address.map((a) => `(${a}=${escaped})`);
  // AD string matching ignores case, so "smtp:" finds primary "SMTP:" values too (§6.3).
  if (profile.proxyAddresses !== null) terms.push(`(${profile.proxyAddresses}=smtp:${escaped})`);
  return terms;
}
