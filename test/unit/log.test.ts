// The root logger's options: levels per component (a component's child and its own children follow
// the component's level, others the root's), pretty text instead of JSON, redaction in both, and
// the list of component names in the config schema kept equal to the components src/ logs as.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { LOG_COMPONENTS, validateConfig } from '../../src/config.ts';
import { createLogger, wantsPretty, type LogOptions } from '../../src/log.ts';
import { REPO_ROOT } from '../harness/slapd.ts';

function capture(options: Omit<LogOptions, 'destination'>) {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { log: createLogger({ ...options, destination }), text: () => chunks.join('') };
}

test('log.components: a component\'s logger (and its children) take its level; the others keep the root level', () => {
  const { log, text } = capture({ level: 'info', components: { directory: 'debug', smtp: 'error' } });
  const directory = log.child({ component: 'directory' });
  directory.debug('directory detail');
  directory.child({ sessionId: 's1' }).debug('nested detail');
  log.child({ component: 'smtp' }).warn('smtp warning');
  log.child({ component: 'queue' }).debug('queue detail');
  log.child({ component: 'queue' }).info('queue info');
  const messages = text().trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.deepEqual(messages, ['directory detail', 'nested detail', 'queue info']);
});

test('pretty output is one readable line per entry, still redacted; auto means pretty only on a terminal', () => {
  const { log, text } = capture({ level: 'info', pretty: true });
  log.child({ component: 'smtp' }).info({ queueId: '01k90ucons0000eguk0v', password: 'hunter2' }, 'received');
  const out = text();
  assert.doesNotMatch(out, /^\{/, 'not JSON');
  assert.match(out, /INFO.*received/);
  assert.match(out, /"component":"smtp","queueId":"01k90ucons0000eguk0v"/);
  assert.doesNotMatch(out, /hunter2/);
  assert.match(out, /\[redacted\]/);
  assert.equal(wantsPretty('auto', true), true);
  assert.equal(wantsPretty('auto', false), false);
  assert.equal(wantsPretty('json', true), false);
  assert.equal(wantsPretty('pretty', false), true);
});

test('log.components accepts only the components src/ logs as, and every one of those is listed', () => {
  assert.deepEqual(validateConfig({ log: { components: { directory: 'debug' } } }).log.components, { directory: 'debug' });
  assert.throws(() => validateConfig({ log: { components: { smpt: 'debug' } } }), /log\.components/);
  const used = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const source = readFileSync(path, 'utf8');
        for (const m of source.matchAll(/component: '([a-z0-9-]+)'/g)) used.add(m[1]!);
        for (const m of source.matchAll(/component: [^,}]*\? '([a-z0-9-]+)' : '?([a-z0-9-]+)'?/g)) [m[1]!, m[2]!].forEach((c) => used.add(c));
      }
    }
  };
  walk(join(REPO_ROOT, 'src'));
  used.delete('mode'); // the SMTP listener's component is its mode: smtp, submission, submissions
  for (const c of used) assert.ok((LOG_COMPONENTS as readonly string[]).includes(c), `component ${c} is logged but not configurable`);
  for (const c of ['imap', 'imaps', 'pop3', 'pop3s', 'directory', 'queue', 'deliver', 'admin']) assert.ok(used.has(c), `${c} found in src/`);
});
