// The remote delivery agent: one message to the recipients that share a next hop, over a cached
// connection when one is idle, trying the hop's addresses in order, within a total and a per-
// destination concurrency limit. Every reply becomes a per-recipient Outcome; the queue decides
// about retries and bounces.
import type { Readable } from 'node:stream';
import { domainToASCII } from 'node:url';
import { type Address, formatAddress, type MailError, type Outcome, permanent, temporary } from '../mail.ts';
import type { Endpoint, NextHop } from './mx.ts';
import { Semaphore } from './semaphore.ts';
import { ConnectionError, type Extensions, SmtpClient, type SmtpReply, type TransactionReplies } from './smtp-client.ts';

export interface SmtpAgentOptions {
  readonly helo: string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly tls: 'opportunistic' | 'none';
  /** Transactions at once, all destinations together (qmail's concurrencyremote). */
  readonly concurrency: number;
  /** Transactions at once towards one destination (Postfix's default_destination_concurrency_limit). */
  readonly perDestination: number;
  /** How long an idle connection is kept for reuse, ms (Postfix's smtp_connection_cache_time_limit). */
  readonly idleMs: number;
  /** Transactions per connection before it is closed (0: no limit). */
  readonly maxReuse: number;
}

export interface SmtpJob {
  /** The concurrency key: the recipient domain, the cluster node or the smarthost. */
  readonly destination: string;
  readonly hop: NextHop;
  readonly sender: Address | null;
  readonly recipients: readonly Address[];
  readonly size: number;
  readonly eightBit: boolean;
  readonly body: () => Readable;
  readonly auth?: { readonly user: string; readonly password: string } | null;
}

export interface SmtpAgent {
  deliver(job: SmtpJob): Promise<Outcome[]>;
  /** Connections opened since start (for the bench's connections-per-message figure). */
  stats(): { connections: number; reused: number };
  close(): Promise<void>;
}

export function createSmtpAgent(options: SmtpAgentOptions): SmtpAgent {
  const total = new Semaphore(options.concurrency);
  const perDestination = new Map<string, Semaphore>();
  const idle = new Map<string, { client: SmtpClient; timer: NodeJS.Timeout }[]>();
  let connections = 0;
  let reused = 0;
  let closed = false;

  function endpointKey(e: Endpoint, job: SmtpJob): string {
    return `${e.address}|${e.port}|${job.auth?.user ?? ''}`;
  }

  function takeIdle(key: string): SmtpClient | null {
    const list = idle.get(key);
    while (list !== undefined && list.length > 0) {
      const { client, timer } = list.pop()!;
      clearTimeout(timer);
      if (client.usable) return client;
    }
    return null;
  }

  async function release(key: string, client: SmtpClient): Promise<void> {
    if (closed || (options.maxReuse > 0 && client.used >= options.maxReuse) || options.idleMs <= 0 || !(await client.reset())) {
      void client.quit();
      return;
    }
    const list = idle.get(key) ?? [];
    idle.set(key, list);
    const entry = {
      client,
      timer: setTimeout(() => {
        const at = list.indexOf(entry);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0 && idle.get(key) === list) idle.delete(key);
        void client.quit();
      }, options.idleMs),
    };
    entry.timer.unref();
    list.push(entry);
  }

  async function connect(endpoint: Endpoint, job: SmtpJob): Promise<SmtpClient> {
    connections++;
    return SmtpClient.open({
      host: endpoint.address, port: endpoint.port, helo: options.helo, serverName: endpoint.name,
      connectTimeoutMs: options.connectTimeoutMs, timeoutMs: options.timeoutMs, tls: options.tls, auth: job.auth ?? null,
    });
  }

  async function attempt(job: SmtpJob): Promise<Outcome[]> {
    let last = 'no address to try';
    for (const endpoint of job.hop.endpoints) {
      const key = endpointKey(endpoint, job);
      // A cached connection may have been closed by the server meanwhile: then one fresh try.
      for (let fresh = 0; fresh < 2; fresh++) {
        let client = fresh === 0 ? takeIdle(key) : null;
        const wasIdle = client !== null;
        try {
          client ??= await connect(endpoint, job);
          if (wasIdle) reused++;
        } catch (err) {
          last = err instanceof ConnectionError ? err.message : String(err);
          break;
        }
        const envelope = wireEnvelope(job, client.extensions.smtpUtf8);
        const refusal = capabilityRefusal(client.extensions, job, envelope === null);
        if (refusal !== null) {
          void release(key, client);
          return job.recipients.map((recipient) => ({ recipient, ok: false as const, error: refusal }));
        }
        let replies: TransactionReplies;
        try {
          // envelope is null only when the server lacks SMTPUTF8, which capabilityRefusal refused above.
          replies = await client.send({ ...envelope!, size: job.size, eightBit: job.eightBit, body: job.body });
        } catch (err) {
          client.destroy();
          last = `${client.remote}: ${err instanceof ConnectionError ? err.message : String(err)}`;
          if (wasIdle && err instanceof ConnectionError) continue;
          break;
        }
        // Back in the cache (after any RSET) before the destination slot is freed, so the next job finds it.
        await release(key, client);
        return outcomesOf(job.recipients, replies, client.remote);
      }
    }
    const error = temporary('4.4.1', `could not deliver to any host for ${job.destination}: ${last}`);
    return job.recipients.map((recipient) => ({ recipient, ok: false as const, error }));
  }

  return {
    async deliver(job) {
      let gate = perDestination.get(job.destination);
      if (gate === undefined) {
        gate = new Semaphore(options.perDestination);
        perDestination.set(job.destination, gate);
      }
      const destinationGate = gate;
      await destinationGate.acquire();
      try {
        await total.acquire();
        try {
          return await attempt(job);
        } finally {
          total.release();
        }
      } finally {
        destinationGate.release();
        if (destinationGate.idle) perDestination.delete(job.destination);
      }
    },
    stats: () => ({ connections, reused }),
    async close() {
      closed = true;
      const all = [...idle.values()].flat();
      idle.clear();
      await Promise.all(all.map(({ client, timer }) => {
        clearTimeout(timer);
        return client.quit();
      }));
    },
  };
}

/**
 * A message this server cannot take as it is: refused here rather than mangled (RFC 6152, 6531,
 * 1870). `needsSmtpUtf8`: an address can only be sent with SMTPUTF8 (see wireEnvelope). Pure.
 */
export function capabilityRefusal(ext: Extensions, job: Pick<SmtpJob, 'eightBit' | 'size'>, needsSmtpUtf8: boolean): MailError | null {
  if (needsSmtpUtf8 && !ext.smtpUtf8) return permanent('5.6.7', 'the receiving server does not support SMTPUTF8, needed for this address');
  if (job.eightBit && !ext.eightBitMime) return permanent('5.6.3', 'the message has 8-bit content and the receiving server does not support 8BITMIME');
  if (ext.size !== null && ext.size > 0 && job.size > ext.size) return permanent('5.3.4', `message size ${job.size} exceeds the receiving server's limit of ${ext.size}`);
  return null;
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * MAIL FROM and RCPT TO as sent to a server, and whether they go with SMTPUTF8. All ASCII: as
 * they are. Otherwise, to a server that offers SMTPUTF8: as they are, with it. To one that does
 * not: each internationalized domain as its A-labels ("bücher.example" → "xn--bcher-kva.example",
 * RFC 5890), as Postfix does; null when that cannot do (a local part that is not ASCII, or a domain
 * with no A-label form), and only SMTPUTF8 could carry the address. Pure.
 */
export function wireEnvelope(job: Pick<SmtpJob, 'sender' | 'recipients'>, serverSmtpUtf8: boolean): { sender: string; recipients: string[]; smtpUtf8: boolean } | null {
  const addresses = job.sender === null ? job.recipients : [job.sender, ...job.recipients];
  const ascii = !addresses.some((a) => NON_ASCII.test(a.local) || NON_ASCII.test(a.domain));
  if (ascii || serverSmtpUtf8) {
    return { sender: job.sender === null ? '' : formatAddress(job.sender), recipients: job.recipients.map(formatAddress), smtpUtf8: !ascii };
  }
  const aLabels = (a: Address): string | null => {
    if (NON_ASCII.test(a.local)) return null;
    const domain = NON_ASCII.test(a.domain) ? domainToASCII(a.domain) : a.domain;
    return domain === '' ? null : formatAddress({ local: a.local, domain });
  };
  const sender = job.sender === null ? '' : aLabels(job.sender);
  const recipients = job.recipients.map(aLabels);
  if (sender === null || recipients.includes(null)) return null;
  return { sender, recipients: recipients as string[], smtpUtf8: false };
}

/** Each recipient's outcome from the server's replies. Pure. */
export function outcomesOf(recipients: readonly Address[], replies: TransactionReplies, remote: string): Outcome[] {
  if (replies.mail.code !== 250) {
    const error = replyError(replies.mail, remote, 'MAIL FROM');
    return recipients.map((recipient) => ({ recipient, ok: false as const, error }));
  }
  return recipients.map((recipient, i): Outcome => {
    const rcpt = replies.rcpt[i];
    if (rcpt === undefined) return { recipient, ok: false, error: temporary('4.4.2', `${remote}: no reply to RCPT TO`) };
    if (rcpt.code !== 250 && rcpt.code !== 251) return { recipient, ok: false, error: replyError(rcpt, remote, 'RCPT TO') };
    if (replies.data === null) return { recipient, ok: false, error: temporary('4.4.2', `${remote}: DATA was not sent`) };
    if (replies.data.code !== 250) return { recipient, ok: false, error: replyError(replies.data, remote, 'end of DATA') };
    return { recipient, ok: true };
  });
}

/** A remote reply as a MailError that keeps the remote's words for the bounce. Pure. */
export function replyError(reply: SmtpReply, remote: string, stage: string): MailError {
  const permanentReply = reply.code >= 500 && reply.code < 600;
  const status = reply.status ?? (permanentReply ? '5.0.0' : '4.0.0');
  const text = `${remote} said: ${reply.code} ${reply.status === null ? '' : `${reply.status} `}${reply.text} (in reply to ${stage})`;
  return permanentReply ? permanent(status, text, undefined, reply.code) : temporary(status, text, undefined, reply.code >= 400 && reply.code < 500 ? reply.code : 451);
}
