// Owns: the client side of SpamAssassin's spamd (the SPAMC/SPAMD protocol), one connection per message.
// Must never: return a score it did not read from spamd; a refused connection, a timeout, a non-zero
// status or a reply it cannot read is a temporary 4.7.1.
//
// The protocol (spamd/PROTOCOL in the SpamAssassin sources), as spoken by spamd 4.0:
//   request:  "SYMBOLS SPAMC/1.5\r\n" "Content-length: <bytes>\r\n" ["User: <name>\r\n"] "\r\n" <message>
//   reply:    "SPAMD/1.1 0 EX_OK\r\n" ["Content-length: <n>\r\n"] "Spam: True ; 20.0 / 5.0\r\n" "\r\n"
//             <body: the rule names, comma-separated, no spaces, possibly empty>
// spamd closes the connection after the reply. A status other than 0 (EX_OK) is a failure, e.g.
// "SPAMD/1.0 76 Bad header line: ..." (EX_PROTOCOL). SYMBOLS is CHECK plus the rule list.
import net from 'node:net';
import { exchange } from './exchange.ts';
import { temporary, type MailError } from '../../mail.ts';
import type { SpamContext, SpamResult, SpamScanner } from './types.ts';

export interface SpamdOptions {
  readonly host: string;
  readonly port: number;
  /** The whole exchange (connect, send, reply) must finish within this. */
  readonly timeoutMs: number;
  /** Sent as spamd's "User:" header: whose preferences spamd applies (when it runs as root or with virtual configs). */
  readonly user?: string;
}

/** Far more than any SYMBOLS reply; more means the peer is not spamd. */
const MAX_REPLY = 256 * 1024;
const UNAVAILABLE = 'spam scanner unavailable, try again later';

/** Parses a complete spamd reply to SYMBOLS (or CHECK); throws a temporary MailError when it is not a good one. */
export function parseSpamdReply(reply: Buffer, where: string): SpamResult {
  const bad = (what: string): MailError => temporary('4.7.1', UNAVAILABLE, new Error(`spamd ${where}: ${what}`));
  const headEnd = reply.indexOf('\r\n\r\n');
  const head = (headEnd >= 0 ? reply.subarray(0, headEnd) : reply).toString('latin1');
  const lines = head.split('\r\n');
  const status = /^SPAMD\/(\d+\.\d+) +(\d+) *(.*)$/.exec(lines[0] ?? '');
  if (status === null) throw bad(`malformed status line ${JSON.stringify((lines[0] ?? '').slice(0, 200))}`);
  if (status[2] !== '0') throw bad(`error ${status[2]} ${status[3] ?? ''}`.trim());
  if (headEnd < 0) throw bad('reply ends inside its header');

  let spam: RegExpExecArray | null = null;
  let contentLength: number | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw bad(`malformed header line ${JSON.stringify(line.slice(0, 200))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'spam') {
      // "True ; 7.3 / 5.0" (spamd also accepts Yes/No from older peers)
      spam = /^(True|False|Yes|No) *; *(-?\d+(?:\.\d+)?) *\/ *(-?\d+(?:\.\d+)?)$/i.exec(value);
      if (spam === null) throw bad(`malformed Spam header ${JSON.stringify(value.slice(0, 200))}`);
    } else if (name === 'content-length') {
      if (!/^\d+$/.test(value)) throw bad(`malformed Content-length ${JSON.stringify(value)}`);
      contentLength = Number(value);
    }
  }
  if (spam === null) throw bad('reply has no Spam header');
  const body = reply.subarray(headEnd + 4);
  if (contentLength !== null && body.length < contentLength) throw bad(`reply body cut short (${body.length} of ${contentLength} bytes)`);
  const symbols = (contentLength === null ? body : body.subarray(0, contentLength)).toString('utf8').trim();
  return {
    score: Number(spam[2]),
    required: Number(spam[3]),
    rules: symbols === '' ? [] : symbols.split(',').map((rule) => rule.trim()).filter((rule) => rule !== ''),
  };
}

export function createSpamd(options: SpamdOptions): SpamScanner {
  if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65535) throw new Error('spamd: bad port');
  if (!(options.timeoutMs > 0)) throw new Error('spamd: timeoutMs must be positive');
  if (options.user !== undefined && /[\r\n]/.test(options.user)) throw new Error('spamd: the user name must not contain a line break');
  const where = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;

  return {
    name: 'spamd',
    score(message: Buffer, _context: SpamContext): Promise<SpamResult> {
      const socket = net.connect({ host: options.host, port: options.port });
      return exchange<SpamResult>(socket, { timeoutMs: options.timeoutMs, label: `spamd ${where}`, unavailable: UNAVAILABLE }, ({ finish, fail }) => {
        const chunks: Buffer[] = [];
        let received = 0;

        socket.once('connect', () => {
          let head = `SYMBOLS SPAMC/1.5\r\nContent-length: ${message.length}\r\n`;
          if (options.user !== undefined && options.user !== '') head += `User: ${options.user}\r\n`;
          socket.write(`${head}\r\n`, 'latin1');
          // The half-close tells spamd there is nothing more; Content-length already says where the message ends.
          socket.end(message);
        });
        socket.on('data', (data: Buffer) => {
          chunks.push(data);
          received += data.length;
          if (received > MAX_REPLY) fail(`reply longer than ${MAX_REPLY} bytes`);
        });
        socket.once('end', () => {
          if (received === 0) {
            fail('connection closed without a reply');
            return;
          }
          try {
            finish(parseSpamdReply(Buffer.concat(chunks), where));
          } catch (err) {
            finish(err as MailError);
          }
        });
      });
    },
  };
}
