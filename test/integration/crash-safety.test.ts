// Crash safety of the whole server: ldapmta runs as a child process (src/cli.ts serve) on a real
// slapd, clients send numbered messages to alice over raw sockets, the server is SIGKILLed (during
// DATA, three times; then during the delivery of 300 queued messages), restarted on the same spool,
// and once the queue has drained: every message that got its 250 is in alice's Maildir (at least
// once; duplicates are counted and reported), no file in any new/ is partial, the spool is empty.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { freePort, sleep } from '../harness/ports.ts';
import { SERVICE_DN, SERVICE_PASSWORD, startSlapd, type Slapd } from '../harness/slapd.ts';
import {
  crashMessage, inspectNewDirectory, maildirTmpFiles, newDirectories, SENDER, ServerProcess, SmtpConnection, spoolEntries,
} from '../fixtures/crash-smtp.ts';

const ALICE = 'alice@example.org';
const WARN = 40;

/** One server instance's world: its config, spool, mailbox base and what the clients sent. */
interface World {
  dir: string;
  spool: string;
  mailboxes: string;
  server: ServerProcess;
  /** serial → the exact message text sent (CRLF). */
  sent: Map<number, string>;
  /** serial → queue id, for every message that got 250 before a kill. */
  acked: Map<number, string>;
}

let slapd: Slapd;
const worlds: World[] = [];

before(async () => {
  slapd = await startSlapd();
});

after(async () => {
  for (const w of worlds) {
    w.server.kill();
    await w.server.waitExit();
    rmSync(w.dir, { recursive: true, force: true });
  }
  await slapd?.stop();
});

async function makeWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ldapmta-crash-'));
  const spool = join(dir, 'spool');
  const mailboxes = join(dir, 'mail');
  const port = await freePort();
  const config = {
    hostname: 'mx1.example.org',
    localDomains: ['example.org', 'example.net'],
    listen: { smtp: `127.0.0.1:${port}`, submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    relay: { trustedNetworks: [] },
    directory: { urls: [slapd.url], bindDN: SERVICE_DN, bindPassword: SERVICE_PASSWORD, baseDN: slapd.baseDN, timeoutMs: 2000, connectTimeoutMs: 500 },
    cache: { maxEntries: 0, redis: '' },
    spool,
    mailboxes,
    log: { level: 'info' },
  };
  const configFile = join(dir, 'ldapmta.yaml');
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`); // JSON is YAML
  const world = { dir, spool, mailboxes, server: new ServerProcess(configFile, port, join(dir, 'ldapmta.log')), sent: new Map(), acked: new Map() };
  worlds.push(world);
  return world;
}

/** One client session sending messages until `next()` says stop or the server goes away. */
async function session(w: World, next: () => number | null, opts: { bytes: number; chunk: number; inData: Set<number>; onAck?: (serial: number) => void }): Promise<void> {
  let c: SmtpConnection | null = null;
  try {
    c = await SmtpConnection.connect(w.server.port);
    await c.expect(null, 220);
    await c.expect('EHLO client.test', 250);
    for (let serial = next(); serial !== null; serial = next()) {
      const text = crashMessage(serial, ALICE, opts.bytes);
      w.sent.set(serial, text);
      await c.expect(`MAIL FROM:<${SENDER}>`, 250);
      await c.expect(`RCPT TO:<${ALICE}>`, 250);
      await c.expect('DATA', 354);
      opts.inData.add(serial);
      for (let i = 0; i < text.length; i += opts.chunk) {
        await c.write(text.slice(i, i + opts.chunk));
        await tick(); // let other sessions interleave, so a kill often lands mid-body
      }
      await c.write('.\r\n');
      const reply = await c.reply();
      opts.inData.delete(serial);
      if (reply.code !== 250) throw new Error(`end of DATA for ${serial} → ${reply.code} ${reply.text}`);
      const queueId = /queued as ([0-9a-v]{20})/.exec(reply.text)?.[1];
      assert.ok(queueId, `no queue id in "${reply.text}"`);
      w.acked.set(serial, queueId);
      opts.onAck?.(serial);
    }
    await c.command('QUIT').catch(() => undefined);
  } catch (err) {
    if (!w.server.killed) throw err; // only the kill may end a session early
  } finally {
    c?.close();
  }
}

/**
 * A session that stops halfway through a body and waits: it is certainly in DATA at the kill.
 * `ready` resolves once half the body is out.
 */
function stalledSession(w: World, serial: number, inData: Set<number>): { ready: Promise<void>; done: Promise<void> } {
  let readied!: () => void;
  const ready = new Promise<void>((resolve) => (readied = resolve));
  const done = (async () => {
    const c = await SmtpConnection.connect(w.server.port);
    try {
      await c.expect(null, 220);
      await c.expect('EHLO staller.test', 250);
      await c.expect(`MAIL FROM:<${SENDER}>`, 250);
      await c.expect(`RCPT TO:<${ALICE}>`, 250);
      await c.expect('DATA', 354);
      const text = crashMessage(serial, ALICE, 20_000);
      w.sent.set(serial, text);
      await c.write(text.slice(0, text.length >> 1));
      inData.add(serial);
      readied();
      await c.reply().catch(() => undefined); // never comes: the server dies first
    } finally {
      c.close();
    }
  })();
  return { ready: Promise.race([ready, done]), done };
}

/**
 * Restarted server: wait until the queue holds nothing (every message delivered or failed). A
 * message deferred before the kill (say a quota recalculation that raced under the load, 4.3.0 as
 * qmail-ldap does) is retried after the queue's first backoff of a minute: then wait for that too.
 */
async function waitDrained(w: World, timeoutMs = 20_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const todo = spoolEntries(w.spool, 'todo');
    const mess = spoolEntries(w.spool, 'mess');
    if (todo.length === 0 && mess.length === 0) return Date.now() - started;
    const deferred = w.server.logLines(30).filter((line) => line.includes('"msg":"deferred"'));
    const limit = deferred.length > 0 ? Math.max(timeoutMs, 80_000) : timeoutMs;
    if (Date.now() - started > limit) {
      const notable = w.server.logLines(40).slice(-20).join('\n');
      assert.fail(`queue did not drain within ${limit} ms: ${todo.length} todo, ${mess.length} mess\n` +
        `deferrals:\n${deferred.slice(-10).join('\n')}\nwarnings and errors:\n${notable}\nlast lines:\n${w.server.logTail()}`);
    }
    await sleep(50);
  }
}

interface Verdict {
  files: number;
  acked: number;
  duplicates: number;
  deliveredUnacked: number;
  maildirTmpDebris: number;
}

/** The properties that must hold once the queue has drained after a crash and restart. */
function verify(w: World): Verdict {
  const aliceNew = join(w.mailboxes, 'example.org', 'alice', 'new');
  const dirs = newDirectories(w.mailboxes);
  const files = dirs.flatMap((dir) => inspectNewDirectory(dir, (serial) => w.sent.get(serial) ?? null));
  const broken = files.filter((f) => !f.complete).map((f) => `${f.path}: ${f.problem}`);
  assert.deepEqual(broken, [], 'every file in every new/ is one complete test message');
  assert.deepEqual(dirs.filter((d) => d !== aliceNew), [], 'nothing was delivered anywhere but alice (no bounce to the sender)');
  const count = new Map<number, number>();
  for (const f of files) count.set(f.serial!, (count.get(f.serial!) ?? 0) + 1);
  const missing = [...w.acked].filter(([serial]) => !count.has(serial)).map(([serial, id]) => `serial ${serial} (queued as ${id})`);
  assert.deepEqual(missing, [], 'every acknowledged message is in alice\'s new/');
  for (const sub of ['tmp', 'mess', 'todo', 'corrupt']) {
    assert.deepEqual(spoolEntries(w.spool, sub), [], `spool ${sub}/ is empty once drained`);
  }
  assert.deepEqual(w.server.logLines(WARN).filter((l) => !/"msg":"(quota check failed|mailbox base directory did not exist)/.test(l)), [],
    'no warning or error in the server log');
  return {
    files: files.length,
    acked: w.acked.size,
    duplicates: [...count.values()].reduce((sum, n) => sum + n - 1, 0),
    deliveredUnacked: [...count.keys()].filter((s) => !w.acked.has(s)).length,
    maildirTmpDebris: maildirTmpFiles(w.mailboxes).length,
  };
}

const show = (t: TestContext, what: string, v: object) => t.diagnostic(`${what}: ${JSON.stringify(v)}`);

describe('crash safety: SIGKILL of the server process', { timeout: 240_000 }, () => {
  test('killed during DATA, three times: every acknowledged message is delivered after restart, none partial', async (t) => {
    const w = await makeWorld();
    await w.server.start();
    let serial = 0;
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
    const random = mulberry32(seed);
    t.diagnostic(`kill moments from CRASH_SEED=${seed}`);
    for (let round = 1; round <= 3; round++) {
      const inData = new Set<number>();
      let stop = false;
      const next = () => (stop ? null : ++serial);
      const before = w.acked.size;
      const sessions = Array.from({ length: 8 }, () => session(w, next, { bytes: 48_000, chunk: 8192, inData }));
      const staller = stalledSession(w, 1_000_000 + round, inData);
      // Let a few messages through, then kill at a random moment while the sessions are busy.
      await staller.ready;
      while (w.acked.size - before < 5) await sleep(5);
      const delay = Math.floor(random() * 400);
      await sleep(delay);
      w.server.kill();
      stop = true;
      const killedWith = await w.server.waitExit();
      assert.equal(killedWith.signal, 'SIGKILL');
      const inFlight = inData.size;
      await Promise.all([...sessions, staller.done]);
      assert.ok(inFlight >= 1, 'at least one message was in DATA at the kill');

      await w.server.start();
      const drainMs = await waitDrained(w);
      const v = verify(w);
      show(t, `round ${round}`, { killAfterMs: delay, ackedThisRound: w.acked.size - before, inDataAtKill: inFlight, drainMs, ...v });
    }
    const stopped = await w.server.stop();
    assert.equal(stopped.code, 0, `clean stop after the crashes:\n${w.server.logTail()}`);
  });

  test('killed while delivering 300 just-queued messages: all delivered after restart, none partial', async (t) => {
    const w = await makeWorld();
    await w.server.start();
    const total = 300;
    let serial = 500_000;
    let snapshot: { todo: number; delivered: number } | null = null;
    const next = () => (serial < 500_000 + total ? ++serial : null);
    const inData = new Set<number>();
    const onAck = () => {
      if (w.acked.size === total) {
        w.server.kill(); // right after the last 250, while the delivery loop is busy
        snapshot = { todo: spoolEntries(w.spool, 'todo').length, delivered: 0 };
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => session(w, next, { bytes: 4000, chunk: 65_536, inData, onAck })));
    const acceptMs = Date.now() - t0;
    await w.server.waitExit();
    assert.equal(w.acked.size, total, 'all 300 messages were acknowledged before the kill');
    assert.ok(snapshot !== null);
    const s = snapshot as { todo: number; delivered: number };
    s.delivered = readdirSync(join(w.mailboxes, 'example.org', 'alice', 'new')).length;
    assert.ok(s.todo > 0, `the kill came while messages were still queued (queued: ${s.todo}, delivered: ${s.delivered})`);

    await w.server.start();
    const drainMs = await waitDrained(w);
    const v = verify(w);
    show(t, 'delivery crash', { acceptMs, todoAtKill: s.todo, deliveredAtKill: s.delivered, drainMs, ...v });
    assert.equal((await w.server.stop()).code, 0);
  });
});

/** Small seeded PRNG, so a failing kill moment can be replayed with CRASH_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}
