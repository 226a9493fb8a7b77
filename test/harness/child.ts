// The life of one test server child process (slapd, redis-server): spawn, remember how it ended
// and the tail of its output, stop with SIGTERM then SIGKILL. Never detaches or daemonizes it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type net from 'node:net';

const STOP_TIMEOUT_MS = 10_000;

export abstract class ChildServer {
  url = '';
  port = 0;
  protected child: ChildProcess | null = null;
  protected exited: Promise<void> = Promise.resolve();
  /** How the last process ended ("code 1", "signal SIGKILL"), or null while it runs. */
  protected exitInfo: string | null = null;
  /** The last 8 KiB of what it wrote, for error messages. */
  protected outputTail = '';
  protected lastPid = 0;

  protected abstract urlFor(port: number): string;

  get pid(): number {
    return this.lastPid;
  }

  setPort(port: number): void {
    this.port = port;
    this.url = this.urlFor(port);
  }

  /** The process has not been reaped yet (it may have been sent a signal). */
  protected alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** True when start() has nothing to do. */
  protected running(): boolean {
    return this.alive() && this.child?.killed !== true;
  }

  /** Spawn `binary`; stdout and stderr feed the output tail (and `echo`, when given). */
  protected launch(binary: string, args: string[], echo?: (chunk: string) => void): ChildProcess {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
      echo?.(chunk);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    // A forgotten instance must not keep the test process alive; the exit hook kills it.
    child.unref();
    (child.stdout as net.Socket | null)?.unref();
    (child.stderr as net.Socket | null)?.unref();
    return child;
  }

  /** Sends SIGTERM (when `sendTerm`), waits up to the stop timeout, then SIGKILLs and waits. */
  protected async terminate(sendTerm: boolean): Promise<void> {
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

  async stop(): Promise<void> {
    await this.terminate(true);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive()) this.child?.kill(signal);
  }

  /**
   * SIGSTOP, then wait until the kernel reports every thread stopped: kill() returns before the
   * signal has taken effect, and a thread already running on another CPU may still answer a
   * request sent right after it.
   */
  async pause(): Promise<void> {
    this.kill('SIGSTOP');
    const deadline = Date.now() + 5000;
    while (!(await this.allThreadsStopped())) {
      if (Date.now() > deadline) throw new Error(`pid ${this.lastPid} did not stop within 5 s after SIGSTOP`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  resume(): void {
    this.kill('SIGCONT');
  }

  private async allThreadsStopped(): Promise<boolean> {
    const tasks = await readdir(`/proc/${this.lastPid}/task`);
    for (const task of tasks) {
      const stat = await readFile(`/proc/${this.lastPid}/task/${task}/stat`, 'utf8').catch(() => '');
      // The state is the field after the parenthesised command name: T (stopped) or t (traced).
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'T' && state !== 't') return false;
    }
    return true;
  }

  /** Synchronous last resort used by the exit hook. */
  killNow(): void {
    if (this.alive()) this.child?.kill('SIGKILL');
  }
}
