// Pure: where one recipient's copy goes, given what the directory says about it (the qmail-ldap
// semantics of deliveryMode, mailHost and forwarding in one place). No I/O, no clock.
import type { Quota, Resolution } from '../directory/types.ts';
import { type MailError, permanent, temporary } from '../mail.ts';

export type Plan =
  | { readonly to: 'maildir'; readonly maildir: string; readonly quota: Quota; readonly sizeMax: number | null }
  | { readonly to: 'forward'; readonly recipients: readonly string[] }
  | { readonly to: 'smtp'; readonly host: string }
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
      return [{ to: 'fail', error: temporary('4.3.0', 'group distribution is not available yet') }];
    case 'mailbox': {
      // The owner re-resolves and applies quota, forwards and replies itself (§4.2).
      if (!resolution.local && resolution.mailHost !== null) return [{ to: 'smtp', host: resolution.mailHost }];
      const plans: Plan[] = [];
      if (resolution.delivery.local) {
        plans.push({ to: 'maildir', maildir: resolution.mailbox, quota: resolution.quota, sizeMax: resolution.sizeMax });
      }
      if (resolution.delivery.forward && resolution.forwards.length > 0) plans.push({ to: 'forward', recipients: resolution.forwards });
      if (plans.length === 0) plans.push({ to: 'drop', reason: 'deliveryMode leaves nothing to do' });
      return plans;
    }
  }
}
