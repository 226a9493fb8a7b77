// The shared vocabulary of every stage: addresses, envelopes, outcomes and the one error type.
// Pure data and pure functions only; nothing here does I/O or knows about a protocol.

/** An RFC 5321 mailbox. The domain is lower-cased; the local part keeps its case. */
export interface Address {
  readonly local: string;
  readonly domain: string;
}

export type FailureKind = 'temporary' | 'permanent';

/**
 * Every failure that leaves a stage. `status` is an RFC 3463 enhanced status code ("4.4.3");
 * `reply` the basic SMTP code; `message` is safe to show a peer; `cause` is for the log only.
 */
export class MailError extends Error {
  readonly kind: FailureKind;
  readonly status: string;
  readonly reply: number;

  constructor(kind: FailureKind, status: string, message: string, options: { reply?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MailError';
    this.kind = kind;
    this.status = status;
    this.reply = options.reply ?? (kind === 'temporary' ? 451 : 550);
  }

  get temporary(): boolean {
    return this.kind === 'temporary';
  }
}

export function temporary(status: string, text: string, cause?: unknown, reply?: number): MailError {
  return new MailError('temporary', status, text, { cause, ...(reply === undefined ? {} : { reply }) });
}

export function permanent(status: string, text: string, cause?: unknown, reply?: number): MailError {
  return new MailError('permanent', status, text, { cause, ...(reply === undefined ? {} : { reply }) });
}

/** Anything that is not already a MailError is our own fault of unknown origin: temporary 4.3.0. */
export function asMailError(err: unknown): MailError {
  if (err instanceof MailError) return err;
  return temporary('4.3.0', 'local error, try again later', err);
}

// RFC 5321 §4.5.3.1 size limits.
export const MAX_LOCAL_PART = 64;
export const MAX_DOMAIN = 255;
export const MAX_PATH = 256;

/**
 * Parse `local@domain` (no angle brackets). Splits at the last `@`, removes RFC 5321 quoting
 * from the local part, lower-cases the domain. Throws a permanent 5.1.3 on bad syntax, on
 * control characters and on the RFC 5321 length limits.
 */
export function parseAddress(text: string): Address {
  if (text.length > MAX_PATH) throw permanent('5.1.3', 'address too long', undefined, 501);
  // NUL, CR, LF and other C0 controls never belong in an address.
  if (/[\u0000-\u001f\u007f]/.test(text)) throw permanent('5.1.3', 'bad character in address', undefined, 501);
  // smtp-server decodes bytes that are not UTF-8 to U+FFFD: such an address was never valid (RFC 6531).
  if (text.includes('\ufffd')) throw permanent('5.1.3', 'address is not valid UTF-8', undefined, 501);
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1) {
    throw permanent('5.1.3', 'address must be local@domain', undefined, 501);
  }
  const local = unquoteLocalPart(text.slice(0, at));
  const domain = text.slice(at + 1).toLowerCase();
  if (local.length === 0) throw permanent('5.1.3', 'empty local part', undefined, 501);
  // SRS addresses carry a whole address in their local part and routinely pass 64 octets.
  if (Buffer.byteLength(local) > MAX_LOCAL_PART && !/^SRS[01][=+-]/i.test(local)) throw permanent('5.1.3', 'local part too long', undefined, 501);
  if (domain.length > MAX_DOMAIN) throw permanent('5.1.3', 'domain too long', undefined, 501);
  if (!isDomainSyntax(domain)) throw permanent('5.1.3', 'bad domain syntax', undefined, 501);
  return { local, domain };
}

/** RFC 5321 quoted-string local parts: `"a b"` → `a b`, `"a\"b"` → `a"b`. Unquoted text is kept. */
export function unquoteLocalPart(local: string): string {
  if (local.length < 2 || !local.startsWith('"') || !local.endsWith('"')) return local;
  return local.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Host names and address literals; IDNs in U-label form are allowed here and converted later. */
function isDomainSyntax(domain: string): boolean {
  if (domain.startsWith('[') && domain.endsWith(']')) return true;
  return /^[^\s@()<>,;:\\"[\]]+$/.test(domain) && !domain.startsWith('.') && !domain.includes('..');
}

export function formatAddress(address: Address): string {
  const plain = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/.test(address.local) && !address.local.startsWith('.') &&
    !address.local.endsWith('.') && !address.local.includes('..');
  const local = plain || /[^\x00-\x7f]/.test(address.local)
    ? address.local
    : `"${address.local.replace(/(["\\])/g, '\\$1')}"`;
  return `${local}@${address.domain}`;
}

export interface ClientInfo {
  readonly ip: string;
  readonly helo: string;
  readonly user: string | null;
  readonly tls: boolean;
}

export interface Envelope {
  readonly sender: Address | null;
  readonly recipients: readonly Address[];
  readonly client: ClientInfo;
  readonly receivedAt: Date;
}

export type MessageId = string;

export type Outcome =
  | { readonly recipient: Address; readonly ok: true }
  | { readonly recipient: Address; readonly ok: false; readonly error: MailError };
