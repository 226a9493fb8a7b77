// What ldapmta changes in smtp-server's connections (the version is pinned in package.json), in
// one place. Each change is applied to a connection as the server registers it, before its init();
// each is checked against the library's code once, so an upgrade that moves the internals fails
// at start-up instead of silently changing replies.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPServer } from 'smtp-server';

/** An RFC 3463 status at the start of a reply text: "5.2.1 mailbox disabled". */
const OWN_STATUS = /^[245]\.\d{1,3}\.\d{1,3} /;

type Send = (code: number, data: unknown, context?: unknown) => void;

interface ConnectionInternals {
  send: Send;
  close(): void;
  remoteAddress: string;
  secure: boolean;
  _isSupported(command: string): boolean;
  init: () => void;
  name: string;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  _setListeners(callback: () => void): void;
  connectionReady(): void;
}

export interface ShimOptions {
  /** Pause before the 220 greeting (smtp-server always waits 100 ms; Postfix's smtpd waits none). */
  readonly greetingDelayMs: number;
  /** Offer AUTH only inside TLS (smtp-server lists it in EHLO before STARTTLS too). */
  readonly authOnlyOverTls?: boolean;
  /** Refuse a client that talks before the greeting (554 5.5.1, closed); told to this callback. */
  readonly onEarlyTalker?: (remoteAddress: string) => void;
}

function checkInternals(): void {
  const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
  const init = String(proto.init);
  const ok = typeof proto._setListeners === 'function' && typeof proto.connectionReady === 'function'
    && typeof proto.send === 'function' && typeof proto._isSupported === 'function' && /setTimeout\(\(\) => this\.connectionReady\(\), 100\)/.test(init) && /maxClients/.test(init);
  if (!ok) throw new Error('smtp-server internals changed (SMTPConnection.init); src/listen/shim.ts must be updated');
}

/**
 * 1. Replies whose text starts with their own RFC 3463 status keep it: smtp-server would otherwise
 *    guess one from the basic code alone (550 is always 5.1.1 there).
 * 2. The greeting waits `greetingDelayMs` instead of a fixed 100 ms, which capped a client that
 *    opens one connection per message at 10 messages per second per session.
 * 3. The 421 smtp-server sends to sessions still open when it closes gets 4.3.2 (system not
 *    accepting messages) and says to try again. With `onEarlyTalker`, a client that sends a
 *    command before the greeting gets 554 5.5.1 and is closed instead of smtp-server's 421.
 * 4. With `authOnlyOverTls`, AUTH is neither listed in EHLO nor taken before STARTTLS, so no client is
 *    invited to send a password in clear text (RFC 4954 §4); it answers as an unknown command.
 */
export function shimConnections(server: SMTPServer, options: ShimOptions): void {
  checkInternals();
  const connections = (server as unknown as { connections: Set<ConnectionInternals> }).connections;
  if (!(connections instanceof Set)) throw new Error('smtp-server internals changed (connections); src/listen/shim.ts must be updated');
  const add = connections.add.bind(connections);
  connections.add = (connection) => {
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) => {
      // smtp-server's own farewell when it closes at shutdown, given a status and a hint to retry.
      if (code === 421 && data === 'Server shutting down') return send(421, `4.3.2 ${connection.name} shutting down, try again later`, false);
      // A command before the greeting (smtp-server answers 421 and goes on): postscreen's pregreet test.
      if (code === 421 && typeof data === 'string' && data.endsWith(' You talk too soon') && options.onEarlyTalker !== undefined) {
        options.onEarlyTalker(connection.remoteAddress);
        send(554, `5.5.1 ${connection.name} protocol error: you talked before the greeting`, false);
        connection.close();
        return;
      }
      return send(code, data, typeof data === 'string' && OWN_STATUS.test(data) ? false : context);
    };
    connection.init = () => init(connection, options.greetingDelayMs);
    if (options.authOnlyOverTls === true) {
      const isSupported = connection._isSupported.bind(connection);
      connection._isSupported = (command) => (command === 'AUTH' && !connection.secure ? false : isSupported(command));
    }
    return add(connection);
  };
}

/** smtp-server's SMTPConnection.init() with the delay made configurable. */
function init(connection: ConnectionInternals, delayMs: number): void {
  connection._setListeners(() => {
    const { maxClients } = connection._server.options;
    if (maxClients && connection._server.connections.size > maxClients) {
      connection.send(421, `4.3.2 ${connection.name} all server ports are busy, try again later`, false);
      return;
    }
    if (delayMs <= 0) {
      connection.connectionReady();
      return;
    }
    setTimeout(() => connection.connectionReady(), delayMs).unref();
  });
}
