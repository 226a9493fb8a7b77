// The Received header this server prepends (RFC 5321 §4.4): who connected, from where, over what,
// and the queue id. Client-supplied text is reduced to safe characters: nothing can break out.
import { type Address, formatAddress } from '../mail.ts';

export interface ReceivedFacts {
  helo: string;
  clientHostname: string;
  ip: string;
  hostname: string;
  protocol: string;
  /** Protocol and cipher of a TLS session, e.g. { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }. */
  tls: { version: string; cipher: string } | null;
  queueId: string;
  /** The recipient, named only when there is exactly one (as Postfix does). */
  recipient: string | null;
  date: Date;
}

/** Anything outside a conservative set becomes "?", and the length is capped. */
export function safeToken(text: string, max = 255): string {
  return (text.replace(/[^A-Za-z0-9.\-_:[\]@+=]/g, '?').slice(0, max)) || 'unknown';
}

/** RFC 5322 date-time: "Sun, 22 Nov 2026 21:04:05 +0000". */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

export function receivedHeader(f: ReceivedFacts): string {
  const from = `from ${safeToken(f.helo)} (${safeToken(f.clientHostname)} [${safeToken(f.ip, 64)}])`;
  const by = `by ${safeToken(f.hostname)} (ldapmta) with ${f.protocol}`;
  const tls = f.tls === null ? '' : `\r\n\t(using ${safeToken(f.tls.version, 20)} with cipher ${safeToken(f.tls.cipher, 100)})`;
  const rcpt = f.recipient === null ? '' : `\r\n\tfor <${safeToken(f.recipient, 320)}>`;
  return `Received: ${from}\r\n\t${by}${tls} id ${safeToken(f.queueId, 64)}${rcpt};\r\n\t${rfc5322Date(f.date)}\r\n`;
}

/** Our Received field for a message taken in an smtp-server session. */
export function receivedOf(
  session: { hostNameAppearsAs?: string; clientHostname: string; remoteAddress: string; transmissionType: string; tlsOptions?: { version?: string; name?: string } | false | undefined },
  hostname: string, queueId: string, recipients: readonly Address[], date: Date,
): string {
  return receivedHeader({
    helo: session.hostNameAppearsAs || '', clientHostname: session.clientHostname, ip: session.remoteAddress,
    hostname, protocol: session.transmissionType,
    tls: session.tlsOptions ? { version: session.tlsOptions.version ?? '', cipher: session.tlsOptions.name ?? '' } : null,
    queueId, recipient: recipients.length === 1 ? formatAddress(recipients[0]!) : null, date,
  });
}
