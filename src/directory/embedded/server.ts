// The embedded read-only LDAP server (ldapjs on loopback, serving the LDIF-loaded store): bind, search, refused
// writes, per-socket identities, close. Never writes, never returns userPassword to anyone but the rootDN, never logs a password.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  DN,
  installSearchRequestPatch,
  invalidBases,
  LDAP_REQ_BIND,
  LDAP_REQ_UNBIND,
  ldapjs,
  ldapjsLogger,
  VerbatimDn,
  type Handler,
  type LdapjsRequest,
  type LdapjsResponse,
} from './ldapjs.ts';
import { describeFilter, inScope, keyOf, matches, rdnKeysOf, SCOPE_BASE, SCOPE_NAMES, selectAttributes, USER_PASSWORD, type StoredEntry } from './match.ts';
import { indexCandidates, loadDirectory, matchedDn } from './store.ts';

export interface EmbeddedDirectory {
  /** ldap://host:port, ready for the ldapts client. */
  url: string;
  port: number;
  /** Stop listening and destroy every open connection. Idempotent. */
  close(): Promise<void>;
}

export interface EmbeddedDirectoryOptions {
  ldifPath: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  rootDN: string;
  rootPassword: string;
  /** Checks a bind password against one stored userPassword value; without it user binds fail. */
  verifyPassword?: (stored: string, password: string) => Promise<boolean>;
  log: Logger;
}

// LDAP result codes (RFC 4511 §4.1.9).
const SUCCESS = 0;
const OPERATIONS_ERROR = 1;
const SIZE_LIMIT_EXCEEDED = 4;
const AUTH_METHOD_NOT_SUPPORTED = 7;
const NO_SUCH_OBJECT = 32;
const INVALID_DN_SYNTAX = 34;
const INVALID_CREDENTIALS = 49;
const UNWILLING_TO_PERFORM = 53;
const OTHER = 80;

function dnText(dn: unknown): string {
  return typeof dn === 'string' ? dn : String(dn ?? '');
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

type Identity = { kind: 'anonymous' } | { kind: 'root' } | { kind: 'user'; key: string };
const ANONYMOUS: Identity = { kind: 'anonymous' };

/** Load the LDIF file and serve it read-only over LDAP; resolves once listening. */
export async function startEmbeddedDirectory(options: EmbeddedDirectoryOptions): Promise<EmbeddedDirectory> {
  const log = options.log.child({ component: 'embedded-directory' });
  const host = options.host ?? '127.0.0.1';

  const directory = await loadDirectory(options.ldifPath);

  let rootKey: string;
  try {
    rootKey = keyOf(rdnKeysOf(DN.fromString(options.rootDN)));
  } catch (err) {
    throw new Error(`embedded directory: invalid rootDN "${options.rootDN}": ${(err as Error).message}`, { cause: err });
  }
  if (options.rootPassword === '') log.warn('embedded directory has an empty root password; binding as the rootDN is impossible');
  const rootDigest = sha256(options.rootPassword);

  installSearchRequestPatch();
  const server = ldapjs.createServer({ log: ldapjsLogger(log) });
  const netServer = server.server;
  const sockets = new Set<Socket>();
  const identities = new WeakMap<Socket, Identity>();
  /** Bumped on every bind so a slow verification cannot overwrite the outcome of a later bind. */
  const bindGenerations = new WeakMap<Socket, number>();

  server.on('error', (err) => log.warn({ err: err.message }, 'embedded directory protocol error'));
  server.on('clientError', (err) => log.debug({ err: err.message }, 'embedded directory client error'));

  netServer.on('connection', (socket: Socket) => {
    // Without this every search costs ~40 ms: ldapjs writes each entry and the result separately,
    // and Nagle holds the second write until the client's delayed ACK.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Runs before ldapjs dispatches: every bind (including the anonymous ones ldapjs answers
    // itself) and every unbind first drops the connection to anonymous (RFC 4511 §4.2.1).
    const parser = (socket as Socket & { parser?: { prependListener(event: 'message', fn: (req: LdapjsRequest) => void): void } }).parser;
    if (parser === undefined) {
      log.error('ldapjs connection has no parser; closing it');
      socket.destroy();
      return;
    }
    parser.prependListener('message', (req) => {
      if (req.protocolOp === LDAP_REQ_BIND || req.protocolOp === LDAP_REQ_UNBIND) {
        identities.set(socket, ANONYMOUS);
        bindGenerations.set(socket, (bindGenerations.get(socket) ?? 0) + 1);
      }
    });
  });

  server.bind('', (req, res, next) => {
    const socket = req.connection;
    const generation = bindGenerations.get(socket) ?? 0;
    const name = dnText(req.dn);
    const finish = (status: number, identity: Identity | null, message = ''): void => {
      if (identity !== null && bindGenerations.get(socket) === generation) identities.set(socket, identity);
      log.debug({ dn: name, result: status }, 'bind');
      res.errorMessage = message;
      res.end(status);
      next();
    };
    try {
      if (req.authentication !== undefined && req.authentication !== 'simple') {
        finish(AUTH_METHOD_NOT_SUPPORTED, null, 'only simple bind is supported');
        return;
      }
      const password = req.credentials;
      if (password === '') {
        // ldapjs answers the truly anonymous bind (empty DN, empty password) itself.
        finish(INVALID_CREDENTIALS, null, 'unauthenticated bind (a DN with an empty password) is refused');
        return;
      }
      if (name.trim() === '') {
        finish(INVALID_CREDENTIALS, null, 'a password without a DN');
        return;
      }
      const key = keyOf(rdnKeysOf(DN.fromString(name)));
      if (key === rootKey) {
        const ok = options.rootPassword !== '' && timingSafeEqual(sha256(password), rootDigest);
        finish(ok ? SUCCESS : INVALID_CREDENTIALS, ok ? { kind: 'root' } : null);
        return;
      }
      const stored = directory.byKey.get(key)?.attributes.get(USER_PASSWORD)?.values ?? [];
      const verify = options.verifyPassword;
      if (stored.length === 0 || verify === undefined) {
        finish(INVALID_CREDENTIALS, null);
        return;
      }
      void (async () => {
        let ok = false;
        for (const value of stored) {
          try {
            if (await verify(value, password)) {
              ok = true;
              break;
            }
          } catch (err) {
            log.warn({ dn: name, err: (err as Error).message }, 'verifyPassword failed; treating as a mismatch');
          }
        }
        finish(ok ? SUCCESS : INVALID_CREDENTIALS, ok ? { kind: 'user', key } : null);
      })();
    } catch (err) {
      log.error({ dn: name, err: (err as Error).message }, 'bind failed');
      finish(OTHER, null, 'internal error');
    }
  });

  server.search('', (req, res, next) => {
    const started = process.hrtime.bigint();
    let status = SUCCESS;
    let sent = 0;
    let indexed = false;
    try {
      const isRoot = identities.get(req.connection)?.kind === 'root';
      const scope = req.scope;
      if (invalidBases.has(req.baseObject)) {
        status = INVALID_DN_SYNTAX;
        res.errorMessage = 'invalid base DN';
      } else {
        const baseKeys = rdnKeysOf(req.baseObject);
        const baseKey = keyOf(baseKeys);
        let candidates: StoredEntry[] | null;
        if (baseKeys.length === 0) {
          candidates = scope === SCOPE_BASE ? [directory.rootDse] : null;
        } else {
          const base = directory.byKey.get(baseKey);
          if (base === undefined) {
            status = NO_SUCH_OBJECT;
            res.errorMessage = 'no such object';
            res.matchedDN = matchedDn(directory, baseKeys);
            candidates = [];
          } else if (scope === SCOPE_BASE) {
            candidates = [base];
          } else {
            candidates = indexCandidates(directory, req.filter);
            indexed = candidates !== null;
          }
        }
        if (status === SUCCESS) {
          const limit = req.sizeLimit > 0 ? req.sizeLimit : Infinity;
          for (const entry of candidates ?? directory.entries) {
            if (!inScope(entry, baseKeys, baseKey, scope) || !matches(req.filter, entry, isRoot)) continue;
            if (sent >= limit) {
              status = SIZE_LIMIT_EXCEEDED;
              break;
            }
            res.send(res.createSearchEntry({
              objectName: new VerbatimDn(entry.dn),
              attributes: selectAttributes(entry, req.attributes, isRoot, req.typesOnly),
            }));
            sent++;
          }
        }
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'search failed');
      status = OPERATIONS_ERROR;
      res.errorMessage = 'internal error';
    }
    if (log.isLevelEnabled('debug')) {
      log.debug({
        base: String(req.baseObject),
        scope: SCOPE_NAMES[req.scope] ?? String(req.scope),
        filter: describeFilter(req.filter),
        attributes: req.attributes,
        sizeLimit: req.sizeLimit,
        indexed,
        entries: sent,
        result: status,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      }, 'search');
    }
    res.end(status);
    next();
  });

  const refuse = (operation: string, message = `the embedded directory is read-only (${operation} refused)`): Handler<LdapjsRequest, LdapjsResponse> => (_req, res, next) => {
    log.debug({ operation }, 'refused operation on the embedded directory');
    res.errorMessage = message;
    res.end(UNWILLING_TO_PERFORM);
    next();
  };
  server.add('', refuse('add'));
  server.modify('', refuse('modify'));
  server.del('', refuse('delete'));
  server.modifyDN('', refuse('modrdn'));
  server.compare('', refuse('compare', 'compare is not supported by the embedded directory'));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    netServer.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      netServer.off('error', onError);
      resolve();
    });
  });
  const port = (netServer.address() as AddressInfo).port;
  const url = `ldap://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, file: options.ldifPath, entries: directory.entries.length, suffixes: directory.rootDse.attributes.get('namingcontexts')?.values }, 'embedded directory listening');

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        netServer.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
