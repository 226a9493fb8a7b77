// Owns: the shape of a content scanner as the verdict pipeline sees it. Clients (clamd.ts, spamd.ts,
// rspamd.ts) speak the daemons' own protocols and return these; a daemon that is down, refuses or
// times out is a temporary MailError (4.7.1), never a clean result.

/** What a virus scanner says of one message. */
export type VirusResult = { readonly infected: false } | { readonly infected: true; readonly signature: string };

export interface VirusScanner {
  readonly name: string;
  /** The whole message as received (header and body). Rejects with a temporary MailError when the daemon cannot answer. */
  scan(message: Buffer): Promise<VirusResult>;
}

/** What a spam scorer says of one message. */
export interface SpamResult {
  readonly score: number;
  /** The daemon's own threshold ("required" in spamd, the reject/add-header action score in rspamd), if it has one. */
  readonly required: number | null;
  /** The rule names that fired, for the log and the X-Spam-Status header. */
  readonly rules: readonly string[];
}

export interface SpamContext {
  readonly sender: string | null;
  readonly recipients: readonly string[];
  readonly clientIp: string;
  readonly helo: string;
  /** The authenticated login (submission), or null. */
  readonly user: string | null;
  readonly queueId?: string;
}

export interface SpamScanner {
  readonly name: string;
  /** Rejects with a temporary MailError when the daemon cannot answer. */
  score(message: Buffer, context: SpamContext): Promise<SpamResult>;
}
