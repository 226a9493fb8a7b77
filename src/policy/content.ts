// Owns: the checks run on a whole message after DATA, for mail from outside: SPF, DKIM, DMARC and
// ARC with mailauth (one Authentication-Results header), then clamd, then the spam scorer, cheap
// first and stopping once the verdict is final. Returns the verdict and the header lines to put on
// top of the message; decides nothing itself (verdict.ts does) and never throws for a check that
// could not run: that is a finding the verdict turns into 451 or a tag.
import { Resolver } from 'node:dns/promises';
import { LRUCache } from 'lru-cache';
import { authenticate } from 'mailauth';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { asMailError, type ClientInfo } from '../mail.ts';
import type { SpamResult, SpamScanner, VirusScanner } from './scan/types.ts';
import { combine, contentVerdict, final, spamHeaders, type ContentFindings, type Verdict } from './verdict.ts';

export interface ContentCheck {
  readonly verdict: Verdict;
  /** Header lines (CRLF-terminated) to put on top of the message when it is accepted. */
  readonly headers: string;
  /** The SPF result, for greylisting's and the log's use. */
  readonly spf: string | null;
}

export interface ContentFilter {
  check(message: Buffer, envelope: { sender: string | null; recipients: readonly string[]; client: ClientInfo; queueId?: string }): Promise<ContentCheck>;
}

export interface ContentDeps {
  readonly log: Logger;
  readonly clamd: VirusScanner | null;
  readonly spam: SpamScanner | null;
  /** A verdict reached before DATA (DNS lists scored below their reject level), folded in. */
}

/** How long mailauth's DNS answers are reused: every message from a domain asks the same SPF and DMARC records. */
const DNS_CACHE_MS = 60_000;

/**
 * A DNS resolver for mailauth: the configured servers (delivery.dnsServers) or the system's, with
 * answers and definite misses (no such name, no such record) kept a minute; failures are not kept.
 */
export function mailauthResolver(servers: readonly string[], timeoutMs: number) {
  const dns = new Resolver({ timeout: Math.max(100, Math.floor(timeoutMs / 2)), tries: 2 });
  if (servers.length > 0) dns.setServers([...servers]);
  const cache = new LRUCache<string, Promise<string[] | string[][]>>({ max: 20_000, ttl: DNS_CACHE_MS });
  return (name: string, rrtype: string): Promise<string[] | string[][]> => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    let answer = cache.get(key);
    if (answer === undefined) {
      answer = dns.resolve(name, rrtype as 'TXT') as Promise<string[] | string[][]>;
      cache.set(key, answer);
      answer.catch((err: unknown) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTFOUND' && code !== 'ENODATA') cache.delete(key);
      });
    }
    return answer;
  };
}

export function createContentFilter(config: Config, deps: ContentDeps): ContentFilter {
  const f = config.filters;
  const thresholds = { tagScore: f.spam.tagScore, junkScore: f.spam.junkScore, rejectScore: f.spam.rejectScore };
  const resolver = mailauthResolver(config.delivery.dnsServers, 5000);

  return {
    async check(message, envelope) {
      const findings: { -readonly [K in keyof ContentFindings]: ContentFindings[K] } = {
        virusFailOpen: f.clamav.failOpen, spamFailOpen: f.spam.failOpen,
        dmarcReject: f.authentication.dmarcReject, dmarcQuarantine: f.authentication.dmarcQuarantine,
      };
      let headers = '';
      let spf: string | null = null;
      if (f.authentication.enabled) {
        try {
          const result = await authenticate(message, {
            ip: envelope.client.ip, helo: envelope.client.helo, sender: envelope.sender ?? '', mta: config.hostname,
            resolver, disableBimi: true,
          }) as AuthResult;
          headers += result.headers.replace(/\r?\n/g, '\r\n').replace(/(\r\n)?$/, '\r\n');
          spf = result.spf?.status?.result ?? null;
          const dmarc = result.dmarc;
          if (dmarc && dmarc.status?.result) {
            findings.dmarc = { result: dmarc.status.result, policy: dmarc.policy ?? dmarc.p ?? null, domain: dmarc.domain ?? '' };
          }
        } catch (err) {
          // Authentication is advice: a failure to evaluate it leaves the message unauthenticated, not refused.
          deps.log.warn({ err: (err as Error).message }, 'authentication checks failed; no Authentication-Results added');
        }
      }
      let verdict = contentVerdict(findings, thresholds);
      if (!final(verdict) && deps.clamd !== null) {
        findings.virus = await deps.clamd.scan(message).catch((err: unknown) => asMailError(err));
        verdict = contentVerdict(findings, thresholds);
      }
      let spam: SpamResult | undefined;
      const scorable = message.length <= f.spam.maxBytes;
      if (!final(verdict) && deps.spam !== null && !scorable) {
        verdict = combine(verdict, { action: 'accept', score: 0, reasons: [{ check: 'spam', result: `not scored (${message.length} bytes, over filters.spam.maxBytes)` }] });
      }
      if (!final(verdict) && deps.spam !== null && scorable) {
        const context = {
          sender: envelope.sender, recipients: envelope.recipients, clientIp: envelope.client.ip, helo: envelope.client.helo,
          user: envelope.client.user, ...(envelope.queueId === undefined ? {} : { queueId: envelope.queueId }),
        };
        const scored = await deps.spam.score(message, context).catch((err: unknown) => asMailError(err));
        findings.spam = scored;
        if (!(scored instanceof Error)) spam = scored;
        verdict = contentVerdict(findings, thresholds);
      }
      if ((deps.spam !== null && scorable) || verdict.action === 'tag') headers += spamHeaders(verdict, spam, thresholds);
      if (verdict.action === 'junk' && findings.dmarc?.result === 'fail') headers += 'X-LdapMTA-Quarantine: dmarc\r\n';
      return { verdict: combine(verdict, { action: 'accept', score: 0, reasons: spf === null ? [] : [{ check: 'spf', result: spf }] }), headers, spf };
    },
  };
}

/** The part of mailauth's answer used here. */
interface AuthResult {
  headers: string;
  spf?: { status?: { result?: string } };
  dmarc?: { status?: { result?: string }; policy?: string; p?: string; domain?: string } | false;
}
