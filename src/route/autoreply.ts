// Pure: whether a message earns an auto-reply from mailReplyText (qmail-reply's rules plus RFC
// 3834), and the reply's bytes. The once-per-period memory is not here (deliver/reply-memory.ts).
import { createHash } from 'node:crypto';
import { type Address, formatAddress } from '../mail.ts';

/** Header fields the decision and the reply read, lower-case. */
export const REPLY_FIELDS = [
  'subject', 'message-id', 'precedence', 'auto-submitted', 'list-id', 'list-unsubscribe', 'list-post',
  'mailing-list', 'x-rbl', 'x-spam-status', 'to', 'cc', 'resent-to', 'resent-cc',
] as const;

export interface ReplyQuestion {
  readonly sender: Address | null;
  /** The recipient address as received, and every address of its entry (lower-case). */
  readonly recipient: Address;
  readonly addresses: readonly string[];
  /** Values of REPLY_FIELDS by lower-case name. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  /** Reply only when one of the entry's addresses is in To/Cc (RFC 3834 §2). */
  readonly onlyWhenAddressed: boolean;
}

/** Local parts (or their suffixes) of senders that never get a reply (qmail-reply's list, plus owner-). */
const MACHINE_LOCALS = new Set(['daemon', 'uucp', 'mailer-daemon', 'mailer', 'postmaster', 'root', 'noreply', 'no-reply']);
const MACHINE_SUFFIXES = ['-request', '-daemon', '-relay', '-bounces'];

/** null when a reply is due, else why not. */
export function whyNoReply(q: ReplyQuestion): string | null {
  if (q.sender === null) return 'null sender';
  const local = q.sender.local.toLowerCase();
  if (MACHINE_LOCALS.has(local) || MACHINE_SUFFIXES.some((s) => local.endsWith(s)) || local.startsWith('owner-')) return 'machine sender';
  if (q.addresses.includes(formatAddress(q.sender).toLowerCase())) return 'sender is the recipient';
  const one = (name: string) => (q.fields.get(name) ?? []).map((v) => v.trim().toLowerCase());
  const auto = one('auto-submitted');
  if (auto.length > 0 && auto.some((v) => !/^no\b/.test(v))) return 'Auto-Submitted';
  if (one('precedence').some((v) => /^(junk|bulk|list)\b/.test(v))) return 'Precedence';
  for (const name of ['list-id', 'list-unsubscribe', 'list-post', 'mailing-list', 'x-rbl']) {
    if (one(name).length > 0) return name;
  }
  if (one('x-spam-status').some((v) => v.startsWith('yes'))) return 'X-Spam-Status';
  if (q.onlyWhenAddressed) {
    const listed = new Set(['to', 'cc', 'resent-to', 'resent-cc'].flatMap(one).flatMap((v) => v.match(/[^\s<>,;:"()[\]]+@[^\s<>,;:"()[\]]+/g) ?? []));
    const mine = [...q.addresses, formatAddress(q.recipient).toLowerCase()];
    if (!mine.some((a) => listed.has(a))) return 'not addressed in To or Cc';
  }
  return null;
}

/** The memory key: one reply per entry, sender and reply text (a new text replies again). */
export function replyKey(dn: string, sender: Address, text: string): string {
  return createHash('sha256').update(`${dn.toLowerCase()}\0${formatAddress(sender).toLowerCase()}\0${text}`).digest('hex');
}

export interface ReplyMessage {
  readonly from: Address;
  readonly to: Address;
  readonly text: string;
  readonly fields: ReadonlyMap<string, readonly string[]>;
  readonly hostname: string;
  readonly now: Date;
  /** Unique token for the Message-ID. */
  readonly unique: string;
}

/** User-settable fields after %HEADER% (qmail-reply); the rest are forced or dropped. */
const USER_FIELDS = new Set(['from', 'subject', 'content-type', 'content-transfer-encoding']);

/** The reply's bytes: qmail-reply's format with RFC 3834's Auto-Submitted and threading fields. */
export function composeReply(m: ReplyMessage): Buffer {
  const clean = (v: string) => v.replace(/[\r\n]+[ \t]*/g, ' ').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trim();
  const original = clean(m.fields.get('subject')?.[0] ?? '').split('\n')[0]!;
  let body = m.text.replace(/\r\n?/g, '\n');
  const user = new Map<string, string>();
  const extra: string[] = [];
  if (body.startsWith('%HEADER%\n')) {
    const end = body.indexOf('\n\n');
    const block = end < 0 ? body.slice(9) : body.slice(9, end);
    body = end < 0 ? '' : body.slice(end + 2);
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = clean(line.slice(colon + 1));
      if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
      if (USER_FIELDS.has(name.toLowerCase())) user.set(name.toLowerCase(), value);
      else if (/^x-/i.test(name) && !/^x-mailer$/i.test(name)) extra.push(`${name}: ${value}`);
    }
  }
  const subject = (user.get('subject') ?? '[Auto-Reply] %SUBJECT%').replace(/%SUBJECT%/g, original || 'Your Mail');
  const messageId = clean(m.fields.get('message-id')?.[0] ?? '');
  const lines = [
    `From: ${user.get('from') ?? `<${formatAddress(m.from)}>`}`,
    `To: <${formatAddress(m.to)}>`,
    `Subject: ${subject}`,
    `Date: ${m.now.toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${m.unique}.autoreply@${m.hostname}>`,
    ...(/^<[^<>\s]+>$/.test(messageId) ? [`In-Reply-To: ${messageId}`, `References: ${messageId}`] : []),
    'Auto-Submitted: auto-replied',
    'Precedence: junk',
    'X-Mailer: ldapmta auto-reply',
    'MIME-Version: 1.0',
    `Content-Type: ${user.get('content-type') ?? 'text/plain; charset=utf-8'}`,
    `Content-Transfer-Encoding: ${user.get('content-transfer-encoding') ?? '8bit'}`,
    ...extra,
  ];
  const text = body.endsWith('\n') ? body : `${body}\n`;
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${text.replace(/\n/g, '\r\n')}`);
}
