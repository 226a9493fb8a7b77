// The IMAP load generator of bench:imap, in its own process, over raw sockets (no client library).
// One argument, a JSON object; `mode` says what to do, `port` where (127.0.0.1), and it prints JSON:
//
//   load     `sessions` sessions over users firstUser..firstUser+users-1 (in turn), `concurrency` at a time;
//            each one: LOGIN, SELECT INBOX, FETCH 1:* (UID FLAGS ENVELOPE), UID FETCH of `bodies` random
//            messages (BODY.PEEK[], one command), UID SEARCH UNSEEN, UID SEARCH FROM "<one sender>", IDLE
//            (DONE after `idleMs`), LOGOUT. Every command is one op. Prints ops/s, sessions/s, MB/s of
//            body data, latency p50/p99 per command, errors (and the first few), the client's own CPU.
//   latency  `repeats` times a new connection to `user`: LOGIN, then SELECT INBOX and FETCH 1:* (FLAGS),
//            each timed (command sent to tagged OK), LOGOUT. The first round is "cold", the rest "warm".
//   idle     opens `sessions` connections (users as in load, `concurrency` logins at a time): LOGIN,
//            SELECT INBOX, IDLE. When every one is idling (or failed) it prints one JSON line and waits
//            for a line on stdin; then DONE and LOGOUT on each, and a second JSON line.
//
// Every answer is checked, so that a server that answers wrongly cannot look fast: tagged OK; literals
// read by their byte count; FETCH 1:* must return one ENVELOPE per message of EXISTS with distinct UIDs;
// each body must be the requested UID and its length must equal the CRLF length its own X-Bench-Check
// header states; SEARCH UNSEEN and SEARCH FROM must find exactly the messages the generator made so
// (bench/imap.ts: message i is unseen when i % unseenEvery == 0 and comes from senders[i % senders.length]).
import { connect } from 'node:net';

const args = JSON.parse(process.argv[2] ?? '{}');
const { mode, port } = args;
const TIMEOUT_MS = args.timeoutMs ?? 120_000;

class ImapError extends Error {}

/** One IMAP connection: reads whole responses (lines and their literals), runs one command at a time. */
class Connection {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.tagCount = 0;
    /** The command waiting for its tagged answer: { tag, untagged: [], onUntagged, onContinue, resolve, reject }. */
    this.pending = null;
    this.greeting = null;
    this.closed = null;
    this.bytesIn = 0;
    this.reads = 0;
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new ImapError(`socket: ${err.message}`)));
    socket.on('close', () => this.fail(new ImapError('connection closed by the server')));
  }

  static open(port) {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      const c = new Connection(socket);
      c.pending = {
        tag: null, untagged: [],
        resolve: () => resolve(c),
        reject,
        onGreeting: (r) => {
          const text = r.lines[0];
          if (!text.startsWith('* OK')) { reject(new ImapError(`greeting: ${text}`)); socket.destroy(); return; }
          c.greeting = text;
          c.pending = null;
          resolve(c);
        },
      };
      c.timer(TIMEOUT_MS, 'greeting');
    });
  }

  timer(ms, what) {
    clearTimeout(this.timeout);
    this.timeout = setTimeout(() => this.fail(new ImapError(`timeout (${ms} ms) waiting for ${what}`)), ms);
  }

  fail(err) {
    clearTimeout(this.timeout);
    if (this.closed === null) this.closed = err;
    const p = this.pending;
    this.pending = null;
    if (p !== null) p.reject(err);
    this.socket.destroy();
  }

  onData(chunk) {
    this.bytesIn += chunk.length;
    this.reads++;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let pos = 0;
    for (;;) {
      const r = this.parse(pos);
      if (r === null) break;
      pos = r.end;
      this.dispatch(r);
      if (this.closed !== null) return;
    }
    this.buffer = pos === 0 ? this.buffer : this.buffer.subarray(pos);
  }

  /** One complete response from `pos`: { lines: [text...], literals: [Buffer...], end }, or null. */
  parse(pos) {
    const buf = this.buffer;
    const lines = [];
    const literals = [];
    let p = pos;
    for (;;) {
      const nl = buf.indexOf('\r\n', p);
      if (nl < 0) return null;
      const line = buf.toString('latin1', p, nl);
      lines.push(line);
      if (line.charCodeAt(line.length - 1) !== 125 /* } */) return { lines, literals, end: nl + 2 };
      const m = /\{(\d+)\+?\}$/.exec(line);
      if (m === null) return { lines, literals, end: nl + 2 };
      const n = Number(m[1]);
      if (buf.length < nl + 2 + n) return null;
      literals.push(buf.subarray(nl + 2, nl + 2 + n));
      p = nl + 2 + n;
    }
  }

  dispatch(r) {
    const p = this.pending;
    const first = r.lines[0];
    if (p === null) {
      if (first.startsWith('* BYE') || first.startsWith('* ')) return; // unsolicited (e.g. BYE after LOGOUT)
      this.fail(new ImapError(`unexpected: ${first.slice(0, 200)}`));
      return;
    }
    if (p.onGreeting) return p.onGreeting(r);
    if (first.startsWith('* ')) {
      if (!p.onUntagged) p.untagged.push(r);
      else {
        try {
          p.onUntagged(r);
        } catch (err) {
          this.fail(err);
        }
      }
      return;
    }
    if (first.startsWith('+')) {
      if (p.onContinue) p.onContinue(r); else this.fail(new ImapError(`unexpected continuation to ${p.name}: ${first}`));
      return;
    }
    if (first.startsWith(`${p.tag} `)) {
      clearTimeout(this.timeout);
      this.pending = null;
      const status = first.slice(p.tag.length + 1, p.tag.length + 4);
      if (status !== 'OK ' && first !== `${p.tag} OK`) p.reject(new ImapError(`${p.name}: ${first.slice(0, 300)}`));
      else p.resolve({ tagged: first, untagged: p.untagged });
      return;
    }
    this.fail(new ImapError(`unexpected line during ${p.name}: ${first.slice(0, 200)}`));
  }

  /** Sends `tag text`; resolves with { tagged, untagged } on a tagged OK, rejects on NO/BAD/close/timeout. */
  command(text, options = {}) {
    if (this.closed !== null) return Promise.reject(this.closed);
    const tag = `a${++this.tagCount}`;
    const name = text.split(' ', 2).join(' ').slice(0, 40);
    return new Promise((resolve, reject) => {
      this.pending = { tag, name, untagged: [], resolve, reject, onUntagged: options.onUntagged, onContinue: options.onContinue };
      this.timer(options.timeoutMs ?? TIMEOUT_MS, name);
      this.socket.write(`${tag} ${text}\r\n`);
    });
  }

  /** IDLE; `whenIdling` runs at the continuation and must eventually call done() (which sends DONE). */
  idle(whenIdling, timeoutMs) {
    let continued = false;
    const p = this.command('IDLE', {
      timeoutMs,
      onContinue: () => {
        if (continued) return this.fail(new ImapError('IDLE: a second continuation'));
        continued = true;
        clearTimeout(this.timeout);
        whenIdling(() => {
          this.timer(TIMEOUT_MS, 'IDLE DONE');
          this.socket.write('DONE\r\n');
        });
      },
    });
    return p.then((r) => {
      if (!continued) throw new ImapError(`IDLE: tagged answer without continuation: ${r.tagged}`);
      return r;
    });
  }

  close() {
    clearTimeout(this.timeout);
    this.socket.destroy();
  }
}

/** Deterministic PRNG (mulberry32), so both servers get the same choices. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const timed = async (times, fn) => {
  const t0 = performance.now();
  const r = await fn();
  times.push(performance.now() - t0);
  return r;
};

function existsOf(untagged) {
  let exists = null;
  for (const r of untagged) {
    const m = /^\* (\d+) EXISTS/i.exec(r.lines[0]);
    if (m) exists = Number(m[1]);
  }
  if (exists === null) throw new ImapError('SELECT: no EXISTS');
  return exists;
}

function searchCount(untagged, what) {
  const lines = untagged.filter((r) => /^\* SEARCH\b/i.test(r.lines[0]));
  if (lines.length !== 1) throw new ImapError(`${what}: ${lines.length} SEARCH responses`);
  const ids = lines[0].lines[0].slice(8).trim().split(' ').filter(Boolean);
  if (ids.some((id) => !/^\d+$/.test(id))) throw new ImapError(`${what}: not a list of numbers: ${lines[0].lines[0].slice(0, 200)}`);
  return new Set(ids).size;
}

/** Expected number of messages i in [0, n) with i % every == j. */
const countOf = (n, every, j) => (j >= n ? 0 : Math.floor((n - 1 - j) / every) + 1);

const CHECK = Buffer.from('\nX-Bench-Check: ');

/** The UID and the checked BODY[] literal of one FETCH response. */
function bodyOf(r) {
  const m = /\bUID (\d+)/i.exec(r.lines.join(' '));
  if (m === null) throw new ImapError(`UID FETCH: no UID in ${r.lines[0].slice(0, 200)}`);
  let body = null;
  for (let i = 0; i < r.literals.length; i++) if (/BODY\[\] \{\d+\+?\}$/i.test(r.lines[i])) body = r.literals[i];
  if (body === null) throw new ImapError(`UID FETCH: no BODY[] literal in ${r.lines[0].slice(0, 200)}`);
  const at = body.indexOf(CHECK);
  const stated = at < 0 ? NaN : Number(body.toString('latin1', at + CHECK.length, at + CHECK.length + 7));
  if (stated !== body.length) throw new ImapError(`UID ${m[1]}: BODY[] is ${body.length} bytes, its X-Bench-Check says ${at < 0 ? 'nothing' : stated}`);
  return { uid: Number(m[1]), bytes: body.length };
}

async function loadSession(user, sessionNo, stats) {
  const c = await Connection.open(port);
  try {
    const t = stats.times;
    await timed(t.login, () => c.command(`LOGIN user${user} pw${user}`));
    stats.ops++;
    const selected = await timed(t.select, () => c.command('SELECT INBOX'));
    stats.ops++;
    const exists = existsOf(selected.untagged);
    // FETCH 1:* (UID FLAGS ENVELOPE): count and collect as they come (a 10,000-message answer is large).
    const uids = [];
    const seen = new Set();
    await timed(t.fetchEnvelope, () => c.command('FETCH 1:* (UID FLAGS ENVELOPE)', {
      onUntagged: (r) => {
        const line = r.lines[0];
        const m = /^\* (\d+) FETCH \(/i.exec(line);
        if (m === null) return;
        const whole = r.lines.length === 1 ? line : r.lines.join(' ');
        if (!/ENVELOPE \(/i.test(whole) || !/FLAGS \(/i.test(whole)) return;
        const u = /\bUID (\d+)/i.exec(whole);
        if (u === null) throw new ImapError(`FETCH 1:*: no UID in ${line.slice(0, 200)}`);
        const seq = Number(m[1]);
        if (seen.has(seq)) throw new ImapError(`FETCH 1:*: sequence ${seq} twice`);
        seen.add(seq);
        uids[seq - 1] = Number(u[1]);
      },
    }));
    stats.ops++;
    if (seen.size !== exists) throw new ImapError(`FETCH 1:* (UID FLAGS ENVELOPE): ${seen.size} answers for ${exists} messages`);
    if (new Set(uids).size !== exists) throw new ImapError('FETCH 1:*: UIDs not distinct');
    // UID FETCH of `bodies` distinct random messages, one command.
    const rnd = random(sessionNo * 7919 + user);
    const picked = new Set();
    const want = Math.min(args.bodies, exists);
    while (picked.size < want) picked.add(uids[Math.floor(rnd() * exists)]);
    const fetched = await timed(t.fetchBodies, () => c.command(`UID FETCH ${[...picked].join(',')} (BODY.PEEK[])`));
    stats.ops++;
    const got = new Set();
    for (const r of fetched.untagged) {
      if (!/^\* \d+ FETCH /i.test(r.lines[0])) continue;
      if (r.literals.length === 0) continue; // e.g. an unsolicited FLAGS update
      const b = bodyOf(r);
      if (!picked.has(b.uid)) throw new ImapError(`UID FETCH: UID ${b.uid} was not asked for`);
      got.add(b.uid);
      stats.bodyBytes += b.bytes;
    }
    if (got.size !== picked.size) throw new ImapError(`UID FETCH: ${got.size} bodies for ${picked.size} UIDs asked`);
    // SEARCH, checked against the generator's rules.
    const unseen = await timed(t.searchUnseen, () => c.command('UID SEARCH UNSEEN'));
    stats.ops++;
    const nUnseen = searchCount(unseen.untagged, 'UID SEARCH UNSEEN');
    if (nUnseen !== countOf(exists, args.unseenEvery, 0)) throw new ImapError(`UID SEARCH UNSEEN: ${nUnseen} found, ${countOf(exists, args.unseenEvery, 0)} expected`);
    const j = Math.floor(rnd() * args.senders.length);
    const from = await timed(t.searchFrom, () => c.command(`UID SEARCH FROM "${args.senders[j]}"`));
    stats.ops++;
    const nFrom = searchCount(from.untagged, 'UID SEARCH FROM');
    if (nFrom !== countOf(exists, args.senders.length, j)) throw new ImapError(`UID SEARCH FROM "${args.senders[j]}": ${nFrom} found, ${countOf(exists, args.senders.length, j)} expected`);
    // IDLE, DONE after a moment.
    await timed(t.idle, () => c.idle((done) => setTimeout(done, args.idleMs)));
    stats.ops++;
    const bye = await timed(t.logout, () => c.command('LOGOUT'));
    stats.ops++;
    if (!bye.untagged.some((r) => /^\* BYE/i.test(r.lines[0]))) throw new ImapError('LOGOUT: no BYE');
    stats.sessions++;
  } finally {
    stats.reads += c.reads;
    stats.bytesIn += c.bytesIn;
    c.close();
  }
}

const round = (x, d = 2) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);
function pct(list, p) {
  if (list.length === 0) return null;
  const s = [...list].sort((a, b) => a - b);
  return round(s[Math.min(s.length - 1, Math.floor(p * s.length))]);
}
const clientCpuMs = () => {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 1000);
};

async function pool(n, concurrency, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function load() {
  const stats = { ops: 0, sessions: 0, bodyBytes: 0, reads: 0, bytesIn: 0, times: { login: [], select: [], fetchEnvelope: [], fetchBodies: [], searchUnseen: [], searchFrom: [], idle: [], logout: [] } };
  const errors = [];
  const started = performance.now();
  await pool(args.sessions, args.concurrency, async (i) => {
    const user = args.firstUser + (i % args.users);
    try {
      await loadSession(user, i, stats);
    } catch (err) {
      errors.push(`user${user}: ${err.message}`);
    }
  });
  const seconds = (performance.now() - started) / 1000;
  const t = stats.times;
  const lat = Object.fromEntries(Object.entries(t).flatMap(([k, v]) => [[`${k}P50ms`, pct(v, 0.5)], [`${k}P99ms`, pct(v, 0.99)]]));
  return {
    sessions: args.sessions, concurrency: args.concurrency, seconds: round(seconds, 3),
    ops: stats.ops, opsPerS: round(stats.ops / seconds, 1), sessionsPerS: round(stats.sessions / seconds, 1),
    bodyMbPerS: round(stats.bodyBytes / 1e6 / seconds, 2), ...lat,
    // How the answers arrived: socket reads per session and bytes per read (many small reads: many small writes).
    readsPerSession: round(stats.reads / Math.max(1, args.sessions), 0), bytesPerRead: round(stats.bytesIn / Math.max(1, stats.reads), 0),
    errors: errors.length, firstErrors: errors.slice(0, 5), clientCpuMs: clientCpuMs(),
  };
}

async function latency() {
  const select = [];
  const fetchFlags = [];
  const errors = [];
  let exists = null;
  for (let i = 0; i < args.repeats; i++) {
    let c = null;
    try {
      c = await Connection.open(port);
      await c.command(`LOGIN user${args.user} pw${args.user}`);
      const s = await timed(select, () => c.command('SELECT INBOX'));
      exists = existsOf(s.untagged);
      let n = 0;
      await timed(fetchFlags, () => c.command('FETCH 1:* (FLAGS)', {
        onUntagged: (r) => { if (/^\* \d+ FETCH \(.*FLAGS \(/i.test(r.lines[0])) n++; },
      }));
      if (n !== exists) throw new ImapError(`FETCH 1:* (FLAGS): ${n} answers for ${exists} messages`);
      await c.command('LOGOUT');
    } catch (err) {
      errors.push(err.message);
    } finally {
      c?.close();
    }
  }
  const warmSelect = select.slice(1);
  const warmFetch = fetchFlags.slice(1);
  return {
    user: args.user, exists, repeats: args.repeats,
    selectColdMs: round(select[0]), fetchFlagsColdMs: round(fetchFlags[0]),
    selectWarmP50ms: pct(warmSelect, 0.5), selectWarmP99ms: pct(warmSelect, 0.99),
    fetchFlagsWarmP50ms: pct(warmFetch, 0.5), fetchFlagsWarmP99ms: pct(warmFetch, 0.99),
    errors: errors.length, firstErrors: errors.slice(0, 5), clientCpuMs: clientCpuMs(),
  };
}

async function idle() {
  const open = [];
  const errors = [];
  const started = performance.now();
  await pool(args.sessions, args.concurrency, async (i) => {
    const user = args.firstUser + (i % args.users);
    let c = null;
    try {
      c = await Connection.open(port);
      await c.command(`LOGIN user${user} pw${user}`);
      await c.command('SELECT INBOX');
      let release;
      const idling = new Promise((resolve) => {
        c.idleDone = c.idle((done) => { release = done; resolve(); }, TIMEOUT_MS);
        c.idleDone.catch((err) => resolve(err));
      });
      const r = await idling;
      if (r instanceof Error) throw r;
      c.release = release;
      // No timeout while parked: the server may send untagged updates, nothing else.
      clearTimeout(c.timeout);
      open.push(c);
    } catch (err) {
      errors.push(`user${user}: ${err.message}`);
      c?.close();
    }
  });
  const openSeconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ idling: open.length, errors: errors.length, firstErrors: errors.slice(0, 5), openSeconds: round(openSeconds, 2), clientCpuMs: clientCpuMs() })}\n`);
  await new Promise((resolve) => process.stdin.once('data', resolve));
  // Still there? Then DONE and LOGOUT each.
  let ended = 0;
  const late = [];
  await pool(open.length, args.concurrency, async (i) => {
    const c = open[i];
    try {
      if (c.closed !== null) throw c.closed;
      c.release();
      await c.idleDone;
      await c.command('LOGOUT');
      ended++;
    } catch (err) {
      late.push(err.message);
    } finally {
      c.close();
    }
  });
  process.stdout.write(`${JSON.stringify({ endedCleanly: ended, lostWhileIdle: late.length, firstLost: late.slice(0, 5) })}\n`);
  process.stdin.destroy();
}

const run = { load, latency, idle }[mode];
if (run === undefined) {
  process.stderr.write(`imap-client: unknown mode ${mode}\n`);
  process.exit(2);
}
const result = await run();
if (mode !== 'idle') process.stdout.write(`${JSON.stringify(result)}\n`);
