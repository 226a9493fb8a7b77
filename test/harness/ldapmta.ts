// Starts ldapmta in-process (main.start) for protocol tests: a temp spool and mailbox base, the
// given slapd, free loopback ports. Tests talk to it over its real sockets only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig, type Config } from '../../src/config.ts';
import { silentLogger, type Logger } from '../../src/log.ts';
import { start, type Running } from '../../src/main.ts';
import type { Slapd } from './slapd.ts';

export interface TestServer {
  readonly running: Running;
  readonly config: Config;
  readonly dir: string;
  readonly smtpPort: number;
  /** The Maildir of a sample user: <mailboxes>/example.org/<name>/ */
  maildir(user: string): string;
  stop(): Promise<void>;
}

/** `overrides` are merged into the config tree (one level deep per section). */
export async function startServer(slapd: Slapd | null, overrides: Record<string, unknown> = {}, log: Logger = silentLogger()): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ldapmta-server-'));
  const tree: Record<string, Record<string, unknown> | unknown> = {
    hostname: 'mx1.example.org',
    localDomains: ['example.org', 'example.net'],
    spool: join(dir, 'spool'),
    mailboxes: join(dir, 'mail'),
    listen: { smtp: '127.0.0.1:0', submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    relay: { trustedNetworks: [] },
    directory: slapd === null ? {} : { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: slapd.baseDN, timeoutMs: 2000, connectTimeoutMs: 500 },
    cache: { maxEntries: 0 },
    // No test reaches the Internet's DNS: a closed loopback port answers every lookup with an error (temporary).
    delivery: { dnsServers: ['127.0.0.1:9'] },
    log: { level: 'silent' },
  };
  for (const [key, value] of Object.entries(overrides)) {
    const current = tree[key];
    tree[key] = value !== null && typeof value === 'object' && !Array.isArray(value) && current !== null && typeof current === 'object' && !Array.isArray(current)
      ? { ...(current as object), ...(value as object) } : value;
  }
  const config = validateConfig(tree);
  const running = await start(config, { log });
  return {
    running, config, dir,
    smtpPort: running.ports.smtp!,
    maildir: (user) => join(dir, 'mail', 'example.org', user),
    async stop() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
