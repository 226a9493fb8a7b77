// The delivery loop against a real queue on disk and the embedded directory: a queued message whose
// stored file cannot be read is deferred (4.3.0) and handed out again later, not held until restart.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { validateConfig } from '../../src/config.ts';
import { startDelivery } from '../../src/deliver/index.ts';
import { createRemote } from '../../src/deliver/remote.ts';
import { diskReplyMemory } from '../../src/deliver/reply-memory.ts';
import { deliverToMaildir } from '../../src/deliver/maildir.ts';
import { createDirectory } from '../../src/directory/index.ts';
import { silentLogger } from '../../src/log.ts';
import { parseAddress } from '../../src/mail.ts';
import { createQueue } from '../../src/queue/index.ts';
import { waitFor } from '../fixtures/smtp-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a queued message whose file is gone is deferred with 4.3.0, its lease released', async () => {
  const config = validateConfig({
    hostname: 'mx1.example.org', localDomains: ['example.org'], spool: join(dir, 'spool'), mailboxes: join(dir, 'mail'),
    directory: { urls: [] }, cache: { maxEntries: 0, redis: '' }, log: { level: 'silent' },
  });
  const log = silentLogger();
  const queue = await createQueue({ dir: config.spool, lifetimeSeconds: 3600, hostname: config.hostname }, { log });
  const directory = await createDirectory(config, { log });
  const envelope = {
    sender: parseAddress('bob@example.org'), recipients: [parseAddress('alice@example.org')],
    client: { ip: '127.0.0.1', helo: 'test', user: null, tls: false }, receivedAt: new Date(),
  };
  const id = await queue.accept(envelope, Readable.from([Buffer.from('Subject: gone\r\n\r\nbody\r\n')]));
  unlinkSync(join(config.spool, 'mess', id));
  const runner = startDelivery(config, { queue, directory, deliverToMaildir, ...createRemote(config), srs: null, replies: diskReplyMemory(join(config.spool, 'autoreply')), programs: null, log });
  try {
    const todoFile = join(config.spool, 'todo', `${id}.json`);
    const todo = await waitFor('the attempt to be recorded', async () => {
      const state = JSON.parse(readFileSync(todoFile, 'utf8')) as { recipients: { attempts: number; lastError: { status: string } | null }[] };
      return state.recipients[0]!.attempts > 0 ? state : null;
    });
    assert.equal(todo.recipients[0]!.lastError?.status, '4.3.0');
    // Released: once due again (here: asked with a time past the retry), it is handed out again. The
    // lease is let go after the state's fsync, a moment after the file above can be read, so ask until then.
    const again = await waitFor('the message to be handed out again', async () => {
      const due = await queue.due(new Date(Date.now() + 3_600_000), 10);
      return due.length > 0 ? due : null;
    }, 2000);
    assert.deepEqual(again.map((m) => m.id), [id]);
  } finally {
    await runner.stop();
    await queue.close();
    await directory.close();
  }
});
