// The directory service every stage consults: createDirectory() wires the LDAP pool, the
// resolver, the authenticator and the cache from configuration. Starts the embedded LDAP server
// when no URLs are configured. Callers see only the Directory interface.
import { readFileSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, type Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Address } from '../mail.ts';
import { createAuthenticator } from './auth.ts';
import { createCache } from './cache.ts';
import type { CandidateRules } from './candidates.ts';
import { startEmbeddedDirectory, type EmbeddedDirectory } from './embedded/index.ts';
import type { EntryContext } from './entry.ts';
import { createGroups, normalizeDn } from './groups.ts';
import { verifyPassword } from './password.ts';
import { createLdapPool } from './pool.ts';
import { profileFor } from './profiles.ts';
import { createResolver, type Resolver } from './resolve.ts';
import type { Directory, Lookup, Resolution } from './types.ts';

export type { Directory, Lookup, Resolution, LoginResult } from './types.ts';

export interface DirectoryHandle extends Directory {
  readonly resolver: Resolver;
  /** The URL of the embedded server when one was started, else null. */
  readonly embeddedUrl: string | null;
  /** Resolves when a directory server answers (its root DSE); a temporary MailError when none does. */
  ping(): Promise<void>;
  /** Forget this process's cached answers (a reload); the shared Redis tier is left alone. */
  forgetLocal(): void;
}

/** The package root: src/directory/ and dist/directory/ both sit two levels below it. */
export const PACKAGE_ROOT = resolvePath(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The secret of the embedded server's admin DN: random per process, never written anywhere. */
function embeddedSecret(): string {
  return `embedded-${process.pid}-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
}

export async function createDirectory(config: Config, deps: { log: Logger; baseDir?: string; metrics?: Metrics }): Promise<DirectoryHandle> {
  const log = deps.log.child({ component: 'directory' });
  const d = config.directory;
  const base = deps.baseDir ?? process.cwd();
  let embedded: EmbeddedDirectory | null = null;
  let urls = d.urls;
  let bindDN = d.bindDN;
  let bindPassword = d.bindPassword;
  if (urls.length === 0) {
    const secret = embeddedSecret();
    embedded = await startEmbeddedDirectory({
      ldifPath: d.embedded.ldif === '' ? resolvePath(PACKAGE_ROOT, 'schema', 'sample-directory.ldif') : resolvePath(base, d.embedded.ldif), host: d.embedded.host, port: d.embedded.port,
      rootDN: d.embedded.bindDN, rootPassword: secret, log,
      verifyPassword: (stored: string, password: string) => verifyPassword(stored, password, { allowCleartext: d.auth.allowCleartext }),
    });
    urls = [embedded.url];
    bindDN = d.embedded.bindDN;
    bindPassword = secret;
    log.info({ url: embedded.url, ldif: d.embedded.ldif || 'schema/sample-directory.ldif' }, 'embedded directory started');
  }

  const profile = profileFor({
    ...d, loginBy: d.ad.loginBy,
    junkScoreAttribute: config.filters.spam.userJunkScoreAttribute, greylistOptOutAttribute: config.filters.greylist.optOutAttribute,
  });
  const pool = createLdapPool({
    urls, bindDN, bindPassword, poolSize: d.poolSize, timeoutMs: d.timeoutMs,
    connectTimeoutMs: d.connectTimeoutMs, healthCheckSeconds: d.healthCheckSeconds, log,
    pageSize: d.pageSize, followReferrals: d.followReferrals,
    tls: { ca: d.tls.ca === '' ? '' : readDirectoryCa(resolvePath(base, d.tls.ca)), startTls: d.tls.startTls, verify: d.tls.verify },
  });
  const entry: Omit<EntryContext, 'profile' | 'warn'> = {
    self: new Set([config.hostname, ...config.clusterHosts]),
    mailboxes: resolvePath(base, config.mailboxes),
    defaultDelivery: d.defaultDelivery,
    defaultQuotaSize: d.defaultQuotaSize,
    defaultQuotaCount: d.defaultQuotaCount,
    unknownAccountStatus: d.resolution.unknownAccountStatus,
    disabledAs: d.ad.disabledAs,
  };
  const rules: CandidateRules = d.resolution;
  const domainRules = new Map(Object.entries(d.resolution.domains).map(([domain, r]) => [domain.toLowerCase(), stripUndefined(r)]));
  const resolver = createResolver({
    baseDN: d.baseDN, objectClass: d.objectClass, profile, rules, domainRules,
    aliasDomains: new Map(Object.entries(d.aliasDomains).map(([a, c]) => [a.toLowerCase(), c])),
    ambiguous: d.resolution.ambiguous, entry,
  }, { pool, log });
  const authenticate = createAuthenticator({
    baseDN: d.baseDN, profile, method: d.auth.method ?? (profile.bindName !== null ? 'bind' : 'hash'), allowCleartext: d.auth.allowCleartext, loginFilter: d.auth.loginFilter,
    sendAsAttribute: d.auth.sendAsAttribute,
    entry: { ...entry, profile, warn: (fields, message) => log.warn(fields, message) },
  }, { pool, log });
  const cache = createCache(config.cache, { log });
  await cache.ready();

  async function lookup(address: Address): Promise<Lookup> {
    const started = performance.now();
    try {
      const found = await lookupKey(address);
      deps.metrics?.lookups.inc({ result: found.resolution.kind, tier: found.source });
      deps.metrics?.lookupLatency.observe({ tier: found.source }, (performance.now() - started) / 1000);
      return found;
    } catch (err) {
      deps.metrics?.lookups.inc({ result: 'error', tier: 'ldap' });
      throw err;
    }
  }

  async function lookupKey(address: Address): Promise<Lookup> {
    const key = resolver.key(address);
    if (key === null) return { resolution: { kind: 'unknown', tried: [] }, source: 'ldap' };
    // The Redis tier is shared by every node, so what depends on the node is never cached: the
    // mailbox is kept relative to the mail base, and whether mailHost names this node is decided here.
    const found = await cache.get(key, async () => portable(await resolver.resolve(key), entry.mailboxes));
    const resolution = forThisNode(found.resolution, entry.self, entry.mailboxes);
    return resolution === found.resolution ? found : { ...found, resolution };
  }

  const resolveRecipient = async (address: Address) => (await lookup(address)).resolution;
  const groups = createGroups({
    baseDN: d.baseDN, profile, limit: d.groupExpansionLimit, maxDepth: d.groupMaxDepth, localDomains: new Set(config.localDomains),
    inChain: d.ad.inChain, disabledAs: d.ad.disabledAs, memberRangeSize: d.ad.memberRangeSize,
  }, { pool, resolve: resolveRecipient, log });

  deps.metrics?.probe({
    ldap: () => pool.stats(),
    ...(config.cache.redis === '' ? {} : { redis: () => cache.redisUp() ?? 0 }),
  });

  return {
    resolver,
    embeddedUrl: embedded?.url ?? null,
    async ping() {
      await pool.rootDse('namingContexts');
    },
    forgetLocal: () => cache.forgetLocal(),
    lookup,
    resolveRecipient,
    expandGroup: async (group) => (await groups.expand(group)).addresses,
    mayPost: (group, sender) => groups.mayPost(group, sender),
    isMember: async (group, dn) => (await groups.expand(group)).dns.has(normalizeDn(dn)),
    authenticate,
    async flush(address?: Address) {
      await cache.flush(address === undefined ? undefined : resolver.key(address) ?? undefined);
    },
    async close() {
      await cache.close();
      await pool.close();
      await embedded?.close();
    },
  };
}

/** A resolution as the cache keeps it: a mailbox below the mail base is relative to it. Pure. */
export function portable(resolution: Resolution, base: string): Resolution {
  if ((resolution.kind !== 'mailbox' && resolution.kind !== 'group') || resolution.mailbox === null) return resolution;
  const prefix = base.endsWith('/') ? base : `${base}/`;
  return resolution.mailbox.startsWith(prefix) ? { ...resolution, mailbox: resolution.mailbox.slice(prefix.length) } : resolution;
}

/** A cached resolution made absolute for this node: its mail base, and `local` from its names. Pure. */
export function forThisNode(resolution: Resolution, self: ReadonlySet<string>, base: string): Resolution {
  if (resolution.kind === 'unknown' || resolution.kind === 'reject') return resolution;
  const local = resolution.mailHost === null || self.has(resolution.mailHost);
  const relative = (resolution.kind === 'mailbox' || resolution.kind === 'group') && resolution.mailbox !== null && !resolution.mailbox.startsWith('/');
  if (local === resolution.local && !relative) return resolution;
  const mailbox = relative ? { mailbox: `${base.endsWith('/') ? base : `${base}/`}${resolution.mailbox}` } : {};
  return { ...resolution, local, ...mailbox } as Resolution;
}

/** The directory.tls.ca file, read once at start; a missing file is a configuration error naming the key. */
function readDirectoryCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`directory.tls.ca: cannot read ${path}: ${(err as Error).message}`]);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
