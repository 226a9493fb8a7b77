// Builds the remote side of delivery from the configuration: the DNS resolver (with the host map)
// and the SMTP agent with its connection cache and concurrency limits.
import type { Config } from '../config.ts';
import { createHostResolver, type HostResolver } from './mx.ts';
import { createSmtpAgent, type SmtpAgent } from './smtp.ts';

export function createRemote(config: Config): { resolver: HostResolver; smtp: SmtpAgent } {
  const d = config.delivery;
  const resolver = createHostResolver({
    dnsServers: d.dnsServers,
    port: d.remotePort,
    hostMap: d.hostMap,
    cacheMs: d.dnsCacheSeconds * 1000,
    timeoutMs: d.connectTimeoutSeconds * 1000,
  });
  const smtp = createSmtpAgent({
    helo: d.heloName === '' ? config.hostname : d.heloName,
    connectTimeoutMs: d.connectTimeoutSeconds * 1000,
    timeoutMs: d.timeoutSeconds * 1000,
    tls: d.tls,
    concurrency: d.concurrencyRemote,
    perDestination: d.concurrencyPerDestination,
    idleMs: d.connectionCacheSeconds * 1000,
    maxReuse: d.connectionReuseLimit,
  });
  return { resolver, smtp };
}
