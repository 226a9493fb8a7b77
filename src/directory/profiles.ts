// Profiles map the directory model onto attribute names: a plain data table, one row per schema
// family. Code elsewhere names concepts (store, forward, status), never attributes directly.

export interface Profile {
  readonly name: string;
  /** Attributes holding addresses, searched for a recipient; the first is the primary address. */
  readonly address: readonly string[];
  /** True when the address attributes are IA5 (ASCII only): a non-ASCII key cannot match. */
  readonly asciiAddresses: boolean;
  /** Default login filters (Postfix %s/%u/%d templates) for names without and with "@". */
  readonly loginFilter: string;
  readonly loginFilterWithAt: string;
  readonly password: string;
  readonly login: string;
  readonly store: string | null;
  readonly home: string | null;
  /** When neither store nor home is set: a store template from the primary address, or null for forward-only. */
  readonly derivedStore: string | null;
  readonly mailHost: string | null;
  readonly forward: string | null;
  readonly program: string | null;
  readonly dotMode: string | null;
  readonly deliveryMode: string | null;
  readonly replyText: string | null;
  readonly status: string | null;
  readonly quotaSize: string | null;
  readonly quotaCount: string | null;
  readonly sizeMax: string | null;
  readonly uidNumber: readonly string[];
  /** Object class that marks a group entry, and its attributes. */
  readonly groupClass: string | null;
  readonly group: {
    readonly dnMember: string; readonly rfc822Member: string; readonly filterMember: string;
    readonly dnSender: string; readonly rfc822Sender: string; readonly filterSender: string;
    readonly dnModerator: string; readonly rfc822Moderator: string;
    readonly membersOnly: string; readonly senderConfirm: string; readonly bounceAdmin: string;
  };
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
  asciiAddresses: true,
  loginFilter: '(uid=%s)',
  loginFilterWithAt: '(|(mail=%s)(mailAlternateAddress=%s))',
  password: 'userPassword',
  login: 'uid',
  store: 'mailMessageStore',
  home: 'homeDirectory',
  derivedStore: null,
  mailHost: 'mailHost',
  forward: 'mailForwardingAddress',
  program: 'deliveryProgramPath',
  dotMode: 'qmailDotMode',
  deliveryMode: 'deliveryMode',
  replyText: 'mailReplyText',
  status: 'accountStatus',
  quotaSize: 'mailQuotaSize',
  quotaCount: 'mailQuotaCount',
  sizeMax: 'mailSizeMax',
  uidNumber: ['qmailUID', 'qmailGID'],
  groupClass: 'qmailGroup',
  group: QMAIL_GROUP,
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
  derivedStore: '%d/%u/',
  forward: 'mailRoutingAddress',
  groupClass: null,
};

export const PROFILES: Readonly<Record<string, Profile>> = { qmail: QMAIL, inetorgperson: INETORGPERSON };

/** Member attributes of groupOfNames and groupOfUniqueNames (core schema), honoured in every profile. */
export const GROUP_OF_NAMES_MEMBERS = ['member', 'uniqueMember'] as const;

/** Every attribute a recipient lookup asks for. */
export function recipientAttributes(profile: Profile): string[] {
  const names = [
    ...profile.address, profile.login, profile.store, profile.home, profile.mailHost, profile.forward,
    profile.program, profile.dotMode, profile.deliveryMode, profile.replyText, profile.status,
    profile.quotaSize, profile.quotaCount, profile.sizeMax, ...profile.uidNumber, 'objectClass',
    ...(profile.groupClass === null ? [] : Object.values(profile.group)),
    ...GROUP_OF_NAMES_MEMBERS,
  ];
  return [...new Set(names.filter((n): n is string => n !== null))];
}
