// Composes the one bounce per message: an RFC 3464 multipart/report DSN to the original sender.
// Pure: bytes from data (no clock, no disk); it never decides who gets a bounce (index.ts does).
import { formatAddress, type Address, type MessageId } from '../mail.ts';

export interface FailedRecipient {
  readonly address: Address;
  readonly status: string;
  readonly text: string;
  readonly reply?: number;
}

export interface BounceInput {
  readonly hostname: string;
  /** The original message's queue id. */
  readonly queueId: MessageId;
  /** The original sender: the bounce goes there. */
  readonly sender: Address;
  /** When the original arrived (envelope.receivedAt). */
  readonly arrivalDate: Date;
  readonly failed: readonly FailedRecipient[];
  /** The original header block (possibly cut short), any line ending. */
  readonly originalHeaders: string;
  readonly now: Date;
  /** A delay warning (RFC 3464 Action: delayed) instead of a failure report: until when retries go on. */
  readonly delayedUntil?: Date;
}

const CRLF = '\r\n';

export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** Text fit for one header-style line: no controls, ASCII only, bounded. */
function fieldText(text: string, max = 400): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** `rfc822; a@b`, or RFC 6533 `utf-8; ` with \x{HEX} for anything outside printable ASCII. */
function addressField(address: Address): string {
  const text = formatAddress(address);
  if (/^[\x21-\x7e]*$/.test(text)) return `rfc822; ${text}`;
  const xtext = [...text].map((c) => {
    const code = c.codePointAt(0) ?? 0;
    return code < 0x21 || code > 0x7e || c === '\\' ? `\\x{${code.toString(16).toUpperCase()}}` : c;
  }).join('');
  return `utf-8; ${xtext}`;
}

function diagnostic(f: FailedRecipient): string {
  const text = fieldText(f.text);
  return f.reply === undefined ? `x-local; ${f.status} ${text}` : `smtp; ${f.reply} ${f.status} ${text}`;
}

function lines(text: string): string[] {
  const out = text.split(/\r?\n/);
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

/** The whole bounce message, headers and body, with CRLF line endings. */
export function composeBounce(input: BounceInput): Buffer {
  const { hostname, queueId, now, delayedUntil } = input;
  const delayed = delayedUntil !== undefined;
  const human = [
    `This is the mail system at host ${hostname}.`,
    '',
    ...(delayed ? [
      '####################################################################',
      '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #',
      '####################################################################',
      '',
      'Your message could not be delivered yet to one or more recipients.',
      `The mail system will keep trying until ${rfc5322Date(delayedUntil)}.`,
      'The reasons so far are listed below; the headers of your message',
      'are attached.',
    ] : [
      'I am sorry to inform you that your message could not be delivered',
      'to one or more recipients. The reasons are listed below; the headers',
      'of your message are attached.',
    ]),
    '',
    'For further assistance, please contact the postmaster of this host',
    'and include this report.',
    '',
    ...input.failed.map((f) => `<${formatAddress(f.address)}>: ${f.status} ${f.text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 900)}`),
  ];
  const status = [
    `Reporting-MTA: dns; ${fieldText(hostname)}`,
    `X-Ldapmta-Queue-ID: ${queueId}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
    ...input.failed.flatMap((f) => [
      '',
      `Final-Recipient: ${addressField(f.address)}`,
      `Action: ${delayed ? 'delayed' : 'failed'}`,
      `Status: ${/^[245]\.\d{1,3}\.\d{1,3}$/.test(f.status) ? f.status : delayed ? '4.0.0' : '5.0.0'}`,
      `Diagnostic-Code: ${diagnostic(f)}`,
      ...(delayed ? [`Will-Retry-Until: ${rfc5322Date(delayedUntil)}`] : []),
    ]),
  ];
  const headers = lines(input.originalHeaders);
  const eightBit = (l: string[]) => (l.some((x) => /[^\x00-\x7f]/.test(x)) ? '8bit' : '7bit');

  let boundary = `=_ldapmta_${queueId}_${now.getTime().toString(36)}`;
  const content = [...human, ...status, ...headers].join('\n');
  while (content.includes(boundary)) boundary += '_';

  const message = [
    `From: Mail Delivery System <MAILER-DAEMON@${hostname}>`,
    `To: <${formatAddress(input.sender)}>`,
    `Subject: ${delayed ? 'Delayed Mail (still being retried)' : 'Undelivered Mail Returned to Sender'}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${queueId}.${delayed ? 'delay' : 'bounce'}.${now.getTime().toString(36)}@${hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${eightBit(human)}`,
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    ...status,
    '',
    `--${boundary}`,
    'Content-Description: Undelivered message headers',
    'Content-Type: text/rfc822-headers',
    `Content-Transfer-Encoding: ${eightBit(headers)}`,
    '',
    ...headers,
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(message.join(CRLF), 'utf8');
}
