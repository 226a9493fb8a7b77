#!/usr/bin/env node
// The ldapmta command: serve, check-config, lookup ADDRESS [--json], cache flush [ADDRESS].
// Parses arguments and prints; all work is done by the parts main.ts and directory/ build.
import { parseArgs } from 'node:util';
import { ConfigError, configPath, loadConfig, type Config } from './config.ts';
import { createDirectory } from './directory/index.ts';
import type { Lookup } from './directory/types.ts';
import { createLogger, type Logger } from './log.ts';
import { MailError, parseAddress } from './mail.ts';
import { start } from './main.ts';

// sysexits(3), as Postfix and qmail tools use them.
const EX_OK = 0;
const EX_NOTFOUND = 1;
const EX_USAGE = 64;
const EX_TEMPFAIL = 75;
const EX_CONFIG = 78;

const USAGE = `usage: ldapmta <command> [--config FILE]
  serve                   run the server (LDAPMTA_CONFIG or --config names the YAML file)
  check-config            validate the configuration and print it with secrets hidden
  lookup ADDRESS [--json] resolve an address through the directory and its cache
  cache flush [ADDRESS]   drop one address, or every entry, from the lookup cache`;

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
    case 'serve': return serve(config);
    case 'check-config': return checkConfig(config);
    case 'lookup':
      if (rest.length !== 1) return usage('lookup takes exactly one ADDRESS');
      return lookup(config, rest[0]!, parsed.values.json === true);
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

async function serve(config: Config): Promise<number> {
  const log = createLogger({ level: config.log.level });
  const running = await start(config, { log });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await running.stop();
  return EX_OK;
}

function checkConfig(config: Config): number {
  const shown = structuredClone(config);
  if (shown.directory.bindPassword !== '') shown.directory.bindPassword = '[set]';
  if (shown.delivery.smarthostPassword !== '') shown.delivery.smarthostPassword = '[set]';
  if (shown.srs.secret !== '') shown.srs.secret = '[set]';
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
  const directory = await createDirectory(config, { log: toolLogger(config) });
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
    process.stderr.write('ldapmta: cache.redis is not set: the in-process cache of a running server expires by TTL (cache.ttlSeconds); nothing to flush from here\n');
    return EX_CONFIG;
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

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`ldapmta: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 70;
});
