// The generated configuration reference: docs/config-reference.md is up to date with the schema,
// every key of the schema is explained in docs/configuration.md, and known defaults read right.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { configKeys, renderConfigReference } from '../../src/config-reference.ts';

const root = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

test('docs/config-reference.md is exactly what renderConfigReference() produces', () => {
  const rendered = renderConfigReference();
  const file = read('docs/config-reference.md');
  const ours = file.split('\n');
  const theirs = rendered.split('\n');
  const line = ours.findIndex((l, i) => l !== theirs[i]);
  const where = line === -1 ? `it should end at line ${ours.length}` : `line ${line + 1} should read: ${theirs[line] ?? '(end of file)'}`;
  assert.ok(file === rendered, `docs/config-reference.md is out of date with src/config.ts (${where}); regenerate it with:\n  npx tsx src/config-reference.ts > docs/config-reference.md`);
});

/**
 * The keys docs/configuration.md explains. The rule:
 *   1. a full dotted key in backticks anywhere (`smtp.tls.cert`, `dkim.domains` in prose) counts;
 *   2. in a table row, a short name in backticks in the first cell counts as PREFIX.name, where
 *      PREFIX is a backticked name in the nearest heading above (rows `mode`, `dashExt` under
 *      "#### `directory.resolution`") or the parent of a dotted key earlier in the same cell
 *      (`directory.attributes.mailHost` / `forward` / `keepCopy` makes `directory.attributes.forward`).
 */
function documentedKeys(markdown: string): Set<string> {
  const found = new Set<string>();
  const ticked = (text: string): string[] => [...text.matchAll(/`([^`\s]+)`/g)].map((m) => m[1]!);
  for (const name of ticked(markdown)) found.add(name);
  let headingNames: string[] = [];
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) continue;
    if (/^#{1,6} /.test(line)) {
      headingNames = ticked(line);
      continue;
    }
    if (!line.startsWith('|')) continue;
    const firstCell = line.split('|')[1] ?? '';
    const names = ticked(firstCell);
    const parents = names.filter((n) => n.includes('.')).map((n) => n.slice(0, n.lastIndexOf('.')));
    for (const name of names) {
      for (const prefix of [...headingNames, ...parents]) found.add(`${prefix}.${name}`);
    }
  }
  return found;
}

test('every configuration key is explained in docs/configuration.md', () => {
  const documented = documentedKeys(read('docs/configuration.md'));
  const missing = configKeys().filter((key) => !documented.has(key));
  assert.deepEqual(missing, [], `keys of src/config.ts not explained in docs/configuration.md (add a row to its tables, as \`key\` in backticks):\n  ${missing.join('\n  ')}`);
});

test('the documentation rule finds short keys under a heading and after a dotted key in the same cell', () => {
  const documented = documentedKeys([
    '#### `directory.resolution`: how',
    '| key | default |',
    '|---|---|',
    '| `mode` | `qmail` |',
    '### `directory`',
    '| `directory.embedded.host` / `port` | `127.0.0.1` / `0` |',
    'Prose naming `dkim.domains`.',
  ].join('\n'));
  for (const key of ['directory.resolution.mode', 'directory.embedded.host', 'directory.embedded.port', 'dkim.domains']) {
    assert.ok(documented.has(key), key);
  }
  assert.ok(!documented.has('directory.qmail'), 'a default cell is not a key');
});

/** The row of `key` in the reference, split into its cells: [key, type, default]. */
function row(markdown: string, key: string): string[] {
  const line = markdown.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
  assert.ok(line, `no row for ${key}`);
  return line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
}

test('known keys have the right type and default', () => {
  const md = renderConfigReference();
  assert.deepEqual(row(md, 'smtp.maxMessageSize'), ['`smtp.maxMessageSize`', 'integer (min 1024)', '`26214400`']);
  assert.deepEqual(row(md, 'directory.profile'), ['`directory.profile`', 'one of "qmail" \\| "inetorgperson" \\| "ad"', '`qmail`']);
  assert.equal(row(md, 'listen.admin')[2], '`127.0.0.1:8025`');
  assert.equal(row(md, 'listen.pop3s')[2], '`""`');
  assert.equal(row(md, 'directory.urls')[2], '`[]`');
  assert.equal(row(md, 'directory.aliasDomains')[2], '`{}`');
  assert.equal(row(md, 'localDomains')[2], '`[example.org, example.net]`');
  assert.equal(row(md, 'relay.trustedNetworks')[2], '`[127.0.0.0/8, ::1/128]`');
  assert.equal(row(md, 'directory.pageSize')[1], 'integer (min 1; max 1000)');
  assert.equal(row(md, 'directory.timeoutMs')[1], 'integer (> 0; max 120000)');
  assert.equal(row(md, 'directory.tls.verify').slice(1).join(' '), 'boolean `true`');
  assert.match(row(md, 'directory.ad.loginBy')[1]!, /^list of \(one of "sAMAccountName" \\\| "userPrincipalName" \\\| "mail"\), non-empty$/);
  assert.match(row(md, 'delivery.hostMap')[1]!, /^map of .* → string \(expected "host:port"\)$/);
  // Computed and optional defaults are said in words, never evaluated on this machine.
  assert.match(row(md, 'hostname')[2]!, /^computed: the system's host name/);
  assert.equal(row(md, 'delivery.clusterPort')[2], 'unset (computed: `delivery.remotePort`)');
  assert.equal(row(md, 'delivery.heloName')[2], '`""` (computed: `hostname`)');
  assert.equal(row(md, 'directory.attributes.mailHost')[2], "unset (the profile's)");
});

test('configKeys() lists every leaf in dotted form, and nothing that is a section', () => {
  const keys = configKeys();
  for (const key of ['hostname', 'listen.admin', 'directory.ad.disabledAs', 'directory.resolution.domains', 'dkim.domains', 'smtp.tls.key', 'log.level']) {
    assert.ok(keys.includes(key), key);
  }
  for (const section of ['listen', 'directory', 'directory.ad', 'smtp.tls']) assert.ok(!keys.includes(section), section);
  assert.equal(new Set(keys).size, keys.length);
  // One section per top-level key, and a row per leaf.
  const md = renderConfigReference();
  for (const top of new Set(keys.map((k) => k.split('.')[0]!))) assert.ok(md.includes(`\n## \`${top}\`\n`), top);
  for (const key of keys) row(md, key);
});
