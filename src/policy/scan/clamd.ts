// Owns: the client side of ClamAV's clamd INSTREAM command, over TCP or a Unix socket, one connection
// per scan. Must never: report a message clean unless clamd said "stream: OK" for all of it; anything
// else (refused, timed out, an ERROR reply, a reply it cannot read) is a temporary 4.7.1.
//
// The protocol (clamd(8), "INSTREAM"): the client sends "zINSTREAM\0" (the z prefix asks for
// NUL-terminated replies), then the data as chunks of a 4-byte big-endian length followed by that
// many bytes, then a zero-length chunk. clamd answers one line and closes:
//   "stream: OK\0"                              clean
//   "stream: <Signature> FOUND\0"               infected; signatures from a non-official database
//                                               carry ".UNOFFICIAL" (Eicar-Test-Signature.UNOFFICIAL)
//   "INSTREAM size limit exceeded. ERROR\0"     more than StreamMaxLength was sent; clamd may close
//                                               the connection while the client is still writing
//   "... ERROR\0"                               any other failure
import net from 'node:net';
import { exchange } from './exchange.ts';
import { temporary, type MailError } from '../../mail.ts';
import type { VirusResult, VirusScanner } from './types.ts';

export interface ClamdOptions {
  /** A Unix socket path (clamd's LocalSocket). Takes precedence over host/port. */
  readonly socket?: string;
  /** clamd's TCPAddr; default 127.0.0.1. */
  readonly host?: string;
  /** clamd's TCPSocket. */
  readonly port?: number;
  /** The whole scan (connect, send, reply) must finish within this. */
  readonly timeoutMs: number;
  /**
   * clamd's StreamMaxLength, when known: a larger message is not sent at all (clamd would refuse it
   * after reading that much) and fails the same way, temporary 4.7.1. A truncated scan is never made.
   */
  readonly maxBytes?: number;
}

/** INSTREAM chunk size; any size up to StreamMaxLength works, 64 KiB is clamdscan's. */
const CHUNK = 64 * 1024;
/** No reply of clamd's is anywhere near this; more means the peer is not clamd. */
const MAX_REPLY = 4096;
const UNAVAILABLE = 'virus scanner unavailable, try again later';

/** Parses one INSTREAM reply (without its NUL); throws a temporary MailError for anything but OK or FOUND. */
export function parseClamdReply(reply: string, where: string): VirusResult {
  const line = reply.trim();
  if (line === 'stream: OK') return { infected: false };
  const found = /^stream: (.+) FOUND$/.exec(line);
  if (found !== null && found[1] !== undefined && found[1].trim() !== '') return { infected: true, signature: found[1].trim() };
  if (line.endsWith('ERROR')) {
    const text = line.replace(/^stream:\s*/, '').replace(/\s*ERROR$/, '').replace(/\.$/, '');
    throw temporary('4.7.1', /size limit/i.test(text) ? 'message too large for the virus scanner, try again later' : UNAVAILABLE,
      new Error(`clamd ${where}: ${text} (ERROR)`));
  }
  throw temporary('4.7.1', UNAVAILABLE, new Error(`clamd ${where}: malformed reply ${JSON.stringify(line.slice(0, 200))}`));
}

/** The INSTREAM request for `message`: command, chunks, terminating zero-length chunk. */
function* instream(message: Buffer): Generator<Buffer> {
  yield Buffer.from('zINSTREAM\0', 'latin1');
  for (let offset = 0; offset < message.length; offset += CHUNK) {
    const chunk = message.subarray(offset, Math.min(offset + CHUNK, message.length));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(chunk.length, 0);
    yield length;
    yield chunk;
  }
  yield Buffer.alloc(4);
}

export function createClamd(options: ClamdOptions): VirusScanner {
  const socketPath = options.socket !== undefined && options.socket !== '' ? options.socket : null;
  if (socketPath === null && (options.port === undefined || !Number.isInteger(options.port) || options.port <= 0 || options.port > 65535)) {
    throw new Error('clamd: give a Unix socket path or a TCP port');
  }
  if (!(options.timeoutMs > 0)) throw new Error('clamd: timeoutMs must be positive');
  const host = options.host ?? '127.0.0.1';
  const where = socketPath ?? `${host.includes(':') ? `[${host}]` : host}:${options.port}`;

  return {
    name: 'clamd',
    scan(message: Buffer): Promise<VirusResult> {
      if (options.maxBytes !== undefined && message.length > options.maxBytes) {
        return Promise.reject(temporary('4.7.1', 'message too large for the virus scanner, try again later',
          new Error(`clamd ${where}: message of ${message.length} bytes is over the stream limit of ${options.maxBytes}`)));
      }
      const socket = socketPath !== null ? net.connect({ path: socketPath }) : net.connect({ host, port: options.port as number });
      return exchange<VirusResult>(socket, { timeoutMs: options.timeoutMs, label: `clamd ${where}`, unavailable: UNAVAILABLE, ownErrors: true }, (x) => {
        const { finish, fail } = x;
        let reply = Buffer.alloc(0);

        // Written with flow control, and no further once clamd has answered: over StreamMaxLength it
        // replies and closes mid-stream, and every byte still queued makes a write error (EPIPE)
        // likelier to beat that reply.
        const drained = (): Promise<void> => new Promise((resume) => {
          const go = (): void => {
            socket.off('drain', go);
            socket.off('close', go);
            resume();
          };
          socket.on('drain', go);
          socket.on('close', go);
        });
        socket.once('connect', () => {
          void (async () => {
            for (const piece of instream(message)) {
              if (x.settled || reply.length > 0 || socket.destroyed) return;
              if (!socket.write(piece)) await drained();
            }
          })();
        });
        socket.on('data', (data: Buffer) => {
          reply = Buffer.concat([reply, data]);
          const end = reply.indexOf(0);
          if (end >= 0) {
            try {
              finish(parseClamdReply(reply.subarray(0, end).toString('utf8'), where));
            } catch (err) {
              finish(err as MailError);
            }
          } else if (reply.length > MAX_REPLY) {
            fail(`reply longer than ${MAX_REPLY} bytes without a terminator`);
          }
        });
        // clamd closes right after its reply. A close with a reply but no NUL is still read (a
        // clamd without the z prefix support would answer with a newline); none at all is a failure.
        socket.once('end', () => {
          if (reply.length === 0) {
            fail('connection closed without a reply');
            return;
          }
          try {
            finish(parseClamdReply(reply.toString('utf8'), where));
          } catch (err) {
            finish(err as MailError);
          }
        });
        socket.on('error', (err: Error) => {
          // Over its stream limit clamd replies and closes while we may still be writing: the write
          // fails (EPIPE/ECONNRESET) possibly before the reply is read. Any reply read wins.
          const end = reply.indexOf(0);
          if (end >= 0 || reply.length > 0) {
            try {
              finish(parseClamdReply(reply.subarray(0, end >= 0 ? end : reply.length).toString('utf8'), where));
            } catch (parsed) {
              finish(parsed as MailError);
            }
            return;
          }
          const code = (err as NodeJS.ErrnoException).code;
          fail(code === 'EPIPE' || code === 'ECONNRESET'
            ? `connection closed by clamd while the message was being sent (${code}; over StreamMaxLength?)`
            : err.message, err);
        });
      });
    },
  };
}
