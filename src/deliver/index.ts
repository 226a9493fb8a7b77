// Stage 5: the delivery loop. Takes due messages from the queue, asks the directory about each
// pending recipient (after turning an SRS address of ours back), follows the route's plan with the
// Maildir agent, re-queues forwards, and hands recipients that share a next hop to the SMTP agent
// in one transaction. Agents report; the queue decides about retries and bounces.
import { dirname } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { Config } from '../config.ts';
import type { Directory } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import { type Address, asMailError, formatAddress, type Outcome, parseAddress, permanent, temporary } from '../mail.ts';
import type { Queue, QueuedMessage } from '../queue/types.ts';
import { type Hop, hopKey, planDelivery, planRemote, type Plan } from '../route/plan.ts';
import { composeReply, REPLY_FIELDS, replyKey, whyNoReply } from '../route/autoreply.ts';
import { dayNumber, isSrs, srsForward, srsReverse, type SrsKeys } from '../route/srs.ts';
import { headerValues, headerValuesOf } from './headers.ts';
import { type HostResolver, type NextHop, ownHostFailure } from './mx.ts';
import { programArgv, runProgram, toLf } from './program.ts';
import { isOverQuota, overQuota } from './quota.ts';
import type { ReplyMemory } from './reply-memory.ts';
import { Semaphore } from './semaphore.ts';
import { countOutcomes, type Metrics } from '../metrics.ts';
import type { SmtpAgent } from './smtp.ts';
import type { DeliverToMaildir } from './types.ts';

export interface Runner {
  /** Stop taking new work and wait for the attempts in flight. */
  stop(): Promise<void>;
}

export interface DeliveryDeps {
  queue: Queue;
  directory: Directory;
  deliverToMaildir: DeliverToMaildir;
  /** The remote agent and the DNS it uses. */
  smtp: SmtpAgent;
  resolver: HostResolver;
  /** SRS keys; null when SRS is off. */
  srs: SrsKeys | null;
  /** Who got an auto-reply lately. */
  replies: ReplyMemory;
  /** The user programs run as; null when programs are off. */
  programs: { uid: number; gid: number } | null;
  /** Removes old debris from a Maildir's tmp/; run once per Maildir after the first delivery there. */
  sweepTmp?: (maildir: string) => Promise<number>;
  log: Logger;
  /** Epoch ms, for SRS day numbers; tests may pass a fake clock. */
  clock?: () => number;
  /** Delivery counters and latencies for /metrics. */
  metrics?: Metrics;
}

/** The trace field a message gets each time it is passed to another cluster node (reference §4.2). */
export const CLUSTER_HOP_FIELD = 'X-LdapMTA-Cluster-Hop';

/** Messages up to this size are read into memory once per attempt instead of opened per recipient. */
const READ_WHOLE_BYTES = 256 * 1024;

/** How often the queue is asked for retries that came due, besides the wake-up on every accept. */
const POLL_MS = 1000;

/** What one attempt at one message knows, shared by its recipients. */
interface Attempt {
  readonly message: QueuedMessage;
  readonly deliveredTo: ReadonlySet<string>;
  readonly clusterHops: readonly string[];
  /** The header fields auto-replies look at. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  readonly body: () => Readable;
  readonly eightBit: () => Promise<boolean>;
}

interface SmtpGroup {
  readonly hop: Hop;
  /** The queued recipient (for the outcome) and the address to give the next hop (after SRS reversal). */
  readonly pairs: { recipient: Address; target: Address }[];
}

export function startDelivery(config: Config, deps: DeliveryDeps): Runner {
  const log = deps.log.child({ component: 'deliver' });
  const clock = deps.clock ?? Date.now;
  const local = new Set(config.localDomains);
  const localGate = new Semaphore(config.delivery.concurrencyLocal);
  const limit = config.delivery.concurrencyLocal + config.delivery.concurrencyRemote;
  const smarthost = parseSmarthost(config.delivery.smarthost);
  const auth = config.delivery.smarthostUser === '' ? null : { user: config.delivery.smarthostUser, password: config.delivery.smarthostPassword };
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
    // A small message is read once, for the loop checks and every recipient; a large one is streamed.
    let whole: Buffer | null = null;
    let fields: Map<string, string[]>;
    const names = ['delivered-to', 'received', CLUSTER_HOP_FIELD.toLowerCase(), 'x-spam-score', 'x-ldapmta-quarantine', ...REPLY_FIELDS];
    try {
      whole = message.size <= READ_WHOLE_BYTES ? await deps.queue.read(message.id) : null;
      fields = whole !== null ? headerValuesOf(whole, names) : await headerValues(deps.queue.open(message.id), names);
    } catch (err) {
      // The stored message cannot be read (EIO, EMFILE …): every recipient waits for the next try.
      const error = temporary('4.3.0', 'queued message unreadable, try again later', err);
      log.error({ queueId: message.id, err: (err as Error).message }, 'cannot read the queued message');
      await settle(message, message.pending.map((recipient) => ({ recipient, ok: false as const, error })), 'none');
      return;
    }
    const body = (): Readable => (whole !== null ? Readable.from([whole]) : deps.queue.open(message.id));
    let eightBit: Promise<boolean> | null = null;
    const attempt: Attempt = {
      message, body, fields,
      deliveredTo: new Set(fields.get('delivered-to')!.map((v) => v.toLowerCase())),
      clusterHops: fields.get(CLUSTER_HOP_FIELD.toLowerCase())!.map((v) => v.toLowerCase()),
      eightBit: () => (eightBit ??= whole !== null ? Promise.resolve(hasEightBit(whole)) : streamHasEightBit(deps.queue.open(message.id))),
    };
    // A message that went round too often (forwards and lists re-queue without SMTP's check): a loop.
    // The limit is the SMTP listener's, plus the Received field it added itself.
    const hops = fields.get('received')!.length + fields.get('delivered-to')!.length;
    if (hops > config.smtp.maxReceivedHeaders + 1) {
      const error = permanent('5.4.6', `mail loop: ${hops} Received and Delivered-To fields`);
      await settle(message, message.pending.map((recipient) => failed(message, recipient, error)), 'none');
      return;
    }
    const outcomes: Outcome[] = [];
    const groups = new Map<string, SmtpGroup>();
    for (const recipient of message.pending) {
      const outcome = await deliverOne(attempt, recipient, groups);
      if (outcome !== null) outcomes.push(outcome);
    }
    const remote = (await Promise.all([...groups.values()].map((group) => sendGroup(attempt, group)))).flat();
    countOutcomes(deps.metrics, outcomes, 'local', message.queuedAt);
    countOutcomes(deps.metrics, remote, 'smtp', message.queuedAt);
    await deps.queue.settle(message.id, [...outcomes, ...remote]);
  }

  async function settle(message: QueuedMessage, outcomes: Outcome[], transport: 'none'): Promise<void> {
    countOutcomes(deps.metrics, outcomes, transport, message.queuedAt);
    await deps.queue.settle(message.id, outcomes);
  }

  /** Local work is done here; a recipient for an SMTP hop joins its group and gets its outcome later (null). */
  async function deliverOne(attempt: Attempt, recipient: Address, groups: Map<string, SmtpGroup>): Promise<Outcome | null> {
    const { message } = attempt;
    const rcpt = formatAddress(recipient);
    try {
      const target = reverseSrs(recipient);
      const plans = local.has(target.domain) ? planDelivery(await deps.directory.resolveRecipient(target)) : [planRemote(target.domain, smarthost)];
      const smtp = plans.find((p) => p.to === 'smtp');
      if (smtp !== undefined) {
        if (smtp.hop.via === 'cluster') checkClusterLoop(attempt, target);
        const key = hopKey(smtp.hop);
        const group = groups.get(key) ?? { hop: smtp.hop, pairs: [] };
        groups.set(key, group);
        group.pairs.push({ recipient, target });
        return null;
      }
      for (const plan of plans) {
        if ((await follow(plan, attempt, recipient)) === 'stop') break;
      }
      log.info({ queueId: message.id, recipient: rcpt, plans: plans.map((p) => p.to) }, 'delivered');
      return { recipient, ok: true };
    } catch (err) {
      return failed(message, recipient, asMailError(err));
    }
  }

  function failed(message: QueuedMessage, recipient: Address, error: ReturnType<typeof asMailError>, relay?: string): Outcome {
    log.info({ queueId: message.id, recipient: formatAddress(recipient), relay, status: error.status, kind: error.kind, reason: error.message }, error.temporary ? 'deferred' : 'failed');
    return { recipient, ok: false, error };
  }

  /** An SRS address of ours stands for the original sender; anything else is itself. */
  function reverseSrs(recipient: Address): Address {
    if (deps.srs === null || recipient.domain !== deps.srs.domain || !isSrs(recipient.local)) return recipient;
    const reversed = srsReverse(recipient, deps.srs, dayNumber(clock()));
    if (!reversed.ok) throw permanent('5.1.1', `invalid SRS address: ${reversed.reason}`);
    return reversed.address;
  }

  function checkClusterLoop(attempt: Attempt, target: Address): void {
    const mark = `${config.hostname} ${formatAddress(target).toLowerCase()}`;
    if (attempt.clusterHops.includes(mark)) throw permanent('5.4.6', `cluster loop: ${config.hostname} already passed this message on for ${formatAddress(target)}`);
    // Each hop adds one field per recipient: the hops are the nodes that passed it on.
    const nodes = new Set(attempt.clusterHops.map((h) => h.split(/\s+/)[0]));
    if (nodes.size >= config.delivery.maxClusterHops) throw permanent('5.4.6', `too many cluster hops (${nodes.size} nodes)`);
  }

  async function nextHop(hop: Hop): Promise<NextHop> {
    switch (hop.via) {
      case 'mx':
        return deps.resolver.mx(hop.domain);
      case 'smarthost':
        return deps.resolver.host(hop.host, hop.port ?? config.delivery.remotePort).catch((err: unknown) => {
          throw ownHostFailure(err, 'smarthost');
        });
      case 'cluster':
        return deps.resolver.host(hop.host, config.delivery.clusterPort ?? config.delivery.remotePort).catch((err: unknown) => {
          throw ownHostFailure(err, 'mailHost of the recipient');
        });
    }
  }

  async function sendGroup(attempt: Attempt, group: SmtpGroup): Promise<Outcome[]> {
    const { message } = attempt;
    const relay = hopKey(group.hop);
    try {
      const hop = await nextHop(group.hop);
      // A copy for another cluster node says who passed it on, for whom (the loop check above).
      const trace = group.hop.via === 'cluster'
        ? group.pairs.map((p) => `${CLUSTER_HOP_FIELD}: ${config.hostname} ${formatAddress(p.target).toLowerCase()}\r\n`).join('')
        : '';
      const results = await deps.smtp.deliver({
        destination: relay, hop,
        sender: message.envelope.sender,
        recipients: group.pairs.map((p) => p.target),
        size: message.size + Buffer.byteLength(trace),
        eightBit: await attempt.eightBit(),
        body: () => (trace === '' ? attempt.body() : prepend(trace, attempt.body())),
        auth: group.hop.via === 'smarthost' ? auth : null,
      });
      return group.pairs.map(({ recipient }, i) => {
        const result = results[i]!;
        if (result.ok) {
          log.info({ queueId: message.id, recipient: formatAddress(recipient), relay, plans: ['smtp'] }, 'delivered');
          return { recipient, ok: true as const };
        }
        return failed(message, recipient, result.error, relay);
      });
    } catch (err) {
      const error = asMailError(err);
      return group.pairs.map(({ recipient }) => failed(message, recipient, error, relay));
    }
  }

  /** Carries out one instruction; 'stop' when a program asked to skip the rest (exit 99). */
  async function follow(plan: Plan, attempt: Attempt, recipient: Address): Promise<'stop' | void> {
    const { message, deliveredTo, body } = attempt;
    const rcpt = formatAddress(recipient).toLowerCase();
    switch (plan.to) {
      case 'fail':
        throw plan.error;
      case 'drop':
        log.warn({ queueId: message.id, recipient: rcpt, reason: plan.reason }, 'message accepted and dropped');
        return;
      case 'smtp':
        throw new Error('an SMTP plan is grouped, never followed'); // deliverOne takes these apart
      case 'group': {
        // One expansion per message: a new message to every member, our Delivered-To and
        // Precedence: bulk on top; failures go to the list's bounce admin when it has one.
        if (deliveredTo.has(rcpt)) throw permanent('5.4.6', `mail loop: list ${rcpt} already expanded this message`);
        const { group } = plan;
        // Moderation is not implemented: a moderated list reached through a forward or another list is not distributed either.
        if (group.senderConfirm || group.moderators.dn.length + group.moderators.rfc822.length > 0) {
          throw permanent('5.7.2', 'this list is moderated and cannot take posts here');
        }
        if (!(await deps.directory.mayPost(group, message.envelope.sender))) throw permanent('5.7.2', 'only members may post to this list');
        const members = (await deps.directory.expandGroup(group)).flatMap((text) => {
          try {
            return [parseAddress(text)];
          } catch {
            log.warn({ queueId: message.id, recipient: rcpt, member: text }, 'unusable member address skipped');
            return [];
          }
        });
        if (members.length === 0) throw permanent('5.2.4', `list ${rcpt} has no members`);
        const admin = group.bounceAdmin.map((a) => { try { return parseAddress(a.trim()); } catch { return null; } }).find((a) => a !== null);
        // Without a bounce admin the original sender stays, rewritten with SRS when copies leave for other domains (as forwards).
        const sender = message.envelope.sender === null ? null : admin ?? forwardSender(message.envelope.sender, members);
        const id = await deps.queue.accept(
          { sender, recipients: members, client: message.envelope.client, receivedAt: new Date() },
          prepend(`Delivered-To: ${rcpt}\r\nPrecedence: bulk\r\n`, body()),
        );
        log.info({ queueId: message.id, recipient: rcpt, expansionQueueId: id, members: members.length }, 'list expanded');
        return;
      }
      case 'program': {
        if (deps.programs === null) {
          log.warn({ queueId: message.id, recipient: rcpt }, 'deliveryProgramPath ignored: programs.enabled is false');
          return;
        }
        const argv = programArgv(plan.line, config.programs.allow);
        if (!Array.isArray(argv)) throw argv;
        const sender = message.envelope.sender === null ? '' : formatAddress(message.envelope.sender);
        const at = rcpt.lastIndexOf('@');
        const { uid, gid } = deps.programs;
        // Programs count against concurrencyLocal, as qmail-local's do.
        const { stop } = await localGate.run(() => runProgram({
          argv, uid, gid, timeoutMs: config.programs.timeoutSeconds * 1000, cwd: '/',
          env: {
            PATH: '/usr/local/bin:/usr/bin:/bin', SENDER: sender, RECIPIENT: rcpt, LOCAL: rcpt.slice(0, at), HOST: rcpt.slice(at + 1),
            HOME: plan.mailbox, EXT: plan.extension ?? '', DTLINE: `Delivered-To: ${rcpt}\n`, RPLINE: `Return-Path: <${sender}>\n`,
          },
        }, body().pipe(toLf())));
        log.info({ queueId: message.id, recipient: rcpt, program: argv[0], stop }, 'program delivered');
        return stop ? 'stop' : undefined;
      }
      case 'reply':
        // An auto-reply never decides the delivery's outcome: its problems are logged only.
        await autoReply(plan, attempt, recipient).catch((err: unknown) =>
          log.warn({ queueId: message.id, recipient: rcpt, err: (err as Error).message }, 'auto-reply not sent'));
        return;
      case 'maildir': {
        if (deliveredTo.has(rcpt)) throw permanent('5.4.6', `mail loop: already delivered to ${rcpt}`);
        if (plan.sizeMax !== null && message.size > plan.sizeMax) throw permanent('5.2.3', 'message too large for recipient');
        const sender = message.envelope.sender === null ? '' : formatAddress(message.envelope.sender);
        const junk = isJunk(attempt.fields, plan.junkScore ?? config.filters.spam.junkScore);
        const { file } = await localGate.run(() => deps.deliverToMaildir({
          maildir: plan.maildir, base: config.mailboxes, quota: plan.quota, size: message.size,
          header: `Return-Path: <${sender}>\nDelivered-To: ${rcpt}\n`, ...(junk ? { folder: 'Junk' } : {}),
        }, body())).catch((err: unknown) => {
          throw isOverQuota(err) ? overQuota(message.queuedAt.getTime(), Date.now(), config.delivery.quotaDeferSeconds) : err;
        });
        if (junk) log.info({ queueId: message.id, recipient: rcpt }, 'filed in Junk');
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
        // qmail-local style: a new message, our Delivered-To on top, the original envelope sender,
        // rewritten with SRS when the copy leaves for another domain so the next hop's SPF passes.
        const sender = forwardSender(message.envelope.sender, targets);
        const id = await deps.queue.accept(
          { sender, recipients: targets, client: message.envelope.client, receivedAt: new Date() },
          prepend(`Delivered-To: ${rcpt}\r\n`, body()),
        );
        log.info({ queueId: message.id, recipient: rcpt, forwardQueueId: id, targets: targets.length, srs: sender !== message.envelope.sender }, 'forwarded');
        return;
      }
    }
  }

  async function autoReply(plan: Extract<Plan, { to: 'reply' }>, attempt: Attempt, recipient: Address): Promise<void> {
    const { message } = attempt;
    const sender = message.envelope.sender;
    const why = whyNoReply({ sender, recipient, addresses: plan.addresses, fields: attempt.fields, onlyWhenAddressed: config.autoreply.onlyWhenAddressed });
    if (why !== null || sender === null) {
      log.debug({ queueId: message.id, recipient: formatAddress(recipient), reason: why }, 'no auto-reply');
      return;
    }
    if (!(await deps.replies.claim(replyKey(plan.dn, sender, plan.text), config.autoreply.periodSeconds * 1000))) {
      log.debug({ queueId: message.id, recipient: formatAddress(recipient) }, 'auto-reply already sent to this sender in the period');
      return;
    }
    const now = new Date(clock());
    const bytes = composeReply({ from: recipient, to: sender, text: plan.text, fields: attempt.fields, hostname: config.hostname, now, unique: `${message.id}.${now.getTime().toString(36)}` });
    const id = await deps.queue.accept({ sender: null, recipients: [sender], client: message.envelope.client, receivedAt: now }, Readable.from([bytes]));
    log.info({ queueId: message.id, recipient: formatAddress(recipient), replyQueueId: id }, 'auto-reply queued');
  }

  function forwardSender(sender: Address | null, targets: readonly Address[]): Address | null {
    if (deps.srs === null || sender === null) return sender;
    if (local.has(sender.domain) || sender.domain === deps.srs.domain) return sender;
    if (targets.every((t) => local.has(t.domain))) return sender;
    return srsForward(sender, deps.srs, dayNumber(clock()));
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

/**
 * Junk for this recipient: the spam score this server put on the message (X-Spam-Score; the same
 * fields from outside were dropped at the MX) at or above the recipient's junk score, or a DMARC
 * quarantine. Pure.
 */
export function isJunk(fields: ReadonlyMap<string, readonly string[]>, junkScore: number): boolean {
  if ((fields.get('x-ldapmta-quarantine') ?? []).length > 0) return true;
  const score = Number.parseFloat(fields.get('x-spam-score')?.[0] ?? '');
  return Number.isFinite(score) && score >= junkScore;
}

/** "host" or "host:port" from delivery.smarthost; null when unset. Pure. */
export function parseSmarthost(text: string): { host: string; port: number | null } | null {
  if (text === '') return null;
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(text);
  if (m === null) return null;
  return { host: m[1]!, port: m[2] === undefined ? null : Number(m[2]) };
}

/** Any byte outside 7-bit ASCII? Pure. */
export function hasEightBit(data: Buffer): boolean {
  return /[\x80-\xff]/.test(data.toString('latin1'));
}

async function streamHasEightBit(stream: Readable): Promise<boolean> {
  try {
    for await (const chunk of stream) {
      if (hasEightBit(chunk as Buffer)) return true;
    }
    return false;
  } finally {
    stream.destroy();
  }
}

function prepend(text: string, body: Readable): Readable {
  const out = new PassThrough();
  out.write(text);
  body.once('error', (err) => out.destroy(err));
  body.pipe(out);
  return out;
}
