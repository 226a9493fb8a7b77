// The queue's contract with the other stages: what a queued message looks like and what the
// queue promises. No I/O here; src/queue/ implements it on disk.
import type { Readable } from 'node:stream';
import type { Address, Envelope, MessageId, Outcome } from '../mail.ts';

export interface QueuedMessage {
  readonly id: MessageId;
  readonly envelope: Envelope;
  /** Recipients not yet delivered nor failed for good. */
  readonly pending: readonly Address[];
  readonly attempts: number;
  readonly queuedAt: Date;
  /** Size of the stored message in bytes (headers added at receipt included). */
  readonly size: number;
}

export interface AcceptOptions {
  /**
   * Header lines (CRLF-terminated) to put on top of the body, known only once it has arrived (a
   * content verdict's Authentication-Results). Called at once, awaited after the body is written
   * and fsynced, before the commit: a rejection means nothing is queued, and is rethrown unchanged.
   * The lines are kept in the todo file and put back on top whenever the message is read.
   */
  readonly top?: (id: MessageId) => Promise<string>;
}

export interface Queue {
  /**
   * Store the body and envelope durably. Resolves only once the message file and its envelope
   * are fsynced and renamed into place and the directories fsynced: then, and only then, may
   * the caller answer 250. If `body` errors, nothing is queued and the error is rethrown. `body`
   * may be a function of the new id, for a Received header that names it.
   */
  accept(envelope: Envelope, body: Readable | ((id: MessageId) => Readable), options?: AcceptOptions): Promise<MessageId>;
  /** Messages with recipients due for an attempt, not already handed out and not yet settled. */
  due(now: Date, limit: number): Promise<QueuedMessage[]>;
  /** The stored message bytes. */
  open(id: MessageId): Readable;
  /** The stored message bytes at once (for small messages). */
  read(id: MessageId): Promise<Buffer>;
  /**
   * Record the outcome of an attempt for some of the pending recipients. Temporary failures
   * are rescheduled (or turned permanent when the message is too old); when nothing is pending,
   * one bounce goes to the sender for the failed recipients, then the message is removed. When no
   * bounce is owed the removal may end after settle resolves (the message is never handed out
   * again meanwhile); close() waits for it.
   */
  settle(id: MessageId, outcomes: readonly Outcome[]): Promise<void>;
  /** Called after every accept, so the delivery loop can wake at once. */
  onAccepted(listener: () => void): void;
  close(): Promise<void>;
  /** Counters for tests and monitoring: messages accepted and directory fsyncs issued (group commit). */
  stats?(): { accepted: number; dirSyncs: number };
}

/** One queued message as the admin API and `ldapmta queue` show it. */
export interface QueueEntryView {
  readonly id: MessageId;
  /** The envelope sender; "" for the null sender. */
  readonly sender: string;
  readonly queuedAt: string;
  readonly size: number;
  /** An attempt is in flight right now. */
  readonly active: boolean;
  /** A delay warning was sent. */
  readonly warned: boolean;
  /** On hold by the administrator. */
  readonly held: boolean;
  readonly recipients: readonly {
    readonly address: string;
    readonly state: 'pending' | 'delivered' | 'failed';
    readonly attempts: number;
    readonly nextAttempt: string;
    readonly lastError: { readonly status: string; readonly text: string; readonly reply?: number } | null;
  }[];
}

/** What an administrator may do to the queue (Postfix's postqueue/postsuper). */
export interface QueueControl {
  list(): QueueEntryView[];
  show(id: MessageId): QueueEntryView | null;
  /** Make the pending recipients of one message, or of all, due now; the number of messages. */
  flush(id?: MessageId): number;
  /** Remove a message without a bounce; false when there is no such message. */
  remove(id: MessageId): Promise<boolean>;
  /** Fail every pending recipient (5.0.0) and bounce to the sender; false when there is no such message. */
  bounce(id: MessageId): Promise<boolean>;
  /** Put a message on hold (kept, never attempted or expired) or release it (due now); false when there is no such message. */
  hold(id: MessageId): Promise<boolean>;
  release(id: MessageId): Promise<boolean>;
}

export interface QueueConfig {
  /** The spool directory; created if missing. */
  readonly dir: string;
  /** After this long, temporary failures become permanent (5.4.7). */
  readonly lifetimeSeconds: number;
  /** First retry wait and the cap of the doubling backoff (defaults 60 s and 3600 s). */
  readonly retryMinSeconds?: number;
  readonly retryMaxSeconds?: number;
  /** After this long with recipients still deferred, one delay warning to the sender; 0 or absent: never. */
  readonly delayWarningSeconds?: number;
  /** This node's name, for the bounce's From and Message-ID. */
  readonly hostname: string;
}
