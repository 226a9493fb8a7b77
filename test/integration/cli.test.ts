// The real ldapmta CLI as a child process: lookup (embedded default directory and a real slapd), exit
// codes (0, 1, 64, 75, 78), check-config validation and secret hiding, and cache flush without Redis.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cli, showCli as show } from '../harness/cli.ts';
import { startRedis } from '../harness/redis.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

// ---------------------------------------------------------------------------------------------
// Helpers


// ---------------------------------------------------------------------------------------------

describe('ldapmta CLI', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ldapmta-cli-test-'));
  let slapd: Slapd;

  function file(name: string, text: string): string {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
  }

  function slapdConfig(name: string, extra = ''): string {
    return file(name, [
      'hostname: mx1.example.org',
      'mailboxes: /var/mail',
      'directory:',
      `  urls: ["${slapd.url}"]`,
      '  bindDN: cn=ldapmta,dc=example,dc=org',
      '  bindPassword: ldapmta-service',
      '  baseDN: dc=example,dc=org',
      '  timeoutMs: 1000',
      '  connectTimeoutMs: 500',
      extra,
    ].join('\n'));
  }

  before(async () => {
    slapd = await startSlapd();
  });

  after(async () => {
    await slapd?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('lookup with no configuration (embedded directory from schema/sample-directory.ldif)', () => {
    test('--json prints the resolution of alice', async () => {
      const r = await cli(['lookup', 'alice@example.org', '--json']);
      assert.equal(r.code, 0, show(r));
      const out = JSON.parse(r.stdout) as {
        address: string;
        key: string;
        source: string;
        resolution: { kind: string; dn: string; mailbox: string; quota: { bytes: number | null } };
      };
      assert.equal(out.resolution.kind, 'mailbox');
      assert.match(out.resolution.dn, /^uid=alice,ou=people,dc=example,dc=org$/i);
      assert.ok(out.resolution.mailbox.endsWith('example.org/alice/'), out.resolution.mailbox);
      assert.equal(out.resolution.quota.bytes, 104857600);
      assert.equal(out.source, 'ldap');
      assert.equal(out.key, 'alice@example.org');
    });

    test('human output names the DN, mailbox, quota, mailHost, deliveryMode, accountStatus and source', async () => {
      const r = await cli(['lookup', 'alice@example.org']);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^alice@example\.org: mailbox$/m);
      assert.match(r.stdout, /^\s+dn\s+uid=alice,ou=people,dc=example,dc=org$/im);
      assert.match(r.stdout, /^\s+mailbox\s+\S*example\.org\/alice\/$/m);
      assert.match(r.stdout, /^\s+quota\s+104857600 bytes/m);
      assert.match(r.stdout, /^\s+mailHost\s+mx1\.example\.org/m);
      assert.match(r.stdout, /^\s+deliveryMode\s+\S/m);
      assert.match(r.stdout, /^\s+accountStatus\s+active$/m);
      assert.match(r.stdout, /^\s+source\s+\S/m);
    });

    test('a disabled account exits 1 with 5.2.1', async () => {
      const r = await cli(['lookup', 'grace@example.org']);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stdout + r.stderr, /5\.2\.1/);
    });

    test('an unknown address exits 1 and says unknown', async () => {
      const r = await cli(['lookup', 'bobby-x@example.org']);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stdout + r.stderr, /unknown/);
    });

    test('something that is not an address exits 64 (usage)', async () => {
      const r = await cli(['lookup', 'not-an-address']);
      assert.equal(r.code, 64, show(r));
      assert.equal(r.stdout, '');
    });
  });

  describe('check-config', () => {
    test('an invalid value exits 78 and names the key', async () => {
      const r = await cli(['check-config', '--config', file('bad.yaml', 'directory:\n  poolSize: 0\n')]);
      assert.equal(r.code, 78, show(r));
      assert.match(r.stderr, /directory\.poolSize/);
    });

    test('lookup with an unreadable directory.tls.ca: exit 78 naming the key', async () => {
      const r = await cli(['lookup', 'alice@example.org', '--config', file('bad-ca.yaml', 'directory:\n  urls: ["ldaps://127.0.0.1:1"]\n  tls:\n    ca: /nonexistent/ca.pem\n')]);
      assert.equal(r.code, 78, show(r));
      assert.match(r.stderr, /directory\.tls\.ca: cannot read/);
    });

    test('serve refuses to start on an invalid file: exit 78, the key named, no listener opened', async () => {
      const r = await cli(['serve', '--config', file('bad-serve.yaml', 'listen:\n  smtp: "127.0.0.1:0"\nsmtp:\n  maxRecipients: many\n')]);
      assert.equal(r.code, 78, show(r));
      assert.match(r.stderr, /smtp\.maxRecipients/);
      assert.doesNotMatch(r.stdout, /ldapmta started/);
    });

    test('a valid file exits 0 and does not print the bind password', async () => {
      const password = 'S3cret-Bind-Pw-for-check-config';
      const path = file('good.yaml', [
        'hostname: mx1.example.org',
        'directory:',
        '  urls: ["ldap://127.0.0.1:389"]',
        '  bindDN: cn=ldapmta,dc=example,dc=org',
        `  bindPassword: ${password}`,
        '',
      ].join('\n'));
      const r = await cli(['check-config'], { LDAPMTA_CONFIG: path });
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /configuration is valid/);
      assert.match(r.stdout, /cn=ldapmta,dc=example,dc=org/);
      assert.ok(!r.stdout.includes(password), 'check-config printed the bind password');
      assert.ok(!r.stderr.includes(password), 'check-config wrote the bind password to stderr');
    });
  });

  describe('lookup against a real slapd', () => {
    test('resolves through the configured server with the service account', async () => {
      const path = slapdConfig('slapd.yaml');
      const r = await cli(['lookup', 'frank@example.org', '--json'], { LDAPMTA_CONFIG: path });
      assert.equal(r.code, 0, show(r));
      const out = JSON.parse(r.stdout) as { source: string; resolution: { kind: string; dn: string; mailbox: string; quota: { bytes: number | null } } };
      assert.equal(out.resolution.kind, 'mailbox');
      assert.match(out.resolution.dn, /^uid=frank,/i);
      assert.equal(out.resolution.mailbox, '/var/mail/example.org/frank/');
      assert.equal(out.resolution.quota.bytes, 1048576);
      assert.equal(out.source, 'ldap');
    });

    test('with slapd stopped: exit 75 (tempfail) and 4.4.3 on stderr', async () => {
      const path = slapdConfig('slapd-down.yaml');
      await slapd.stop();
      try {
        const r = await cli(['lookup', 'frank@example.org'], { LDAPMTA_CONFIG: path });
        assert.equal(r.code, 75, show(r));
        assert.match(r.stderr, /4\.4\.3/);
        assert.ok(!r.stdout.includes('unknown'), 'an outage was reported as unknown');
      } finally {
        await slapd.start();
      }
    });
  });

  test('with cache.redis, a second lookup process answers from the shared Redis tier', async () => {
    const redis = await startRedis();
    try {
      const path = slapdConfig('redis.yaml', `cache:\n  redis: "${redis.url}"\n  keyPrefix: "cli-test:"`);
      const first = await cli(['lookup', 'bob@example.org', '--json'], { LDAPMTA_CONFIG: path });
      assert.equal(first.code, 0, show(first));
      assert.equal((JSON.parse(first.stdout) as { source: string }).source, 'ldap');
      const second = await cli(['lookup', 'bob@example.org'], { LDAPMTA_CONFIG: path });
      assert.equal(second.code, 0, show(second));
      assert.match(second.stdout, /source\s+cache \(redis\)/);
    } finally {
      await redis.stop();
    }
  });

  test('cache flush without cache.redis asks the running server (listen.admin): none there exits 69 naming where it asked; no listen.admin exits 78', async () => {
    const r = await cli(['cache', 'flush', 'bob@example.org'], { LDAPMTA_CONFIG: slapdConfig('noredis.yaml'), LDAPMTA_LISTEN__ADMIN: '127.0.0.1:1' });
    assert.equal(r.code, 69, show(r));
    assert.match(r.stderr, /cannot reach the server at http:\/\/127\.0\.0\.1:1\/cache\/flush\?address=bob%40example\.org/);
    const none = await cli(['cache', 'flush', 'bob@example.org'], { LDAPMTA_CONFIG: slapdConfig('noredis.yaml'), LDAPMTA_LISTEN__ADMIN: '' });
    assert.equal(none.code, 78, show(none));
    assert.match(none.stderr, /cache\.redis is not set.*listen\.admin is not set/);
  });
});
