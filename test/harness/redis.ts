// Owns: throw-away redis-server child processes for tests (127.0.0.1, random port, no persistence).
// Must never: daemonize, persist data (no RDB, no AOF), listen beyond loopback, or touch a system redis.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { ChildServer } from './child.ts';
import os from 'node:os';
import path from 'node:path';
import { binaryPath } from './slapd.ts';
import { freePort, onProcessExit, pingOnce, sleep, waitForPort } from './ports.ts';

export interface RedisServer {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Send a signal without waiting (default SIGKILL). */
  kill(sig?: NodeJS.Signals): void;
  /** Start again on the same port (empty: nothing is persisted); no-op when running. */
  start(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

/** Sends PING over a raw socket; true on "+PONG". */
export function redisPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return pingOnce(port, 'PING\r\n', (reply, ended) => (reply.includes('\r\n') || ended ? reply.startsWith('+PONG') : null), timeoutMs);
}

class ManagedRedis extends ChildServer implements RedisServer {
  constructor(private readonly dir: string) {
    super();
  }

  protected urlFor(port: number): string {
    return `redis://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    if (this.running()) return;
    // After kill(): let the old process go before reusing its port and data.
    await this.terminate(false);
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--daemonize', 'no',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--logfile', '',
      '--loglevel', 'warning',
    ];
    const child = this.launch(binaryPath('redis-server'), args);

    const failed = (): string | null =>
      this.exitInfo === null ? null : `redis-server exited (${this.exitInfo}) on port ${this.port}: ${this.outputTail.trim()}`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      await waitForPort(this.port, { timeoutMs: START_TIMEOUT_MS, what: 'redis-server', failed });
      while (!(await redisPing(this.port))) {
        const failure = failed();
        if (failure !== null) throw new Error(failure);
        if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} does not answer PING`);
        await sleep(25);
      }
      this.lastPid = child.pid ?? 0;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }
}

/** A fresh redis-server child on a random 127.0.0.1 port, answering PING when this resolves. */
export async function startRedis(): Promise<RedisServer> {
  binaryPath('redis-server');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-redis-'));
  const instance = new ManagedRedis(dir);
  const unregister = onProcessExit(() => {
    instance.killNow();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 1; ; attempt++) {
    instance.setPort(await freePort());
    try {
      await instance.start();
      return instance;
    } catch (err) {
      if (attempt >= 3) {
        unregister();
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}
