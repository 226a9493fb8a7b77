// Owns: throw-away OpenLDAP slapd instances for tests (temp dir, slapd.conf, slapadd, start/stop, ldapadd/ldapmodify).
// Must never: bind outside 127.0.0.1, touch the system slapd (/etc/ldap/slapd.d, /var/lib/ldap), or pass data through a shell.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'ldapts';
import { ChildServer } from './child.ts';
import { freePort, onProcessExit, sleep, waitForPort } from './ports.ts';

/** The repository root, derived from this file's location (never from the cwd). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const QMAIL_SCHEMA = path.join(REPO_ROOT, 'schema', 'qmail.schema');
export const QMAIL_SCHEMA_LDIF = path.join(REPO_ROOT, 'schema', 'qmail.ldif');
export const SAMPLE_DIRECTORY_LDIF = path.join(REPO_ROOT, 'schema', 'sample-directory.ldif');

/** Where Debian's slapd package keeps the stock schemas (both .schema and .ldif forms). */
export const SYSTEM_SCHEMA_DIR = '/etc/ldap/schema';
export const SYSTEM_SCHEMAS = ['core', 'cosine', 'nis', 'inetorgperson'] as const;

export const DEFAULT_SUFFIX = 'dc=example,dc=org';
export const ROOT_PASSWORD = 'secret';
/** The read-only service account of schema/sample-directory.ldif. */
export const SERVICE_DN = `cn=ldapmta,${DEFAULT_SUFFIX}`;
export const SERVICE_PASSWORD = 'ldapmta-service';

const INSTALL_HINT = 'apt-get install -y slapd ldap-utils redis-server';
const REQUIRED_BINARIES = ['slapd', 'slapadd', 'ldapadd', 'ldapmodify', 'redis-server'] as const;
export type HarnessBinary = (typeof REQUIRED_BINARIES)[number];
const EXTRA_BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];

export interface Slapd {
  url: string;
  port: number;
  baseDN: string;
  rootDN: string;
  rootPassword: string;
  /** The temp dir holding slapd.conf (or slapd.d), data/ and the pidfile; removed when the process exits. */
  dir: string;
  /** Pid of the running slapd, read from its pidfile (the last one if stopped). */
  pid: number;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). Data and dir are kept for start(). */
  stop(): Promise<void>;
  /** Send a signal without waiting (default SIGKILL, i.e. a crash). start() may follow. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGSTOP, returning once every thread is stopped (a hung server). */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start again on the same port with the same data; no-op when already running. */
  start(): Promise<void>;
  /** Runs `ldapadd` as the rootDN. `ldif` is LDIF text, or a file path when it has no newline. */
  ldapadd(ldif: string): Promise<void>;
  /** Runs `ldapmodify` as the rootDN. `ldif` is LDIF text, or a file path when it has no newline. */
  ldapmodify(ldif: string): Promise<void>;
}

export interface StartSlapdOptions {
  /** Extra LDIF files loaded with slapadd after the sample directory, in order. */
  ldif?: string[];
  /** Load schema/sample-directory.ldif first. Default: true when the suffix is dc=example,dc=org. */
  sample?: boolean;
  /** Database suffix; default dc=example,dc=org. The rootDN is cn=admin,<suffix>. */
  suffix?: string;
  /** Fixed port; default a free random loopback port. */
  port?: number;
  /**
   * slapd.conf lines (`access to …` and their indented `by …` continuations) put into the database
   * section before the harness's own access rules, which still follow them. Default: none.
   */
  acl?: string[];
}

// ---------------------------------------------------------------------------------------------
// Binaries and small process helpers

const resolved = new Map<string, string | null>();

function findBinary(name: string): string | null {
  const cached = resolved.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_BIN_DIRS];
  let found: string | null = null;
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) {
        found = candidate;
        break;
      }
    } catch {
      // not here
    }
  }
  resolved.set(name, found);
  return found;
}

function missingMessage(missing: string[]): string {
  return `missing test binaries: ${missing.join(', ')} (searched PATH and ${EXTRA_BIN_DIRS.join(', ')}); ` +
    `install them with: ${INSTALL_HINT}`;
}

/** Throws when slapd, slapadd, ldapadd, ldapmodify or redis-server (or the stock schemas) are missing. */
export function requireBinaries(): void {
  const missing: string[] = REQUIRED_BINARIES.filter((name) => findBinary(name) === null);
  for (const schema of SYSTEM_SCHEMAS) {
    const file = path.join(SYSTEM_SCHEMA_DIR, `${schema}.schema`);
    if (!fs.existsSync(file)) missing.push(file);
  }
  if (missing.length > 0) throw new Error(missingMessage(missing));
}

/** Absolute path of a harness binary; throws the requireBinaries() message when absent. */
export function binaryPath(name: HarnessBinary): string {
  const found = findBinary(name);
  if (found === null) throw new Error(missingMessage([name]));
  return found;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a program (argv, never a shell) and resolves with its output; rejects on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else {
        const how = signal !== null ? `signal ${signal}` : `code ${code}`;
        reject(new Error(`${path.basename(command)} ${args.join(' ')} failed (${how}): ${stderr.trim() || stdout.trim()}`));
      }
    });
    child.stdin.on('error', () => undefined); // EPIPE when the tool exits early; the exit code tells why
    child.stdin.end(options.input ?? '');
  });
}

/** RFC 2307 {SSHA}: base64(SHA-1(password ‖ salt) ‖ salt) with an 8-byte random salt. */
export function sshaHash(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password, 'utf8').update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** slapd.conf takes double-quoted values; refuse anything that would need escaping there. */
function confValue(value: string, what: string): string {
  if (/["\\\r\n]/.test(value)) throw new Error(`slapd harness: ${what} must not contain quotes, backslashes or newlines: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/** Environment for the ldap-utils clients: ignore ~/.ldaprc, /etc/ldap/ldap.conf and LDAP* variables. */
function clientEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LDAPNOINIT: '1' };
}

// ---------------------------------------------------------------------------------------------
// A managed slapd process

export interface LaunchSlapdOptions {
  /** `['-f', '<dir>/slapd.conf']` or `['-F', '<dir>/slapd.d']`. */
  configArgs: string[];
  /** Temp dir owned by this instance; removed at process exit. */
  dir: string;
  /** The pidfile configured in the config (pidfile / olcPidFile). */
  pidFile: string;
  baseDN: string;
  rootDN: string;
  rootPassword: string;
  port?: number;
}

const START_TIMEOUT_MS = 10_000;

class ManagedSlapd extends ChildServer implements Slapd {
  readonly baseDN: string;
  readonly rootDN: string;
  readonly rootPassword: string;
  readonly dir: string;
  private readonly configArgs: string[];
  private readonly pidFile: string;
  private readonly passwordFile: string;

  constructor(options: LaunchSlapdOptions) {
    super();
    this.configArgs = [...options.configArgs];
    this.dir = options.dir;
    this.pidFile = options.pidFile;
    this.baseDN = options.baseDN;
    this.rootDN = options.rootDN;
    this.rootPassword = options.rootPassword;
    this.passwordFile = path.join(options.dir, 'rootpw');
    this.setPort(options.port ?? 0);
  }

  protected urlFor(port: number): string {
    return `ldap://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.running()) return;
    // After kill(): let the old process go before reusing its port and data.
    await this.terminate(false);
    await fsp.rm(this.pidFile, { force: true }); // never read a stale pid after a crash
    const debug = process.env.LDAPMTA_SLAPD_DEBUG;
    const args = [...this.configArgs, '-h', `ldap://127.0.0.1:${this.port}/`, '-d', debug || '0'];
    const child = this.launch(binaryPath('slapd'), args, debug ? (chunk) => process.stderr.write(chunk) : undefined);

    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      await waitForPort(this.port, {
        timeoutMs: START_TIMEOUT_MS,
        what: 'slapd',
        failed: () => (this.exitInfo === null ? null : `slapd exited (${this.exitInfo}) before answering on port ${this.port}: ${this.outputTail.trim()}`),
      });
      await this.waitForBind(deadline);
      this.lastPid = await this.readPidFile(deadline, child.pid ?? 0);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** The port accepting connections is not enough: wait until a root bind succeeds. */
  private async waitForBind(deadline: number): Promise<void> {
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.exitInfo !== null) throw new Error(`slapd exited (${this.exitInfo}): ${this.outputTail.trim()}`);
      const client = new Client({ url: this.url, connectTimeout: 1000, timeout: 2000 });
      try {
        await client.bind(this.rootDN, this.rootPassword);
        return;
      } catch (err) {
        lastError = err;
      } finally {
        await client.unbind().catch(() => undefined);
      }
      await sleep(25);
    }
    throw new Error(`slapd on ${this.url} did not accept a bind as ${this.rootDN}: ${String(lastError)}`);
  }

  private async readPidFile(deadline: number, fallback: number): Promise<number> {
    while (Date.now() < deadline) {
      try {
        const pid = Number.parseInt((await fsp.readFile(this.pidFile, 'utf8')).trim(), 10);
        if (Number.isInteger(pid) && pid > 0) return pid;
      } catch {
        // not written yet
      }
      await sleep(10);
    }
    return fallback;
  }

  ldapadd(ldif: string): Promise<void> {
    return this.ldapClient('ldapadd', ldif);
  }

  ldapmodify(ldif: string): Promise<void> {
    return this.ldapClient('ldapmodify', ldif);
  }

  private async ldapClient(tool: 'ldapadd' | 'ldapmodify', ldif: string): Promise<void> {
    await fsp.writeFile(this.passwordFile, this.rootPassword, { mode: 0o600 });
    const args = ['-x', '-H', this.url, '-D', this.rootDN, '-y', this.passwordFile];
    const isPath = !ldif.includes('\n');
    if (isPath) args.push('-f', ldif);
    await run(binaryPath(tool), args, { input: isPath ? '' : ldif, env: clientEnv() });
  }
}

function removeDirSync(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts slapd on an already prepared config (slapd.conf or slapd.d) and data; for tests that
 * need their own configuration (e.g. cn=config). Kills the process and removes `dir` at exit.
 */
export async function launchSlapd(options: LaunchSlapdOptions): Promise<Slapd> {
  const instance = new ManagedSlapd(options);
  const unregister = onProcessExit(() => {
    instance.killNow();
    removeDirSync(options.dir);
  });
  // Random ports can be taken between freePort() and slapd's bind: retry with a fresh one.
  const attempts = options.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    instance.setPort(options.port ?? (await freePort()));
    try {
      await instance.start();
      return instance;
    } catch (err) {
      if (attempt >= attempts) {
        unregister();
        removeDirSync(options.dir);
        throw err;
      }
    }
  }
}

function slapdConf(dir: string, suffix: string, rootDN: string, rootPasswordHash: string, acl: readonly string[] = []): string {
  const serviceDN = `cn=ldapmta,${suffix}`;
  for (const line of acl) {
    if (/[\r\n]/.test(line)) throw new Error(`slapd harness: an acl line must not contain a line break: ${JSON.stringify(line)}`);
  }
  const lines = [
    '# Generated by test/harness/slapd.ts for one test run; deleted with its directory.',
    ...SYSTEM_SCHEMAS.map((schema) => `include ${confValue(path.join(SYSTEM_SCHEMA_DIR, `${schema}.schema`), 'schema path')}`),
    `include ${confValue(QMAIL_SCHEMA, 'schema path')}`,
    '',
    `pidfile ${confValue(path.join(dir, 'slapd.pid'), 'temp dir')}`,
    `argsfile ${confValue(path.join(dir, 'slapd.args'), 'temp dir')}`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'loglevel 0',
    'sizelimit unlimited',
    '',
    'database mdb',
    'maxsize 268435456',
    `suffix ${confValue(suffix, 'suffix')}`,
    `rootdn ${confValue(rootDN, 'rootdn')}`,
    `rootpw ${rootPasswordHash}`,
    `directory ${confValue(path.join(dir, 'data'), 'temp dir')}`,
    'index objectClass eq',
    'index mail,mailAlternateAddress,uid eq',
    ...acl,
    // The rootdn bypasses ACLs; the service account may read hashes; anonymous may only bind.
    'access to attrs=userPassword',
    `  by dn.exact=${confValue(serviceDN, 'suffix')} read`,
    '  by anonymous auth',
    '  by * none',
    'access to *',
    '  by * read',
    '',
    'database monitor',
    '',
  ];
  return lines.join('\n');
}

/**
 * A fresh slapd (slapd.conf, mdb) on 127.0.0.1 with the qmail schema and, by default, the sample
 * directory. Each call gets its own temp dir and port.
 */
/** The rootdn of cn=config in startSlapdCnConfig (password ROOT_PASSWORD). */
export const CONFIG_ROOT_DN = 'cn=admin,cn=config';

export interface CnConfigOptions {
  /** Extra attribute lines of cn=config (e.g. 'olcSizeLimit: unlimited'). */
  global?: string[];
  /** Extra attribute lines of the mdb database entry (olcDbIndex, olcAccess …). */
  database?: string[];
  /** LDIF files loaded after the sample directory. */
  ldif?: string[];
}

/**
 * A slapd configured through cn=config (slapd.d), as Debian's package and schema/qmail.ldif
 * expect: the stock schemas plus qmail's loaded as LDIF, one mdb database for dc=example,dc=org
 * holding the sample directory. cn=config's own rootdn is CONFIG_ROOT_DN, for changes at run time.
 */
export async function startSlapdCnConfig(options: CnConfigOptions = {}): Promise<Slapd> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-slapd-cnconfig-'));
  try {
    const configDir = path.join(dir, 'slapd.d');
    await fsp.mkdir(configDir);
    await fsp.mkdir(path.join(dir, 'data'));
    const schemaLdif = (file: string): string => fs.readFileSync(file, 'utf8').trimEnd() + '\n\n';
    const config = [
      'dn: cn=config', 'objectClass: olcGlobal', 'cn: config',
      `olcPidFile: ${path.join(dir, 'slapd.pid')}`, `olcArgsFile: ${path.join(dir, 'slapd.args')}`, ...(options.global ?? []), '',
      'dn: cn=module{0},cn=config', 'objectClass: olcModuleList', 'cn: module{0}',
      'olcModulePath: /usr/lib/ldap', 'olcModuleLoad: back_mdb', '',
      'dn: cn=schema,cn=config', 'objectClass: olcSchemaConfig', 'cn: schema', '',
      '',
    ].join('\n')
      + SYSTEM_SCHEMAS.map((s) => schemaLdif(path.join(SYSTEM_SCHEMA_DIR, `${s}.ldif`))).join('')
      + schemaLdif(QMAIL_SCHEMA_LDIF)
      + [
        'dn: olcDatabase={-1}frontend,cn=config', 'objectClass: olcDatabaseConfig', 'objectClass: olcFrontendConfig',
        'olcDatabase: {-1}frontend', '',
        'dn: olcDatabase={0}config,cn=config', 'objectClass: olcDatabaseConfig', 'olcDatabase: {0}config',
        `olcRootDN: ${CONFIG_ROOT_DN}`, `olcRootPW: ${sshaHash(ROOT_PASSWORD)}`, '',
        'dn: olcDatabase={1}mdb,cn=config', 'objectClass: olcDatabaseConfig', 'objectClass: olcMdbConfig',
        'olcDatabase: {1}mdb', `olcSuffix: ${DEFAULT_SUFFIX}`, `olcDbDirectory: ${path.join(dir, 'data')}`,
        `olcRootDN: cn=admin,${DEFAULT_SUFFIX}`, `olcRootPW: ${sshaHash(ROOT_PASSWORD)}`, ...(options.database ?? []), '',
      ].join('\n');
    const configLdif = path.join(dir, 'config.ldif');
    await fsp.writeFile(configLdif, config);
    const slapadd = binaryPath('slapadd');
    await run(slapadd, ['-n0', '-F', configDir, '-l', configLdif]);
    for (const file of [SAMPLE_DIRECTORY_LDIF, ...(options.ldif ?? [])]) await run(slapadd, ['-n1', '-F', configDir, '-l', path.resolve(file)]);
    return await launchSlapd({
      configArgs: ['-F', configDir], dir, pidFile: path.join(dir, 'slapd.pid'),
      baseDN: DEFAULT_SUFFIX, rootDN: `cn=admin,${DEFAULT_SUFFIX}`, rootPassword: ROOT_PASSWORD,
    });
  } catch (err) {
    removeDirSync(dir);
    throw err;
  }
}

export async function startSlapd(options: StartSlapdOptions = {}): Promise<Slapd> {
  const slapadd = binaryPath('slapadd');
  binaryPath('slapd');
  const suffix = options.suffix ?? DEFAULT_SUFFIX;
  const sample = options.sample ?? suffix.toLowerCase() === DEFAULT_SUFFIX;
  if (sample && suffix.toLowerCase() !== DEFAULT_SUFFIX) {
    throw new Error(`slapd harness: the sample directory lives under ${DEFAULT_SUFFIX}, not ${suffix}`);
  }
  const rootDN = `cn=admin,${suffix}`;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-slapd-'));
  try {
    await fsp.mkdir(path.join(dir, 'data'));
    const conf = path.join(dir, 'slapd.conf');
    await fsp.writeFile(conf, slapdConf(dir, suffix, rootDN, sshaHash(ROOT_PASSWORD), options.acl));
    const files = [...(sample ? [SAMPLE_DIRECTORY_LDIF] : []), ...(options.ldif ?? [])];
    for (const file of files) {
      await run(slapadd, ['-f', conf, '-l', path.resolve(file)]);
    }
    return await launchSlapd({
      configArgs: ['-f', conf],
      dir,
      pidFile: path.join(dir, 'slapd.pid'),
      baseDN: suffix,
      rootDN,
      rootPassword: ROOT_PASSWORD,
      ...(options.port !== undefined ? { port: options.port } : {}),
    });
  } catch (err) {
    removeDirSync(dir);
    throw err;
  }
}
