// Owns: the client side of rspamd's HTTP scanning protocol (POST /checkv2), one request per message.
// Must never: return a score it did not read from rspamd; a refused connection, a timeout, a status
// other than 200 or a body it cannot read is a temporary 4.7.1.
//
// The protocol (rspamd's "protocol" documentation), as spoken by rspamd 3.4:
//   POST /checkv2 with the message as the body and the envelope in request headers:
//     IP (the client's address), Helo, From (the envelope sender; "<>" for the null sender),
//     Rcpt (the envelope recipients), User (the authenticated login), Queue-Id,
//     Password (only for the controller worker, which answers 401 without it).
//   200 with JSON: { score, required_score, action, symbols: { NAME: { name, score, ... } }, ... }
//   An unknown path answers 500 {"error": "invalid command"}.
// fetch() folds repeated headers into one ("Rcpt: <a@x>, <b@y>"); rspamd reads such a header as an
// address list, so every recipient arrives (checked against rspamd 3.4 by the integration test).
import { temporary, type MailError } from '../../mail.ts';
import type { SpamContext, SpamResult, SpamScanner } from './types.ts';

export interface RspamdOptions {
  /** The normal worker's base URL (http://127.0.0.1:11333), or the controller's with `password`. */
  readonly url: string;
  /** The whole request (connect, send, reply) must finish within this. */
  readonly timeoutMs: number;
  /** Sent as the Password header: the controller worker's password. */
  readonly password?: string;
}

const UNAVAILABLE = 'spam scanner unavailable, try again later';

/** Reads the /checkv2 JSON; throws a temporary MailError when it is not a scan result. */
export function parseRspamdReply(body: unknown, where: string): SpamResult {
  const bad = (what: string): MailError => temporary('4.7.1', UNAVAILABLE, new Error(`rspamd ${where}: ${what}`));
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('reply is not a JSON object');
  const reply = body as Record<string, unknown>;
  if (typeof reply.error === 'string') throw bad(`error: ${reply.error}`);
  if (typeof reply.score !== 'number' || !Number.isFinite(reply.score)) throw bad('reply has no numeric score');
  const required = typeof reply.required_score === 'number' && Number.isFinite(reply.required_score) ? reply.required_score : null;
  const symbols = reply.symbols;
  if (symbols !== undefined && (typeof symbols !== 'object' || symbols === null || Array.isArray(symbols))) throw bad('symbols is not an object');
  return { score: reply.score, required, rules: symbols === undefined ? [] : Object.keys(symbols) };
}

/** Angle brackets keep an address whole when fetch joins the Rcpt headers with commas. */
const bracket = (address: string): string => `<${address}>`;
const headerSafe = (value: string): string => value.replace(/[\r\n]/g, ' ');

export function createRspamd(options: RspamdOptions): SpamScanner {
  if (!(options.timeoutMs > 0)) throw new Error('rspamd: timeoutMs must be positive');
  const endpoint = new URL('checkv2', options.url.endsWith('/') ? options.url : `${options.url}/`);
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw new Error(`rspamd: ${options.url} is not an http(s) URL`);
  const where = endpoint.origin;

  return {
    name: 'rspamd',
    async score(message: Buffer, context: SpamContext): Promise<SpamResult> {
      const headers = new Headers();
      if (context.clientIp !== '') headers.set('IP', headerSafe(context.clientIp));
      if (context.helo !== '') headers.set('Helo', headerSafe(context.helo));
      headers.set('From', context.sender === null || context.sender === '' ? '<>' : bracket(headerSafe(context.sender)));
      for (const recipient of context.recipients) headers.append('Rcpt', bracket(headerSafe(recipient)));
      if (context.user !== null && context.user !== '') headers.set('User', headerSafe(context.user));
      if (context.queueId !== undefined && context.queueId !== '') headers.set('Queue-Id', headerSafe(context.queueId));
      if (options.password !== undefined) headers.set('Password', headerSafe(options.password));
      headers.set('Content-Type', 'message/rfc822');

      let response: Response;
      let text: string;
      try {
        // One signal covers the headers and the body: a server that stalls mid-body is a timeout too.
        const signal = AbortSignal.timeout(options.timeoutMs);
        response = await fetch(endpoint, { method: 'POST', body: message, headers, signal, redirect: 'error' });
        text = await response.text();
      } catch (err) {
        const what = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
          ? `no answer within ${options.timeoutMs} ms`
          : describe(err);
        throw temporary('4.7.1', UNAVAILABLE, new Error(`rspamd ${where}: ${what}`, { cause: err }));
      }
      if (response.status !== 200) {
        throw temporary('4.7.1', UNAVAILABLE, new Error(`rspamd ${where}: HTTP ${response.status} ${text.slice(0, 200)}`.trim()));
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw temporary('4.7.1', UNAVAILABLE, new Error(`rspamd ${where}: reply is not JSON: ${JSON.stringify(text.slice(0, 200))}`, { cause: err }));
      }
      return parseRspamdReply(body, where);
    },
  };
}

/** fetch's "fetch failed" hides the reason (ECONNREFUSED…) in its cause. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) return `${err.message}: ${(cause as Error & { code?: string }).code ?? cause.message}`;
  return err.message;
}
