/**
 * grafana/dashboards/aicost.json against a real Prometheus (loading rules/*.yml) that
 * scrapes a real lookout which has received AI usage events over its ingest route and
 * from a JSONL file: every panel query returns series. (test/dashboards.test.ts checks
 * the file as provisioning data, with the other dashboards.)
 *
 * Variables as Grafana substitutes them for one host with "All" services and models:
 *   $instance → the lookout target; $service, $model → .* (the variables' allValue);
 *   $__rate_interval → 1m; $__interval → 15s; $__range → 1h.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  REPO,
  eventually,
  promQuery,
  startLookout,
  tempDir,
  type Running,
} from './helpers/procs.js';
import { startRulesPrometheus, substitute } from './helpers/dashboards.js';
import { aicostConfig, postAccepted, usageEvent } from './helpers/aicost-alerts.js';

interface Panel {
  id?: number;
  type: string;
  title: string;
  targets?: Array<{ refId?: string; expr?: string }>;
  panels?: Panel[];
}

const FILE = 'aicost.json';
const dashboard = JSON.parse(readFileSync(join(REPO, 'grafana/dashboards', FILE), 'utf8')) as {
  panels: Panel[];
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = panels
  .filter((p) => p.type !== 'row')
  .flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId ?? '?', expr: t.expr ?? '' })),
  );

/** Up to this long for rate() windows and recording rules to have two samples. */
const WAIT_MS = 90_000;

/** The combinations of the events; each posted once before the counted ones (below). */
const COMBOS = [
  { service: 'chat', model: 'gpt-4o', source: 'web' },
  { service: 'chat', model: 'claude-sonnet-4', source: 'worker' },
  { service: 'batch', model: 'gpt-4o', source: 'worker' },
];

describe(`${FILE}: every panel query returns series from a live Prometheus scraping lookout with AI usage`, () => {
  let lookout: Running;
  let prom: Running;
  let instance = '';
  const results = new Map<(typeof queries)[number], number | Error>();

  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    assert.ok(queries.length >= 15, `found ${queries.length} queries in ${FILE}`);
    const dir = await tempDir('lookout-dash-aicost-');
    // A JSONL file an app writes, with one event: its lines and read errors are exported.
    const jsonl = join(dir, 'usage.jsonl');
    await writeFile(
      jsonl,
      JSON.stringify(
        usageEvent({ service: 'chat', model: 'gpt-4o', source: 'jsonl', cost_usd: 0.01 }),
      ) + '\n',
    );
    lookout = await startLookout(
      await aicostConfig(dir, {
        jsonl: [jsonl],
        budgets: [
          { period: 'hour', usd: 50 },
          { period: 'day', usd: 500 },
          { period: 'month', usd: 5000 },
          { period: 'month', service: 'chat', usd: 1000 },
        ],
      }),
    );
    instance = `127.0.0.1:${lookout.port}`;
    prom = await startRulesPrometheus(instance);
    // Each series first, so its first scrape is small; then usage that increase() counts,
    // with cache reads, and a model no price table knows (no reported cost: unpriced).
    await postAccepted(
      lookout.url,
      COMBOS.map((c) => usageEvent({ ...c, cost_usd: 0.001 })),
    );
    await eventually(
      async () =>
        (await promQuery(prom.url, `lookout_ai_cost_usd_total{instance="${instance}"}`)).length >=
        COMBOS.length,
      30_000,
      'Prometheus to scrape the first usage',
    );
    const traffic = async () => {
      await postAccepted(lookout.url, [
        ...COMBOS.map((c) => usageEvent({ ...c, cost_usd: 0.25 })),
        usageEvent({ service: 'chat', model: 'no-such-model-x1', source: 'web' }),
      ]);
    };
    await traffic();
    const asked = new Set(queries);
    const deadline = Date.now() + WAIT_MS;
    for (let round = 0; ; round++) {
      if (round % 5 === 4) await traffic(); // keep the rate() windows moving
      for (const q of asked) {
        try {
          const n = (await promQuery(prom.url, substitute(q.expr, instance))).length;
          results.set(q, n);
          if (n > 0) asked.delete(q);
        } catch (err) {
          results.set(q, err as Error);
        }
      }
      if (asked.size === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  });

  after(async () => {
    await prom?.stop();
    await lookout?.stop();
  });

  for (const q of queries) {
    it(`"${q.panel}" ${q.refId}`, () => {
      const r = results.get(q);
      if (r instanceof Error) throw r;
      assert.ok(
        Number(r) > 0,
        `no series after ${WAIT_MS / 1000}s for\n  ${substitute(q.expr, instance)}`,
      );
    });
  }
});
