import assert from 'node:assert/strict';
import { it } from 'node:test';
import { toOpenMetrics } from '../src/exporter/openmetrics.js';
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
