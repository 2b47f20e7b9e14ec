/**
 * Collectors made of parts — a polled part, a service, actions — run by a real Runner,
 * and the built CLI: `lookout status` and `lookout check` show what an action would do
 * and never do it; `lookout serve` does it when the config opts in, rate-limited and
 * counted. Metric objects live as long as the collector: series vanish when a refresh
 * fails and when a label set goes away.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import type {
  ActionPlan,
  Collector,
  CollectorAction,
  ServiceContext,
} from '../src/collectors/collector.js';
import { collectorSchema } from '../src/collectors/collector.js';
import { Runner, type RunnerEntry } from '../src/exporter/runner.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';
import { eventually, REPO, startLookout, tempDir } from './helpers/procs.js';

const quiet = createLogger('error', {}, () => {});

/**
 * A collector with all three parts, as the containers collector will be: a polled part
 * (each item's state, in metric objects made once), a service (events counted as they
 * come, flushed to a file on stop) and a `restart` action planned from the last refresh
 * (each unhealthy item), whose runs are recorded.
 */
function threeParts(dir: string) {
  const polled = new Registry();
  const health = new Gauge({
    name: 'test_item_healthy',
    help: 'test',
    labelNames: ['name'],
    registers: [polled],
  });
  const events = new Registry();
  const seenEvents = new Counter({
    name: 'test_item_events_total',
    help: 'test',
    labelNames: ['name'],
    registers: [events],
  });
  const items = new Map<string, boolean>([
    ['web-1', true],
    ['web-2', true],
  ]);
  let failing: Error | undefined;
  let lastSeen = new Map<string, boolean>();
  let service: ServiceContext | undefined;
  const restarts: string[] = [];
  let actionFails = false;
  const restart: CollectorAction = {
    name: 'restart',
    description: 'restart an unhealthy item',
    plan: () =>
      [...lastSeen]
        .filter(([, healthy]) => !healthy)
        .map(([name]) => ({ target: name, what: `restart ${name}`, why: 'unhealthy' })),
    async run(plan: ActionPlan) {
      if (actionFails) throw new Error('engine refused');
      restarts.push(plan.target);
    },
  };
  const collector: Collector = {
    async collect() {
      if (failing) throw failing;
      // Label sets of items that went away are removed; the metric object stays.
      for (const name of lastSeen.keys()) if (!items.has(name)) health.remove({ name });
      for (const [name, healthy] of items) health.set({ name }, healthy ? 1 : 0);
      lastSeen = new Map(items);
      return polled;
    },
    service: {
      registry: events,
      start(ctx) {
        service = ctx;
      },
      async stop() {
        const total = (await seenEvents.get()).values.reduce((n, v) => n + v.value, 0);
        await writeFile(join(dir, 'flushed'), String(total));
      },
    },
    actions: [restart],
  };
  return {
    collector,
    items,
    restarts,
    event: (name: string) => seenEvents.inc({ name }),
    fail: (err: Error | undefined) => (failing = err),
    failActions: (v: boolean) => (actionFails = v),
    service: () => service!,
  };
}

function entry(collector: Collector, actions?: RunnerEntry['actions']): RunnerEntry {
  return {
    name: 'items',
    description: 'test',
    metrics: ['test_item_healthy', 'test_item_events_total'],
    collector,
    intervalMs: 60_000,
    timeoutMs: 2000,
    actions,
  };
}

async function scrape(runner: Runner): Promise<string> {
  return (await runner.exposition('prometheus')).toString();
}

const actionsDone = (text: string, result: string) =>
  seriesValue(
    text,
    `lookout_collector_actions_total{collector="items",action="restart",result="${result}"}`,
  );

describe('a collector with all three parts', () => {
  it('serves its polled series and its service counters together, one success covering both, and its service flushes on stop', async () => {
    const dir = await tempDir();
    const c = threeParts(dir);
    const runner = new Runner([entry(c.collector)], quiet, 'x');
    await runner.start();
    c.event('web-1');
    c.event('web-1');
    await runner.collectOnce();
    let text = await scrape(runner);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-1"}'), 1);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-2"}'), 1);
    assert.equal(seriesValue(text, 'test_item_events_total{name="web-1"}'), 2);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="items"}'), 1);
    assert.deepEqual(runner.states()[0]?.parts, ['collect', 'service', 'actions']);

    // A failed refresh: success 0, the polled series dropped, the service's counters kept.
    c.fail(new Error('engine API: EIO'));
    await runner.collectOnce();
    text = await scrape(runner);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="items"}'), 0);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-1"}'), undefined);
    assert.equal(seriesValue(text, 'test_item_events_total{name="web-1"}'), 2);
    // The service saying it is healthy does not hide the failed refresh.
    c.service().fault(new Error('event stream closed'));
    c.service().healthy();
    assert.equal(
      seriesValue(await scrape(runner), 'lookout_collector_success{collector="items"}'),
      0,
    );

    // Back: the same metric objects serve again.
    c.fail(undefined);
    await runner.collectOnce();
    text = await scrape(runner);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="items"}'), 1);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-1"}'), 1);

    // A service fault: success 0, the polled series still served (they are fresh), and
    // the counters too; healthy again is success 1.
    c.service().fault(new Error('event stream closed'));
    text = await scrape(runner);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="items"}'), 0);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-2"}'), 1);
    assert.equal(seriesValue(text, 'test_item_events_total{name="web-1"}'), 2);
    await runner.collectOnce();
    assert.equal(runner.states()[0]?.outcome, 'failed', 'a refresh does not clear a fault');
    assert.match(runner.states()[0]?.lastError ?? '', /event stream closed/);
    c.service().healthy();
    assert.equal(
      seriesValue(await scrape(runner), 'lookout_collector_success{collector="items"}'),
      1,
    );

    c.event('web-2');
    assert.deepEqual(await runner.stop(), []);
    assert.equal(await readFile(join(dir, 'flushed'), 'utf8'), '3', 'stop() flushed the count');
  });

  it('a label set the collector removes vanishes from the next scrape', async () => {
    const c = threeParts(await tempDir());
    const runner = new Runner([entry(c.collector)], quiet, 'x');
    await runner.collectOnce();
    assert.equal(seriesValue(await scrape(runner), 'test_item_healthy{name="web-2"}'), 1);
    c.items.delete('web-2');
    await runner.collectOnce();
    const text = await scrape(runner);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-2"}'), undefined);
    assert.equal(seriesValue(text, 'test_item_healthy{name="web-1"}'), 1);
    await runner.stop();
  });

  it('under serve with actions enabled, runs what they plan after a refresh, at most max_per_hour, each run counted', async () => {
    const c = threeParts(await tempDir());
    const runner = new Runner([entry(c.collector, { enabled: true, max_per_hour: 3 })], quiet, 'x');
    await runner.start({ actions: true });
    let text = await scrape(runner);
    for (const result of ['done', 'failed', 'skipped_rate_limited'])
      assert.equal(actionsDone(text, result), 0, `${result} starts at 0`);
    assert.deepEqual(c.restarts, [], 'nothing unhealthy, nothing planned');

    c.items.set('web-2', false);
    await runner.collectOnce();
    await eventually(async () => c.restarts.length === 1, 5000, 'the first restart');
    assert.deepEqual(c.restarts, ['web-2']);
    assert.equal(actionsDone(await scrape(runner), 'done'), 1);

    c.failActions(true);
    await runner.collectOnce();
    await eventually(
      async () => actionsDone(await scrape(runner), 'failed') === 1,
      5000,
      'a failed run counted',
    );
    c.failActions(false);
    // Two runs so far in this hour (a failed one counts against the limit): one more, then
    // every plan is skipped.
    for (let i = 0; i < 3; i++) {
      await runner.collectOnce();
      await eventually(
        async () => {
          const t = await scrape(runner);
          const ended =
            actionsDone(t, 'done')! +
            actionsDone(t, 'failed')! +
            actionsDone(t, 'skipped_rate_limited')!;
          return ended === 3 + i;
        },
        5000,
        `run ${i + 3} ended`,
      );
    }
    text = await scrape(runner);
    assert.equal(actionsDone(text, 'done'), 2);
    assert.equal(actionsDone(text, 'failed'), 1);
    assert.equal(actionsDone(text, 'skipped_rate_limited'), 2);
    assert.deepEqual(c.restarts, ['web-2', 'web-2']);
    const [report] = runner.actionReports();
    assert.equal(report?.runsLastHour, 3);
    assert.equal(report?.maxPerHour, 3);
    await runner.stop();
  });

  it('an action runs under its own timeoutMs when it gives one, else under the collector’s timeout', async () => {
    for (const [own, ended] of [
      [undefined, 'failed'],
      [5000, 'done'],
    ] as const) {
      const c = threeParts(await tempDir());
      const restart = c.collector.actions![0]!;
      // Longer than the collector's 150 ms timeout, as a container given time to stop is.
      const slow: CollectorAction = {
        ...restart,
        ...(own === undefined ? {} : { timeoutMs: own }),
        async run(plan, ctx) {
          await sleep(400, undefined, { signal: ctx.signal });
          await restart.run(plan, ctx);
        },
      };
      const runner = new Runner(
        [
          {
            ...entry({ ...c.collector, actions: [slow] }, { enabled: true, max_per_hour: 3 }),
            timeoutMs: 150,
          },
        ],
        quiet,
        'x',
      );
      await runner.start({ actions: true });
      c.items.set('web-2', false);
      await runner.collectOnce();
      await eventually(
        async () => actionsDone(await scrape(runner), ended) === 1,
        5000,
        `the slow run ${ended} (own timeout ${own ?? 'none'})`,
      );
      assert.deepEqual(c.restarts, ended === 'done' ? ['web-2'] : []);
      await runner.stop();
    }
  });

  it('does not run an action that is not opted in, nor outside serve, yet says what it would do', async () => {
    for (const [actions, serving] of [
      [{ enabled: false, max_per_hour: 5 }, true],
      [undefined, true],
      [{ enabled: true, max_per_hour: 5 }, false],
    ] as const) {
      const c = threeParts(await tempDir());
      c.items.set('web-1', false);
      const runner = new Runner([entry(c.collector, actions)], quiet, 'x');
      await runner.start({ actions: serving });
      for (let i = 0; i < 3; i++) await runner.collectOnce();
      await new Promise((r) => setTimeout(r, 50));
      const what = `actions ${JSON.stringify(actions)}, serving ${serving}`;
      assert.deepEqual(c.restarts, [], what);
      assert.equal(actionsDone(await scrape(runner), 'done'), 0, what);
      assert.deepEqual(runner.actionReports(), [
        {
          collector: 'items',
          action: 'restart',
          description: 'restart an unhealthy item',
          enabled: actions?.enabled ?? false,
          maxPerHour: actions?.max_per_hour,
          runsLastHour: 0,
          plans: [{ target: 'web-1', what: 'restart web-1', why: 'unhealthy' }],
        },
      ]);
      await runner.stop();
    }
  });

  it('plans nothing from a failed refresh', async () => {
    const c = threeParts(await tempDir());
    c.items.set('web-1', false);
    const runner = new Runner([entry(c.collector, { enabled: true, max_per_hour: 5 })], quiet, 'x');
    await runner.collectOnce();
    c.fail(new Error('engine API: EIO'));
    await runner.start({ actions: true });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(c.restarts, []);
    const [report] = runner.actionReports();
    assert.equal(report?.plans, undefined);
    assert.match(report?.error ?? '', /not planned: engine API: EIO/);
    await runner.stop();
  });
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const FIXTURE = join(REPO, 'test/fixtures/actions/register.mjs');

/** The built CLI with the `fakeops` test collector registered first. */
function lookout(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', FIXTURE, join(REPO, 'dist/cli.js'), ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

async function fakeopsConfig(enabled: boolean) {
  const dir = await tempDir();
  const marker = join(dir, 'restarted');
  const yaml = [
    'collectors:',
    '  fakeops:',
    '    enabled: true',
    `    marker: ${JSON.stringify(marker)}`,
    `    actions: { enabled: ${enabled} }`,
    `storage: { path: ${JSON.stringify(join(dir, 'state'))} }`,
    '',
  ].join('\n');
  const file = join(dir, 'lookout.yml');
  await writeFile(file, yaml);
  return { file, marker, yaml };
}

describe('an action in the built CLI', () => {
  for (const command of ['status', 'check']) {
    it(`lookout ${command} shows what it would do, its opt-in and limit, and does not do it`, async () => {
      for (const enabled of [true, false]) {
        const { file, marker } = await fakeopsConfig(enabled);
        const r = await lookout([command, '--config', file]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /^Actions: what each would do now \(only lookout serve runs them/m);
        assert.match(
          r.stdout,
          /^ {2}fakeops restart: restart what is unhealthy 3 times in a row$/m,
        );
        assert.match(
          r.stdout,
          enabled
            ? /^ {4}on, at most 2 runs an hour$/m
            : /^ {4}off: collectors\.fakeops\.actions\.enabled is false, at most 2 runs an hour$/m,
        );
        assert.match(r.stdout, /^ {4}would restart web-1: unhealthy 3 times in a row$/m);
        assert.equal(existsSync(marker), false, `${command} ran the action (enabled: ${enabled})`);
      }
    });
  }

  it('lookout serve runs it when opted in, at most max_per_hour, and counts the runs', async () => {
    const { yaml, marker } = await fakeopsConfig(true);
    const env = { NODE_OPTIONS: `--import ${FIXTURE}` };
    const lookoutServe = await startLookout(yaml, [], env);
    try {
      const metrics = async () => (await fetch(`${lookoutServe.url}/metrics`)).text();
      const count = (t: string, result: string) =>
        seriesValue(
          t,
          `lookout_collector_actions_total{collector="fakeops",action="restart",result="${result}"}`,
        );
      // Refreshed every second, planning a restart each time: two run, the rest are skipped.
      const text = await eventually(
        async () => {
          const t = await metrics();
          return (count(t, 'skipped_rate_limited') ?? 0) >= 2 && t;
        },
        15_000,
        'runs past the limit skipped',
      );
      assert.equal(count(text, 'done'), 2);
      assert.equal(count(text, 'failed'), 0);
      assert.equal(await readFile(marker, 'utf8'), 'web-1\nweb-1\n');
    } finally {
      await lookoutServe.stop();
    }
  });

  it('lookout serve does not run it when not opted in', async () => {
    const { yaml, marker } = await fakeopsConfig(false);
    const lookoutServe = await startLookout(yaml, [], { NODE_OPTIONS: `--import ${FIXTURE}` });
    try {
      const metrics = async () => (await fetch(`${lookoutServe.url}/metrics`)).text();
      // About three refreshes at its 1 s interval, each of which plans a restart.
      await new Promise((r) => setTimeout(r, 3500));
      const text = await metrics();
      assert.equal(
        seriesValue(
          text,
          'lookout_collector_actions_total{collector="fakeops",action="restart",result="done"}',
        ),
        0,
      );
      assert.equal(seriesValue(text, 'lookout_collector_success{collector="fakeops"}'), 1);
      assert.equal(existsSync(marker), false);
    } finally {
      await lookoutServe.stop();
    }
  });
});

describe('the actions block of a collector’s config', () => {
  const withActions = collectorSchema(
    { enabled: true, interval: '15s', timeout: '5s', actions: { maxPerHour: 6 } },
    {},
  );
  const without = collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {});

  it('is off by default with the collector’s limit, and only where the collector has actions', () => {
    assert.deepEqual(withActions.parse({}).actions, { enabled: false, max_per_hour: 6 });
    assert.deepEqual(withActions.parse({ actions: { enabled: true, max_per_hour: 1 } }).actions, {
      enabled: true,
      max_per_hour: 1,
    });
    assert.equal(without.safeParse({ actions: { enabled: true } }).success, false);
  });

  it('takes no limit below one an hour, nor keys it does not know', () => {
    assert.equal(withActions.safeParse({ actions: { max_per_hour: 0 } }).success, false);
    assert.equal(withActions.safeParse({ actions: { enable: true } }).success, false);
  });
});
