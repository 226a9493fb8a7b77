// Owns: throw-away SpamAssassin spamd child processes for tests (127.0.0.1, random port, its own rule
// and site config dirs in a temp dir, local tests only).
// Must never: daemonize, run network tests (DNS blocklists, URIBLs, Razor, Pyzor), learn (no Bayes,
// no auto-learn), read a user's ~/.spamassassin, listen beyond loopback, or touch the system spamd
// (/etc/spamassassin is only read, and only with `rules: 'debian'`).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findProgram, GroupChildServer } from './child.ts';
import { freePort, onProcessExit, pingOnce, sleep, waitForPort } from './ports.ts';

/** The phrase the harness's local rule fires on, and the rule's name and score. */
export const SPAM_TEST_PHRASE = 'ldapmta-test-spam-phrase';
export const SPAM_TEST_RULE = 'LDAPMTA_TEST_SPAM';
export const SPAM_TEST_SCORE = 20;

const INSTALL_HINT = 'apt-get install -y spamd spamassassin';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Debian's stock rules (the spamassassin package ships them; no sa-update needed) and its .pre files. */
const DEBIAN_RULES = '/usr/share/spamassassin';
const DEBIAN_SITE = '/etc/spamassassin';

// ---------------------------------------------------------------------------------------------
// spamd

export interface Spamd {
  /** Always 127.0.0.1. */
  host: string;
  port: number;
  /** The temp dir (rules/, site/, the pidfile); removed when the process exits. */
  dir: string;
  pid: number;
  /** spamd's required_score. */
  requiredScore: number;
  /** How long the last start() took until spamd answered PING, in ms. */
  startMs: number;
  /** SIGTERM (spamd stops its children), then wait for the whole process group. start() may follow. */
  stop(): Promise<void>;
  /** Send a signal to the process group without waiting (default SIGKILL). */
  kill(signal?: NodeJS.Signals): void;
  /** SIGSTOP to the process group: connections are still accepted by the kernel, nobody answers. */
  pause(): Promise<void>;
  resume(): void;
  /** Start again on the same port; no-op when running. */
  start(): Promise<void>;
}

export interface StartSpamdOptions {
  /**
   * 'local' (default): only the harness's rules (the test phrase, nothing else), so scores are
   * exact. 'debian': Debian's stock rules from /usr/share/spamassassin and the plugins its
   * /etc/spamassassin/*.pre files load, plus the harness's rules: realistic scores and cost.
   */
  rules?: 'local' | 'debian';
  /** required_score; default 5. */
  requiredScore?: number;
  /** More SpamAssassin configuration lines, appended to the harness's rule file. */
  extraConfig?: string;
}

/** Sends "PING SPAMC/1.5"; true on "SPAMD/1.5 0 PONG". */
export function spamdPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return pingOnce(port, 'PING SPAMC/1.5\r\n\r\n',
    (reply, ended) => (reply.includes('\r\n') || ended ? /^SPAMD\/[\d.]+ 0 PONG/.test(reply) : null), timeoutMs);
}

/** The harness's SpamAssassin configuration: no learning, and the test-phrase rule. */
function harnessRules(requiredScore: number, extra: string): string {
  return [
    `required_score ${requiredScore}`,
    'use_bayes 0',
    'bayes_auto_learn 0',
    // Without sa-update's 20_aux_tlds.cf spamd warns "no tlds defined"; these are enough for tests.
    'util_rb_tld com net org example test invalid',
    `body ${SPAM_TEST_RULE} /${SPAM_TEST_PHRASE}/`,
    `describe ${SPAM_TEST_RULE} ldapmta test phrase`,
    `score ${SPAM_TEST_RULE} ${SPAM_TEST_SCORE}`,
    extra,
    '',
  ].join('\n');
}

class ManagedSpamd extends GroupChildServer implements Spamd {
  readonly host = '127.0.0.1';
  startMs = 0;

  constructor(
    readonly dir: string,
    readonly requiredScore: number,
    private readonly binary: string,
    private readonly rulesDir: string,
    private readonly siteDir: string,
  ) {
    super();
  }

  protected urlFor(port: number): string {
    return `tcp://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.running()) return;
    await this.terminate(false);
    const args = [
      '--listen', `127.0.0.1:${this.port}`,
      '--allowed-ips', '127.0.0.1',
      '--local', // no network tests: no DNS blocklists, URIBLs, Razor, Pyzor, DCC
      '--nouser-config', // no ~/.spamassassin
      '--configpath', this.rulesDir,
      '--siteconfigpath', this.siteDir,
      '--pidfile', path.join(this.dir, 'spamd.pid'),
      '--syslog', 'stderr',
      '--max-children', '2',
      '--min-children', '1',
      '--timeout-child', '60',
    ];
    // As root spamd would otherwise fall back to "nobody" on every connection, warning each time.
    // With --username the children drop to it once, after the parent has read the configuration.
    if (process.getuid?.() === 0) args.push('--username', 'nobody');
    const started = Date.now();
    // HOME: SpamAssassin keeps per-user state in ~/.spamassassin; never the invoking user's.
    const child = this.launch(this.binary, args, undefined, { ...process.env, HOME: this.dir });
    const failed = (): string | null =>
      this.exitInfo === null ? null : `spamd exited (${this.exitInfo}) on port ${this.port}: ${this.outputTail.trim()}`;
    const deadline = started + START_TIMEOUT_MS;
    try {
      await waitForPort(this.port, { timeoutMs: START_TIMEOUT_MS, what: 'spamd', failed });
      while (!(await spamdPing(this.port))) {
        const failure = failed();
        if (failure !== null) throw new Error(failure);
        if (Date.now() > deadline) throw new Error(`spamd on port ${this.port} does not answer PING: ${this.outputTail.trim()}`);
        await sleep(25);
      }
      this.lastPid = child.pid ?? 0;
      this.startMs = Date.now() - started;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }
}

/** A fresh spamd child answering PING on a random 127.0.0.1 port when this resolves. */
export async function startSpamd(options: StartSpamdOptions = {}): Promise<Spamd> {
  const binary = findProgram('spamd');
  if (binary === null) throw new Error(`spamd not found (searched PATH and /usr/sbin); install it with: ${INSTALL_HINT}`);
  const requiredScore = options.requiredScore ?? 5;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-spamd-'));
  const site = path.join(dir, 'site');
  await fsp.mkdir(site);
  let rulesDir: string;
  if (options.rules === 'debian') {
    if (!fs.existsSync(path.join(DEBIAN_RULES, '10_default_prefs.cf'))) {
      throw new Error(`Debian's SpamAssassin rules are missing from ${DEBIAN_RULES}; install them with: ${INSTALL_HINT}`);
    }
    rulesDir = DEBIAN_RULES;
    // The plugins the stock rules expect are loaded by Debian's .pre files; the site dir replaces
    // /etc/spamassassin, so they are copied (local.cf and the rest are not: the harness's own file stands in).
    for (const file of await fsp.readdir(DEBIAN_SITE).catch(() => [] as string[])) {
      if (file.endsWith('.pre')) await fsp.copyFile(path.join(DEBIAN_SITE, file), path.join(site, file));
    }
    await fsp.writeFile(path.join(site, 'local.cf'), harnessRules(requiredScore, options.extraConfig ?? ''));
  } else {
    // spamd refuses to start when the rules dir holds no .cf ("no rules were found! Do you need to
    // run 'sa-update'?"), and scans nothing without the Check plugin ("no loaded plugin implements
    // 'check_main'"), which Debian's v320.pre would load: the rules dir holds both.
    rulesDir = path.join(dir, 'rules');
    await fsp.mkdir(rulesDir);
    await fsp.writeFile(path.join(rulesDir, 'init.pre'), 'loadplugin Mail::SpamAssassin::Plugin::Check\n');
    await fsp.writeFile(path.join(rulesDir, '50_ldapmta.cf'), harnessRules(requiredScore, options.extraConfig ?? ''));
  }
  // spamd started as root reads its configuration with the privileges of the user it will run as
  // ("file or directory ... not accessible: Permission denied", then "no rules were found!"): the
  // dir must be readable by others, not mkdtemp's 0700. It holds nothing secret.
  await fsp.chmod(dir, 0o755);
  for (const sub of [site, rulesDir]) if (sub.startsWith(dir)) await fsp.chmod(sub, 0o755);
  const instance = new ManagedSpamd(dir, requiredScore, binary, rulesDir, site);
  const unregister = onProcessExit(() => {
    instance.killNow();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 1; ; attempt++) {
    instance.setPort(await freePort());
    try {
      await instance.start();
      return instance;
    } catch (err) {
      if (attempt >= 3) {
        unregister();
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}
