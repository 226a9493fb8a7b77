// Owns: a tiny authoritative DNS server for tests (UDP on 127.0.0.1, random port) answering MX, A
// and AAAA from in-memory tables, with NXDOMAIN, NODATA and SERVFAIL on demand. RFC 1035 wire
// format written by hand. Must never: listen beyond loopback, recurse, or crash on a bad packet.
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface DnsRecords {
  mx?: Record<string, { preference: number; exchange: string }[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /** Names answered with SERVFAIL (rcode 2). */
  servfail?: string[];
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
const TYPE = { A: 1, MX: 15, AAAA: 28 } as const;
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
  servfail: Set<string>;
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
    servfail: new Set((records.servfail ?? []).map(normalize)),
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

function answer(q: Question, zone: Zone): Buffer {
  const opcode = (q.flags >> 11) & 0xf;
  let rcode: number = RCODE.NOERROR;
  let rdatas: Buffer[] = [];
  const inZone = zone.mx.has(q.name) || zone.a.has(q.name) || zone.aaaa.has(q.name);
  if (opcode !== 0) rcode = RCODE.NOTIMP;
  else if (zone.servfail.has(q.name)) rcode = RCODE.SERVFAIL;
  else if (!inZone) rcode = RCODE.NXDOMAIN;
  else if (q.qclass === CLASS_IN || q.qclass === 255) {
    const table = q.type === TYPE.MX ? zone.mx : q.type === TYPE.A ? zone.a : q.type === TYPE.AAAA ? zone.aaaa : null;
    rdatas = table?.get(q.name) ?? [];
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
    let reply: Buffer;
    try {
      const q = parseQuery(msg);
      seen.push({ name: q.name, type: TYPE_NAMES[q.type] ?? `TYPE${q.type}` });
      reply = answer(q, zone);
    } catch {
      return; // malformed: dropped, like a real server would
    }
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
