import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { render } from '../src/exporter/openmetrics.js';
import { toOpenMetrics } from './helpers/openmetrics.js';
import { parseExposition } from './helpers/exposition.js';

it('renames counter families, keeps samples, drops blank lines and ends with # EOF', () => {
  const prom = [
    '# HELP lookout_cpu_seconds_total Seconds the CPUs spent in each mode.',
    '# TYPE lookout_cpu_seconds_total counter',
    'lookout_cpu_seconds_total{mode="idle"} 12.5',
    '',
    '# HELP lookout_load1 1m load average.',
    '# TYPE lookout_load1 gauge',
    'lookout_load1 0.5',
    '',
  ].join('\n');
  assert.equal(
    toOpenMetrics(prom),
    [
      '# HELP lookout_cpu_seconds Seconds the CPUs spent in each mode.',
      '# TYPE lookout_cpu_seconds counter',
      'lookout_cpu_seconds_total{mode="idle"} 12.5',
      '# HELP lookout_load1 1m load average.',
      '# TYPE lookout_load1 gauge',
      'lookout_load1 0.5',
      '# EOF',
      '',
    ].join('\n'),
  );
  // Read as OpenMetrics, the renamed family still owns its _total sample.
  assert.deepEqual(
    parseExposition(toOpenMetrics(prom)).map((f) => [f.name, f.type, f.samples.map((x) => x.name)]),
    [
      ['lookout_cpu_seconds', 'counter', ['lookout_cpu_seconds_total']],
      ['lookout_load1', 'gauge', ['lookout_load1']],
    ],
  );
});

it('leaves a gauge whose name ends in _total alone', () => {
  const prom = '# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n';
  assert.equal(
    toOpenMetrics(prom),
    '# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n# EOF\n',
  );
});

it('render() writes what prom-client writes, and its OpenMetrics form what toOpenMetrics makes of it', async () => {
  const registry = new Registry();
  const registers = [registry];
  new Counter({
    name: 'a_total',
    help: 'a counter\nwith a newline and a \\ backslash',
    registers,
  }).inc(3);
  const labelled = new Counter({
    name: 'b_seconds_total',
    help: 'labelled',
    labelNames: ['mode', 'path'],
    registers,
  });
  labelled.inc({ mode: 'idle', path: 'C:\\dir "quoted"\nnext' }, 1.5);
  labelled.inc({ path: '/plain', mode: 'user' }, 2);
  const g = new Gauge({ name: 'c', help: 'a gauge', labelNames: ['x'], registers });
  g.set({ x: 'one' }, -0.25);
  g.set({ x: 'inf' }, Infinity);
  g.set({ x: 'ninf' }, -Infinity);
  g.set({ x: 'big' }, 1e21);
  new Gauge({ name: 'd_total', help: 'a gauge named _total', registers }).set(1);
  new Gauge({ name: 'e', help: 'no samples', labelNames: ['y'], registers });
  const h = new Histogram({
    name: 'f_seconds',
    help: 'a histogram',
    labelNames: ['kind'],
    buckets: [0.01, 0.1, 1],
    registers,
  });
  h.observe({ kind: 'minor' }, 0.05);
  h.observe({ kind: 'major' }, 2);
  new Histogram({ name: 'g_seconds', help: 'unlabelled', buckets: [1], registers }).observe(0.5);
  const sm = new Summary({
    name: 'h_bytes',
    help: 'a summary',
    labelNames: ['log'],
    percentiles: [0.5, 0.9],
    registers,
  });
  sm.observe({ log: 'a"b' }, 10);
  sm.observe({ log: 'a"b' }, 30);
  new Gauge({ name: 'i', help: 'numeric label value', labelNames: ['n'], registers }).set(
    { n: 7 },
    1,
  );

  const rendered = await render(registry);
  const prom = await registry.metrics();
  assert.equal(rendered.prometheus, prom);
  assert.equal(`${rendered.openmetrics}# EOF\n`, toOpenMetrics(prom));
  assert.equal((await render(new Registry())).prometheus, await new Registry().metrics());
  // One format asked: the same text as that format of both.
  assert.equal(await render(registry, 'prometheus'), rendered.prometheus);
  assert.equal(await render(registry, 'openmetrics'), rendered.openmetrics);
  assert.equal(await render(new Registry(), 'prometheus'), await new Registry().metrics());
  assert.equal(await render(new Registry(), 'openmetrics'), '');
});
