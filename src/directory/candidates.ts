// The candidate addresses tried for one recipient, in order (directory-model §2.3): qmail-ldap's
// dash-extension catch-alls or Postfix's delimiter and @domain forms. Pure; no LDAP here.

export type ResolutionMode = 'qmail' | 'postfix';

export interface CandidateRules {
  readonly mode: ResolutionMode;
  readonly dashExt: boolean;
  readonly dashExtLevels: number;
  readonly catchall: string;
  readonly recipientDelimiter: string;
}

export interface Candidate {
  /** The key searched for, "local@domain" or "@domain". */
  readonly key: string;
  /** qmail EXT for a hit on this candidate; null for the exact address. */
  readonly extension: string | null;
}

/** `local` and `domain` must already be normalised (lower case, aliases applied). */
export function candidates(local: string, domain: string, rules: CandidateRules): Candidate[] {
  const list = rules.mode === 'postfix' ? postfixCandidates(local, domain, rules) : qmailCandidates(local, domain, rules);
  const seen = new Set<string>();
  return list.filter((c) => (seen.has(c.key) ? false : (seen.add(c.key), true)));
}

/**
 * qmail-ldap: the exact address; with dashExt, each prefix cut at a "-" (longest first, at most
 * `dashExtLevels` components considered) followed by "-catchall"; then catchall@domain.
 */
function qmailCandidates(local: string, domain: string, rules: CandidateRules): Candidate[] {
  const out: Candidate[] = [{ key: `${local}@${domain}`, extension: null }];
  if (rules.dashExt) {
    let end = local.length;
    let dashes = 0;
    for (let i = 0; i < local.length; i++) {
      if (local[i] === '-' && ++dashes === rules.dashExtLevels) {
        end = i + 1;
        break;
      }
    }
    for (let i = end - 1; i > 0; i--) {
      if (local[i] !== '-') continue;
      out.push({ key: `${local.slice(0, i)}-${rules.catchall}@${domain}`, extension: local.slice(i + 1) });
    }
  }
  out.push({ key: `${rules.catchall}@${domain}`, extension: local });
  return out;
}

/** Postfix virtual(5): user+ext@domain, then user@domain, then @domain. */
function postfixCandidates(local: string, domain: string, rules: CandidateRules): Candidate[] {
  const out: Candidate[] = [{ key: `${local}@${domain}`, extension: null }];
  let cut = -1;
  for (let i = 0; i < local.length; i++) {
    if (rules.recipientDelimiter.includes(local[i]!)) {
      cut = i;
      break;
    }
  }
  if (cut > 0) out.push({ key: `${local.slice(0, cut)}@${domain}`, extension: local.slice(cut + 1) });
  out.push({ key: `@${domain}`, extension: local });
  return out;
}
