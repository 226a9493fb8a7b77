// Where a domain's mail goes: MX lookup (RFC 5321 §5.1) with the implicit MX fallback to A/AAAA,
// null MX (RFC 7505), preference order with randomisation among equals, an explicit host map that
// overrides DNS, and a short in-process cache. The ordering and the error mapping are pure.
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { MailError, permanent, temporary } from '../mail.ts';

export interface Endpoint {
  /** The host name (MX exchange, mailHost or smarthost) the address belongs to. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** Every address to try for one destination, best first. */
export interface NextHop {
  readonly endpoints: readonly Endpoint[];
}

export interface MxRecord {
  readonly priority: number;
  readonly exchange: string;
}

export interface HostResolver {
  /** MX of the domain, falling back to its A/AAAA records. */
  mx(domain: string): Promise<NextHop>;
  /** A/AAAA of a host name (mailHost, smarthost): no MX lookup. */
  host(name: string, port?: number): Promise<NextHop>;
}

export interface ResolverOptions {
  /** DNS servers ("ip" or "ip:port"); empty: the system's. */
  readonly dnsServers: readonly string[];
  /** Port of every SMTP server found through DNS. */
  readonly port: number;
  /** Names answered from here instead of DNS: "mx2.example.org" → "127.0.0.1:2526". */
  readonly hostMap: Readonly<Record<string, { host: string; port: number }>>;
  /** How long answers are kept, in ms; 0 turns the cache off. */
  readonly cacheMs: number;
  readonly timeoutMs: number;
  readonly random?: () => number;
}

/** Lower preference first; equal preferences in random order (RFC 5321 §5.1). Pure but for `random`. */
export function orderMx(records: readonly MxRecord[], random: () => number = Math.random): MxRecord[] {
  const keyed = records.map((r) => ({ r, key: random() }));
  keyed.sort((a, b) => a.r.priority - b.r.priority || a.key - b.key);
  return keyed.map((k) => k.r);
}

/** A DNS error as the queue should treat it: NXDOMAIN is a definite answer, everything else passes. Pure. */
export function dnsFailure(domain: string, code: string | undefined, what: string): MailError {
  if (code === 'ENOTFOUND') return permanent('5.1.2', `${what}: domain ${domain} not found`);
  return temporary('4.4.3', `${what}: DNS lookup for ${domain} failed (${code ?? 'error'}), will retry`);
}

/**
 * A lookup of one of our own hosts (a mailHost node, the smarthost) that DNS says does not exist or
 * has no address: our configuration is wrong, not the recipient's address, so the mail waits (4.4.3)
 * for DNS or delivery.hostMap to be fixed instead of bouncing. Anything else passes unchanged. Pure.
 */
export function ownHostFailure(err: unknown, what: string): unknown {
  if (!(err instanceof MailError) || err.kind !== 'permanent' || err.status !== '5.1.2') return err;
  return temporary('4.4.3', `${err.message} (the ${what}; fix DNS or delivery.hostMap), will retry`);
}

export function createHostResolver(options: ResolverOptions): HostResolver {
  const dns = new Resolver({ timeout: Math.max(100, Math.floor(options.timeoutMs / 2)), tries: 2 });
  if (options.dnsServers.length > 0) dns.setServers([...options.dnsServers]);
  const random = options.random ?? Math.random;
  const cache = new Map<string, { until: number; hop: Promise<NextHop> }>();

  function cached(key: string, make: () => Promise<NextHop>): Promise<NextHop> {
    if (options.cacheMs <= 0) return make();
    const now = Date.now();
    const hit = cache.get(key);
    if (hit !== undefined && hit.until > now) return hit.hop;
    if (cache.size > 10_000) cache.clear();
    const hop = make();
    cache.set(key, { until: now + options.cacheMs, hop });
    // Failures are not remembered: the next attempt asks again.
    hop.catch(() => cache.delete(key));
    return hop;
  }

  async function addresses(name: string, port: number): Promise<Endpoint[]> {
    const mapped = options.hostMap[name.toLowerCase().replace(/\.$/, '')];
    if (mapped !== undefined) return [{ name, address: mapped.host, port: mapped.port }];
    if (isIP(name) !== 0) return [{ name, address: name, port }];
    const [v4, v6] = await Promise.allSettled([dns.resolve4(name), dns.resolve6(name)]);
    const found = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (found.length > 0) return found.map((address) => ({ name, address, port }));
    const codes = [v4, v6].map((r) => (r.status === 'rejected' ? (r.reason as NodeJS.ErrnoException).code : 'ENODATA'));
    if (codes.every((c) => c === 'ENODATA' || c === 'ENOTFOUND')) {
      throw codes.includes('ENOTFOUND') ? dnsFailure(name, 'ENOTFOUND', 'host lookup') : permanent('5.1.2', `host ${name} has no address`);
    }
    throw dnsFailure(name, codes.find((c) => c !== 'ENODATA' && c !== 'ENOTFOUND'), 'host lookup');
  }

  async function lookupMx(domain: string): Promise<NextHop> {
    const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
    if (literal !== null) {
      if (isIP(literal[1]!) === 0) throw permanent('5.1.2', `bad address literal ${domain}`);
      return { endpoints: [{ name: domain, address: literal[1]!, port: options.port }] };
    }
    if (options.hostMap[domain] !== undefined) return { endpoints: await addresses(domain, options.port) };
    let records: MxRecord[];
    try {
      records = await dns.resolveMx(domain);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENODATA') throw dnsFailure(domain, code, 'MX lookup');
      // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
      return { endpoints: await addresses(domain, options.port) };
    }
    if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
      throw permanent('5.1.10', `domain ${domain} does not accept mail (null MX)`);
    }
    const endpoints: Endpoint[] = [];
    let lastError: MailError | null = null;
    for (const record of orderMx(records, random)) {
      try {
        endpoints.push(...await addresses(record.exchange, options.port));
      } catch (err) {
        lastError = err as MailError;
      }
    }
    if (endpoints.length === 0) {
      // MX hosts that do not resolve may be a DNS hiccup: keep the mail and try again later.
      throw temporary('4.4.3', `no MX host of ${domain} has an address${lastError ? ` (${lastError.message})` : ''}`);
    }
    return { endpoints };
  }

  return {
    mx: (domain) => cached(`mx:${domain}`, () => lookupMx(domain)),
    host: (name, port = options.port) => cached(`host:${name}:${port}`, async () => ({ endpoints: await addresses(name, port) })),
  };
}
