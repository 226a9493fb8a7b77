// Owns: throw-away ClamAV clamd child processes for tests: a temp dir holding clamd.conf and a
// one-signature database the harness writes (the EICAR test file), TCP on a random 127.0.0.1 port
// and a Unix socket in the temp dir, in the foreground as the current user (root included).
// Must never: daemonize, load or download a real virus database (DatabaseDirectory is the temp
// dir), listen beyond loopback, or touch the system clamd (/etc/clamav, /var/lib/clamav, its socket).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ChildServer } from './child.ts';
import { freePort, onProcessExit, pingOnce, sleep, waitForPort } from './ports.ts';

/** The signature name written to the database; clamd reports it with ".UNOFFICIAL" appended. */
export const EICAR_SIGNATURE_NAME = 'Eicar-Test-Signature-Ldapmta';
/** What clamd says it found: "stream: Eicar-Test-Signature-Ldapmta.UNOFFICIAL FOUND". */
export const EICAR_SIGNATURE = `${EICAR_SIGNATURE_NAME}.UNOFFICIAL`;

/**
 * The 68-byte EICAR anti-virus test file, assembled at run time so no file of this repository
 * holds it whole (a scanner on a developer's machine may flag a file that does).
 */
export const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS', '-TEST-FILE!$H+H*'].join('');

const INSTALL_HINT = 'apt-get install -y clamav-daemon';
const START_TIMEOUT_MS = 30_000;
const DEFAULT_STREAM_MAX = 1024 * 1024;

export interface Clamd {
  /** Always 127.0.0.1. */
  host: string;
  port: number;
  /** clamd's LocalSocket, in the temp dir. */
  socket: string;
  /** The temp dir (clamd.conf, db/, tmp/, the socket); removed when the process exits. */
  dir: string;
  pid: number;
  /** clamd's StreamMaxLength in bytes: INSTREAM data past it gets "INSTREAM size limit exceeded. ERROR". */
  streamMaxLength: number;
  /** How long the last start() took until clamd answered PING, in ms. */
  startMs: number;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). start() may follow. */
  stop(): Promise<void>;
  /** Send a signal without waiting (default SIGKILL). */
  kill(signal?: NodeJS.Signals): void;
  /** SIGSTOP, returning once every thread is stopped: the socket still accepts, nobody answers. */
  pause(): Promise<void>;
  resume(): void;
  /** Start again on the same port and socket; no-op when running. */
  start(): Promise<void>;
}

export interface StartClamdOptions {
  /** StreamMaxLength in bytes; default 1 MiB. */
  streamMaxLength?: number;
}

/** Where clamd lives (Debian: /usr/sbin/clamd), or null. */
export function clamdBinary(): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin']) {
    const candidate = path.join(dir, 'clamd');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The database: one extended (body-based) signature that matches the EICAR string anywhere in any
 * file type, so it also fires on the decoded MIME part of a mail. A hash signature (.hdb, the
 * output of `sigtool --md5`) would match only a part that is exactly the 68 bytes.
 * Format (ClamAV "signatures" docs): Name:TargetType:Offset:HexSignature, TargetType 0 = any file.
 */
export function eicarNdb(): string {
  return `${EICAR_SIGNATURE_NAME}:0:*:${Buffer.from(EICAR, 'latin1').toString('hex')}\n`;
}

/** Sends zPING over TCP or the Unix socket; true on "PONG". */
export function clamdPing(target: { port: number } | { socket: string }, timeoutMs = 1000): Promise<boolean> {
  return pingOnce('socket' in target ? target : target.port, 'zPING\0',
    (reply, ended) => (reply.includes('\0') || ended ? reply.startsWith('PONG') : null), timeoutMs);
}

class ManagedClamd extends ChildServer implements Clamd {
  readonly host = '127.0.0.1';
  readonly socket: string;
  startMs = 0;

  constructor(
    readonly dir: string,
    readonly streamMaxLength: number,
    private readonly binary: string,
  ) {
    super();
    this.socket = path.join(dir, 'clamd.sock');
  }

  protected urlFor(port: number): string {
    return `tcp://127.0.0.1:${port}`;
  }

  /** clamd.conf for the current port. No `User` line: clamd keeps the uid it was started with (root in CI). */
  private config(): string {
    return [
      'Foreground yes',
      // No LogFile: clamd then logs to stdout, which feeds the output tail for error messages.
      'LogTime no',
      `TCPSocket ${this.port}`,
      'TCPAddr 127.0.0.1',
      `LocalSocket ${this.socket}`,
      'FixStaleSocket yes',
      `DatabaseDirectory ${path.join(this.dir, 'db')}`,
      `TemporaryDirectory ${path.join(this.dir, 'tmp')}`,
      `PidFile ${path.join(this.dir, 'clamd.pid')}`,
      `StreamMaxLength ${this.streamMaxLength}`,
      // The database never changes under a test: no reload checks, no freshclam notifications.
      'SelfCheck 0',
      'MaxThreads 4',
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    if (this.running()) return;
    await this.terminate(false);
    const conf = path.join(this.dir, 'clamd.conf');
    await fsp.writeFile(conf, this.config());
    const started = Date.now();
    const child = this.launch(this.binary, ['--config-file', conf]);
    const failed = (): string | null =>
      this.exitInfo === null ? null : `clamd exited (${this.exitInfo}) on port ${this.port}: ${this.outputTail.trim()}`;
    const deadline = started + START_TIMEOUT_MS;
    try {
      // clamd loads the database before it binds, so an open port is nearly ready; PING proves it.
      await waitForPort(this.port, { timeoutMs: START_TIMEOUT_MS, what: 'clamd', failed });
      while (!(await clamdPing({ port: this.port })) || !(await clamdPing({ socket: this.socket }))) {
        const failure = failed();
        if (failure !== null) throw new Error(failure);
        if (Date.now() > deadline) throw new Error(`clamd on port ${this.port} does not answer PING: ${this.outputTail.trim()}`);
        await sleep(25);
      }
      this.lastPid = child.pid ?? 0;
      this.startMs = Date.now() - started;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }
}

/** A fresh clamd child answering PING on a random 127.0.0.1 port and a Unix socket when this resolves. */
export async function startClamd(options: StartClamdOptions = {}): Promise<Clamd> {
  const binary = clamdBinary();
  if (binary === null) throw new Error(`clamd not found (searched PATH and /usr/sbin); install it with: ${INSTALL_HINT}`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ldapmta-clamd-'));
  await fsp.mkdir(path.join(dir, 'db'));
  await fsp.mkdir(path.join(dir, 'tmp'));
  await fsp.writeFile(path.join(dir, 'db', 'ldapmta-eicar.ndb'), eicarNdb());
  const instance = new ManagedClamd(dir, options.streamMaxLength ?? DEFAULT_STREAM_MAX, binary);
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
