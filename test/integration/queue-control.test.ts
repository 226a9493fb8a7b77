// Acting on the queue of a running server: `ldapmta queue list|show|flush|retry|delete|bounce`
// through the admin HTTP API (bearer token when set), and the one delay warning per message.
// Messages are held by a remote domain whose DNS never answers (the harness's closed DNS port).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cli, showCli } from '../harness/cli.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { freePort } from '../harness/ports.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';
import { assertReply, marker, messagesWith, queueIdOf, simpleMessage, transaction, waitFor, waitForMessages } from '../fixtures/smtp-helpers.ts';

async function queueOne(server: TestServer, subject: string): Promise<string> {
  const t = await Transcript.open(server.smtpPort);
  try {
    await t.hello();
    const result = await transaction(t, 'bob@example.org', ['someone@held.test'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    await t.command('QUIT').catch(() => undefined);
    return queueIdOf(result.end!);
  } finally {
    t.close();
  }
}

function status(port: number, path: string, method = 'GET', token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

describe('queue control through the admin API', () => {
  let slapd: Slapd;
  let server: TestServer;
  let guarded: TestServer;
  let adminPort: number;
  let guardedPort: number;
  const env = () => ({ LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${adminPort}` });

  before(async () => {
    slapd = await startSlapd();
    adminPort = await freePort();
    guardedPort = await freePort();
    // relay from loopback allowed; retries far apart so a message waits for the administrator.
    const common = { relay: { trustedNetworks: ['127.0.0.0/8'] }, queue: { retryMinSeconds: 600 } };
    // With a memory cache (the harness turns it off by default), for `ldapmta cache flush`.
    server = await startServer(slapd, { ...common, listen: { admin: `127.0.0.1:${adminPort}` }, cache: { maxEntries: 1000, ttlSeconds: 3600 } });
    guarded = await startServer(slapd, { ...common, listen: { admin: `127.0.0.1:${guardedPort}` }, admin: { token: 'sesame' } });
  });
  after(async () => {
    await server?.stop();
    await guarded?.stop();
    await slapd?.stop();
  });

  test('ldapmta cache flush [ADDRESS] without Redis asks the running server through the admin API', async () => {
    const lookup = async () => (await (await fetch(`http://127.0.0.1:${adminPort}/lookup?address=bob%40example.org`)).json()) as { source: string };
    const quota = (bytes: number) => slapd.ldapmodify(`dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mailQuotaSize\nmailQuotaSize: ${bytes}\n`);
    await quota(7_000_001);
    await lookup();
    await quota(7_000_002);
    const cached = await lookup();
    assert.equal(cached.source, 'memory');
    assert.match(JSON.stringify(cached), /7000001/, 'the running server answers from its memory, as before the change');

    const one = await cli(['cache', 'flush', 'bob@example.org'], env());
    assert.equal(one.code, 0, showCli(one));
    assert.equal(one.stdout, 'bob@example.org: flushed\n');
    const fresh = await lookup();
    assert.equal(fresh.source, 'ldap');
    assert.match(JSON.stringify(fresh), /7000002/);

    const all = await cli(['cache', 'flush'], env());
    assert.equal(all.code, 0, showCli(all));
    assert.equal(all.stdout, 'cache flushed\n');
    assert.equal((await lookup()).source, 'ldap');

    const bad = await cli(['cache', 'flush', 'no-at-sign'], env());
    assert.equal(bad.code, 64, showCli(bad));
    assert.match(bad.stderr, /5\.1\.3/);
  });

  const show = async (id: string) => JSON.parse((await cli(['queue', 'show', id, '--json'], env())).stdout) as { recipients: { attempts: number; lastError: { status: string } | null }[] };

  test('list and show: the deferred message, its recipient, attempts and last error (human and --json)', async () => {
    const subject = marker('held');
    const id = await queueOne(server, subject);
    await waitFor('the first attempt', async () => (await show(id)).recipients[0]!.attempts >= 1, 10_000);
    const list = await cli(['queue', 'list', '--json'], env());
    assert.equal(list.code, 0, showCli(list));
    const parsed = JSON.parse(list.stdout) as { messages: { id: string; sender: string }[] };
    assert.ok(parsed.messages.some((m) => m.id === id && m.sender === 'bob@example.org'), list.stdout);
    const human = await cli(['queue', 'show', id], env());
    assert.equal(human.code, 0, showCli(human));
    assert.match(human.stdout, new RegExp(`^${id}[ *] `, 'm'));
    assert.match(human.stdout, /someone@held\.test {2}pending, 1 attempt\(s\), next .* \(4\.4\.3 /);
  });

  test('flush and retry make a deferred message due now: another attempt at once', async () => {
    const id = await queueOne(server, marker('flush'));
    await waitFor('the first attempt', async () => (await show(id)).recipients[0]!.attempts >= 1, 10_000);
    const flushed = await cli(['queue', 'flush'], env());
    assert.equal(flushed.code, 0, showCli(flushed));
    assert.match(flushed.stdout, /^\d+ message\(s\) scheduled for delivery now$/m);
    await waitFor('the second attempt', async () => (await show(id)).recipients[0]!.attempts >= 2, 10_000);
    const retried = await cli(['queue', 'retry', id], env());
    assert.equal(retried.code, 0, showCli(retried));
    await waitFor('the third attempt', async () => (await show(id)).recipients[0]!.attempts >= 3, 10_000);
  });

  test('bounce returns the message to its sender now (one DSN, 5.0.0); delete removes one without a DSN', async () => {
    const bounced = marker('bounced');
    const deleted = marker('deleted');
    const a = await queueOne(server, bounced);
    const b = await queueOne(server, deleted);
    const rb = await cli(['queue', 'bounce', a], env());
    assert.equal(rb.code, 0, showCli(rb));
    const rd = await cli(['queue', 'delete', b], env());
    assert.equal(rd.code, 0, showCli(rd));
    const [dsn] = await waitForMessages(server.maildir('bob'), bounced, 1, 10_000);
    assert.match(dsn!.body, /Status: 5\.0\.0/);
    assert.match(dsn!.body, /returned to the sender by the administrator/);
    for (const id of [a, b]) assert.equal((await cli(['queue', 'show', id], env())).code, 1, `${id} is gone`);
    assert.deepEqual(await messagesWith(server.maildir('bob'), deleted), [], 'no DSN for the deleted message');
  });

  test('hold keeps a message out of flush and retries (recorded in its todo file, "!" in the list); release makes it due at once', async () => {
    const id = await queueOne(server, marker('hold'));
    await waitFor('the first attempt', async () => (await show(id)).recipients[0]!.attempts >= 1, 10_000);
    const held = await cli(['queue', 'hold', id], env());
    assert.equal(held.code, 0, showCli(held));
    assert.equal(held.stdout, `${id}: on hold\n`);
    assert.equal((JSON.parse((await cli(['queue', 'show', id, '--json'], env())).stdout) as { held: boolean }).held, true);
    assert.match((await cli(['queue', 'show', id], env())).stdout, new RegExp(`^${id}! `, 'm'));
    const todo = JSON.parse(readFileSync(join(server.config.spool, 'todo', `${id}.json`), 'utf8')) as { held?: boolean };
    assert.equal(todo.held, true, 'the hold survives a restart');
    const attempts = (await show(id)).recipients[0]!.attempts;
    assert.equal((await cli(['queue', 'flush'], env())).code, 0);
    assert.equal((await cli(['queue', 'retry', id], env())).code, 0);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await show(id)).recipients[0]!.attempts, attempts, 'no attempt while held');
    const released = await cli(['queue', 'release', id], env());
    assert.equal(released.code, 0, showCli(released));
    await waitFor('an attempt after the release', async () => (await show(id)).recipients[0]!.attempts > attempts, 10_000);
    assert.equal((JSON.parse(readFileSync(join(server.config.spool, 'todo', `${id}.json`), 'utf8')) as { held?: boolean }).held, undefined);
    assert.equal((await cli(['queue', 'hold', '01k90ucons0000eguk0v'], env())).code, 1, 'unknown ID');
  });

  test('exit codes a script can rely on: unknown ID 1, bad usage 64, no server 69', async () => {
    assert.equal((await cli(['queue', 'show', '01k8aaaaaa0000aaaaaa'], env())).code, 1);
    assert.equal((await cli(['queue', 'delete', 'not-an-id'], env())).code, 1);
    assert.equal((await cli(['queue', 'show'], env())).code, 64);
    assert.equal((await cli(['queue', 'frobnicate'], env())).code, 64);
    const down = await cli(['queue', 'list'], { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${await freePort()}` });
    assert.equal(down.code, 69, showCli(down));
    assert.match(down.stderr, /cannot reach the server/);
  });

  test('with admin.token set, requests without the token get 401; the CLI sends it from the config', async () => {
    assert.equal(await status(guardedPort, '/queue'), 401);
    assert.equal(await status(guardedPort, '/queue', 'GET', 'wrong'), 401);
    assert.equal(await status(guardedPort, '/queue', 'GET', 'sesame'), 200);
    const without = await cli(['queue', 'list'], { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${guardedPort}` });
    assert.equal(without.code, 78, showCli(without));
    const withToken = await cli(['queue', 'list'], { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${guardedPort}`, LDAPMTA_ADMIN__TOKEN: 'sesame' });
    assert.equal(withToken.code, 0, showCli(withToken));
    assert.equal(await status(guardedPort, '/queue/flush', 'GET', 'sesame'), 405);
    assert.equal(await status(guardedPort, '/elsewhere', 'GET', 'sesame'), 404);
  });
});

describe('delay warning', () => {
  let slapd: Slapd;
  let server: TestServer;

  before(async () => {
    slapd = await startSlapd();
    server = await startServer(slapd, { relay: { trustedNetworks: ['127.0.0.0/8'] }, queue: { retryMinSeconds: 1, retryMaxSeconds: 1, delayWarningSeconds: 2 } });
  });
  after(async () => {
    await server?.stop();
    await slapd?.stop();
  });

  test('after delayWarningSeconds one "still trying" DSN (Action: delayed) goes to the sender, and only one', async () => {
    const subject = marker('delayed');
    await queueOne(server, subject);
    const [warning] = await waitForMessages(server.maildir('bob'), subject, 1, 10_000);
    assert.match(warning!.header, /^Subject: Delayed Mail \(still being retried\)$/m);
    assert.match(warning!.body, /Action: delayed/);
    assert.match(warning!.body, /Status: 4\.4\.3/);
    assert.match(warning!.body, /Will-Retry-Until: /);
    assert.match(warning!.body, /YOU DO NOT NEED TO RESEND YOUR MESSAGE/);
    await new Promise((r) => setTimeout(r, 3000)); // two or three more attempts
    assert.equal((await messagesWith(server.maildir('bob'), subject)).length, 1, 'one warning per message');
  });
});
