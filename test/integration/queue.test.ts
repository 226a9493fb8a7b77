// The disk queue on a real temp directory: accept/due/open/settle, bounces, restart recovery,
// group commit under 200 concurrent accepts, and SIGKILL of a writer process at random moments.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR, memoryLog } from '../harness/log.ts';
import { MailError, parseAddress, permanent, temporary, type Address, type Envelope } from '../../src/mail.ts';
import { createQueue, type DiskQueue } from '../../src/queue/index.ts';
import { crashBody, seqOf } from '../fixtures/queue-crash-body.ts';

const root = mkdtempSync(join(tmpdir(), 'ldapmta-queue-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `q${dirs++}`);

const FAR = new Date('2100-01-01T00:00:00Z');
const HOUR = 3_600_000;
const addr = parseAddress;

function envelope(sender: string | null, ...recipients: string[]): Envelope {
  return {
    sender: sender === null ? null : addr(sender), recipients: recipients.map(addr),
    client: { ip: '192.0.2.7', helo: 'client.test', user: null, tls: false }, receivedAt: new Date(),
  };
}

function chunked(data: Buffer, size = 1000): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
  })());
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function listing(dir: string): Record<'tmp' | 'mess' | 'todo' | 'corrupt', string[]> {
  const ls = (d: string) => (existsSync(join(dir, d)) ? readdirSync(join(dir, d)).sort() : []);
  return { tmp: ls('tmp'), mess: ls('mess'), todo: ls('todo'), corrupt: ls('corrupt') };
}

interface Harness { queue: DiskQueue; dir: string; log: ReturnType<typeof memoryLog>; clock: { now: number } }

async function open(dir = freshDir(), lifetimeSeconds = 5 * 86_400, clock = { now: Date.now() }): Promise<Harness> {
  const log = memoryLog();
  const queue = await createQueue({ dir, lifetimeSeconds, hostname: 'mx1.example.org' }, { log: log.log, clock: () => clock.now });
  return { queue, dir, log, clock };
}

const message = (subject: string) => Buffer.from(`Subject: ${subject}\r\nMessage-ID: <${subject}@client.test>\r\n\r\nbody of ${subject}\r\n`);
const ids = (list: { id: string }[]) => list.map((m) => m.id);
const pendingOf = (list: { pending: readonly Address[] }[]) => list.flatMap((m) => m.pending.map((a) => `${a.local}@${a.domain}`));

test('accept stores one file per message; due hands it out once; open returns the same bytes', async () => {
  const { queue, dir, log } = await open();
  let wakeups = 0;
  queue.onAccepted(() => wakeups++);
  const bytes = Buffer.alloc(300_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256; // every byte value, CR, LF, NUL
  const id = await queue.accept(envelope('alice@example.net', 'a@example.org', 'b@example.org', 'c@remote.test'), chunked(bytes, 4096));
  assert.equal(wakeups, 1);
  assert.deepEqual(listing(dir), { tmp: [], mess: [id], todo: [`${id}.json`], corrupt: [] });

  const due = await queue.due(new Date(), 10);
  assert.deepEqual(ids(due), [id]);
  assert.deepEqual(pendingOf(due), ['a@example.org', 'b@example.org', 'c@remote.test']);
  assert.equal(due[0]?.size, bytes.length);
  assert.equal(due[0]?.attempts, 0);
  assert.deepEqual(await queue.due(new Date(), 10), [], 'leased until settled');
  assert.ok((await readAll(queue.open(id))).equals(bytes));
  assert.ok((await queue.read(id)).equals(bytes), "read() gives the same bytes at once");
  assert.ok(log.lines().some((l) => l.msg === 'queued' && l.queueId === id));
  assert.throws(() => queue.open('../../etc/passwd'));
  await queue.close();
});

test('the body may be made from the queue id (for a Received header naming it)', async () => {
  const { queue } = await open();
  let given = '';
  const id = await queue.accept(envelope('alice@example.net', 'a@example.org'), (queueId) => {
    given = queueId;
    return chunked(Buffer.from(`Received: by mx1.example.org id ${queueId}\r\n\r\nhi\r\n`));
  });
  assert.equal(given, id);
  assert.equal((await readAll(queue.open(id))).toString(), `Received: by mx1.example.org id ${id}\r\n\r\nhi\r\n`);
  const boom = new Error('no body for you');
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), () => { throw boom; }), (err) => err === boom);
  await queue.close();
});

test('a failing body stream rejects with its own error and leaves nothing behind', async () => {
  const { queue, dir, log } = await open();
  const reason = permanent('5.6.0', 'bare LF in message');
  const body = new Readable({ read() {} });
  body.push(Buffer.alloc(50_000, 'x'));
  setTimeout(() => body.destroy(reason), 20);
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), body), (err) => err === reason);
  const plain = new Error('client went away');
  const body2 = Readable.from((async function* () { yield Buffer.from('partial'); throw plain; })());
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), body2), (err) => err === plain);
  assert.deepEqual(listing(dir), { tmp: [], mess: [], todo: [], corrupt: [] });
  assert.deepEqual(await queue.due(FAR, 10), []);
  assert.deepEqual(log.lines().filter((l) => l.level >= ERROR), [], 'a client problem is not a queue error');
  await queue.close();
});

test('lines for the top (AcceptOptions.top): kept in the todo file, read back on top of the body, counted in size, across a restart and in a bounce', async () => {
  const first = await open();
  const { dir } = first;
  const body = message('checked');
  let asked = '';
  const id = await first.queue.accept(envelope('alice@example.net', 'a@example.org'), chunked(body, 7), {
    top: async (queueId) => {
      asked = queueId;
      await sleep(30); // a verdict still being reached while the body is written
      return `Received: by mx1.example.org id ${queueId}\r\nAuthentication-Results: mx1.example.org; spf=pass\r\n`;
    },
  });
  assert.equal(asked, id);
  const top = `Received: by mx1.example.org id ${id}\r\nAuthentication-Results: mx1.example.org; spf=pass\r\n`;
  const whole = Buffer.concat([Buffer.from(top), body]);
  assert.ok(readFileSync(join(dir, 'mess', id)).equals(body), 'mess/ holds the body as it arrived');
  assert.equal(JSON.parse(readFileSync(join(dir, 'todo', `${id}.json`), 'utf8')).top, top);
  assert.ok((await readAll(first.queue.open(id))).equals(whole));
  assert.ok((await first.queue.read(id)).equals(whole));
  assert.equal((await first.queue.due(new Date(first.clock.now), 10))[0]?.size, whole.length);
  await first.queue.close();

  const second = await open(dir);
  assert.deepEqual(listing(dir).corrupt, [], 'size = body + top: not set aside at start-up');
  assert.ok((await readAll(second.queue.open(id))).equals(whole));
  await second.queue.due(FAR, 10);
  await second.queue.settle(id, [{ recipient: addr('a@example.org'), ok: false, error: permanent('5.1.1', 'no such user') }]);
  const [bounce] = await second.queue.due(FAR, 10);
  const dsn = (await second.queue.read(bounce!.id)).toString();
  assert.match(dsn, new RegExp(`Received: by mx1\\.example\\.org id ${id}\r\nAuthentication-Results: mx1\\.example\\.org; spf=pass\r\nSubject: checked`), 'the original headers in the bounce start with the top');
  await second.queue.close();
});

test('a top that fails (a refusal) queues nothing, rethrows its error unchanged, and leaves nothing behind', async () => {
  const { queue, dir, log } = await open();
  const refusal = permanent('5.7.1', 'message refused: virus', undefined, 554);
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), chunked(message('virus')), { top: () => Promise.reject(refusal) }), (err) => err === refusal);
  // The body fails while the verdict is pending: the body's error wins, and nothing is left either.
  const gone = new Error('client went away');
  const body = Readable.from((async function* () { yield Buffer.from('partial'); await sleep(10); throw gone; })());
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), body, { top: () => sleep(50).then(() => 'X: y\r\n') }), (err) => err === gone);
  assert.deepEqual(listing(dir), { tmp: [], mess: [], todo: [], corrupt: [] });
  assert.deepEqual(await queue.due(FAR, 10), []);
  assert.deepEqual(log.lines().filter((l) => l.level >= ERROR), []);
  await queue.close();
});

test('a disk error during accept is a temporary 4.3.0, never permanent, and leaves nothing queued', async () => {
  const { queue, dir } = await open();
  rmSync(join(dir, 'mess'), { recursive: true });
  writeFileSync(join(dir, 'mess'), 'not a directory'); // the rename into mess/ fails with ENOTDIR
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), chunked(message('m'))),
    (err) => err instanceof MailError && err.kind === 'temporary' && err.status === '4.3.0');
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  assert.deepEqual(readdirSync(join(dir, 'todo')), []);
  await queue.close();
});

test('partial outcomes: delivered, failed and deferred recipients; one bounce for the failed one', async () => {
  const h = await open();
  const { queue, dir, clock } = h;
  const id = await queue.accept(envelope('alice@example.net', 'a@example.org', 'b@example.org', 'c@remote.test'), chunked(message('partial')));
  await queue.due(new Date(clock.now), 10);
  await queue.settle(id, [
    { recipient: addr('a@example.org'), ok: true },
    { recipient: addr('b@example.org'), ok: false, error: permanent('5.1.1', 'user unknown') },
    { recipient: addr('c@remote.test'), ok: false, error: temporary('4.4.1', 'connection refused') },
  ]);
  const todo = JSON.parse(readFileSync(join(dir, 'todo', `${id}.json`), 'utf8')) as { recipients: { state: string; attempts: number; lastError: unknown }[] };
  assert.deepEqual(todo.recipients.map((r) => r.state), ['delivered', 'failed', 'pending']);
  assert.deepEqual(todo.recipients[2]?.lastError, { status: '4.4.1', text: 'connection refused', reply: 451 });
  assert.deepEqual(await queue.due(new Date(clock.now), 10), [], 'deferred recipient is not due yet');
  assert.deepEqual(listing(dir).todo, [`${id}.json`], 'no bounce while something is pending');

  clock.now += 2 * HOUR;
  const again = await queue.due(new Date(clock.now), 10);
  assert.deepEqual(pendingOf(again), ['c@remote.test']);
  assert.equal(again[0]?.attempts, 1);
  await queue.settle(id, [{ recipient: addr('c@remote.test'), ok: true }]);

  const left = listing(dir);
  assert.equal(left.todo.length, 1, 'only the bounce is queued');
  assert.notEqual(left.todo[0], `${id}.json`);
  assert.equal(left.mess.length, 1);
  const [bounce] = await queue.due(new Date(clock.now), 10);
  assert.ok(bounce !== undefined);
  assert.equal(bounce.envelope.sender, null);
  assert.deepEqual(pendingOf([bounce]), ['alice@example.net']);
  const text = (await readAll(queue.open(bounce.id))).toString();
  assert.match(text, /report-type=delivery-status/);
  assert.match(text, /Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: 5\.1\.1/);
  assert.doesNotMatch(text, /Final-Recipient: rfc822; (a@example.org|c@remote.test)/);
  assert.match(text, /Subject: partial\r\nMessage-ID: <partial@client.test>\r\n/, 'original headers attached');
  assert.doesNotMatch(text, /body of partial/, 'only the headers of the original');
  assert.ok(h.log.lines().some((l) => l.msg === 'bounce queued' && l.queueId === id && l.bounceId === bounce.id));
  await queue.close();
});

test('retries back off 1, 2, 4 … minutes; settle releases the lease', async () => {
  const { queue, clock } = await open();
  const id = await queue.accept(envelope('alice@example.net', 'c@remote.test'), chunked(message('retry')));
  const start = clock.now;
  let elapsed = 0;
  for (const minutes of [1, 2, 4, 8, 16, 32, 60, 60]) {
    clock.now = start + elapsed;
    assert.deepEqual(ids(await queue.due(new Date(clock.now), 10)), [id]);
    await queue.settle(id, [{ recipient: addr('c@remote.test'), ok: false, error: temporary('4.4.1', 'no route') }]);
    const tooEarly = clock.now + Math.floor(minutes * 60_000 * 0.9) - 1;
    assert.deepEqual(await queue.due(new Date(tooEarly), 10), [], `not before ~${minutes} min`);
    elapsed += minutes * 60_000;
  }
  assert.equal((await queue.due(FAR, 10))[0]?.attempts, 8);
  await queue.close();
});

test('a large deferred queue: due() hands out what is due in the order it became due, and nothing early; hold, release and flush still apply', async () => {
  const { queue, clock } = await open();
  const start = clock.now;
  const deferred: string[] = [];
  for (let i = 0; i < 300; i++) deferred.push(await queue.accept(envelope('alice@example.net', `r${i}@remote.test`), chunked(message(`deferred ${i}`))));
  // Hand all out, then defer each for 1 minute (first retry), settled one by one as time passes.
  assert.equal((await queue.due(new Date(start), 1000)).length, 300);
  for (const [i, id] of deferred.entries()) {
    clock.now = start + i;
    await queue.settle(id, [{ recipient: addr(`r${i}@remote.test`), ok: false, error: temporary('4.4.1', 'no route') }]);
  }
  const fresh = await queue.accept(envelope('alice@example.net', 'now@remote.test'), chunked(message('fresh')));
  assert.deepEqual(ids(await queue.due(new Date(clock.now), 1000)), [fresh], 'only the new message is due');
  assert.equal(await queue.hold(deferred[5]!), true);
  // Past the first retry of every deferred one (about a minute, with jitter): they come out in the
  // order of their next attempt, the held one left out.
  const retryAt = (id: string) => Date.parse(queue.show(id)!.recipients[0]!.nextAttempt);
  const byRetry = deferred.filter((_, i) => i !== 5).sort((a, b) => retryAt(a) - retryAt(b));
  const later = new Date(start + 2 * 60_000);
  const batch1 = ids(await queue.due(later, 100));
  const batch2 = ids(await queue.due(later, 1000));
  assert.equal(batch1.length, 100, 'the limit is kept');
  assert.deepEqual([...batch1, ...batch2].map(retryAt), byRetry.map(retryAt), 'earliest retry first');
  assert.deepEqual([...batch1, ...batch2].sort(), byRetry.sort());
  assert.deepEqual(await queue.due(later, 1000), [], 'all leased');
  assert.equal(await queue.release(deferred[5]!), true);
  assert.deepEqual(ids(await queue.due(later, 1000)), [deferred[5]], 'released: due at once');
  // Settled again: each waits about 2 minutes now, unless flushed.
  clock.now = later.getTime();
  for (const [i, id] of deferred.entries()) {
    await queue.settle(id, [{ recipient: addr(`r${i}@remote.test`), ok: false, error: temporary('4.4.1', 'no route') }]);
  }
  assert.deepEqual(await queue.due(later, 1000), [], 'nothing due before its retry');
  assert.equal(queue.flush(deferred[7]!), 1);
  assert.deepEqual(ids(await queue.due(later, 1000)), [deferred[7]], 'flushed: due at once');
  assert.deepEqual(ids(await queue.due(new Date(later.getTime() + 10 * 60_000), 1000)).sort(), deferred.filter((_, i) => i !== 7).sort());
  await queue.close();
});

test('lifetime expiry: a temporary failure turns into 5.4.7, a null-sender bounce goes out, the original is removed', async () => {
  const { queue, dir, clock } = await open(freshDir(), 3600);
  const id = await queue.accept(envelope('alice@example.net', 'c@remote.test'), chunked(message('old')));
  clock.now += 3600_000 + 1;
  assert.deepEqual(ids(await queue.due(FAR, 10)), [id]);
  await queue.settle(id, [{ recipient: addr('c@remote.test'), ok: false, error: temporary('4.4.1', 'connection timed out') }]);
  assert.ok(!existsSync(join(dir, 'todo', `${id}.json`)));
  assert.ok(!existsSync(join(dir, 'mess', id)));
  const [bounce, ...rest] = await queue.due(FAR, 10);
  assert.equal(rest.length, 0);
  assert.ok(bounce !== undefined);
  assert.equal(bounce.envelope.sender, null);
  assert.deepEqual(pendingOf([bounce]), ['alice@example.net']);
  const text = (await readAll(queue.open(bounce.id))).toString();
  assert.match(text, /Status: 5\.4\.7\r\nDiagnostic-Code: smtp; 550 5\.4\.7 delivery time expired \(last error: 4\.4\.1 connection timed out\)/);
  await queue.close();
});

test('the null sender is never bounced: a failed bounce is logged as a double bounce and dropped', async () => {
  const { queue, dir, log } = await open();
  const id = await queue.accept(envelope(null, 'alice@example.net'), chunked(message('dsn')));
  await queue.due(FAR, 10);
  await queue.settle(id, [{ recipient: addr('alice@example.net'), ok: false, error: permanent('5.1.1', 'no such user') }]);
  await queue.close(); // the removal may end after settle; close() waits for it
  assert.deepEqual(listing(dir), { tmp: [], mess: [], todo: [], corrupt: [] });
  const line = log.lines().find((l) => /double bounce/.test(l.msg));
  assert.equal(line?.level, ERROR);
  assert.equal(line?.queueId, id);
});

test('settles racing for one message are applied in turn: one bounce, no resurrected todo', async () => {
  const { queue, dir } = await open();
  const id = await queue.accept(envelope('alice@example.net', 'b@example.org'), chunked(message('race')));
  await queue.due(FAR, 10);
  const fail = [{ recipient: addr('b@example.org'), ok: false as const, error: permanent('5.1.1', 'user unknown') }];
  await Promise.all([queue.settle(id, fail), queue.settle(id, fail)]);
  await assert.rejects(queue.settle(id, fail), /no queued message/);
  const left = listing(dir);
  assert.equal(left.todo.length, 1, 'the bounce only');
  assert.ok(!left.todo.includes(`${id}.json`));
  await queue.close();
});

test('restart keeps pending messages and drops tmp/ garbage, orphan and corrupt files', async () => {
  const first = await open();
  const { dir } = first;
  const kept = await first.queue.accept(envelope('alice@example.net', 'a@example.org', 'b@example.org'), chunked(message('kept')));
  const later = await first.queue.accept(envelope('alice@example.net', 'c@remote.test'), chunked(message('later')));
  await first.queue.due(new Date(first.clock.now), 10);
  await first.queue.settle(kept, [{ recipient: addr('a@example.org'), ok: true }]);
  await first.queue.settle(later, [{ recipient: addr('c@remote.test'), ok: false, error: temporary('4.4.1', 'refused') }]);
  await first.queue.close();

  writeFileSync(join(dir, 'tmp', 'half-written'), 'garbage');
  writeFileSync(join(dir, 'mess', '01k82lvt5c00002boemi'), 'never committed');
  writeFileSync(join(dir, 'todo', '01k82lvt5c00002boemj.json'), '{"version":1,');           // unparsable
  const noMess = readFileSync(join(dir, 'todo', `${kept}.json`), 'utf8').replaceAll(kept, '01k82lvt5c00002boemk');
  writeFileSync(join(dir, 'todo', '01k82lvt5c00002boemk.json'), noMess);                   // todo without mess

  const second = await open(dir);
  assert.deepEqual(listing(dir).tmp, []);
  assert.deepEqual(listing(dir).mess, [kept, later].sort());
  assert.deepEqual(listing(dir).corrupt.map((n) => n.replace(/\.\d+$/, '')).sort(), ['01k82lvt5c00002boemj.json', '01k82lvt5c00002boemk.json']);
  const errors = second.log.lines().filter((l) => l.level === ERROR).map((l) => l.reason);
  assert.deepEqual(errors.sort(), ['todo file without message file (impossible by construction)', 'unreadable todo file']);

  const now = await second.queue.due(new Date(), 10);
  assert.deepEqual(ids(now), [kept]);
  assert.deepEqual(pendingOf(now), ['b@example.org'], 'delivered recipient is not tried again');
  assert.deepEqual(ids(await second.queue.due(FAR, 10)), [later]);
  assert.ok((await readAll(second.queue.open(kept))).equals(message('kept')));
  await second.queue.close();
});

test('a message found finished at start-up (crash before clean-up) gets its bounce: duplicate, never lost', async () => {
  const first = await open();
  const id = await first.queue.accept(envelope('alice@example.net', 'b@example.org'), chunked(message('crashy')));
  await first.queue.close();
  const file = join(first.dir, 'todo', `${id}.json`);
  writeFileSync(file, readFileSync(file, 'utf8').replace('"state": "pending"', '"state": "failed"')
    .replace('"lastError": null', '"lastError": {"status": "5.1.1", "text": "user unknown", "reply": 550}'));

  const second = await open(first.dir);
  // Finishing removes todo/, fsyncs the directory, then removes mess/: wait for the last step.
  for (let i = 0; i < 250 && listing(first.dir).mess.includes(id); i++) await sleep(20);
  const due = await second.queue.due(FAR, 10);
  assert.equal(due.length, 1);
  assert.equal(due[0]?.envelope.sender, null);
  assert.ok(!listing(first.dir).todo.includes(`${id}.json`));
  assert.ok(!listing(first.dir).mess.includes(id));
  await second.queue.close();
});

test('200 concurrent accepts all succeed, share directory fsyncs, and survive a restart', async (t) => {
  const { queue, dir } = await open();
  const bodies = Array.from({ length: 200 }, (_, i) => message(`concurrent-${i}`));
  const accepted = await Promise.all(bodies.map((b, i) => queue.accept(envelope('alice@example.net', `u${i}@example.org`), chunked(b, 7))));
  assert.equal(new Set(accepted).size, 200);
  const stats = queue.stats();
  assert.equal(stats.accepted, 200);
  t.diagnostic(`200 concurrent accepts: ${stats.dirSyncs} directory fsyncs`);
  assert.ok(stats.dirSyncs > 0 && stats.dirSyncs < 100, `${stats.dirSyncs} directory fsyncs for 200 messages (one each would be 400)`);
  await queue.close();

  const again = await open(dir);
  const due = await again.queue.due(FAR, 1000);
  assert.deepEqual(ids(due).sort(), [...accepted].sort());
  for (const [i, id] of accepted.entries()) {
    assert.ok((await readAll(again.queue.open(id))).equals(bodies[i]!), `message ${i}`);
  }
  await again.queue.close();
});

test('close waits for accepts in flight and refuses new ones with a temporary error', async () => {
  const { queue, dir } = await open();
  const pending = queue.accept(envelope('alice@example.net', 'a@example.org'), chunked(message('late'), 3));
  await queue.close();
  const id = await pending;
  assert.ok(listing(dir).todo.includes(`${id}.json`));
  await assert.rejects(queue.accept(envelope('alice@example.net', 'a@example.org'), chunked(message('x'))),
    (err) => err instanceof MailError && err.kind === 'temporary');
});

// ---------------------------------------------------------------------------------------------
// Crash test: SIGKILL a writer process at random moments; every acknowledged id must be complete.

interface Run { printed: Map<string, number>; }

async function runWriter(dir: string, firstSeq: number, killAfterMs: number): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/queue-crash-writer.ts', dir, String(firstSeq)],
    { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`)));
  for (let i = 0; i < 300 && !out.startsWith('ready\n'); i++) await sleep(20);
  assert.ok(out.startsWith('ready\n'), `writer did not start: ${err}`);
  await sleep(killAfterMs);
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', err);
  const printed = new Map<string, number>();
  for (const line of out.split('\n').slice(1, -1)) { // the last piece may be cut short
    const [id, seq] = line.split(' ');
    printed.set(id!, Number(seq));
  }
  return { printed };
}

/** Every todo file names a complete message whose bytes are the ones the writer wrote. */
function checkSpool(dir: string): Set<string> {
  const { todo, mess } = listing(dir);
  const committed = new Set<string>();
  for (const name of todo) {
    const id = name.replace(/\.json$/, '');
    const state = JSON.parse(readFileSync(join(dir, 'todo', name), 'utf8')) as { recipients: { address: { local: string } }[] };
    const seq = seqOf(state.recipients[0]!.address.local);
    assert.ok(seq !== null);
    assert.ok(mess.includes(id), `todo ${id} has its message file`);
    assert.ok(readFileSync(join(dir, 'mess', id)).equals(crashBody(seq)), `message ${id} (seq ${seq}) is complete`);
    committed.add(id);
  }
  return committed;
}

test('crash: SIGKILL at random moments loses no acknowledged message and leaves no partial one', async (t) => {
  const dir = freshDir();
  const acknowledged = new Map<string, number>();
  let interrupted = 0;
  for (let run = 0; run < 5; run++) {
    const { printed } = await runWriter(dir, run * 1_000_000, 30 + Math.floor(Math.random() * 400));
    const committed = checkSpool(dir);
    const { tmp, mess } = listing(dir);
    if (tmp.length > 0 || mess.some((m) => !committed.has(m))) interrupted++; // killed mid-accept
    for (const [id, seq] of printed) acknowledged.set(id, seq);
    for (const id of acknowledged.keys()) assert.ok(committed.has(id), `acknowledged ${id} is queued`);
  }
  t.diagnostic(`${acknowledged.size} messages acknowledged, ${interrupted} of 5 kills landed mid-accept`);
  assert.ok(interrupted > 0, 'at least one kill landed in the middle of an accept');
  assert.ok(acknowledged.size > 20, `${acknowledged.size} messages acknowledged over 5 runs`);

  const { queue } = await open(dir);
  const listed = listing(dir);
  assert.deepEqual(listed.tmp, []);
  assert.deepEqual(listed.corrupt, []);
  assert.deepEqual(listed.mess.map((m) => `${m}.json`), listed.todo, 'no message file without todo after recovery');
  const due = new Set(ids(await queue.due(FAR, 1_000_000)));
  for (const [id, seq] of acknowledged) {
    assert.ok(due.has(id), `${id} is due`);
    assert.ok((await readAll(queue.open(id))).equals(crashBody(seq)));
  }
  await queue.close();
});
