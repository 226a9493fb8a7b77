// STARTTLS on the MX port when a certificate is configured: advertised, upgraded by a real client,
// and recorded in the Received header. The key in test/fixtures is a throw-away test key.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { sleep } from '../harness/ports.ts';
import { REPO_ROOT, startSlapd, type Slapd } from '../harness/slapd.ts';
import { Transcript } from '../harness/smtp-transcript.ts';

let slapd: Slapd;
let server: TestServer;
before(async () => {
  slapd = await startSlapd();
  server = await startServer(slapd, {
    smtp: { tls: { cert: join(REPO_ROOT, 'test/fixtures/tls-test.crt'), key: join(REPO_ROOT, 'test/fixtures/tls-test.key') } },
  });
});
after(async () => {
  await server?.stop();
  await slapd?.stop();
});

test('EHLO offers STARTTLS when a certificate is configured', async () => {
  const t = await Transcript.open(server.smtpPort);
  const ehlo = await t.hello();
  t.close();
  assert.match(ehlo.text, /^STARTTLS$/m);
});

test('a client that upgrades delivers, and the Received header says TLS', async () => {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1', port: server.smtpPort, secure: false, requireTLS: true,
    tls: { rejectUnauthorized: false, servername: 'mx1.example.org' },
  });
  const info = await transport.sendMail({ from: 'x@outside.test', to: 'alice@example.org', subject: 'over TLS', text: 'secret\r\n' });
  assert.match(info.response, /^250 2\.6\.0 Ok: queued as \S+/);
  const dir = join(server.maildir('alice'), 'new');
  let files: string[] = [];
  for (let i = 0; i < 100 && files.length === 0; i++) {
    files = await readdir(dir).catch(() => []);
    if (files.length === 0) await sleep(50);
  }
  assert.equal(files.length, 1);
  const text = await readFile(join(dir, files[0]!), 'utf8');
  assert.match(text, /with ESMTPS\n\t\(using TLSv1\.[23] with cipher \S+\) id /);
});
