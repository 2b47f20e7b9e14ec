/**
 * docs/metrics.md, docs/alerts.md and README.md's collectors table are generated (scripts/gen-reference.ts) from the
 * collectors' declarations and a real exposition, rules/*.yml, alertmanager.yml and
 * grafana/dashboards/*.json: regenerated here, they must equal what is committed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generate, parseFamilies, receivers, REPO } from '../scripts/gen-reference.js';

/** The first line where two texts differ, both versions, for the failure message. */
function firstDifference(committed: string, generated: string): string {
  const a = committed.split('\n');
  const b = generated.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++)
    if (a[i] !== b[i])
      return `line ${i + 1}:\n  committed: ${a[i] ?? '(end of file)'}\n  generated: ${b[i] ?? '(end of file)'}`;
  return 'no line differs';
}

describe('the generated reference', () => {
  test('docs/metrics.md, docs/alerts.md and README.md equal what the generator makes of the code, rules and dashboards now', async () => {
    const docs = await generate();
    assert.deepEqual([...docs.keys()].sort(), ['README.md', 'docs/alerts.md', 'docs/metrics.md']);
    for (const [path, generated] of docs) {
      const committed = await readFile(join(REPO, path), 'utf8');
      assert.ok(
        committed === generated,
        `${path} is stale; run \`npm run gen:reference\` and commit it. First difference at ${firstDifference(committed, generated)}`,
      );
    }
    const metrics = docs.get('docs/metrics.md')!;
    for (const family of [
      'lookout_cpu_seconds_total',
      'lookout_probe_success',
      'process_cpu_seconds_total',
    ])
      assert.match(metrics, new RegExp(`\\| \`${family}\` \\| \\w+ \\|`), family);
  });

  test('families: HELP, TYPE and the label names of every sample; histogram suffixes and le fold into their family', () => {
    const fams = parseFamilies(
      [
        '# HELP a_seconds How long.',
        '# TYPE a_seconds histogram',
        'a_seconds_bucket{log="web",le="0.1"} 1',
        'a_seconds_sum{log="web"} 0.05',
        'a_seconds_count{log="web"} 1',
        '# HELP b_total Things.',
        '# TYPE b_total counter',
        'b_total{code="200"} 3',
        'b_total{code="500",route="api"} 1',
        '# HELP c Never seen.',
        '# TYPE c gauge',
        '',
      ].join('\n'),
    );
    assert.deepEqual(fams.get('a_seconds'), {
      name: 'a_seconds',
      type: 'histogram',
      help: 'How long.',
      labels: ['log'],
      sampled: true,
    });
    assert.deepEqual(fams.get('b_total')?.labels, ['code', 'route']);
    assert.equal(fams.get('c')?.sampled, false);
    assert.equal(fams.size, 3);
  });

  test("routes: a critical reaches email and slack (continue), info the dashboard-only receiver, Watchdog the heartbeat, no severity the root's", async () => {
    const { load } = await import('js-yaml');
    const am = load(await readFile(join(REPO, 'alertmanager.yml'), 'utf8')) as {
      route: Parameters<typeof receivers>[0];
    };
    const route = {
      receiver: 'root',
      routes: [
        { receiver: 'hb', matchers: ['alertname="Watchdog"'] },
        { receiver: 'quiet', matchers: ['severity="info"'] },
        { receiver: 'mail', matchers: ['severity="critical"'], continue: true },
        { receiver: 'chat', matchers: ['severity=~"critical|warning"'] },
      ],
    };
    assert.deepEqual(receivers(route, { alertname: 'X', severity: 'critical' }), ['mail', 'chat']);
    assert.deepEqual(receivers(route, { alertname: 'X', severity: 'warning' }), ['chat']);
    assert.deepEqual(receivers(route, { alertname: 'X', severity: 'info' }), ['quiet']);
    assert.deepEqual(receivers(route, { alertname: 'Watchdog', severity: 'none' }), ['hb']);
    assert.deepEqual(receivers(route, { alertname: 'X', severity: '' }), ['root']);
    // The shipped tree gives every alert at least one receiver.
    assert.ok(receivers(am.route, { alertname: 'X', severity: 'warning' }).length > 0);
  });
});
