/**
 * The one reader of `/metrics` text for tests and the bench: the Prometheus text format
 * (0.0.4) and OpenMetrics 1.0, parsed into families of samples. Strict where a sloppy
 * reader would hide a bug in lookout's output: a line it cannot read, a second HELP or
 * TYPE for one family, the same series twice, or anything after `# EOF` is an error that
 * names the line.
 *
 * Not handled (lookout does not emit them): OpenMetrics exemplars and native histograms.
 */

export interface Sample {
  /** The sample's own name: `x_bucket`, `x_total`, not the family's. */
  name: string;
  /** In the order written. */
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, from either format (OpenMetrics writes seconds). */
  timestampMs?: number;
  /** The line as written, for comparing exposition text exactly. */
  line: string;
}

export interface Family {
  name: string;
  /** As written in `# TYPE`; `untyped` when there is none. */
  type: string;
  help?: string;
  unit?: string;
  samples: Sample[];
}

/** Either the text or what parseExposition made of it. */
export type Exposition = string | readonly Family[];

export class ExpositionError extends Error {
  constructor(lineNo: number, line: string, why: string) {
    super(`exposition line ${lineNo}: ${why}: ${JSON.stringify(line)}`);
    this.name = 'ExpositionError';
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The suffixes a family's samples may carry beyond its name, by type. */
const SUFFIXES: Record<string, readonly string[]> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  info: ['_info'],
};

/** A float as Go's ParseFloat reads it in both formats: decimal, NaN, ±Inf. */
function parseFloatToken(token: string): number | undefined {
  const lower = token.toLowerCase();
  if (lower === 'nan') return NaN;
  if (/^\+?inf(inity)?$/.test(lower)) return Infinity;
  if (/^-inf(inity)?$/.test(lower)) return -Infinity;
  return DECIMAL.test(token) ? Number(token) : undefined;
}

function unescapeHelp(text: string): string {
  return text.replace(/\\([\\n])/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

/** Reads `{a="1",b="x\"y"}` starting at `line[at] === '{'`; returns the labels and where it ended. */
function readLabels(
  line: string,
  at: number,
  fail: (why: string) => never,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1;
  const skipSpace = () => {
    while (line[i] === ' ' || line[i] === '\t') i++;
  };
  for (;;) {
    skipSpace();
    if (line[i] === '}') return { labels, end: i + 1 };
    const name = LABEL_NAME.exec(line.slice(i))?.[0];
    if (!name) fail('expected a label name or "}"');
    i += name.length;
    skipSpace();
    if (line[i] !== '=') fail(`expected "=" after label ${name}`);
    i++;
    skipSpace();
    if (line[i] !== '"') fail(`expected a quoted value for label ${name}`);
    i++;
    let value = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) fail(`unterminated value for label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = line[i + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else fail(`unknown escape \\${next ?? ''} in label ${name}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    if (Object.hasOwn(labels, name)) fail(`label ${name} given twice`);
    labels[name] = value;
    skipSpace();
    if (line[i] === ',') i++;
    else if (line[i] !== '}') fail(`expected "," or "}" after label ${name}`);
  }
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const pairs = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([name, pairs]);
}

/**
 * Parses exposition text. OpenMetrics is recognised by its `# EOF` line; its timestamps
 * (seconds) are turned into milliseconds like the text format's.
 */
export function parseExposition(text: string): Family[] {
  const families: Family[] = [];
  const byName = new Map<string, Family>();
  const seen = new Set<string>();
  const withMeta = new Map<string, Set<string>>();
  let current: Family | undefined;
  let openMetrics = false;
  // Timestamps wait for the end: only `# EOF` tells OpenMetrics' seconds from milliseconds.
  const timestamps: Array<[Sample, number, number]> = [];

  const family = (name: string): Family => {
    let f = byName.get(name);
    if (!f) {
      f = { name, type: 'untyped', samples: [] };
      byName.set(name, f);
      families.push(f);
    }
    return f;
  };
  const belongs = (f: Family, name: string): boolean =>
    name === f.name || (SUFFIXES[f.type] ?? []).some((s) => name === f.name + s);

  const lines = text.split('\n');
  // A final newline ends the last line; it does not start an empty one.
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    // Annotated so that TypeScript narrows after a call to it.
    const fail: (why: string) => never = (why) => {
      throw new ExpositionError(lineNo, line, why);
    };
    if (openMetrics) fail('nothing may follow # EOF');
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      if (line === '# EOF') {
        openMetrics = true;
        return;
      }
      const meta = /^#\s+(HELP|TYPE|UNIT)\s+(\S+)(?:\s(.*))?$/.exec(line);
      // Any other comment is free text in the text format.
      if (!meta) return;
      const keyword = meta[1]!;
      const name = meta[2]!;
      const rest = meta[3] ?? '';
      if (!NAME.test(name) || NAME.exec(name)![0] !== name) fail(`bad metric name ${name}`);
      const done = withMeta.get(name) ?? new Set<string>();
      if (done.has(keyword)) fail(`a second ${keyword} for ${name}`);
      done.add(keyword);
      withMeta.set(name, done);
      const f = family(name);
      if (keyword === 'HELP') f.help = unescapeHelp(rest);
      else if (keyword === 'UNIT') f.unit = rest.trim();
      else {
        const type = rest.trim();
        if (
          !/^(counter|gauge|histogram|gaugehistogram|summary|info|stateset|unknown|untyped)$/.test(
            type,
          )
        )
          fail(`unknown type ${type}`);
        if (f.samples.length > 0) fail(`TYPE for ${name} after its samples`);
        f.type = type;
      }
      current = f;
      return;
    }

    const name = NAME.exec(line)?.[0];
    if (!name) fail('expected a metric name');
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = readLabels(line, i, fail));
    if (line[i] !== ' ' && line[i] !== '\t') fail('expected a space before the value');
    const tokens = line
      .slice(i)
      .trim()
      .split(/[ \t]+/);
    if (tokens.length > 2) fail('expected a value and at most a timestamp');
    const value = parseFloatToken(tokens[0]!);
    if (value === undefined) fail(`bad value ${tokens[0]}`);
    let ts: number | undefined;
    if (tokens[1] !== undefined) {
      ts = parseFloatToken(tokens[1]);
      if (ts === undefined || !Number.isFinite(ts)) fail(`bad timestamp ${tokens[1]}`);
    }
    const key = seriesKey(name, labels);
    if (seen.has(key)) fail(`the same series twice`);
    seen.add(key);
    const sample: Sample = { name, labels, value: value!, line };
    if (ts !== undefined) timestamps.push([sample, ts, lineNo]);
    // Samples follow their family's HELP/TYPE; one with none is a family of its own.
    const f = current && belongs(current, name) ? current : family(name);
    current = f;
    f.samples.push(sample);
  });

  for (const [sample, ts, lineNo] of timestamps) {
    if (!openMetrics && !Number.isInteger(ts))
      throw new ExpositionError(
        lineNo,
        sample.line,
        'a text-format timestamp is whole milliseconds',
      );
    sample.timestampMs = openMetrics ? Math.round(ts * 1000) : ts;
  }
  return families;
}

function familiesOf(exposition: Exposition): readonly Family[] {
  return typeof exposition === 'string' ? parseExposition(exposition) : exposition;
}

/**
 * The samples with this name (or whose name the pattern matches) carrying at least these
 * labels, in exposition order.
 */
export function findSamples(
  exposition: Exposition,
  name?: string | RegExp,
  labels: Record<string, string> = {},
): Sample[] {
  const wanted = Object.entries(labels);
  const nameMatches = (n: string) =>
    name === undefined || (typeof name === 'string' ? n === name : name.test(n));
  return familiesOf(exposition)
    .flatMap((f) => f.samples)
    .filter((s) => nameMatches(s.name) && wanted.every(([k, v]) => s.labels[k] === v));
}

/**
 * A state set's values by state: `{healthy: 1, unhealthy: 0, ...}` for the samples of
 * `name` carrying `labels`, keyed by their `stateLabel`.
 */
export function stateSet(
  exposition: Exposition,
  name: string,
  labels: Record<string, string>,
  stateLabel: string,
): Record<string, number> {
  return Object.fromEntries(
    findSamples(exposition, name, labels).map((s) => [s.labels[stateLabel], s.value]),
  );
}

/**
 * The value of the one sample with this name and at least these labels; undefined when
 * there is none, an error when several match (the lookup would be ambiguous).
 */
export function sampleValue(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = findSamples(exposition, name, labels);
  if (found.length > 1)
    throw new Error(
      `${name} ${JSON.stringify(labels)}: ${found.length} samples match:\n${found.map((s) => s.line).join('\n')}`,
    );
  return found[0]?.value;
}

/** The sample lines, as written, of the named samples in exposition order: for exact comparisons. */
export function sampleLines(exposition: Exposition, ...names: string[]): string {
  return familiesOf(exposition)
    .flatMap((f) => f.samples)
    .filter((s) => names.includes(s.name))
    .map((s) => s.line)
    .join('\n');
}

/**
 * The value of one series written as PromQL writes a selector of exact labels:
 * `lookout_collector_success{collector="a"}`; undefined when absent.
 */
export function seriesValue(exposition: Exposition, series: string): number | undefined {
  const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$/.exec(series);
  if (!m) throw new Error(`not a series selector: ${series}`);
  const labels: Record<string, string> = {};
  for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
    labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  const found = findSamples(exposition, m[1]!, labels).filter(
    (s) => Object.keys(s.labels).length === Object.keys(labels).length,
  );
  if (found.length > 1) throw new Error(`${series}: ${found.length} samples match`);
  return found[0]?.value;
}
