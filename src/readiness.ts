// Owns: what /readyz answers. Ready means this node can take mail now: the directory answers (or
// has been down for less than cache.staleIfErrorSeconds, while cached answers still serve), the
// spool takes a small fsynced write, and every configured listener is bound. Each check names
// what is wrong; none throws. The clock and the probes are passed in.
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readiness } from './listen/admin.ts';

export interface ReadinessDeps {
  /** Resolves when the directory answers a trivial query; rejects otherwise. */
  readonly directoryPing: () => Promise<unknown>;
  readonly spool: string;
  readonly staleIfErrorSeconds: number;
  /** Listener name → bound port. */
  readonly listeners: () => Readonly<Record<string, number>>;
  readonly now?: () => number;
}

export function createReadiness(deps: ReadinessDeps): () => Promise<Readiness> {
  const now = deps.now ?? Date.now;
  let directoryDownSince: number | null = null;

  async function directory(): Promise<{ ok: boolean; text: string }> {
    try {
      await deps.directoryPing();
      directoryDownSince = null;
      return { ok: true, text: 'ok' };
    } catch (err) {
      directoryDownSince ??= now();
      const downFor = Math.round((now() - directoryDownSince) / 1000);
      const reason = (err as Error).message;
      if (downFor < deps.staleIfErrorSeconds) return { ok: true, text: `unreachable for ${downFor} s (${reason}); cached answers serve for up to ${deps.staleIfErrorSeconds} s` };
      return { ok: false, text: `unreachable for ${downFor} s (${reason})` };
    }
  }

  async function spool(): Promise<{ ok: boolean; text: string }> {
    const file = join(deps.spool, `.readyz-${process.pid}`);
    try {
      const handle = await open(file, 'w', 0o600);
      try {
        await handle.write('ready\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await unlink(file);
      return { ok: true, text: 'ok' };
    } catch (err) {
      return { ok: false, text: `not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
  }

  return async () => {
    const [d, s] = await Promise.all([directory(), spool()]);
    const bound = deps.listeners();
    const listeners = Object.keys(bound).length === 0 ? { ok: false, text: 'none bound' } : { ok: true, text: Object.entries(bound).map(([name, port]) => `${name}:${port}`).join(' ') };
    return { ready: d.ok && s.ok && listeners.ok, checks: { directory: d.text, spool: s.text, listeners: listeners.text } };
  };
}
