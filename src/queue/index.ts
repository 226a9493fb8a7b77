// The disk queue: durable group-committed accept, leases, settle, bounce, removal; owns the in-memory index.
// A message is mess/<id>, under the header lines its todo file may hold for its top (AcceptOptions.top).
// Must never resolve an accept before its todo/ rename and both dir fsyncs, nor delete before a bounce is queued.
import { createReadStream } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from '../log.ts';
import { formatAddress, permanent, temporary, type Envelope, type MessageId, type Outcome } from '../mail.ts';
import { composeBounce } from './bounce.ts';
import { BodyStreamError, diskError, DirSync, readHeaders, writeBodyFile, writeFileSynced } from './disk.ts';
import { DueHeap } from './due-heap.ts';
import { isMessageId, newMessageId } from './id.ts';
import { layout, recover } from './recover.ts';
import { applyOutcomes, duePending, encodeTodo, failPending, newTodo, pendingOf, sameAddress, type TodoState } from './state.ts';
import type { AcceptOptions, Queue, QueueConfig, QueueControl, QueuedMessage, QueueEntryView } from './types.ts';

export interface QueueDeps {
  readonly log: Logger;
  /** Epoch milliseconds; tests pass a fake clock. Used for queuedAt and by settle. */
  readonly clock?: () => number;
}

export interface QueueStats {
  readonly accepted: number;
  /** Directory fsyncs issued (mess/ and todo/ together). */
  readonly dirSyncs: number;
}

/**
 * The body, or a function that makes it once the queue id is known (so a Received header can name
 * the id). The function form is an extension: types.ts's Queue.accept takes a Readable only.
 */
export type BodySource = Readable | ((id: MessageId) => Readable);

export type DiskQueue = Queue & QueueControl & {
  accept(envelope: Envelope, body: BodySource, options?: AcceptOptions): Promise<MessageId>;
  stats(): QueueStats;
};

interface Entry {
  todo: TodoState;
  leased: boolean;
  /** After a failed state write or bounce, not handed out again before this time. */
  holdUntil: number;
  finishing: boolean;
  /** Settles and the final clean-up of one message run one after the other. */
  chain: Promise<void>;
  /** An administrator's delete or bounce that waits for the attempt in flight to settle. */
  doom: 'delete' | 'bounce' | null;
}

const HOLD_AFTER_ERROR_MS = 60_000;
/** The due heap is rebuilt from the index this often, so a change that forgot to schedule costs a minute, not a message. */
const REBUILD_DUE_MS = 60_000;

/** When an entry may next be handed out: never while leased, finishing or held; at once when nothing is pending (to be finished). Pure. */
function readyAt(entry: Entry): number {
  if (entry.leased || entry.finishing || entry.todo.held === true) return Infinity;
  let at = Infinity;
  for (const r of entry.todo.recipients) if (r.state === 'pending' && r.nextAttempt < at) at = r.nextAttempt;
  return Math.max(at === Infinity ? 0 : at, entry.holdUntil);
}

export async function createQueue(config: QueueConfig, deps: QueueDeps): Promise<DiskQueue> {
  const { log } = deps;
  const clock = deps.clock ?? Date.now;
  const retry = {
    ...(config.retryMinSeconds === undefined ? {} : { firstRetryMs: config.retryMinSeconds * 1000 }),
    ...(config.retryMaxSeconds === undefined ? {} : { maxRetryMs: config.retryMaxSeconds * 1000 }),
  };
  const dirs = layout(config.dir);
  const messSync = new DirSync(dirs.mess);
  const todoSync = new DirSync(dirs.todo);
  const index = new Map<MessageId, Entry>();
  /** Which entry may be handed out next, so due() need not walk a large deferred queue. */
  const dueHeap = new DueHeap();
  let dueBuiltAt = -Infinity;
  /** After any change to an entry that may make it due: its next time goes on the heap. */
  const schedule = (entry: Entry): void => {
    const at = readyAt(entry);
    if (at !== Infinity) dueHeap.push(at, entry.todo.id);
  };
  /** After a disk error: not handed out again for HOLD_AFTER_ERROR_MS, then due (finished, or tried again). */
  const holdAfterError = (entry: Entry, now: number): void => {
    entry.holdUntil = now + HOLD_AFTER_ERROR_MS;
    schedule(entry);
  };
  const listeners: (() => void)[] = [];
  const inflight = new Set<Promise<unknown>>();
  let accepted = 0;
  let closed = false;

  const messPath = (id: MessageId) => join(dirs.mess, id);
  /** The header lines kept in the todo file for the top of mess/<id> ('' for most messages). */
  const topOf = (id: MessageId) => index.get(id)?.todo.top ?? '';
  const todoPath = (id: MessageId) => join(dirs.todo, `${id}.json`);

  function track<T>(work: Promise<T>): Promise<T> {
    inflight.add(work);
    const done = () => inflight.delete(work);
    work.then(done, done);
    return work;
  }

  function serialize(entry: Entry, work: () => Promise<void>): Promise<void> {
    const run = entry.chain.then(work);
    entry.chain = run.catch(() => undefined);
    return track(run);
  }

  async function acceptOne(envelope: Envelope, source: BodySource, options: AcceptOptions = {}): Promise<MessageId> {
    const now = clock();
    const id = newMessageId(now);
    const mlog = log.child({ queueId: id });
    const tmpTodo = join(dirs.tmp, `${id}.json`);
    let stage: 'mess' | 'todo' = 'mess';
    /** Set once writeBodyFile created mess/<id>: a file that was there before is not ours to remove. */
    const created = { file: false };
    try {
      let body: Readable;
      try {
        body = typeof source === 'function' ? source(id) : source;
      } catch (err) {
        throw new BodyStreamError(err);
      }
      // Straight into mess/ as qmail-queue does: until todo/ names it, a crash leaves an orphan
      // that start-up deletes, and nobody was told 250.
      const top = options.top === undefined ? null : options.top(id);
      top?.catch(() => undefined); // awaited below, once the body is stored
      const size = await writeBodyFile(body, messPath(id), created);
      const lines = top === null ? '' : await top.catch((err: unknown) => { throw new BodyStreamError(err); });
      const todo = newTodo(id, envelope, size + Buffer.byteLength(lines), now, lines);
      // mess/<id> is made durable before todo/ may name it, so a todo never exists without its
      // message, even after a power loss; the envelope is written and fsynced meanwhile.
      await Promise.all([messSync.sync(), writeFileSynced(tmpTodo, encodeTodo(todo), true)]);
      // COMMIT POINT: once this rename is on disk the message is queued and will be delivered or
      // bounced. Before it, a crash leaves only tmp/ and mess/ garbage that start-up deletes.
      await rename(tmpTodo, todoPath(id));
      stage = 'todo';
      await todoSync.sync();
      const entry: Entry = { todo, leased: false, holdUntil: 0, finishing: false, chain: Promise.resolve(), doom: null };
      index.set(id, entry);
      schedule(entry);
      accepted++;
      const to = envelope.recipients.map(formatAddress);
      mlog.info({ from: envelope.sender === null ? '<>' : formatAddress(envelope.sender), to, size }, 'queued');
      return id;
    } catch (err) {
      // Not acknowledged, so nothing may stay queued: undo in the reverse order of the commit.
      if (stage === 'todo') await removeFile(todoPath(id)).catch(() => undefined);
      if (created.file) await removeFile(messPath(id)).catch(() => undefined);
      await removeFile(tmpTodo).catch(() => undefined);
      if (err instanceof BodyStreamError) {
        mlog.info({ err: err.error }, 'not queued: the message did not arrive whole or was refused while it arrived');
        throw err.error; // the SMTP layer's own reason (bare LF, size, disconnect), unchanged
      }
      const mailError = diskError(err);
      mlog.error({ err, status: mailError.status }, 'queue write failed; nothing queued');
      throw mailError;
    }
  }

  async function accept(envelope: Envelope, body: BodySource, options: AcceptOptions = {}): Promise<MessageId> {
    if (closed) throw temporary('4.3.2', 'system not accepting network messages');
    if (envelope.recipients.length === 0) throw permanent('5.5.1', 'no valid recipients', undefined, 554);
    const id = await track(acceptOne(envelope, body, options));
    notify(id);
    return id;
  }

  function notify(id: MessageId): void {
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        log.error({ err, queueId: id }, 'onAccepted listener failed');
      }
    }
  }

  /** Writes the new state next to the old one and renames it over (file and directory fsynced). */
  async function persist(todo: TodoState): Promise<void> {
    const tmp = join(dirs.tmp, `${todo.id}.todo`);
    await writeFileSynced(tmp, encodeTodo(todo), false);
    await rename(tmp, todoPath(todo.id));
    await todoSync.sync();
  }

  /** Nothing pending: queue the bounce if one is owed, then delete todo/ and then mess/. */
  async function finish(entry: Entry, options: { bounce: boolean } = { bounce: true }): Promise<void> {
    const { todo } = entry;
    if (index.get(todo.id) !== entry) return; // already finished
    const mlog = log.child({ queueId: todo.id });
    const failed = options.bounce ? todo.recipients.filter((r) => r.state === 'failed') : [];
    const { sender } = todo.envelope;
    if (failed.length > 0 && sender === null) {
      mlog.error({ to: failed.map((r) => formatAddress(r.address)), errors: failed.map((r) => r.lastError) },
        'double bounce: a message with the null sender failed; dropped (postmaster, take note)');
    } else if (failed.length > 0 && sender !== null) {
      const now = clock();
      const headers = (todo.top ?? '') + await readHeaders(messPath(todo.id)).catch(() => '');
      const bytes = composeBounce({
        hostname: config.hostname, queueId: todo.id, sender, arrivalDate: todo.envelope.receivedAt,
        originalHeaders: headers, now: new Date(now),
        failed: failed.map((r) => ({ address: r.address, status: r.lastError?.status ?? '5.0.0',
          text: r.lastError?.text ?? 'delivery failed', ...(r.lastError?.reply === undefined ? {} : { reply: r.lastError.reply }) })),
      });
      const bounceId = await acceptOne({
        sender: null, recipients: [sender], receivedAt: new Date(now),
        client: { ip: '127.0.0.1', helo: config.hostname, user: null, tls: false },
      }, Readable.from([bytes]));
      mlog.info({ bounceId, to: formatAddress(sender), failed: failed.length }, 'bounce queued');
      notify(bounceId);
    }
    // A crash from here on repeats the bounce at the next start (todo/ still says "failed"): a
    // duplicate bounce is possible, a lost one is not.
    await removeFile(todoPath(todo.id));
    await todoSync.sync();
    await removeFile(messPath(todo.id));
    index.delete(todo.id);
    mlog.info({ delivered: todo.recipients.length - failed.length, failed: failed.length }, 'removed from queue');
  }

  function startFinish(entry: Entry): Promise<void> {
    entry.finishing = true;
    return serialize(entry, () => finish(entry)).catch((err: unknown) => {
      entry.finishing = false;
      holdAfterError(entry, clock());
      log.error({ err, queueId: entry.todo.id }, 'could not finish message; will retry');
    });
  }

  /** Once per message, past queue.delayWarningSeconds: a delay DSN to the sender for the recipients still deferred. */
  async function warnIfDelayed(todo: TodoState, now: number): Promise<TodoState> {
    const after = (config.delayWarningSeconds ?? 0) * 1000;
    const { sender } = todo.envelope;
    if (after <= 0 || todo.warned === true || sender === null || now - todo.queuedAt < after) return todo;
    const delayed = pendingOf(todo).filter((r) => r.lastError !== null);
    if (delayed.length === 0) return todo;
    const headers = (todo.top ?? '') + await readHeaders(messPath(todo.id)).catch(() => '');
    const bytes = composeBounce({
      hostname: config.hostname, queueId: todo.id, sender, arrivalDate: todo.envelope.receivedAt, originalHeaders: headers,
      now: new Date(now), delayedUntil: new Date(todo.queuedAt + config.lifetimeSeconds * 1000),
      failed: delayed.map((r) => ({ address: r.address, status: r.lastError!.status, text: r.lastError!.text, ...(r.lastError!.reply === undefined ? {} : { reply: r.lastError!.reply }) })),
    });
    const warningId = await acceptOne({
      sender: null, recipients: [sender], receivedAt: new Date(now),
      client: { ip: '127.0.0.1', helo: config.hostname, user: null, tls: false },
    }, Readable.from([bytes]));
    log.info({ queueId: todo.id, warningId, to: formatAddress(sender), delayed: delayed.length }, 'delay warning queued');
    notify(warningId);
    return { ...todo, warned: true };
  }

  async function settleOne(entry: Entry, outcomes: readonly Outcome[]): Promise<void> {
    const now = clock();
    const mlog = log.child({ queueId: entry.todo.id });
    if (index.get(entry.todo.id) !== entry) {
      mlog.warn('settle for a message already finished; ignored');
      return;
    }
    const applied = applyOutcomes(entry.todo, outcomes, now, config.lifetimeSeconds, retry);
    const { ignored, expired } = applied;
    let { todo } = applied;
    if (ignored.length > 0) mlog.warn({ to: ignored.map(formatAddress) }, 'outcome for a recipient that is not pending; ignored');
    if (expired.length > 0) mlog.warn({ to: expired.map(formatAddress) }, 'delivery time expired');
    if (entry.doom === 'delete') {
      entry.todo = todo;
      entry.leased = false;
      entry.finishing = true;
      await finish(entry, { bounce: false });
      mlog.warn('deleted by the administrator');
      return;
    }
    if (entry.doom === 'bounce') todo = failPending(todo, '5.0.0', 'returned to the sender by the administrator');
    else if (pendingOf(todo).length > 0) {
      // A warning that cannot be queued now (disk full) is tried again at the next settle; the message goes on.
      todo = await warnIfDelayed(todo, now).catch((err: unknown) => {
        mlog.warn({ err: (err as Error).message }, 'could not queue the delay warning; will try again');
        return todo;
      });
    }
    // Nothing pending and no bounce owed: finish at once. Removing todo/ records the end as durably
    // as rewriting it would, and a crash before that only repeats deliveries (at least once). When
    // a bounce is owed the state is written first, so a crash after it is queued repeats nothing.
    const done = pendingOf(todo).length === 0;
    const bounceOwed = todo.envelope.sender !== null && todo.recipients.some((r) => r.state === 'failed');
    if (!done || bounceOwed) {
      try {
        await persist(todo);
      } catch (err) {
        entry.leased = false;
        holdAfterError(entry, now);
        mlog.error({ err }, 'could not record delivery state; the attempt will be repeated');
        throw diskError(err);
      }
    }
    entry.todo = todo;
    entry.leased = false;
    if (!done) schedule(entry);
    for (const r of todo.recipients) {
      if (!outcomes.some((o) => sameAddress(o.recipient, r.address))) continue;
      const fields = { to: formatAddress(r.address), attempts: r.attempts, status: r.lastError?.status, text: r.lastError?.text };
      if (r.state === 'pending') mlog.info({ ...fields, nextAttempt: new Date(r.nextAttempt).toISOString() }, 'deferred');
      else mlog.info(fields, r.state);
    }
    if (done) {
      entry.finishing = true;
      const finishing = () => finish(entry).catch(async (err: unknown) => {
        entry.finishing = false;
        holdAfterError(entry, clock());
        mlog.error({ err }, 'could not finish message; will retry');
        // Keep the outcomes on disk too, so a restart does not deliver again.
        if (!bounceOwed) await persist(todo).catch(() => undefined);
      });
      // With nothing owed, removal is clean-up: the caller need not wait for its directory fsync
      // (close() still does). A crash before it only repeats deliveries, as before.
      if (bounceOwed) await finishing();
      else void serialize(entry, finishing);
    }
  }

  /**
   * An administrator's delete (no bounce) or bounce (5.0.0 for every pending recipient). A message
   * being delivered is doomed and handled when its attempt settles; false when no such message.
   */
  async function doom(id: MessageId, what: 'delete' | 'bounce'): Promise<boolean> {
    const entry = index.get(id);
    if (entry === undefined || entry.finishing) return false;
    entry.doom = what;
    if (entry.leased) return true;
    entry.finishing = true; // from now on due() passes it over
    await serialize(entry, async () => {
      if (index.get(id) !== entry) return;
      if (what === 'delete') {
        await finish(entry, { bounce: false });
        log.warn({ queueId: id }, 'deleted by the administrator');
        return;
      }
      entry.todo = failPending(entry.todo, '5.0.0', 'returned to the sender by the administrator');
      if (entry.todo.envelope.sender !== null) await persist(entry.todo);
      await finish(entry);
      log.warn({ queueId: id }, 'returned to the sender by the administrator');
    });
    return true;
  }

  /**
   * Hold or release, recorded in the todo file so a restart keeps it. A message being delivered
   * finishes its attempt; the hold applies from its next one. A released message is due at once.
   */
  async function setHeld(id: MessageId, held: boolean): Promise<boolean> {
    const entry = index.get(id);
    if (entry === undefined || entry.finishing) return false;
    await serialize(entry, async () => {
      if (index.get(id) !== entry || (entry.todo.held === true) === held) return;
      const { held: _, ...rest } = entry.todo;
      const todo = held ? { ...rest, held: true } : duePending(rest, clock());
      await persist(todo);
      entry.todo = todo;
      entry.holdUntil = 0;
      schedule(entry);
      log.warn({ queueId: id }, held ? 'put on hold by the administrator' : 'released by the administrator');
    });
    if (!held) for (const listener of listeners) listener();
    return index.has(id);
  }

  function view(entry: Entry): QueueEntryView {
    const { todo } = entry;
    return {
      id: todo.id,
      sender: todo.envelope.sender === null ? '' : formatAddress(todo.envelope.sender),
      queuedAt: new Date(todo.queuedAt).toISOString(),
      size: todo.size,
      active: entry.leased,
      warned: todo.warned === true,
      held: todo.held === true,
      recipients: todo.recipients.map((r) => ({
        address: formatAddress(r.address), state: r.state, attempts: r.attempts,
        nextAttempt: new Date(r.nextAttempt).toISOString(), lastError: r.lastError,
      })),
    };
  }

  const queue: DiskQueue = {
    accept,

    async due(now: Date, limit: number): Promise<QueuedMessage[]> {
      const t = now.getTime();
      if (t - dueBuiltAt >= REBUILD_DUE_MS) {
        dueHeap.clear();
        for (const entry of index.values()) schedule(entry);
        dueBuiltAt = t;
      }
      const out: QueuedMessage[] = [];
      while (out.length < limit && !closed) {
        const item = dueHeap.popDue(t);
        if (item === null) break;
        const entry = index.get(item.id);
        // A stale item (leased, finishing, held, gone, or rescheduled later, which pushed its own item): dropped.
        if (entry === undefined || readyAt(entry) > t) continue;
        const pending = pendingOf(entry.todo);
        if (pending.length === 0) {
          void startFinish(entry); // a bounce that failed earlier, or state found at start-up
          continue;
        }
        entry.leased = true;
        const ready = pending.filter((r) => r.nextAttempt <= t);
        const { todo } = entry;
        out.push({
          id: todo.id, envelope: todo.envelope, pending: ready.map((r) => r.address),
          attempts: Math.max(...ready.map((r) => r.attempts)), queuedAt: new Date(todo.queuedAt), size: todo.size,
        });
      }
      return out;
    },

    open(id: MessageId): Readable {
      if (!isMessageId(id)) throw new Error(`not a queue id: ${JSON.stringify(id)}`);
      const top = topOf(id);
      if (top === '') return createReadStream(messPath(id));
      const path = messPath(id);
      return Readable.from((async function* () {
        yield Buffer.from(top);
        yield* createReadStream(path) as AsyncIterable<Buffer>;
      })(), { objectMode: false });
    },

    async read(id: MessageId): Promise<Buffer> {
      if (!isMessageId(id)) throw new Error(`not a queue id: ${JSON.stringify(id)}`);
      const top = topOf(id);
      const stored = await readFile(messPath(id));
      return top === '' ? stored : Buffer.concat([Buffer.from(top), stored]);
    },

    async settle(id: MessageId, outcomes: readonly Outcome[]): Promise<void> {
      const entry = index.get(id);
      if (entry === undefined) throw new Error(`settle: no queued message ${id}`);
      await serialize(entry, () => settleOne(entry, outcomes));
    },

    onAccepted(listener: () => void): void {
      listeners.push(listener);
    },

    list(): QueueEntryView[] {
      return [...index.values()].map(view);
    },

    show(id: MessageId): QueueEntryView | null {
      const entry = index.get(id);
      return entry === undefined ? null : view(entry);
    },

    flush(id?: MessageId): number {
      const now = clock();
      let kicked = 0;
      for (const entry of id === undefined ? index.values() : [index.get(id)].filter((e): e is Entry => e !== undefined)) {
        if (entry.finishing || entry.todo.held === true || pendingOf(entry.todo).length === 0) continue;
        entry.todo = duePending(entry.todo, now);
        entry.holdUntil = 0;
        schedule(entry);
        kicked++;
      }
      if (kicked > 0) for (const listener of listeners) listener();
      return kicked;
    },

    async remove(id: MessageId): Promise<boolean> {
      return doom(id, 'delete');
    },

    async bounce(id: MessageId): Promise<boolean> {
      return doom(id, 'bounce');
    },

    hold: (id: MessageId) => setHeld(id, true),
    release: (id: MessageId) => setHeld(id, false),

    async close(): Promise<void> {
      closed = true;
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },

    stats: () => ({ accepted, dirSyncs: messSync.count + todoSync.count }),
  };

  for (const todo of await recover(dirs, log)) {
    index.set(todo.id, { todo, leased: false, holdUntil: 0, finishing: false, chain: Promise.resolve(), doom: null });
  }
  for (const entry of index.values()) if (pendingOf(entry.todo).length === 0) void startFinish(entry);
  return queue;
}

/** unlink that treats a missing file as done. */
async function removeFile(file: string): Promise<void> {
  await unlink(file).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
}
