// A pool of ldapts connections over several server URLs: failover in configured order, explicit
// connect and per-operation timeouts, one retry on a fresh connection, idle health checks; TLS
// (ldaps:// or StartTLS) with a configured CA, and search references followed only when asked.
// Every failure leaves here as a temporary MailError (4.4.3); it never decides what a miss means.
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError, ResultCodeError, type Filter } from 'ldapts';
import type { Logger } from '../log.ts';
import { temporary, MailError } from '../mail.ts';

/** One search result entry; attribute names lower-cased, values as strings. */
export interface LdapEntry {
  readonly dn: string;
  readonly attrs: ReadonlyMap<string, readonly string[]>;
}

export interface SearchOptions {
  scope?: 'base' | 'one' | 'sub';
  /** Ask the server for at most this many entries; a larger result comes back cut at the limit. */
  sizeLimit?: number;
  paged?: boolean;
}

export interface LdapPool {
  search(base: string, filter: Filter | string, attributes: readonly string[], options?: SearchOptions): Promise<LdapEntry[]>;
  /** Simple bind as a user on a connection of its own: true for success, false for invalidCredentials. */
  verifyBind(dn: string, password: string): Promise<boolean>;
  /** The root DSE's values of `attribute` (supportedCapabilities, say); [] when it has none. */
  rootDse(attribute: string): Promise<string[]>;
  /** Connections open now and operations in flight on them; connections opened for users' binds so far. */
  stats(): { open: number; inFlight: number; /** Connections ever opened for users' binds. */ bindConnections: number };
  close(): Promise<void>;
}

export interface PoolOptions {
  urls: readonly string[];
  bindDN: string;
  bindPassword: string;
  poolSize: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  healthCheckSeconds: number;
  /** Entries per page of a paged search. */
  pageSize?: number;
  tls?: PoolTls;
  /** Follow search result references (binding as the service account), at most REFERRAL_HOPS deep. */
  followReferrals?: boolean;
  log: Logger;
}

export interface PoolTls {
  /** PEM text of the CAs to trust; empty: the system's. */
  readonly ca: string;
  readonly startTls: boolean;
  readonly verify: boolean;
}

const REFERRAL_HOPS = 5;

/** How long a server that failed is passed over when opening new connections. */
const DOWN_MS = 5_000;

interface Slot {
  client: Client | null;
  url: string | null;
  inFlight: number;
  lastUsed: number;
  opening: Promise<Client> | null;
}

/** How long a connection for users' binds is kept idle for the next login. */
const BIND_IDLE_MS = 30_000;

/** Result codes that say the server, not the request, is the problem: worth another connection. */
const TRANSIENT_CODES = new Set([1 /* operationsError */, 51 /* busy */, 52 /* unavailable */, 80 /* other */]);

export function createLdapPool(options: PoolOptions): LdapPool {
  if (options.urls.length === 0) throw new Error('createLdapPool needs at least one URL');
  const { log } = options;
  const slots: Slot[] = Array.from({ length: options.poolSize }, () => ({ client: null, url: null, inFlight: 0, lastUsed: 0, opening: null }));
  const downUntil = new Map<string, number>();
  /**
   * Connections for users' binds, idle between logins, by URL (as Dovecot's auth_bind keeps them):
   * a login binds on one of them instead of connecting. Nothing but binds is ever sent on them.
   */
  const bindIdle = new Map<string, { client: Client; since: number }[]>();
  let bindConnections = 0;
  let closed = false;
  let next = 0;

  const tlsOptions = (url: string): ConnectionOptions => {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return {
      ...(options.tls?.ca ? { ca: [options.tls.ca] } : {}),
      rejectUnauthorized: options.tls?.verify ?? true,
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    };
  };

  /**
   * A client for `url`. After StartTLS, ldapts would reconnect a dropped connection in plaintext
   * and unauthenticated; such a client refuses to reconnect instead, and the pool opens a new one.
   */
  function newClient(url: string, rebind = true): Client {
    const startTls = options.tls?.startTls === true && /^ldap:/i.test(url);
    let connections = 0;
    return new Client({
      url, timeout: options.timeoutMs, connectTimeout: options.connectTimeoutMs, strictDN: false, autoRebind: rebind && !startTls,
      // ldapts speaks TLS from the first byte whenever tlsOptions are given, whatever the scheme.
      ...(/^ldaps:/i.test(url) ? { tlsOptions: tlsOptions(url) } : {}),
      ...(startTls ? {
        createConnection: ((...args: Parameters<typeof net.connect>) => {
          if (++connections > 1) throw new Error('StartTLS connection lost; not reconnecting in plaintext');
          return net.connect(...args);
        }) as typeof net.connect,
      } : {}),
    });
  }

  /** A connected client, upgraded with StartTLS when configured. */
  async function secured(url: string, rebind = true): Promise<Client> {
    const client = newClient(url, rebind);
    if (options.tls?.startTls === true && /^ldap:/i.test(url)) await client.startTLS(tlsOptions(url));
    return client;
  }

  /** Connect (and bind) to the first URL that is not marked down, in configured order. */
  async function open(): Promise<{ client: Client; url: string }> {
    const now = Date.now();
    const order = [...options.urls].sort((a, b) => Number((downUntil.get(a) ?? 0) > now) - Number((downUntil.get(b) ?? 0) > now));
    let lastError: unknown = null;
    for (const url of order) {
      let client: Client | null = null;
      try {
        client = await secured(url);
        if (options.bindDN !== '') await client.bind(options.bindDN, options.bindPassword);
        else await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'] });
        downUntil.delete(url);
        return { client, url };
      } catch (err) {
        lastError = err;
        downUntil.set(url, Date.now() + DOWN_MS);
        void client?.unbind().catch(() => undefined);
        if (err instanceof InvalidCredentialsError) {
          log.error({ url, bindDN: options.bindDN }, 'directory service bind refused: check directory.bindDN and bindPassword');
        } else {
          log.warn({ url, err: describe(err) }, 'directory server unreachable, trying the next one');
        }
      }
    }
    throw temporary('4.4.3', 'directory server unavailable', lastError);
  }

  async function connected(slot: Slot): Promise<Client> {
    if (slot.client !== null && slot.client.isConnected) return slot.client;
    if (slot.opening === null) {
      slot.opening = open().then(({ client, url }) => {
        if (slot.client !== null && slot.client !== client) void slot.client.unbind().catch(() => undefined);
        slot.client = client;
        slot.url = url;
        return client;
      }).finally(() => {
        slot.opening = null;
      });
    }
    return slot.opening;
  }

  /** The least busy slot, round-robin among equals. */
  function pick(): Slot {
    let best: Slot | null = null;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[(next + i) % slots.length]!;
      if (best === null || slot.inFlight < best.inFlight) best = slot;
      if (slot.inFlight === 0) break;
    }
    next = (next + 1) % slots.length;
    return best!;
  }

  function discard(slot: Slot): void {
    if (slot.url !== null) downUntil.set(slot.url, Date.now() + DOWN_MS);
    const client = slot.client;
    slot.client = null;
    if (client !== null) void client.unbind().catch(() => undefined);
  }

  async function run<T>(operation: (client: Client) => Promise<T>): Promise<T> {
    if (closed) throw temporary('4.4.3', 'directory client closed');
    let lastError: unknown = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const slot = pick();
      slot.inFlight++;
      try {
        const client = await connected(slot);
        slot.lastUsed = Date.now();
        return await operation(client);
      } catch (err) {
        lastError = err;
        if (err instanceof MailError) throw err;
        if (err instanceof ResultCodeError && !TRANSIENT_CODES.has(err.code)) throw err;
        // Connection refused, reset, timed out, or the server said busy: this connection is
        // not to be trusted again; one more try on a fresh one (possibly the next server).
        log.warn({ url: slot.url, attempt, err: describe(err) }, 'directory operation failed');
        discard(slot);
      } finally {
        slot.inFlight--;
      }
    }
    throw temporary('4.4.3', 'directory server unavailable', lastError);
  }

  function searchOn(client: Client, base: string, filter: Filter | string, attributes: readonly string[], opts: SearchOptions) {
    return client.search(base, {
      scope: opts.scope ?? 'sub',
      filter,
      attributes: [...attributes],
      sizeLimit: opts.sizeLimit ?? 0,
      timeLimit: Math.ceil(options.timeoutMs / 1000),
      ...(opts.paged ? { paged: { pageSize: options.pageSize ?? 500 } } : {}),
    });
  }

  async function search(base: string, filter: Filter | string, attributes: readonly string[], opts: SearchOptions = {}): Promise<LdapEntry[]> {
    const result = await run((client) => searchOn(client, base, filter, attributes, opts));
    const entries = result.searchEntries.map(toLdapEntry);
    if (options.followReferrals === true && result.searchReferences.length > 0) {
      entries.push(...await followReferences(result.searchReferences, filter, attributes, opts, 1));
    }
    return entries;
  }

  /**
   * The entries behind search result references (RFC 4511 §4.5.3): each URL's server, searched
   * from the URL's base (else the same base) after binding as the service account, never
   * anonymously; references found there are followed up to REFERRAL_HOPS deep. A reference that
   * cannot be followed fails the search (temporary), since its entries would be missing.
   */
  async function followReferences(urls: readonly string[], filter: Filter | string, attributes: readonly string[], opts: SearchOptions, hop: number): Promise<LdapEntry[]> {
    if (hop > REFERRAL_HOPS) throw temporary('4.4.3', `more than ${REFERRAL_HOPS} referral hops`);
    const out: LdapEntry[] = [];
    for (const reference of urls) {
      const target = parseLdapUrl(reference);
      if (target === null) {
        log.warn({ reference }, 'search reference is not an ldap:// or ldaps:// URL; ignored');
        continue;
      }
      let client: Client | null = null;
      try {
        client = await secured(target.server, false);
        if (options.bindDN !== '') await client.bind(options.bindDN, options.bindPassword);
        const result = await searchOn(client, target.base, filter, attributes, { ...opts, scope: opts.scope === 'one' ? 'base' : opts.scope ?? 'sub' });
        out.push(...result.searchEntries.map(toLdapEntry));
        if (result.searchReferences.length > 0) out.push(...await followReferences(result.searchReferences, filter, attributes, opts, hop + 1));
      } catch (err) {
        if (err instanceof MailError) throw err;
        log.warn({ reference, err: describe(err) }, 'search reference could not be followed');
        throw temporary('4.4.3', 'directory referral could not be followed', err);
      } finally {
        void client?.unbind().catch(() => undefined);
      }
    }
    return out;
  }

  async function rootDse(attribute: string): Promise<string[]> {
    const entries = await search('', '(objectClass=*)', [attribute], { scope: 'base' });
    return [...(entries[0]?.attrs.get(attribute.toLowerCase()) ?? [])];
  }

  /** An idle connection for a user's bind to `url`, or null. */
  function takeBindClient(url: string): Client | null {
    const idle = bindIdle.get(url) ?? [];
    for (let kept = idle.pop(); kept !== undefined; kept = idle.pop()) {
      if (Date.now() - kept.since < BIND_IDLE_MS && kept.client.isConnected) return kept.client;
      void kept.client.unbind().catch(() => undefined);
    }
    return null;
  }

  /** Back to the idle list after a bind, whatever its answer (a refused bind leaves the connection anonymous, RFC 4513 §5.1). */
  function keepBindClient(url: string, client: Client): void {
    const idle = bindIdle.get(url) ?? [];
    if (closed || idle.length >= options.poolSize) {
      void client.unbind().catch(() => undefined);
      return;
    }
    idle.push({ client, since: Date.now() });
    bindIdle.set(url, idle);
  }

  async function verifyBind(dn: string, password: string): Promise<boolean> {
    // RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind that servers
    // answer with success. Never send one.
    if (password === '') return false;
    const now = Date.now();
    const order = [...options.urls].sort((a, b) => Number((downUntil.get(a) ?? 0) > now) - Number((downUntil.get(b) ?? 0) > now));
    let lastError: unknown = null;
    for (const url of order) {
      // An idle connection may have been closed by the server meanwhile: then one fresh try on the same URL.
      for (let fresh = 0; fresh < 2; fresh++) {
        let client: Client | null = fresh === 0 ? takeBindClient(url) : null;
        const reused = client !== null;
        try {
          if (client === null) {
            client = await secured(url, false);
            bindConnections++;
          }
          await client.bind(dn, password);
          keepBindClient(url, client);
          client = null;
          return true;
        } catch (err) {
          const refused = err instanceof InvalidCredentialsError || (err instanceof ResultCodeError && !TRANSIENT_CODES.has(err.code));
          if (refused) {
            if (client !== null) keepBindClient(url, client);
            client = null;
            // AD says why in its diagnostic: "data 52e" bad password, 533 disabled, 775 locked out…
            const adCode = /\bdata ([0-9a-f]{3,4})\b/i.exec((err as Error).message)?.[1] ?? null;
            log.debug({ dn, ...(adCode === null ? {} : { adCode }), err: describe(err) }, 'bind as the user refused');
            return false;
          }
          lastError = err;
          if (!reused) break;
        } finally {
          void client?.unbind().catch(() => undefined);
        }
      }
    }
    throw temporary('4.4.3', 'directory server unavailable', lastError);
  }

  const health = options.healthCheckSeconds > 0
    ? setInterval(() => {
      const idleSince = Date.now() - options.healthCheckSeconds * 1000;
      for (const slot of slots) {
        const client = slot.client;
        if (client === null || slot.inFlight > 0 || slot.lastUsed > idleSince) continue;
        slot.lastUsed = Date.now();
        client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'] }).catch((err: unknown) => {
          log.info({ url: slot.url, err: describe(err) }, 'idle directory connection failed its health check; dropped');
          if (slot.client === client) discard(slot);
        });
      }
    }, options.healthCheckSeconds * 1000)
    : null;
  health?.unref();

  async function close(): Promise<void> {
    closed = true;
    if (health !== null) clearInterval(health);
    await Promise.all(slots.map(async (slot) => {
      const client = slot.client;
      slot.client = null;
      if (client !== null) await client.unbind().catch(() => undefined);
    }));
    const idle = [...bindIdle.values()].flat();
    bindIdle.clear();
    await Promise.all(idle.map(({ client }) => client.unbind().catch(() => undefined)));
  }

  function stats() {
    return {
      open: slots.filter((s) => s.client !== null && s.client.isConnected).length,
      inFlight: slots.reduce((sum, s) => sum + s.inFlight, 0),
      bindConnections,
    };
  }

  return { search, verifyBind, rootDse, stats, close };
}

function toLdapEntry(entry: { dn: string; [attribute: string]: unknown }): LdapEntry {
  const attrs = new Map<string, string[]>();
  for (const [name, value] of Object.entries(entry)) {
    if (name === 'dn') continue;
    const values = Array.isArray(value) ? value : [value];
    attrs.set(name.toLowerCase(), values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v))));
  }
  return { dn: entry.dn, attrs };
}

/** "ldap://host:port/base??scope" split into the server URL and the base DN (RFC 4516); null if not LDAP. Pure. */
export function parseLdapUrl(text: string): { server: string; base: string } | null {
  const m = /^(ldaps?:\/\/[^/?\s]+)\/?([^?]*)/i.exec(text.trim());
  if (m === null) return null;
  let base: string;
  try {
    base = decodeURIComponent(m[2]!);
  } catch {
    return null;
  }
  return { server: m[1]!, base };
}

/** A short, log-safe description of an error (never a credential). */
export function describe(err: unknown): string {
  if (err instanceof ResultCodeError) return `LDAP result ${err.code}: ${err.message.split('\n')[0]}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
