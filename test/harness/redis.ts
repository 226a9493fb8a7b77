// Owns: throw-away redis-server child processes for tests (127.0.0.1, random port, no persistence).
// Must never: daemonize, persist data (no RDB, no AOF), listen beyond loopback, or touch a system redis.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { binaryPath } from './slapd.ts';
import { freePort, onProcessExit, sleep, waitForPort } from './ports.ts';

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
const STOP_TIMEOUT_MS = 10_000;

/** Sends PING over a raw socket; true on "+PONG". */
export function redisPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

class ManagedRedis implements RedisServer {
  url = '';
  port = 0;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private exitInfo: string | null = null;
  private outputTail = '';
  private lastPid = 0;

  constructor(private readonly dir: string) {}

  get pid(): number {
    return this.lastPid;
  }

  setPort(port: number): void {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  /** The process has not been reaped yet (it may have been sent a signal). */
  private alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends SIGTERM (when `sendTerm`), waits up to the stop timeout, then SIGKILLs and waits. */
  private async terminate(sendTerm: boolean): Promise<void> {
    const child = this.child;
    if (child === null || !this.alive()) {
      await this.exited;
      return;
    }
    if (sendTerm) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS); // also keeps the event loop alive
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async start(): Promise<void> {
    if (this.alive() && this.child?.killed !== true) return;
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
    const child = spawn(binaryPath('redis-server'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exitInfo = null;
    this.outputTail = '';
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal !== null ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exitInfo = `spawn error ${err.message}`;
        resolve();
      });
    });
    const keep = (chunk: string): void => {
      this.outputTail = (this.outputTail + chunk).slice(-8192);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();

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

  async stop(): Promise<void> {
    await this.terminate(true);
  }

  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive()) this.child?.kill(sig);
  }

  killNow(): void {
    if (this.alive()) this.child?.kill('SIGKILL');
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
