// The deployment files kept true without Docker (the engine cannot run where ldapmta is tested): the Dockerfile,
// .dockerignore, docker-compose.yml and docs/ldapmta.service are parsed and checked against the repository,
// against ldapmta's own configuration loader, against the sample directory and against each other. Every check
// is a function that returns the problems it finds; each is also run on a broken copy, to show it can fail.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, loadConfig, parseHostPort, type Config } from '../../src/config.ts';
import { getAttribute, getFirstValue, parseLdif, type LdifEntry } from '../../src/directory/ldif.ts';
import { verifyPassword } from '../../src/directory/password.ts';
import { startAdmin } from '../../src/listen/admin.ts';
import { silentLogger } from '../../src/log.ts';
import type { QueueControl } from '../../src/queue/types.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const inRepo = (path: string): boolean => existsSync(join(ROOT, path));
const scratch = mkdtempSync(join(tmpdir(), 'ldapmta-deploy-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
/** The defaults every node starts from (no file, no environment). */
const DEFAULTS = loadConfig(null, {});

function assertNone(problems: string[]): void {
  assert.deepEqual(problems, [], `\n  ${problems.join('\n  ')}`);
}
function assertFound(problems: string[], pattern: RegExp): void {
  assert.ok(problems.some((p) => pattern.test(p)), `expected a problem matching ${pattern}, got:\n  ${problems.join('\n  ') || '(none)'}`);
}

// ---------------------------------------------------------------------------------------------------------------
// docker-compose.yml: the subset of the compose specification this project uses.

const duration = z.string().regex(/^(\d+(us|ms|s|m|h))+$/, 'expected a duration such as 5s or 1m30s');
const serviceSchema = z.strictObject({
  image: z.string().min(1).optional(),
  build: z.union([z.string().min(1), z.strictObject({ context: z.string().min(1), dockerfile: z.string().min(1).optional() })]).optional(),
  command: z.union([z.string().min(1), z.array(z.string())]).optional(),
  environment: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a variable name'), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  volumes: z.array(z.string().regex(/^[^:\s]+:\/[^:\s]*(:(ro|rw))?$/, 'expected SOURCE:/TARGET[:ro|:rw]')).optional(),
  ports: z.array(z.string().regex(/^((\d{1,3}\.){3}\d{1,3}:)?\d{1,5}:\d{1,5}(\/(tcp|udp))?$/, 'expected [IP:]HOST:CONTAINER')).optional(),
  depends_on: z.union([
    z.array(z.string()),
    z.record(z.string(), z.strictObject({ condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']) })),
  ]).optional(),
  healthcheck: z.strictObject({
    test: z.union([z.string().min(1), z.tuple([z.enum(['CMD', 'CMD-SHELL'])], z.string())]),
    interval: duration.optional(),
    timeout: duration.optional(),
    start_period: duration.optional(),
    retries: z.number().int().min(1).optional(),
  }).optional(),
  init: z.boolean().optional(),
  restart: z.enum(['no', 'always', 'on-failure', 'unless-stopped']).optional(),
  stop_grace_period: duration.optional(),
  sysctls: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
}).refine((s) => s.image !== undefined || s.build !== undefined, { message: 'a service needs image or build' });

const composeSchema = z.strictObject({
  name: z.string().optional(),
  services: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a service name'), serviceSchema),
  volumes: z.record(z.string(), z.union([z.null(), z.strictObject({ name: z.string().optional(), external: z.boolean().optional() })])).optional(),
});
type Compose = z.output<typeof composeSchema>;
type Service = z.output<typeof serviceSchema>;

/** Compose's own interpolation with an empty environment: ${VAR:-default} is its default, $$ a dollar. */
function interpolate(value: unknown, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{[^}]*\}?/g, (match, _name?: string, fallback?: string) => {
      if (match === '$$') return '$';
      if (fallback !== undefined) return fallback;
      problems.push(`${match}: no default, so compose would put "" here (write $$ for a dollar sign)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, problems));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, problems)]));
  }
  return value;
}

/** Parse (anchors and << merges as compose resolves them), interpolate, and match the schema. */
function parseCompose(text: string): { compose: Compose | null; problems: string[] } {
  const doc = parseDocument(text, { merge: true, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) return { compose: null, problems: doc.errors.map((e) => `YAML: ${e.message}`) };
  const problems: string[] = [];
  const raw = interpolate(doc.toJS(), problems) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object') return { compose: null, problems: ['the top level must be a mapping'] };
  // Compose ignores x-* keys: they only hold the anchors.
  const result = composeSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('x-'))));
  if (!result.success) {
    return { compose: null, problems: [...problems, ...result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}${i.code === 'unrecognized_keys' ? ` (${i.keys.join(', ')})` : ''}`)] };
  }
  const compose = result.data;
  const names = new Set(Object.keys(compose.services));
  const declared = new Set(Object.keys(compose.volumes ?? {}));
  const used = new Set<string>();
  for (const [name, service] of Object.entries(compose.services)) {
    const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
    for (const dep of deps) if (!names.has(dep)) problems.push(`services.${name}.depends_on: no service "${dep}"`);
    for (const mount of mounts(service)) {
      if (mount.bind) continue;
      used.add(mount.source);
      if (!declared.has(mount.source)) problems.push(`services.${name}.volumes: named volume "${mount.source}" is not declared under volumes`);
    }
  }
  for (const volume of declared) if (!used.has(volume)) problems.push(`volumes.${volume}: declared but mounted nowhere`);
  return { compose, problems };
}

interface Mount { source: string; target: string; bind: boolean }
function mounts(service: Service): Mount[] {
  return (service.volumes ?? []).map((spec) => {
    const [source = '', target = ''] = spec.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') || source.startsWith('~') };
  });
}

function environment(service: Service): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(service.environment ?? {})) if (value !== null) env[name] = String(value);
  return env;
}

/** The services built from this repository's Dockerfile: the ldapmta nodes. */
function ldapmtaNodes(compose: Compose): [string, Service][] {
  return Object.entries(compose.services).filter(([, s]) => {
    const context = typeof s.build === 'string' ? s.build : s.build?.context;
    return context !== undefined && posix.normalize(context) === '.';
  });
}

function mustParseCompose(text: string): Compose {
  const { compose, problems } = parseCompose(text);
  assertNone(problems);
  assert.ok(compose);
  return compose;
}

// ---------------------------------------------------------------------------------------------------------------
// The sample directory the compose file mounts into OpenLDAP.

interface Directory { entries: LdifEntry[]; mailHosts: Set<string> }
function directoryOf(path: string): Directory {
  const entries = parseLdif(readFileSync(join(ROOT, path), 'utf8'));
  const mailHosts = new Set(entries.flatMap((e) => getAttribute(e, 'mailHost') ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')));
  return { entries, mailHosts };
}

/** The LDIF the OpenLDAP service loads: the file mounted into its LDAP_CUSTOM_LDIF_DIR. */
function mountedLdif(compose: Compose): string | null {
  for (const service of Object.values(compose.services)) {
    const dir = environment(service).LDAP_CUSTOM_LDIF_DIR;
    if (dir === undefined) continue;
    const mount = mounts(service).find((m) => m.bind && posix.dirname(m.target) === posix.normalize(dir) && m.target.endsWith('.ldif'));
    if (mount !== undefined) return mount.source;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// Check 2: the ldapmta nodes, through the project's own configuration loader.

interface Node { service: string; config: Config; definition: Service }

function nodeConfigs(compose: Compose, problems: string[]): Node[] {
  const nodes: Node[] = [];
  for (const [name, service] of ldapmtaNodes(compose)) {
    const env = Object.fromEntries(Object.entries(environment(service)).filter(([k]) => k.startsWith('LDAPMTA_')));
    if (env.LDAPMTA_CONFIG !== undefined) problems.push(`services.${name}: LDAPMTA_CONFIG names a file inside the container; this test can only check variables`);
    try {
      nodes.push({ service: name, config: loadConfig(null, env), definition: service });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems.map((p) => `services.${name}.environment: ${p}`));
    }
  }
  return nodes;
}

async function nodeProblems(compose: Compose, dockerfileVolumes: string[]): Promise<string[]> {
  const problems: string[] = [];
  const nodes = nodeConfigs(compose, problems);
  if (problems.length > 0) return problems;
  if (nodes.length < 2) return [`expected at least two ldapmta nodes built from the Dockerfile, found ${nodes.map((n) => n.service).join(', ') || 'none'}`];

  const ldifPath = mountedLdif(compose);
  if (ldifPath === null) return ['no LDIF file is mounted into a service with LDAP_CUSTOM_LDIF_DIR'];
  const directory = directoryOf(ldifPath);
  const services = compose.services;

  // Each node its own name, each name a mailHost of the sample, each mailHost a node.
  const hostnames = nodes.map((n) => n.config.hostname);
  if (new Set(hostnames).size !== hostnames.length) problems.push(`the nodes share a hostname: ${hostnames.join(', ')}`);
  for (const node of nodes) {
    if (!directory.mailHosts.has(node.config.hostname)) {
      problems.push(`services.${node.service}: hostname ${node.config.hostname} is no mailHost in ${ldifPath} (${[...directory.mailHosts].join(', ')})`);
    }
  }
  const owned = new Set(nodes.flatMap((n) => [n.config.hostname, ...n.config.clusterHosts]));
  for (const host of directory.mailHosts) if (!owned.has(host)) problems.push(`mailHost ${host} in ${ldifPath} belongs to no node`);

  // Each node reaches every other one: hostMap names the other node's service and SMTP port.
  for (const node of nodes) {
    for (const other of nodes) {
      if (other === node) continue;
      const hop = node.config.delivery.hostMap[other.config.hostname];
      const smtp = parseHostPort(other.config.listen.smtp);
      if (hop === undefined) {
        problems.push(`services.${node.service}: delivery.hostMap does not name ${other.config.hostname} (service ${other.service})`);
      } else if (hop.host !== other.service || smtp === null || hop.port !== smtp.port) {
        problems.push(`services.${node.service}: delivery.hostMap sends ${other.config.hostname} to ${hop.host}:${hop.port}, but service ${other.service} listens for SMTP on ${other.config.listen.smtp || '(off)'}`);
      }
    }
  }

  for (const node of nodes) {
    const at = `services.${node.service}`;
    const { directory: d, cache } = node.config;
    // The directory: the OpenLDAP service, its port, its base, and a bind that works on the mounted sample.
    if (d.urls.length === 0) problems.push(`${at}: directory.urls is empty (the embedded sample directory would start instead)`);
    for (const url of d.urls) {
      const parsed = new URL(url);
      const target = services[parsed.hostname];
      if (target === undefined || !/openldap/.test(target.image ?? '')) {
        problems.push(`${at}: directory.urls ${url} names no OpenLDAP service`);
        continue;
      }
      const env = environment(target);
      const port = Number(env.LDAP_PORT_NUMBER ?? 1389);
      if (Number(parsed.port || 389) !== port) problems.push(`${at}: directory.urls ${url}, but ${parsed.hostname} listens on ${port}`);
      if (env.LDAP_ROOT !== undefined && env.LDAP_ROOT.toLowerCase() !== d.baseDN.toLowerCase()) problems.push(`${at}: directory.baseDN ${d.baseDN}, but ${parsed.hostname} serves ${env.LDAP_ROOT}`);
    }
    const account = directory.entries.find((e) => e.dn.toLowerCase() === d.bindDN.toLowerCase());
    const stored = account === undefined ? undefined : getFirstValue(account, 'userPassword');
    if (account === undefined) problems.push(`${at}: directory.bindDN ${d.bindDN || '(anonymous)'} is no entry of ${ldifPath}`);
    else if (stored === undefined || !(await verifyPassword(stored, d.bindPassword, { allowCleartext: false }))) problems.push(`${at}: directory.bindPassword is not the password of ${d.bindDN}`);
    if (!directory.entries.some((e) => e.dn.toLowerCase() === d.baseDN.toLowerCase())) problems.push(`${at}: directory.baseDN ${d.baseDN} is no entry of ${ldifPath}`);

    // Redis: a service of the compose file.
    if (cache.redis === '') problems.push(`${at}: cache.redis is empty; the nodes should share one Redis`);
    else {
      const host = new URL(cache.redis).hostname;
      if (!/^redis(:|$)/.test(services[host]?.image ?? '')) problems.push(`${at}: cache.redis ${cache.redis} names no redis service`);
    }

    // The domains of the mailboxes that have a mailHost are local.
    for (const entry of directory.entries) {
      if (getFirstValue(entry, 'mailHost') === undefined) continue;
      for (const mail of getAttribute(entry, 'mail') ?? []) {
        const domain = mail.split('@')[1]?.toLowerCase() ?? '';
        if (!node.config.localDomains.includes(domain)) problems.push(`${at}: localDomains lacks ${domain} (${mail})`);
      }
    }

    // Spool and mailboxes: the image's volumes, each on a named volume of this node alone.
    for (const key of ['spool', 'mailboxes'] as const) {
      const path = node.config[key];
      const mount = mounts(node.definition).find((m) => posix.normalize(m.target) === posix.normalize(path));
      if (mount === undefined) problems.push(`${at}: ${key} ${path} is not mounted`);
      else if (mount.bind) problems.push(`${at}: ${key} ${path} is a bind mount; use a named volume`);
      else {
        const sharers = nodes.filter((n) => n !== node && mounts(n.definition).some((m) => m.source === mount.source));
        if (sharers.length > 0) problems.push(`${at}: volume ${mount.source} (${key}) is shared with ${sharers.map((n) => n.service).join(', ')}`);
      }
      if (!dockerfileVolumes.includes(path)) problems.push(`${at}: ${key} ${path} is not a VOLUME of the Dockerfile (${dockerfileVolumes.join(', ')}), which creates it for the non-root user`);
    }
    if (node.config.spool === node.config.mailboxes) problems.push(`${at}: spool and mailboxes are one directory`);
  }

  // One SRS domain and one secret for the cluster (docs/routing.md).
  const srs = new Set(nodes.map((n) => `${n.config.srs.domain}|${n.config.srs.secret}`));
  if (srs.size !== 1) problems.push('the nodes do not share srs.domain and srs.secret');
  if (nodes.some((n) => n.config.srs.enabled && n.config.srs.secret === '')) problems.push('srs.secret is empty: each node would generate its own');

  // Mail comes in somewhere: a node publishes its SMTP port.
  const published = nodes.some((n) => {
    const smtp = parseHostPort(n.config.listen.smtp);
    return smtp !== null && (n.definition.ports ?? []).some((p) => Number(p.split('/')[0]!.split(':').at(-1)) === smtp.port);
  });
  if (!published) problems.push('no ldapmta node publishes its SMTP port');
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Check 3: everything the compose file mounts or builds from is in the repository.

function mountProblems(compose: Compose): string[] {
  const problems: string[] = [];
  for (const [name, service] of Object.entries(compose.services)) {
    for (const mount of mounts(service)) {
      if (mount.bind && !inRepo(mount.source)) problems.push(`services.${name}.volumes: ${mount.source} does not exist`);
    }
    const build = typeof service.build === 'string' ? { context: service.build, dockerfile: 'Dockerfile' } : service.build;
    if (build !== undefined && !inRepo(join(build.context, build.dockerfile ?? 'Dockerfile'))) problems.push(`services.${name}.build: no ${join(build.context, build.dockerfile ?? 'Dockerfile')}`);
    // The OpenLDAP image reads its schema and LDIF files from these paths: they must be mounted there.
    const env = environment(service);
    if (env.LDAP_CUSTOM_SCHEMA_FILE !== undefined && !mounts(service).some((m) => m.target === env.LDAP_CUSTOM_SCHEMA_FILE)) {
      problems.push(`services.${name}: LDAP_CUSTOM_SCHEMA_FILE ${env.LDAP_CUSTOM_SCHEMA_FILE} is not mounted`);
    }
    if (env.LDAP_CUSTOM_LDIF_DIR !== undefined && !mounts(service).some((m) => posix.dirname(m.target) === posix.normalize(env.LDAP_CUSTOM_LDIF_DIR!))) {
      problems.push(`services.${name}: nothing is mounted into LDAP_CUSTOM_LDIF_DIR ${env.LDAP_CUSTOM_LDIF_DIR}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore.

interface Instruction { keyword: string; args: string; line: number }
interface Stage { name: string | null; instructions: Instruction[] }

/** Dockerfile syntax as far as this file needs: line continuations, comments, instructions, stages. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*#/.test(line) || (pending === '' && line.trim() === '')) return;
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/s.exec(full) ?? [];
    const instruction = { keyword: keyword.toUpperCase(), args: args.trim(), line: start };
    if (instruction.keyword === 'FROM') {
      stages.push({ name: /\s+AS\s+(\S+)\s*$/i.exec(args)?.[1] ?? null, instructions: [instruction] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  });
  return stages;
}

const jsonForm = (args: string): string[] | null => {
  if (!args.startsWith('[')) return null;
  const value: unknown = JSON.parse(args);
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : null;
};
const all = (stage: Stage | undefined, keyword: string): Instruction[] => stage?.instructions.filter((i) => i.keyword === keyword) ?? [];
/** The flags (--from=x) and the paths of a COPY. */
function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = jsonForm(args) ?? args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [flag = '', value = ''] = words.shift()!.slice(2).split('=');
    flags[flag] = value;
  }
  return { flags, sources: words.slice(0, -1), dest: words.at(-1) ?? '' };
}
function workdir(stage: Stage, before: number): string {
  return all(stage, 'WORKDIR').filter((i) => i.line < before).at(-1)?.args ?? '/';
}

/** .dockerignore patterns, anchored at the context root; a directory's exclusion covers what is inside. */
function dockerignored(patterns: string[], path: string): boolean {
  const toRegex = (pattern: string) => new RegExp(`^${pattern.replace(/^\/+|\/+$/g, '').split('/').map((part) => part === '**' ? '.*' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('/')}(/.*)?$`);
  let excluded = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    if (toRegex(negated ? pattern.slice(1) : pattern).test(posix.normalize(path).replace(/^\.\/|\/$/g, ''))) excluded = !negated;
  }
  return excluded;
}
const ignorePatterns = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

function dockerfileVolumes(stages: Stage[]): string[] {
  return all(stages.at(-1), 'VOLUME').flatMap((i) => jsonForm(i.args) ?? i.args.split(/\s+/));
}

function dockerfileProblems(text: string, dockerignore: string): string[] {
  const problems: string[] = [];
  const stages = parseDockerfile(text);
  const ignore = ignorePatterns(dockerignore);
  if (stages.length < 2) return [`expected a multi-stage build (at least two FROM), found ${stages.length}`];
  const final = stages.at(-1)!;
  const build = stages.slice(0, -1);

  for (const stage of stages) {
    const image = stage.instructions[0]!.args.split(/\s+/)[0]!;
    if (!/^node:20[-.\w]*-slim$/.test(image)) problems.push(`FROM ${image}: expected node:20-…-slim`);
  }

  // The build stage: the sources it compiles are copied, and it compiles them.
  const builder = build.find((s) => all(s, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)));
  if (builder === undefined) problems.push('no stage runs "npm run build"');
  else {
    const copied = all(builder, 'COPY').flatMap((c) => copyArgs(c.args).sources);
    const tsconfigBuild = JSON.parse(read('tsconfig.build.json')) as { extends?: string; include?: string[] };
    const needed = ['package.json', 'package-lock.json', 'tsconfig.build.json', ...(tsconfigBuild.extends ? [posix.normalize(tsconfigBuild.extends)] : []), ...(tsconfigBuild.include ?? [])];
    for (const path of needed) if (!copied.some((c) => posix.normalize(c) === path)) problems.push(`the build stage does not copy ${path}, which npm run build needs`);
  }

  // Every COPY from the context names something that exists and that .dockerignore lets through.
  for (const stage of stages) {
    for (const copy of [...all(stage, 'COPY'), ...all(stage, 'ADD')]) {
      const { flags, sources } = copyArgs(copy.args);
      if (flags.from !== undefined) {
        const from = stages.find((s) => s.name === flags.from);
        if (from === undefined) { problems.push(`line ${copy.line}: COPY --from=${flags.from}: no such stage`); continue; }
        for (const source of sources) {
          const dir = workdir(from, Infinity);
          if (!posix.isAbsolute(source)) problems.push(`line ${copy.line}: COPY --from=${flags.from} ${source}: use an absolute path`);
          else if (source === posix.join(dir, 'dist') && !all(from, 'RUN').some((r) => /\bnpm run build\b/.test(r.args))) problems.push(`line ${copy.line}: stage ${flags.from} does not build ${source}`);
          else if (posix.dirname(source) !== dir) problems.push(`line ${copy.line}: ${source} is not in stage ${flags.from}'s WORKDIR ${dir}`);
        }
        continue;
      }
      for (const source of sources) {
        if (!inRepo(source)) problems.push(`line ${copy.line}: COPY ${source}: not in the repository`);
        if (dockerignored(ignore, source)) problems.push(`line ${copy.line}: COPY ${source}: excluded by .dockerignore`);
      }
    }
  }

  // The runtime stage: production dependencies only, without the prepare script.
  const installs = all(final, 'RUN').filter((r) => /\bnpm (ci|install|i)\b/.test(r.args));
  if (installs.length === 0) problems.push('the final stage installs no dependencies (npm ci --omit=dev)');
  for (const run of installs) {
    if (!/--omit[= ]dev\b|--only[= ]prod(uction)?\b|--production\b/.test(run.args)) problems.push(`line ${run.line}: the final stage installs the development dependencies (add --omit=dev)`);
    if (!/--ignore-scripts\b/.test(run.args)) problems.push(`line ${run.line}: "prepare" (npm run build) would run without TypeScript (add --ignore-scripts)`);
  }
  if (!all(final, 'COPY').some((c) => copyArgs(c.args).flags.from !== undefined && copyArgs(c.args).sources.some((s) => s.endsWith('/dist')))) problems.push('the final stage does not copy dist/ from the build stage');
  if (!all(final, 'COPY').some((c) => copyArgs(c.args).sources.includes('schema'))) problems.push('the final stage does not copy schema/ (the embedded directory loads its sample from there)');

  // Not root.
  const user = all(final, 'USER').at(-1)?.args.split(':')[0];
  if (user === undefined || user === 'root' || user === '0') problems.push(`the final stage runs as ${user ?? 'root (no USER)'}`);

  // The command: node on the built CLI, serve by default.
  const entrypoint = jsonForm(all(final, 'ENTRYPOINT').at(-1)?.args ?? '');
  const dir = workdir(final, Infinity);
  if (entrypoint === null || entrypoint[0] !== 'node' || entrypoint[1] === undefined) problems.push('ENTRYPOINT must be the exec form ["node", "dist/cli.js"]');
  else {
    const script = posix.relative(dir, posix.resolve(dir, entrypoint[1]));
    const source = script.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
    if (!script.startsWith('dist/') || !inRepo(source)) problems.push(`ENTRYPOINT runs ${entrypoint[1]}, which the build does not produce (no ${source})`);
    if (script !== 'dist/cli.js') problems.push(`ENTRYPOINT runs ${entrypoint[1]}, not dist/cli.js`);
  }
  const cmd = jsonForm(all(final, 'CMD').at(-1)?.args ?? '');
  if (cmd === null || cmd[0] !== 'serve') problems.push('CMD must be ["serve"]');

  // Ports: every listener that is on by default, the TLS ones, and never the admin listener.
  const exposed = new Set(all(final, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map((p) => Number(p.split('/')[0])));
  const listeners = Object.entries(DEFAULTS.listen).filter(([name, where]) => name !== 'admin' && where !== '').map(([, where]) => parseHostPort(where)!.port);
  for (const port of new Set([25, 587, ...listeners, 993, 995])) if (!exposed.has(port)) problems.push(`EXPOSE lacks ${port}`);
  const admin = parseHostPort(DEFAULTS.listen.admin);
  if (admin !== null && exposed.has(admin.port)) problems.push(`EXPOSE ${admin.port}: the admin listener is loopback only`);

  // Volumes: the spool and the mail base, created and owned by the user before it takes over.
  const volumes = dockerfileVolumes(stages);
  for (const key of ['spool', 'mailboxes'] as const) {
    const path = DEFAULTS[key];
    if (!volumes.includes(path)) problems.push(`VOLUME lacks ${path} (the ${key} default)`);
    if (!all(final, 'RUN').some((r) => /\bchown\b/.test(r.args) && r.args.includes(path))) problems.push(`the final stage does not chown ${path} to the user`);
  }

  // .dockerignore keeps the host's installs, builds and history out of the context.
  for (const path of ['node_modules', 'dist', '.git', 'var']) if (!dockerignored(ignore, path)) problems.push(`.dockerignore does not exclude ${path}`);
  return problems;
}

function healthcheckScript(text: string): { script: string | null; problems: string[] } {
  const final = parseDockerfile(text).at(-1);
  const check = all(final, 'HEALTHCHECK').at(-1);
  if (check === undefined) return { script: null, problems: ['the final stage has no HEALTHCHECK'] };
  const command = jsonForm(check.args.replace(/^(--\S+\s+)*CMD\s+/, ''));
  if (command === null || command[0] !== 'node' || command[1] !== '-e' || command[2] === undefined) {
    return { script: null, problems: ['HEALTHCHECK must be the exec form CMD ["node", "-e", SCRIPT]'] };
  }
  const script = command[2];
  const problems: string[] = [];
  try {
    // Parsed only, never called.
    new Function(script);
  } catch (err) {
    problems.push(`HEALTHCHECK script is not valid JavaScript: ${(err as Error).message}`);
  }
  if (!/--timeout=\d+s/.test(check.args)) problems.push('HEALTHCHECK has no --timeout');
  return { script, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// docs/ldapmta.service and docs/deploy.md.

function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section !== null) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const [, key = '', value = ''] = /^([A-Za-z]+)=(.*)$/.exec(line) ?? [];
    if (current === undefined || key === '') continue;
    current.set(key, [...(current.get(key) ?? []), value.trim()]);
  }
  return sections;
}

/** The ```yaml block of docs/deploy.md whose first line names the file ExecStart passes to --config. */
function documentedConfig(markdown: string, path: string): string | null {
  for (const [, body = ''] of markdown.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    if (body.split('\n')[0]?.trim() === `# ${path}`) return body;
  }
  return null;
}

/** Load a documented configuration file, with every *File secret replaced by a scratch file. */
function loadDocumentedConfig(yamlText: string): Config {
  const tree = parseDocument(yamlText).toJS() as Record<string, unknown>;
  const replace = (node: Record<string, unknown>) => {
    for (const [key, value] of Object.entries(node)) {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) replace(value as Record<string, unknown>);
      else if (key.endsWith('File') && typeof value === 'string') {
        const file = join(scratch, `secret-${key}`);
        writeFileSync(file, 'documented-secret\n');
        node[key] = file;
      }
    }
  };
  replace(tree);
  const file = join(scratch, 'documented.yaml');
  writeFileSync(file, JSON.stringify(tree));
  return loadConfig(file, {});
}

function unitProblems(unit: string, deployMd: string): string[] {
  const problems: string[] = [];
  const sections = parseUnit(unit);
  for (const name of ['Unit', 'Service', 'Install']) if (!sections.has(name)) problems.push(`no [${name}] section`);
  const service = sections.get('Service') ?? new Map<string, string[]>();
  const one = (key: string) => service.get(key)?.at(-1);

  if (one('Type') !== 'simple') problems.push(`Type=${one('Type') ?? ''}: ldapmta does not call sd_notify, so Type=simple`);
  const user = one('User');
  if (user === undefined || user === 'root' || user === '0') problems.push(`User=${user ?? '(none: root)'}`);

  const exec = (one('ExecStart') ?? '').split(/\s+/);
  const [binary = '', script = '', command = ''] = exec;
  const configIndex = exec.indexOf('--config');
  const configFile = configIndex > 0 ? exec[configIndex + 1] : undefined;
  if (!posix.isAbsolute(binary) || !/\/node$/.test(binary)) problems.push(`ExecStart runs ${binary}, not an absolute path to node`);
  if (!script.endsWith('/dist/cli.js')) problems.push(`ExecStart runs ${script}, not dist/cli.js`);
  if (one('WorkingDirectory') !== undefined && script !== posix.join(one('WorkingDirectory')!, 'dist/cli.js')) problems.push(`ExecStart's ${script} is not in WorkingDirectory ${one('WorkingDirectory')}`);
  if (command !== 'serve') problems.push(`ExecStart runs "${command}", not serve`);
  if (configFile === undefined) problems.push('ExecStart passes no --config');
  for (const [what, value] of [['node', binary], ['the CLI', script], ['the configuration file', configFile]] as const) {
    if (value !== undefined && !deployMd.includes(value)) problems.push(`docs/deploy.md never mentions ${what} at ${value}`);
  }
  if (configFile !== undefined && !deployMd.includes(`check-config --config ${configFile}`)) problems.push(`docs/deploy.md does not show check-config --config ${configFile}`);

  if (!/^\/\S*kill\s+(-HUP|-s\s+HUP|-SIGHUP|-s\s+SIGHUP)\s+\$MAINPID$/.test(one('ExecReload') ?? '')) problems.push(`ExecReload=${one('ExecReload') ?? ''} does not send SIGHUP to $MAINPID`);
  if (one('KillSignal') !== 'SIGTERM') problems.push('KillSignal is not SIGTERM');
  if (!/^\d+$/.test(one('TimeoutStopSec') ?? '')) problems.push('TimeoutStopSec is not a number of seconds');
  if (one('Restart') !== 'on-failure') problems.push('Restart is not on-failure');
  if (!/^\d+$/.test(one('LimitNOFILE') ?? '')) problems.push('LimitNOFILE is not set');

  for (const key of ['CapabilityBoundingSet', 'AmbientCapabilities']) if (one(key) !== 'CAP_NET_BIND_SERVICE') problems.push(`${key} is not exactly CAP_NET_BIND_SERVICE`);
  for (const key of ['NoNewPrivileges', 'PrivateTmp', 'ProtectHome']) if (one(key) !== 'yes' && one(key) !== 'true') problems.push(`${key} is not yes`);
  if (one('ProtectSystem') !== 'strict') problems.push('ProtectSystem is not strict');

  // What the documented configuration writes must be writable under ProtectSystem=strict.
  const writable = (service.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^-/, ''));
  const documented = configFile === undefined ? null : documentedConfig(deployMd, configFile);
  if (documented === null) problems.push(`docs/deploy.md has no \`\`\`yaml block starting "# ${configFile ?? '(config file)'}"`);
  else {
    let config: Config | null = null;
    try {
      config = loadDocumentedConfig(documented);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems.map((p) => `docs/deploy.md's ${configFile}: ${p}`));
    }
    if (config !== null) {
      for (const key of ['spool', 'mailboxes'] as const) {
        if (!writable.some((w) => config[key] === w || config[key].startsWith(`${w}/`))) problems.push(`${key} ${config[key]} is not in ReadWritePaths (${writable.join(' ')})`);
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// The tests: each check on the real files, then on a broken copy.

const files = {
  compose: read('docker-compose.yml'),
  dockerfile: read('Dockerfile'),
  dockerignore: read('.dockerignore'),
  unit: read('docs/ldapmta.service'),
  deploy: read('docs/deploy.md'),
};

test('1. docker-compose.yml parses and matches the schema of the compose keys it uses', () => {
  const compose = mustParseCompose(files.compose);
  assert.ok(compose.services.openldap && compose.services.redis, 'openldap and redis services');
  assert.ok(ldapmtaNodes(compose).length >= 2, 'two ldapmta nodes built from the Dockerfile');

  assertFound(parseCompose(files.compose.replace('    environment:\n      <<: *ldapmta-environment\n      LDAPMTA_HOSTNAME: mx2', '    enviroment:\n      <<: *ldapmta-environment\n      LDAPMTA_HOSTNAME: mx2')).problems, /services\.mx2.*enviroment/);
  assertFound(parseCompose(files.compose.replace('condition: service_healthy', 'condition: service_ready')).problems, /services\.mx1\.depends_on/);
  assertFound(parseCompose(files.compose.replace('  mx2-mail: {}\n', '')).problems, /named volume "mx2-mail" is not declared/);
  assertFound(parseCompose(files.compose.replace('image: redis:7', 'image: ${REDIS_IMAGE}')).problems, /no default/);
  assertFound(parseCompose(`${files.compose}\nservices: {}\n`).problems, /YAML/);
});

test('2. every LDAPMTA_* variable of every ldapmta node is a valid configuration, and the nodes fit the directory and each other', async () => {
  const compose = mustParseCompose(files.compose);
  const volumes = dockerfileVolumes(parseDockerfile(files.dockerfile));
  assertNone(await nodeProblems(compose, volumes));

  const problems: string[] = [];
  const nodes = nodeConfigs(compose, problems);
  assert.deepEqual(nodes.map((n) => n.config.hostname).sort(), ['mx1.example.org', 'mx2.example.org']);
  assert.equal(nodes.find((n) => n.service === 'mx1')?.config.directory.bindDN, 'cn=ldapmta,dc=example,dc=org', 'the read-only service account, not the admin');

  const broken = async (from: string, to: string) => {
    const { compose: changed } = parseCompose(files.compose.replace(from, to));
    assert.ok(changed);
    return nodeProblems(changed, volumes);
  };
  assertFound(await broken('LDAPMTA_DIRECTORY__BIND_DN:', 'LDAPMTA_DIRECTORY__BIND_DNN:'), /services\.mx1\.environment: directory\.bindDnn: unknown key/);
  assertFound(await broken('LDAPMTA_CACHE__REDIS: redis://redis:6379/0', 'LDAPMTA_CACHE__REDIS: redis//redis:6379/0'), /cache\.redis/);
  assertFound(await broken('LDAPMTA_HOSTNAME: mx2.example.org', 'LDAPMTA_HOSTNAME: mx1.example.org'), /share a hostname/);
  assertFound(await broken('LDAPMTA_HOSTNAME: mx2.example.org', 'LDAPMTA_HOSTNAME: mx3.example.org'), /mx3\.example\.org is no mailHost/);
  assertFound(await broken('mx2.example.org: "mx2:25"', 'mx2.example.org: "mx2:2525"'), /hostMap sends mx2\.example\.org to mx2:2525/);
  assertFound(await broken('LDAPMTA_DIRECTORY__BIND_PASSWORD: ldapmta-service', 'LDAPMTA_DIRECTORY__BIND_PASSWORD: secret'), /not the password of cn=ldapmta/);
  assertFound(await broken('[ldap://openldap:1389]', '[ldap://openldap:389]'), /listens on 1389/);
  assertFound(await broken('mx2-mail:/var/mail', 'mx1-mail:/var/mail'), /shared with/);
});

test('3. every host path the compose file mounts or builds from exists in the repository', () => {
  const compose = mustParseCompose(files.compose);
  assertNone(mountProblems(compose));
  assert.ok(mounts(compose.services.openldap!).some((m) => m.source === './schema/qmail.ldif'));
  assert.equal(mountedLdif(compose), './schema/sample-directory.ldif');

  assertFound(mountProblems(mustParseCompose(files.compose.replace('./schema/qmail.ldif:', './schema/qmail-ldap.ldif:'))), /qmail-ldap\.ldif does not exist/);
  assertFound(mountProblems(mustParseCompose(files.compose.replace('LDAP_CUSTOM_SCHEMA_FILE: /schema/qmail.ldif', 'LDAP_CUSTOM_SCHEMA_FILE: /schema/custom.ldif'))), /custom\.ldif is not mounted/);
});

test('4. the Dockerfile: two stages, not root, production dependencies, real COPY sources, mail ports; .dockerignore', () => {
  assertNone(dockerfileProblems(files.dockerfile, files.dockerignore));
  assert.equal(parseDockerfile(files.dockerfile).length, 2);

  const broken = (from: string | RegExp, to: string) => dockerfileProblems(files.dockerfile.replace(from, to), files.dockerignore);
  assertFound(broken('USER ldapmta:ldapmta', 'USER root'), /runs as root/);
  assertFound(broken('npm ci --omit=dev --ignore-scripts', 'npm ci --ignore-scripts'), /--omit=dev/);
  assertFound(broken('npm ci --omit=dev --ignore-scripts', 'npm ci --omit=dev'), /--ignore-scripts/);
  assertFound(broken('COPY config ./config', 'COPY configs ./config'), /COPY configs: not in the repository/);
  assertFound(broken('COPY tsconfig.json tsconfig.build.json ./', 'COPY tsconfig.build.json ./'), /does not copy tsconfig\.json/);
  assertFound(broken('EXPOSE 25 465 587', 'EXPOSE 465 587'), /EXPOSE lacks 25/);
  assertFound(broken('ENTRYPOINT ["node", "dist/cli.js"]', 'ENTRYPOINT ["node", "dist/main2.js"]'), /no src\/main2\.ts/);
  assertFound(broken(/^FROM node:20-bookworm-slim AS build$/m, 'FROM node:20-bookworm-slim AS compile'), /no such stage/);
  assertFound(broken('VOLUME ["/var/spool/ldapmta", "/var/mail"]', 'VOLUME ["/var/spool/ldapmta"]'), /VOLUME lacks \/var\/mail/);
  assertFound(dockerfileProblems(files.dockerfile, files.dockerignore.replace(/^node_modules$/m, '')), /does not exclude node_modules/);
  assertFound(dockerfileProblems(files.dockerfile, `${files.dockerignore}\nschema\n`), /COPY schema: excluded by \.dockerignore/);
});

test('5. docs/ldapmta.service: sections, user, ExecStart matching docs/deploy.md, reload by SIGHUP, writable spool and mail', () => {
  assertNone(unitProblems(files.unit, files.deploy));

  const broken = (from: string, to: string) => unitProblems(files.unit.replace(from, to), files.deploy);
  assertFound(broken('User=ldapmta', 'User=root'), /User=root/);
  assertFound(broken('[Install]', '[Instal]'), /no \[Install\]/);
  assertFound(broken('--config /etc/ldapmta/ldapmta.yaml', '--config /etc/ldapmta/config.yaml'), /never mentions the configuration file/);
  assertFound(broken('/usr/bin/node /opt', '/usr/local/bin/node /opt'), /never mentions node/);
  assertFound(broken('ExecReload=/bin/kill -HUP $MAINPID', 'ExecReload=/bin/kill -USR1 $MAINPID'), /SIGHUP/);
  assertFound(broken('ReadWritePaths=/var/spool/ldapmta /var/mail', 'ReadWritePaths=/var/spool/ldapmta'), /mailboxes \/var\/mail is not in ReadWritePaths/);
  assertFound(unitProblems(files.unit, files.deploy.replace('mailboxes: /var/mail\n', 'mailbox: /var/mail\n')), /mailbox: unknown key/);
});

test('5b. systemd-analyze verify finds nothing wrong in docs/ldapmta.service', () => {
  // systemd-analyze comes with Debian's systemd package; .ci/run installs it and test/run.mjs checks for it.
  // verify prints parse problems ("FILE:LINE: Unknown key ...") yet exits 0: the lines are what counts. A
  // missing /usr/bin/node is a problem only on a machine that has node there.
  const problems = (text: string): string[] => {
    const { file, stderr } = verifyUnit(text);
    return stderr.split('\n').filter((l) => l.startsWith(`${file}:`) || (existsSync('/usr/bin/node') && /not executable/.test(l)));
  };
  assertNone(problems(files.unit));
  assertFound(problems(files.unit.replace('ProtectSystem=strict', 'ProtectSystm=strict')), /Unknown key 'ProtectSystm'/);
});

test('6. the HEALTHCHECK is valid JavaScript and asks /healthz the way the configuration says', async () => {
  const { script, problems } = healthcheckScript(files.dockerfile);
  assertNone(problems);
  assert.ok(script !== null);
  assertFound(healthcheckScript(files.dockerfile.replace("'/healthz'", "'/healthz'}")).problems, /not valid JavaScript/);

  // It imports the built configuration module from the image's WORKDIR: run it on src/config.ts instead.
  const final = parseDockerfile(files.dockerfile).at(-1)!;
  const built = posix.join(workdir(final, Infinity), 'dist/config.js');
  assert.ok(script.includes(`import('${built}')`), `the script imports ${built}`);
  const local = script.replace(`import('${built}')`, `import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/config.ts')).href)})`);

  const queue = {} as QueueControl; // /healthz never touches the queue
  const open = await startAdmin({ host: '127.0.0.1', port: 0 }, { queue, token: '', log: silentLogger() });
  const guarded = await startAdmin({ host: '127.0.0.1', port: 0 }, { queue, token: 'health-token', log: silentLogger() });
  try {
    assert.equal((await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${open.port}` })).code, 0);
    assert.equal((await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: `:${guarded.port}`, LDAPMTA_ADMIN__TOKEN: 'health-token' })).code, 0, '0.0.0.0 is asked on loopback');
    assert.equal((await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${guarded.port}`, LDAPMTA_ADMIN__TOKEN: 'health-token' })).code, 0);
    const refused = await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${guarded.port}` });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /answered 401/);
    assert.equal((await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: '' })).code, 1, 'no admin listener: unhealthy');
  } finally {
    await open.close();
    await guarded.close();
  }
  assert.equal((await runHealthcheck(local, { LDAPMTA_LISTEN__ADMIN: `127.0.0.1:${open.port}` })).code, 1, 'nothing listening: unhealthy');
});

// ---------------------------------------------------------------------------------------------------------------

/** systemd-analyze verify on a copy of the unit; its standard error. */
function verifyUnit(text: string): { file: string; stderr: string } {
  const file = join(mkdtempSync(join(scratch, 'unit-')), 'ldapmta.service');
  writeFileSync(file, text);
  return { file, stderr: spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' }).stderr };
}

/** The healthcheck as Docker runs it: node -e SCRIPT with the container's environment, here with tsx for .ts. */
function runHealthcheck(script: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LDAPMTA_')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
