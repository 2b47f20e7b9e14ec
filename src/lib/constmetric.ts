/**
 * A histogram whose counts the collector keeps itself, for a hot path that observes per
 * input line. prom-client's `Histogram.observe()` validates the labels, hashes them and
 * looks the series up on every call, which doubled the access log's CPU per line; here a
 * series is an object the collector holds, and an observation is a binary search over
 * the bounds and two adds into plain numbers.
 *
 * It is a metric in prom-client's sense without being one of its classes: it registers
 * through the public `registry.registerMetric()` and answers the public `get()` contract
 * (name, help, type, aggregator, and values with their labels and sample names), so
 * `registry.metrics()`, `registry.getMetricsAsJSON()` and lookout's `render()` write it
 * exactly as they write a prom-client `Histogram` that saw the same values: cumulative
 * `_bucket` samples with `le` first, then `+Inf`, `_sum` and `_count`, series in the order
 * they were created. A registry's default labels, which lookout does not set, would be
 * written after a series' own labels rather than before them.
 */
import type { Metric, OpenMetricsContentType, PrometheusContentType, Registry } from 'prom-client';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One sample of a family, as `get()` hands it to the registry. */
export interface Sample {
  value: number;
  labels: Readonly<Record<string, string | number>>;
  metricName: string;
}

/** What `get()` answers: the shape prom-client's own metrics answer. */
export interface Family {
  name: string;
  help: string;
  type: 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

export interface ConstHistogramConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, finite and increasing; `+Inf` is added. */
  buckets: readonly number[];
  registers: readonly (Registry<PrometheusContentType> | Registry<OpenMetricsContentType>)[];
}

/** One label set's counts; `observe()` is the per-line call. */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; the last slot holds those above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  /** The samples' labels, built once: a render reads them and allocates none. */
  readonly bucketLabels: readonly Readonly<Record<string, string | number>>[];

  constructor(
    private readonly bounds: Float64Array,
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
    const le: Record<string, string | number>[] = [];
    for (const b of bounds) le.push({ le: b, ...labels });
    le.push({ le: '+Inf', ...labels });
    this.bucketLabels = le;
  }

  /**
   * Counts one value. NaN and ±Infinity are not counted (prom-client throws on them): a
   * value that cannot be summed says nothing about the distribution.
   */
  observe(value: number): void {
    if (value - value !== 0) return;
    const bounds = this.bounds;
    let lo = 0;
    let hi = bounds.length;
    // The first bound the value does not exceed: a value on a bound falls in its bucket.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (value > bounds[mid]!) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
    this.sum += value;
  }

  /** Appends this series' samples in prom-client's order. */
  samples(out: Sample[], bucket: string, sum: string, count: string): void {
    const counts = this.counts;
    const labels = this.bucketLabels;
    let acc = 0;
    for (let i = 0; i < counts.length; i++) {
      acc += counts[i]!;
      out.push({ value: acc, labels: labels[i]!, metricName: bucket });
    }
    out.push({ value: this.sum, labels: this.labels, metricName: sum });
    out.push({ value: acc, labels: this.labels, metricName: count });
  }
}

/** A histogram family whose series the collector creates once and observes into directly. */
export class ConstHistogram<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly L[];
  private readonly bounds: Float64Array;
  private readonly series = new Map<string, HistogramSeries>();
  private readonly names: { bucket: string; sum: string; count: string };

  constructor(config: ConstHistogramConfig<L>) {
    const { name, labelNames, buckets } = config;
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${name}`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`invalid label name: ${l}`);
      if (l === 'le') throw new Error('le is the bucket label and cannot be a label name');
    }
    if (buckets.length === 0) throw new Error(`${name}: no bucket bounds`);
    buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && !(b > buckets[i - 1]!)))
        throw new Error(
          `${name}: bucket bounds must be finite and increasing, got ${buckets.join(', ')}`,
        );
    });
    this.name = name;
    this.help = config.help;
    this.labelNames = [...labelNames];
    this.bounds = Float64Array.from(buckets);
    this.names = { bucket: `${name}_bucket`, sum: `${name}_sum`, count: `${name}_count` };
    // prom-client types registerMetric() as taking one of its own four classes; what the
    // registry uses of a metric is its name, get() and reset(), all of which this has.
    for (const r of config.registers) r.registerMetric(this as unknown as Metric);
  }

  /**
   * The series for a label set, created at zero (exported from now on, like prom-client's
   * `zero()`) if it does not exist yet. Keep it: it is what observes.
   */
  labels(labels: Readonly<Record<L, string>>): HistogramSeries {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      const own: Record<string, string> = {};
      for (const l of Object.keys(labels)) own[l] = labels[l as L];
      s = new HistogramSeries(this.bounds, own);
      this.series.set(key, s);
    }
    return s;
  }

  /** Drops a label set's series: it is no longer exported, and its holder observes into nothing. */
  remove(labels: Readonly<Record<L, string>>): void {
    this.series.delete(this.key(labels));
  }

  /** Drops every series, as prom-client's `reset()` does (`registry.resetMetrics()` calls it). */
  reset(): void {
    this.series.clear();
  }

  get(): Promise<Family> {
    const values: Sample[] = [];
    const { bucket, sum, count } = this.names;
    for (const s of this.series.values()) s.samples(values, bucket, sum, count);
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  private key(labels: Readonly<Record<L, string>>): string {
    const given = Object.keys(labels);
    if (
      given.length !== this.labelNames.length ||
      given.some((l) => !this.labelNames.includes(l as L))
    )
      throw new Error(
        `${this.name}: labels ${given.join(', ') || '(none)'} do not match ${this.labelNames.join(', ') || '(none)'}`,
      );
    return JSON.stringify(this.labelNames.map((l) => labels[l]));
  }
}
