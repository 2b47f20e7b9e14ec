import { readFile } from 'node:fs/promises';
import { load as parseYaml, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { configSchema, type CollectorSchemas, type Config } from './schema.js';
import { resolveStoragePath } from '../lib/storage.js';

/** A config that cannot be used; `problems` holds one line per wrong field. */
export class ConfigError extends Error {
  readonly code = 'LOOKOUT_CONFIG_INVALID';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
  }
}

/** `collectors.probes.targets[2].timeout` from zod's path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue, schema: z.core.$ZodType, doc: unknown): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schema, doc, issue.path);
    return issue.keys
      .map((k) => {
        const near = nearestKey(k, known);
        const fix =
          near === undefined ? 'check its spelling and indentation' : `did you mean ${near}?`;
        return `${formatPath([...issue.path, k])}: unknown key; ${fix}`;
      })
      .join('\n');
  }
  if (issue.code === 'invalid_type') {
    const got = 'input' in issue ? describeValue(issue.input) : 'something else';
    return `${where}: expected ${issue.expected}, got ${got}`;
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${where}: ${issue.message}`;
}

/**
 * The schemas `value` may be checked against at this point, past the wrappers (defaults,
 * optionals, pipes): a union gives the option its discriminator picks in `value`, or
 * every option when none is picked.
 */
function resolve(schema: z.core.$ZodType, value: unknown): z.core.$ZodType[] {
  const def = schema._zod.def;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return resolve((def as z.core.$ZodOptionalDef).innerType, value);
    case 'pipe':
      return resolve((def as z.core.$ZodPipeDef).in, value);
    case 'lazy':
      return resolve((def as z.core.$ZodLazyDef).getter(), value);
    case 'union': {
      const options = (def as z.core.$ZodUnionDef).options.flatMap((o) => resolve(o, value));
      const discriminator = (def as Partial<z.core.$ZodDiscriminatedUnionDef>).discriminator;
      if (discriminator === undefined || !isMapping(value)) return options;
      const picked = options.filter((o) =>
        literalValues(o, discriminator).includes(value[discriminator]),
      );
      return picked.length > 0 ? picked : options;
    }
    default:
      return [schema];
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The values an object schema's `key` is a literal of (a target's `kind`). */
function literalValues(schema: z.core.$ZodType, key: string): unknown[] {
  if (schema._zod.def.type !== 'object') return [];
  const field = (schema._zod.def as z.core.$ZodObjectDef).shape[key];
  if (field === undefined) return [];
  return resolve(field, undefined).flatMap((f) =>
    f._zod.def.type === 'literal'
      ? (f._zod.def as z.core.$ZodLiteralDef<z.core.util.Literal>).values
      : [],
  );
}

/** The schema one step down: a mapping's key, a list's item. */
function child(schema: z.core.$ZodType, key: PropertyKey): z.core.$ZodType | undefined {
  const def = schema._zod.def;
  if (def.type === 'object' && typeof key === 'string')
    return (def as z.core.$ZodObjectDef).shape[key];
  if (def.type === 'array' && typeof key === 'number') return (def as z.core.$ZodArrayDef).element;
  if (def.type === 'record') return (def as z.core.$ZodRecordDef).valueType;
  return undefined;
}

/** The keys the config knows where `path` leads in `doc`: what an unknown key there could have meant. */
function knownKeys(schema: z.core.$ZodType, doc: unknown, path: readonly PropertyKey[]): string[] {
  let here = resolve(schema, doc);
  let value = doc;
  for (const key of path) {
    value =
      isMapping(value) || Array.isArray(value)
        ? (value as Record<PropertyKey, unknown>)[key]
        : undefined;
    here = here.flatMap((s) => {
      const next = child(s, key);
      return next === undefined ? [] : resolve(next, value);
    });
  }
  const keys = here.flatMap((s) =>
    s._zod.def.type === 'object' ? Object.keys((s._zod.def as z.core.$ZodObjectDef).shape) : [],
  );
  return [...new Set(keys)];
}

/** Edits (insert, delete, change, swap two neighbours) between two strings. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

/**
 * The known key an unknown one most likely meant: the same but for case, `_` and `-`
 * (`servername`, `Server-Name`), else the closest within a third of its length in edits
 * (`listen_adress`, `timout`). None when nothing is that close: a wrong guess misleads.
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const squash = (k: string) => k.toLowerCase().replace(/[_-]/g, '');
  const same = known.find((k) => squash(k) === squash(key));
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const n = distance(key.toLowerCase(), k.toLowerCase());
    if (n < bestDistance) {
      best = k;
      bestDistance = n;
    }
  }
  return best;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * What the config needs to know of the collectors: each one's block, and what one
 * block implies for another (applied after validation). src/collectors/config.ts gives
 * lookout's; the config layer imports no collector.
 */
/** A YAML document parsed; a syntax error is a ConfigError naming the file, line and column. */
export function parseYamlDocument(text: string, file: string): unknown {
  try {
    return parseYaml(text, { filename: file });
  } catch (err) {
    if (err instanceof YAMLException) {
      const line = err.mark ? `line ${err.mark.line + 1}, column ${err.mark.column + 1}: ` : '';
      throw new ConfigError(file, [`${line}invalid YAML: ${err.reason}`]);
    }
    throw err;
  }
}

export interface ConfigCatalogue {
  collectors: CollectorSchemas;
  derive?(config: Config): Config;
}

export interface ConfigLoader {
  /** Validates an already-parsed document; throws ConfigError naming every wrong field. */
  parseConfig(doc: unknown, file?: string): Config;
  parseConfigText(text: string, file?: string): Config;
  /** Reads and validates a config file; no file given means embedded defaults. */
  loadConfig(file: string | undefined): Promise<Config>;
}

export function configLoader(catalogue: ConfigCatalogue): ConfigLoader {
  const parseConfig = (doc: unknown, file = 'config'): Config => {
    // An empty YAML file parses to undefined (or null): that means "all defaults".
    const input = doc ?? {};
    const schema = configSchema(catalogue.collectors);
    const result = schema.safeParse(input, { reportInput: true });
    if (!result.success) {
      const problems = result.error.issues.flatMap((i) =>
        describeIssue(i, schema, input).split('\n'),
      );
      throw new ConfigError(file, problems);
    }
    const config = result.data as Config;
    return catalogue.derive ? catalogue.derive(config) : config;
  };

  const parseConfigText = (text: string, file = 'config'): Config => {
    // js-yaml 5 rejects a document with no content; for lookout it means "all defaults".
    const hasContent = text.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    if (!hasContent) return parseConfig({}, file);
    return parseConfig(parseYamlDocument(text, file), file);
  };

  const loadConfig = async (file: string | undefined): Promise<Config> => {
    if (file === undefined) return parseConfig({}, 'defaults');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? 'no such file; check the --config path'
          : code === 'EACCES'
            ? 'permission denied; make it readable by the lookout user'
            : code === 'EISDIR'
              ? 'is a directory; point --config at a YAML file'
              : `cannot be read (${code ?? String(err)})`;
      throw new ConfigError(file, [why]);
    }
    const config = parseConfigText(text, file);
    // A relative storage.path means beside the config file, whoever reads it and from
    // wherever it is run.
    config.storage.path = resolveStoragePath(config.storage.path, { configFile: file });
    return config;
  };

  return { parseConfig, parseConfigText, loadConfig };
}
