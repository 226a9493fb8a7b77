// Owns: loopback port allocation, readiness polling and the last-resort cleanup hook of the test harness.
// Must never: touch a non-loopback address, or kill anything it was not handed by a harness module.
import net from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => {
        if (err) reject(err);
        else if (port <= 0) reject(new Error('freePort: could not read the bound port'));
        else resolve(port);
      });
    });
  });
}

/** One TCP connect attempt to 127.0.0.1:port; true when it was accepted. */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = settleOnce(socket, timeoutMs, resolve);
    socket.once('connect', () => done(true));
  });
}

/** The one way a probe's socket ends: `done(ok)` closes it and answers; an error or the timeout answers false. */
function settleOnce(socket: net.Socket, timeoutMs: number, resolve: (ok: boolean) => void): (ok: boolean) => void {
  const done = (ok: boolean): void => {
    socket.removeAllListeners();
    socket.on('error', () => undefined);
    socket.destroy();
    resolve(ok);
  };
  socket.setTimeout(timeoutMs, () => done(false));
  socket.once('error', () => done(false));
  return done;
}

/**
 * One request over a fresh loopback connection (a TCP port or a Unix socket) and a yes or no from
 * the reply: `answer` is asked after each chunk (null: read on) and once more at the end of the
 * stream. False on an error or after timeoutMs. The harnesses' readiness pings (clamd, spamd, redis).
 */
export function pingOnce(
  target: number | { socket: string }, request: string,
  answer: (reply: string, ended: boolean) => boolean | null, timeoutMs = 1000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = typeof target === 'number' ? net.connect({ host: '127.0.0.1', port: target }) : net.connect({ path: target.socket });
    let reply = '';
    const done = settleOnce(socket, timeoutMs, resolve);
    socket.once('connect', () => socket.write(request));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const ok = answer(reply, false);
      if (ok !== null) done(ok);
    });
    socket.once('end', () => done(answer(reply, true) ?? false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until 127.0.0.1:port accepts a connection. `failed` is asked between attempts; when it
 * returns a string (e.g. "slapd exited with code 1: ...") polling stops with that as the error.
 */
export async function waitForPort(
  port: number,
  options: { timeoutMs?: number; intervalMs?: number; what?: string; failed?: () => string | null } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = options.failed?.() ?? null;
    if (failure !== null) throw new Error(failure);
    if (await canConnect(port)) return;
    if (Date.now() >= deadline) {
      throw new Error(`${options.what ?? 'server'} did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Runs `fn` synchronously when this process exits, or is ended by SIGINT/SIGTERM/SIGHUP
 * (the signal is re-raised afterwards when nobody else handles it). Returns an unregister function.
 * Harness servers use this to kill their child and delete their temp dir if a test forgot to.
 */
const cleanups = new Set<() => void>();
let hooked = false;

function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the process is going away
    }
  }
}

export function onProcessExit(fn: () => void): () => void {
  cleanups.add(fn);
  if (!hooked) {
    hooked = true;
    process.on('exit', runCleanups);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const handler = (): void => {
        runCleanups();
        if (process.listenerCount(signal) === 1) {
          process.removeListener(signal, handler);
          process.kill(process.pid, signal);
        }
      };
      process.on(signal, handler);
    }
  }
  return () => {
    cleanups.delete(fn);
  };
}
