import type { Registry } from 'prom-client';

/** A registry's exposition in both formats, from one pass over its metrics. */
export interface Rendered {
  /** As prom-client's `registry.metrics()` writes it: families apart by a blank line. */
  prometheus: string;
  /** The same as OpenMetrics, without the closing `# EOF`: counter families named without `_total`. */
  openmetrics: string;
}

/** What prom-client's metrics hand the registry to render (Metric.get / getForPromString). */
interface MetricData {
  name: string;
  help: string;
  type: string;
  values?: {
    value: number;
    labels?: Record<string, string | number>;
    metricName?: string;
    sharedLabels?: Record<string, string | number>;
  }[];
}

interface Renderable {
  get(): Promise<MetricData> | MetricData;
  getForPromString?(): Promise<MetricData> | MetricData;
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

/**
 * Renders a registry as prom-client's `registry.metrics()` does (the same lines, in the
 * same order: a sample's own labels, then those it shares, as a histogram bucket's `le`
 * then its labels), and its OpenMetrics form with it. Written here because rendering
 * each collector's registry after every refresh was the largest part of an idle
 * refresh: prom-client builds an array per label set and runs three regular expressions
 * per label value; here a value is escaped only when it holds a character that needs it.
 * Default labels and exemplars, which lookout does not use, are not written.
 */
export async function render(registry: Registry): Promise<Rendered> {
  const metrics = registry.getMetricsAsArray() as unknown as Renderable[];
  const data = await Promise.all(
    metrics.map((m) => (m.getForPromString ? m.getForPromString() : m.get())),
  );
  let prometheus = '';
  let openmetrics = '';
  for (let f = 0; f < data.length; f++) {
    const { name, help, type, values } = data[f]!;
    const helpText = escapeHelp(help);
    const family = type === 'counter' ? name.replace(/_total$/, '') : name;
    let samples = '';
    // Indexed loops: without the optimizing compiler (lookout's code rarely tiers up) a
    // for-of allocates an iterator result per step.
    const n = values?.length ?? 0;
    for (let i = 0; i < n; i++) {
      const v = values![i]!;
      let labels = '';
      const shared = v.sharedLabels;
      for (const k in v.labels) {
        if (shared !== undefined && Object.hasOwn(shared, k)) continue;
        labels += `${labels === '' ? '' : ','}${k}="${labelValue(v.labels[k]!)}"`;
      }
      for (const k in shared)
        labels += `${labels === '' ? '' : ','}${k}="${labelValue(shared[k]!)}"`;
      samples += `\n${v.metricName ?? name}${labels === '' ? '' : `{${labels}}`} ${valueText(v.value)}`;
    }
    prometheus += `${f === 0 ? '' : '\n\n'}# HELP ${name} ${helpText}\n# TYPE ${name} ${type}${samples}`;
    openmetrics += `# HELP ${family} ${helpText}\n# TYPE ${family} ${type}${samples}\n`;
  }
  return { prometheus: `${prometheus}\n`, openmetrics };
}
