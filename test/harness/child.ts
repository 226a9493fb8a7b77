// The life of one test server child process (slapd, redis-server, clamd): spawn, remember how it
// ended and the tail of its output, stop with SIGTERM then SIGKILL. Never daemonizes it; a daemon
// that forks workers (spamd, rspamd) leads its own process group (GroupChildServer), signalled whole.
// Also findProgram(): where a daemon's binary lives.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type net from 'node:net';
import { delimiter, join } from 'node:path';
import { sleep } from './ports.ts';

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
  /** The child leads a process group of its own (GroupChildServer). */
  protected readonly ownGroup: boolean = false;

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
  protected launch(binary: string, args: string[], echo?: (chunk: string) => void, env?: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: this.ownGroup, env: env ?? process.env });
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

// ---------------------------------------------------------------------------------------------
// Daemons with worker processes

/**
 * A ChildServer whose process leads its own process group, for daemons that fork workers: a
 * SIGKILLed spamd or rspamd leaves its children running (holding the port and the test's output
 * pipes), so kill(), killNow() and the end of stop() signal the whole group.
 */
export abstract class GroupChildServer extends ChildServer {
  /** A group was started and has not been seen empty since: only then is it signalled (its id may be reused later). */
  private groupLive = false;

  protected override readonly ownGroup = true;

  protected override launch(binary: string, args: string[], echo?: (chunk: string) => void, env?: NodeJS.ProcessEnv): ChildProcess {
    const child = super.launch(binary, args, echo, env);
    this.groupLive = child.pid !== undefined;
    return child;
  }

  /** Signals every process of the group led by the last child; false when none is left. */
  protected signalGroup(signal: NodeJS.Signals | 0): boolean {
    const pgid = this.child?.pid;
    if (!this.groupLive || pgid === undefined || pgid <= 0) return false;
    try {
      process.kill(-pgid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** The pids in the group led by the last child (zombies included), from /proc. */
  protected async groupMembers(): Promise<number[]> {
    const pgid = this.child?.pid;
    if (pgid === undefined) return [];
    const members: number[] = [];
    for (const entry of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // After the parenthesised command name: state, ppid, pgrp.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    }
    return members;
  }

  override kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive()) this.signalGroup(signal);
  }

  /** Every process of the group stopped (state T), not just the leader: the workers answer the requests. */
  override async pause(): Promise<void> {
    this.signalGroup('SIGSTOP');
    const deadline = Date.now() + 5000;
    for (;;) {
      let stopped = true;
      for (const pid of await this.groupMembers()) {
        for (const task of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
          const stat = await readFile(`/proc/${pid}/task/${task}/stat`, 'utf8').catch(() => '');
          const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
          if (state !== '' && state !== 'T' && state !== 't') stopped = false;
        }
      }
      if (stopped) return;
      if (Date.now() > deadline) throw new Error(`process group ${this.lastPid} did not stop within 5 s after SIGSTOP`);
      await sleep(2);
    }
  }

  override resume(): void {
    this.signalGroup('SIGCONT');
  }

  /**
   * SIGTERM to the leader (the daemon stops its own workers), SIGKILL to the group after the stop
   * timeout, then SIGKILL to whatever of the group is left, and wait (bounded) until it is gone so
   * the port is free for start().
   */
  protected override async terminate(sendTerm: boolean): Promise<void> {
    const child = this.child;
    if (child === null) return;
    if (this.alive()) {
      // A stopped group would never handle SIGTERM.
      this.signalGroup('SIGCONT');
      if (sendTerm) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) this.signalGroup('SIGKILL');
    }
    await this.exited;
    this.signalGroup('SIGKILL');
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const left = await this.groupMembers();
      // Zombies re-parented to init hold no socket; they are init's to reap.
      const live = [];
      for (const pid of left) {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
        if (stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') live.push(pid);
      }
      if (live.length === 0) {
        this.groupLive = false;
        return;
      }
      await sleep(20);
    }
  }

  /** Synchronous last resort used by the exit hook: the whole group, even when the leader is gone. */
  override killNow(): void {
    this.signalGroup('SIGCONT');
    this.signalGroup('SIGKILL');
  }
}

/** Where a program lives (PATH, then the sbin directories), or null. */
export function findProgram(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
