// The todo/<id>.json format (envelope + per-recipient state) and how an attempt's outcomes change it.
// Pure: encode, decode (validating every field) and apply outcomes; never touches the disk or the clock.
import { z } from 'zod';
import type { Address, Envelope, MessageId, Outcome } from '../mail.ts';
import { nextStep } from './schedule.ts';

export const TODO_VERSION = 1;

export type RecipientState = 'pending' | 'delivered' | 'failed';

export interface LastError {
  readonly status: string;
  readonly text: string;
  /** The SMTP reply code that went with it, for the bounce's Diagnostic-Code. */
  readonly reply?: number;
}

export interface RecipientRecord {
  readonly address: Address;
  readonly state: RecipientState;
  readonly attempts: number;
  /** Milliseconds since the epoch. */
  readonly nextAttempt: number;
  readonly lastError: LastError | null;
}

/** What todo/<id>.json holds, with times as epoch milliseconds. */
export interface TodoState {
  readonly id: MessageId;
  readonly queuedAt: number;
  readonly size: number;
  readonly envelope: Envelope;
  readonly recipients: readonly RecipientRecord[];
  /** A delay warning went to the sender already. */
  readonly warned?: boolean;
  /** On hold by the administrator: not delivered, not expired, until released (postsuper -h). */
  readonly held?: boolean;
  /**
   * Header lines (CRLF-terminated) that go on top of mess/<id> when it is read: those known only
   * after the message was stored (our Received and a content verdict's fields). `size` counts them.
   */
  readonly top?: string;
}

const isoTime = z.iso.datetime().transform((s) => Date.parse(s));
const address = z.strictObject({ local: z.string().min(1), domain: z.string().min(1) });
const todoSchema = z.strictObject({
  version: z.literal(TODO_VERSION),
  id: z.string(),
  queuedAt: isoTime,
  size: z.number().int().min(0),
  envelope: z.strictObject({
    sender: address.nullable(),
    client: z.strictObject({ ip: z.string(), helo: z.string(), user: z.string().nullable(), tls: z.boolean() }),
    receivedAt: isoTime,
  }),
  recipients: z.array(z.strictObject({
    address,
    state: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int().min(0),
    nextAttempt: isoTime,
    lastError: z.strictObject({ status: z.string(), text: z.string(), reply: z.number().int().optional() }).nullable(),
  })).min(1),
  warned: z.boolean().optional(),
  held: z.boolean().optional(),
  top: z.string().optional(),
});

export function newTodo(id: MessageId, envelope: Envelope, size: number, now: number, top = ''): TodoState {
  return {
    id, queuedAt: now, size, envelope, ...(top === '' ? {} : { top }),
    recipients: envelope.recipients.map((a) => ({ address: a, state: 'pending', attempts: 0, nextAttempt: now, lastError: null })),
  };
}

export function encodeTodo(todo: TodoState): string {
  const iso = (ms: number) => new Date(ms).toISOString();
  const { sender, client, receivedAt } = todo.envelope;
  return `${JSON.stringify({
    version: TODO_VERSION,
    id: todo.id,
    queuedAt: iso(todo.queuedAt),
    size: todo.size,
    envelope: {
      sender: sender === null ? null : { local: sender.local, domain: sender.domain },
      client: { ip: client.ip, helo: client.helo, user: client.user, tls: client.tls },
      receivedAt: receivedAt.toISOString(),
    },
    recipients: todo.recipients.map((r) => ({
      address: { local: r.address.local, domain: r.address.domain },
      state: r.state, attempts: r.attempts, nextAttempt: iso(r.nextAttempt), lastError: r.lastError,
    })),
    ...(todo.warned === true ? { warned: true } : {}),
    ...(todo.held === true ? { held: true } : {}),
    ...(todo.top === undefined ? {} : { top: todo.top }),
  }, null, 1)}\n`;
}

/** The bytes of the stored message that the todo file holds itself (its `top`). Pure. */
export function topBytes(todo: TodoState): number {
  return todo.top === undefined ? 0 : Buffer.byteLength(todo.top);
}

/** Parses and validates a todo file; throws (with a reason) on anything unexpected. */
export function decodeTodo(text: string, id: MessageId): TodoState {
  const parsed = todoSchema.parse(JSON.parse(text));
  if (parsed.id !== id) throw new Error(`todo file names id ${parsed.id}, expected ${id}`);
  const recipients = parsed.recipients.map((r): RecipientRecord => ({
    address: r.address, state: r.state, attempts: r.attempts, nextAttempt: r.nextAttempt,
    lastError: r.lastError === null ? null : { status: r.lastError.status, text: r.lastError.text,
      ...(r.lastError.reply === undefined ? {} : { reply: r.lastError.reply }) },
  }));
  return {
    id, queuedAt: parsed.queuedAt, size: parsed.size, recipients, ...(parsed.warned === true ? { warned: true } : {}),
    ...(parsed.held === true ? { held: true } : {}),
    ...(parsed.top === undefined ? {} : { top: parsed.top }),
    envelope: {
      sender: parsed.envelope.sender, client: parsed.envelope.client,
      receivedAt: new Date(parsed.envelope.receivedAt), recipients: recipients.map((r) => r.address),
    },
  };
}

/** Every pending recipient failed for good with this status (the administrator's bounce). Pure. */
export function failPending(todo: TodoState, status: string, text: string): TodoState {
  return {
    ...todo,
    recipients: todo.recipients.map((r) => (r.state === 'pending' ? { ...r, state: 'failed' as const, lastError: { status, text } } : r)),
  };
}

/** Every pending recipient due at `now` (a flush). Pure. */
export function duePending(todo: TodoState, now: number): TodoState {
  return { ...todo, recipients: todo.recipients.map((r) => (r.state === 'pending' && r.nextAttempt > now ? { ...r, nextAttempt: now } : r)) };
}

export function sameAddress(a: Address, b: Address): boolean {
  return a.local === b.local && a.domain.toLowerCase() === b.domain.toLowerCase();
}

export function pendingOf(todo: TodoState): RecipientRecord[] {
  return todo.recipients.filter((r) => r.state === 'pending');
}

export interface Applied {
  readonly todo: TodoState;
  /** Outcomes naming no pending recipient (already settled, or never a recipient). */
  readonly ignored: readonly Address[];
  /** Recipients whose temporary failure turned into 5.4.7 because the message is too old. */
  readonly expired: readonly Address[];
}

/** The state after one attempt: delivered, failed for good, or rescheduled (or expired). */
export function applyOutcomes(todo: TodoState, outcomes: readonly Outcome[], now: number, lifetimeSeconds: number, retry: { firstRetryMs?: number; maxRetryMs?: number } = {}): Applied {
  const recipients = [...todo.recipients];
  const ignored: Address[] = [];
  const expired: Address[] = [];
  for (const outcome of outcomes) {
    const index = recipients.findIndex((r) => r.state === 'pending' && sameAddress(r.address, outcome.recipient));
    const current = recipients[index];
    if (current === undefined) {
      ignored.push(outcome.recipient);
      continue;
    }
    if (outcome.ok) {
      recipients[index] = { ...current, state: 'delivered', lastError: null };
      continue;
    }
    const { error } = outcome;
    const lastError: LastError = { status: error.status, text: error.message, reply: error.reply };
    if (!error.temporary) {
      recipients[index] = { ...current, state: 'failed', attempts: current.attempts + 1, lastError };
      continue;
    }
    const attempts = current.attempts + 1;
    const step = nextStep({ attempts, queuedAt: todo.queuedAt, now, lifetimeSeconds, seed: todo.id, ...retry });
    if (step.expired) {
      expired.push(current.address);
      const text = `delivery time expired (last error: ${error.status} ${error.message})`;
      recipients[index] = { ...current, state: 'failed', attempts, lastError: { status: '5.4.7', text, reply: 550 } };
    } else {
      recipients[index] = { ...current, attempts, nextAttempt: step.nextAttempt, lastError };
    }
  }
  return { todo: { ...todo, recipients }, ignored, expired };
}
