// The local delivery agent's contract: write one message into one Maildir, within quota.
import type { Readable } from 'node:stream';
import type { Quota } from '../directory/types.ts';

export interface MaildirDelivery {
  /** Absolute Maildir path (ends with "/"), as the directory resolved it. */
  readonly maildir: string;
  /** The base directory every Maildir must lie below (config.mailboxes). */
  readonly base: string;
  readonly quota: Quota;
  /** Lines prepended to the message (Return-Path, Delivered-To), each ending in CRLF... or LF: see maildir.ts. */
  readonly header: string;
  /** Size of the queued message in bytes, for the quota check before writing. */
  readonly size: number;
  /** A Maildir++ folder ("Junk" → .Junk/), created when missing; absent: the inbox. */
  readonly folder?: string;
}

/** Writes `body` (preceded by `header`) into the Maildir; throws a MailError on failure. */
export type DeliverToMaildir = (delivery: MaildirDelivery, body: Readable) => Promise<{ file: string; bytes: number }>;
