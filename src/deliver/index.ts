// Stage 5: the delivery loop. Takes due messages from the queue, asks the directory about each
// pending recipient, follows the route's plan with the Maildir agent (or re-queues forwards),
// and reports outcomes to the queue. Agents report; the queue decides about retries and bounces.
import { dirname } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Config } from '../config.ts';
import type { Directory } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import { type Address, asMailError, formatAddress, type Outcome, parseAddress, permanent, temporary } from '../mail.ts';
import type { Queue, QueuedMessage } from '../queue/types.ts';
import { planDelivery, type Plan } from '../route/plan.ts';
import { headerValues, headerValuesOf } from './headers.ts';
import type { DeliverToMaildir } from './types.ts';

export interface Runner {
  /** Stop taking new work and wait for the attempts in flight. */
  stop(): Promise<void>;
}

export interface DeliveryDeps {
  queue: Queue;
  directory: Directory;
  deliverToMaildir: DeliverToMaildir;
  /** Removes old debris from a Maildir's tmp/; run once per Maildir after the first delivery there. */
  sweepTmp?: (maildir: string) => Promise<number>;
  log: Logger;
}

/** Messages up to this size are read into memory once per attempt instead of opened per recipient. */
const READ_WHOLE_BYTES = 256 * 1024;

/** How often the queue is asked for retries that came due, besides the wake-up on every accept. */
const POLL_MS = 1000;

export function startDelivery(config: Config, deps: DeliveryDeps): Runner {
  const log = deps.log.child({ component: 'deliver' });
  const local = new Set(config.localDomains);
  const limit = config.delivery.concurrencyLocal;
  const inFlight = new Set<Promise<void>>();
  /** Maildirs whose tmp/ was swept since start (cleared when large; a second sweep is harmless). */
  const swept = new Set<string>();
  let stopped = false;
  let scanning = false;
  let again = false;

  async function scan(): Promise<void> {
    if (scanning) {
      again = true;
      return;
    }
    scanning = true;
    try {
      do {
        again = false;
        while (!stopped && inFlight.size < limit) {
          const batch = await deps.queue.due(new Date(), limit - inFlight.size);
          if (batch.length === 0) break;
          for (const message of batch) {
            const attempt = deliverMessage(message).catch((err: unknown) => log.error({ queueId: message.id, err: (err as Error).message }, 'delivery attempt failed'));
            inFlight.add(attempt);
            void attempt.finally(() => {
              inFlight.delete(attempt);
              if (!stopped) void scan();
            });
          }
        }
      } while (again && !stopped);
    } finally {
      scanning = false;
    }
  }

  async function deliverMessage(message: QueuedMessage): Promise<void> {
    // A small message is read once, for the loop check and every recipient; a large one is streamed.
    let whole: Buffer | null = null;
    let fields: Map<string, string[]>;
    try {
      whole = message.size <= READ_WHOLE_BYTES ? Buffer.concat(await deps.queue.open(message.id).toArray() as Buffer[]) : null;
      fields = whole !== null ? headerValuesOf(whole, ['delivered-to']) : await headerValues(deps.queue.open(message.id), ['delivered-to']);
    } catch (err) {
      // The stored message cannot be read (EIO, EMFILE …): every recipient waits for the next try.
      const error = temporary('4.3.0', 'queued message unreadable, try again later', err);
      log.error({ queueId: message.id, err: (err as Error).message }, 'cannot read the queued message');
      await deps.queue.settle(message.id, message.pending.map((recipient) => ({ recipient, ok: false as const, error })));
      return;
    }
    const deliveredTo = new Set(fields.get('delivered-to')!.map((v) => v.toLowerCase()));
    const body = (): Readable => (whole !== null ? Readable.from([whole]) : deps.queue.open(message.id));
    const outcomes: Outcome[] = [];
    for (const recipient of message.pending) {
      outcomes.push(await deliverOne(message, recipient, deliveredTo, body));
    }
    await deps.queue.settle(message.id, outcomes);
  }

  async function deliverOne(message: QueuedMessage, recipient: Address, deliveredTo: ReadonlySet<string>, body: () => Readable): Promise<Outcome> {
    const rcpt = formatAddress(recipient);
    try {
      if (!local.has(recipient.domain)) throw temporary('4.4.0', 'remote delivery is not available yet');
      const plans = planDelivery(await deps.directory.resolveRecipient(recipient));
      for (const plan of plans) await follow(plan, message, recipient, deliveredTo, body);
      log.info({ queueId: message.id, recipient: rcpt, plans: plans.map((p) => p.to) }, 'delivered');
      return { recipient, ok: true };
    } catch (err) {
      const error = asMailError(err);
      log.info({ queueId: message.id, recipient: rcpt, status: error.status, kind: error.kind, reason: error.message }, error.temporary ? 'deferred' : 'failed');
      return { recipient, ok: false, error };
    }
  }

  async function follow(plan: Plan, message: QueuedMessage, recipient: Address, deliveredTo: ReadonlySet<string>, body: () => Readable): Promise<void> {
    const rcpt = formatAddress(recipient).toLowerCase();
    switch (plan.to) {
      case 'fail':
        throw plan.error;
      case 'drop':
        log.warn({ queueId: message.id, recipient: rcpt, reason: plan.reason }, 'message accepted and dropped');
        return;
      case 'smtp':
        throw temporary('4.4.0', `delivery to cluster node ${plan.host} is not available yet`);
      case 'maildir': {
        if (deliveredTo.has(rcpt)) throw permanent('5.4.6', `mail loop: already delivered to ${rcpt}`);
        if (plan.sizeMax !== null && message.size > plan.sizeMax) throw permanent('5.2.3', 'message too large for recipient');
        const sender = message.envelope.sender === null ? '' : formatAddress(message.envelope.sender);
        const { file } = await deps.deliverToMaildir({
          maildir: plan.maildir, base: config.mailboxes, quota: plan.quota, size: message.size,
          header: `Return-Path: <${sender}>\nDelivered-To: ${rcpt}\n`,
        }, body());
        sweepOnce(dirname(dirname(file)));
        return;
      }
      case 'forward': {
        if (deliveredTo.has(rcpt)) throw permanent('5.4.6', `mail loop: already forwarded for ${rcpt}`);
        const targets = plan.recipients.flatMap((text) => {
          try {
            const target = parseAddress(text);
            return formatAddress(target).toLowerCase() === rcpt ? [] : [target];
          } catch {
            log.warn({ queueId: message.id, recipient: rcpt, target: text }, 'unusable forwarding address skipped');
            return [];
          }
        });
        if (targets.length === 0) return;
        // qmail-local style: a new message, original envelope sender, our Delivered-To on top.
        const id = await deps.queue.accept(
          { sender: message.envelope.sender, recipients: targets, client: message.envelope.client, receivedAt: new Date() },
          prepend(`Delivered-To: ${rcpt}\r\n`, body()),
        );
        log.info({ queueId: message.id, recipient: rcpt, forwardQueueId: id, targets: targets.length }, 'forwarded');
        return;
      }
    }
  }

  function sweepOnce(maildir: string): void {
    if (deps.sweepTmp === undefined || swept.has(maildir)) return;
    if (swept.size >= 100_000) swept.clear();
    swept.add(maildir);
    deps.sweepTmp(maildir).then((removed) => {
      if (removed > 0) log.info({ maildir, removed }, 'removed interrupted deliveries older than 36 hours from tmp/');
    }, (err: unknown) => log.warn({ maildir, err: (err as Error).message }, 'could not sweep tmp/'));
  }

  const wake = () => {
    if (!stopped) void scan();
  };
  deps.queue.onAccepted(wake);
  const timer = setInterval(wake, POLL_MS);
  timer.unref();
  wake();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}

function prepend(text: string, body: Readable): Readable {
  const out = new PassThrough();
  out.write(text);
  body.once('error', (err) => out.destroy(err));
  body.pipe(out);
  return out;
}
