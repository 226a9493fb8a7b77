// DNS block and allow lists (RFC 5782) of the client's address: every zone asked in parallel
// under one deadline, the answers read by pure functions (what counts as a listing, what a
// list's "you may not ask" code looks like, the score). Also the small DNS toolkit the other
// connection checks share (fcrdns.ts): a Resolver for configured servers, reversed names,
// deadlines and the reading of node's error codes.
// Must never: reject because of DNS. A timeout, SERVFAIL or a refusing list is "unknown", never
// "listed"; the caller logs it and carries on.
import { Resolver } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '../log.ts';

// ---------------------------------------------------------------------------------------------
// DNS toolkit

/** The lookups the connection checks make; node's dns/promises Resolver is one. */
export interface PolicyDns {
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
  resolvePtr(name: string): Promise<string[]>;
}

export interface PolicyDnsOptions {
  /** DNS servers ("ip" or "ip:port"); empty: the system's. */
  readonly dnsServers: readonly string[];
  /** The caller's overall budget; the resolver's own retries fit in it. */
  readonly timeoutMs: number;
}

/**
 * A resolver for the connection checks. Give DNSBL queries a resolver of your own (not a public
 * one: the big lists refuse queries coming through Google or Cloudflare, see REFUSAL_CODES).
 */
export function createPolicyDns(options: PolicyDnsOptions): PolicyDns {
  const dns = new Resolver({ timeout: Math.max(100, Math.floor(options.timeoutMs / 2)), tries: 2 });
  if (options.dnsServers.length > 0) dns.setServers([...options.dnsServers]);
  return dns;
}

/** "::ffff:192.0.2.1" → "192.0.2.1"; an IPv6 zone index is dropped; anything else as given. Pure. */
export function canonicalIp(ip: string): string {
  const bare = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  return mapped !== null && isIPv4(mapped[1]!) ? mapped[1]! : bare;
}

/** The 32 hex digits of an IPv6 address ("2001:db8::1" → "20010db8000…0001"), or null. Pure. */
export function ipv6Hex(ip: string): string | null {
  let text = ip.replace(/%.*$/, '');
  if (!isIPv6(text)) return null;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.split('::') as [string, string | undefined];
  const split = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const groups = right === undefined
    ? split(left)
    : [...split(left), ...Array<string>(8 - split(left).length - split(right).length).fill('0'), ...split(right)];
  if (groups.length !== 8) return null;
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

/** The same address, whatever its spelling ("::FFFF:1.2.3.4" and "1.2.3.4"; "2001:DB8::1" and "2001:db8:0::1"). Pure. */
export function sameIp(a: string, b: string): boolean {
  const x = canonicalIp(a);
  const y = canonicalIp(b);
  if (isIPv4(x) || isIPv4(y)) return x === y;
  const hx = ipv6Hex(x);
  return hx !== null && hx === ipv6Hex(y);
}

/**
 * The address as the labels of a reverse lookup, without the suffix: "192.0.2.1" → "1.2.0.192";
 * IPv6 as 32 reversed nibbles (RFC 5782 §2.4, RFC 3596 §2.5). IPv4-mapped IPv6 is taken as IPv4.
 * Null for anything that is not an address. Pure.
 */
export function reversedLabels(ip: string): string | null {
  const plain = canonicalIp(ip);
  if (isIPv4(plain)) return plain.split('.').map(Number).reverse().join('.');
  const hex = ipv6Hex(plain);
  return hex === null ? null : hex.split('').reverse().join('.');
}

/** The PTR name of an address: "1.2.0.192.in-addr.arpa", "…ip6.arpa"; null for a non-address. Pure. */
export function ptrName(ip: string): string | null {
  const labels = reversedLabels(ip);
  if (labels === null) return null;
  return `${labels}.${isIPv4(canonicalIp(ip)) ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

/** Node's code for a DNS failure: ENOTFOUND (NXDOMAIN), ENODATA, ESERVFAIL, ETIMEOUT, ECONNREFUSED … */
export function dnsErrorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/** NXDOMAIN and NODATA are answers ("there is nothing"); every other failure is temporary. Pure. */
export function isNegativeAnswer(code: string): boolean {
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

/**
 * `work`, or a rejection with code ETIMEOUT at `deadline` (epoch ms). The lookup itself is not
 * cancelled (that would cancel every lookup of a shared resolver); its late answer is dropped.
 */
export function beforeDeadline<T>(work: Promise<T>, deadline: number, now: () => number = Date.now): Promise<T> {
  const left = deadline - now();
  if (left <= 0) {
    work.catch(() => undefined);
    return Promise.reject(Object.assign(new Error('DNS deadline passed'), { code: 'ETIMEOUT' }));
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('DNS lookup timed out'), { code: 'ETIMEOUT' })), left);
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// DNS lists: pure part

export type DnsListType = 'block' | 'allow';

export interface DnsListZone {
  readonly zone: string;
  /**
   * Added to the score when the client is listed. An allow list (DNSWL) has a negative weight;
   * with `type: 'allow'` the weight counts as negative whatever its sign.
   */
  readonly weight: number;
  /** Default: 'allow' for a negative weight, else 'block'. */
  readonly type?: DnsListType;
  /**
   * Only these answers count as a listing ("127.0.0.2", …), e.g. to leave out a list's policy
   * sub-list; absent: every 127.0.0.0/8 answer that is not a refusal code.
   */
  readonly codes?: readonly string[];
}

export interface DnsListing {
  readonly zone: string;
  readonly type: DnsListType;
  /** The 127.0.0.0/8 answers that made it a listing, sorted. */
  readonly codes: readonly string[];
  /** The list's TXT record for the address, cleaned to printable ASCII, when there was one. */
  readonly reason?: string;
  /** What this listing added to the score: negative for an allow list. */
  readonly weight: number;
}

export interface DnsListResult {
  /** Lists naming the client, block and allow lists alike. */
  readonly listings: readonly DnsListing[];
  /** Zones that could not tell (timeout, SERVFAIL, a refusal code, not an address): never a listing. */
  readonly unknown: readonly string[];
  /** Sum of the listings' weights. */
  readonly score: number;
  /** Why each unknown zone is unknown, and answers that were ignored, for the log. */
  readonly notes: readonly { readonly zone: string; readonly note: string }[];
}

/** What one zone answered, as the pure part reads it. */
export type ZoneAnswer =
  | { readonly zone: DnsListZone; readonly kind: 'addresses'; readonly addresses: readonly string[]; readonly reason?: string }
  /** NXDOMAIN or NODATA: not listed. */
  | { readonly zone: DnsListZone; readonly kind: 'none' }
  /** A timeout, SERVFAIL, a refused or unreachable server: unknown. */
  | { readonly zone: DnsListZone; readonly kind: 'error'; readonly error: string };

/**
 * Answers that mean "this list will not answer you" rather than "listed": 127.0.0.1 (never a
 * listing, RFC 5782 §5; URIBL and others use it to refuse), 127.0.0.255 (DNSWL's "query limit
 * exceeded") and 127.255.255.252–255 (Spamhaus: typo in the zone name, query through a public
 * resolver, too many queries).
 */
export const REFUSAL_CODES: ReadonlySet<string> = new Set(['127.0.0.1', '127.0.0.255', '127.255.255.252', '127.255.255.253', '127.255.255.254', '127.255.255.255']);

/** Lower case, no trailing dot. */
const zoneName = (zone: string): string => zone.toLowerCase().replace(/\.+$/, '').replace(/^\.+/, '');

/** The zone's type: explicit, else by the weight's sign. Pure. */
export function zoneType(zone: DnsListZone): DnsListType {
  return zone.type ?? (zone.weight < 0 ? 'allow' : 'block');
}

/** What a listing in this zone adds to the score. Pure. */
export function zoneWeight(zone: DnsListZone): number {
  return zoneType(zone) === 'allow' ? -Math.abs(zone.weight) : zone.weight;
}

/** The name to ask for: "<reversed address>.<zone>", or null for a non-address. Pure. */
export function dnsListQueryName(ip: string, zone: string): string | null {
  const labels = reversedLabels(ip);
  return labels === null ? null : `${labels}.${zoneName(zone)}`;
}

/**
 * Sorts one zone's A records: listing codes (in 127.0.0.0/8, not a refusal, among `zone.codes`
 * when given), refusal codes, and ignored answers (outside 127.0.0.0/8, RFC 5782 §2.1, or not
 * among `zone.codes`). Pure.
 */
export function readListAnswer(zone: DnsListZone, addresses: readonly string[]): { codes: string[]; refused: string[]; ignored: string[] } {
  const codes: string[] = [];
  const refused: string[] = [];
  const ignored: string[] = [];
  const wanted = zone.codes === undefined ? null : new Set(zone.codes);
  for (const address of new Set(addresses)) {
    if (!isIPv4(address) || !address.startsWith('127.')) ignored.push(address);
    else if (REFUSAL_CODES.has(address)) refused.push(address);
    else if (wanted !== null && !wanted.has(address)) ignored.push(address);
    else codes.push(address);
  }
  const byNumber = (a: string, b: string) => a.split('.').map(Number).reduce((d, x, i) => d || x - Number(b.split('.')[i]), 0);
  return { codes: codes.sort(byNumber), refused: refused.sort(byNumber), ignored: ignored.sort() };
}

/** Every zone's answer read into listings, unknowns and the score. Pure. */
export function scoreDnsLists(answers: readonly ZoneAnswer[]): DnsListResult {
  const listings: DnsListing[] = [];
  const unknown: string[] = [];
  const notes: { zone: string; note: string }[] = [];
  for (const answer of answers) {
    const zone = zoneName(answer.zone.zone);
    if (answer.kind === 'none') continue;
    if (answer.kind === 'error') {
      unknown.push(zone);
      notes.push({ zone, note: answer.error });
      continue;
    }
    const { codes, refused, ignored } = readListAnswer(answer.zone, answer.addresses);
    if (ignored.length > 0) notes.push({ zone, note: `ignored answer ${ignored.join(' ')}` });
    if (codes.length > 0) {
      listings.push({ zone, type: zoneType(answer.zone), codes, weight: zoneWeight(answer.zone), ...(answer.reason === undefined ? {} : { reason: answer.reason }) });
    } else if (refused.length > 0) {
      unknown.push(zone);
      notes.push({ zone, note: `list refused the query (${refused.join(' ')})` });
    }
  }
  // Weights such as 0.1 + 0.2 should not print as 0.30000000000000004.
  const score = Math.round(listings.reduce((sum, l) => sum + l.weight, 0) * 1e6) / 1e6;
  return { listings, unknown, score, notes };
}

/**
 * A TXT answer as one line fit for a log or an SMTP reply: the records joined with " / ",
 * printable ASCII only (no CR or LF can reach the client), at most `max` characters. Pure.
 */
export function listingReason(records: readonly (readonly string[])[], max = 200): string {
  const text = records.map((chunks) => chunks.join('')).join(' / ');
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

// ---------------------------------------------------------------------------------------------
// DNS lists: the lookups

export interface DnsListDeps {
  readonly dns: PolicyDns;
  /** One deadline for every zone, the TXT lookups included. */
  readonly timeoutMs: number;
  /** Ask the TXT record of a listing for its reason (best effort, within the deadline). Default true. */
  readonly reasons?: boolean;
  /** Refusal codes are warned about here (once per zone per 10 minutes); timeouts are left to the caller. */
  readonly log?: Logger;
  readonly now?: () => number;
}

const REFUSAL_WARN_MS = 600_000;
const refusalWarned = new Map<string, number>();

/**
 * Asks every zone about `ip` in parallel and scores the answers. Never rejects: a failed lookup is
 * an unknown zone. Resolves within `timeoutMs` (plus timer slack), whatever the servers do.
 */
export async function checkDnsLists(ip: string, zones: readonly DnsListZone[], deps: DnsListDeps): Promise<DnsListResult> {
  const now = deps.now ?? Date.now;
  const deadline = now() + deps.timeoutMs;
  const answers = await Promise.all(zones.map(async (zone): Promise<ZoneAnswer> => {
    const name = dnsListQueryName(ip, zone.zone);
    if (name === null) return { zone, kind: 'error', error: `not an IP address: ${ip}` };
    let addresses: string[];
    try {
      addresses = await beforeDeadline(deps.dns.resolve4(name), deadline, now);
    } catch (err) {
      const code = dnsErrorCode(err);
      return isNegativeAnswer(code) ? { zone, kind: 'none' } : { zone, kind: 'error', error: code };
    }
    if (deps.reasons === false || readListAnswer(zone, addresses).codes.length === 0) return { zone, kind: 'addresses', addresses };
    try {
      const reason = listingReason(await beforeDeadline(deps.dns.resolveTxt(name), deadline, now));
      return { zone, kind: 'addresses', addresses, ...(reason === '' ? {} : { reason }) };
    } catch {
      return { zone, kind: 'addresses', addresses };
    }
  }));
  const result = scoreDnsLists(answers);
  if (deps.log !== undefined) {
    for (const { zone, note } of result.notes) {
      if (!note.startsWith('list refused')) continue;
      const last = refusalWarned.get(zone);
      if (last !== undefined && now() - last < REFUSAL_WARN_MS) continue;
      refusalWarned.set(zone, now());
      deps.log.warn({ zone, note }, 'DNS list refuses our queries (a public resolver, or a query limit?); treated as unknown');
    }
  }
  return result;
}
