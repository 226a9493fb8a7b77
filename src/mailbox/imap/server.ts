// The IMAP listener (listen.imap with STARTTLS, listen.imaps with TLS from the first byte): accepts
// connections and runs one Session each over the command table. Owns the sockets, so close() can
// end every session.
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { HostPort } from '../../config.ts';
import type { LoginResult } from '../../directory/types.ts';
import { listenOn } from '../../listen/bind.ts';
import type { Logger } from '../../log.ts';
import type { Limits } from '../../policy/limits.ts';
import { plainIp } from '../../policy/rules.ts';
import { connectionCommands } from './commands/connection.ts';
import { folderCommands } from './commands/folders.ts';
import { messageCommands } from './commands/messages.ts';
import { FolderRegistry } from './mailstore.ts';
import { type Handler, type ImapOptions, Session } from './session.ts';

export type { ImapOptions } from './session.ts';

export interface ImapServer {
  readonly port: number;
  close(): Promise<void>;
  /** New sessions (and STARTTLS/STLS upgrades) use this certificate and key from now on. */
  reloadTls(tls: { cert: Buffer; key: Buffer }): void;
}

export interface ImapServerDeps {
  readonly authenticate: (login: string, password: string) => Promise<LoginResult>;
  readonly limits: Limits;
  readonly log: Logger;
  /** Shared by the IMAP listeners of one process, so sessions on either see each other's changes. */
  readonly registry: FolderRegistry;
}

const COMMANDS: Readonly<Record<string, Handler>> = { ...connectionCommands, ...folderCommands, ...messageCommands };

export async function startImap(where: HostPort, options: ImapOptions, deps: ImapServerDeps): Promise<ImapServer> {
  const log = deps.log.child({ component: options.implicitTls ? 'imaps' : 'imap' });
  let context: SecureContext | null = options.tls === null ? null : createSecureContext({ ...options.tls, minVersion: 'TLSv1.2' });
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  let count = 0;

  const perIp = new Map<string, number>();
  const handle = (socket: Socket) => {
    const ip = plainIp(socket.remoteAddress ?? '');
    const fromIp = perIp.get(ip) ?? 0;
    if (sockets.size >= options.maxConnections || fromIp >= options.maxConnectionsPerIp) {
      log.warn({ ip, connections: sockets.size, fromIp }, 'imap connection refused: too many connections');
      socket.on('error', () => undefined);
      socket.end('* BYE [UNAVAILABLE] too many connections, try again later\r\n');
      setTimeout(() => socket.destroy(), 2000).unref(); // a client that never closes its side must not hold close()
      return;
    }
    perIp.set(ip, fromIp + 1);
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left === 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
    const session = new Session(socket, `i${(++count).toString(36)}`, options, { ...deps, log }, context, COMMANDS);
    sessions.add(session);
    void session.run().catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'imap session failed');
      session.end();
    }).finally(() => sessions.delete(session));
  };
  const server: NetServer = options.implicitTls
    ? createTlsServer({ ...options.tls!, minVersion: 'TLSv1.2' }, handle)
    : createNetServer(handle);
  server.on('tlsClientError', () => undefined);
  const port = await listenOn(server, where);
  log.info({ host: where.host, port, tls: context !== null }, 'imap listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sessions) s.goodbye('* BYE server shutting down');
      for (const s of sockets) s.destroy();
    }),
    reloadTls(tls) {
      if (context === null) return;
      context = createSecureContext({ ...tls, minVersion: 'TLSv1.2' });
      if (options.implicitTls) (server as TlsServer).setSecureContext({ ...tls, minVersion: 'TLSv1.2' });
    },
  };
}
