// Owns: the filters of the envelope stage for mail from outside: the DNS lists of the client's
// address (asked once per address and cached briefly, scored; at filters.dnsbl.rejectScore the
// recipient gets 554 5.7.1 naming the lists) and greylisting of each local recipient (451 4.7.1
// until a retry after the delay; exempt networks, domains, SPF passes and opted-out recipients).
// DNS and Redis trouble never refuses mail: a list that cannot answer is unknown, a greylist store
// that is down lets mail through, both logged.
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { spf } from 'mailauth/lib/spf/index.js';
import type { Config } from '../config.ts';
import type { Resolution } from '../directory/types.ts';
import type { Logger } from '../log.ts';
import { type Address, type ClientInfo, formatAddress } from '../mail.ts';
import { checkDnsLists, createPolicyDns } from './dnsbl.ts';
import { createGreylist, greylistWhitelist, memoryGreylistStore, redisGreylistStore } from './greylist.ts';
import { dnsListVerdict, describeVerdict, type Verdict } from './verdict.ts';
import { mailauthResolver } from './content.ts';

export interface EnvelopeChecks {
  /** The DNS lists' verdict on a client address (cached for a few minutes). */
  client(ip: string): Promise<Verdict>;
  /** Greylisting of one accepted local recipient: throws 451 4.7.1 when it must wait. */
  greylist(client: ClientInfo, sender: Address | null, recipient: Address, resolution: Resolution | null): Promise<void>;
}

const CLIENT_CACHE_MS = 300_000;

export function createEnvelopeChecks(config: Config, deps: { log: Logger; redis: Redis | null }): EnvelopeChecks | null {
  const f = config.filters;
  if (f.dnsbl.zones.length === 0 && !f.greylist.enabled) return null;
  const { log } = deps;
  const dns = createPolicyDns({ dnsServers: config.delivery.dnsServers, timeoutMs: f.dnsbl.timeoutMs });
  const clients = new LRUCache<string, Promise<Verdict>>({ max: 50_000, ttl: CLIENT_CACHE_MS });
  const greylist = f.greylist.enabled ? createGreylist(
    { delaySeconds: f.greylist.delaySeconds, lifetimeSeconds: f.greylist.lifetimeSeconds },
    {
      store: deps.redis === null ? memoryGreylistStore() : redisGreylistStore(deps.redis, { prefix: `${config.cache.keyPrefix}greylist:` }),
      whitelist: greylistWhitelist(f.greylist.networks, f.greylist.domains), log,
    },
  ) : null;
  const spfResolver = mailauthResolver(config.delivery.dnsServers, f.dnsbl.timeoutMs);
  const spfResults = new LRUCache<string, Promise<string>>({ max: 50_000, ttl: 600_000 });

  async function listVerdict(ip: string): Promise<Verdict> {
    if (f.dnsbl.zones.length === 0) return { action: 'accept', score: 0, reasons: [] };
    const result = await checkDnsLists(ip, f.dnsbl.zones, { dns, timeoutMs: f.dnsbl.timeoutMs, log });
    if (result.unknown.length > 0) log.info({ ip, unknown: result.unknown, notes: result.notes }, 'DNS lists that could not answer');
    const verdict = dnsListVerdict(result.listings.map((l) => ({ zone: l.zone, weight: l.weight, codes: l.codes })), f.dnsbl.rejectScore);
    if (result.listings.length > 0) log.info({ ip, score: result.score, verdict: describeVerdict(verdict) }, 'client address on DNS lists');
    return verdict;
  }

  /** SPF of the envelope sender, for the greylist exemption; "none" without a sender or on trouble. */
  function spfOf(client: ClientInfo, sender: Address | null): Promise<string> {
    if (sender === null) return Promise.resolve('none');
    const key = `${client.ip} ${formatAddress(sender).toLowerCase()}`;
    let found = spfResults.get(key);
    if (found === undefined) {
      found = (spf({ sender: formatAddress(sender), ip: client.ip, helo: client.helo, mta: config.hostname, resolver: spfResolver }) as Promise<{ status?: { result?: string } }>)
        .then((r) => r.status?.result ?? 'none', () => 'temperror');
      spfResults.set(key, found);
    }
    return found;
  }

  return {
    client(ip) {
      let verdict = clients.get(ip);
      if (verdict === undefined) {
        verdict = listVerdict(ip);
        clients.set(ip, verdict);
      }
      return verdict;
    },
    async greylist(client, sender, recipient, resolution) {
      if (greylist === null || resolution === null) return;
      if ('greylist' in resolution && resolution.greylist === false) return;
      const spfPass = f.greylist.skipOnSpfPass && (await spfOf(client, sender)) === 'pass';
      const outcome = await greylist.check({
        ip: client.ip, sender: sender === null ? null : formatAddress(sender), recipient: formatAddress(recipient), spfPass,
      });
      if (outcome.action === 'defer') {
        log.info({ ip: client.ip, from: sender === null ? '<>' : formatAddress(sender), to: formatAddress(recipient), retryAfterSeconds: outcome.retryAfterSeconds }, 'greylisted');
        throw outcome.error;
      }
    },
  };
}
