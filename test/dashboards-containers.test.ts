/**
 * grafana/dashboards/containers.json against real containers: a private dockerd (busybox
 * image, in a network namespace of the test's) runs a healthy service on its bridge with
 * CPU and memory limits, a one-off job that finished, a container OOM-killed under its
 * memory limit, one restarted through the API, and one whose health check never passes,
 * which auto-restart restarts once and then gives up on; the built lookout reads that engine, a real Prometheus scrapes it and loads rules/*.yml, and
 * every panel query of the dashboard must return series.
 *
 * Variables are substituted the way Grafana would (as test/dashboards.test.ts does):
 *   $instance → the lookout target, $container → `.+` (the variable's "All"),
 *   $__rate_interval → 1m, $__interval → 15s, $__range → 1h.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BUSYBOX_IMAGE,
  memoryHogArgs,
  startBusyboxEngine,
  type BusyboxEngine,
} from './helpers/busybox.js';
import { answerAll, startRulesPrometheus } from './helpers/dashboards.js';
import { addNetns } from './helpers/dockerd.js';
import { REPO, eventually, promQuery, startLookout, type Running } from './helpers/procs.js';

interface Target {
  refId?: string;
  expr?: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  query?: string | { query?: string };
  allValue?: string;
  includeAll?: boolean;
}
interface Dashboard {
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

const FILE = 'grafana/dashboards/containers.json';
const dashboard = JSON.parse(readFileSync(join(REPO, FILE), 'utf8')) as Dashboard;

function allPanels(ps: Panel[] | undefined): Panel[] {
  return (ps ?? []).flatMap((p) => [p, ...allPanels(p.panels)]);
}

interface Query {
  panel: string;
  refId: string;
  expr: string;
}
const queries: Query[] = allPanels(dashboard.panels)
  .filter((p) => p.type !== 'row')
  .flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId ?? '?', expr: t.expr ?? '' })),
  );

const containerVar = dashboard.templating?.list?.find((v) => v.name === 'container');

function substitute(expr: string, instance: string): string {
  return expr
    .replaceAll(/\$\{?__rate_interval\}?/g, '1m')
    .replaceAll(/\$\{?__interval\}?/g, '15s')
    .replaceAll(/\$\{?__range\}?/g, '1h')
    .replaceAll(/\$\{?instance\}?/g, instance)
    .replaceAll(/\$\{?container\}?/g, containerVar?.allValue ?? '.+');
}

/** Up to this long for rate() windows and recording rules to have two samples. */
const WAIT_MS = 90_000;

describe(`${FILE}: every panel query returns series from a live Prometheus scraping lookout with real containers`, () => {
  let netns: { name: string; remove: () => Promise<void> } | undefined;
  let engine: BusyboxEngine;
  let lookout: Running;
  let prom: Running;
  let instance = '';
  let results = new Map<Query, number | Error>();

  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    // In a network namespace of its own: the engine's bridge (and the network counters of
    // a container on it) stay off the host's interfaces.
    netns = await addNetns(`lkdash-${process.pid}`);
    engine = await startBusyboxEngine('lkdash-', netns.name);
    const { docker } = engine;
    // A service on the bridge, with CPU and memory limits and a passing health check.
    await docker(
      'run',
      '-d',
      '--name',
      'web',
      '--restart',
      'always',
      '--cpus',
      '0.5',
      '-m',
      '64m',
      '--health-cmd',
      'test -f /tmp/ok',
      '--health-interval',
      '1s',
      '--health-retries',
      '1',
      BUSYBOX_IMAGE,
      'sh',
      '-c',
      'touch /tmp/ok; exec sleep 3600',
    );
    // A one-off job that finished, without limits.
    await docker('run', '--name', 'job', '--network', 'none', BUSYBOX_IMAGE, 'true');
    // One that fills its memory limit until the kernel kills it, once lookout watches.
    await docker(...memoryHogArgs('hog', 4));
    // One auto-restart watches whose health check never passes: restarted once (its budget
    // here), not recovered, then paused.
    await docker(
      'run',
      '-d',
      '--name',
      'flaky',
      '--network',
      'none',
      '--label',
      'lookout.autorestart=true',
      '--health-cmd',
      'test -f /tmp/never',
      '--health-interval',
      '1s',
      '--health-retries',
      '1',
      BUSYBOX_IMAGE,
      'sleep',
      '3600',
    );
    lookout = await startLookout(
      JSON.stringify({
        // Auto-restart keeps its budget on disk: this run's own, not the checkout's data/.
        storage: { path: join(engine.dir, 'lookout-state') },
        collectors: {
          host: { interval: '2s', timeout: '2s' },
          containers: {
            // 3 s: a restart's call (stop timeout: the collector's timeout less 2 s) must
            // end inside the action's deadline to count as restarted.
            interval: '3s',
            timeout: '3s',
            endpoint: engine.dockerd.host,
            actions: { enabled: true },
            autorestart: {
              failures: 1,
              max_restarts_per_hour: 1,
              backoff: '1s',
              stop_timeout: '1s',
            },
          },
        },
      }),
    );
    instance = `127.0.0.1:${lookout.port}`;
    prom = await startRulesPrometheus(instance);
    // lookout counts restarts from the event stream: a start after the one it first saw.
    await eventually(
      async () =>
        (await promQuery(prom.url, `lookout_container_running{name="web"} == 1`)).length === 1,
      30_000,
      'Prometheus to see the web container running',
    );
    await docker('restart', '-t', '1', 'web');
    await eventually(
      async () =>
        (
          await promQuery(
            prom.url,
            'lookout_container_health_status{name="web", status="healthy"} == 1' +
              ' and ignoring (status) lookout_container_running{name="web"} == 1',
          )
        ).length === 1,
      30_000,
      'Prometheus to see web running and healthy again after its restart',
    );
    results = await answerAll(prom.url, queries, (q) => substitute(q.expr, instance), WAIT_MS);
  });

  after(async () => {
    await prom?.stop();
    await lookout?.stop();
    await engine?.stop();
    await netns?.remove();
  });

  it('the container variable offers every container lookout reports, and "All" selects them', async () => {
    assert.ok(containerVar, 'a container variable');
    assert.equal(containerVar.includeAll, true);
    const q =
      typeof containerVar.query === 'string' ? containerVar.query : containerVar.query?.query;
    const m = /^label_values\((.+), name\)$/.exec(q ?? '');
    assert.ok(m?.[1], `label_values(<series>, name): ${q}`);
    const rows = await promQuery(prom.url, substitute(m[1], instance));
    assert.deepEqual(rows.map((r) => r.metric.name).sort(), ['flaky', 'hog', 'job', 'web']);
  });

  it('the table shows the OOM-killed container and the finished job as not running, the service as running and healthy', async () => {
    // flaky is left out: auto-restart restarts it while this runs.
    const steady = (r: { metric: Record<string, string> }) => r.metric.name !== 'flaky';
    let state: Record<string, number> = {};
    let status: Record<string, string> = {};
    const want = {
      state: { hog: 0, job: 0, web: 1 },
      status: { hog: 'none', job: 'none', web: 'healthy' },
    };
    // Until the table shows it (a scrape or two), and with what the engine says of web if not.
    await eventually(
      async () => {
        const running = await promQuery(
          prom.url,
          substitute('lookout_container_running{instance="$instance"}', instance),
        );
        state = Object.fromEntries(
          running.filter(steady).map((r) => [r.metric.name, Number(r.value[1])]),
        );
        const health = await promQuery(
          prom.url,
          substitute('lookout_container_health_status{instance="$instance"} == 1', instance),
        );
        status = Object.fromEntries(
          health.filter(steady).map((r) => [r.metric.name, r.metric.status]),
        );
        try {
          assert.deepEqual(state, want.state);
          assert.deepEqual(status, want.status);
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      'the table as the engine has it',
    ).catch(async (err: Error) => {
      const web = await engine.docker(
        'inspect',
        '--format',
        '{{json .State}} restarts={{.RestartCount}}',
        'web',
      );
      throw new Error(`${JSON.stringify({ state, status })}; web: ${web.stdout}`, { cause: err });
    });
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
