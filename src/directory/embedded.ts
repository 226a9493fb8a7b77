// The embedded read-only LDAP server (ldapjs on loopback, loaded from an LDIF file) that stands in
// for a real directory when none is configured. Never writes, never returns userPassword to anyone but the rootDN, never logs a password.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Logger } from 'pino';
import { LdifError, parseLdif, type LdifEntry } from './ldif.ts';

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

// ---------------------------------------------------------------------------------------------
// ldapjs 3 internals, reached through the exact module instances ldapjs itself loads. @types/ldapjs
// describes ldapjs 2, so the few shapes used here are declared locally.

interface LdapRdn {
  keys(): IterableIterator<string>;
  getValue(name: string): unknown;
  toString(): string;
}
interface LdapDn {
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
interface FilterNode {
  readonly type: string;
  readonly attribute?: string;
  value?: unknown;
  readonly clauses?: FilterNode[];
  readonly initial?: string;
  readonly any?: string[];
  readonly final?: string;
}
interface LdapjsRequest {
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
interface LdapjsResponse {
  errorMessage: string;
  matchedDN: string;
  end(status?: number): void;
}
interface SearchResponse extends LdapjsResponse {
  createSearchEntry(entry: { objectName: unknown; attributes: { type: string; values: string[] }[] }): unknown;
  send(entry: unknown): void;
}
type Next = (err?: unknown) => void;
type Handler<Req, Res> = (req: Req, res: Res, next: Next) => void;
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
const ldapjs = requireFromLdapjs('ldapjs') as LdapjsModule;
const { DN } = requireFromLdapjs('@ldapjs/dn') as { DN: DnConstructor };
const messages = requireFromLdapjs('@ldapjs/messages') as { SearchRequest: SearchRequestClass };
const { parseBer } = requireFromMessages('@ldapjs/filter') as { parseBer(ber: BerReaderLike): FilterNode };
const { BerReader } = requireFromMessages('@ldapjs/asn1') as { BerReader: new (buffer: Buffer) => BerReaderLike };

const PATCHED = Symbol.for('ldapmta.embedded.searchRequestPatched');

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

const LDAP_REQ_BIND = 0x60;
const LDAP_REQ_UNBIND = 0x42;
const LDAP_REQ_SEARCH = 0x63;

const SCOPE_BASE = 0;
const SCOPE_ONE = 1;
const SCOPE_NAMES = ['base', 'one', 'sub'];

/** Attributes whose lower-cased values are indexed for equality lookups. */
const INDEXED = new Set(['mail', 'mailalternateaddress', 'uid']);
const USER_PASSWORD = 'userpassword';

/** Base DNs that failed to parse; the search answers invalidDNSyntax instead of ldapjs dropping the connection. */
const invalidBases = new WeakSet<object>();

/**
 * ldapjs 3 turns every parsed search filter back into a string and re-parses it
 * (SearchRequest.parseToPojo → filter.toString() → filter.parseString()). That round trip is lossy
 * and unsafe: a value holding a backslash followed by non-hex characters comes back with a raw `*`
 * (so `(mail=a\5cz\2a)` turns into a wildcard search), 4-byte UTF-8 is mangled, attribute names
 * with options or numeric OIDs are rejected, and an unparsable base DN drops the connection.
 * This replacement keeps the filter tree parsed from BER. It is installed once, process-wide; the
 * only user of @ldapjs/messages in this process is this server (the client is ldapts).
 */
function installSearchRequestPatch(): void {
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
class VerbatimDn {
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

// ---------------------------------------------------------------------------------------------
// The in-memory directory.

interface StoredAttribute {
  /** Spelling from the LDIF. */
  readonly name: string;
  readonly values: string[];
  /** normalizeValue() of each value (for userPassword: the values unchanged). */
  readonly normalized: string[];
}

interface StoredEntry {
  readonly ordinal: number;
  /** As written in the LDIF (trimmed); returned to clients verbatim. */
  readonly dn: string;
  /** Normalised RDNs, leaf first. */
  readonly rdnKeys: string[];
  readonly key: string;
  readonly parentKey: string;
  /** Keyed by lower-cased attribute name. */
  readonly attributes: Map<string, StoredAttribute>;
}

interface Directory {
  readonly entries: StoredEntry[];
  readonly byKey: Map<string, StoredEntry>;
  /** lower-cased attribute name → normalised value → entries, for INDEXED attributes. */
  readonly index: Map<string, Map<string, StoredEntry[]>>;
  readonly rootDse: StoredEntry;
}

/** caseIgnoreMatch-style: trim, collapse inner whitespace, lower-case. */
function normalizeValue(value: string): string {
  return value.trim().replace(/\s+/g, ' ').toLowerCase();
}

function normalizeAttributeValue(lowerName: string, value: string): string {
  return lowerName === USER_PASSWORD ? value : normalizeValue(value);
}

/** Normalised RDN keys, leaf first: attribute types and values case-folded, multi-valued RDNs sorted. */
function rdnKeysOf(dn: LdapDn): string[] {
  const keys: string[] = [];
  for (let i = 0; i < dn.length; i++) {
    const rdn = dn.rdnAt(i);
    if (rdn === undefined) continue;
    const pairs: [string, string][] = [];
    for (const name of rdn.keys()) {
      const value = rdn.getValue(name);
      // "#hex" values arrive as a BerReader; their RDN string form is canonical enough.
      pairs.push([name.toLowerCase(), typeof value === 'string' ? normalizeValue(value) : rdn.toString().toLowerCase()]);
    }
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    keys.push(JSON.stringify(pairs));
  }
  return keys;
}

function keyOf(rdnKeys: readonly string[]): string {
  return '[' + rdnKeys.join(',') + ']';
}

function storedAttributes(source: Map<string, string[]>): Map<string, StoredAttribute> {
  const attributes = new Map<string, StoredAttribute>();
  for (const [name, values] of source) {
    const lower = name.toLowerCase();
    const existing = attributes.get(lower);
    if (existing !== undefined) {
      existing.values.push(...values);
      existing.normalized.push(...values.map((v) => normalizeAttributeValue(lower, v)));
    } else {
      attributes.set(lower, { name, values: [...values], normalized: values.map((v) => normalizeAttributeValue(lower, v)) });
    }
  }
  return attributes;
}

function buildDirectory(parsed: LdifEntry[], source: string): Directory {
  const entries: StoredEntry[] = [];
  const byKey = new Map<string, StoredEntry>();
  const index = new Map<string, Map<string, StoredEntry[]>>([...INDEXED].map((name) => [name, new Map()]));
  const where = (entry: LdifEntry): string => (entry.line === undefined ? source : `${source}: line ${entry.line}`);

  for (const ldif of parsed) {
    let dn: LdapDn;
    try {
      dn = DN.fromString(ldif.dn);
    } catch (err) {
      throw new Error(`${where(ldif)}: invalid DN "${ldif.dn}": ${(err as Error).message}`, { cause: err });
    }
    if (dn.length === 0) throw new Error(`${where(ldif)}: an entry needs a non-empty DN`);
    const rdnKeys = rdnKeysOf(dn);
    const entry: StoredEntry = {
      ordinal: entries.length,
      dn: ldif.dn,
      rdnKeys,
      key: keyOf(rdnKeys),
      parentKey: keyOf(rdnKeys.slice(1)),
      attributes: storedAttributes(ldif.attributes),
    };
    const duplicate = byKey.get(entry.key);
    if (duplicate !== undefined) {
      throw new Error(`${where(ldif)}: duplicate entry "${ldif.dn}" (same DN as "${duplicate.dn}")`);
    }
    byKey.set(entry.key, entry);
    entries.push(entry);
    for (const [lower, values] of index) {
      for (const value of new Set(entry.attributes.get(lower)?.normalized ?? [])) {
        const list = values.get(value);
        if (list === undefined) values.set(value, [entry]);
        else list.push(entry);
      }
    }
  }

  const suffixes = entries.filter((e) => !byKey.has(e.parentKey)).map((e) => e.dn);
  const rootDse: StoredEntry = {
    ordinal: -1,
    dn: '',
    rdnKeys: [],
    key: keyOf([]),
    parentKey: '',
    attributes: storedAttributes(new Map([
      ['objectClass', ['top']],
      ['namingContexts', suffixes],
      ['supportedLDAPVersion', ['3']],
      ['vendorName', ['ldapmta embedded directory']],
    ])),
  };
  return { entries, byKey, index, rootDse };
}

function inScope(entry: StoredEntry, baseKeys: readonly string[], baseKey: string, scope: number): boolean {
  if (scope === SCOPE_BASE) return entry.key === baseKey;
  if (scope === SCOPE_ONE) return entry.rdnKeys.length === baseKeys.length + 1 && entry.parentKey === baseKey;
  const offset = entry.rdnKeys.length - baseKeys.length;
  if (offset < 0) return false;
  for (let i = baseKeys.length - 1; i >= 0; i--) {
    if (entry.rdnKeys[offset + i] !== baseKeys[i]) return false;
  }
  return true;
}

/** Entries that could match, from the index, or null when the filter needs a scan. */
function indexCandidates(directory: Directory, filter: FilterNode): StoredEntry[] | null {
  switch (filter.type) {
    case 'EqualityFilter':
    case 'ApproximateFilter': {
      const values = directory.index.get((filter.attribute ?? '').toLowerCase());
      if (values === undefined) return null;
      return values.get(normalizeValue(String(filter.value))) ?? [];
    }
    case 'OrFilter': {
      const union = new Set<StoredEntry>();
      for (const clause of filter.clauses ?? []) {
        const found = indexCandidates(directory, clause);
        if (found === null) return null;
        for (const entry of found) union.add(entry);
      }
      return [...union].sort((a, b) => a.ordinal - b.ordinal);
    }
    case 'AndFilter': {
      let best: StoredEntry[] | null = null;
      for (const clause of filter.clauses ?? []) {
        const found = indexCandidates(directory, clause);
        if (found !== null && (best === null || found.length < best.length)) best = found;
      }
      return best;
    }
    default:
      return null;
  }
}

function compareOrdered(a: string, b: string): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function matchesSubstring(value: string, filter: FilterNode): boolean {
  const piece = (s: string): string => s.replace(/\s+/g, ' ').toLowerCase();
  let position = 0;
  if (filter.initial) {
    const initial = piece(filter.initial);
    if (!value.startsWith(initial)) return false;
    position = initial.length;
  }
  for (const any of filter.any ?? []) {
    if (!any) continue;
    const found = value.indexOf(piece(any), position);
    if (found < 0) return false;
    position = found + piece(any).length;
  }
  if (filter.final) {
    const final = piece(filter.final);
    return value.length - final.length >= position && value.endsWith(final);
  }
  return true;
}

/**
 * RFC 4515 matching with every value compared case-insensitively (userPassword exactly).
 * Filters on userPassword never match unless the session is bound as the rootDN, so the
 * directory cannot be used as an oracle for password hashes. Extensible matches never match.
 */
function matches(filter: FilterNode, entry: StoredEntry, isRoot: boolean): boolean {
  switch (filter.type) {
    case 'AndFilter':
      return (filter.clauses ?? []).every((c) => matches(c, entry, isRoot));
    case 'OrFilter':
      return (filter.clauses ?? []).some((c) => matches(c, entry, isRoot));
    case 'NotFilter': {
      const inner = filter.clauses?.[0];
      return inner !== undefined && !matches(inner, entry, isRoot);
    }
    default:
      break;
  }
  const lower = (filter.attribute ?? '').toLowerCase();
  if (lower === USER_PASSWORD && !isRoot) return false;
  const attribute = entry.attributes.get(lower);
  if (attribute === undefined || attribute.values.length === 0) return false;
  switch (filter.type) {
    case 'PresenceFilter':
      return true;
    case 'EqualityFilter':
    case 'ApproximateFilter': {
      const wanted = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.includes(wanted);
    }
    case 'SubstringFilter':
      return lower !== USER_PASSWORD && attribute.normalized.some((v) => matchesSubstring(v, filter));
    case 'GreaterThanEqualsFilter': {
      const bound = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.some((v) => compareOrdered(v, bound) >= 0);
    }
    case 'LessThanEqualsFilter': {
      const bound = normalizeAttributeValue(lower, String(filter.value));
      return attribute.normalized.some((v) => compareOrdered(v, bound) <= 0);
    }
    default:
      return false; // ExtensibleFilter and anything unknown
  }
}

function selectAttributes(entry: StoredEntry, requested: readonly string[], isRoot: boolean, typesOnly: boolean): { type: string; values: string[] }[] {
  const wanted = new Set(requested.map((a) => a.toLowerCase()));
  const all = wanted.size === 0 || wanted.has('*');
  const out: { type: string; values: string[] }[] = [];
  for (const [lower, attribute] of entry.attributes) {
    if (lower === USER_PASSWORD && !isRoot) continue;
    if (!all && !wanted.has(lower)) continue;
    out.push({ type: attribute.name, values: typesOnly ? [] : attribute.values });
  }
  return out;
}

/** RFC 4515 rendering for the log, with userPassword values masked. */
function describeFilter(filter: FilterNode): string {
  const esc = (v: unknown): string =>
    String(v).replace(/[*()\\\u0000-\u001f]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
  const value = (v: unknown): string => ((filter.attribute ?? '').toLowerCase() === USER_PASSWORD ? '***' : esc(v));
  switch (filter.type) {
    case 'AndFilter': return '(&' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'OrFilter': return '(|' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'NotFilter': return '(!' + (filter.clauses ?? []).map(describeFilter).join('') + ')';
    case 'PresenceFilter': return `(${filter.attribute}=*)`;
    case 'EqualityFilter': return `(${filter.attribute}=${value(filter.value)})`;
    case 'ApproximateFilter': return `(${filter.attribute}~=${value(filter.value)})`;
    case 'GreaterThanEqualsFilter': return `(${filter.attribute}>=${value(filter.value)})`;
    case 'LessThanEqualsFilter': return `(${filter.attribute}<=${value(filter.value)})`;
    case 'SubstringFilter':
      return `(${filter.attribute}=${[filter.initial ?? '', ...(filter.any ?? []), filter.final ?? ''].map(value).join('*')})`;
    default: return `(${filter.type})`;
  }
}

function dnText(dn: unknown): string {
  return typeof dn === 'string' ? dn : String(dn ?? '');
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The logger ldapjs is given: trace/debug/info dropped (ldapjs logs whole requests, bind passwords included), warnings and errors forwarded without their data arguments. */
function ldapjsLogger(log: Logger): object {
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

// ---------------------------------------------------------------------------------------------

type Identity = { kind: 'anonymous' } | { kind: 'root' } | { kind: 'user'; key: string };
const ANONYMOUS: Identity = { kind: 'anonymous' };

/** Load the LDIF file and serve it read-only over LDAP; resolves once listening. */
export async function startEmbeddedDirectory(options: EmbeddedDirectoryOptions): Promise<EmbeddedDirectory> {
  const log = options.log.child({ component: 'embedded-directory' });
  const host = options.host ?? '127.0.0.1';

  let parsed: LdifEntry[];
  try {
    parsed = parseLdif(await readFile(options.ldifPath, 'utf8'));
  } catch (err) {
    if (err instanceof LdifError) throw new Error(`${options.ldifPath}: ${err.message}`, { cause: err });
    throw err;
  }
  const directory = buildDirectory(parsed, options.ldifPath);

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

/** The deepest existing ancestor of a missing base, for the result's matchedDN. */
function matchedDn(directory: Directory, baseKeys: readonly string[]): string {
  for (let i = 1; i < baseKeys.length; i++) {
    const found = directory.byKey.get(keyOf(baseKeys.slice(i)));
    if (found !== undefined) return found.dn;
  }
  return '';
}
