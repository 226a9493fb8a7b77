// A pool of ldapts connections over several server URLs: failover in configured order, explicit
// connect and per-operation timeouts, one retry on a fresh connection, idle health checks.
// Every failure leaves here as a temporary MailError (4.4.3); it never decides what a miss means.
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
  log: Logger;
}

/** How long a server that failed is passed over when opening new connections. */
const DOWN_MS = 5_000;

interface Slot {
  client: Client | null;
  url: string | null;
  inFlight: number;
  lastUsed: number;
  opening: Promise<Client> | null;
}

/** Result codes that say the server, not the request, is the problem: worth another connection. */
const TRANSIENT_CODES = new Set([1 /* operationsError */, 51 /* busy */, 52 /* unavailable */, 80 /* other */]);

export function createLdapPool(options: PoolOptions): LdapPool {
  if (options.urls.length === 0) throw new Error('createLdapPool needs at least one URL');
  const { log } = options;
  const slots: Slot[] = Array.from({ length: options.poolSize }, () => ({ client: null, url: null, inFlight: 0, lastUsed: 0, opening: null }));
  const downUntil = new Map<string, number>();
  let closed = false;
  let next = 0;

  function newClient(url: string): Client {
    return new Client({ url, timeout: options.timeoutMs, connectTimeout: options.connectTimeoutMs, strictDN: false, autoRebind: true });
  }

  /** Connect (and bind) to the first URL that is not marked down, in configured order. */
  async function open(): Promise<{ client: Client; url: string }> {
    const now = Date.now();
    const order = [...options.urls].sort((a, b) => Number((downUntil.get(a) ?? 0) > now) - Number((downUntil.get(b) ?? 0) > now));
    let lastError: unknown = null;
    for (const url of order) {
      const client = newClient(url);
      try {
        if (options.bindDN !== '') await client.bind(options.bindDN, options.bindPassword);
        else await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'] });
        downUntil.delete(url);
        return { client, url };
      } catch (err) {
        lastError = err;
        downUntil.set(url, Date.now() + DOWN_MS);
        void client.unbind().catch(() => undefined);
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

  async function search(base: string, filter: Filter | string, attributes: readonly string[], opts: SearchOptions = {}): Promise<LdapEntry[]> {
    const result = await run((client) => client.search(base, {
      scope: opts.scope ?? 'sub',
      filter,
      attributes: [...attributes],
      sizeLimit: opts.sizeLimit ?? 0,
      timeLimit: Math.ceil(options.timeoutMs / 1000),
      ...(opts.paged ? { paged: { pageSize: 500 } } : {}),
    }));
    return result.searchEntries.map(toLdapEntry);
  }

  async function verifyBind(dn: string, password: string): Promise<boolean> {
    // RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind that servers
    // answer with success. Never send one.
    if (password === '') return false;
    const now = Date.now();
    const order = [...options.urls].sort((a, b) => Number((downUntil.get(a) ?? 0) > now) - Number((downUntil.get(b) ?? 0) > now));
    let lastError: unknown = null;
    for (const url of order) {
      const client = new Client({ url, timeout: options.timeoutMs, connectTimeout: options.connectTimeoutMs, strictDN: false });
      try {
        await client.bind(dn, password);
        return true;
      } catch (err) {
        if (err instanceof InvalidCredentialsError) return false;
        if (err instanceof ResultCodeError && !TRANSIENT_CODES.has(err.code)) return false;
        lastError = err;
      } finally {
        void client.unbind().catch(() => undefined);
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
  }

  return { search, verifyBind, close };
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

/** A short, log-safe description of an error (never a credential). */
export function describe(err: unknown): string {
  if (err instanceof ResultCodeError) return `LDAP result ${err.code}: ${err.message.split('\n')[0]}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
