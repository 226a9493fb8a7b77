// Commands about the connection itself: CAPABILITY, NOOP, LOGOUT, ID, ENABLE (any state),
// STARTTLS, LOGIN and AUTHENTICATE PLAIN (before login). Logins go to the directory, with the same
// failure delays and lockouts as POP3 and submission.
import type { LoginResult } from '../../../directory/types.ts';
import { MailStore } from '../mailstore.ts';
import { capabilityLine, type Handler, plaintextAllowed, type Session } from '../session.ts';
import type { Command } from '../types.ts';
import { text } from './args.ts';

const ANY = ['not-authenticated', 'authenticated', 'selected'] as const;

export const connectionCommands: Record<string, Handler> = {
  CAPABILITY: {
    states: ANY,
    async run(session, command) {
      session.send(`* CAPABILITY ${capabilityLine(session)}`);
      session.send(`${command.tag} OK CAPABILITY completed`);
    },
  },
  NOOP: {
    states: ANY,
    async run(session, command) {
      await session.selected?.folder.sync();
      await session.flush(command.name);
      session.send(`${command.tag} OK NOOP completed`);
    },
  },
  LOGOUT: {
    states: ANY,
    async run(session, command) {
      session.send(`* BYE ${session.options.hostname} logging out`);
      session.send(`${command.tag} OK LOGOUT completed`);
      session.goodbye(null);
    },
  },
  ID: {
    states: ANY,
    async run(session, command) {
      session.send('* ID ("name" "ldapmta" "vendor" "ldapmta")');
      session.send(`${command.tag} OK ID completed`);
    },
  },
  ENABLE: {
    states: ['authenticated', 'selected'],
    async run(session, command) {
      // CONDSTORE is the one extension here that can be enabled (RFC 5161 §3.1: others are left out of the answer).
      const asked = command.args.map((t) => (t.type === 'atom' ? t.value.toUpperCase() : ''));
      const now = asked.filter((name) => name === 'CONDSTORE' && !session.enabled.has(name));
      for (const name of now) session.enabled.add(name);
      if (session.selected !== null && session.enabled.has('CONDSTORE')) session.selected.condstore = true;
      session.send(`* ENABLED${now.map((n) => ` ${n}`).join('')}`);
      session.send(`${command.tag} OK ENABLE completed`);
    },
  },
  STARTTLS: {
    states: ['not-authenticated'],
    async run(session, command) {
      if (!session.tlsAvailable) {
        session.send(`${command.tag} BAD STARTTLS is not available${session.secure ? ': TLS is already on' : ''}`);
        return;
      }
      session.send(`${command.tag} OK Begin TLS negotiation now`);
      if (!(await session.startTls())) session.goodbye(null);
    },
  },
  LOGIN: {
    states: ['not-authenticated'],
    async run(session, command) {
      if (!plaintextAllowed(session)) {
        session.send(`${command.tag} NO [PRIVACYREQUIRED] LOGIN needs TLS first: use STARTTLS`);
        return;
      }
      await login(session, command, text(command.args[0], 'the user name'), text(command.args[1], 'the password'));
    },
  },
  AUTHENTICATE: {
    states: ['not-authenticated'],
    async run(session, command) {
      const mechanism = text(command.args[0], 'the mechanism').toUpperCase();
      if (mechanism !== 'PLAIN') {
        session.send(`${command.tag} NO [CANNOT] only PLAIN is offered`);
        return;
      }
      if (!plaintextAllowed(session)) {
        session.send(`${command.tag} NO [PRIVACYREQUIRED] PLAIN needs TLS first: use STARTTLS`);
        return;
      }
      let response: string;
      if (command.args[1] !== undefined) response = text(command.args[1], 'the initial response');
      else {
        session.send('+ ');
        const line = await session.next('line');
        if (line === null || line.kind !== 'line') return;
        response = line.text;
      }
      if (response === '*') {
        session.send(`${command.tag} BAD authentication cancelled`);
        return;
      }
      const decoded = /^[A-Za-z0-9+/]*={0,2}$/.test(response) ? Buffer.from(response === '=' ? '' : response, 'base64').toString('utf8') : null;
      const parts = decoded?.split('\0') ?? [];
      if (parts.length !== 3 || (parts[0] !== '' && parts[0] !== parts[1])) {
        session.send(`${command.tag} BAD malformed PLAIN response`);
        return;
      }
      await login(session, command, parts[1]!, parts[2]!);
    },
  },
};

async function login(session: Session, command: Command, name: string, password: string): Promise<void> {
  const { limits } = session.deps;
  const locked = await limits.lockedFor(session.ip, name);
  if (locked > 0) {
    session.send(`${command.tag} NO [UNAVAILABLE] too many failed logins, try again in ${locked} s`);
    return;
  }
  let result: LoginResult;
  try {
    result = await session.deps.authenticate(name, password);
  } catch {
    session.send(`${command.tag} NO [UNAVAILABLE] the directory is not available, try again later`);
    return;
  }
  if (!result.ok) {
    const delay = await limits.failed(session.ip, name);
    session.log.info({ login: name, reason: result.reason, delayMs: delay }, 'authentication failed');
    await new Promise((r) => setTimeout(r, delay));
    session.send(`${command.tag} NO [AUTHENTICATIONFAILED] authentication failed`);
    return;
  }
  const base = session.options.mailboxes.endsWith('/') ? session.options.mailboxes : `${session.options.mailboxes}/`;
  if (result.mailbox === null || !result.mailbox.startsWith(base)) {
    session.log.warn({ login: name, mailbox: result.mailbox }, 'login has no usable mailbox here');
    session.send(`${command.tag} NO [UNAVAILABLE] no mailbox here for this account`);
    return;
  }
  const store = new MailStore(result.mailbox, session.deps.registry);
  try {
    await store.prepare();
  } catch (err) {
    session.log.error({ login: result.login, err: (err as Error).message }, 'cannot prepare the mailbox');
    session.send(`${command.tag} NO [UNAVAILABLE] cannot open the mailbox now`);
    return;
  }
  session.user = { login: result.login, root: result.mailbox, quota: result.quota ?? null };
  session.reader.limitLiterals(session.options.maxMessageSize);
  session.store = store;
  session.state = 'authenticated';
  session.log.info({ login: result.login, tls: session.secure }, 'imap login');
  session.send(`${command.tag} OK [CAPABILITY ${capabilityLine(session)}] logged in`);
}
