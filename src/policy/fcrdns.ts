// Who the client says it is: forward-confirmed reverse DNS (the address's PTR names, each looked
// up again, must lead back to the address) and the sanity of its HELO/EHLO argument. Both are
// score inputs, never reasons to refuse on their own; the HELO checks are pure.
// Must never: treat a DNS failure as "not confirmed" without saying it was temporary.
import { isIP, isIPv4 } from 'node:net';
import { isLoopback } from './rules.ts';
import { beforeDeadline, canonicalIp, dnsErrorCode, isNegativeAnswer, type PolicyDns, ptrName, sameIp } from './dnsbl.ts';

export interface FcrdnsResult {
  /** At least one PTR name resolves back to the address. */
  readonly confirmed: boolean;
  /** The confirmed names (lower case, no trailing dot); empty unless confirmed. */
  readonly names: readonly string[];
  /** Every PTR name seen, confirmed or not, for the log (never trust these for anything else). */
  readonly ptr: readonly string[];
  /** The answer is not final: a lookup timed out or failed (SERVFAIL …). Not confirmed, but not the client's fault. */
  readonly temporary: boolean;
}

/** How many PTR names are followed; more is unusual, and every name costs a lookup. */
export const MAX_PTR_NAMES = 5;

export interface FcrdnsDeps {
  readonly dns: PolicyDns;
  /** One deadline for the PTR lookup and every forward lookup. */
  readonly timeoutMs: number;
  readonly now?: () => number;
}

const normalizeName = (name: string): string => name.toLowerCase().replace(/\.+$/, '');

/**
 * Forward-confirmed reverse DNS of `ip`: PTR, then A (IPv4) or AAAA (IPv6) of up to
 * MAX_PTR_NAMES names, in parallel. No PTR (NXDOMAIN, NODATA) is a final "not confirmed"; a
 * failure or timeout anywhere that leaves the address unconfirmed is `temporary`. Never rejects.
 */
export async function checkFcrdns(ip: string, deps: FcrdnsDeps): Promise<FcrdnsResult> {
  const now = deps.now ?? Date.now;
  const deadline = now() + deps.timeoutMs;
  const reverse = ptrName(ip);
  if (reverse === null) return { confirmed: false, names: [], ptr: [], temporary: false };
  let ptr: string[];
  try {
    ptr = [...new Set((await beforeDeadline(deps.dns.resolvePtr(reverse), deadline, now)).map(normalizeName))].filter((n) => n !== '');
  } catch (err) {
    return { confirmed: false, names: [], ptr: [], temporary: !isNegativeAnswer(dnsErrorCode(err)) };
  }
  const v4 = isIPv4(canonicalIp(ip));
  const checked = await Promise.all(ptr.slice(0, MAX_PTR_NAMES).map(async (name) => {
    try {
      const addresses = await beforeDeadline(v4 ? deps.dns.resolve4(name) : deps.dns.resolve6(name), deadline, now);
      return { name, confirmed: addresses.some((a) => sameIp(a, ip)), failed: false };
    } catch (err) {
      return { name, confirmed: false, failed: !isNegativeAnswer(dnsErrorCode(err)) };
    }
  }));
  const names = checked.filter((c) => c.confirmed).map((c) => c.name);
  return { confirmed: names.length > 0, names, ptr, temporary: names.length === 0 && checked.some((c) => c.failed) };
}

/**
 * What is wrong with a HELO/EHLO argument, as stable names (score inputs):
 * - helo-empty: nothing given;
 * - helo-bare-ip: an address without the brackets of an address literal (RFC 5321 §4.1.3);
 * - helo-ip-not-client: an address (bare or literal) that is not the client's;
 * - helo-bad-literal: brackets around something that is not an address;
 * - helo-localhost: "localhost" or a name under .localhost / localhost.localdomain, from a client that is not on loopback;
 * - helo-our-name: one of `ownNames`, from a client that is neither on loopback nor confirmed (FCrDNS) as one of them;
 * - helo-not-fqdn: a single label ("mailserver"), or a numeric top label;
 * - helo-bad-syntax: characters or labels a host name cannot have (underscores included).
 * `fcrdnsNames` are the client's confirmed names (FcrdnsResult.names); `ownNames` our host names. Pure.
 */
export function heloChecks(helo: string, clientIp: string, fcrdnsNames: readonly string[], ownNames: readonly string[] = []): string[] {
  const text = helo.trim();
  if (text === '') return ['helo-empty'];
  const problems: string[] = [];
  const literal = /^\[(?:ipv6:)?([^\]]*)\]$/i.exec(text);
  if (literal !== null) {
    const inner = literal[1]!;
    // "[IPv6:…]" is the RFC 5321 form; "[…]" alone must be IPv4, but IPv6 in it is common enough to only compare.
    if (isIP(inner) === 0) problems.push('helo-bad-literal');
    else if (!sameIp(inner, clientIp)) problems.push('helo-ip-not-client');
    return problems;
  }
  if (isIP(text) !== 0) {
    problems.push('helo-bare-ip');
    if (!sameIp(text, clientIp)) problems.push('helo-ip-not-client');
    return problems;
  }
  const name = normalizeName(text);
  const local = isLoopback(clientIp);
  if (name === 'localhost' || name.endsWith('.localhost') || name === 'localhost.localdomain') {
    if (!local) problems.push('helo-localhost');
    return problems;
  }
  const own = new Set(ownNames.map(normalizeName));
  if (own.has(name) && !local && !fcrdnsNames.some((n) => own.has(normalizeName(n)))) problems.push('helo-our-name');
  const labels = name.split('.');
  const ldh = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
  if (name.length > 253 || labels.some((l) => !ldh.test(l))) problems.push('helo-bad-syntax');
  if (labels.length < 2 || /^\d+$/.test(labels[labels.length - 1]!)) problems.push('helo-not-fqdn');
  return problems;
}
