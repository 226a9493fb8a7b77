// Stopping with a delivery in flight, as a real process: the smarthost accepts the connection and
// never answers, so the attempt hangs. SIGTERM waits shutdown.deliveryWaitSeconds for it, logs that
// it is cut short and exits 0; the message is still in the spool, and the next start delivers it
// (at least once, never lost).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../harness/ports.ts';
import { serve } from '../harness/serve.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { startSink } from '../harness/smtp-sink.ts';
import { assertReply, marker, sendOnce, simpleMessage, waitFor } from '../fixtures/smtp-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-stop-'));
const configFile = join(dir, 'ldapmta.yaml');
let slapd: Slapd;
let silent: Server;
const held: Socket[] = [];

before(async () => {
  slapd = await startSlapd();
  // A smarthost that takes the connection and never says a word.
  silent = createServer((socket) => {
    held.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  for (const s of held) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
  await slapd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function configure(smarthostPort: number, smtpPort: number): Promise<void> {
  writeFileSync(configFile, stringify({
    hostname: 'mx1.example.org', localDomains: ['example.org'], spool: join(dir, 'spool'), mailboxes: join(dir, 'mail'),
    listen: { smtp: `127.0.0.1:${smtpPort}`, submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    relay: { trustedNetworks: ['127.0.0.0/8'] },
    directory: { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: slapd.baseDN },
    delivery: { smarthost: `[127.0.0.1]:${smarthostPort}`, dnsServers: ['127.0.0.1:9'] },
    shutdown: { graceSeconds: 1, deliveryWaitSeconds: 2 },
    log: { level: 'info', format: 'json' },
  }));
}

test('SIGTERM with a delivery hanging: exit 0 after shutdown.deliveryWaitSeconds, the message kept, delivered at the next start', async () => {
  const smtpPort = await freePort();
  await configure((silent.address() as { port: number }).port, smtpPort);
  const first = await serve(configFile);
  const subject = marker('in-flight');
  const sent = await sendOnce(smtpPort, 'bob@example.org', ['someone@remote.test'], simpleMessage(subject));
  assertReply(sent.end!, 250, null, 'queued');
  await waitFor('the delivery to reach the silent smarthost', async () => held.length > 0);
  const stopping = Date.now();
  first.process.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.output());
  const took = Date.now() - stopping;
  assert.ok(took >= 2000 && took < 15_000, `waited for the delivery, then stopped (${took} ms)`);
  assert.ok(first.lines().some((l) => l.msg === 'deliveries still in flight at shutdown; they are retried at the next start'), first.output());
  const todo = readdirSync(join(dir, 'spool', 'todo'));
  assert.equal(todo.length, 1, 'the message is still queued');

  const sink = await startSink();
  try {
    await configure(sink.port, smtpPort);
    const second = await serve(configFile);
    try {
      const [message] = await sink.waitFor(1, 20_000);
      assert.match(message!.body.toString('utf8'), new RegExp(`Subject: ${subject}`));
      await waitFor('the queue to empty', async () => !existsSync(join(dir, 'spool', 'todo', todo[0]!)));
    } finally {
      second.process.kill('SIGTERM');
      assert.equal(await second.exited, 0);
    }
  } finally {
    await sink.close();
  }
});
