// npm run bench:queue — what due() costs with a large deferred queue: DEFERRED messages (default
// 20,000) waiting for their next retry, and new ones arriving that must be handed out at once.
// Each due() call here is what the delivery runner makes after every finished attempt. Prints one
// table and a JSON line; a measurement, not a test (it asserts nothing).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { silentLogger } from '../src/log.ts';
import { type Envelope, parseAddress, temporary } from '../src/mail.ts';
import { createQueue } from '../src/queue/index.ts';

const DEFERRED = Number(process.env.DEFERRED ?? 20_000);
const FRESH = Number(process.env.FRESH ?? 2_000);

const envelope = (to: string): Envelope => ({
  sender: parseAddress('bench@example.org'), recipients: [parseAddress(to)], receivedAt: new Date(),
  client: { ip: '127.0.0.1', helo: 'bench', user: null, tls: false },
});
const body = () => Readable.from([Buffer.from('Subject: bench\r\n\r\nbody\r\n')]);

const dir = mkdtempSync(join(tmpdir(), 'ldapmta-bench-queue-'));
try {
  const queue = await createQueue({ dir, lifetimeSeconds: 5 * 86_400, hostname: 'bench.example.org' }, { log: silentLogger() });
  const started = Date.now();
  for (let i = 0; i < DEFERRED; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, DEFERRED - i) }, (_, k) => queue.accept(envelope(`d${i + k}@remote.test`), body())));
  }
  for (const message of await queue.due(new Date(), DEFERRED)) {
    await queue.settle(message.id, message.pending.map((recipient) => ({ recipient, ok: false as const, error: temporary('4.4.1', 'no route') })));
  }
  console.error(`[bench:queue] ${DEFERRED} deferred messages in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // New mail, handed out one message per due() call as the runner does when one slot frees up.
  let callsNs = 0n;
  let calls = 0;
  for (let i = 0; i < FRESH; i++) {
    const id = await queue.accept(envelope(`f${i}@remote.test`), body());
    const t = process.hrtime.bigint();
    const due = await queue.due(new Date(), 1);
    callsNs += process.hrtime.bigint() - t;
    calls++;
    if (due[0]?.id !== id) throw new Error(`due() did not hand out the new message ${id}`);
    await queue.settle(id, [{ recipient: due[0].pending[0]!, ok: true }]);
  }
  const perCallUs = Number(callsNs / BigInt(calls)) / 1000;
  console.log(`| deferred messages | due() calls | µs per call |\n|---:|---:|---:|\n| ${DEFERRED} | ${calls} | ${perCallUs.toFixed(1)} |`);
  console.log(JSON.stringify({ bench: 'queue', deferred: DEFERRED, calls, perCallUs: Number(perCallUs.toFixed(1)) }));
  await queue.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
