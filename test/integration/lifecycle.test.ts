// The server's life as a real process (`ldapmta serve --config FILE` as a child): SIGHUP and
// `ldapmta reload` read the file again without dropping a connection (the process's cache emptied,
// a renewed certificate served to new connections, other changes named as needing a restart), an
// invalid file changes nothing and names the key, and SIGTERM hands an open SMTP session a
// 421 4.3.2 after the grace period and exits 0.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { cli, showCli } from '../harness/cli.ts';
import { freePort } from '../harness/ports.ts';
import { serve, type ServeChild } from '../harness/serve.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply } from '../fixtures/smtp-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-lifecycle-'));
const configFile = join(dir, 'ldapmta.yaml');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let slapd: Slapd;
let smtpPort: number;
let adminPort: number;
let server: ServeChild;

function configTree(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hostname: 'mx1.example.org', localDomains: ['example.org', 'example.net'], spool: join(dir, 'spool'), mailboxes: join(dir, 'mail'),
    listen: { smtp: `127.0.0.1:${smtpPort}`, submission: '', submissions: '', pop3: '', imap: '', admin: `127.0.0.1:${adminPort}` },
    relay: { trustedNetworks: [] },
    directory: { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: slapd.baseDN },
    cache: { maxEntries: 1000, ttlSeconds: 300 },
    smtp: { tls: { cert, key } },
    delivery: { dnsServers: ['127.0.0.1:9'] },
    shutdown: { graceSeconds: 1, deliveryWaitSeconds: 2 },
    log: { level: 'info' },
    ...extra,
  };
}

/** A new self-signed certificate for localhost in cert.pem/key.pem. */
function newCertificate(cn: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
}

/** The SHA-256 fingerprint of the certificate the server shows after STARTTLS. */
async function servedCertificate(): Promise<string> {
  const t = await Transcript.open(smtpPort);
  try {
    await t.hello();
    assertReply(await t.command('STARTTLS'), 220, null, 'STARTTLS');
    const socket = tlsConnect({ socket: (t as unknown as { socket: Socket }).socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const raw = socket.getPeerCertificate().raw;
    socket.destroy();
    return createHash('sha256').update(raw).digest('hex');
  } finally {
    t.close();
  }
}

const fingerprintOf = (file: string) => createHash('sha256').update(Buffer.from(execFileSync('openssl', ['x509', '-in', file, '-outform', 'DER']))).digest('hex');

async function rcpt(address: string) {
  const t = await Transcript.open(smtpPort);
  try {
    await t.hello();
    await t.command('MAIL FROM:<sender@outside.test>');
    return await t.command(`RCPT TO:<${address}>`);
  } finally {
    t.close();
  }
}

const env = () => ({ LDAPMTA_CONFIG: configFile });

before(async () => {
  slapd = await startSlapd();
  smtpPort = await freePort();
  adminPort = await freePort();
  copyFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.crt'), cert);
  copyFileSync(join(REPO_ROOT, 'test/fixtures/tls-test.key'), key);
  writeFileSync(configFile, stringify(configTree()));
  server = await serve(configFile);
});

after(async () => {
  await server?.kill();
  await slapd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('reload and stop of a running server', () => {
  test('SIGHUP: a renewed certificate is served to new connections; a changed limit is named as needing a restart', async () => {
    assert.equal(await servedCertificate(), fingerprintOf(join(REPO_ROOT, 'test/fixtures/tls-test.crt')));
    newCertificate('renewed.example.org');
    writeFileSync(configFile, stringify(configTree({ smtp: { tls: { cert, key }, maxRecipients: 7 } })));
    const before = server.lines().length;
    server.process.kill('SIGHUP');
    const reloaded = await server.waitForLine((l) => l.msg.startsWith('configuration reloaded'), 'the reload', before);
    assert.deepEqual(reloaded.restartNeeded, ['smtp.maxRecipients']);
    assert.ok((reloaded.applied as string[]).includes('TLS certificate and key read again'), JSON.stringify(reloaded));
    assert.equal(await servedCertificate(), fingerprintOf(cert), 'the new certificate');
  });

  test('`ldapmta reload` empties the process\'s cache: a directory change shows at once instead of after the TTL', async () => {
    assertReply(await rcpt('bob@example.org'), 250, null, 'bob active (now cached for 300 s)');
    await slapd.ldapmodify('dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: accountStatus\naccountStatus: disabled\n');
    assertReply(await rcpt('bob@example.org'), 250, null, 'still the cached answer');
    const reload = await cli(['reload'], env());
    assert.equal(reload.code, 0, showCli(reload));
    assert.match(reload.stdout, /^reloaded: directory cache of this process emptied/m);
    assertReply(await rcpt('bob@example.org'), 550, '5.2.1', 'the directory\'s answer now');
  });

  test('an invalid configuration changes nothing: SIGHUP logs the key, `ldapmta reload` exits 78 naming it, the server answers on', async () => {
    writeFileSync(configFile, stringify(configTree({ smtp: { tls: { cert, key }, maxRecipients: 'many' } })));
    const before = server.lines().length;
    server.process.kill('SIGHUP');
    const refused = await server.waitForLine((l) => l.msg === 'configuration not reloaded; the server runs on as before', 'the refusal', before);
    assert.match((refused.problems as string[]).join('\n'), /smtp\.maxRecipients/);
    // The CLI reads the same file: it refuses before asking the server, naming the key.
    const reload = await cli(['reload'], env());
    assert.equal(reload.code, 78, showCli(reload));
    assert.match(reload.stderr, /smtp\.maxRecipients/);
    assertReply(await rcpt('alice@example.org'), 250, null, 'still serving');
    writeFileSync(configFile, stringify(configTree()));
  });

  test('SIGTERM: an open session gets 421 4.3.2 after the grace period, and the process exits 0', async () => {
    const t = await Transcript.open(smtpPort);
    await t.hello();
    const started = Date.now();
    server.process.kill('SIGTERM');
    const farewell = await t.reply(10_000);
    t.close();
    assertReply(farewell, 421, '4.3.2', 'shutdown');
    assert.ok(Date.now() - started >= 900, 'after shutdown.graceSeconds (1 s)');
    assert.equal(await server.exited, 0);
    assert.ok(server.lines().some((l) => l.msg === 'ldapmta stopped'));
  });
});
