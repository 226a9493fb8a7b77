// Configuration: defaults, validation messages naming the key, environment overrides, secret files.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, parseCidr, parseHostPort, validateConfig } from '../../src/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-config-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('no file: every key has a default', () => {
  const c = loadConfig(null, {});
  assert.equal(c.directory.profile, 'qmail');
  assert.deepEqual(c.directory.urls, []);
  assert.equal(c.cache.ttlSeconds, 300);
  assert.equal(c.cache.negativeTtlSeconds, 60);
  assert.equal(c.listen.smtp, '0.0.0.0:25');
  assert.deepEqual(c.relay.trustedNetworks, ['127.0.0.0/8', '::1/128']);
  assert.equal(c.directory.resolution.dashExt, true);
});

test('a YAML file sets keys; domains are lower-cased', () => {
  const c = loadConfig(file('ok.yaml', 'hostname: MX1.Example.org.\nlocalDomains: [Example.ORG]\ndirectory:\n  urls: [ldap://127.0.0.1:389]\n  poolSize: 4\n'), {});
  assert.equal(c.hostname, 'mx1.example.org');
  assert.deepEqual(c.localDomains, ['example.org']);
  assert.equal(c.directory.poolSize, 4);
  assert.equal(c.directory.timeoutMs, 5000);
});

test('every problem is reported at once, each naming its key', () => {
  const list = problems(() => loadConfig(file('bad.yaml', [
    'directory:', '  poolSize: 0', '  urls: [http://x]', '  colour: blue', 'listen:', '  smtp: "nonsense"',
    'relay:', '  trustedNetworks: [10.0.0.0/33]', 'cache:', '  ttlSeconds: -1',
  ].join('\n')), {}));
  const text = list.join('\n');
  for (const key of ['directory.poolSize', 'directory.urls.0', 'directory.colour: unknown key', 'listen.smtp', 'relay.trustedNetworks.0', 'cache.ttlSeconds']) {
    assert.match(text, new RegExp(key.replace(/\./g, '\\.')), text);
  }
});

test('unreadable and malformed files are named', () => {
  assert.match(problems(() => loadConfig(join(dir, 'missing.yaml'), {}))[0]!, /missing\.yaml: cannot read/);
  assert.match(problems(() => loadConfig(file('broken.yaml', 'a: [\n'), {}))[0]!, /not valid YAML/);
  assert.match(problems(() => loadConfig(file('list.yaml', '- a\n'), {}))[0]!, /top level must be a mapping/);
});

test('environment variables override keys; _FILE reads secrets from files', () => {
  const secret = file('secret', 's3cret\n');
  const c = loadConfig(file('env.yaml', 'directory:\n  bindPassword: fromfile\n'), {
    LDAPMTA_DIRECTORY__BIND_DN: 'cn=ldapmta,dc=example,dc=org',
    LDAPMTA_DIRECTORY__POOL_SIZE: '12',
    LDAPMTA_LOCAL_DOMAINS: '[a.test, b.test]',
    LDAPMTA_DIRECTORY__BIND_PASSWORD_FILE: secret,
    LDAPMTA_CACHE__REDIS: 'redis://127.0.0.1:6379',
    UNRELATED: 'x',
  });
  assert.equal(c.directory.bindDN, 'cn=ldapmta,dc=example,dc=org');
  assert.equal(c.directory.poolSize, 12);
  assert.deepEqual(c.localDomains, ['a.test', 'b.test']);
  assert.equal(c.directory.bindPassword, 's3cret');
  assert.equal(c.cache.redis, 'redis://127.0.0.1:6379');
  assert.match(problems(() => loadConfig(null, { LDAPMTA_DIRECTORY__POOL_SIZE: 'many' })).join(), /directory\.poolSize/);
  assert.match(problems(() => loadConfig(null, { LDAPMTA_DIRECTORY__BIND_PASSWORD_FILE: join(dir, 'nope') })).join(), /BIND_PASSWORD_FILE: cannot read/);
});

test('bindPasswordFile in YAML fills bindPassword', () => {
  const secret = file('bind.pw', 'pw-from-file');
  const c = loadConfig(file('pwfile.yaml', `directory:\n  bindPasswordFile: ${secret}\n`), {});
  assert.equal(c.directory.bindPassword, 'pw-from-file');
});

test('host:port and CIDR parsing', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:25'), { host: '127.0.0.1', port: 25 });
  assert.deepEqual(parseHostPort('[::1]:587'), { host: '::1', port: 587 });
  assert.deepEqual(parseHostPort(':2525'), { host: '0.0.0.0', port: 2525 });
  assert.equal(parseHostPort('host:99999'), null);
  assert.equal(parseHostPort('nohost'), null);
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8 });
  assert.equal(parseCidr('10.0.0.0/33'), null);
  assert.equal(parseCidr('::1/129'), null);
  assert.equal(parseCidr('nonsense'), null);
});

test('listen.admin off loopback needs admin.token (named in the error); smarthost takes Postfix\'s [host]:port', () => {
  const problems = (tree: unknown): string[] => {
    try {
      validateConfig(tree);
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };
  assert.deepEqual(problems({ listen: { admin: '127.0.0.1:8025' } }), []);
  assert.deepEqual(problems({ listen: { admin: '[::1]:8025' } }), []);
  assert.match(problems({ listen: { admin: '0.0.0.0:8025' } }).join('\n'), /^admin\.token: required when listen\.admin \(0\.0\.0\.0:8025\) is not a loopback address$/m);
  assert.deepEqual(problems({ listen: { admin: '0.0.0.0:8025' }, admin: { token: 't' } }), []);
  for (const ok of ['relay.example.net', 'relay.example.net:587', '[relay.example.net]:587', '[10.0.0.1]', '[10.0.0.1]:25']) {
    assert.deepEqual(problems({ delivery: { smarthost: ok } }), [], ok);
  }
  for (const bad of ['relay example.net', 'relay.example.net:', '[relay.example.net', 'a:b:c']) {
    assert.match(problems({ delivery: { smarthost: bad } }).join('\n'), /^delivery\.smarthost: /m, bad);
  }
});

test('directory profile ad: bind logins by default, hash refused naming directory.auth.method; StartTLS with ldaps:// and bad templates named', () => {
  const ad = validateConfig({ directory: { profile: 'ad' } });
  assert.equal(ad.directory.profile, 'ad');
  assert.equal(ad.directory.auth.method, undefined, 'left to the profile: bind for ad');
  assert.deepEqual(ad.directory.ad, { disabledAs: 'noaccess', loginBy: ['sAMAccountName', 'userPrincipalName', 'mail'], inChain: 'auto', memberRangeSize: 0 });
  assert.deepEqual(ad.directory.tls, { ca: '', startTls: false, verify: true });
  assert.equal(ad.directory.followReferrals, false);
  const found = problems(() => validateConfig({
    directory: { mailboxTemplate: '{domain}/../{sAMAccountName}', attributes: { mailHost: 'not an attribute' }, ad: { disabledAs: 'gone', loginBy: [] } },
  }));
  for (const key of ['directory.mailboxTemplate', 'directory.attributes.mailHost', 'directory.ad.disabledAs', 'directory.ad.loginBy']) {
    assert.ok(found.some((p) => p.startsWith(key)), `${key} in ${found.join(' | ')}`);
  }
  // Rules across keys are checked once every key is valid on its own.
  const across = problems(() => validateConfig({ directory: { profile: 'ad', auth: { method: 'hash' }, urls: ['ldaps://dc1.example.test'], tls: { startTls: true } } }));
  assert.deepEqual(across.map((p) => p.split(':')[0]).sort(), ['directory.auth.method', 'directory.tls.startTls']);
  assert.equal(validateConfig({ directory: { mailboxTemplate: '{domain}/{sAMAccountName}/', attributes: { forward: '' } } }).directory.attributes.forward, '');
});

test('secrets from the environment are taken as written, never read as YAML', () => {
  for (const secret of ['#starts-like-a-comment', '12345', 'a: b', '[x]', 'true']) {
    const config = loadConfig(null, { LDAPMTA_DIRECTORY__BIND_PASSWORD: secret, LDAPMTA_ADMIN__TOKEN: secret });
    assert.equal(config.directory.bindPassword, secret);
    assert.equal(config.admin.token, secret);
  }
  assert.equal(loadConfig(null, { LDAPMTA_SMTP__MAX_RECIPIENTS: '7' }).smtp.maxRecipients, 7, 'other values are still YAML');
});
