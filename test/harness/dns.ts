// Owns: a tiny authoritative DNS server for tests (UDP on 127.0.0.1, random port) answering MX, A,
// AAAA, TXT and PTR from in-memory tables, with NXDOMAIN, NODATA, SERVFAIL and silence (a dropped
// query, for timeouts) on demand. RFC 1035 wire format written by hand.
// Must never: listen beyond loopback, recurse, or crash on a bad packet.
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface DnsRecords {
  mx?: Record<string, { preference: number; exchange: string }[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /**
   * TXT records: each entry of the array is one record. A string is split into 255-byte
   * character-strings (never inside a UTF-8 sequence), as DNS publishers do for long SPF and DKIM
   * records; an array gives the record's character-strings explicitly (each at most 255 bytes).
   * Node's resolveTxt returns one string[] per record, the chunks in order. Strings go out as
   * UTF-8 bytes; node reads TXT bytes as latin1, so keep test records ASCII.
   */
  txt?: Record<string, (string | readonly string[])[]>;
  /** PTR records, keyed by the reverse name ("4.3.2.1.in-addr.arpa"; see reverseName()). */
  ptr?: Record<string, string[]>;
  /**
   * Names answered with SERVFAIL (rcode 2). "*.zone" matches every name below zone (not zone
   * itself), e.g. every DNSBL query of a zone. A "/TYPE" suffix limits an entry to questions of
   * that type: "_dmarc.example.test/TXT", "*.bl.test/TXT".
   */
  servfail?: string[];
  /**
   * Names whose queries are received (and listed by queries()) but never answered, so the client
   * times out. "*.zone" and "/TYPE" as for servfail.
   */
  drop?: string[];
}

export interface TestDns {
  readonly port: number;
  /** "127.0.0.1:<port>", the form node's dns Resolver.setServers accepts. */
  readonly server: string;
  /** Replace the records served from now on. */
  set(records: DnsRecords): void;
  /** Every question received so far, e.g. { name: 'example.com', type: 'MX' } (lower case, no trailing dot). */
  queries(): { name: string; type: string }[];
  close(): Promise<void>;
}

const TTL = 60;
const CLASS_IN = 1;
const TYPE = { A: 1, PTR: 12, MX: 15, TXT: 16, AAAA: 28 } as const;
const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  41: 'OPT', 52: 'TLSA', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY', 257: 'CAA',
};
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const;

/** Lower case, without the trailing dot; the root is ''. */
const normalize = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** The tables with normalized names, checked once so a bad record fails the test that set it. */
interface Zone {
  mx: Map<string, Buffer[]>;
  a: Map<string, Buffer[]>;
  aaaa: Map<string, Buffer[]>;
  txt: Map<string, Buffer[]>;
  ptr: Map<string, Buffer[]>;
  servfail: NameSet;
  drop: NameSet;
}

/**
 * Exact names plus "*.suffix" patterns matching every name strictly below the suffix; either may
 * end in "/TYPE" ("/TXT", "/A" …) to match only questions of that type.
 */
interface NameSet {
  exact: Set<string>;
  below: string[];
}

function nameSet(names: readonly string[] | undefined, what: string): NameSet {
  const set: NameSet = { exact: new Set(), below: [] };
  for (const entry of names ?? []) {
    // A "/" followed by a dotted name is part of the name (RFC 2317 "0/25.2.0.192.in-addr.arpa").
    const typed = /\/([A-Za-z0-9]+)$/.exec(entry);
    const slash = typed === null ? -1 : typed.index;
    const type = typed === null ? '' : typed[1]!.toUpperCase();
    if (slash >= 0 && !Object.values(TYPE_NAMES).includes(type)) throw new Error(`dns harness: unknown type in ${what} entry ${JSON.stringify(entry)}`);
    const n = normalize(slash < 0 ? entry : entry.slice(0, slash));
    const key = (name: string) => (type === '' ? name : `${name}/${type}`);
    if (n.startsWith('*.')) set.below.push(key(n.slice(2)));
    else set.exact.add(key(n));
  }
  return set;
}

/** Whether a question (name, type) is in the set, with or without a type. */
function matches(set: NameSet, name: string, type: string): boolean {
  if (set.exact.has(name) || set.exact.has(`${name}/${type}`)) return true;
  return set.below.some((pattern) => {
    const slash = pattern.indexOf('/');
    const suffix = slash < 0 ? pattern : pattern.slice(0, slash);
    return name.endsWith(`.${suffix}`) && (slash < 0 || pattern.slice(slash + 1) === type);
  });
}

/**
 * The name PTR records of `ip` live under: "4.3.2.1.in-addr.arpa" for 1.2.3.4, the 32 reversed
 * nibbles under "ip6.arpa" for IPv6 (RFC 3596 §2.5). IPv4-mapped IPv6 addresses ("::ffff:1.2.3.4")
 * are taken as the IPv4 address, as a server sees such a client. Throws on anything else.
 */
export function reverseName(ip: string): string {
  const bare = ip.replace(/%.*$/, ''); // an IPv6 zone index ("fe80::1%eth0") is not part of the name
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  const text = mapped ? mapped[1]! : bare;
  if (isIPv4(text)) return `${text.split('.').reverse().join('.')}.in-addr.arpa`;
  if (isIPv6(text)) {
    const nibbles = ipv6Bytes(text).toString('hex').split('');
    return `${nibbles.reverse().join('.')}.ip6.arpa`;
  }
  throw new Error(`dns harness: not an IP address: ${JSON.stringify(ip)}`);
}

/** One TXT record's rdata: length-prefixed character-strings. */
function txtRdata(value: string | readonly string[], name: string): Buffer {
  const chunks: Buffer[] = [];
  if (typeof value === 'string') {
    // Split at 255 bytes, backing off to the start of a UTF-8 sequence; "" is one empty string.
    const bytes = Buffer.from(value, 'utf8');
    let start = 0;
    do {
      let end = Math.min(start + 255, bytes.length);
      while (end < bytes.length && end > start && (bytes[end]! & 0xc0) === 0x80) end--;
      chunks.push(bytes.subarray(start, end));
      start = end;
    } while (start < bytes.length);
  } else {
    if (value.length === 0) throw new Error(`dns harness: a TXT record of ${name} needs at least one string`);
    for (const part of value) {
      const bytes = Buffer.from(part, 'utf8');
      if (bytes.length > 255) throw new Error(`dns harness: TXT string longer than 255 bytes for ${name}`);
      chunks.push(bytes);
    }
  }
  return Buffer.concat(chunks.flatMap((c) => [Buffer.from([c.length]), c]));
}

function encodeName(name: string): Buffer {
  const labels = normalize(name) === '' ? [] : name.replace(/\.$/, '').split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`dns harness: bad label in ${JSON.stringify(name)}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) throw new Error(`dns harness: name longer than 255 octets: ${name}`);
  return wire;
}

function ipv6Bytes(text: string): Buffer {
  let groups: string[];
  let tail: number[] = [];
  let head = text;
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(head);
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    head = head.slice(0, v4.index + 1) + '0:0'; // placeholder groups, overwritten below
  }
  const [left, right] = head.split('::') as [string, string | undefined];
  const split = (s: string): string[] => (s === '' ? [] : s.split(':'));
  if (right === undefined) groups = split(left);
  else {
    const l = split(left);
    const r = split(right);
    groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  tail.forEach((b, i) => (out[12 + i] = b));
  return out;
}

function compile(records: DnsRecords): Zone {
  const table = <T>(entries: Record<string, T[]> | undefined, rdata: (value: T, name: string) => Buffer): Map<string, Buffer[]> =>
    new Map(Object.entries(entries ?? {}).map(([name, values]) => [normalize(name), values.map((v) => rdata(v, name))]));
  return {
    mx: table(records.mx, ({ preference, exchange }, name) => {
      if (!Number.isInteger(preference) || preference < 0 || preference > 0xffff) throw new Error(`dns harness: bad MX preference for ${name}: ${preference}`);
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(preference);
      return Buffer.concat([pref, encodeName(exchange)]);
    }),
    a: table(records.a, (ip, name) => {
      if (!isIPv4(ip)) throw new Error(`dns harness: bad A record for ${name}: ${ip}`);
      return Buffer.from(ip.split('.').map(Number));
    }),
    aaaa: table(records.aaaa, (ip, name) => {
      if (!isIPv6(ip)) throw new Error(`dns harness: bad AAAA record for ${name}: ${ip}`);
      return ipv6Bytes(ip);
    }),
    txt: table(records.txt, txtRdata),
    ptr: table(records.ptr, (target, name) => {
      if (normalize(target) === '') throw new Error(`dns harness: empty PTR target for ${name}`);
      return encodeName(target);
    }),
    servfail: nameSet(records.servfail, 'servfail'),
    drop: nameSet(records.drop, 'drop'),
  };
}

interface Question {
  id: number;
  flags: number;
  /** The question section exactly as received (name, type, class), echoed in the answer. */
  raw: Buffer;
  name: string;
  type: number;
  qclass: number;
}

/** Reads a possibly compressed name at `offset`; returns it and the offset after it in place. */
function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  for (let jumps = 0; ; ) {
    const len = msg.readUInt8(pos);
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (++jumps > 16) throw new Error('compression loop');
      if (next < 0) next = pos + 2;
      pos = msg.readUInt16BE(pos) & 0x3fff;
      continue;
    }
    if (len > 63 || pos + 1 + len > msg.length) throw new Error('bad label');
    labels.push(msg.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** Parses a query; throws on anything malformed (the caller drops the packet). */
function parseQuery(msg: Buffer): Question {
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) throw new Error('a response, not a query');
  if (msg.readUInt16BE(4) !== 1) throw new Error('expected exactly one question');
  const { name, next } = readName(msg, 12);
  const type = msg.readUInt16BE(next);
  const qclass = msg.readUInt16BE(next + 2);
  return { id, flags, raw: msg.subarray(12, next + 4), name: normalize(name), type, qclass };
}

/** The reply to a question, or null to stay silent (a dropped query). */
function answer(q: Question, zone: Zone): Buffer | null {
  const opcode = (q.flags >> 11) & 0xf;
  let rcode: number = RCODE.NOERROR;
  let rdatas: Buffer[] = [];
  const tables = new Map<number, Map<string, Buffer[]>>([
    [TYPE.MX, zone.mx], [TYPE.A, zone.a], [TYPE.AAAA, zone.aaaa], [TYPE.TXT, zone.txt], [TYPE.PTR, zone.ptr],
  ]);
  const inZone = [...tables.values()].some((table) => table.has(q.name));
  const typeName = TYPE_NAMES[q.type] ?? `TYPE${q.type}`;
  if (opcode === 0 && matches(zone.drop, q.name, typeName)) return null;
  if (opcode !== 0) rcode = RCODE.NOTIMP;
  else if (matches(zone.servfail, q.name, typeName)) rcode = RCODE.SERVFAIL;
  else if (!inZone) rcode = RCODE.NXDOMAIN;
  else if (q.qclass === CLASS_IN || q.qclass === 255) {
    rdatas = tables.get(q.type)?.get(q.name) ?? [];
  }
  const records = rdatas.map((rdata) => {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the owner name is the question's, by pointer
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(TTL, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  // Never truncated (there is no TCP listener): c-ares, node's resolver, takes UDP answers
  // beyond 512 bytes, so large record sets still work.
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR, the query's opcode, AA, the query's RD; TC and RA clear; rcode.
  header.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | (q.flags & 0x0100) | rcode, 2);
  header.writeUInt16BE(1, 4); // the question, echoed
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, q.raw, ...records]);
}

export async function startDns(records: DnsRecords = {}): Promise<TestDns> {
  let zone = compile(records);
  const seen: { name: string; type: string }[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('error', () => undefined); // a send to a vanished client must not kill the test process
  socket.on('message', (msg, peer) => {
    let reply: Buffer | null;
    try {
      const q = parseQuery(msg);
      seen.push({ name: q.name, type: TYPE_NAMES[q.type] ?? `TYPE${q.type}` });
      reply = answer(q, zone);
    } catch {
      return; // malformed: dropped, like a real server would
    }
    if (reply === null) return;
    socket.send(reply, peer.port, peer.address, () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  // A forgotten instance must not keep the test process alive; pending lookups keep it running.
  socket.unref();
  const port = socket.address().port;
  let closed: Promise<void> | null = null;
  return {
    port,
    server: `127.0.0.1:${port}`,
    set(next) {
      zone = compile(next);
    },
    queries: () => seen.map((q) => ({ ...q })),
    close() {
      closed ??= new Promise((resolve) => socket.close(() => resolve()));
      return closed;
    },
  };
}
