// Owns: a throw-away Samba Active Directory domain controller for tests (issue 7's `ad` profile):
// provisioned into a temp dir with samba-tool, started in the foreground on loopback, stopped by
// its PID. A DC's ports are fixed (88, 135, 139, 389, 445, 464, 636, 3268, 3269 …), so only one
// runs at a time; plain LDAP binds are allowed on loopback (`ldap server require strong auth = no`).
// Must never: touch a system Samba, listen beyond loopback, or outlive the test process.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { onProcessExit, sleep } from './ports.ts';

const run = promisify(execFile);

export const AD_REALM = 'EXAMPLE.TEST';
export const AD_DOMAIN = 'EXAMPLE';
export const AD_BASE_DN = 'DC=example,DC=test';
export const AD_ADMIN_UPN = 'Administrator@example.test';
export const AD_ADMIN_PASSWORD = 'Admin-Pw-2026!';
const START_TIMEOUT_MS = 60_000;

export interface SambaDc {
  /** ldap://127.0.0.1:389 */
  readonly url: string;
  /** The Global Catalog: ldap://127.0.0.1:3268 */
  readonly gcUrl: string;
  readonly baseDN: string;
  readonly adminUpn: string;
  readonly adminPassword: string;
  readonly dir: string;
  /** samba-tool with the admin's credentials against this DC, e.g. ['user', 'create', 'bob', 'pw']. */
  tool(args: readonly string[]): Promise<string>;
  /** ldapmodify as the admin (changetype records). */
  modify(ldif: string): Promise<void>;
  stop(): Promise<void>;
}

/** Provisions a new domain in a temp dir and starts its DC; resolves once LDAP takes the admin's bind. */
export async function startSambaDc(): Promise<SambaDc> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ldapmta-samba-'));
  await run('samba-tool', [
    'domain', 'provision', `--realm=${AD_REALM}`, `--domain=${AD_DOMAIN}`, '--server-role=dc', '--dns-backend=NONE',
    '--use-rfc2307', `--targetdir=${dir}`, '--option=interfaces=lo', '--option=bind interfaces only=yes',
    '--host-ip=127.0.0.1', `--adminpass=${AD_ADMIN_PASSWORD}`,
  ], { maxBuffer: 16 << 20 });
  // Provisioning does not keep these: plain binds on loopback, logs in the temp dir.
  const conf = path.join(dir, 'etc', 'smb.conf');
  const text = await readFile(conf, 'utf8');
  await writeFile(conf, text.replace(/^\[global\]$/m, `[global]\n\tldap server require strong auth = no\n\tlog file = ${path.join(dir, 'log.%m')}`));

  const child: ChildProcess = spawn('samba', ['-s', conf, '-i', '--debug-stdout'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  const unhook = onProcessExit(kill);

  const stop = async () => {
    kill();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    unhook();
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`samba exited while starting:\n${output}`);
    }
    const client = new Client({ url: 'ldap://127.0.0.1:389', timeout: 2000, connectTimeout: 1000 });
    try {
      await client.bind(AD_ADMIN_UPN, AD_ADMIN_PASSWORD);
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`samba did not answer LDAP within ${START_TIMEOUT_MS} ms:\n${output}`);
      }
      await sleep(250);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  const credentials = ['-H', 'ldap://127.0.0.1', '-U', `Administrator%${AD_ADMIN_PASSWORD}`];
  return {
    url: 'ldap://127.0.0.1:389',
    gcUrl: 'ldap://127.0.0.1:3268',
    baseDN: AD_BASE_DN,
    adminUpn: AD_ADMIN_UPN,
    adminPassword: AD_ADMIN_PASSWORD,
    dir,
    async tool(args) {
      const { stdout } = await run('samba-tool', [...args, ...credentials], { maxBuffer: 16 << 20 });
      return stdout;
    },
    async modify(ldif) {
      const file = path.join(dir, `modify-${Date.now()}-${Math.random().toString(36).slice(2)}.ldif`);
      await writeFile(file, ldif);
      await run('ldapmodify', ['-x', '-H', 'ldap://127.0.0.1:389', '-D', AD_ADMIN_UPN, '-w', AD_ADMIN_PASSWORD, '-f', file]);
    },
    stop,
  };
}
