import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { ConstHistogram } from '../src/lib/constmetric.js';
import { render } from '../src/exporter/openmetrics.js';

const DEFAULT_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Observe = (labels: Record<string, string>, value: number) => void;

interface Setup {
  buckets: number[];
  labelNames: string[];
  /** Label sets made before any observation (prom-client's zero()). */
  zeroed?: Record<string, string>[];
  feed: (observe: Observe) => void;
}

/** A registry holding a family before and after the histogram, as a collector's does. */
function registryWith(histogram: (registers: Registry[]) => void): Registry {
  const registry = new Registry();
  const registers = [registry];
  new Counter({ name: 'a_total', help: 'before', registers }).inc(3);
  histogram(registers);
  new Counter({ name: 'z_total', help: 'after', labelNames: ['log'], registers }).inc({ log: 'x' });
  return registry;
}

/** The same observations through prom-client's Histogram and through ConstHistogram. */
function both(setup: Setup): { prom: Registry; own: Registry } {
  const help = 'Request durations, with a backslash \\ and\na newline in the help.';
  const prom = registryWith((registers) => {
    const h = new Histogram({
      name: 'x_duration_seconds',
      help,
      labelNames: setup.labelNames,
      buckets: setup.buckets,
      registers,
    });
    for (const l of setup.zeroed ?? []) h.zero(l);
    // As the access-log collector did: prom-client throws on a value that is not finite.
    setup.feed((labels, v) => {
      if (Number.isFinite(v)) h.observe(labels, v);
    });
  });
  const own = registryWith((registers) => {
    const h = new ConstHistogram({
      name: 'x_duration_seconds',
      help,
      labelNames: setup.labelNames,
      buckets: setup.buckets,
      registers,
    });
    for (const l of setup.zeroed ?? []) h.labels(l);
    setup.feed((labels, v) => h.labels(labels).observe(v));
  });
  return { prom, own };
}

async function assertSameExposition(setup: Setup): Promise<string> {
  const { prom, own } = both(setup);
  const expected = await prom.metrics();
  assert.equal(await own.metrics(), expected, 'registry.metrics()');
  const [r1, r2] = [await render(prom), await render(own)];
  assert.equal(r2.prometheus, r1.prometheus, 'render().prometheus');
  assert.equal(r2.openmetrics, r1.openmetrics, 'render().openmetrics');
  return expected;
}

/** A small deterministic generator, so a failure names its case. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('ConstHistogram renders as prom-client Histogram does for the same values', () => {
  it('values on every bound, between bounds, 0, negative, the smallest and largest doubles, escaped label values', async () => {
    const text = await assertSameExposition({
      buckets: DEFAULT_BOUNDS,
      labelNames: ['log'],
      zeroed: [{ log: 'empty' }],
      feed: (observe) => {
        for (const b of DEFAULT_BOUNDS) observe({ log: 'main' }, b);
        for (const v of [0, -1, 5e-324, 0.0051, 0.3, 7, 10.000001, 1e300, Number.MAX_VALUE])
          observe({ log: 'main' }, v);
        observe({ log: 'C:\\dir "quoted"\nnext' }, 0.02);
      },
    });
    // Spot checks that the case covers what it says.
    assert.match(text, /^x_duration_seconds_bucket\{le="0.005",log="main"\} 4$/m); // -1, 0, 5e-324, 0.005
    assert.match(text, /^x_duration_seconds_bucket\{le="10",log="main"\} 17$/m);
    assert.match(text, /^x_duration_seconds_bucket\{le="\+Inf",log="main"\} 20$/m);
    assert.match(text, /^x_duration_seconds_count\{log="main"\} 20$/m);
    // 1e300 + the largest double overflows: both write the sum as +Inf.
    assert.match(text, /^x_duration_seconds_sum\{log="main"\} \+Inf$/m);
    assert.match(text, /^x_duration_seconds_bucket\{le="\+Inf",log="empty"\} 0$/m);
    assert.match(text, /log="C:\\\\dir \\"quoted\\"\\nnext"/);
  });

  it('skips NaN, Infinity and -Infinity, which prom-client refuses', async () => {
    const h = new Histogram({ name: 'refuses', help: 'h', buckets: [1], registers: [] });
    for (const v of [NaN, Infinity, -Infinity]) assert.throws(() => h.observe(v), TypeError);
    const text = await assertSameExposition({
      buckets: [0.1, 1],
      labelNames: ['log'],
      feed: (observe) => {
        for (const v of [0.5, NaN, Infinity, -Infinity, 2]) observe({ log: 'a' }, v);
      },
    });
    assert.match(text, /^x_duration_seconds_count\{log="a"\} 2$/m);
    assert.match(text, /^x_duration_seconds_sum\{log="a"\} 2.5$/m);
  });

  it('several label names, given in another order than declared; series in creation order', async () => {
    await assertSameExposition({
      buckets: [1, 2],
      labelNames: ['log', 'route'],
      feed: (observe) => {
        observe({ route: '/b', log: 'one' }, 1.5);
        observe({ log: 'two', route: '/a' }, 0.5);
        observe({ route: '/b', log: 'one' }, 3);
      },
    });
  });

  it('no label names, one bound', async () => {
    await assertSameExposition({
      buckets: [1],
      labelNames: [],
      zeroed: [{}],
      feed: (observe) => {
        observe({}, 1);
        observe({}, 1.0000001);
      },
    });
  });

  it('300 seeded cases: random bounds (1 to 40), values and label sets, sums to the last bit', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = lcg(seed);
      const buckets: number[] = [];
      let b = rnd() * 0.01;
      for (let i = 1 + Math.floor(rnd() * 40); i > 0; i--) buckets.push((b += 0.001 + rnd() * 2));
      // Drawn once, then fed to both histograms.
      const seen: [string, number][] = [];
      for (let i = 0; i < 200; i++) {
        // Every fourth value exactly on a bound, the rest anywhere up to past the last.
        const v =
          i % 4 === 0
            ? buckets[Math.floor(rnd() * buckets.length)]!
            : rnd() * (buckets.at(-1)! + 1);
        seen.push([`l${Math.floor(rnd() * 3)}`, v]);
      }
      await assertSameExposition({
        buckets,
        labelNames: ['log'],
        feed: (observe) => {
          for (const [log, v] of seen) observe({ log }, v);
        },
      }).catch((err: unknown) => {
        throw new Error(`seed ${seed}: ${String(err)}`, { cause: err });
      });
    }
  });
});

describe('ConstHistogram series', () => {
  it('remove() drops a label set as prom-client does; its held series then counts into nothing', async () => {
    const registry = new Registry();
    const h = new ConstHistogram({
      name: 'r_seconds',
      help: 'h',
      labelNames: ['log'],
      buckets: [1],
      registers: [registry],
    });
    const gone = h.labels({ log: 'gone' });
    h.labels({ log: 'kept' }).observe(0.5);
    h.remove({ log: 'gone' });
    gone.observe(0.5);
    assert.doesNotMatch(await registry.metrics(), /gone/);
    assert.match(await registry.metrics(), /r_seconds_count\{log="kept"\} 1/);
    assert.equal(h.labels({ log: 'kept' }), h.labels({ log: 'kept' }), 'one series per label set');
    registry.resetMetrics();
    assert.equal(await registry.metrics(), '# HELP r_seconds h\n# TYPE r_seconds histogram\n');
  });

  it('refuses what prom-client refuses: the le label, bounds not increasing, a label set not matching the names', () => {
    const base = { name: 'bad_seconds', help: 'h', registers: [] };
    assert.throws(() => new ConstHistogram({ ...base, labelNames: ['le'], buckets: [1] }), /le/);
    assert.throws(
      () => new ConstHistogram({ ...base, labelNames: [], buckets: [1, 1] }),
      /increasing/,
    );
    assert.throws(
      () => new ConstHistogram({ ...base, labelNames: [], buckets: [Infinity] }),
      /finite/,
    );
    assert.throws(() => new ConstHistogram({ ...base, labelNames: [], buckets: [] }), /no bucket/);
    assert.throws(
      () => new ConstHistogram({ ...base, name: 'bad-name', labelNames: [], buckets: [1] }),
      /name/,
    );
    const h = new ConstHistogram({ ...base, labelNames: ['log'], buckets: [1] });
    assert.throws(() => h.labels({ other: 'x' } as unknown as { log: string }), /do not match/);
    const registry = new Registry();
    new ConstHistogram({ ...base, labelNames: [], buckets: [1], registers: [registry] });
    assert.throws(
      () => new Histogram({ ...base, buckets: [1], registers: [registry] }),
      /already been registered/,
    );
  });
});
