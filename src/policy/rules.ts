// Pure decisions taken during the SMTP conversation: may this client relay, is this domain ours,
// what does the directory's answer mean for a recipient. Plain data in, a MailError or nothing out.
import { BlockList, isIP } from 'node:net';
import type { Resolution } from '../directory/types.ts';
import { type MailError, permanent } from '../mail.ts';
import { parseCidr } from '../config.ts';

/** A set of networks asked one client address at a time. */
export interface NetworkList {
  /** The address (plain, IPv4-mapped or not) is in one of the networks; false for anything not an address. */
  has(ip: string): boolean;
}

/** Answers kept per address: few clients send most mail, and each BlockList check builds a SocketAddress. */
const REMEMBERED_ADDRESSES = 10_000;

/** Postfix's mynetworks as a lookup structure (bad CIDRs are left out; the config schema checks them). */
export function trustedNetworks(cidrs: readonly string[]): NetworkList {
  const list = new BlockList();
  let networks = 0;
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (cidr === null) continue;
    list.addSubnet(cidr.address, cidr.prefix, isIP(cidr.address) === 6 ? 'ipv6' : 'ipv4');
    networks++;
  }
  if (networks === 0) return { has: () => false };
  const answers = new Map<string, boolean>();
  return {
    has(ip) {
      let answer = answers.get(ip);
      if (answer === undefined) {
        const plain = plainIp(ip.replace(/%.*$/, '').toLowerCase());
        const family = isIP(plain);
        answer = family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
        if (answers.size >= REMEMBERED_ADDRESSES) answers.clear();
        answers.set(ip, answer);
      }
      return answer;
    },
  };
}

/** A client address without the IPv4-mapped prefix ("::ffff:127.0.0.1" → "127.0.0.1"). */
export function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** 127.0.0.0/8 or ::1, mapped or not. */
export function isLoopback(ip: string): boolean {
  const plain = plainIp(ip);
  return plain === '::1' || /^127\./.test(plain);
}

/** A client may relay when it authenticated or connects from a trusted network. */
export function mayRelay(ip: string, user: string | null, trusted: NetworkList): boolean {
  return user !== null || trusted.has(ip);
}

/** Only a listed domain is local; address literals never are (no relaying through [1.2.3.4]). */
export function isLocalDomain(domain: string, localDomains: ReadonlySet<string>): boolean {
  return !domain.startsWith('[') && localDomains.has(domain.replace(/\.$/, ''));
}

export const RELAY_DENIED = () => permanent('5.7.1', 'relay access denied', undefined, 554);

/**
 * What the directory's answer means at RCPT time. `size` is the SIZE= of MAIL FROM, when given.
 * Returns null for "accept", or the MailError to answer.
 */
export function recipientVerdict(resolution: Resolution, size: number | null): MailError | null {
  switch (resolution.kind) {
    case 'unknown':
      return permanent('5.1.1', 'no such user here', undefined, 550);
    case 'reject':
      return permanent(resolution.status, resolution.reason, undefined, 550);
    case 'group':
      // Moderation and sender confirmation are not implemented: never distribute such a list unmoderated.
      if (resolution.senderConfirm || resolution.moderators.dn.length + resolution.moderators.rfc822.length > 0) {
        return permanent('5.7.2', 'this list is moderated and cannot take posts here', undefined, 550);
      }
      break;
    default:
      break;
  }
  if (size !== null && resolution.sizeMax !== null && size > resolution.sizeMax) {
    return permanent('5.2.3', 'message too large for this recipient', undefined, 552);
  }
  return null;
}
