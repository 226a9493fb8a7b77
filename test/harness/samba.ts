// Owns: a throw-away Samba Active Directory domain controller for tests (issue 7's `ad` profile):
// provisioned into a temp dir with samba-tool, started in the foreground on loopback, stopped by
// its PID. A DC's ports are fixed (88, 135, 139, 389, 445, 464, 636, 3268, 3269 …), so only one
// runs at a time; plain LDAP binds are allowed on loopback (`ldap server require strong auth = no`).
// LDAPS (636, GC 3269) and StartTLS (389, 3268) use the project's test certificate
// (test/fixtures/tls-test.crt: CN mx1.example.org, SAN localhost + 127.0.0.1). Schema updates are
// allowed, so a test can add the Exchange attributes the way an Exchange install would
// (extendSchemaForExchange).
// Must never: touch a system Samba, listen beyond loopback, or outlive the test process.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { canConnect, onProcessExit, sleep } from './ports.ts';

const run = promisify(execFile);

export const AD_REALM = 'EXAMPLE.TEST';
export const AD_DOMAIN = 'EXAMPLE';
export const AD_BASE_DN = 'DC=example,DC=test';
export const AD_CONFIG_DN = `CN=Configuration,${AD_BASE_DN}`;
export const AD_SCHEMA_DN = `CN=Schema,${AD_CONFIG_DN}`;
export const AD_ADMIN_UPN = 'Administrator@example.test';
export const AD_ADMIN_PASSWORD = 'Admin-Pw-2026!';
const START_TIMEOUT_MS = 60_000;

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
/** The self-signed test certificate the DC serves on 636/3269 and after StartTLS (SAN localhost, 127.0.0.1). */
export const AD_TLS_CERT_FILE = path.join(FIXTURES, 'tls-test.crt');
export const AD_TLS_KEY_FILE = path.join(FIXTURES, 'tls-test.key');

export interface SambaDc {
  /** ldap://127.0.0.1:389 (StartTLS offered with the test certificate) */
  readonly url: string;
  /** The Global Catalog: ldap://127.0.0.1:3268 (StartTLS offered too) */
  readonly gcUrl: string;
  /** ldaps://localhost:636 — trust `tlsCa`; 127.0.0.1 matches the certificate as well */
  readonly ldapsUrl: string;
  /** The Global Catalog over LDAPS: ldaps://localhost:3269, same certificate */
  readonly gcLdapsUrl: string;
  /** PEM of the (self-signed) certificate, for `tlsOptions: { ca: [dc.tlsCa] }` / `startTLS({ ca: [dc.tlsCa] })` */
  readonly tlsCa: string;
  readonly baseDN: string;
  /** CN=Schema,CN=Configuration,<base> */
  readonly schemaDN: string;
  readonly adminUpn: string;
  readonly adminPassword: string;
  readonly dir: string;
  /** How long `samba-tool domain provision` and the start (until the admin's bind worked) took. */
  readonly timings: { readonly provisionMs: number; readonly startMs: number };
  /** samba-tool with the admin's credentials against this DC, e.g. ['user', 'create', 'bob', 'pw']. */
  tool(args: readonly string[]): Promise<string>;
  /** ldapmodify as the admin (changetype records). */
  modify(ldif: string): Promise<void>;
  /** ldapmodify -a as the admin: records without a changetype are added (e.g. many users in one LDIF). */
  add(ldif: string): Promise<void>;
  /** Same as extendSchemaForExchange(dc). */
  extendSchemaForExchange(): Promise<ExchangeSchemaResult>;
  stop(): Promise<void>;
}

/** Provisions a new domain in a temp dir and starts its DC; resolves once LDAP takes the admin's bind. */
export async function startSambaDc(): Promise<SambaDc> {
  // The ports are fixed: if something answers on 389 now, the admin bind below could reach it
  // instead of our DC (e.g. a DC leaked by an earlier run), so refuse to start.
  if (await canConnect(389)) throw new Error('startSambaDc: 127.0.0.1:389 is taken (another DC still running? see `pgrep -a samba`)');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ldapmta-samba-'));
  const t0 = Date.now();
  let provisionMs = 0;
  let tlsCa = '';
  let conf = '';
  try {
    await run('samba-tool', [
      'domain', 'provision', `--realm=${AD_REALM}`, `--domain=${AD_DOMAIN}`, '--server-role=dc', '--dns-backend=NONE',
      '--use-rfc2307', `--targetdir=${dir}`, '--option=interfaces=lo', '--option=bind interfaces only=yes',
      '--host-ip=127.0.0.1', `--adminpass=${AD_ADMIN_PASSWORD}`,
    ], { maxBuffer: 16 << 20 });
    provisionMs = Date.now() - t0;

    // Samba refuses a key file that others can read; it wants 0600 on all three.
    const tlsDir = path.join(dir, 'tls');
    await mkdir(tlsDir, { mode: 0o700 });
    const tlsFiles = { cert: path.join(tlsDir, 'cert.pem'), key: path.join(tlsDir, 'key.pem'), ca: path.join(tlsDir, 'ca.pem') };
    for (const [to, from] of [[tlsFiles.cert, AD_TLS_CERT_FILE], [tlsFiles.key, AD_TLS_KEY_FILE], [tlsFiles.ca, AD_TLS_CERT_FILE]] as const) {
      await copyFile(from, to);
      await chmod(to, 0o600);
    }
    tlsCa = await readFile(AD_TLS_CERT_FILE, 'utf8');

    // Provisioning does not keep these: plain binds on loopback, logs in the temp dir, schema
    // updates (an Exchange-style extension; without it a schema add fails with 53 "updates are not
    // allowed"), TLS with the test certificate (without a keyfile Samba would generate a key at its
    // first start), and no fsync of the throw-away database.
    conf = path.join(dir, 'etc', 'smb.conf');
    const text = await readFile(conf, 'utf8');
    const global = [
      'ldap server require strong auth = no',
      `log file = ${path.join(dir, 'log.%m')}`,
      'dsdb:schema update allowed = true',
      'ldb:nosync = true',
      'tls enabled = yes',
      `tls keyfile = ${tlsFiles.key}`,
      `tls certfile = ${tlsFiles.cert}`,
      `tls cafile = ${tlsFiles.ca}`,
    ];
    await writeFile(conf, text.replace(/^\[global\]$/m, `[global]\n${global.map((l) => `\t${l}`).join('\n')}`));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const t1 = Date.now();
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
    // Samba's worker processes may still write their last log lines after the root process exits (ENOTEMPTY): retried.
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
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
      await sleep(100);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
  const startMs = Date.now() - t1;

  const credentials = ['-H', 'ldap://127.0.0.1', '-U', `Administrator%${AD_ADMIN_PASSWORD}`];
  const ldapmodify = async (ldif: string, extra: readonly string[]) => {
    const file = path.join(dir, `modify-${Date.now()}-${Math.random().toString(36).slice(2)}.ldif`);
    await writeFile(file, ldif);
    await run('ldapmodify', [...extra, '-x', '-H', 'ldap://127.0.0.1:389', '-D', AD_ADMIN_UPN, '-w', AD_ADMIN_PASSWORD, '-f', file], { maxBuffer: 64 << 20 });
    await rm(file, { force: true });
  };
  const dc: SambaDc = {
    url: 'ldap://127.0.0.1:389',
    gcUrl: 'ldap://127.0.0.1:3268',
    ldapsUrl: 'ldaps://localhost:636',
    gcLdapsUrl: 'ldaps://localhost:3269',
    tlsCa,
    baseDN: AD_BASE_DN,
    schemaDN: AD_SCHEMA_DN,
    adminUpn: AD_ADMIN_UPN,
    adminPassword: AD_ADMIN_PASSWORD,
    dir,
    timings: { provisionMs, startMs },
    async tool(args) {
      const { stdout } = await run('samba-tool', [...args, ...credentials], { maxBuffer: 16 << 20 });
      return stdout;
    },
    modify: (ldif) => ldapmodify(ldif, []),
    add: (ldif) => ldapmodify(ldif, ['-a']),
    extendSchemaForExchange: () => extendSchemaForExchange(dc),
    stop,
  };
  return dc;
}

/** An attributeSchema entry as Exchange's schema update creates it (real OIDs and syntaxes). */
export interface ExchangeAttribute {
  readonly lDAPDisplayName: string;
  readonly cn: string;
  readonly attributeID: string;
  readonly attributeSyntax: string;
  readonly oMSyntax: number;
  /** base64 of the BER oMObjectClass (only DN-syntax attributes: 2.5.5.1 / oMSyntax 127) */
  readonly oMObjectClass?: string;
  readonly isSingleValued: boolean;
  readonly searchFlags?: number;
  /** replicated to the Global Catalog (note: Samba's GC returns every attribute regardless) */
  readonly partialAttributeSet?: boolean;
}

/** The Exchange attributes the `ad` profile reads; none of them is in Samba 4.17's schema. */
export const EXCHANGE_ATTRIBUTES: readonly ExchangeAttribute[] = [
  { lDAPDisplayName: 'targetAddress', cn: 'ms-Exch-Target-Address', attributeID: '1.2.840.113556.1.2.352', attributeSyntax: '2.5.5.12', oMSyntax: 64, isSingleValued: true, searchFlags: 1, partialAttributeSet: true },
  // oMObjectClass 0x2b0c0287731c00854a: the DS-DN object class of DN-syntax attributes
  { lDAPDisplayName: 'altRecipient', cn: 'ms-Exch-Alt-Recipient', attributeID: '1.2.840.113556.1.2.126', attributeSyntax: '2.5.5.1', oMSyntax: 127, oMObjectClass: Buffer.from('2b0c0287731c00854a', 'hex').toString('base64'), isSingleValued: true },
  { lDAPDisplayName: 'deliverAndRedirect', cn: 'ms-Exch-Deliv-And-Redirect', attributeID: '1.2.840.113556.1.2.241', attributeSyntax: '2.5.5.8', oMSyntax: 1, isSingleValued: true },
  { lDAPDisplayName: 'mDBStorageQuota', cn: 'ms-Exch-MDB-Storage-Quota', attributeID: '1.2.840.113556.1.2.276', attributeSyntax: '2.5.5.9', oMSyntax: 2, isSingleValued: true },
  { lDAPDisplayName: 'extensionAttribute1', cn: 'ms-Exch-Extension-Attribute-1', attributeID: '1.2.840.113556.1.2.423', attributeSyntax: '2.5.5.12', oMSyntax: 64, isSingleValued: true, partialAttributeSet: true },
];

export interface ExchangeSchemaResult {
  /** lDAPDisplayNames whose attributeSchema entry was created now */
  readonly added: string[];
  /** lDAPDisplayNames the schema already had (left as they were) */
  readonly skipped: string[];
  readonly ms: number;
}

/**
 * Extends the DC's schema as an Exchange install would: adds the missing attributeSchema entries of
 * `attributes` under CN=Schema, refreshes the schema (schemaUpdateNow on the rootDSE), adds them as
 * mayContain of the auxiliary class mailRecipient — which user, contact and group carry as a
 * systemAuxiliaryClass, so all three can then hold them — and refreshes again. Idempotent.
 * Needs `dsdb:schema update allowed = true` (startSambaDc sets it). Takes about 1 s.
 */
export async function extendSchemaForExchange(dc: SambaDc, attributes: readonly ExchangeAttribute[] = EXCHANGE_ATTRIBUTES): Promise<ExchangeSchemaResult> {
  const started = Date.now();
  const client = new Client({ url: dc.url });
  let existing: Set<string>;
  let mayContain: Set<string>;
  try {
    await client.bind(dc.adminUpn, dc.adminPassword);
    const filter = `(|${attributes.map((a) => `(lDAPDisplayName=${a.lDAPDisplayName})`).join('')})`;
    const { searchEntries } = await client.search(dc.schemaDN, { scope: 'one', filter, attributes: ['lDAPDisplayName'] });
    existing = new Set(searchEntries.map((e) => String(e.lDAPDisplayName).toLowerCase()));
    const [recipient] = (await client.search(`CN=Mail-Recipient,${dc.schemaDN}`, { scope: 'base', attributes: ['mayContain', 'systemMayContain'] })).searchEntries;
    mayContain = new Set(['mayContain', 'systemMayContain'].flatMap((k) => [recipient?.[k] ?? []].flat()).map((v) => String(v).toLowerCase()));
  } finally {
    await client.unbind().catch(() => undefined);
  }

  const added = attributes.filter((a) => !existing.has(a.lDAPDisplayName.toLowerCase()));
  const skipped = attributes.filter((a) => existing.has(a.lDAPDisplayName.toLowerCase())).map((a) => a.lDAPDisplayName);
  const refresh = ['dn:', 'changetype: modify', 'add: schemaUpdateNow', 'schemaUpdateNow: 1', '-', ''];
  const records: string[] = [];
  for (const a of added) {
    records.push(
      `dn: CN=${a.cn},${dc.schemaDN}`,
      'changetype: add',
      'objectClass: top',
      'objectClass: attributeSchema',
      `cn: ${a.cn}`,
      `lDAPDisplayName: ${a.lDAPDisplayName}`,
      `attributeID: ${a.attributeID}`,
      `attributeSyntax: ${a.attributeSyntax}`,
      `oMSyntax: ${a.oMSyntax}`,
      ...(a.oMObjectClass ? [`oMObjectClass:: ${a.oMObjectClass}`] : []),
      `isSingleValued: ${a.isSingleValued ? 'TRUE' : 'FALSE'}`,
      ...(a.searchFlags !== undefined ? [`searchFlags: ${a.searchFlags}`] : []),
      ...(a.partialAttributeSet ? ['isMemberOfPartialAttributeSet: TRUE'] : []),
      '',
    );
  }
  if (added.length > 0) records.push(...refresh);
  const allowed = attributes.filter((a) => !mayContain.has(a.lDAPDisplayName.toLowerCase()));
  if (allowed.length > 0) {
    records.push(
      `dn: CN=Mail-Recipient,${dc.schemaDN}`,
      'changetype: modify',
      'add: mayContain',
      ...allowed.map((a) => `mayContain: ${a.lDAPDisplayName}`),
      '-',
      '',
      ...refresh,
    );
  }
  if (records.length > 0) await dc.modify(records.join('\n'));
  return { added: added.map((a) => a.lDAPDisplayName), skipped, ms: Date.now() - started };
}
