// Logins checked by binding as the user (directory.auth.method bind) reuse idle connections, as
// Dovecot's auth_bind does, instead of connecting to the directory once per login. Counted by a
// TCP relay in front of a real slapd: every connection the directory opens passes through it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { validateConfig } from '../../src/config.ts';
import { createDirectory } from '../../src/directory/index.ts';
import { silentLogger } from '../../src/log.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

let slapd: Slapd;
let relay: net.Server;
let accepted = 0;
const sockets = new Set<net.Socket>();

before(async () => {
  slapd = await startSlapd();
  const target = new URL(slapd.url);
  relay = net.createServer((client) => {
    accepted++;
    const upstream = net.connect({ host: target.hostname, port: Number(target.port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => relay?.close(resolve));
  await slapd?.stop();
});

const relayUrl = () => `ldap://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;

test('twenty logins by bind (right and wrong passwords) open one connection for the binds, not twenty', async () => {
  const config = validateConfig({
    hostname: 'mx1.example.org', localDomains: ['example.org'], mailboxes: '/var/mail',
    directory: {
      urls: [relayUrl()], bindDN: 'cn=admin,dc=example,dc=org', bindPassword: 'secret', baseDN: 'dc=example,dc=org',
      poolSize: 1, auth: { method: 'bind' },
    },
    cache: { maxEntries: 0, redis: '' }, log: { level: 'silent' },
  });
  const directory = await createDirectory(config, { log: silentLogger() });
  try {
    const before = accepted;
    for (let i = 0; i < 20; i++) {
      const good = i % 3 !== 2;
      const result = await directory.authenticate('alice', good ? 'Alice-pw-1' : 'wrong-password');
      assert.equal(result.ok, good, `login ${i}: ${JSON.stringify(result)}`);
    }
    // One for the searches (poolSize 1) and one for every bind.
    assert.equal(accepted - before, 2, `connections opened: ${accepted - before}`);
    // A bind connection that the server dropped meanwhile is replaced on the next login.
    for (const s of [...sockets]) s.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await directory.authenticate('alice', 'Alice-pw-1');
    assert.equal(again.ok, true, JSON.stringify(again));
    const wrong = await directory.authenticate('alice', 'still-wrong');
    assert.equal(wrong.ok, false, JSON.stringify(wrong));
  } finally {
    await directory.close();
  }
});
