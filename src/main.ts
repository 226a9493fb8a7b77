// Composition root: build every part from one validated Config, start them, stop them in reverse.
// The only place that constructs stages; each stage gets the interfaces it needs passed in.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { changedKeys, ConfigError, parseHostPort, type Config } from './config.ts';
import { startDelivery, type Runner } from './deliver/index.ts';
import { createDeliverToMaildir, quotaCheckBelow, sweepTmp } from './deliver/maildir.ts';
import { unprivilegedUser } from './deliver/program.ts';
import { createRemote } from './deliver/remote.ts';
import { diskReplyMemory, redisReplyMemory } from './deliver/reply-memory.ts';
import { sharedRecalculations } from './deliver/quota.ts';
import { createDirectory, type DirectoryHandle } from './directory/index.ts';
import { startAdmin } from './listen/admin.ts';
import { createStatusBoard, type StatusBoard } from './listen/status.ts';
import { startSmtp, type Server } from './listen/index.ts';
import { startPop3 } from './mailbox/pop3.ts';
import { FolderRegistry } from './mailbox/imap/mailstore.ts';
import { startImap } from './mailbox/imap/server.ts';
import type { Logger } from './log.ts';
import { parseAddress } from './mail.ts';
import { createDkimSigner } from './policy/dkim.ts';
import { createContentFilter, type ContentFilter } from './policy/content.ts';
import { createClamd } from './policy/scan/clamd.ts';
import { createRspamd } from './policy/scan/rspamd.ts';
import { createSpamd } from './policy/scan/spamd.ts';
import type { SpamScanner, VirusScanner } from './policy/scan/types.ts';
import { createEnvelopeChecks } from './policy/envelope.ts';
import { createPolicy } from './policy/index.ts';
import { createLimits, redisCounters } from './policy/limits.ts';
import { connectRedis } from './directory/cache.ts';
import { createMetrics } from './metrics.ts';
import { createQueue } from './queue/index.ts';
import { createReadiness } from './readiness.ts';
import type { Queue } from './queue/types.ts';
import type { SrsKeys } from './route/srs.ts';

export interface Running {
  readonly directory: DirectoryHandle;
  readonly queue: Queue;
  /** Port of each listener that was started, by its config name. */
  readonly ports: Readonly<Record<string, number>>;
  /**
   * SIGHUP and `ldapmta reload`: take a new, already valid configuration without dropping a
   * connection or a message. This process's cache is emptied and the TLS certificate and key are
   * read again (renewals); other changed keys are named as needing a restart.
   */
  reload(next: Config): Promise<ReloadReport>;
  stop(): Promise<void>;
}

export interface ReloadReport {
  /** What the reload did. */
  readonly applied: readonly string[];
  /** Changed keys that only a restart applies. */
  readonly restartNeeded: readonly string[];
}

/** Keys a reload applies by itself: the certificate files are read again whatever their names. */
const RELOADABLE = new Set(['smtp.tls.cert', 'smtp.tls.key']);

export async function start(config: Config, deps: { log: Logger; baseDir?: string; reload?: () => Promise<ReloadReport> }): Promise<Running> {
  const { log } = deps;
  const base = deps.baseDir ?? process.cwd();
  const settled: Config = { ...config, spool: resolve(base, config.spool), mailboxes: resolve(base, config.mailboxes) };
  if (!existsSync(settled.mailboxes)) {
    // Deliveries never create the base itself (a missing base may be an unmounted disk): start-up does, once, loudly.
    mkdirSync(settled.mailboxes, { recursive: true, mode: 0o755 });
    log.warn({ mailboxes: settled.mailboxes }, 'mailbox base directory did not exist; created it');
  }
  const metrics = createMetrics();
  // Reloads compare against the configuration the process started with: only a restart applies the rest.
  const current = settled;
  const directory = await createDirectory(settled, { ...deps, metrics });
  const queue = await createQueue({
    dir: settled.spool, lifetimeSeconds: settled.queue.lifetimeSeconds, hostname: settled.hostname,
    retryMinSeconds: settled.queue.retryMinSeconds, retryMaxSeconds: settled.queue.retryMaxSeconds,
    delayWarningSeconds: settled.queue.delayWarningSeconds,
  }, { log: log.child({ component: 'queue' }) });
  const srs = srsKeys(settled);
  // One set of quota recalculations in progress, shared by the RCPT check and the delivery agent.
  const recalculations = sharedRecalculations();
  const servers: Record<string, Server> = {};
  let status: StatusBoard | null = null;
  // Abuse counters are shared by every node through the cache's Redis, when there is one.
  const limitsRedis = settled.cache.redis === '' ? null : connectRedis(settled.cache, log, 'limits');
  const envelope = createEnvelopeChecks(settled, { log: log.child({ component: 'filters' }), redis: limitsRedis });
  const policy = createPolicy(settled, { directory, quotaCheck: quotaCheckBelow(settled.mailboxes, recalculations), srs, log, envelope });
  const remote = createRemote(settled);
  let programs: { uid: number; gid: number } | null = null;
  if (settled.programs.enabled) {
    try {
      programs = unprivilegedUser(settled.programs.user);
    } catch (err) {
      await queue.close();
      await directory.close();
      throw new ConfigError([`programs.user: ${(err as Error).message}`]);
    }
  }
  const replies = settled.cache.redis === '' ? diskReplyMemory(join(settled.spool, 'autoreply')) : redisReplyMemory(settled.cache, log);
  const runner: Runner = startDelivery(settled, { queue, directory, deliverToMaildir: createDeliverToMaildir({ recalculations }), ...remote, srs, replies, programs, sweepTmp, log, metrics });
  metrics.probe({
    queue: () => {
      const messages = queue.list();
      const active = messages.filter((m) => m.active).length;
      const held = messages.filter((m) => m.held && !m.active).length;
      return { active, held, deferred: messages.length - active - held };
    },
  });
  try {
    const content = createFilters(settled, log);
    const shared = limitsRedis === null ? null : redisCounters(limitsRedis, `${settled.cache.keyPrefix}limits:`);
    const limits = createLimits(settled.limits, { shared, log });
    if (settled.listen.smtp !== '') servers.smtp = await startSmtp(settled, settled.listen.smtp, { policy, queue, log, metrics, content, harvest: limits });
    const submit = { authenticate: directory.authenticate, directory, limits, dkim: createDkimSigner(settled.dkim) };
    if (settled.listen.submission !== '') {
      if (settled.smtp.tls.cert === '') log.warn('listen.submission without smtp.tls: AUTH is refused (no STARTTLS), except from loopback with submission.allowPlaintextAuthOnLoopback');
      servers.submission = await startSmtp(settled, settled.listen.submission, { policy, queue, log, submit, metrics }, 'submission');
    }
    if (settled.listen.submissions !== '') {
      if (settled.smtp.tls.cert === '') log.warn('listen.submissions needs smtp.tls.cert and smtp.tls.key; not started');
      else servers.submissions = await startSmtp(settled, settled.listen.submissions, { policy, queue, log, submit, metrics }, 'submissions');
    }
    const tls = settled.smtp.tls.cert === '' ? null : { cert: readFileSync(settled.smtp.tls.cert), key: readFileSync(settled.smtp.tls.key) };
    const inUse = new Set<string>();
    for (const [name, implicitTls] of [['pop3', false], ['pop3s', true]] as const) {
      const address = settled.listen[name];
      if (address === '') continue;
      if (implicitTls && tls === null) {
        log.warn('listen.pop3s needs smtp.tls.cert and smtp.tls.key; not started');
        continue;
      }
      servers[name] = await startPop3(parseHostPort(address)!, {
        hostname: settled.hostname, mailboxes: settled.mailboxes, tls, implicitTls,
        allowPlaintextOnLoopback: settled.pop3.allowPlaintextAuthOnLoopback, idleTimeoutMs: settled.pop3.idleTimeoutSeconds * 1000,
      }, { authenticate: directory.authenticate, limits, log, inUse });
    }
    const registry = new FolderRegistry();
    for (const [name, implicitTls] of [['imap', false], ['imaps', true]] as const) {
      const address = settled.listen[name];
      if (address === '') continue;
      if (implicitTls && tls === null) {
        log.warn('listen.imaps needs smtp.tls.cert and smtp.tls.key; not started');
        continue;
      }
      servers[name] = await startImap(parseHostPort(address)!, {
        hostname: settled.hostname, mailboxes: settled.mailboxes, tls, implicitTls, maxMessageSize: settled.smtp.maxMessageSize,
        allowPlaintextOnLoopback: settled.imap.allowPlaintextAuthOnLoopback, idleTimeoutMs: settled.imap.idleTimeoutSeconds * 1000,
        maxConnections: settled.imap.maxConnections, maxConnectionsPerIp: settled.imap.maxConnectionsPerIp,
      }, { authenticate: directory.authenticate, limits, log, registry });
    }
    // validateConfig already refused a non-loopback admin address without a token.
    const ready = createReadiness({
      directoryPing: () => directory.ping(), spool: settled.spool, staleIfErrorSeconds: settled.cache.staleIfErrorSeconds,
      listeners: () => Object.fromEntries(Object.entries(servers).filter(([name]) => name !== 'admin').map(([name, server]) => [name, server.port])),
    });
    const reloadFromAdmin = deps.reload ?? (async () => reload(current));
    if (settled.listen.admin !== '') {
      status = createStatusBoard({ hostname: settled.hostname, metrics, queue: () => queue.list(), ready });
      const lookup = async (text: string) => {
        const address = parseAddress(text);
        return { address: text, key: directory.resolver.key(address), ...await directory.lookup(address) };
      };
      const flushCache = (text: string | null) => directory.flush(text === null ? undefined : parseAddress(text));
      servers.admin = await startAdmin(parseHostPort(settled.listen.admin)!, {
        queue, token: settled.admin.token, log, metrics, ready, reload: reloadFromAdmin, status, lookup, flushCache,
      });
    }
  } catch (err) {
    await Promise.all(Object.values(servers).map((server) => server.close()));
    limitsRedis?.disconnect();
    await runner.stop();
    await remote.smtp.close();
    await replies.close();
    await queue.close();
    await directory.close();
    throw err;
  }
  const ports = Object.fromEntries(Object.entries(servers).map(([name, server]) => [name, server.port]));

  async function reload(next: Config): Promise<ReloadReport> {
    const nextSettled: Config = { ...next, spool: resolve(base, next.spool), mailboxes: resolve(base, next.mailboxes) };
    const changed = changedKeys(current, nextSettled);
    const applied: string[] = [];
    directory.forgetLocal();
    applied.push('directory cache of this process emptied');
    // TLS that was on at start can take new files; turning it on or off needs a restart.
    const tlsOn = current.smtp.tls.cert !== '' && current.smtp.tls.key !== '';
    if (tlsOn && nextSettled.smtp.tls.cert !== '' && nextSettled.smtp.tls.key !== '') {
      // Read both before using either: a renewal caught half-written must not break TLS.
      const fresh = { cert: readFileSync(nextSettled.smtp.tls.cert), key: readFileSync(nextSettled.smtp.tls.key) };
      createSecureContext(fresh); // throws on a certificate that does not match its key
      for (const server of Object.values(servers)) server.reloadTls?.(fresh);
      applied.push('TLS certificate and key read again');
    }
    const restartNeeded = changed.filter((key) => !(tlsOn && RELOADABLE.has(key) && nextSettled.smtp.tls.cert !== '' && nextSettled.smtp.tls.key !== ''));
    log.info({ applied, ...(restartNeeded.length > 0 ? { restartNeeded } : {}) }, restartNeeded.length > 0 ? 'configuration reloaded; some changes need a restart' : 'configuration reloaded');
    return { applied, restartNeeded };
  }
  log.info({ hostname: settled.hostname, localDomains: settled.localDomains, ports, embedded: directory.embeddedUrl !== null }, 'ldapmta started');

  let stopping: Promise<void> | null = null;
  return {
    directory,
    queue,
    ports,
    reload,
    stop() {
      stopping ??= (async () => {
        // Listeners first: no new sessions; sessions in progress get shutdown.graceSeconds, then 421.
        await Promise.all(Object.values(servers).map((s) => s.close()));
        status?.close();
        limitsRedis?.disconnect();
        // Deliveries in flight get shutdown.deliveryWaitSeconds. One cut short is retried at the next
        // start from the spool: at least once, never lost (docs/queue.md).
        let waiting: NodeJS.Timeout | undefined;
        const finished = await Promise.race([
          runner.stop().then(() => true),
          new Promise<false>((resolve) => {
            waiting = setTimeout(() => resolve(false), settled.shutdown.deliveryWaitSeconds * 1000);
          }),
        ]);
        clearTimeout(waiting);
        if (!finished) log.warn({ waitedSeconds: settled.shutdown.deliveryWaitSeconds }, 'deliveries still in flight at shutdown; they are retried at the next start');
        await remote.smtp.close();
        await replies.close();
        await queue.close();
        await directory.close();
        log.info('ldapmta stopped');
      })();
      return stopping;
    },
  };
}

/** The checks after DATA for mail from outside, when any is configured (filters.*); null when none is. */
function createFilters(config: Config, log: Logger): ContentFilter | null {
  const f = config.filters;
  if (!f.authentication.enabled && f.clamav.address === '' && f.spam.scanner === 'none') return null;
  const problems: string[] = [];
  let clamd: VirusScanner | null = null;
  if (f.clamav.address !== '') {
    const at = f.clamav.address.startsWith('/') ? null : parseHostPort(f.clamav.address);
    if (!f.clamav.address.startsWith('/') && (at === null || at.port === 0)) problems.push('filters.clamav.address: expected host:port or an absolute Unix socket path');
    else clamd = createClamd({ ...(at === null ? { socket: f.clamav.address } : { host: at.host, port: at.port }), timeoutMs: f.clamav.timeoutMs, maxBytes: f.clamav.maxBytes });
  }
  let spam: SpamScanner | null = null;
  if (f.spam.scanner === 'spamd') {
    const at = parseHostPort(f.spam.address);
    if (at === null || at.port === 0) problems.push('filters.spam.address: spamd needs host:port, such as 127.0.0.1:783');
    else spam = createSpamd({ host: at.host, port: at.port, timeoutMs: f.spam.timeoutMs });
  } else if (f.spam.scanner === 'rspamd') {
    if (!/^https?:\/\/\S+$/.test(f.spam.address)) problems.push('filters.spam.address: rspamd needs its URL, such as http://127.0.0.1:11333');
    else spam = createRspamd({ url: f.spam.address, timeoutMs: f.spam.timeoutMs });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return createContentFilter(config, { log: log.child({ component: 'filters' }), clamd, spam });
}

/**
 * SRS keys from the configuration; without a configured secret, the one kept in <spool>/srs.secret
 * (made once, 0600), so bounces to rewritten senders still verify after a restart.
 */
function srsKeys(config: Config): SrsKeys | null {
  if (!config.srs.enabled) return null;
  let secret = config.srs.secret;
  if (secret === '') {
    const file = join(config.spool, 'srs.secret');
    try {
      writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { flag: 'wx', mode: 0o600, flush: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    secret = readFileSync(file, 'utf8').trim();
  }
  return { secrets: [secret, ...config.srs.oldSecrets], domain: config.srs.domain === '' ? config.hostname : config.srs.domain, maxAgeDays: config.srs.maxAgeDays };
}

