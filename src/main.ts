// Composition root: build every part from one validated Config, start them, stop them in reverse.
// The only place that constructs stages; each stage gets the interfaces it needs passed in.
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from './config.ts';
import { startDelivery, type Runner } from './deliver/index.ts';
import { createDeliverToMaildir, quotaCheckBelow, sweepTmp } from './deliver/maildir.ts';
import { sharedRecalculations } from './deliver/quota.ts';
import { createDirectory, type DirectoryHandle } from './directory/index.ts';
import { startSmtp, type Server } from './listen/index.ts';
import type { Logger } from './log.ts';
import { createPolicy } from './policy/index.ts';
import { createQueue } from './queue/index.ts';
import type { Queue } from './queue/types.ts';

export interface Running {
  readonly directory: DirectoryHandle;
  readonly queue: Queue;
  /** Port of each listener that was started, by its config name. */
  readonly ports: Readonly<Record<string, number>>;
  stop(): Promise<void>;
}

export async function start(config: Config, deps: { log: Logger; baseDir?: string }): Promise<Running> {
  const { log } = deps;
  const base = deps.baseDir ?? process.cwd();
  const settled: Config = { ...config, spool: resolve(base, config.spool), mailboxes: resolve(base, config.mailboxes) };
  if (!existsSync(settled.mailboxes)) {
    // Deliveries never create the base itself (a missing base may be an unmounted disk): start-up does, once, loudly.
    mkdirSync(settled.mailboxes, { recursive: true, mode: 0o755 });
    log.warn({ mailboxes: settled.mailboxes }, 'mailbox base directory did not exist; created it');
  }
  const directory = await createDirectory(settled, deps);
  const queue = await createQueue({ dir: settled.spool, lifetimeSeconds: settled.queue.lifetimeSeconds, hostname: settled.hostname }, { log: log.child({ component: 'queue' }) });
  // One set of quota recalculations in progress, shared by the RCPT check and the delivery agent.
  const recalculations = sharedRecalculations();
  const policy = createPolicy(settled, { directory, quotaCheck: quotaCheckBelow(settled.mailboxes, recalculations), log });
  const servers: Record<string, Server> = {};
  const runner: Runner = startDelivery(settled, { queue, directory, deliverToMaildir: createDeliverToMaildir({ recalculations }), sweepTmp, log });
  try {
    if (settled.listen.smtp !== '') servers.smtp = await startSmtp(settled, settled.listen.smtp, { policy, queue, log });
  } catch (err) {
    await runner.stop();
    await queue.close();
    await directory.close();
    throw err;
  }
  const ports = Object.fromEntries(Object.entries(servers).map(([name, server]) => [name, server.port]));
  log.info({ hostname: settled.hostname, localDomains: settled.localDomains, ports, embedded: directory.embeddedUrl !== null }, 'ldapmta started');

  let stopping: Promise<void> | null = null;
  return {
    directory,
    queue,
    ports,
    stop() {
      stopping ??= (async () => {
        await Promise.all(Object.values(servers).map((s) => s.close()));
        await runner.stop();
        await queue.close();
        await directory.close();
        log.info('ldapmta stopped');
      })();
      return stopping;
    },
  };
}
