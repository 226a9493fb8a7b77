// Owns: throw-away SpamAssassin spamd child processes for tests (127.0.0.1, random port, its own rule
// and site config dirs in a temp dir, local tests only), and GroupChildServer, the ChildServer for
// daemons that fork workers (spamd, rspamd).
// Must never: daemonize, run network tests (DNS blocklists, URIBLs, Razor, Pyzor), learn (no Bayes,
// no auto-learn), read a user's ~/.spamassassin, listen beyond loopback, or touch the system spamd
// (/etc/spamassassin is only read, and only with `rules: 'debian'`).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ChildServer } from './child.ts';
import { freePort, onProcessExit, sleep, waitForPort } from './ports.ts';

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
// Daemons with worker processes

/**
 * A ChildServer whose process leads its own process group, for daemons that fork workers: a
 * SIGKILLed spamd or rspamd leaves its children running (holding the port and the test's output
 * pipes), so kill(), killNow() and the end of stop() signal the whole group.
 * (Belongs in child.ts; kept here because this change only adds files.)
 */
export abstract class GroupChildServer extends ChildServer {
  /** A group was started and has not been seen empty since: only then is it signalled (its id may be reused later). */
  private groupLive = false;

  protected override launch(binary: string, args: string[], echo?: (chunk: string) => void, env?: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: env ?? process.env });
    this.child = child;
    this.groupLive = child.pid !== undefined;
    this.exitInfo = null;
    this.outputTail = '';
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal !== null ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exitInfo = `spawn error ${err.message}`;
        resolve();
      });
    });
    const keep = (chunk: string): void => {
      this.outputTail = (this.outputTail + chunk).slice(-8192);
      echo?.(chunk);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();
    return child;
  }

  /** Signals every process of the group led by the last child; false when none is left. */
  protected signalGroup(signal: NodeJS.Signals | 0): boolean {
    const pgid = this.child?.pid;
    if (!this.groupLive || pgid === undefined || pgid <= 0) return false;
    try {
      process.kill(-pgid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** The pids in the group led by the last child (zombies included), from /proc. */
  protected async groupMembers(): Promise<number[]> {
    const pgid = this.child?.pid;
    if (pgid === undefined) return [];
    const members: number[] = [];
    for (const entry of await fsp.readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await fsp.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // After the parenthesised command name: state, ppid, pgrp.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    }
    return members;
  }

  override kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive()) this.signalGroup(signal);
  }

  /** Every process of the group stopped (state T), not just the leader: the workers answer the requests. */
  override async pause(): Promise<void> {
    this.signalGroup('SIGSTOP');
    const deadline = Date.now() + 5000;
    for (;;) {
      let stopped = true;
      for (const pid of await this.groupMembers()) {
        for (const task of await fsp.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
          const stat = await fsp.readFile(`/proc/${pid}/task/${task}/stat`, 'utf8').catch(() => '');
          const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
          if (state !== '' && state !== 'T' && state !== 't') stopped = false;
        }
      }
      if (stopped) return;
      if (Date.now() > deadline) throw new Error(`process group ${this.lastPid} did not stop within 5 s after SIGSTOP`);
      await sleep(2);
    }
  }

  override resume(): void {
    this.signalGroup('SIGCONT');
  }

  /**
   * SIGTERM to the leader (the daemon stops its own workers), SIGKILL to the group after the stop
   * timeout, then SIGKILL to whatever of the group is left, and wait (bounded) until it is gone so
   * the port is free for start().
   */
  protected override async terminate(sendTerm: boolean): Promise<void> {
    const child = this.child;
    if (child === null) return;
    if (this.alive()) {
      // A stopped group would never handle SIGTERM.
      this.signalGroup('SIGCONT');
      if (sendTerm) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) this.signalGroup('SIGKILL');
    }
    await this.exited;
    this.signalGroup('SIGKILL');
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const left = await this.groupMembers();
      // Zombies re-parented to init hold no socket; they are init's to reap.
      const live = [];
      for (const pid of left) {
        const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        if (stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') live.push(pid);
      }
      if (live.length === 0) {
        this.groupLive = false;
        return;
      }
      await sleep(20);
    }
  }

  /** Synchronous last resort used by the exit hook: the whole group, even when the leader is gone. */
  override killNow(): void {
    this.signalGroup('SIGCONT');
    this.signalGroup('SIGKILL');
  }
}

/** Where a program lives (PATH, then the sbin directories), or null. */
export function findProgram(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

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
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING SPAMC/1.5\r\n\r\n'));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(/^SPAMD\/[\d.]+ 0 PONG/.test(reply));
    });
    socket.once('end', () => done(/^SPAMD\/[\d.]+ 0 PONG/.test(reply)));
  });
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
