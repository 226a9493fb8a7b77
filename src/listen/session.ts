// The smtp-server hooks: each SMTP command becomes a Policy or Queue call, and each MailError
// becomes the reply. The only place that answers SMTP on the receiving side; it decides nothing.
// On the submission ports it also logs users in (AUTH) and holds the message for the checks and
// the DKIM signature that need all of it (submit.ts). With content filters on, mail from outside
// is held whole too, for the verdict that must come before the 250 (policy/content.ts), while it
// is also being written to the queue, which commits it only if the verdict lets it.
import { PassThrough, Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.ts';
import type { Resolution } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { type Address, asMailError, type ClientInfo, formatAddress, MailError, parseAddress, permanent, temporary } from '../mail.ts';
import { FieldFilter, withoutFields } from '../deliver/headers.ts';
import type { ContentFilter } from '../policy/content.ts';
import type { Policy } from '../policy/index.ts';
import { mayRelay, trustedNetworks } from '../policy/rules.ts';
import { describeVerdict, final } from '../policy/verdict.ts';
import type { Queue } from '../queue/types.ts';
import { collectMessage, DataHygiene } from './hygiene.ts';
import { receivedOf } from './received.ts';
import { createSubmitHooks, type SubmitDeps } from './submit.ts';

type Callback = (err?: Error | null) => void;

/** What one mail transaction learnt at RCPT time, for the checks after DATA. */
interface Transaction {
  readonly number: number;
  readonly declaredSize: number | null;
  readonly resolutions: Map<string, Resolution | null>;
}

export interface SessionDeps {
  readonly policy: Policy;
  readonly queue: Queue;
  readonly log: Logger;
  /** Present on the submission ports: logins, limits and signing. */
  readonly submit?: SubmitDeps;
  /** Counters for /metrics, labelled with `listener` (smtp, submission, submissions). */
  readonly metrics?: Metrics;
  readonly listener?: string;
  /** Spam, virus and authentication checks after DATA for mail from outside (not trusted networks). */
  readonly content?: ContentFilter | null;
  /** Directory-harvest protection: counts a client's unknown recipients (in Redis when configured). */
  readonly harvest?: { unknownRecipient(ip: string): Promise<number> } | null;
}

/** Fields only this server may write: dropped when a message from outside carries them. */
const OWN_FIELDS = new Set(['x-spam-flag', 'x-spam-score', 'x-spam-status', 'x-ldapmta-quarantine']);

/** RFC 8601 §5: results claiming to be ours, and our spam fields, are not believed from outside. */
function isOwnField(name: string, value: string, hostname: string): boolean {
  return OWN_FIELDS.has(name) || (name === 'authentication-results' && value.split(';')[0]!.trim().toLowerCase() === hostname);
}

/** An error smtp-server sends as "<reply> <status> <text>". */
export function smtpError(err: MailError): Error & { responseCode: number } {
  return Object.assign(new Error(`${err.status} ${err.message}`), { responseCode: err.reply });
}

export function createSessionHooks(config: Config, deps: SessionDeps) {
  const { policy, queue, log, metrics } = deps;
  const listener = deps.listener ?? 'smtp';
  const trusted = trustedNetworks(config.relay.trustedNetworks);
  const ownField = (name: string, value: string) => isOwnField(name, value, config.hostname);
  /** Unknown recipients asked for in each session (directory-harvest protection). */
  const unknownBySession = new WeakMap<SMTPServerSession, number>();
  const transactions = new WeakMap<SMTPServerSession, Transaction>();
  const perIp = new Map<string, number>();
  /** Sessions counted in perIp: smtp-server also calls onClose for connections it refused itself. */
  const counted = new WeakSet<SMTPServerSession>();

  function client(session: SMTPServerSession): ClientInfo {
    return { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '', user: typeof session.user === 'string' ? session.user : null, tls: session.secure };
  }

  function transaction(session: SMTPServerSession): Transaction {
    let t = transactions.get(session);
    if (t === undefined || t.number !== session.transaction) {
      const size = session.envelope.mailFrom && session.envelope.mailFrom.args ? Number(session.envelope.mailFrom.args.SIZE) : NaN;
      t = { number: session.transaction, declaredSize: Number.isFinite(size) ? size : null, resolutions: new Map() };
      transactions.set(session, t);
    }
    return t;
  }

  function fail(callback: Callback, err: unknown, session: SMTPServerSession, what: string, extra: Record<string, unknown> = {}): void {
    const mailError = asMailError(err);
    const fields = { sessionId: session.id, ip: session.remoteAddress, status: mailError.status, ...extra };
    if (mailError === err) log.info(fields, `${what} refused: ${mailError.message}`);
    else log.error({ ...fields, err: (err as Error)?.message }, `${what} failed`);
    metrics?.rejected.inc({ listener, stage: what, status: mailError.status });
    callback(smtpError(mailError));
  }

  function onConnect(session: SMTPServerSession, callback: Callback): void {
    const count = (perIp.get(session.remoteAddress) ?? 0) + 1;
    perIp.set(session.remoteAddress, count);
    counted.add(session);
    metrics?.connections.inc({ listener });
    metrics?.sessions.inc({ listener });
    if (count > config.smtp.maxConnectionsPerIp) {
      log.info({ sessionId: session.id, ip: session.remoteAddress, count }, 'too many connections from one address');
      metrics?.rejected.inc({ listener, stage: 'connect', status: '4.7.0' });
      callback(smtpError(new MailError('temporary', '4.7.0', 'too many connections from your address', { reply: 421 })));
      return;
    }
    callback();
  }

  function onClose(session: SMTPServerSession): void {
    if (!counted.delete(session)) return;
    metrics?.sessions.dec({ listener });
    const count = (perIp.get(session.remoteAddress) ?? 1) - 1;
    if (count <= 0) perIp.delete(session.remoteAddress);
    else perIp.set(session.remoteAddress, count);
  }

  const accepted = () => metrics?.accepted.inc({ listener });
  const submit = deps.submit === undefined ? null : createSubmitHooks(config, { ...deps.submit, queue, log, fail, accepted });

  function onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    let sender: Address | null = null;
    try {
      if (address.address !== '') sender = parseAddress(address.address);
    } catch (err) {
      fail(callback, permanent('5.1.7', 'bad sender address syntax', err, 553), session, 'sender');
      return;
    }
    const submitter = submit === null ? Promise.resolve() : submit.checkSender(session, sender);
    submitter.then(() => policy.checkSender(client(session), sender)).then(() => callback(), (err: unknown) => fail(callback, err, session, 'sender'));
  }

  function onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback): void {
    let recipient: Address;
    try {
      recipient = parseAddress(address.address);
    } catch (err) {
      fail(callback, err, session, 'recipient');
      return;
    }
    const t = transaction(session);
    const from = session.envelope.mailFrom;
    const sender = from === false || from.address === '' ? null : parseAddress(from.address);
    const submitter = submit === null ? Promise.resolve() : submit.checkRecipient(session);
    submitter.then(() => policy.checkRecipient(client(session), sender, recipient, t.declaredSize)).then((accepted) => {
      t.resolutions.set(formatAddress(recipient).toLowerCase(), accepted.resolution);
      callback();
    }, (err: unknown) => refuseRecipient(callback, err, session, formatAddress(recipient)));
  }

  /**
   * A refused recipient. An unknown one (5.1.1) from a client outside trustedNetworks counts
   * towards directory-harvest protection: past filters.harvest.slowAfter in this session each
   * reply waits delayMs; at disconnectAfter in this session, or perIpPerHour from its address
   * across sessions (and nodes, with Redis), the session gets 421 4.7.0 and is closed.
   */
  function refuseRecipient(callback: Callback, err: unknown, session: SMTPServerSession, recipient: string): void {
    const mailError = asMailError(err);
    const h = config.filters.harvest;
    if (deps.harvest == null || mailError.status !== '5.1.1' || mayRelay(session.remoteAddress, null, trusted)) {
      fail(callback, err, session, 'recipient', { recipient });
      return;
    }
    const inSession = (unknownBySession.get(session) ?? 0) + 1;
    unknownBySession.set(session, inSession);
    deps.harvest.unknownRecipient(session.remoteAddress).catch(() => 0).then((byIp) => {
      if (inSession >= h.disconnectAfter || byIp >= h.perIpPerHour) {
        log.warn({ sessionId: session.id, ip: session.remoteAddress, unknownRecipients: inSession, unknownFromIpThisHour: byIp }, 'directory harvesting suspected: session closed');
        fail(callback, temporary('4.7.0', 'too many unknown recipients, closing connection', undefined, 421), session, 'recipient', { recipient });
      } else if (inSession > h.slowAfter) {
        setTimeout(() => fail(callback, err, session, 'recipient', { recipient, unknownRecipients: inSession }), h.delayMs).unref();
      } else {
        fail(callback, err, session, 'recipient', { recipient });
      }
    });
  }

  function onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback & ((err: Error | null, message?: string) => void)): void {
    if (submit !== null) {
      submit.onData(stream, session, callback, { client: client(session), hygiene: new DataHygiene({ maxReceived: config.smtp.maxReceivedHeaders, oversized: () => stream.sizeExceeded, refuseAbove: null }) });
      return;
    }
    if (deps.content && !mayRelay(session.remoteAddress, null, trusted)) {
      filteredData(deps.content, stream, session, callback);
      return;
    }
    const started = Date.now();
    const { envelope, hygiene } = dataStart(stream, session);
    // smtp-server destroys the DATA stream without an error when the client goes away mid-DATA;
    // the queue must still hear of it, or its accept would wait for an end that never comes.
    let out: PassThrough | null = null;
    let failure: Error | null = null;
    const abort = (err: Error): void => {
      failure ??= err;
      out?.destroy(failure);
    };
    hygiene.once('error', abort);
    stream.once('error', abort);
    stream.once('close', () => {
      if (!stream.readableEnded) abort(new MailError('temporary', '4.4.2', 'connection lost during DATA'));
    });
    const body = (queueId: string): Readable => {
      out = new PassThrough();
      if (failure !== null) {
        out.destroy(failure);
        return out;
      }
      out.write(receivedOf(session, config.hostname, queueId, envelope.recipients, envelope.receivedAt));
      stream.pipe(hygiene).pipe(out);
      return out;
    };
    // smtp-server needs the DATA stream read to its end whatever happens to the message.
    const drained = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
    });
    queue.accept(envelope, body).then((queueId) => {
      // Durable now (the queue resolved after fsync and rename): only now may we say 250.
      log.info({ queueId, sessionId: session.id, ip: session.remoteAddress, from: envelope.sender === null ? '<>' : formatAddress(envelope.sender), recipients: envelope.recipients.length, size: stream.byteLength, ms: Date.now() - started }, 'received');
      accepted();
      callback(null, `2.6.0 Ok: queued as ${queueId}`);
    }, async (err: unknown) => {
      // The queue may have stopped reading mid-message (a disk error): unhook the checker so the
      // rest of the client's data drains, and the reply goes out once it has.
      stream.unpipe(hygiene);
      stream.resume();
      await drained;
      fail(callback, err, session, 'message', { size: stream.byteLength });
    });
  }

  /** The envelope of this DATA, and the checker its bytes go through (the recipients' mailSizeMax included). */
  function dataStart(stream: SMTPServerDataStream, session: SMTPServerSession) {
    const t = transaction(session);
    const mailFrom = session.envelope.mailFrom;
    const envelope = {
      sender: mailFrom && mailFrom.address !== '' ? parseAddress(mailFrom.address) : null,
      recipients: session.envelope.rcptTo.map((r) => parseAddress(r.address)),
      client: client(session),
      receivedAt: new Date(),
    };
    const limits = [...t.resolutions.values()].map((r) => (r === null || r.kind === 'unknown' || r.kind === 'reject' ? null : r.sizeMax));
    const refuseAbove = limits.length > 0 && limits.every((l) => l !== null) ? Math.max(...(limits as number[])) : null;
    return { envelope, hygiene: new DataHygiene({ maxReceived: config.smtp.maxReceivedHeaders, oversized: () => stream.sizeExceeded, refuseAbove }) };
  }

  /**
   * The message goes to the queue as it arrives, without the fields only we may write, and into
   * memory for the checks; their verdict decides the commit. Accepted: our Received and the
   * verdict's fields go on top (AcceptOptions.top) and the queue commits, 250 only after the fsync
   * as always. Refused: nothing is queued.
   */
  function filteredData(content: ContentFilter, stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback & ((err: Error | null, message?: string) => void)): void {
    const started = Date.now();
    const { envelope, hygiene } = dataStart(stream, session);
    let verdictText = '';
    let queueId = '';
    const stored = new FieldFilter(ownField);
    stored.on('error', () => undefined); // the queue hears of it; a queue that never read the body need not
    hygiene.on('data', (chunk: Buffer) => stored.write(chunk));
    hygiene.once('end', () => stored.end());
    const checked = collectMessage(stream, hygiene).then(async (raw) => {
      const message = withoutFields(raw, ownField);
      const result = await content.check(message, {
        sender: envelope.sender === null ? null : formatAddress(envelope.sender),
        recipients: envelope.recipients.map(formatAddress), client: envelope.client, ...(queueId === '' ? {} : { queueId }),
      });
      verdictText = describeVerdict(result.verdict);
      metrics?.filterVerdicts.inc({ action: result.verdict.action });
      if (final(result.verdict)) throw result.verdict.error!;
      return { size: message.length, headers: result.headers, score: result.verdict.score };
    });
    checked.catch((err: unknown) => stored.destroy(err as Error));
    const queued = queue.accept(envelope, (id) => {
      queueId = id;
      return stored;
    }, { top: (id) => checked.then((r) => receivedOf(session, config.hostname, id, envelope.recipients, envelope.receivedAt) + r.headers) });
    queued.catch(() => undefined); // answered below, once the client's data has ended
    checked.catch(() => undefined).then(() => Promise.all([queued, checked])).then(([id, { size, score }]) => {
      log.info({
        queueId: id, sessionId: session.id, ip: session.remoteAddress, from: envelope.sender === null ? '<>' : formatAddress(envelope.sender),
        recipients: envelope.recipients.length, size, ms: Date.now() - started, verdict: verdictText, score,
      }, 'received');
      accepted();
      callback(null, `2.6.0 Ok: queued as ${id}`);
    }, (err: unknown) => fail(callback, err, session, 'message', { size: stream.byteLength, ...(verdictText === '' ? {} : { verdict: verdictText }) }));
  }

  return { onConnect, onClose, onMailFrom, onRcptTo, onData, ...(submit === null ? {} : { onAuth: submit.onAuth }) };
}
