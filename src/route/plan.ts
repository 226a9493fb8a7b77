// Pure: where one recipient's copy goes, given what the directory says about it (the qmail-ldap
// semantics of deliveryMode, mailHost and forwarding in one place) or, for a domain that is not
// ours, which next hop takes it. No I/O, no clock.
import type { GroupResolution, Quota, Resolution } from '../directory/types.ts';
import { type MailError, permanent } from '../mail.ts';

/** The next SMTP hop: the domain's MX, the configured smarthost, or another cluster node (mailHost). */
export type Hop =
  | { readonly via: 'mx'; readonly domain: string }
  | { readonly via: 'smarthost'; readonly host: string; readonly port: number | null }
  | { readonly via: 'cluster'; readonly host: string };

export type Plan =
  | { readonly to: 'maildir'; readonly maildir: string; readonly quota: Quota; readonly sizeMax: number | null; readonly junkScore?: number | null }
  | { readonly to: 'forward'; readonly recipients: readonly string[] }
  | { readonly to: 'smtp'; readonly hop: Hop }
  | { readonly to: 'reply'; readonly text: string; readonly dn: string; readonly addresses: readonly string[] }
  | { readonly to: 'group'; readonly group: GroupResolution }
  | { readonly to: 'program'; readonly line: string; readonly mailbox: string; readonly extension: string | null }
  | { readonly to: 'drop'; readonly reason: string }
  | { readonly to: 'fail'; readonly error: MailError };

/** One recipient may need several actions (a mailbox copy and forwards). */
export function planDelivery(resolution: Resolution): Plan[] {
  switch (resolution.kind) {
    case 'unknown':
      return [{ to: 'fail', error: permanent('5.1.1', 'no such user here') }];
    case 'reject':
      return [{ to: 'fail', error: permanent(resolution.status, resolution.reason) }];
    case 'forward':
      return [{ to: 'forward', recipients: resolution.forwards }];
    case 'group':
      // The group runs instead of every other instruction (§3.11), wherever its mailHost points.
      return [{ to: 'group', group: resolution }];
    case 'mailbox': {
      // The owner re-resolves and applies quota, forwards and replies itself (§4.2).
      if (!resolution.local && resolution.mailHost !== null) return [{ to: 'smtp', hop: { via: 'cluster', host: resolution.mailHost } }];
      const plans: Plan[] = [];
      // qmail-ldap runs the auto-responder first; it does not count as a delivery (§3.5).
      if (resolution.delivery.reply && resolution.replyText !== null) {
        plans.push({ to: 'reply', text: resolution.replyText, dn: resolution.dn, addresses: resolution.addresses });
      }
      // Then programs, the mailbox, and the forwards last (qmail-local injects them at the end).
      if (resolution.delivery.program) {
        for (const line of resolution.programs) plans.push({ to: 'program', line, mailbox: resolution.mailbox, extension: resolution.extension });
      }
      if (resolution.delivery.local) {
        plans.push({ to: 'maildir', maildir: resolution.mailbox, quota: resolution.quota, sizeMax: resolution.sizeMax, ...(resolution.junkScore === undefined ? {} : { junkScore: resolution.junkScore }) });
      }
      if (resolution.delivery.forward && resolution.forwards.length > 0) plans.push({ to: 'forward', recipients: resolution.forwards });
      if (!plans.some((p) => p.to !== 'reply')) plans.push({ to: 'drop', reason: 'deliveryMode leaves nothing to do' });
      return plans;
    }
  }
}

/** A recipient in a domain that is not ours: the smarthost when one is set, else the domain's MX. */
export function planRemote(domain: string, smarthost: { host: string; port: number | null } | null): Plan {
  if (smarthost !== null) return { to: 'smtp', hop: { via: 'smarthost', host: smarthost.host, port: smarthost.port } };
  return { to: 'smtp', hop: { via: 'mx', domain } };
}

/** The concurrency and grouping key of a hop: recipients with the same key share one transaction. */
export function hopKey(hop: Hop): string {
  switch (hop.via) {
    case 'mx':
      return `mx:${hop.domain}`;
    case 'smarthost':
      return `smarthost:${hop.host}:${hop.port ?? ''}`;
    case 'cluster':
      return `cluster:${hop.host}`;
  }
}
