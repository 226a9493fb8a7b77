// A minimal, fast SMTP sink for bench:remote, run as its own process so it does not share the
// event loop with ldapmta: ESMTP with PIPELINING/8BITMIME/SIZE, accepts everything, keeps nothing.
// Prints "port N" when listening; on SIGUSR2 (or stdin "stats") prints one JSON line of counters.
import { createServer } from 'node:net';

let connections = 0;
let messages = 0;
let recipients = 0;

const server = createServer((socket) => {
  connections++;
  socket.setNoDelay(true);
  let buffer = '';
  let inData = false;
  let rcpts = 0;
  socket.setEncoding('latin1');
  socket.write('220 sink.bench ESMTP\r\n');
  socket.on('error', () => undefined);
  socket.on('data', (chunk) => {
    buffer += chunk;
    let out = '';
    for (;;) {
      if (inData) {
        const end = buffer.indexOf('\r\n.\r\n');
        const start = buffer.startsWith('.\r\n') ? 0 : -1;
        if (start === 0 || end >= 0) {
          buffer = buffer.slice(start === 0 ? 3 : end + 5);
          inData = false;
          messages++;
          recipients += rcpts;
          rcpts = 0;
          out += '250 2.0.0 Ok: queued\r\n';
          continue;
        }
        // Keep only what could still be the start of the terminator.
        if (buffer.length > 4) buffer = buffer.slice(-4);
        break;
      }
      const nl = buffer.indexOf('\r\n');
      if (nl < 0) break;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') out += '250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250 ENHANCEDSTATUSCODES\r\n';
      else if (verb === 'HELO') out += '250 sink.bench\r\n';
      else if (verb === 'MAIL') { rcpts = 0; out += '250 2.1.0 Ok\r\n'; }
      else if (verb === 'RCPT') { rcpts++; out += '250 2.1.5 Ok\r\n'; }
      else if (verb === 'DATA') { inData = true; out += '354 End data with <CR><LF>.<CR><LF>\r\n'; }
      else if (verb === 'RSET') { rcpts = 0; out += '250 2.0.0 Ok\r\n'; }
      else if (verb === 'NOOP') out += '250 2.0.0 Ok\r\n';
      else if (verb === 'QUIT') { out += '221 2.0.0 Bye\r\n'; socket.end(out); return; }
      else out += '502 5.5.2 Error: command not recognized\r\n';
    }
    if (out !== '') socket.write(out);
  });
});

function stats() {
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ connections, messages, recipients, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
}
process.on('SIGUSR2', stats);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { if (d.includes('stats')) stats(); });
process.stdin.on('end', () => process.exit(0));
server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${server.address().port}\n`));
