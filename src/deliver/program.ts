// Program delivery (deliveryProgramPath, directory-model §3.7): only programs on the allowlist,
// run directly (argv split on blanks, no shell) as the configured unprivileged user, message on
// stdin with LF line ends (as qmail and Postfix's pipe give it), qmail's variables in the environment, a
// time limit, and qmail-local's exit codes.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { MailError, permanent, temporary } from '../mail.ts';

export interface ProgramRun {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly uid: number;
  readonly gid: number;
  readonly timeoutMs: number;
  readonly cwd: string;
}

/** stop: exit 99, the remaining instructions are skipped. */
export interface ProgramResult {
  readonly stop: boolean;
}

/** Characters a program line may hold (qmail-ldap's restrictive check); shell syntax never passes. */
const SAFE_LINE = /^[A-Za-z0-9@_./:=\\ \t"'+,-]+$/;

/** The argv of a deliveryProgramPath value, or why it cannot run. Pure. */
export function programArgv(line: string, allow: readonly string[]): string[] | MailError {
  const text = line.trim();
  if (text === '' || text.startsWith('-') || !SAFE_LINE.test(text)) return permanent('5.3.5', 'illegal deliveryProgramPath value');
  const argv = text.split(/[ \t]+/);
  if (!allow.includes(argv[0]!)) return permanent('5.3.5', `program ${argv[0]} is not on the allowlist (programs.allow)`);
  return argv;
}

/** qmail-local's meaning of an exit code: 0 done, 99 done and stop, 100/64/65/70/76/77/78/112 permanent, else temporary. Pure. */
export function exitMeaning(code: number | null, what: string): { stop: boolean } | MailError {
  if (code === 0) return { stop: false };
  if (code === 99) return { stop: true };
  if (code !== null && [100, 64, 65, 70, 76, 77, 78, 112].includes(code)) return permanent('5.3.0', `${what} failed permanently (exit ${code})`);
  return temporary('4.3.0', `${what} failed (exit ${code ?? 'by signal'}), will retry`);
}

/** Runs one program with the message on stdin; resolves its meaning, throws a MailError on failure. */
export function runProgram(run: ProgramRun, message: Readable): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    const what = `program ${run.argv[0]}`;
    const child = spawn(run.argv[0]!, run.argv.slice(1), {
      // Its own process group, so a timeout kills whatever it started too.
      uid: run.uid, gid: run.gid, env: run.env, cwd: run.cwd, stdio: ['pipe', 'ignore', 'pipe'], shell: false, detached: true,
    });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      reject(temporary('4.3.0', `${what} timed out after ${Math.round(run.timeoutMs / 1000)} s`));
    }, run.timeoutMs);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (stderr.length < 1000) stderr += d;
    });
    child.stdin!.on('error', () => undefined); // a program that does not read its input is its own business
    message.on('error', (err) => child.stdin!.destroy(err));
    message.pipe(child.stdin!);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(temporary('4.3.0', `${what} could not be started: ${(err as NodeJS.ErrnoException).code ?? err.message}`, err));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return;
      const meaning = exitMeaning(code, what);
      if ('stop' in meaning) resolve(meaning);
      else {
        const detail = stderr.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 300);
        reject(detail === '' ? meaning : new MailError(meaning.kind, meaning.status, `${meaning.message}: ${detail}`));
      }
    });
  });
}

/** uid and gid of a user name or "uid:gid" from /etc/passwd; root is refused. */
export function unprivilegedUser(spec: string, passwd = '/etc/passwd'): { uid: number; gid: number } {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(spec);
  let ids: { uid: number; gid: number } | null = null;
  if (numeric !== null) ids = { uid: Number(numeric[1]), gid: Number(numeric[2] ?? numeric[1]) };
  else {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const [name, , uid, gid] = line.split(':');
      if (name === spec && uid !== undefined && gid !== undefined) ids = { uid: Number(uid), gid: Number(gid) };
    }
  }
  if (ids === null) throw new Error(`user ${spec} not found in ${passwd}`);
  if (ids.uid === 0 || ids.gid === 0) throw new Error(`programs never run as root (user ${spec})`);
  return ids;
}

/** CRLF → LF, as a stream (the queue keeps CRLF; programs expect the Unix form). A CR split from its LF across chunks is held back. */
export function toLf(): Transform {
  let pendingCr = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let text = chunk.toString('latin1');
      if (pendingCr) text = `\r${text}`;
      pendingCr = text.endsWith('\r');
      if (pendingCr) text = text.slice(0, -1);
      done(null, Buffer.from(text.replace(/\r\n/g, '\n'), 'latin1'));
    },
    flush(done) {
      done(null, pendingCr ? Buffer.from('\r') : null);
    },
  });
}
