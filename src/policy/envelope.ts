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
import { checkFcrdns, heloChecks, type FcrdnsResult } from './fcrdns.ts';
import { createGreylist, greylistWhitelist, memoryGreylistStore, passCachedStore, redisGreylistStore } from './greylist.ts';
import { dnsListVerdict, describeVerdict, type Verdict } from './verdict.ts';
import { mailauthResolver } from './content.ts';

export interface EnvelopeChecks {
  /** The client's score: DNS lists and FCrDNS of its address (cached for a few minutes), its HELO name. */
  client(client: ClientInfo): Promise<Verdict>;
  /** Greylisting of one accepted local recipient: throws 451 4.7.1 when it must wait. */
  greylist(client: ClientInfo, sender: Address | null, recipient: Address, resolution: Resolution | null): Promise<void>;
}

const CLIENT_CACHE_MS = 300_000;

type ListedZone = { zone: string; weight: number; codes: readonly string[] };

export function createEnvelopeChecks(config: Config, deps: { log: Logger; redis: Redis | null }): EnvelopeChecks | null {
  const f = config.filters;
  if (f.dnsbl.zones.length === 0 && !f.greylist.enabled && f.dnsbl.noFcrdnsWeight === 0 && f.dnsbl.badHeloWeight === 0) return null;
  const { log } = deps;
  const dns = createPolicyDns({ dnsServers: config.delivery.dnsServers, timeoutMs: f.dnsbl.timeoutMs });
  const clients = new LRUCache<string, Promise<{ lists: ListedZone[]; fcrdns: FcrdnsResult | null }>>({ max: 50_000, ttl: CLIENT_CACHE_MS });
  const ownNames = [config.hostname, ...config.clusterHosts];
  const greylist = f.greylist.enabled ? createGreylist(
    { delaySeconds: f.greylist.delaySeconds, lifetimeSeconds: f.greylist.lifetimeSeconds },
    {
      store: deps.redis === null ? memoryGreylistStore() : passCachedStore(
        redisGreylistStore(deps.redis, { prefix: `${config.cache.keyPrefix}greylist:` }),
        { ttlMs: Math.min(f.greylist.passCacheSeconds, f.greylist.lifetimeSeconds) * 1000 },
      ),
      whitelist: greylistWhitelist(f.greylist.networks, f.greylist.domains), log,
    },
  ) : null;
  const spfResolver = mailauthResolver(config.delivery.dnsServers, f.dnsbl.timeoutMs);
  const spfResults = new LRUCache<string, Promise<string>>({ max: 50_000, ttl: 600_000 });

  /** What DNS says of an address: the lists naming it, and its forward-confirmed reverse DNS when it is scored. */
  async function addressFacts(ip: string): Promise<{ lists: ListedZone[]; fcrdns: FcrdnsResult | null }> {
    const [lists, fcrdns] = await Promise.all([
      f.dnsbl.zones.length === 0 ? null : checkDnsLists(ip, f.dnsbl.zones, { dns, timeoutMs: f.dnsbl.timeoutMs, log }),
      f.dnsbl.noFcrdnsWeight === 0 && f.dnsbl.badHeloWeight === 0 ? null : checkFcrdns(ip, { dns, timeoutMs: f.dnsbl.timeoutMs }),
    ]);
    if (lists !== null && lists.unknown.length > 0) log.info({ ip, unknown: lists.unknown, notes: lists.notes }, 'DNS lists that could not answer');
    return { lists: (lists?.listings ?? []).map((l) => ({ zone: l.zone, weight: l.weight, codes: l.codes })), fcrdns };
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
    async client(client) {
      let facts = clients.get(client.ip);
      if (facts === undefined) {
        facts = addressFacts(client.ip);
        clients.set(client.ip, facts);
      }
      const { lists, fcrdns } = await facts;
      // FCrDNS and the HELO name count as listings of their own (weights from the config).
      const scored = [...lists];
      if (fcrdns !== null && !fcrdns.confirmed && !fcrdns.temporary && f.dnsbl.noFcrdnsWeight !== 0) {
        scored.push({ zone: 'fcrdns', weight: f.dnsbl.noFcrdnsWeight, codes: [fcrdns.ptr.length === 0 ? 'no PTR' : 'PTR not confirmed'] });
      }
      if (f.dnsbl.badHeloWeight !== 0) {
        for (const problem of heloChecks(client.helo, client.ip, fcrdns?.names ?? [], ownNames)) scored.push({ zone: 'helo', weight: f.dnsbl.badHeloWeight, codes: [problem] });
      }
      const verdict = dnsListVerdict(scored, f.dnsbl.rejectScore);
      if (scored.length > 0) log.info({ ip: client.ip, helo: client.helo, score: verdict.score, verdict: describeVerdict(verdict) }, 'client scored');
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
