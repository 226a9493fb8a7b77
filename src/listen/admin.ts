// The admin HTTP listener (listen.admin, loopback by default): the JSON queue API `ldapmta queue`
// uses, /metrics (Prometheus text), /healthz (the process answers), /readyz (it can take mail), and
// the status page (/status, a static page; its data from /status.json and /lookup).
// A bearer token is required when admin.token is set (and start-up refuses a non-loopback address
// without one). Decides nothing about mail; it calls the queue's controls and the checks it is given.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ConfigError, type HostPort } from '../config.ts';
import type { Logger } from '../log.ts';
import { MailError } from '../mail.ts';
import type { Metrics } from '../metrics.ts';
import { isMessageId } from '../queue/id.ts';
import type { QueueControl } from '../queue/types.ts';
import { listenOn } from './bind.ts';
import { STATUS_PAGE } from './status-page.ts';
import type { Server } from './index.ts';

export interface AdminDeps {
  readonly queue: QueueControl;
  readonly token: string;
  readonly log: Logger;
  readonly metrics?: Metrics;
  /** The readiness checks; each names what failed. Absent: always ready. */
  readonly ready?: () => Promise<Readiness>;
  /** GET /status.json: the status page's data. */
  readonly status?: { snapshot(): Promise<unknown> };
  /** GET /lookup?address=…: how an address resolves (what `ldapmta lookup --json` prints). */
  readonly lookup?: (address: string) => Promise<unknown>;
  /** POST /cache/flush[?address=…]: drop one address, or every entry, from the running server's lookup cache. */
  readonly flushCache?: (address: string | null) => Promise<void>;
  /** POST /reload: read the configuration again and apply it (what SIGHUP does). */
  readonly reload?: () => Promise<{ readonly applied: readonly string[]; readonly restartNeeded: readonly string[] }>;
}

export interface Readiness {
  readonly ready: boolean;
  /** One entry per check: "ok", or what is wrong. */
  readonly checks: Readonly<Record<string, string>>;
}

type Reply = { status: number; body: unknown };

/** The admin API as a pure-ish router: method and path in, status and JSON out. */
export async function route(method: string, path: string, deps: Pick<AdminDeps, 'queue' | 'ready' | 'reload' | 'status' | 'lookup' | 'flushCache'>): Promise<Reply> {
  const { queue } = deps;
  const parts = path.split('?')[0]!.split('/').filter((p) => p !== '');
  if (parts.length === 1 && parts[0] === 'status.json' && deps.status !== undefined) {
    return method === 'GET' ? { status: 200, body: await deps.status.snapshot() } : notAllowed();
  }
  if (parts.length === 1 && parts[0] === 'lookup' && deps.lookup !== undefined) {
    if (method !== 'GET') return notAllowed();
    const address = new URLSearchParams(path.split('?')[1] ?? '').get('address') ?? '';
    if (address === '' || address.length > 512) return { status: 400, body: { error: 'give ?address=local@domain' } };
    try {
      return { status: 200, body: await deps.lookup(address) };
    } catch (err) {
      if (err instanceof MailError) {
        return { status: err.kind === 'permanent' ? 400 : 503, body: { error: `${err.status} ${err.message}` } };
      }
      return { status: 400, body: { error: (err as Error).message } };
    }
  }
  if (parts.length === 2 && parts[0] === 'cache' && parts[1] === 'flush' && deps.flushCache !== undefined) {
    if (method !== 'POST') return notAllowed();
    const address = new URLSearchParams(path.split('?')[1] ?? '').get('address') ?? '';
    if (address.length > 512) return { status: 400, body: { error: 'address too long' } };
    try {
      await deps.flushCache(address === '' ? null : address);
      return { status: 200, body: { flushed: address === '' ? 'all' : address } };
    } catch (err) {
      const permanent = err instanceof MailError && err.kind === 'permanent';
      return { status: permanent ? 400 : 503, body: { error: err instanceof MailError ? `${err.status} ${err.message}` : (err as Error).message } };
    }
  }
  if (parts.length === 1 && parts[0] === 'healthz') return method === 'GET' ? { status: 200, body: { ok: true } } : notAllowed();
  if (parts.length === 1 && parts[0] === 'readyz') {
    if (method !== 'GET') return notAllowed();
    const readiness = deps.ready === undefined ? { ready: true, checks: {} } : await deps.ready();
    return { status: readiness.ready ? 200 : 503, body: readiness };
  }
  if (parts.length === 1 && parts[0] === 'reload' && deps.reload !== undefined) {
    if (method !== 'POST') return notAllowed();
    try {
      return { status: 200, body: await deps.reload() };
    } catch (err) {
      // A configuration that does not validate (or a certificate that cannot be read) leaves the server as it was.
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      return { status: 422, body: { error: 'configuration not reloaded; the server runs on as before', problems } };
    }
  }
  if (parts[0] !== 'queue') return { status: 404, body: { error: 'no such endpoint' } };
  if (parts.length === 1) {
    if (method !== 'GET') return notAllowed();
    const messages = queue.list();
    return { status: 200, body: { messages, count: messages.length } };
  }
  if (parts.length === 2 && parts[1] === 'flush') {
    return method === 'POST' ? { status: 200, body: { flushed: queue.flush() } } : notAllowed();
  }
  const id = parts[1]!;
  if (!isMessageId(id)) return { status: 404, body: { error: `no queued message ${id}` } };
  const missing = { status: 404, body: { error: `no queued message ${id}` } };
  if (parts.length === 2) {
    if (method === 'GET') {
      const found = queue.show(id);
      return found === null ? missing : { status: 200, body: found };
    }
    if (method === 'DELETE') return (await queue.remove(id)) ? { status: 200, body: { deleted: id } } : missing;
    return notAllowed();
  }
  if (parts.length === 3 && method !== 'POST') return notAllowed();
  if (parts.length === 3 && parts[2] === 'flush') return queue.flush(id) > 0 || queue.show(id) !== null ? { status: 200, body: { flushed: id } } : missing;
  if (parts.length === 3 && parts[2] === 'bounce') return (await queue.bounce(id)) ? { status: 200, body: { bounced: id } } : missing;
  if (parts.length === 3 && parts[2] === 'hold') return (await queue.hold(id)) ? { status: 200, body: { held: id } } : missing;
  if (parts.length === 3 && parts[2] === 'release') return (await queue.release(id)) ? { status: 200, body: { released: id } } : missing;
  return { status: 404, body: { error: 'no such endpoint' } };
}

function notAllowed(): Reply {
  return { status: 405, body: { error: 'method not allowed' } };
}

function authorized(req: IncomingMessage, token: string): boolean {
  if (token === '') return true;
  const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

export async function startAdmin(where: HostPort, deps: AdminDeps): Promise<Server> {
  const log = deps.log.child({ component: 'admin' });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const send = ({ status, body }: Reply) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    req.resume(); // no endpoint reads a body
    if ((req.url ?? '').split('?')[0] === '/status' && req.method === 'GET' && deps.status !== undefined) {
      // The page holds no data (its script asks for it with the token), so it needs no token itself.
      res.writeHead(200, STATUS_PAGE.headers);
      res.end(STATUS_PAGE.html);
      return;
    }
    if (!authorized(req, deps.token)) {
      log.warn({ method: req.method, path: req.url, client: req.socket.remoteAddress }, 'admin request refused: no or wrong bearer token');
      res.setHeader('www-authenticate', 'Bearer');
      send({ status: 401, body: { error: 'a bearer token is required' } });
      return;
    }
    if (deps.metrics !== undefined && (req.url ?? '').split('?')[0] === '/metrics' && req.method === 'GET') {
      deps.metrics.render().then((text) => {
        res.writeHead(200, { 'content-type': deps.metrics!.contentType, 'cache-control': 'no-store' });
        res.end(text);
      }, (err: unknown) => {
        log.error({ err: (err as Error).message }, 'metrics could not be rendered');
        send({ status: 500, body: { error: 'metrics could not be rendered' } });
      });
      return;
    }
    route(req.method ?? 'GET', req.url ?? '/', deps).then((reply) => {
      if (req.method !== 'GET') log.info({ method: req.method, path: req.url, status: reply.status }, 'admin request');
      send(reply);
    }, (err: unknown) => {
      log.error({ err: (err as Error).message, path: req.url }, 'admin request failed');
      send({ status: 500, body: { error: 'internal error; see the server log' } });
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const port = await listenOn(server, where);
  log.info({ host: where.host, port, bearerRequired: deps.token !== '' }, 'admin listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
