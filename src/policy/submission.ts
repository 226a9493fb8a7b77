// Pure rules of authenticated submission (RFC 6409): the sender must be one of the logged-in
// entry's own addresses, in MAIL FROM and in From:, and a message without Message-ID or Date
// gets them. Data in, a MailError or the fields to add out.
import { type Address, formatAddress, type MailError, permanent } from '../mail.ts';

/** Who logged in: the login as typed and the entry's addresses (lower-case). */
export interface Principal {
  readonly login: string;
  readonly dn: string;
  readonly addresses: readonly string[];
}

/** null when `sender` is the principal's own (or the null sender), else the 553 5.7.1 to answer. */
export function senderRefusal(principal: Principal, sender: Address | null): MailError | null {
  if (sender === null) return null;
  if (principal.addresses.includes(formatAddress(sender).toLowerCase())) return null;
  return permanent('5.7.1', `sender address <${formatAddress(sender)}> does not belong to ${principal.login}`, undefined, 553);
}

/** Every mailbox named in From: values ("Name <a@b>", "a@b, c@d", groups), lower-case. */
export function headerAddresses(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    // Quoted display names and comments may hold anything, "@" included: drop them first.
    const plain = value.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\([^()]*\)/g, '');
    for (const match of plain.matchAll(/<([^<>]*)>|([^\s<>,;:"]+@[^\s<>,;:"]+)/g)) {
      const address = (match[1] ?? match[2] ?? '').trim().toLowerCase();
      if (address !== '') out.push(address);
    }
  }
  return out;
}

/** null when every From: mailbox is the principal's own, else the 553 5.7.1; a message without From: passes. */
export function fromRefusal(principal: Principal, fromValues: readonly string[]): MailError | null {
  const foreign = headerAddresses(fromValues).filter((a) => !principal.addresses.includes(a));
  if (foreign.length === 0) return null;
  return permanent('5.7.1', `From: address <${foreign[0]}> does not belong to ${principal.login}`, undefined, 553);
}

/** Header fields a submitted message lacks and gets (RFC 6409 §8.2, §8.3), each ending in CRLF. */
export function missingFields(present: ReadonlySet<string>, now: Date, unique: string, hostname: string): string {
  let out = '';
  if (!present.has('message-id')) out += `Message-ID: <${unique}@${hostname}>\r\n`;
  if (!present.has('date')) out += `Date: ${now.toUTCString().replace(/GMT$/, '+0000')}\r\n`;
  return out;
}
