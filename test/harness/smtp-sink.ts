// Owns: a fake remote MX for delivery tests (smtp-server on 127.0.0.1, random port) that keeps
// every accepted message byte-exact and refuses on demand (greeting, MAIL, RCPT, DATA).
// Must never: listen beyond loopback, relay or store anything outside memory, or outlive close().
import type net from 'node:net';
import { SMTPServer, type SMTPServerError, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

export interface SinkMessage {
  readonly sender: string;
  readonly recipients: string[];
  /** The message as received after DATA, dot-unstuffed, ending with the CRLF before ".". */
  readonly body: Buffer;
  readonly tls: boolean;
  /** The EHLO/HELO name, lower-cased by smtp-server. */
  readonly helo: string;
  /** 1-based index of the TCP connection it came on. */
  readonly connection: number;
}

/** e.g. { code: 451, message: '4.3.0 try later' }; the text is sent as is after the code. */
export interface SinkReply {
  code: number;
  message: string;
}

export type SinkStage = 'mail' | 'rcpt' | 'data';

export interface SinkOptions {
  /** PEM key/cert: when given STARTTLS is offered. */
  tls?: { key: Buffer | string; cert: Buffer | string };
  /**
   * Called at MAIL FROM (address: the sender), each RCPT TO (the recipient; `recipients` are
   * those accepted before it) and end of DATA (the sender); return a 4xx/5xx reply to refuse, or
   * null to accept. A refused DATA is not recorded in `messages`.
   */
  decide?: (stage: SinkStage, address: string, message: { sender: string; recipients: string[] }) => SinkReply | null;
  /** Extensions to hide from EHLO: any of 'PIPELINING','8BITMIME','SMTPUTF8','SIZE','STARTTLS'. */
  hide?: string[];
  /** SIZE limit advertised (unless hidden) and enforced at end of DATA (552), bytes. */
  size?: number;
  /** Refuse connections: answer with this reply instead of the 220 greeting and close. */
  greeting?: SinkReply | null;
}

export interface SmtpSink {
  readonly port: number;
  /** Accepted messages, in the order their DATA ended. */
  readonly messages: SinkMessage[];
  /** TCP connections accepted so far. */
  connections(): number;
  /** MAIL and RCPT commands as the client wrote them (UTF-8), before smtp-server decodes A-labels; plain-text sessions only. */
  readonly envelopeLines: string[];
  /** Change the options for later sessions/commands; all but `tls` can change. */
  update(options: Partial<SinkOptions>): void;
  /** Resolves once at least `count` messages were received; rejects after timeoutMs (default 20000) naming how many arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<SinkMessage[]>;
  /** Stops listening and destroys open connections at once. */
  close(): Promise<void>;
}

const HIDEABLE = ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE', 'STARTTLS'];

function replyError(reply: SinkReply): SMTPServerError {
  const err: SMTPServerError = new Error(reply.message);
  err.responseCode = reply.code;
  return err;
}

export async function startSink(initial: SinkOptions = {}): Promise<SmtpSink> {
  const current: SinkOptions = { ...initial };
  const messages: SinkMessage[] = [];
  const waiters = new Set<{ count: number; resolve: (m: SinkMessage[]) => void; reject: (e: Error) => void }>();
  const sockets = new Set<net.Socket>();
  /** "address|port" of each open TCP connection → its 1-based index. */
  const indexByPeer = new Map<string, number>();
  const envelopeLines: string[] = [];
  let accepted = 0;

  /** Runs `decide`; a throw or a reply outside 4xx/5xx becomes a 451 naming the problem. */
  const decide = (stage: SinkStage, address: string, session: SMTPServerSession): SMTPServerError | null => {
    const sender = session.envelope.mailFrom === false ? address : session.envelope.mailFrom.address;
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    let reply: SinkReply | null;
    try {
      reply = current.decide?.(stage, address, { sender, recipients }) ?? null;
    } catch (err) {
      return replyError({ code: 451, message: `4.3.0 sink decide threw: ${String(err)}` });
    }
    if (reply === null) return null;
    if (!(reply.code >= 400 && reply.code <= 599)) return replyError({ code: 451, message: `4.3.0 sink decide returned code ${reply.code}` });
    return replyError(reply);
  };

  const options: SMTPServerOptions = {
    name: 'sink.example.test',
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 1000,
    // A remote MX: no AUTH, and no STARTTLS at all without a certificate (never the built-in one).
    disabledCommands: current.tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(current.tls ? { key: current.tls.key, cert: current.tls.cert } : {}),
    onConnect(_session, callback) {
      callback(current.greeting ? replyError(current.greeting) : null);
    },
    onMailFrom(address, session, callback) {
      callback(decide('mail', address.address, session));
    },
    onRcptTo(address, session, callback) {
      callback(decide('rcpt', address.address, session));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', () => undefined); // the client left mid-message: nothing to record
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        const sender = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        if (current.size !== undefined && body.length > current.size) {
          callback(replyError({ code: 552, message: `5.3.4 Message size exceeds fixed maximum message size ${current.size}` }));
          return;
        }
        const refused = decide('data', sender, session);
        if (refused !== null) {
          callback(refused);
          return;
        }
        messages.push({
          sender,
          recipients: session.envelope.rcptTo.map((r) => r.address),
          body,
          tls: session.secure,
          helo: session.hostNameAppearsAs || '',
          connection: indexByPeer.get(`${session.remoteAddress}|${session.remotePort}`) ?? 0,
        });
        for (const waiter of waiters) {
          if (messages.length >= waiter.count) {
            waiters.delete(waiter);
            waiter.resolve([...messages]);
          }
        }
        callback(null, `2.0.0 Ok: queued as sink-${messages.length}`);
      });
    },
  };
  const server = new SMTPServer(options);

  /** The EHLO switches read from server.options on every EHLO and MAIL, so they can change live. */
  const applyExtensions = (): void => {
    const hide = new Set((current.hide ?? []).map((h) => h.toUpperCase()));
    for (const h of hide) if (!HIDEABLE.includes(h)) throw new Error(`smtp sink: cannot hide ${h}; one of ${HIDEABLE.join(', ')}`);
    server.options.hidePIPELINING = hide.has('PIPELINING');
    server.options.hide8BITMIME = hide.has('8BITMIME');
    server.options.hideSMTPUTF8 = hide.has('SMTPUTF8');
    server.options.hideSTARTTLS = hide.has('STARTTLS') || !current.tls;
    // Hidden SIZE: not advertised nor checked at MAIL FROM, still enforced at end of DATA.
    server.options.size = hide.has('SIZE') ? undefined : current.size;
  };
  applyExtensions();

  server.on('error', () => undefined); // client resets and TLS failures must not crash the test process
  server.server.on('connection', (socket: net.Socket) => {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const index = ++accepted;
    indexByPeer.set(key, index);
    sockets.add(socket);
    socket.on('error', () => undefined);
    let partial = ''; // a second reader beside smtp-server's: both see every chunk
    socket.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\r\n');
      partial = lines.pop()!.slice(-4096);
      for (const line of lines) if (/^(MAIL|RCPT) /i.test(line)) envelopeLines.push(line);
    });
    socket.once('close', () => {
      sockets.delete(socket);
      if (indexByPeer.get(key) === index) indexByPeer.delete(key);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  // A forgotten instance must not keep the test process alive (open client connections still do).
  server.server.unref();
  const address = server.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  let closed: Promise<void> | null = null;
  return {
    port,
    messages,
    envelopeLines,
    connections: () => accepted,
    update(changes) {
      if ('tls' in changes) throw new Error('smtp sink: tls cannot change after start');
      Object.assign(current, changes);
      applyExtensions();
    },
    waitFor(count, timeoutMs = 20_000) {
      if (messages.length >= count) return Promise.resolve([...messages]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`smtp sink: expected ${count} message(s) within ${timeoutMs} ms, ${messages.length} arrived`));
        }, timeoutMs);
        const waiter = {
          count,
          resolve: (m: SinkMessage[]) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (e: Error) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        waiters.add(waiter);
      });
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const waiter of waiters) waiter.reject(new Error(`smtp sink closed; ${messages.length} of ${waiter.count} message(s) arrived`));
        waiters.clear();
        server.close(() => resolve());
        // smtp-server would wait closeTimeout for sessions to end; idle clients never do.
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
