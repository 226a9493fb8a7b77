// Pure decisions taken during the SMTP conversation: may this client relay, is this domain ours,
// what does the directory's answer mean for a recipient. Plain data in, a MailError or nothing out.
import { BlockList, isIP } from 'node:net';
import type { Resolution } from '../directory/types.ts';
import { type MailError, permanent } from '../mail.ts';
import { parseCidr } from '../config.ts';

/** Postfix's mynetworks as a lookup structure. */
export function trustedNetworks(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (cidr === null) continue;
    list.addSubnet(cidr.address, cidr.prefix, isIP(cidr.address) === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
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
export function mayRelay(ip: string, user: string | null, trusted: BlockList): boolean {
  if (user !== null) return true;
  const plain = plainIp(ip);
  const family = isIP(plain);
  if (family === 0) return false;
  return trusted.check(plain, family === 6 ? 'ipv6' : 'ipv4');
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
