// The one configuration schema. loadConfig() reads the YAML file, applies LDAPMTA_* environment
// overrides and *File secrets, and validates everything at once; it never opens a port. The only
// place in the code base that reads process.env.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname as systemHostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** "host:port", "[v6]:port" or ":port"; an empty string disables the listener. */
const hostPort = z.string().refine((v) => v === '' || parseHostPort(v) !== null, {
  message: 'expected "host:port" (for example "0.0.0.0:25" or "[::1]:587"), or "" to disable',
});

const cidr = z.string().refine((v) => parseCidr(v) !== null, { message: 'expected a CIDR such as 10.0.0.0/8 or ::1/128' });

const hostPortRequired = z.string().refine((v) => parseHostPort(v) !== null && !v.startsWith(':'), {
  message: 'expected "host:port"',
}).transform((v) => parseHostPort(v)!);

const ldapUrl = z.string().regex(/^ldaps?:\/\/[^\s/]+\/?$/i, 'expected ldap://host[:port] or ldaps://host[:port]');

const domainName = z.string().min(1).regex(/^[^\s@]+$/, 'expected a domain name').transform((d) => d.toLowerCase().replace(/\.$/, ''));

const resolutionMode = z.enum(['qmail', 'postfix']);

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The `component` of every child logger made in src/ (log.child({ component })). */
export const LOG_COMPONENTS = ['smtp', 'submission', 'submissions', 'pop3', 'pop3s', 'imap', 'imaps', 'admin', 'directory', 'embedded-directory', 'queue', 'deliver', 'filters'] as const;

const attributeName = z.string().regex(/^([A-Za-z][A-Za-z0-9-]*)?$/, 'expected an attribute name, or "" for none');

const domainResolution = z.strictObject({
  mode: resolutionMode.optional(),
  dashExt: z.boolean().optional(),
  recipientDelimiter: z.string().min(1).optional(),
});

const directorySchema = z.strictObject({
  /** Server URLs tried in order (failover). Empty: start the embedded directory. */
  urls: z.array(ldapUrl).default([]),
  bindDN: z.string().default(''),
  bindPassword: z.string().default(''),
  baseDN: z.string().default('dc=example,dc=org'),
  profile: z.enum(['qmail', 'inetorgperson', 'ad']).default('qmail'),
  /**
   * Where a mailbox lies below the mail base when the entry names none: {domain} and {local} of the
   * primary address, or {attribute} for any single-valued attribute. Empty: the profile's own.
   */
  mailboxTemplate: z.string().regex(/^(\{[A-Za-z][A-Za-z0-9-]*\}|[A-Za-z0-9@_.=-]|\/)*\/$/, 'expected a relative path of {domain}, {local}, {attribute} and [A-Za-z0-9@_.=-] parts ending in "/", such as "{domain}/{sAMAccountName}/"').or(z.literal('')).default(''),
  /** Attribute names that replace the profile's; "" means the concept is not read at all. */
  attributes: z.strictObject({
    mailHost: attributeName.optional(),
    forward: attributeName.optional(),
    keepCopy: attributeName.optional(),
    quotaSize: attributeName.optional(),
    quotaCount: attributeName.optional(),
    sizeMax: attributeName.optional(),
  }).prefault({}),
  /** The unit of the quotaSize attribute: Exchange's mDBStorageQuota counts kilobytes. */
  quotaSizeUnit: z.enum(['bytes', 'kilobytes']).default('bytes'),
  /** Page size of paged searches (group expansion, filter members); AD serves at most 1000. */
  pageSize: z.number().int().min(1).max(1000).default(500),
  /** Follow search result references (other naming contexts, other domains), binding as the service account; at most 5 hops. */
  followReferrals: z.boolean().default(false),
  tls: z.strictObject({
    /** PEM file of the CA(s) that signed the directory servers' certificates; empty: the system's. */
    ca: z.string().default(''),
    /** Upgrade ldap:// connections with StartTLS before binding (ldaps:// URLs are TLS from the start). */
    startTls: z.boolean().default(false),
    /** Check the server's certificate and name; turn off only to try things out. */
    verify: z.boolean().default(true),
  }).prefault({}),
  /** Active Directory (profile ad). */
  ad: z.strictObject({
    /** A disabled account (userAccountControl bit 0x2): "noaccess" keeps its mail flowing, "disabled" refuses it at RCPT (5.2.1). Logins are refused either way. */
    disabledAs: z.enum(['noaccess', 'disabled']).default('noaccess'),
    /** Which names a login may be given as. */
    loginBy: z.array(z.enum(['sAMAccountName', 'userPrincipalName', 'mail'])).min(1).default(['sAMAccountName', 'userPrincipalName', 'mail']),
    /** Nested groups through the server's in-chain rule (1.2.840.113556.1.4.1941): auto uses it when the rootDSE says Active Directory. */
    inChain: z.enum(['auto', 'always', 'never']).default('auto'),
    /** Read member values this many at a time (ranged retrieval); 0: as the server hands them out (AD: 1500). */
    memberRangeSize: z.number().int().min(0).max(100_000).default(0),
  }).prefault({}),
  timeoutMs: z.number().int().positive().max(120_000).default(5000),
  connectTimeoutMs: z.number().int().positive().max(120_000).default(3000),
  poolSize: z.number().int().min(1).max(256).default(8),
  /** Seconds between health checks of idle connections; 0 turns them off. */
  healthCheckSeconds: z.number().int().min(0).default(30),
  /** Optional extra restriction ANDed to every search, as qmail-ldap's ldapobjectclass. */
  objectClass: z.string().default(''),
  embedded: z.strictObject({
    /** LDIF loaded into the embedded server; empty: the bundled schema/sample-directory.ldif. */
    ldif: z.string().default(''),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    bindDN: z.string().default('cn=admin,dc=example,dc=org'),
  }).prefault({}),
  resolution: z.strictObject({
    mode: resolutionMode.default('qmail'),
    dashExt: z.boolean().default(true),
    dashExtLevels: z.number().int().min(1).max(16).default(4),
    catchall: z.string().min(1).default('catchall'),
    recipientDelimiter: z.string().min(1).default('+'),
    domains: z.record(z.string(), domainResolution).default({}),
    ambiguous: z.enum(['tempfail', 'bounce']).default('tempfail'),
    unknownAccountStatus: z.enum(['active', 'tempfail']).default('active'),
  }).prefault({}),
  /** alias.example: example.org — the domain part is replaced before lookup. */
  aliasDomains: z.record(z.string(), domainName).default({}),
  /** The delivery instruction relative to the mailbox home: "./" (the store is the Maildir) or "./Maildir/". */
  defaultDelivery: z.string().regex(/^\.\/([A-Za-z0-9@_.=-]+\/)*$/, 'expected "./" or a relative directory such as "./Maildir/"').default('./'),
  /** Most addresses one group expansion may yield; more fails temporarily (4.2.4). */
  groupExpansionLimit: z.number().int().min(1).default(10_000),
  /** Most levels of groups nested inside a group; deeper ones are not expanded (logged). */
  groupMaxDepth: z.number().int().min(1).max(100).default(10),
  defaultQuotaSize: z.number().int().min(0).default(0),
  defaultQuotaCount: z.number().int().min(0).default(0),
  auth: z.strictObject({
    /** hash: compare with the entry's userPassword; bind: bind as the user. Default: bind for profile ad, else hash. */
    method: z.enum(['hash', 'bind']).optional(),
    allowCleartext: z.boolean().default(false),
    /** Filter template; %s is the whole login, %u its local part, %d its domain. Empty: the profile's. */
    loginFilter: z.string().default(''),
    /** An attribute of the user's entry listing more addresses the user may send as (submission). Empty: none. */
    sendAsAttribute: z.string().regex(/^([A-Za-z][A-Za-z0-9-]*)?$/, 'expected an attribute name').default(''),
  }).prefault({}),
});

const cacheSchema = z.strictObject({
  /** redis://host:port[/db]; empty: only the in-process tier. */
  redis: z.string().regex(/^(rediss?:\/\/\S+)?$/, 'expected redis://host:port[/db] or ""').default(''),
  ttlSeconds: z.number().int().min(0).default(300),
  negativeTtlSeconds: z.number().int().min(0).default(60),
  staleIfErrorSeconds: z.number().int().min(0).default(3600),
  maxEntries: z.number().int().min(0).default(100_000),
  redisTimeoutMs: z.number().int().positive().default(200),
  keyPrefix: z.string().default('ldapmta:v1:'),
});

export const configSchema = z.strictObject({
  /** This node's name; compared with mailHost. */
  hostname: z.string().min(1).default(() => systemHostname()).transform((h) => h.toLowerCase().replace(/\.$/, '')),
  /** Other names that count as this node (qmail-ldap's ldapclusterhosts). */
  clusterHosts: z.array(domainName).default([]),
  localDomains: z.array(domainName).default(['example.org', 'example.net']),
  listen: z.strictObject({
    smtp: hostPort.default('0.0.0.0:25'),
    submission: hostPort.default('0.0.0.0:587'),
    submissions: hostPort.default('0.0.0.0:465'),
    pop3: hostPort.default('0.0.0.0:110'),
    /** POP3 over TLS from the first byte (port 995); needs smtp.tls. */
    pop3s: hostPort.default(''),
    /** IMAP with STARTTLS (port 143). */
    imap: hostPort.default('0.0.0.0:143'),
    /** IMAP over TLS from the first byte (port 993); needs smtp.tls. */
    imaps: hostPort.default(''),
    admin: hostPort.default('127.0.0.1:8025'),
  }).prefault({}),
  smtp: z.strictObject({
    /** Largest message accepted, in bytes (Postfix's message_size_limit); advertised with SIZE. */
    maxMessageSize: z.number().int().min(1024).default(26_214_400),
    /** Recipients per message; more get 452 4.5.3 (Postfix's smtpd_recipient_limit). */
    maxRecipients: z.number().int().min(1).default(100),
    /** Longest command line in bytes; longer ones are refused (Postfix's line_length_limit). */
    maxCommandLength: z.number().int().min(512).default(2048),
    maxConnections: z.number().int().min(1).default(1000),
    maxConnectionsPerIp: z.number().int().min(1).default(50),
    /** Idle time allowed between commands and during DATA (Postfix's smtpd_timeout). */
    timeoutSeconds: z.number().int().min(1).default(300),
    /** Messages with more Received headers are refused with 554 5.4.6 (a mail loop). */
    maxReceivedHeaders: z.number().int().min(1).default(100),
    /** Pause before the 220 greeting, in ms (sendmail's greet_pause); 0 greets at once as Postfix's smtpd does. */
    greetingDelayMs: z.number().int().min(0).max(60_000).default(0),
    /** PEM files; when both are set STARTTLS is offered. */
    tls: z.strictObject({ cert: z.string().default(''), key: z.string().default('') }).prefault({}),
  }).prefault({}),
  queue: z.strictObject({
    /** After this long, temporary failures become bounces (Postfix's maximal_queue_lifetime). */
    lifetimeSeconds: z.number().int().min(1).default(432_000),
    /** The first retry wait; each later one doubles (Postfix's minimal_backoff_time). */
    retryMinSeconds: z.number().int().min(1).default(60),
    /** The longest wait between retries (Postfix's maximal_backoff_time). */
    retryMaxSeconds: z.number().int().min(1).default(3600),
    /** One "still trying" DSN to the sender after this long; 0 never (Postfix's delay_warning_time, here on by default). */
    delayWarningSeconds: z.number().int().min(0).default(14_400),
  }).prefault({}),
  directory: directorySchema.prefault({}),
  cache: cacheSchema.prefault({}),
  spool: z.string().min(1).default('/var/spool/ldapmta'),
  mailboxes: z.string().min(1).default('/var/mail'),
  relay: z.strictObject({
    trustedNetworks: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
  }).prefault({}),
  delivery: z.strictObject({
    /** Parallel local deliveries, Maildir and programs (qmail's concurrencylocal). */
    concurrencyLocal: z.number().int().min(1).max(1000).default(20),
    /**
     * A mailbox over quota at delivery: 0 bounces at once with 5.2.2 (qmail-ldap, Dovecot); more keeps the
     * message deferred (4.2.2) for that long after it was queued, then bounces (qmail-ldap's quotaDeferLimit).
     */
    quotaDeferSeconds: z.number().int().min(0).default(0),
    /** Parallel SMTP transactions, all destinations together (qmail's concurrencyremote). */
    concurrencyRemote: z.number().int().min(1).max(10_000).default(100),
    /** Parallel SMTP transactions to one destination domain or host (Postfix's default_destination_concurrency_limit). */
    concurrencyPerDestination: z.number().int().min(1).max(1000).default(20),
    remotePort: z.number().int().min(1).max(65535).default(25),
    /** DNS servers for MX and address lookups: "ip" or "ip:port"; empty: the system's resolv.conf. */
    dnsServers: z.array(z.string().refine((v) => isIP(v) !== 0 || (parseHostPort(v) !== null && isIP(parseHostPort(v)!.host) !== 0), 'expected an IP address, optionally with :port')).default([]),
    /** How long MX and address answers are reused, in seconds; 0 asks DNS every time. */
    dnsCacheSeconds: z.number().int().min(0).default(60),
    /** Host names answered from here instead of DNS, for mailHost nodes or MX hosts: name → "host:port". */
    hostMap: z.record(domainName, hostPortRequired).default({}),
    /** All remote mail goes to this host ("host" or "host:port"; no MX lookup), as Postfix's relayhost = [host]. */
    smarthost: z.string().refine((v) => v === '' || /^(\[[^\s\]]+\]|[^\s:[\]]+)(:\d{1,5})?$/.test(v), 'expected host, host:port, [host] or [host]:port').default(''),
    smarthostUser: z.string().default(''),
    smarthostPassword: z.string().default(''),
    /** Port of the other cluster nodes (mailHost) when the hostMap does not say; default: remotePort. */
    clusterPort: z.number().int().min(1).max(65535).optional(),
    /** Most cluster hops (X-LdapMTA-Cluster-Hop fields) a message may already carry. */
    maxClusterHops: z.number().int().min(1).max(50).default(5),
    /** Name said in EHLO; default: hostname. */
    heloName: z.string().regex(/^[^\s]*$/, 'expected a host name').default(''),
    /** "opportunistic": STARTTLS whenever offered, certificates not checked (Postfix's smtp_tls_security_level = may); "none": never. */
    tls: z.enum(['opportunistic', 'none']).default('opportunistic'),
    connectTimeoutSeconds: z.number().int().min(1).default(30),
    /** Wait for each reply of the remote server (the end of DATA gets twice this). */
    timeoutSeconds: z.number().int().min(1).default(300),
    /** How long an idle connection is kept for the next message (Postfix's smtp_connection_cache_time_limit). */
    connectionCacheSeconds: z.number().min(0).max(300).default(2),
    /** Messages per connection before it is closed; 0: no limit. */
    connectionReuseLimit: z.number().int().min(0).default(100),
  }).prefault({}),
  /** Spam and virus filtering of mail from outside (the MX listener; submission and trusted networks are not filtered). */
  filters: z.strictObject({
    /** DNS block and allow lists of the client's address, scored; at rejectScore RCPT gets 554 5.7.1 naming the lists. */
    dnsbl: z.strictObject({
      zones: z.array(z.strictObject({
        zone: domainName,
        /** Added to the score when the address is listed; negative for an allow list (DNSWL). */
        weight: z.number().min(-1000).max(1000).default(10),
      })).default([]),
      rejectScore: z.number().default(10),
      timeoutMs: z.number().int().min(100).max(30_000).default(2000),
      /** Added to the client's score when its reverse DNS is not forward-confirmed (a final answer; DNS trouble adds nothing). */
      noFcrdnsWeight: z.number().min(-1000).max(1000).default(0),
      /** Added for each problem with the HELO name (not a FQDN, localhost, our own name, an IP literal that isn't the client's …). */
      badHeloWeight: z.number().min(-1000).max(1000).default(0),
    }).prefault({}),
    /** Greylisting of (client network, sender, recipient) triplets, shared through cache.redis when set. */
    greylist: z.strictObject({
      enabled: z.boolean().default(false),
      /** A retry is accepted after this long (postgrey: 300). */
      delaySeconds: z.number().int().min(1).max(86_400).default(300),
      /** A triplet that passed is remembered this long (postgrey: 35 days). */
      lifetimeSeconds: z.number().int().min(60).default(3_024_000),
      /** Client networks never greylisted (their own MTAs, partners). */
      networks: z.array(cidr).default([]),
      /** Sender domains never greylisted. */
      domains: z.array(domainName).default([]),
      /** Skip greylisting when the sender's SPF passes. */
      skipOnSpfPass: z.boolean().default(true),
      /** A directory attribute (boolean) whose TRUE turns greylisting off for that recipient; empty: none. */
      optOutAttribute: attributeName.default(''),
      /** With cache.redis: a triplet that passed is answered from this process's memory this long, without asking Redis; 0: always ask. */
      passCacheSeconds: z.number().int().min(0).max(86_400).default(300),
    }).prefault({}),
    /**
     * Directory-harvest protection: after slowAfter unknown recipients in one session each reply
     * waits delayMs; at disconnectAfter the session gets 421 (Postfix's smtpd_soft/hard_error_limit).
     * perIpPerHour counts across sessions and nodes (in cache.redis when set).
     */
    harvest: z.strictObject({
      slowAfter: z.number().int().min(1).default(5),
      delayMs: z.number().int().min(0).max(60_000).default(1000),
      disconnectAfter: z.number().int().min(1).default(20),
      perIpPerHour: z.number().int().min(1).default(100),
    }).prefault({}),
    /** SPF, DKIM, DMARC and ARC (mailauth): one Authentication-Results header on every message from outside. */
    authentication: z.strictObject({
      enabled: z.boolean().default(false),
      /** Refuse (550 5.7.1) mail whose DMARC fails under the domain's p=reject. */
      dmarcReject: z.boolean().default(true),
      /** A DMARC failure under p=quarantine: delivered to the Junk folder, or only tagged. */
      dmarcQuarantine: z.enum(['junk', 'tag']).default('junk'),
    }).prefault({}),
    /** ClamAV's clamd: "host:port" or a Unix socket path; empty: no virus scanning. */
    clamav: z.strictObject({
      address: z.string().default(''),
      timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
      /** clamd's StreamMaxLength: a larger message is not sent (it could not be scanned whole) and counts as a scanner failure. */
      maxBytes: z.number().int().min(1024).default(26_214_400),
      /** When clamd is down or times out: false answers 451 4.7.1 (the sender retries), true accepts and tags the message. */
      failOpen: z.boolean().default(false),
    }).prefault({}),
    spam: z.strictObject({
      scanner: z.enum(['none', 'spamd', 'rspamd']).default('none'),
      /** spamd: "host:port"; rspamd: its normal worker's URL (http://127.0.0.1:11333). */
      address: z.string().default(''),
      timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
      failOpen: z.boolean().default(false),
      /** Larger messages are not scored (spamc's default limit is 500 KB; spam is small). */
      maxBytes: z.number().int().min(1024).default(2_097_152),
      /** At or above: X-Spam-Flag: YES. */
      tagScore: z.number().default(5),
      /** At or above: delivered to the recipient's Junk folder (per-user value from userJunkScoreAttribute). */
      junkScore: z.number().default(5),
      /** At or above: refused at the end of DATA, 550 5.7.1. */
      rejectScore: z.number().default(15),
      /** A directory attribute holding a recipient's own junk score; empty: none. */
      userJunkScoreAttribute: attributeName.default(''),
    }).prefault({}),
    /** A client that talks before the greeting (smtp.greetingDelayMs > 0) is refused, 554 5.5.1 (postscreen's pregreet test). */
    earlyTalker: z.boolean().default(true),
  }).prefault({}),
  submission: z.strictObject({
    /** Allow AUTH without TLS when the client connects from a loopback address (webmail on the same host). */
    allowPlaintextAuthOnLoopback: z.boolean().default(false),
    /** MAIL FROM and From: must be one of the logged-in entry's addresses (Postfix's reject_sender_login_mismatch). */
    senderLoginMatch: z.enum(['strict', 'off']).default('strict'),
    /** Members of a list (qmailGroup, groupOfNames) may also send as the list's address. */
    sendAsGroupMembers: z.boolean().default(false),
  }).prefault({}),
  pop3: z.strictObject({
    /** Let clients on loopback log in without TLS (USER/PASS, AUTH PLAIN); others must use STLS or POP3S. */
    allowPlaintextAuthOnLoopback: z.boolean().default(false),
    /** Idle time before a session is closed without deleting anything (RFC 1939: at least 10 minutes). */
    idleTimeoutSeconds: z.number().int().min(30).default(600),
  }).prefault({}),
  imap: z.strictObject({
    /** Let clients on loopback log in without TLS (LOGIN, AUTHENTICATE PLAIN); others must use STARTTLS or IMAPS. */
    allowPlaintextAuthOnLoopback: z.boolean().default(false),
    /** Idle time (IDLE included) before a session is logged out (RFC 3501 §5.4: at least 30 minutes). */
    idleTimeoutSeconds: z.number().int().min(60).default(1800),
    /** Connections at once, in all (each IDLE client holds one) and from one address; more get "* BYE [UNAVAILABLE]". */
    maxConnections: z.number().int().min(1).default(5000),
    maxConnectionsPerIp: z.number().int().min(1).default(100),
  }).prefault({}),
  limits: z.strictObject({
    /** Failed logins from one client address within authWindowSeconds before it is locked out. */
    authFailuresPerIp: z.number().int().min(1).default(20),
    /** Failed logins for one login name within authWindowSeconds before it is locked out. */
    authFailuresPerLogin: z.number().int().min(1).default(5),
    authWindowSeconds: z.number().int().min(1).default(900),
    /** How long a locked-out address or login gets 454 4.7.0. */
    lockoutSeconds: z.number().int().min(1).default(900),
    messagesPerUserPerHour: z.number().int().min(1).default(500),
    recipientsPerUserPerHour: z.number().int().min(1).default(2000),
  }).prefault({}),
  dkim: z.strictObject({
    /** Signing keys for submitted mail, by the From: domain: {example.org: {selector: s1, keyFile: /etc/ldapmta/dkim/example.org.pem}}. */
    domains: z.record(domainName, z.strictObject({
      selector: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected a DKIM selector'),
      keyFile: z.string().min(1),
      algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).default('rsa-sha256'),
    })).default({}),
  }).prefault({}),
  admin: z.strictObject({
    /** Bearer token for the admin HTTP API; required when listen.admin is not a loopback address. */
    token: z.string().default(''),
  }).prefault({}),
  programs: z.strictObject({
    /** Run deliveryProgramPath lines at all (qmail-ldap's allowPrograms; off by default). */
    enabled: z.boolean().default(false),
    /** Absolute paths of the programs that may run; any other line fails permanently (5.3.5). */
    allow: z.array(z.string().regex(/^\/[^\s]*$/, 'expected an absolute path')).default([]),
    /** The unprivileged user (name or uid:gid) programs run as; never root. */
    user: z.string().default('nobody'),
    timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
  }).prefault({}),
  autoreply: z.strictObject({
    /** One auto-reply per sender and reply text within this period (qmail-reply: 14 days). */
    periodSeconds: z.number().int().min(1).default(604_800),
    /** Reply only when one of the user's addresses is in To or Cc (RFC 3834 §2). */
    onlyWhenAddressed: z.boolean().default(true),
  }).prefault({}),
  srs: z.strictObject({
    /** Rewrite the envelope sender of mail forwarded to other domains (SRS0/SRS1). */
    enabled: z.boolean().default(true),
    /** The signing secret; empty: one is generated once and kept in <spool>/srs.secret. Cluster nodes must share it. */
    secret: z.string().default(''),
    /** Older secrets still accepted when bounces come back (rotation). */
    oldSecrets: z.array(z.string().min(1)).default([]),
    /** Domain of the rewritten addresses; default: hostname. It must reach this node (MX or A record). */
    domain: z.string().regex(/^[^\s@]*$/, 'expected a domain name').default('').transform((d) => d.toLowerCase().replace(/\.$/, '')),
    /** Days a rewritten address stays valid for bounces (postsrsd: 21). */
    maxAgeDays: z.number().int().min(1).max(1000).default(21),
  }).prefault({}),
  shutdown: z.strictObject({
    /** On SIGTERM, sessions in progress get this long to finish before they are told 421 4.3.2 and closed. */
    graceSeconds: z.number().int().min(0).max(600).default(5),
    /** Then deliveries in flight get this long; what is still unfinished is simply retried at the next start (nothing is lost). */
    deliveryWaitSeconds: z.number().int().min(0).max(3600).default(60),
  }).prefault({}),
  log: z.strictObject({
    level: logLevel.default('info'),
    /** json: one JSON object per line (for jq and log shippers); pretty: text for people; auto: pretty on a terminal. */
    format: z.enum(['auto', 'json', 'pretty']).default('auto'),
    /** Levels for single components, e.g. { directory: debug, smtp: warn }. */
    components: z.partialRecord(z.enum(LOG_COMPONENTS), logLevel).default({}),
  }).prefault({}),
});

/** Rules that span sections, checked after each key is valid on its own. */
const checkedSchema = configSchema.superRefine((config, ctx) => {
  const admin = config.listen.admin === '' ? null : parseHostPort(config.listen.admin);
  if (admin !== null && config.admin.token === '' && !(admin.host === 'localhost' || admin.host === '::1' || /^127\./.test(admin.host))) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'token'], message: `required when listen.admin (${config.listen.admin}) is not a loopback address` });
  }
  const d = config.directory;
  if (d.profile === 'ad' && d.auth.method === 'hash') {
    ctx.addIssue({ code: 'custom', path: ['directory', 'auth', 'method'], message: 'Active Directory never lets a password be read: use "bind" (the default for profile ad)' });
  }
  if (d.tls.startTls && d.urls.some((u) => /^ldaps:/i.test(u))) {
    ctx.addIssue({ code: 'custom', path: ['directory', 'tls', 'startTls'], message: 'ldaps:// URLs are TLS already; StartTLS is for ldap:// URLs' });
  }
});

export type Config = z.output<typeof configSchema>;

/** The dotted keys whose values differ between two configurations (secrets compared, never shown). Pure. */
export function changedKeys(before: unknown, after: unknown, prefix = ''): string[] {
  const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isMap(before) && isMap(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => changedKeys(before[k], after[k], prefix === '' ? k : `${prefix}.${k}`));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix];
}
export type DirectoryConfig = Config['directory'];
export type CacheConfig = Config['cache'];

/** A configuration that cannot be used; `problems` name each key and what is wrong with it. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export const ENV_PREFIX = 'LDAPMTA_';

/** The configuration file named by --config, else by LDAPMTA_CONFIG, else none (defaults only). */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  return flag ?? env.LDAPMTA_CONFIG ?? null;
}

/**
 * Load, override and validate. `path` null means "no file: defaults plus environment".
 * Every problem is reported at once.
 */
export function loadConfig(path: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  let raw: unknown = {};
  if (path !== null) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([`${path}: cannot read: ${(err as Error).message}`]);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError([`${path}: not valid YAML: ${(err as Error).message}`]);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError([`${path}: the top level must be a mapping of keys`]);
    }
  }
  const tree = structuredClone(raw) as Record<string, unknown>;
  applyEnvOverrides(tree, env, problems);
  readSecretFiles(tree, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return validateConfig(tree);
}

export function validateConfig(tree: unknown): Config {
  const result = checkedSchema.safeParse(tree);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.') || '(top level)';
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length > 0 ? `${key}.` : '';
        return `${issue.keys.map((k) => where + k).join(', ')}: unknown key`;
      }
      return `${key}: ${issue.message}`;
    }));
  }
  return result.data;
}

/**
 * LDAPMTA_DIRECTORY__BIND_PASSWORD=x sets directory.bindPassword: segments joined by "__", each
 * segment SCREAMING_SNAKE of the camelCase key. Values are read as YAML ("[a, b]" is a list,
 * "10" a number), except secrets (bindPassword, token …), which are taken as written. A name ending in
 * _FILE reads the value from that file instead.
 */
export function applyEnvOverrides(tree: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === 'LDAPMTA_CONFIG' || value === undefined) continue;
    let rest = name.slice(ENV_PREFIX.length);
    let fromFile = false;
    if (rest.endsWith('_FILE')) {
      rest = rest.slice(0, -'_FILE'.length);
      fromFile = true;
    }
    const path = keyPath(rest.split('__'));
    if (path.some((p) => p === '')) {
      problems.push(`${name}: cannot be mapped to a configuration key`);
      continue;
    }
    let parsed: unknown;
    if (fromFile) {
      try {
        parsed = readSecret(value);
      } catch (err) {
        problems.push(`${name}: cannot read ${value}: ${(err as Error).message}`);
        continue;
      }
    } else if (SECRET_KEYS.has(path[path.length - 1]!)) {
      // A password is taken as written: as YAML, "#x" would be a comment and "12345" a number.
      parsed = value;
    } else {
      try {
        parsed = parseYaml(value);
      } catch {
        parsed = value;
      }
      if (parsed === null) parsed = '';
    }
    setPath(tree, path, parsed);
  }
}

/** Any key named `<key>File` next to a string key `<key>` (bindPasswordFile) fills `<key>` from the file. */
function readSecretFiles(node: Record<string, unknown>, problems: string[], prefix = ''): void {
  for (const [key, value] of Object.entries(node)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      readSecretFiles(value as Record<string, unknown>, problems, `${prefix}${key}.`);
    } else if (key.endsWith('File') && key.length > 4 && SECRET_KEYS.has(key.slice(0, -4))) {
      const target = key.slice(0, -4);
      delete node[key];
      if (typeof value !== 'string' || value === '') continue;
      try {
        node[target] = readSecret(value);
      } catch (err) {
        problems.push(`${prefix}${key}: cannot read ${value}: ${(err as Error).message}`);
      }
    }
  }
}

const SECRET_KEYS = new Set(['bindPassword', 'redis', 'smarthostPassword', 'secret', 'token']);

function readSecret(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/**
 * Map SCREAMING_SNAKE segments onto the schema's own key names (BIND_DN → bindDN), using the
 * defaults as the map of known keys; a segment below an unknown or free-form key is camelCased.
 */
function keyPath(segments: string[]): string[] {
  let known: unknown = defaults();
  return segments.map((segment) => {
    const wanted = segment.replace(/_/g, '').toLowerCase();
    const keys = known !== null && typeof known === 'object' && !Array.isArray(known) ? Object.keys(known) : [];
    const key = keys.find((k) => k.toLowerCase() === wanted)
      ?? segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    known = (known as Record<string, unknown> | undefined)?.[key];
    return key;
  });
}

let defaultTree: Config | null = null;
function defaults(): Config {
  defaultTree ??= configSchema.parse({});
  return defaultTree;
}

function setPath(tree: Record<string, unknown>, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(text: string): HostPort | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function parseCidr(text: string): { address: string; prefix: number } | null {
  const [address, bits, extra] = text.split('/');
  if (address === undefined || extra !== undefined) return null;
  const family = isIP(address);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) return null;
  return { address, prefix };
}
