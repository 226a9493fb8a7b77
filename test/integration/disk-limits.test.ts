// A disk that refuses a write in the middle of DATA (here: the process's file-size limit, EFBIG, set
// with prlimit on a server child process) is a temporary failure answered at once, the rest of the
// client's data is drained, nothing is queued, and the session and the server go on.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ServerProcess, SmtpConnection } from '../fixtures/crash-smtp.ts';
import { freePort } from '../harness/ports.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';

const FILE_SIZE_LIMIT = 100_000;

let slapd: Slapd;
let server: ServerProcess;
let dir: string;

before(async () => {
  slapd = await startSlapd();
  dir = mkdtempSync(join(tmpdir(), 'ldapmta-disk-'));
  const port = await freePort();
  const config = {
    hostname: 'mx1.example.org',
    localDomains: ['example.org'],
    listen: { smtp: `127.0.0.1:${port}`, submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    relay: { trustedNetworks: [] },
    directory: { urls: [slapd.url], bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, baseDN: slapd.baseDN },
    cache: { maxEntries: 0, redis: '' },
    spool: join(dir, 'spool'),
    mailboxes: join(dir, 'mail'),
    smtp: { timeoutSeconds: 300 },
    log: { level: 'warn' },
  };
  writeFileSync(join(dir, 'ldapmta.yaml'), `${JSON.stringify(config, null, 2)}\n`);
  server = new ServerProcess(join(dir, 'ldapmta.yaml'), port, join(dir, 'ldapmta.log'), ['prlimit', `--fsize=${FILE_SIZE_LIMIT}`, '--']);
  await server.start();
});
after(async () => {
  await server?.stop();
  await slapd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function message(subject: string, bytes: number): string {
  const line = `${'x'.repeat(76)}\r\n`;
  return `Subject: ${subject}\r\n\r\n${line.repeat(Math.ceil(bytes / line.length))}.\r\n`;
}

test('a write refused mid-DATA (file size limit) gets a prompt 4xx, not the socket timeout; nothing is queued; the session goes on', async () => {
  const c = await SmtpConnection.connect(server.port);
  try {
    await c.expect(null, 220);
    await c.expect('EHLO client.test', 250);
    await c.expect('MAIL FROM:<bob@example.org>', 250);
    await c.expect('RCPT TO:<alice@example.org>', 250);
    await c.expect('DATA', 354);
    await c.write(message('too big for the disk', 400_000));
    // Bounded only to tell "answered" from "waited for the 300 s idle timeout".
    const reply = await Promise.race([
      c.reply(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no reply within 30 s after the data')), 30_000).unref()),
    ]);
    assert.ok(reply.code >= 400 && reply.code < 500, `expected a temporary failure, got ${reply.code} ${reply.text}`);
    assert.match(reply.text, /^4\.3\.\d /, reply.text);
    assert.deepEqual(readdirSync(join(dir, 'spool', 'todo')), [], 'something was queued');
    assert.deepEqual(readdirSync(join(dir, 'spool', 'mess')), [], 'a message file was left behind');

    await c.expect('MAIL FROM:<bob@example.org>', 250);
    await c.expect('RCPT TO:<alice@example.org>', 250);
    await c.expect('DATA', 354);
    await c.write(message('small enough', 2_000));
    const small = await c.reply();
    assert.equal(small.code, 250, small.text);
  } finally {
    c.close();
  }
  assert.ok(server.running, `the server died:\n${server.logTail()}`);
});
