// Stage 1: the SMTP listener (smtp-server): ESMTP with PIPELINING, 8BITMIME, SMTPUTF8, SIZE,
// ENHANCEDSTATUSCODES and STARTTLS when a certificate is configured; limits; the reply shim.
// Turns no decision into a reply itself: session.ts does, from the MailErrors of the stages;
// shim.ts holds what we change in smtp-server's connections.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { type Config, parseHostPort } from '../config.ts';
import type { Logger } from '../log.ts';
import { createSessionHooks, type SessionDeps } from './session.ts';
import { shimConnections } from './shim.ts';

export interface Server {
  readonly port: number;
  close(): Promise<void>;
  /** Use a new certificate and key for connections from now on (a reload after renewal). */
  reloadTls?(tls: { cert: Buffer; key: Buffer }): void;
}

/** mx: port 25, no AUTH; submission: 587 with STARTTLS and AUTH; submissions: 465, TLS from the first byte. */
export type ListenerMode = 'mx' | 'submission' | 'submissions';

export async function startSmtp(config: Config, address: string, deps: SessionDeps & { log: Logger }, mode: ListenerMode = 'mx'): Promise<Server> {
  const where = parseHostPort(address);
  if (where === null) throw new Error(`bad listen address ${address}`);
  const tls = config.smtp.tls.cert !== '' && config.smtp.tls.key !== ''
    ? { key: readFileSync(config.smtp.tls.key), cert: readFileSync(config.smtp.tls.cert), minVersion: 'TLSv1.2' as const }
    : null;
  if (mode === 'submissions' && tls === null) throw new Error('listen.submissions needs smtp.tls.cert and smtp.tls.key');
  const submission = mode !== 'mx';
  const log = deps.log.child({ component: mode === 'mx' ? 'smtp' : mode });
  const hooks = createSessionHooks(config, { ...deps, log, listener: mode === 'mx' ? 'smtp' : mode });
  const server = new SMTPServer({
    name: config.hostname,
    banner: 'ldapmta', // smtp-server says "<name> ESMTP <banner>"
    size: config.smtp.maxMessageSize,
    maxClients: config.smtp.maxConnections,
    maxRecipients: config.smtp.maxRecipients,
    maxCommandLength: config.smtp.maxCommandLength,
    socketTimeout: config.smtp.timeoutSeconds * 1000,
    closeTimeout: config.shutdown.graceSeconds * 1000,
    disabledCommands: [...(submission ? [] : ['AUTH']), ...(tls === null || mode === 'submissions' ? ['STARTTLS'] : [])],
    authOptional: true, // submission asks for AUTH itself, with 530 5.7.0 at MAIL FROM
    authMethods: ['PLAIN', 'LOGIN'],
    // AUTH before TLS is refused by smtp-server (538) unless loopback clients may (submit.ts checks the address).
    allowInsecureAuth: submission && config.submission.allowPlaintextAuthOnLoopback,
    secure: mode === 'submissions',
    hideSTARTTLS: tls === null || mode === 'submissions',
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    disableReverseLookup: true,
    logger: false,
    ...(tls ?? {}),
    ...hooks,
  });
  shimConnections(server, {
    greetingDelayMs: config.smtp.greetingDelayMs, authOnlyOverTls: submission && !config.submission.allowPlaintextAuthOnLoopback,
    ...(mode === 'mx' && config.filters.earlyTalker ? {
      onEarlyTalker: (ip: string) => {
        log.info({ ip }, 'client talked before the greeting: refused');
        deps.metrics?.rejected.inc({ listener: 'smtp', stage: 'connect', status: '5.5.1' });
      },
    } : {}),
  });
  server.on('error', (err: Error) => log.warn({ err: err.message }, 'smtp server error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  log.info({ host: where.host, port, tls: tls !== null, mode }, 'smtp listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    ...(tls === null ? {} : { reloadTls: (next: { cert: Buffer; key: Buffer }) => server.updateSecureContext(next) }),
  };
}
