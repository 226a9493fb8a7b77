// ldapjs 3 as this server uses it: the exact module copies ldapjs loads, local types for its shapes, the quiet
// logger it is given and the SearchRequest parser replacement. Never serves, stores or matches anything itself.
import { createRequire } from 'node:module';
import type { Server as NetServer, Socket } from 'node:net';
import type { Logger } from 'pino';

// ldapjs 3 internals, reached through the exact module instances ldapjs itself loads. @types/ldapjs
// describes ldapjs 2, so the few shapes used here are declared locally.

interface LdapRdn {
  keys(): IterableIterator<string>;
  getValue(name: string): unknown;
  toString(): string;
}
export interface LdapDn {
  readonly length: number;
  rdnAt(index: number): LdapRdn | undefined;
  toString(): string;
}
interface DnConstructor {
  new (options?: { rdns?: LdapRdn[] }): LdapDn;
  fromString(text: string): LdapDn;
}
interface BerReaderLike {
  readonly offset: number;
  readonly length: number;
  readSequence(tag?: number): number;
  readString(tag?: number): string;
  readEnumeration(): number;
  readInt(): number;
  readBoolean(): boolean;
  peek(): number;
  readRawBuffer(tag: number): Buffer;
}
/** @ldapjs/filter node as parsed from BER. */
export interface FilterNode {
  readonly type: string;
  readonly attribute?: string;
  value?: unknown;
  readonly clauses?: FilterNode[];
  readonly initial?: string;
  readonly any?: string[];
  readonly final?: string;
}
export interface LdapjsRequest {
  readonly connection: Socket;
  readonly protocolOp: number;
}
interface BindRequest extends LdapjsRequest {
  readonly dn: unknown;
  readonly credentials: string;
  readonly authentication?: string;
}
interface SearchRequest extends LdapjsRequest {
  readonly baseObject: LdapDn;
  readonly scope: number;
  readonly sizeLimit: number;
  readonly typesOnly: boolean;
  readonly attributes: string[];
  readonly filter: FilterNode;
}
export interface LdapjsResponse {
  errorMessage: string;
  matchedDN: string;
  end(status?: number): void;
}
interface SearchResponse extends LdapjsResponse {
  createSearchEntry(entry: { objectName: unknown; attributes: { type: string; values: string[] }[] }): unknown;
  send(entry: unknown): void;
}
type Next = (err?: unknown) => void;
export type Handler<Req, Res> = (req: Req, res: Res, next: Next) => void;
interface LdapjsServer {
  readonly server: NetServer;
  on(event: 'error' | 'clientError', listener: (err: Error) => void): void;
  listen(port: number, host: string, callback: () => void): void;
  bind(mount: string, handler: Handler<BindRequest, LdapjsResponse>): void;
  search(mount: string, handler: Handler<SearchRequest, SearchResponse>): void;
  add(mount: string, handler: Handler<LdapjsRequest, LdapjsResponse>): void;
  modify(mount: string, handler: Handler<LdapjsRequest, LdapjsResponse>): void;
  del(mount: string, handler: Handler<LdapjsRequest, LdapjsResponse>): void;
  modifyDN(mount: string, handler: Handler<LdapjsRequest, LdapjsResponse>): void;
  compare(mount: string, handler: Handler<LdapjsRequest, LdapjsResponse>): void;
}
interface LdapjsModule {
  createServer(options: { log: object }): LdapjsServer;
}
interface SearchRequestClass {
  parseToPojo(ber: BerReaderLike): Record<string, unknown>;
  [PATCHED]?: true;
}

const requireHere = createRequire(import.meta.url);
const requireFromLdapjs = createRequire(requireHere.resolve('ldapjs'));
const requireFromMessages = createRequire(requireFromLdapjs.resolve('@ldapjs/messages'));
export const ldapjs = requireFromLdapjs('ldapjs') as LdapjsModule;
export const { DN } = requireFromLdapjs('@ldapjs/dn') as { DN: DnConstructor };
const messages = requireFromLdapjs('@ldapjs/messages') as { SearchRequest: SearchRequestClass };
const { parseBer } = requireFromMessages('@ldapjs/filter') as { parseBer(ber: BerReaderLike): FilterNode };
const { BerReader } = requireFromMessages('@ldapjs/asn1') as { BerReader: new (buffer: Buffer) => BerReaderLike };

const PATCHED = Symbol.for('ldapmta.embedded.searchRequestPatched');

export const LDAP_REQ_BIND = 0x60;
export const LDAP_REQ_UNBIND = 0x42;
const LDAP_REQ_SEARCH = 0x63;

/** Base DNs that failed to parse; the search answers invalidDNSyntax instead of ldapjs dropping the connection. */
export const invalidBases = new WeakSet<object>();

/**
 * ldapjs 3 turns every parsed search filter back into a string and re-parses it
 * (SearchRequest.parseToPojo → filter.toString() → filter.parseString()). That round trip is lossy
 * and unsafe: a value holding a backslash followed by non-hex characters comes back with a raw `*`
 * (so `(mail=a\5cz\2a)` turns into a wildcard search), 4-byte UTF-8 is mangled, attribute names
 * with options or numeric OIDs are rejected, and an unparsable base DN drops the connection.
 * This replacement keeps the filter tree parsed from BER. It is installed once, process-wide; the
 * only user of @ldapjs/messages in this process is this server (the client is ldapts).
 */
export function installSearchRequestPatch(): void {
  const SearchRequestClass = messages.SearchRequest;
  if (SearchRequestClass[PATCHED]) return;
  if (typeof SearchRequestClass.parseToPojo !== 'function') {
    throw new Error('embedded directory: unexpected @ldapjs/messages version (SearchRequest.parseToPojo missing)');
  }
  SearchRequestClass.parseToPojo = function parseToPojo(ber: BerReaderLike): Record<string, unknown> {
    const protocolOp = ber.readSequence();
    if (protocolOp !== LDAP_REQ_SEARCH) {
      throw Error(`found wrong protocol operation: 0x${protocolOp.toString(16).padStart(2, '0')}`);
    }
    const baseText = ber.readString();
    const scope = ber.readEnumeration();
    const derefAliases = ber.readEnumeration();
    const sizeLimit = ber.readInt();
    const timeLimit = ber.readInt();
    const typesOnly = ber.readBoolean();
    const filterBuffer = ber.readRawBuffer(ber.peek());
    const filter = parseBer(new BerReader(filterBuffer));
    makeFilterPrintable(filter);
    const attributes: string[] = [];
    ber.readSequence();
    const end = ber.offset + ber.length;
    while (ber.offset < end) {
      const attribute = ber.readString();
      // The same rule ldapjs's attributes setter enforces (it throws on anything else); unknown
      // names are simply not returned, as RFC 4511 §4.5.1.8 asks.
      if (/^(?:\*|\+|1\.1|@[a-zA-Z][\w.-]*|[a-zA-Z][\w.;-]*)$/.test(attribute)) attributes.push(attribute);
    }
    let baseObject: LdapDn;
    try {
      baseObject = DN.fromString(baseText);
    } catch {
      baseObject = new DN();
      invalidBases.add(baseObject);
    }
    return { protocolOp, baseObject, scope, derefAliases, sizeLimit, timeLimit, typesOnly, filter, attributes };
  };
  SearchRequestClass[PATCHED] = true;
}

/**
 * Equality filters keep their value as raw bytes; ldapjs's toString() (run eagerly for its debug
 * log of every request) throws on a truncated UTF-8 sequence. Re-encode as valid UTF-8.
 */
function makeFilterPrintable(filter: FilterNode): void {
  if (filter.type === 'EqualityFilter') filter.value = String(filter.value);
  for (const clause of filter.clauses ?? []) makeFilterPrintable(clause);
}

/** A DN the SearchResultEntry accepts that serialises to the LDIF spelling (ldapjs would hex-escape all non-ASCII). */
export class VerbatimDn {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  get [Symbol.toStringTag](): string {
    return 'LdapDn';
  }
  toString(): string {
    return this.#text;
  }
}

/** The logger ldapjs is given: trace/debug/info dropped (ldapjs logs whole requests, bind passwords included), warnings and errors forwarded without their data arguments. */
export function ldapjsLogger(log: Logger): object {
  const format = (args: unknown[]): string => {
    // ldapjs calls log.warn(fmt, ...args) or log.warn(err, fmt, ...args).
    const start = typeof args[0] === 'string' ? 0 : 1;
    const fmt = typeof args[start] === 'string' ? (args[start] as string) : '';
    const params = args.slice(start + 1);
    let i = 0;
    return fmt.replace(/%[sdj%]/g, (spec) => {
      if (spec === '%%') return '%';
      const arg = params[i++];
      if (spec === '%j') return '[data]';
      if (typeof arg === 'string' || typeof arg === 'number') return String(arg);
      if (arg instanceof Error) return arg.message;
      return '[data]';
    });
  };
  const drop = (): void => {};
  const logger = {
    trace: drop,
    debug: drop,
    info: drop,
    warn: (...args: unknown[]): void => log.warn({ source: 'ldapjs' }, format(args)),
    error: (...args: unknown[]): void => log.error({ source: 'ldapjs' }, format(args)),
    fatal: (...args: unknown[]): void => log.error({ source: 'ldapjs' }, format(args)),
    child: (): object => logger,
  };
  return logger;
}
