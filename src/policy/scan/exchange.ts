// Owns: one request/reply exchange with a scanner daemon over a socket, settled once: a reply, a
// failure or the timeout, whichever comes first, and the socket closed after it. Every failure is
// temporary 4.7.1 with the daemon's name and what went wrong kept as the cause (for the log).
import type { Socket } from 'node:net';
import { type MailError, temporary } from '../../mail.ts';

export interface Exchange<T> {
  /** Settles with a result or a MailError; later calls do nothing. */
  finish(outcome: T | MailError): void;
  /** Settles with a temporary 4.7.1 explaining `what`. */
  fail(what: string, cause?: unknown): void;
  /** True once settled: stop writing. */
  readonly settled: boolean;
}

export const UNAVAILABLE = 'scanner unavailable, try again later';

/** Runs `talk` on `socket` until it finishes or fails, or `timeoutMs` passes; socket errors fail it unless `ownErrors`. */
export function exchange<T>(socket: Socket, options: { timeoutMs: number; label: string; unavailable?: string; ownErrors?: boolean }, talk: (x: Exchange<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const x: Exchange<T> = {
      finish(outcome) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners('data');
        socket.on('error', () => undefined);
        socket.destroy();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      },
      fail(what, cause) {
        x.finish(temporary('4.7.1', options.unavailable ?? UNAVAILABLE, new Error(`${options.label}: ${what}`, cause === undefined ? undefined : { cause })));
      },
      get settled() {
        return settled;
      },
    };
    const timer = setTimeout(() => x.fail(`no answer within ${options.timeoutMs} ms`), options.timeoutMs);
    // A client that reads a late reply after a socket error handles errors itself (ownErrors).
    if (options.ownErrors !== true) socket.on('error', (err: Error) => x.fail(err.message, err));
    talk(x);
  });
}
