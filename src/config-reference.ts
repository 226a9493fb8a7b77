// The configuration reference, generated from configSchema so that it cannot drift from it: every
// leaf key in dotted form with its type and default, as Markdown. docs/config-reference.md is this
// module's output (`npx tsx src/config-reference.ts > docs/config-reference.md`), and a unit test
// keeps the two equal. What each key means is written by hand in docs/configuration.md.
//
// The schema is walked through zod 4's definitions (`schema._zod.def`) rather than
// z.toJSONSchema(configSchema, { io: 'input' }): that would evaluate the computed default of
// `hostname` (this machine's name, so the file would differ between machines) and drop the
// messages of .refine() checks ("expected a domain name"), which say what a value must look like.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema } from './config.ts';

type Schema = z.core.$ZodType;

/**
 * Defaults given as a function (.default(() => …)): never called here, since the output would then
 * depend on the machine; this text stands in for the value. Keyed by dotted key.
 */
const COMPUTED_DEFAULTS: Record<string, string> = {
  hostname: "computed: the system's host name, lower-cased",
};

/**
 * What an unset key, or one left at its default, falls back to where the schema cannot say it (the
 * code decides at start-up); shown in parentheses after the default. Only fallbacks that
 * src/config.ts itself names as the default are listed. A key inside a map's values is written with
 * `*` for the map key.
 */
const DEFAULT_NOTES: Record<string, string> = {
  'directory.attributes.mailHost': "the profile's",
  'directory.attributes.forward': "the profile's",
  'directory.attributes.keepCopy': "the profile's",
  'directory.attributes.quotaSize': "the profile's",
  'directory.attributes.quotaCount': "the profile's",
  'directory.attributes.sizeMax': "the profile's",
  'directory.resolution.domains.*.mode': '`directory.resolution.mode`',
  'directory.resolution.domains.*.dashExt': '`directory.resolution.dashExt`',
  'directory.resolution.domains.*.recipientDelimiter': '`directory.resolution.recipientDelimiter`',
  'directory.auth.method': 'computed: `bind` for profile `ad`, else `hash`',
  'delivery.clusterPort': 'computed: `delivery.remotePort`',
  'delivery.heloName': 'computed: `hostname`',
  'srs.domain': 'computed: `hostname`',
};

/** The parts of a zod 4 definition this module reads; which are present depends on `type`. */
interface Def {
  type: string;
  innerType?: Schema;
  in?: Schema;
  shape?: Record<string, Schema>;
  element?: Schema;
  keyType?: Schema;
  valueType?: Schema;
  options?: readonly Schema[];
  items?: readonly Schema[];
  entries?: Record<string, string | number>;
  values?: readonly unknown[];
  checks?: readonly z.core.$ZodCheck[];
  readonly defaultValue?: unknown;
  getter?: () => Schema;
}

interface CheckDef {
  check: string;
  value?: unknown;
  inclusive?: boolean;
  minimum?: number;
  maximum?: number;
  length?: number;
  format?: string;
  pattern?: RegExp;
  error?: (issue: never) => unknown;
}

function defOf(schema: Schema): Def {
  return schema._zod.def as unknown as Def;
}

/** What a schema node looks like once its wrappers (default, optional, transform, …) are peeled off. */
interface Unwrapped {
  core: Schema;
  /** The literal default, if a .default() wraps the node (`has` tells an undefined default apart). */
  defaultValue: { has: false } | { has: true; value: unknown };
  optional: boolean;
}

/**
 * Peel wrappers off, outermost first, reading the input side of pipes (`.transform()`), since the
 * reference describes what is written in the file. The value of a .default() is read only when
 * `readDefault`: a computed default must not be evaluated (the output would depend on the machine).
 */
function unwrap(schema: Schema, readDefault: boolean): Unwrapped {
  let node = schema;
  let defaultValue: Unwrapped['defaultValue'] = { has: false };
  let optional = false;
  for (;;) {
    const def = defOf(node);
    if (def.type === 'default' && def.innerType) {
      if (!defaultValue.has && readDefault) defaultValue = { has: true, value: def.defaultValue };
      node = def.innerType;
    } else if (def.type === 'prefault' && def.innerType) {
      // prefault({}) on an object: its keys' own defaults say it all.
      node = def.innerType;
    } else if ((def.type === 'optional' || def.type === 'nullable') && def.innerType) {
      optional = true;
      node = def.innerType;
    } else if ((def.type === 'nonoptional' || def.type === 'readonly' || def.type === 'catch') && def.innerType) {
      node = def.innerType;
    } else if (def.type === 'pipe' && def.in) {
      node = def.in;
    } else if (def.type === 'lazy' && def.getter) {
      node = def.getter();
    } else {
      return { core: node, defaultValue, optional };
    }
  }
}

function isObject(schema: Schema): boolean {
  return defOf(unwrap(schema, false).core).type === 'object';
}

/** The message a check reports ("expected a domain name"), if it was given one. */
function checkMessage(check: CheckDef): string | null {
  if (typeof check.error !== 'function') return null;
  try {
    const message = check.error({} as never);
    if (typeof message === 'string' && message !== '') return message;
    if (message !== null && typeof message === 'object' && 'message' in message && typeof message.message === 'string') return message.message;
  } catch {
    // A message built from the issue itself: fall back to the check's own parameters.
  }
  return null;
}

function checkDefs(def: Def): CheckDef[] {
  return (def.checks ?? []).map((c) => c._zod.def as unknown as CheckDef);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Constraints of a string, array or number: "non-empty", "expected a domain name", "min 1, max 1000". */
function constraints(def: Def, unit: string): string[] {
  const out: string[] = [];
  for (const check of checkDefs(def)) {
    switch (check.check) {
      case 'min_length':
        out.push(check.minimum === 1 ? 'non-empty' : `at least ${plural(check.minimum ?? 0, unit)}`);
        break;
      case 'max_length':
        out.push(`at most ${plural(check.maximum ?? 0, unit)}`);
        break;
      case 'length_equals':
        out.push(`exactly ${plural(check.length ?? 0, unit)}`);
        break;
      case 'greater_than':
        out.push(`${check.inclusive ? 'min' : '>'} ${String(check.value)}`);
        break;
      case 'less_than':
        out.push(`${check.inclusive ? 'max' : '<'} ${String(check.value)}`);
        break;
      case 'multiple_of':
        out.push(`multiple of ${String(check.value)}`);
        break;
      case 'number_format':
        break; // .int(): said by the type name
      case 'string_format':
        out.push(checkMessage(check) ?? (check.format === 'regex' && check.pattern ? `matching ${String(check.pattern)}` : `format ${check.format ?? '?'}`));
        break;
      case 'custom':
        out.push(checkMessage(check) ?? 'checked by a custom rule');
        break;
      default:
        out.push(checkMessage(check) ?? check.check);
    }
  }
  return out;
}

function withConstraints(base: string, notes: string[]): string {
  return notes.length === 0 ? base : `${base} (${notes.join('; ')})`;
}

/** One value's type in words: string, integer (min 1), boolean, one of "a" | "b", list of …, map of …. */
function describeType(schema: Schema): string {
  const { core } = unwrap(schema, false);
  const def = defOf(core);
  switch (def.type) {
    case 'string':
      return withConstraints('string', constraints(def, 'character'));
    case 'number': {
      const integer = checkDefs(def).some((c) => c.check === 'number_format' && /int/.test(c.format ?? ''));
      return withConstraints(integer ? 'integer' : 'number', constraints(def, ''));
    }
    case 'boolean':
      return 'boolean';
    case 'enum':
      return `one of ${Object.values(def.entries ?? {}).map((v) => JSON.stringify(v)).join(' | ')}`;
    case 'literal':
      return (def.values ?? []).map((v) => JSON.stringify(v)).join(' | ');
    case 'union':
      return (def.options ?? []).map((o) => describeType(o)).join(' or ');
    case 'array': {
      const element = def.element ? describeType(def.element) : 'anything';
      const bounds = constraints(def, 'item');
      return `list of ${grouped(def.element, element)}${bounds.length > 0 ? `, ${bounds.join(', ')}` : ''}`;
    }
    case 'record': {
      const key = def.keyType ? describeType(def.keyType) : 'string';
      const value = def.valueType ? (isObject(def.valueType) ? 'object (fields below)' : describeType(def.valueType)) : 'anything';
      return `map of ${grouped(def.keyType, key)} → ${grouped(def.valueType, value)}`;
    }
    case 'object':
      return 'object';
    case 'tuple':
      return `list of exactly ${(def.items ?? []).map((i) => describeType(i)).join(', ')}`;
    case 'transform':
      return 'anything (transformed)';
    default:
      return def.type;
  }
}

/** Parenthesise a choice inside another type ("list of (one of "a" | "b")"). */
function grouped(schema: Schema | undefined, text: string): string {
  if (schema === undefined) return text;
  const def = defOf(unwrap(schema, false).core);
  const choice = def.type === 'enum' || def.type === 'union' || (def.type === 'literal' && (def.values ?? []).length > 1);
  return choice ? `(${text})` : text;
}

/** A default as YAML text: `""`, `[]`, `{}`, `[a, b]`, quoted only where YAML needs it. */
function yamlText(value: unknown): string {
  if (value === undefined) return '~';
  return stringifyYaml(value, { collectionStyle: 'flow', flowCollectionPadding: false, lineWidth: 0 }).trimEnd();
}

/** Text outside code spans: keep Markdown from reading it as emphasis, HTML or a cell border. */
function escapeText(text: string): string {
  return text.replace(/[\\`*_<|]/g, (c) => `\\${c}`);
}

/** A code span in a table cell; a `|` still ends the cell unless escaped. */
function code(text: string): string {
  const fence = text.includes('`') ? '`` ' : '`';
  const close = text.includes('`') ? ' ``' : '`';
  return `${fence}${text.replace(/\|/g, '\\|')}${close}`;
}

interface Row {
  key: string;
  type: string;
  default: string;
}

interface Walk {
  /** Rows per top-level key, in schema order. */
  sections: { name: string; rows: Row[]; maps: { key: string; rows: Row[] }[] }[];
  usedNotes: Set<string>;
}

function row(key: string, noteKey: string, schema: Schema, walk: Walk): Row {
  const computed = COMPUTED_DEFAULTS[noteKey];
  const note = DEFAULT_NOTES[noteKey];
  if (computed !== undefined) walk.usedNotes.add(noteKey);
  if (note !== undefined) walk.usedNotes.add(noteKey);
  const { defaultValue, optional } = unwrap(schema, computed === undefined);
  let text: string;
  if (computed !== undefined) text = computed;
  else if (defaultValue.has) text = code(yamlText(defaultValue.value));
  else if (optional) text = 'unset';
  else text = 'required';
  if (note !== undefined) text += ` (${note})`;
  return { key, type: escapeText(describeType(schema)), default: text };
}

/** The leaves below `schema` (an object's keys, recursively), in schema order. */
function leaves(prefix: string, schema: Schema): { key: string; schema: Schema }[] {
  const { core } = unwrap(schema, false);
  const def = defOf(core);
  if (def.type !== 'object' || !def.shape) return [{ key: prefix, schema }];
  return Object.entries(def.shape).flatMap(([name, child]) => leaves(prefix === '' ? name : `${prefix}.${name}`, child));
}

function walkSchema(): Walk {
  const walk: Walk = { sections: [], usedNotes: new Set() };
  const shape = defOf(configSchema).shape ?? {};
  for (const [name, child] of Object.entries(shape)) {
    const section: Walk['sections'][number] = { name, rows: [], maps: [] };
    for (const leaf of leaves(name, child)) {
      section.rows.push(row(leaf.key, leaf.key, leaf.schema, walk));
      // A map whose values are objects gets a table of those objects' fields.
      const def = defOf(unwrap(leaf.schema, false).core);
      if (def.type === 'record' && def.valueType && isObject(def.valueType)) {
        const rows = leaves('', def.valueType).map((field) => row(field.key, `${leaf.key}.*.${field.key}`, field.schema, walk));
        section.maps.push({ key: leaf.key, rows });
      }
    }
    walk.sections.push(section);
  }
  const unused = [...Object.keys(COMPUTED_DEFAULTS), ...Object.keys(DEFAULT_NOTES)].filter((k) => !walk.usedNotes.has(k));
  if (unused.length > 0) {
    throw new Error(`src/config-reference.ts: COMPUTED_DEFAULTS or DEFAULT_NOTES name keys the schema does not have: ${unused.join(', ')}`);
  }
  return walk;
}

/** Every leaf key of the configuration, dotted (`directory.ad.disabledAs`), in schema order. */
export function configKeys(): string[] {
  return leaves('', configSchema).map((leaf) => leaf.key);
}

function table(first: string, rows: Row[]): string[] {
  return [
    `| ${first} | type | default |`,
    '|---|---|---|',
    ...rows.map((r) => `| ${code(r.key)} | ${r.type} | ${r.default} |`),
  ];
}

/** The whole reference as Markdown, header included; docs/config-reference.md is exactly this. */
export function renderConfigReference(): string {
  const walk = walkSchema();
  const lines: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated file: do not edit. Regenerate with: npx tsx src/config-reference.ts > docs/config-reference.md -->',
    '',
    'This file is generated from the configuration schema (`configSchema` in src/config.ts) by',
    '`npx tsx src/config-reference.ts > docs/config-reference.md`, and a unit test fails when it is out of',
    'date, so it always lists every key ldapmta accepts, with its type and default. What each key means,',
    'and how keys are set from the environment or from secret files, is explained in docs/configuration.md.',
    '',
    'Keys are written in dotted form: `directory.ad.disabledAs` is `disabledAs` inside `ad` inside',
    '`directory` in the YAML file. Defaults are written as YAML. "unset" means the key has no default and',
    'may be left out; "computed" means the value is worked out at start-up, from the system or from the',
    'key named.',
    '',
    `Sections: ${walk.sections.map((s) => `[${s.name}](#${s.name.toLowerCase()})`).join(', ')}.`,
  ];
  for (const section of walk.sections) {
    lines.push('', `## ${code(section.name)}`, '', ...table('key', section.rows));
    for (const map of section.maps) {
      lines.push('', `Each value of ${code(map.key)} has these fields:`, '', ...table('field', map.rows));
    }
  }
  return `${lines.join('\n')}\n`;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) {
  process.stdout.write(renderConfigReference());
}
