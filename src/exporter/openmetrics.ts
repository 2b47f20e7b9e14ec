import type { Registry } from 'prom-client';

/** A registry's exposition in both formats, from one pass over its metrics. */
export interface Rendered {
  /** As prom-client's `registry.metrics()` writes it: families apart by a blank line. */
  prometheus: string;
  /** The same as OpenMetrics, without the closing `# EOF`: counter families named without `_total`. */
  openmetrics: string;
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelValue(v: string | number): string | number {
  if (typeof v !== 'string' || !NEEDS_ESCAPE.test(v)) return v;
  return escapeHelp(v).replace(/"/g, '\\"');
}

function valueText(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

/** A family's `# HELP` and `# TYPE` lines in both formats. */
interface Header {
  help: string;
  type: unknown;
  prometheus: string;
  openmetrics: string;
}

/**
 * The header lines of each family name seen, made once: the same few hundred strings
 * were escaped and joined anew on every refresh. A family whose help or type is not
 * what was kept (another registry's family of the same name) gets its own made anew.
 */
const headers = new Map<string, Header>();

function header(name: string, help: string, type: unknown): Header {
  const kept = headers.get(name);
  if (kept !== undefined && kept.help === help && kept.type === type) return kept;
  // Typed as an enum by prom-client, a string ('counter') when it runs.
  const t = String(type);
  const helpText = escapeHelp(help);
  const family = t === 'counter' ? name.replace(/_total$/, '') : name;
  const made: Header = {
    help,
    type,
    prometheus: `# HELP ${name} ${helpText}\n# TYPE ${name} ${t}`,
    openmetrics: `# HELP ${family} ${helpText}\n# TYPE ${family} ${t}`,
  };
  headers.set(name, made);
  return made;
}

/** A sample's own name (a histogram's `_bucket`, `_sum`, `_count`), when it has one. */
function sampleName(v: object): string | undefined {
  return 'metricName' in v && typeof v.metricName === 'string' ? v.metricName : undefined;
}

/**
 * Renders a registry as prom-client's `registry.metrics()` does (the same lines, in the
 * same order: a histogram bucket's `le`, then its labels), and its OpenMetrics form with
 * it, from one pass over `registry.getMetricsAsJSON()`, prom-client's public reading of
 * every metric. Written here because rendering each collector's registry after every
 * refresh was the largest part of an idle refresh: prom-client builds an array per label
 * set and runs three regular expressions per label value; here a value is escaped only
 * when it holds a character that needs it. Default labels and exemplars, which lookout
 * does not use, are not written.
 */
export async function render(registry: Registry): Promise<Rendered>;
/** Only the asked format: a registry rendered anew on every scrape needs no other. */
export async function render(registry: Registry, format: keyof Rendered): Promise<string>;
export async function render(
  registry: Registry,
  format?: keyof Rendered,
): Promise<Rendered | string> {
  const wantPrometheus = format !== 'openmetrics';
  const wantOpenMetrics = format !== 'prometheus';
  const data = await registry.getMetricsAsJSON();
  let prometheus = '';
  let openmetrics = '';
  for (let f = 0; f < data.length; f++) {
    const { name, help, values } = data[f]!;
    const head = header(name, help, data[f]!.type);
    let samples = '';
    // Indexed loops: without the optimizing compiler (lookout's code rarely tiers up) a
    // for-of allocates an iterator result per step.
    const n = values.length;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      let labels = '';
      for (const k in v.labels)
        labels += `${labels === '' ? '' : ','}${k}="${labelValue(v.labels[k] ?? '')}"`;
      samples += `\n${sampleName(v) ?? name}${labels === '' ? '' : `{${labels}}`} ${valueText(v.value)}`;
    }
    if (wantPrometheus) prometheus += `${f === 0 ? '' : '\n\n'}${head.prometheus}${samples}`;
    if (wantOpenMetrics) openmetrics += `${head.openmetrics}${samples}\n`;
  }
  if (format === 'prometheus') return `${prometheus}\n`;
  if (format === 'openmetrics') return openmetrics;
  return { prometheus: `${prometheus}\n`, openmetrics };
}
