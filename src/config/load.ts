import { readFile } from 'node:fs/promises';
import { load as parseYaml, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { withHttpsProbeCertificates } from './derived.js';
import { configSchema, type Config } from './schema.js';

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

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map(
        (k) => `${formatPath([...issue.path, k])}: unknown key; check its spelling and indentation`,
      )
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

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Validates an already-parsed document; throws ConfigError naming every wrong field. */
export function parseConfig(doc: unknown, file = 'config'): Config {
  // An empty YAML file parses to undefined (or null): that means "all defaults".
  const result = configSchema().safeParse(doc ?? {}, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.flatMap((i) => describeIssue(i).split('\n'));
    throw new ConfigError(file, problems);
  }
  return withHttpsProbeCertificates(result.data as Config);
}

export function parseConfigText(text: string, file = 'config'): Config {
  // js-yaml 5 rejects a document with no content; for lookout it means "all defaults".
  const hasContent = text.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (!hasContent) return parseConfig({}, file);
  let doc: unknown;
  try {
    doc = parseYaml(text, { filename: file });
  } catch (err) {
    if (err instanceof YAMLException) {
      const line = err.mark ? `line ${err.mark.line + 1}, column ${err.mark.column + 1}: ` : '';
      throw new ConfigError(file, [`${line}invalid YAML: ${err.reason}`]);
    }
    throw err;
  }
  return parseConfig(doc, file);
}

/** Reads and validates a config file; no file given means embedded defaults. */
export async function loadConfig(file: string | undefined): Promise<Config> {
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
  return parseConfigText(text, file);
}
