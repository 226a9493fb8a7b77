// Owns: throw-away rspamd child processes for tests: a self-contained configuration in a temp dir (no
// /etc/rspamd, no Redis, no network), a normal worker and a password-protected controller on random
// 127.0.0.1 ports, and a regexp rule on the test phrase.
// Must never: daemonize, read /etc/rspamd or write /var/lib/rspamd (its hyperscan cache would go
// there by default), resolve names over the network, listen beyond loopback, or touch the system rspamd.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, onProcessExit, sleep, waitForPort } from './ports.ts';
import { findProgram, GroupChildServer } from './child.ts';
import { SPAM_TEST_PHRASE, SPAM_TEST_RULE, SPAM_TEST_SCORE } from './spamd.ts';

export { SPAM_TEST_PHRASE, SPAM_TEST_RULE, SPAM_TEST_SCORE };

const INSTALL_HINT = 'apt-get install -y rspamd';
const START_TIMEOUT_MS = 30_000;
export const RSPAMD_CONTROLLER_PASSWORD = 'ldapmta-controller';

export interface Rspamd {
  /** The normal worker: http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** The controller worker (also answers /checkv2, with the Password header): http://127.0.0.1:PORT */
  controllerUrl: string;
  controllerPort: number;
  controllerPassword: string;
  /** The temp dir (rspamd.conf, rules, caches); removed when the process exits. */
  dir: string;
  pid: number;
  /** The action thresholds written to the configuration; required_score in replies is `reject`. */
  actions: { reject: number; addHeader: number; greylist: number };
  /** How long the last start() took until both workers answered /ping, in ms. */
  startMs: number;
  /** SIGTERM (rspamd stops its workers), then wait for the whole process group. start() may follow. */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  pause(): Promise<void>;
  resume(): void;
  start(): Promise<void>;
}

export interface StartRspamdOptions {
  /** More Lua for the rules file, after the harness's regexp rule (rspamd_config:register_symbol{...}). */
  extraLua?: string;
}

/** GET /ping; true on 200 "pong". */
export async function rspamdPing(url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const response = await fetch(new URL('/ping', url), { signal: AbortSignal.timeout(timeoutMs) });
    return response.status === 200 && (await response.text()).trim() === 'pong';
  } catch {
    return false;
  }
}

const ACTIONS = { reject: 15, addHeader: 6, greylist: 4 };

/** The harness's rules: the test phrase as an rspamd regexp rule on the decoded text parts. */
function rulesLua(extra: string): string {
  return [
    // rspamd.lua in the stock rules creates this table; this configuration loads no stock rules.
    "config['regexp'] = {}",
    `config['regexp']['${SPAM_TEST_RULE}'] = {`,
    `  re = '/${SPAM_TEST_PHRASE}/{sa_body}',`,
    `  score = ${SPAM_TEST_SCORE}.0,`,
    "  description = 'ldapmta test phrase',",
    "  group = 'ldapmta',",
    '}',
    extra,
    '',
  ].join('\n');
}

class ManagedRspamd extends GroupChildServer implements Rspamd {
  controllerUrl = '';
  controllerPort = 0;
  readonly controllerPassword = RSPAMD_CONTROLLER_PASSWORD;
  readonly actions = ACTIONS;
  startMs = 0;

  constructor(
    readonly dir: string,
    private readonly binary: string,
  ) {
    super();
  }

  protected urlFor(port: number): string {
    return `http://127.0.0.1:${port}`;
  }

  setControllerPort(port: number): void {
    this.controllerPort = port;
    this.controllerUrl = this.urlFor(port);
  }

  private config(): string {
    const d = (name: string): string => JSON.stringify(path.join(this.dir, name));
    return [
      `lua = ${d('ldapmta.lua')};`,
      'options {',
      `  pidfile = ${d('rspamd.pid')};`,
      // Only the C regexp module; no Lua plugins are loaded (no `modules { path }`), so nothing wants Redis or DNS.
      '  filters = "regexp";',
      `  dynamic_conf = ${d('rspamd_dynamic')};`,
      `  history_file = ${d('rspamd.history')};`,
      `  cache_file = ${d('symbols.cache')};`,
      `  control_socket = "${path.join(this.dir, 'rspamd.sock')} mode=0600";`,
      `  tempdir = ${d('tmp')};`,
      // Without this rspamd writes its hyperscan cache to /var/lib/rspamd.
      `  hs_cache_dir = ${d('hs')};`,
      '  disable_hyperscan = true;',
      // The stock public-suffix list (9600 entries) costs ~10 s to compile on a cold cache; a few suffixes do for tests.
      `  url_tld = ${d('tld.dat')};`,
      '  allow_raw_input = true;',
      // Nothing here resolves names; should anything try, it fails at once instead of leaving the machine.
      '  dns { nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }',
      '}',
      'logging { type = "console"; level = "notice"; }',
      `actions { reject = ${ACTIONS.reject}; add_header = ${ACTIONS.addHeader}; greylist = ${ACTIONS.greylist}; }`,
      `worker "normal" { bind_socket = "127.0.0.1:${this.port}"; count = 1; mime = true; }`,
      // No secure_ip: the controller wants its password from 127.0.0.1 too.
      `worker "controller" { bind_socket = "127.0.0.1:${this.controllerPort}"; count = 1; password = "${this.controllerPassword}"; static_dir = ${d('www')}; }`,
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    if (this.running()) return;
    await this.terminate(false);
    const conf = path.join(this.dir, 'rspamd.conf');
    await fsp.writeFile(conf, this.config());
    const args = [
      '--no-fork',
      '--config', conf,
      // Variables the compiled-in paths use; pointing them here keeps rspamd out of /etc and /var.
      '--var', `DBDIR=${this.dir}`,
      '--var', `RUNDIR=${this.dir}`,
      '--var', `LOGDIR=${this.dir}`,
      '--var', `LOCAL_CONFDIR=${this.dir}`,
    ];
    // As root rspamd refuses to run its workers ("cannot run rspamd workers as root user, please add
    // -u and -g options ... or specify --insecure flag"); -u would leave them unable to read the temp dir.
    if (process.getuid?.() === 0) args.push('--insecure');
    const started = Date.now();
    const child = this.launch(this.binary, args);
    const failed = (): string | null =>
      this.exitInfo === null ? null : `rspamd exited (${this.exitInfo}) on port ${this.port}: ${this.outputTail.trim()}`;
    const deadline = started + START_TIMEOUT_MS;
    try {
      await waitForPort(this.port, { timeoutMs: START_TIMEOUT_MS, what: 'rspamd', failed });
      while (!(await rspamdPing(this.url)) || !(await rspamdPing(this.controllerUrl))) {
        const failure = failed();
        if (failure !== null) throw new Error(failure);
        if (Date.now() > deadline) throw new Error(`rspamd on ports ${this.port}/${this.controllerPort} does not answer /ping: ${this.outputTail.trim()}`);
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

/** A fresh rspamd answering /ping on its normal and controller workers when this resolves. */
export async function startRspamd(options: StartRspamdOptions = {}): Promise<Rspamd> {
  const binary = findProgram('rspamd');
  if (binary === null) throw new Error(`rspamd not found (searched PATH and /usr/sbin); install it with: ${INSTALL_HINT}`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-rspamd-'));
  for (const sub of ['tmp', 'hs', 'www']) await fsp.mkdir(path.join(dir, sub));
  await fsp.writeFile(path.join(dir, 'tld.dat'), ['com', 'net', 'org', 'example', 'test', 'invalid', ''].join('\n'));
  await fsp.writeFile(path.join(dir, 'ldapmta.lua'), rulesLua(options.extraLua ?? ''));
  const instance = new ManagedRspamd(dir, binary);
  const unregister = onProcessExit(() => {
    instance.killNow();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 1; ; attempt++) {
    instance.setPort(await freePort());
    let controllerPort = await freePort();
    while (controllerPort === instance.port) controllerPort = await freePort();
    instance.setControllerPort(controllerPort);
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
