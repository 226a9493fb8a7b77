// Owns: `ldapmta serve --config FILE` as a real child process for lifecycle tests (signals, reload,
// restart on the same spool): its JSON log lines read back, waits on them, its exit code. Strips
// the caller's LDAPMTA_* variables; a child still running when the test process exits is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { PACKAGE_ROOT } from '../../src/directory/index.ts';
import { waitFor } from '../fixtures/smtp-helpers.ts';
import { onProcessExit } from './ports.ts';

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export interface ServeChild {
  readonly process: ChildProcess;
  /** Every JSON line written so far (stdout and stderr). */
  lines(): LogLine[];
  /** The first line after `from` (an index into lines()) that matches. */
  waitForLine(match: (line: LogLine) => boolean, what: string, from?: number, timeoutMs?: number): Promise<LogLine>;
  /** The exit code (null for a signal). */
  readonly exited: Promise<number | null>;
  /** SIGKILL if still running, and wait. */
  kill(): Promise<void>;
  /** Everything it wrote, for failure messages. */
  output(): string;
}

/** Starts the server on `configFile` and resolves once it logged "ldapmta started". */
export async function serve(configFile: string): Promise<ServeChild> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LDAPMTA_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', configFile], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const unhook = onProcessExit(() => child.kill('SIGKILL'));
  void exited.then(unhook);
  const lines = () => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
  const handle: ServeChild = {
    process: child,
    lines,
    waitForLine: (match, what, from = 0, timeoutMs = 10_000) => waitFor(what, async () => {
      if (child.exitCode !== null && !lines().slice(from).some(match)) throw new Error(`ldapmta exited (${child.exitCode}) before ${what}:\n${text.slice(-4000)}`);
      return lines().slice(from).find(match);
    }, timeoutMs),
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    output: () => text,
  };
  await handle.waitForLine((l) => l.msg === 'ldapmta started', 'the server to start', 0, 20_000);
  return handle;
}
