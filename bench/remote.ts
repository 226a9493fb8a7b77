// npm run bench:remote — remote delivery throughput: MESSAGES queued messages of 4 KB, one
// recipient each, spread over 1, 10 and 50 destination domains whose MX (a loopback DNS server
// answers) is one fast SMTP sink in its own process. Measures msgs/s from the start of the
// delivery loop until the sink has them all, connections opened per message, and CPU per message.
// A warm-up round (WARMUP messages, default 1,000, not reported) runs first so that every
// scenario meets a JIT-warm process, as a long-running server is.
// A measurement, not a test: it asserts nothing. Knobs: MESSAGES, DOMAINS ("1,10,50"), PER_DEST, WARMUP.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { validateConfig } from '../src/config.ts';
import { startDelivery } from '../src/deliver/index.ts';
import { createRemote } from '../src/deliver/remote.ts';
import { diskReplyMemory } from '../src/deliver/reply-memory.ts';
import { createDeliverToMaildir } from '../src/deliver/maildir.ts';
import { createDirectory } from '../src/directory/index.ts';
import { silentLogger } from '../src/log.ts';
import { createQueue } from '../src/queue/index.ts';
import { startDns } from '../test/harness/dns.ts';

const MESSAGES = Number(process.env.MESSAGES ?? 5000);
const DOMAINS = (process.env.DOMAINS ?? '1,10,50').split(',').map(Number);
const PER_DEST = process.env.PER_DEST === undefined ? undefined : Number(process.env.PER_DEST);
const WARMUP = Number(process.env.WARMUP ?? 1000);

interface Sink { port: number; stats(): Promise<{ connections: number; messages: number; cpuMs: number }>; stop(): void }

async function startSinkProcess(): Promise<Sink> {
  const child = spawn(process.execPath, [new URL('./sink.mjs', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = (await lines.next()).value as string;
  const port = Number(/^port (\d+)$/.exec(first)?.[1]);
  return {
    port,
    async stats() {
      child.stdin!.write('stats\n');
      return JSON.parse((await lines.next()).value as string);
    },
    stop: () => child.kill(),
  };
}

function message(i: number): Buffer {
  const head = `From: sender@example.org\r\nTo: user${i}@remote\r\nSubject: bench ${i}\r\nMessage-ID: <bench-${i}@example.org>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, 0123456789 abcdefghij.\r\n';
  return Buffer.from(head + line.repeat(Math.ceil((4096 - head.length) / line.length)));
}

async function run(domains: number, MESSAGES: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'ldapmta-bench-remote-'));
  const sink = await startSinkProcess();
  const names = Array.from({ length: domains }, (_, k) => `d${k}.bench.test`);
  const dns = await startDns({
    mx: Object.fromEntries(names.map((d) => [d, [{ preference: 10, exchange: 'mx.sink.bench.test' }]])),
    a: { 'mx.sink.bench.test': ['127.0.0.1'] },
  });
  const config = validateConfig({
    hostname: 'mx1.example.org', spool: join(dir, 'spool'), mailboxes: join(dir, 'mail'),
    listen: { smtp: '', submission: '', submissions: '', pop3: '', imap: '', admin: '' },
    delivery: { dnsServers: [dns.server], remotePort: sink.port, ...(PER_DEST === undefined ? {} : { concurrencyPerDestination: PER_DEST }) },
    srs: { enabled: false }, log: { level: 'silent' },
  });
  const log = silentLogger();
  const queue = await createQueue({ dir: config.spool, lifetimeSeconds: 3600, hostname: config.hostname }, { log });
  const client = { ip: '127.0.0.1', helo: 'bench', user: null, tls: false };
  for (let i = 0; i < MESSAGES; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, MESSAGES - i) }, (_, j) => queue.accept(
      { sender: { local: 'sender', domain: 'example.org' }, recipients: [{ local: `user${i + j}`, domain: names[(i + j) % domains]! }], client, receivedAt: new Date() },
      Readable.from([message(i + j)]),
    )));
  }
  const directory = await createDirectory(config, { log });
  const remote = createRemote(config);
  const before = await sink.stats();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const runner = startDelivery(config, { queue, directory, deliverToMaildir: createDeliverToMaildir(), ...remote, srs: null, replies: diskReplyMemory(join(dir, 'autoreply')), programs: null, log });
  let after = before;
  while (after.messages - before.messages < MESSAGES) {
    await new Promise((r) => setTimeout(r, 20));
    after = await sink.stats();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // Let the last settles finish before stopping.
  await runner.stop();
  await remote.smtp.close();
  await queue.close();
  await directory.close();
  await dns.close();
  sink.stop();
  rmSync(dir, { recursive: true, force: true });
  const connections = after.connections - before.connections;
  return {
    domains, messages: MESSAGES, seconds: round(seconds, 2), msgsPerSecond: round(MESSAGES / seconds, 0),
    connectionsPerMessage: round(connections / MESSAGES, 4), connections,
    cpuMsPerMessage: round((cpu.user + cpu.system) / 1000 / MESSAGES, 3), sinkCpuMsPerMessage: round((after.cpuMs - before.cpuMs) / MESSAGES, 3),
  };
}

function round(n: number, digits: number): number {
  return Math.round(n * 10 ** digits) / 10 ** digits;
}

if (WARMUP > 0) await run(10, WARMUP);
const results: Record<string, number>[] = [];
for (const domains of DOMAINS) {
  const r = await run(domains, MESSAGES);
  results.push(r);
  console.log(`${String(domains).padStart(3)} domain(s): ${r.msgsPerSecond} msgs/s, ${r.connectionsPerMessage} connections/msg (${r.connections}), ldapmta ${r.cpuMsPerMessage} ms CPU/msg, sink ${r.sinkCpuMsPerMessage} ms/msg`);
}
console.log(JSON.stringify({ bench: 'remote', date: new Date().toISOString(), results }));
