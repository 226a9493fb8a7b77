// The POP3 load generator of bench:pop3, in its own process: SESSIONS sessions (user1..), CONCURRENCY
// at once, each USER/PASS, UIDL, RETR of every message, QUIT (or, in "login" mode, USER/PASS/QUIT),
// over raw sockets. Arguments: port sessions concurrency firstUser [full|login]. Prints one JSON line:
// sessions/s, MB/s of RETR data, login latency (PASS sent to +OK) p50/p99, errors.
import { connect } from 'node:net';

const [port, sessions, concurrency, firstUser] = process.argv.slice(2, 6).map(Number);
/** "full": UIDL and RETR of every message; "login": USER, PASS and QUIT only. */
const mode = process.argv[6] ?? 'full';

function session(user) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.setNoDelay(true);
    let buffer = Buffer.alloc(0);
    let step = 'greeting';
    let count = 0;
    let retrieved = 0;
    let bytes = 0;
    let passAt = 0;
    let loginMs = 0;
    const done = (error) => {
      socket.destroy();
      resolve({ error, bytes, loginMs });
    };
    const send = (line) => socket.write(`${line}\r\n`);
    const line = () => {
      const nl = buffer.indexOf('\r\n');
      if (nl < 0) return null;
      const text = buffer.subarray(0, nl).toString('latin1');
      buffer = buffer.subarray(nl + 2);
      return text;
    };
    socket.on('error', (err) => done(err.message));
    socket.on('data', (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      for (;;) {
        if (step === 'uidl' || step === 'retr') {
          // A multi-line answer: wait for its end, "\r\n.\r\n".
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          const body = buffer.subarray(0, end + 2);
          buffer = buffer.subarray(end + 5);
          if (!body.toString('latin1', 0, 3).startsWith('+OK')) return done(`${step}: ${body.toString('latin1', 0, 80)}`);
          if (step === 'uidl') {
            count = body.toString('latin1').split('\r\n').length - 2;
          } else {
            bytes += body.length - body.indexOf('\r\n') - 2;
            retrieved++;
          }
          if (retrieved < count) {
            step = 'retr';
            send(`RETR ${retrieved + 1}`);
          } else {
            step = 'quit';
            send('QUIT');
          }
          continue;
        }
        const text = line();
        if (text === null) return;
        if (!text.startsWith('+OK')) return done(`${step}: ${text}`);
        if (step === 'greeting') { step = 'user'; send(`USER user${user}`); }
        else if (step === 'user') { step = 'pass'; passAt = performance.now(); send(`PASS pw${user}`); }
        else if (step === 'pass') { loginMs = performance.now() - passAt; if (mode === 'login') { step = 'quit'; send('QUIT'); } else { step = 'uidl'; send('UIDL'); } }
        else if (step === 'quit') return done(null);
      }
    });
  });
}

const started = performance.now();
let next = 0;
const results = [];
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < sessions) {
    const user = firstUser + next++;
    results.push(await session(user));
  }
}));
const seconds = (performance.now() - started) / 1000;
const logins = results.filter((r) => r.error === null).map((r) => r.loginMs).sort((a, b) => a - b);
const pct = (p) => (logins.length === 0 ? null : Math.round(logins[Math.min(logins.length - 1, Math.floor(p * logins.length))] * 100) / 100);
const errors = results.filter((r) => r.error !== null);
process.stdout.write(`${JSON.stringify({
  sessions, concurrency, seconds: Math.round(seconds * 1000) / 1000, sessionsPerS: Math.round(sessions / seconds * 10) / 10,
  mbPerS: Math.round(results.reduce((n, r) => n + r.bytes, 0) / 1e6 / seconds * 10) / 10,
  loginP50ms: pct(0.5), loginP99ms: pct(0.99), errors: errors.length, firstError: errors[0]?.error ?? null,
  clientCpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
})}\n`);
