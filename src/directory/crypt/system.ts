// The operating system's crypt(3), reached through perl (Essential on Debian; libxcrypt behind it),
// for the families we do not implement ourselves: yescrypt ($y$, $gy$) and scrypt ($7$).
// The password travels on stdin, never on a command line; a missing perl or libxcrypt fails closed.
import { spawn } from 'node:child_process';

const SCRIPT = 'binmode STDIN; local $/; my ($s, $p) = split /\\0/, <STDIN>, 2; my $h = crypt($p, $s); print defined $h ? $h : "";';
const TIMEOUT_MS = 5_000;

/** crypt(password, setting) by the system library, or null when it cannot be computed. */
export function systemCrypt(password: Buffer, setting: string): Promise<string | null> {
  if (setting.includes('\u0000') || password.includes(0)) return Promise.resolve(null);
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('perl', ['-e', SCRIPT], { stdio: ['pipe', 'pipe', 'ignore'], timeout: TIMEOUT_MS, env: {} });
    } catch {
      resolve(null);
      return;
    }
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', () => resolve(null));
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('latin1');
      // libxcrypt answers "*0"/"*1" for settings it cannot use.
      resolve(code === 0 && text.startsWith('$') ? text : null);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(Buffer.concat([Buffer.from(setting, 'latin1'), Buffer.from([0]), password]));
  });
}
