#!/usr/bin/env node
// The ldapmta command: serve, check-config, lookup ADDRESS [--json], cache flush [ADDRESS],
// queue list|show|flush|retry|delete|bounce|hold|release (through the running server's admin API).
// Parses arguments and prints; all work is done by the parts main.ts and directory/ build.
import { parseArgs } from 'node:util';
import { ConfigError, configPath, loadConfig, parseHostPort, type Config } from './config.ts';
import { createDirectory } from './directory/index.ts';
import type { Lookup } from './directory/types.ts';
import { createLogger, type Logger, wantsPretty } from './log.ts';
import { MailError, parseAddress } from './mail.ts';
import { start, type Running } from './main.ts';
import type { QueueEntryView } from './queue/types.ts';

// sysexits(3), as Postfix and qmail tools use them.
const EX_OK = 0;
const EX_NOTFOUND = 1;
const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_TEMPFAIL = 75;
const EX_CONFIG = 78;

const USAGE = `usage: ldapmta <command> [--config FILE]
  serve                   run the server (LDAPMTA_CONFIG or --config names the YAML file)
  check-config            validate the configuration and print it with secrets hidden
  lookup ADDRESS [--json] resolve an address through the directory and its cache
  cache flush [ADDRESS]   drop one address, or every entry, from the lookup cache
  queue list [--json]     the queued messages and their recipients (as mailq)
  queue show ID [--json]  one queued message
  queue flush [ID]        try every deferred message (or one) now
  queue retry ID          the same for one message
  queue delete ID         remove a message without a bounce
  queue bounce ID         return a message to its sender now (5.0.0)
  queue hold ID           keep a message without delivering it (as postsuper -h)
  queue release ID        deliver a held message again, now (as postsuper -H)
  reload [--json]         have the running server read its configuration again (as SIGHUP)`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return EX_USAGE;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined && !parsed.values.help ? EX_USAGE : EX_OK;
  }
  let config: Config;
  try {
    config = loadConfig(configPath(parsed.values.config));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ldapmta: ${err.message}\n`);
      return EX_CONFIG;
    }
    throw err;
  }
  switch (command) {
    case 'serve': return serve(config, configPath(parsed.values.config));
    case 'reload':
      if (rest.length !== 0) return usage('reload takes no arguments');
      return reloadCommand(config, parsed.values.json === true);
    case 'check-config': return checkConfig(config);
    case 'lookup':
      if (rest.length !== 1) return usage('lookup takes exactly one ADDRESS');
      return lookup(config, rest[0]!, parsed.values.json === true);
    case 'queue':
      return queueCommand(config, rest, parsed.values.json === true);
    case 'cache':
      if (rest[0] !== 'flush' || rest.length > 2) return usage('expected: cache flush [ADDRESS]');
      return flush(config, rest[1]);
    default:
      return usage(`unknown command "${command}"`);
  }
}

function usage(problem: string): number {
  process.stderr.write(`ldapmta: ${problem}\n${USAGE}\n`);
  return EX_USAGE;
}

/** Tools log only warnings and worse, to stderr, so their stdout stays clean for scripts. */
function toolLogger(config: Config): Logger {
  return createLogger({ level: config.log.level === 'silent' ? 'silent' : 'warn', destination: process.stderr });
}

async function serve(config: Config, path: string | null): Promise<number> {
  const log = createLogger({ level: config.log.level, components: config.log.components, pretty: wantsPretty(config.log.format, process.stdout.isTTY === true) });
  let running: Running | null = null;
  // SIGHUP and `ldapmta reload` read the same file again; an invalid one changes nothing.
  const reload = async () => {
    if (running === null) throw new Error('still starting');
    return running.reload(loadConfig(path));
  };
  try {
    running = await start(config, { log, reload });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ldapmta: ${err.message}\n`);
    return EX_CONFIG;
  }
  const onHup = () => {
    reload().catch((err: unknown) => {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      log.error({ problems }, 'configuration not reloaded; the server runs on as before');
    });
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.off('SIGHUP', onHup);
  await running.stop();
  // A delivery cut short at shutdown.deliveryWaitSeconds may still hold a socket open: it must not
  // keep the process alive (its message is retried from the spool at the next start).
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  process.exit(EX_OK);
}

/** `ldapmta reload`: what SIGHUP does, asked through the admin API (works where signals cannot reach, e.g. another container). */
async function reloadCommand(config: Config, json: boolean): Promise<number> {
  const answer = await adminRequest(config, 'POST', '/reload');
  if (typeof answer === 'number') return answer;
  const { status, body } = answer;
  if (status === 422) {
    process.stderr.write(`ldapmta: ${String(body.error)}:\n  ${((body.problems ?? []) as string[]).join('\n  ')}\n`);
    return EX_CONFIG;
  }
  if (status !== 200) {
    process.stderr.write(`ldapmta: the server answered ${status}: ${String(body.error ?? '')}\n`);
    return status === 401 ? EX_CONFIG : EX_TEMPFAIL;
  }
  if (json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  else {
    const restart = (body.restartNeeded ?? []) as string[];
    process.stdout.write(`reloaded: ${((body.applied ?? []) as string[]).join('; ')}\n`);
    if (restart.length > 0) process.stdout.write(`changed, taking effect at the next restart: ${restart.join(', ')}\n`);
  }
  return EX_OK;
}

function checkConfig(config: Config): number {
  const shown = structuredClone(config);
  if (shown.directory.bindPassword !== '') shown.directory.bindPassword = '[set]';
  if (shown.delivery.smarthostPassword !== '') shown.delivery.smarthostPassword = '[set]';
  if (shown.srs.secret !== '') shown.srs.secret = '[set]';
  if (shown.admin.token !== '') shown.admin.token = '[set]';
  shown.srs.oldSecrets = shown.srs.oldSecrets.map(() => '[set]');
  if (shown.cache.redis !== '') shown.cache.redis = shown.cache.redis.replace(/\/\/[^@/]*@/, '//[credentials]@');
  process.stdout.write(`configuration is valid\n${JSON.stringify(shown, null, 2)}\n`);
  return EX_OK;
}

async function lookup(config: Config, text: string, json: boolean): Promise<number> {
  let address;
  try {
    address = parseAddress(text);
  } catch (err) {
    process.stderr.write(`ldapmta: ${(err as Error).message}\n`);
    return EX_USAGE;
  }
  let directory;
  try {
    directory = await createDirectory(config, { log: toolLogger(config) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`ldapmta: ${err.message}\n`);
    return EX_CONFIG;
  }
  try {
    const result = await directory.lookup(address);
    const key = directory.resolver.key(address);
    process.stdout.write(json ? `${JSON.stringify({ address: text, key, ...result }, null, 2)}\n` : describeLookup(text, result));
    return result.resolution.kind === 'unknown' || result.resolution.kind === 'reject' ? EX_NOTFOUND : EX_OK;
  } catch (err) {
    if (!(err instanceof MailError)) throw err;
    process.stderr.write(`${text}: temporary failure ${err.status}: ${err.message}\n`);
    return EX_TEMPFAIL;
  } finally {
    await directory.close();
  }
}

export function describeLookup(text: string, { resolution: r, source }: Lookup): string {
  const lines = [`${text}: ${r.kind}`];
  const add = (label: string, value: unknown) => lines.push(`  ${label.padEnd(15)} ${value}`);
  if (r.kind === 'unknown') {
    add('tried', r.tried.join(', ') || '(no query: cannot match)');
  } else if (r.kind === 'reject') {
    add('dn', r.dn);
    add('status', `${r.status} ${r.reason}`);
  } else {
    add('dn', r.dn);
    add('address', r.address);
    if (r.matched !== r.address) add('matched', r.matched + (r.extension !== null ? ` (extension "${r.extension}")` : ''));
    if (r.matchedBy !== undefined) add('matched by', r.matchedBy ?? '(no address attribute: a custom filter)');
    add('accountStatus', r.accountStatus);
    add('mailHost', r.mailHost === null ? '(none: this node)' : `${r.mailHost}${r.local ? ' (this node)' : ' (another node)'}`);
    if (r.sizeMax !== null) add('sizeMax', `${r.sizeMax} bytes`);
    if (r.kind === 'mailbox') {
      add('mailbox', r.mailbox);
      add('quota', `${r.quota.bytes ?? 'unlimited'} bytes, ${r.quota.count ?? 'unlimited'} messages`);
      add('deliveryMode', Object.entries(r.delivery).filter(([, on]) => on).map(([k]) => k).join(' ') || '(nothing: mail is dropped)');
    }
    if ('forwards' in r && r.forwards.length > 0) add('forwards', r.forwards.join(', '));
    if (r.kind === 'group') {
      add('members', [...r.members.dn, ...r.members.rfc822, ...r.members.filter].join(', '));
      add('membersOnly', r.membersOnly);
    }
  }
  add('source', source === 'ldap' ? 'directory (not cached)' : `cache (${source})`);
  return `${lines.join('\n')}\n`;
}

async function flush(config: Config, text: string | undefined): Promise<number> {
  if (config.cache.redis === '') {
    // The cache is in the running server's memory only: it is asked to flush it through the admin API.
    if (config.listen.admin === '') {
      process.stderr.write('ldapmta: cache.redis is not set, so the cache is in the running server\'s memory, and listen.admin is not set to ask it to flush (entries expire after cache.ttlSeconds)\n');
      return EX_CONFIG;
    }
    const answer = await adminRequest(config, 'POST', `/cache/flush${text === undefined ? '' : `?address=${encodeURIComponent(text)}`}`);
    if (typeof answer === 'number') return answer;
    if (answer.status !== 200) {
      process.stderr.write(`ldapmta: cache flush failed: ${String(answer.body.error ?? `HTTP ${answer.status}`)}\n`);
      return answer.status === 400 ? EX_USAGE : EX_TEMPFAIL;
    }
    process.stdout.write(text === undefined ? 'cache flushed\n' : `${text}: flushed\n`);
    return EX_OK;
  }
  const directory = await createDirectory(config, { log: toolLogger(config) });
  try {
    await directory.flush(text === undefined ? undefined : parseAddress(text));
    process.stdout.write(text === undefined ? 'cache flushed\n' : `${text}: flushed\n`);
    return EX_OK;
  } catch (err) {
    process.stderr.write(`ldapmta: cache flush failed: ${(err as Error).message}\n`);
    return EX_TEMPFAIL;
  } finally {
    await directory.close();
  }
}

/** `ldapmta queue …` over the admin API of the server this config describes. */
/**
 * One request to the running server's admin API (listen.admin, with admin.token): its status and
 * JSON body, or the exit code when it cannot be asked (not configured 78, not reachable 69).
 */
async function adminRequest(config: Config, method: string, path: string): Promise<{ status: number; body: Record<string, unknown> } | number> {
  const where = config.listen.admin === '' ? null : parseHostPort(config.listen.admin);
  if (where === null) {
    process.stderr.write('ldapmta: listen.admin is not set: this command talks to the running server through it\n');
    return EX_CONFIG;
  }
  const host = where.host === '0.0.0.0' ? '127.0.0.1' : where.host === '::' ? '::1' : where.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${where.port}${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: config.admin.token === '' ? {} : { authorization: `Bearer ${config.admin.token}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    process.stderr.write(`ldapmta: cannot reach the server at ${url}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}\n`);
    return EX_UNAVAILABLE;
  }
  return { status: response.status, body: await response.json().catch(() => ({})) as Record<string, unknown> };
}

/** What a successful queue verb prints after the id. */
const DONE: Readonly<Record<string, string>> = {
  flush: 'scheduled for delivery now', retry: 'scheduled for delivery now', delete: 'deleted', bounce: 'returned to the sender',
  hold: 'on hold', release: 'released: scheduled for delivery now',
};

async function queueCommand(config: Config, args: string[], json: boolean): Promise<number> {
  const [verb, id, extra] = args;
  if (extra !== undefined) return usage('too many arguments');
  const needsId = verb === 'show' || verb === 'retry' || verb === 'delete' || verb === 'bounce' || verb === 'hold' || verb === 'release';
  if (needsId && id === undefined) return usage(`queue ${verb} takes a queue ID`);
  const ref = encodeURIComponent(id ?? ''); // the admin API's paths take it as one segment
  const request: Record<string, [string, string]> = {
    list: ['GET', '/queue'],
    show: ['GET', `/queue/${ref}`],
    flush: ['POST', id === undefined ? '/queue/flush' : `/queue/${ref}/flush`],
    retry: ['POST', `/queue/${ref}/flush`],
    delete: ['DELETE', `/queue/${ref}`],
    bounce: ['POST', `/queue/${ref}/bounce`],
    hold: ['POST', `/queue/${ref}/hold`],
    release: ['POST', `/queue/${ref}/release`],
  };
  const chosen = verb === undefined ? undefined : request[verb];
  if (chosen === undefined || (verb === 'list' && id !== undefined)) return usage('expected: queue list|show ID|flush [ID]|retry ID|delete ID|bounce ID|hold ID|release ID');
  const answer = await adminRequest(config, chosen[0], chosen[1]);
  if (typeof answer === 'number') return answer;
  const { status, body } = answer;
  if (status === 404) {
    process.stderr.write(`ldapmta: ${String(body.error ?? 'not found')}\n`);
    return EX_NOTFOUND;
  }
  if (status < 200 || status > 299) {
    process.stderr.write(`ldapmta: the server answered ${status}: ${String(body.error ?? '')}\n`);
    return status === 401 ? EX_CONFIG : EX_TEMPFAIL;
  }
  if (json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  else if (verb === 'list') process.stdout.write(describeQueue((body.messages ?? []) as QueueEntryView[]));
  else if (verb === 'show') process.stdout.write(describeQueue([body as unknown as QueueEntryView]));
  else if (verb === 'flush' && id === undefined) process.stdout.write(`${String(body.flushed)} message(s) scheduled for delivery now\n`);
  else process.stdout.write(`${id}: ${DONE[verb!]}\n`);
  return EX_OK;
}

/** mailq-style lines: one per message, one per recipient not yet delivered. Pure. */
export function describeQueue(messages: readonly QueueEntryView[]): string {
  if (messages.length === 0) return 'Mail queue is empty\n';
  const lines: string[] = [];
  let pending = 0;
  for (const m of messages) {
    lines.push(`${m.id}${m.active ? '*' : m.held ? '!' : ' '} ${String(m.size).padStart(9)} ${m.queuedAt}  <${m.sender}>`);
    for (const r of m.recipients) {
      if (r.state === 'delivered') continue;
      if (r.state === 'pending') pending++;
      const why = r.lastError === null ? '' : `  (${r.lastError.status} ${r.lastError.text.replace(/\s+/g, ' ').slice(0, 160)})`;
      const when = r.state === 'pending' ? `, next ${r.nextAttempt}` : '';
      lines.push(`    ${r.address}  ${r.state}, ${r.attempts} attempt(s)${when}${why}`);
    }
  }
  lines.push(`-- ${messages.length} message(s), ${pending} recipient(s) pending (* = being delivered now, ! = on hold)`);
  return `${lines.join('\n')}\n`;
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`ldapmta: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 70;
});
