// Stage 2: accept or refuse, during the SMTP conversation. Fetches what the rules need (the
// directory's answer, the mailbox's quota state) and asks rules.ts; throws a MailError for "no".
import type { Config } from '../config.ts';
import type { Directory, Quota, Resolution } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import { type Address, type ClientInfo, formatAddress, MailError, permanent, temporary } from '../mail.ts';
import { dayNumber, isSrs, srsReverse, type SrsKeys } from '../route/srs.ts';
import type { EnvelopeChecks } from './envelope.ts';
import { isLocalDomain, mayRelay, RELAY_DENIED, recipientVerdict, trustedNetworks } from './rules.ts';

export interface RecipientAccepted {
  /** The directory's answer for a local recipient; null for a relayed one. */
  readonly resolution: Resolution | null;
}

export interface Policy {
  checkSender(client: ClientInfo, sender: Address | null): Promise<void>;
  /** `size` is the SIZE= of MAIL FROM when the client gave one. */
  checkRecipient(client: ClientInfo, sender: Address | null, recipient: Address, size: number | null): Promise<RecipientAccepted>;
}

/** "over" when the Maildir cannot take `size` more bytes (Maildir++ quota). */
export type QuotaCheck = (maildir: string, quota: Quota, size: number) => Promise<'ok' | 'over'>;

export interface PolicyDeps {
  directory: Directory;
  quotaCheck: QuotaCheck;
  /** SRS keys, to accept bounces to our rewritten senders; null when SRS is off. */
  srs: SrsKeys | null;
  log: Logger;
  clock?: () => number;
  /** DNS lists and greylisting for clients outside trustedNetworks (filters.*); null when off. */
  envelope?: EnvelopeChecks | null;
}

export function createPolicy(config: Config, deps: PolicyDeps): Policy {
  const local = new Set(config.localDomains);
  const trusted = trustedNetworks(config.relay.trustedNetworks);

  return {
    async checkSender() {
      // Sender checks (SPF, sender ownership after AUTH) come with later issues.
    },

    async checkRecipient(client, sender, recipient, size) {
      const outside = deps.envelope != null && !mayRelay(client.ip, client.user, trusted);
      if (outside) {
        // Cheap first: the client's address on DNS lists (asked once, cached) before any directory work.
        const listed = await deps.envelope!.client(client);
        if (listed.action === 'reject') throw listed.error!;
      }
      if (deps.srs !== null && recipient.domain === deps.srs.domain && isSrs(recipient.local)) {
        // A bounce (or reply) to a sender we rewrote: accepted only with our own valid, fresh hash.
        const reversed = srsReverse(recipient, deps.srs, dayNumber((deps.clock ?? Date.now)()));
        if (!reversed.ok) throw permanent('5.1.1', `no such user here (${reversed.reason})`, undefined, 550);
        return { resolution: null };
      }
      if (!isLocalDomain(recipient.domain, local)) {
        if (!mayRelay(client.ip, client.user, trusted)) throw RELAY_DENIED();
        return { resolution: null };
      }
      const resolution = await deps.directory.resolveRecipient(recipient);
      const refusal = recipientVerdict(resolution, size);
      if (refusal !== null) throw refusal;
      if (resolution.kind === 'group' && !(await deps.directory.mayPost(resolution, sender))) {
        throw permanent('5.7.2', 'only members may post to this list', undefined, 550);
      }
      if (resolution.kind === 'mailbox' && resolution.local && resolution.delivery.local &&
        (resolution.quota.bytes !== null || resolution.quota.count !== null)) {
        // Never 5xx for quota at RCPT: the mailbox may be emptied before the sender retries.
        const state = await deps.quotaCheck(resolution.mailbox, resolution.quota, size ?? 0).catch((err: unknown) => {
          if (err instanceof MailError && err.kind === 'permanent') {
            deps.log.warn({ recipient: formatAddress(recipient), mailbox: resolution.mailbox, status: err.status }, err.message);
            throw err; // the mailbox itself is unusable (a path leading outside the base)
          }
          deps.log.warn({ recipient: formatAddress(recipient), err: (err as Error).message }, 'quota check failed; accepting');
          return 'ok' as const;
        });
        if (state === 'over') throw temporary('4.2.2', 'mailbox full, try again later', undefined, 452);
      }
      // Last: a recipient that would be refused anyway is not greylisted (no triplet stored for it).
      if (outside) await deps.envelope!.greylist(client, sender, recipient, resolution);
      return { resolution };
    },
  };
}
