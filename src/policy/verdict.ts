// Owns: the filter verdict, as pure functions. Every check contributes a Reason; the verdict says
// what happens to the message (accept, tag, junk, tempfail, reject) and why, in one typed value
// that is logged on one line and counted. Checks run cheap-first and the caller stops once a
// verdict is final (a reject or a tempfail); nothing here does I/O.
import { MailError, permanent, temporary } from '../mail.ts';
import type { SpamResult, VirusResult } from './scan/types.ts';

export type Action = 'accept' | 'tag' | 'junk' | 'tempfail' | 'reject';

export interface Reason {
  /** Which check: dnsbl, dnswl, greylist, harvest, spf, dkim, dmarc, clamav, spam … */
  readonly check: string;
  /** What it found, short: "listed (127.0.0.2)", "pass", "fail p=reject", "Eicar-Test-Signature FOUND". */
  readonly result: string;
  readonly score?: number;
}

export interface Verdict {
  readonly action: Action;
  /** The spam score (the scanner's, when it ran). */
  readonly score: number;
  readonly reasons: readonly Reason[];
  /** What the client is told for tempfail and reject. */
  readonly error?: MailError;
}

/** The most severe action wins; reasons add up. Pure. */
export function combine(a: Verdict, b: Verdict): Verdict {
  const rank: Record<Action, number> = { accept: 0, tag: 1, junk: 2, tempfail: 3, reject: 4 };
  const worse = rank[b.action] > rank[a.action] ? b : a;
  return { action: worse.action, score: Math.max(a.score, b.score), reasons: [...a.reasons, ...b.reasons], ...(worse.error === undefined ? {} : { error: worse.error }) };
}

export const ACCEPT: Verdict = { action: 'accept', score: 0, reasons: [] };

export function final(verdict: Verdict): boolean {
  return verdict.action === 'reject' || verdict.action === 'tempfail';
}

/** Score inputs that are not DNS lists: the client's reverse DNS and its HELO name. */
const LOCAL_INPUTS = new Set(['fcrdns', 'helo']);

/**
 * The client's score: the weights of the DNS lists that name it (and of FCrDNS and HELO problems,
 * given as pseudo-zones "fcrdns" and "helo") add up; at rejectScore, 554 5.7.1 naming them. Pure.
 */
export function dnsListVerdict(listings: readonly { zone: string; weight: number; codes: readonly string[] }[], rejectScore: number): Verdict {
  const score = listings.reduce((sum, l) => sum + l.weight, 0);
  const reasons = listings.map((l) => ({
    check: LOCAL_INPUTS.has(l.zone) ? l.zone : l.weight < 0 ? 'dnswl' : 'dnsbl',
    result: LOCAL_INPUTS.has(l.zone) ? l.codes.join(' ') : `${l.zone} (${l.codes.join(' ')})`, score: l.weight,
  }));
  if (score < rejectScore || listings.every((l) => l.weight <= 0)) return { action: 'accept', score, reasons };
  const blocking = listings.filter((l) => l.weight > 0).map((l) => (l.zone === 'fcrdns' ? 'reverse DNS not confirmed' : l.zone === 'helo' ? `HELO ${l.codes.join(' ')}` : `listed at ${l.zone}`));
  return { action: 'reject', score, reasons, error: permanent('5.7.1', `client refused: ${[...new Set(blocking)].join(', ')}`, undefined, 554) };
}

export interface ContentThresholds {
  readonly tagScore: number;
  readonly junkScore: number;
  readonly rejectScore: number;
}

export interface ContentFindings {
  /** Absent when no virus scanner ran; an error when it could not answer. */
  readonly virus?: VirusResult | MailError;
  readonly virusFailOpen?: boolean;
  readonly spam?: SpamResult | MailError;
  readonly spamFailOpen?: boolean;
  /** DMARC's result and the domain's policy, when it was evaluated. */
  readonly dmarc?: { readonly result: string; readonly policy: string | null; readonly domain: string };
  readonly dmarcReject?: boolean;
  readonly dmarcQuarantine?: 'junk' | 'tag';
}

/**
 * After DATA, cheap-first and final once decided: a virus (554 5.7.1 with its name), a scanner
 * that could not answer (451 4.7.1, or tag when the admin chose fail-open), DMARC p=reject
 * (550 5.7.1 when honoured), then the spam score against reject, junk and tag. Pure.
 */
export function contentVerdict(findings: ContentFindings, thresholds: ContentThresholds): Verdict {
  const reasons: Reason[] = [];
  let action: Action = 'accept';
  const raise = (next: Action) => {
    const rank: Record<Action, number> = { accept: 0, tag: 1, junk: 2, tempfail: 3, reject: 4 };
    if (rank[next] > rank[action]) action = next;
  };
  const { virus, spam, dmarc } = findings;
  if (virus instanceof MailError) {
    reasons.push({ check: 'clamav', result: `unavailable: ${virus.message}` });
    if (!findings.virusFailOpen) return { action: 'tempfail', score: 0, reasons, error: temporary('4.7.1', 'virus scanner unavailable, try again later') };
    raise('tag');
  } else if (virus?.infected === true) {
    reasons.push({ check: 'clamav', result: `${virus.signature} FOUND` });
    return { action: 'reject', score: 0, reasons, error: permanent('5.7.1', `message contains a virus (${virus.signature})`, undefined, 554) };
  } else if (virus !== undefined) {
    reasons.push({ check: 'clamav', result: 'clean' });
  }
  if (dmarc !== undefined) {
    reasons.push({ check: 'dmarc', result: `${dmarc.result}${dmarc.policy === null ? '' : ` p=${dmarc.policy}`} (${dmarc.domain})` });
    if (dmarc.result === 'fail' && dmarc.policy === 'reject' && findings.dmarcReject !== false) {
      return { action: 'reject', score: 0, reasons, error: permanent('5.7.1', `DMARC policy of ${dmarc.domain} says reject`, undefined, 550) };
    }
    if (dmarc.result === 'fail' && dmarc.policy === 'quarantine') raise(findings.dmarcQuarantine === 'tag' ? 'tag' : 'junk');
  }
  let score = 0;
  if (spam instanceof MailError) {
    reasons.push({ check: 'spam', result: `unavailable: ${spam.message}` });
    if (!findings.spamFailOpen) return { action: 'tempfail', score, reasons, error: temporary('4.7.1', 'spam scanner unavailable, try again later') };
    raise('tag');
  } else if (spam !== undefined) {
    score = spam.score;
    reasons.push({ check: 'spam', result: `${spam.score.toFixed(1)}${spam.rules.length > 0 ? ` ${spam.rules.slice(0, 20).join(',')}` : ''}`, score: spam.score });
    if (spam.score >= thresholds.rejectScore) {
      return { action: 'reject', score, reasons, error: permanent('5.7.1', `message refused as spam (score ${spam.score.toFixed(1)})`, undefined, 550) };
    }
    if (spam.score >= thresholds.junkScore) raise('junk');
    else if (spam.score >= thresholds.tagScore) raise('tag');
  }
  return { action, score, reasons };
}

/** One line for the log: "reject: clamav Eicar FOUND; dmarc pass (example.org)". Pure. */
export function describeVerdict(verdict: Verdict): string {
  return `${verdict.action}: ${verdict.reasons.map((r) => `${r.check} ${r.result}`).join('; ') || 'no findings'}`;
}

/** The X-Spam-* fields added to a message the spam scanner saw. Pure. */
export function spamHeaders(verdict: Verdict, spam: SpamResult | undefined, thresholds: ContentThresholds): string {
  if (spam === undefined) return verdict.action === 'tag' ? 'X-Spam-Status: Unknown, a scanner was unavailable\r\n' : '';
  const flagged = spam.score >= thresholds.tagScore;
  const tests = spam.rules.slice(0, 50).join(',');
  return `X-Spam-Flag: ${flagged ? 'YES' : 'NO'}\r\n`
    + `X-Spam-Score: ${spam.score.toFixed(1)}\r\n`
    + `X-Spam-Status: ${flagged ? 'Yes' : 'No'}, score=${spam.score.toFixed(1)} required=${thresholds.tagScore.toFixed(1)}${tests === '' ? '' : ` tests=${tests}`}\r\n`;
}
