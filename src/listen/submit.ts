// The submission side of the SMTP hooks (ports 587 and 465, RFC 6409): AUTH PLAIN/LOGIN against
// the directory with failure delays and lockouts, "authenticate first" (530), the sender and From:
// belonging to the login (553), hourly limits (451), and the whole message held so that a
// Message-ID, a Date and a DKIM signature can be added before it is queued.
import { Readable } from 'node:stream';
import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Config } from '../config.ts';
import { headerValuesOf } from '../deliver/headers.ts';
import type { Directory, LoginResult } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import { type Address, type ClientInfo, formatAddress, parseAddress, permanent, temporary } from '../mail.ts';
import type { DkimSigner } from '../policy/dkim.ts';
import type { Limits } from '../policy/limits.ts';
import { isLoopback } from '../policy/rules.ts';
import { fromRefusal, headerAddresses, missingFields, type Principal, senderRefusal } from '../policy/submission.ts';
import type { Queue } from '../queue/types.ts';
import { collectMessage, type DataHygiene } from './hygiene.ts';
import { receivedOf } from './received.ts';

type Callback = (err?: Error | null) => void;

export interface SubmitDeps {
  readonly authenticate: (login: string, password: string) => Promise<LoginResult>;
  /** For submission.sendAsGroupMembers: the list behind a sender address and its members. */
  readonly directory?: Pick<Directory, 'resolveRecipient' | 'isMember'>;
  readonly limits: Limits;
  readonly dkim: DkimSigner;
}

interface HookDeps extends SubmitDeps {
  readonly queue: Queue;
  readonly log: Logger;
  readonly fail: (callback: Callback, err: unknown, session: SMTPServerSession, what: string, extra?: Record<string, unknown>) => void;
  /** A message was queued (for the metrics). */
  readonly accepted?: () => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSubmitHooks(config: Config, deps: HookDeps) {
  const { limits, log } = deps;
  const principals = new WeakMap<SMTPServerSession, Principal>();

  function principalOf(session: SMTPServerSession): Principal {
    const principal = principals.get(session);
    if (principal === undefined) throw permanent('5.7.0', 'authentication required', undefined, 530);
    return principal;
  }

  async function login(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<Principal> {
    if (!session.secure && !(config.submission.allowPlaintextAuthOnLoopback && isLoopback(session.remoteAddress))) {
      throw permanent('5.7.11', 'encryption required: issue STARTTLS first', undefined, 538);
    }
    const name = auth.username ?? '';
    const password = auth.password ?? '';
    const locked = await limits.lockedFor(session.remoteAddress, name);
    if (locked > 0) throw temporary('4.7.0', `too many failed logins, try again in ${locked} s`, undefined, 454);
    let result: LoginResult;
    try {
      // An empty password is refused inside authenticate, before any LDAP work (an anonymous bind would succeed).
      result = await deps.authenticate(name, password);
    } catch (err) {
      throw temporary('4.7.0', 'the directory is not available, try again later', err, 454);
    }
    if (!result.ok) {
      const delay = await limits.failed(session.remoteAddress, name);
      log.info({ sessionId: session.id, ip: session.remoteAddress, login: name, reason: result.reason, delayMs: delay }, 'authentication failed');
      await sleep(delay);
      throw permanent('5.7.8', 'authentication credentials invalid', undefined, 535);
    }
    return { login: result.login, dn: result.dn, addresses: [...result.addresses, ...(result.sendAs ?? [])].map((a) => a.toLowerCase()) };
  }

  function onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    login(auth, session).then((principal) => {
      principals.set(session, principal);
      log.info({ sessionId: session.id, ip: session.remoteAddress, login: principal.login, method: auth.method, tls: session.secure }, 'authenticated');
      callback(null, { user: principal.login });
    }, (err: unknown) => deps.fail(callback, err, session, 'login', { login: auth.username }));
  }

  async function checkSender(session: SMTPServerSession, sender: Address | null): Promise<void> {
    const principal = principalOf(session);
    const used = await limits.usage(principal.login);
    if (used.messages >= config.limits.messagesPerUserPerHour) {
      throw temporary('4.7.1', `message limit reached (${config.limits.messagesPerUserPerHour} per hour), try again later`, undefined, 451);
    }
    if (config.submission.senderLoginMatch === 'strict') {
      const refusal = senderRefusal(principal, sender);
      if (refusal !== null && !(sender !== null && await sendsAsGroup(session, principal, sender))) throw refusal;
    }
  }

  /** With submission.sendAsGroupMembers: `sender` is a list's address and the principal one of its members. */
  async function sendsAsGroup(session: SMTPServerSession, principal: Principal, sender: Address): Promise<boolean> {
    if (!config.submission.sendAsGroupMembers || deps.directory === undefined) return false;
    const resolution = await deps.directory.resolveRecipient(sender);
    if (resolution.kind !== 'group' || !(await deps.directory.isMember(resolution, principal.dn))) return false;
    // From: may then name the list too, for this session.
    principals.set(session, { ...principal, addresses: [...principal.addresses, formatAddress(sender).toLowerCase()] });
    return true;
  }

  async function checkRecipient(session: SMTPServerSession): Promise<void> {
    const principal = principalOf(session);
    const used = await limits.usage(principal.login);
    if (used.recipients + session.envelope.rcptTo.length + 1 > config.limits.recipientsPerUserPerHour) {
      throw temporary('4.7.1', `recipient limit reached (${config.limits.recipientsPerUserPerHour} per hour), try again later`, undefined, 451);
    }
  }

  /** The whole message, checked, completed and signed, then queued. */
  async function submitMessage(message: Buffer, session: SMTPServerSession, client: ClientInfo): Promise<string> {
    const principal = principalOf(session);
    const fields = headerValuesOf(message, ['from', 'message-id', 'date']);
    if (config.submission.senderLoginMatch === 'strict') {
      const refusal = fromRefusal(principal, fields.get('from')!);
      if (refusal !== null) throw refusal;
    }
    const present = new Set([...fields].filter(([, v]) => v.length > 0).map(([k]) => k));
    const now = new Date();
    const added = missingFields(present, now, `${now.getTime().toString(36)}.${session.id}`, config.hostname);
    const completed = added === '' ? message : Buffer.concat([Buffer.from(added), message]);
    const mailFrom = session.envelope.mailFrom;
    const sender = mailFrom && mailFrom.address !== '' ? parseAddress(mailFrom.address) : null;
    const fromDomain = headerAddresses(fields.get('from')!)[0]?.split('@').pop() ?? sender?.domain ?? '';
    const signature = fromDomain === '' ? '' : await deps.dkim.sign(completed, fromDomain).catch((err: unknown) => {
      throw temporary('4.3.0', 'could not sign the message, try again later', err);
    });
    const envelope = { sender, recipients: session.envelope.rcptTo.map((r) => parseAddress(r.address)), client, receivedAt: now };
    const queueId = await deps.queue.accept(envelope, (id) => Readable.from([
      Buffer.from(receivedOf(session, config.hostname, id, envelope.recipients, now) + signature), completed,
    ]));
    await limits.sent(principal.login, envelope.recipients.length);
    log.info({ queueId, sessionId: session.id, login: principal.login, from: sender === null ? '<>' : formatAddress(sender), recipients: envelope.recipients.length, size: completed.length, signed: signature !== '' ? fromDomain : null, added: added === '' ? null : added.split(':')[0] }, 'submitted');
    return queueId;
  }

  function onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback & ((err: Error | null, message?: string) => void), ctx: { client: ClientInfo; hygiene: DataHygiene }): void {
    collectMessage(stream, ctx.hygiene).then((message) => submitMessage(message, session, ctx.client)).then(
      (queueId) => {
        deps.accepted?.();
        callback(null, `2.6.0 Ok: queued as ${queueId}`);
      },
      (err: unknown) => deps.fail(callback, err, session, 'message', { size: stream.byteLength }),
    );
  }

  return { onAuth, checkSender, checkRecipient, onData };
}
