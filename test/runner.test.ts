import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Gauge, Registry } from 'prom-client';
import type { Collector } from '../src/collectors/collector.js';
import { CollectorError, NothingToCollect } from '../src/collectors/collector.js';
import { createApp } from '../src/exporter/app.js';
import { Runner, type RunnerEntry } from '../src/exporter/runner.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';
import { eventually } from './helpers/procs.js';

const quiet = createLogger('error', {}, () => {});

/** A collector that exports `name_value` and can be switched to throw or hang. */
function switchable(name: string) {
  let mode: 'ok' | 'throw' | 'hang' | 'nothing' = 'ok';
  let calls = 0;
  const collector: Collector = {
    async collect() {
      calls++;
      if (mode === 'throw')
        throw new CollectorError(`${name}: read failed`, { cause: new Error('EIO') });
      if (mode === 'nothing') throw new NothingToCollect(`${name}: not on this host`);
      if (mode === 'hang') return new Promise<Registry>(() => {});
      const registry = new Registry();
      new Gauge({ name: `${name}_value`, help: 'test value', registers: [registry] }).set(calls);
      return registry;
    },
  };
  return {
    collector,
    set: (m: typeof mode) => (mode = m),
    calls: () => calls,
  };
}

function entry(name: string, collector: Collector, timeoutMs = 200): RunnerEntry {
  return {
    name,
    description: name,
    metrics: [`${name}_value`],
    collector,
    intervalMs: 60_000,
    timeoutMs,
  };
}

describe('Runner', () => {
  it('serves every collector and marks each successful', async () => {
    const a = switchable('a');
    const b = switchable('b');
    const runner = new Runner([entry('a', a.collector), entry('b', b.collector)], quiet, '1.2.3');
    await runner.collectOnce();
    const text = (await runner.exposition('prometheus')).toString();
    for (const name of ['a', 'b']) {
      assert.equal(seriesValue(text, `${name}_value`), 1, `${name} served`);
      assert.equal(
        seriesValue(text, `lookout_collector_success{collector="${name}"}`),
        1,
        `${name} marked successful`,
      );
      assert.equal(runner.states().find((s) => s.name === name)?.outcome, 'ok');
    }
    assert.match(text, /lookout_build_info\{version="1\.2\.3",nodejs_version="v\d+/);
    await runner.stop();
  });

  it('a throwing collector shows success 0, drops its stale series and leaves the others alone', async () => {
    const a = switchable('a');
    const b = switchable('b');
    const runner = new Runner([entry('a', a.collector), entry('b', b.collector)], quiet, 'x');
    await runner.collectOnce();
    a.set('throw');
    await runner.collectOnce();
    const text = (await runner.exposition('prometheus')).toString();
    assert.equal(
      seriesValue(text, 'a_value'),
      undefined,
      'a failed collector must not serve its old value',
    );
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="a"}'), 0);
    assert.equal(seriesValue(text, 'b_value'), 2);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="b"}'), 1);
    const state = runner.states().find((s) => s.name === 'a');
    assert.equal(state?.outcome, 'failed');
    assert.equal(state?.lastError, 'a: read failed: EIO');
    await runner.stop();
  });

  it('a collector that never returns times out, is not started again while hung, and others keep serving', async () => {
    const hung = switchable('hung');
    const ok = switchable('ok');
    const runner = new Runner(
      [entry('hung', hung.collector, 100), entry('ok', ok.collector)],
      quiet,
      'x',
    );
    hung.set('hang');
    // collectOnce returning at all shows the runner gave up on the refresh that never resolves.
    await runner.collectOnce();
    let text = (await runner.exposition('prometheus')).toString();
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="hung"}'), 0);
    assert.equal(seriesValue(text, 'ok_value'), 1);
    assert.equal(runner.states().find((s) => s.name === 'hung')?.outcome, 'timeout');
    const timedOutAfter = runner.states().find((s) => s.name === 'hung')?.lastDurationSeconds ?? 0;

    // The point: time passes while the refresh stays hung, and its duration must show it.
    await new Promise((r) => setTimeout(r, 300));
    await runner.collectOnce();
    assert.equal(
      hung.calls(),
      1,
      'the hung refresh is still in flight, so it must not be called again',
    );
    assert.equal(runner.states().find((s) => s.name === 'hung')?.outcome, 'stuck');
    // A stuck refresh reports how long it has been running, not the last finished duration.
    const stuckFor = Number(
      seriesValue(
        (await runner.exposition('prometheus')).toString(),
        'lookout_collector_duration_seconds{collector="hung"}',
      ),
    );
    assert.ok(
      stuckFor >= timedOutAfter + 0.3,
      `0.3 s after timing out at ${timedOutAfter} s, a stuck refresh reports ${stuckFor} s`,
    );
    text = (await runner.exposition('prometheus')).toString();
    assert.equal(seriesValue(text, 'ok_value'), 2);
    await runner.stop();
  });

  it('a collector that throws synchronously is a failed refresh, not a crash', async () => {
    const sync: Collector = {
      collect() {
        throw new Error('thrown before any await');
      },
    };
    const runner = new Runner([entry('sync', sync)], quiet, 'x');
    await runner.collectOnce();
    assert.equal(runner.states()[0]?.outcome, 'failed');
    assert.equal(runner.states()[0]?.lastError, 'thrown before any await');
    await runner.stop();
  });

  it('nothing to collect is its own quiet outcome', async () => {
    const n = switchable('n');
    n.set('nothing');
    const lines: string[] = [];
    const runner = new Runner(
      [entry('n', n.collector)],
      createLogger('info', {}, (l) => lines.push(l)),
      'x',
    );
    await runner.collectOnce();
    assert.equal(runner.states()[0]?.outcome, 'nothing');
    assert.deepEqual(lines, [], 'nothing-to-collect is logged at debug only');
    const text = (await runner.exposition('prometheus')).toString();
    assert.equal(
      seriesValue(text, 'lookout_collector_success{collector="n"}'),
      1,
      'not a failure to alert on',
    );
    assert.equal(seriesValue(text, 'n_value'), undefined);
    await runner.stop();
  });

  it('records duration and last success time', async () => {
    const a = switchable('a');
    const runner = new Runner([entry('a', a.collector)], quiet, 'x');
    const before = Date.now() / 1000;
    await runner.collectOnce();
    const text = (await runner.exposition('prometheus')).toString();
    const last = Number(
      seriesValue(text, 'lookout_collector_last_success_timestamp_seconds{collector="a"}'),
    );
    assert.ok(last >= before && last <= Date.now() / 1000 + 1, `last success ${last}`);
    assert.ok(seriesValue(text, 'lookout_collector_duration_seconds{collector="a"}')! >= 0);
    await runner.stop();
  });
});

describe('HTTP /metrics while a collector hangs', () => {
  const hung = switchable('hung');
  const ok = switchable('ok');
  hung.set('hang');
  const runner = new Runner(
    [entry('hung', hung.collector, 100), entry('ok', ok.collector)],
    quiet,
    '9.9.9',
  );
  const server = createApp(runner, '9.9.9', quiet).listen(0, '127.0.0.1');
  after(async () => {
    server.close();
    await runner.stop();
  });

  it('answers at once with the other collectors, in both formats, and the landing page names the hung one', async () => {
    await runner.collectOnce();
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(2000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    assert.equal(seriesValue(text, 'ok_value'), 1);
    assert.equal(seriesValue(text, 'lookout_collector_success{collector="hung"}'), 0);

    const om = await fetch(`${base}/metrics`, {
      headers: {
        accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5',
      },
    });
    assert.match(
      om.headers.get('content-type') ?? '',
      /^application\/openmetrics-text; version=1\.0\.0/,
    );
    const omText = await om.text();
    assert.ok(omText.endsWith('# EOF\n'));
    assert.doesNotMatch(omText, /\n\n/, 'OpenMetrics allows no blank lines');

    const page = await (await fetch(`${base}/`)).text();
    assert.match(page, /<td>hung<\/td><td>timeout<\/td>/);
    assert.match(page, /timed out after 0\.1s/);

    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  });
});

/** A collector that records when each refresh began (performance.now). */
function stamped(name: string) {
  const starts: number[] = [];
  const collector: Collector = {
    async collect() {
      starts.push(performance.now());
      const registry = new Registry();
      new Gauge({ name: `${name}_value`, help: 'test value', registers: [registry] }).set(1);
      return registry;
    },
  };
  return { collector, starts };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Runner scheduling: refreshes follow scrapes', () => {
  it('with nobody scraping, a collector refreshes on its interval, never sooner', async () => {
    const c = stamped('alone');
    const runner = new Runner([{ ...entry('alone', c.collector), intervalMs: 150 }], quiet, '1');
    await runner.start();
    await eventually(async () => c.starts.length >= 6, 10_000, 'six refreshes');
    await runner.stop();
    // From the first timer-driven refresh on (the one at start may begin late, and the
    // interval counts from start). A timer can fire a millisecond or two early by
    // performance.now(): libuv starts it from its cached loop time.
    const gaps = c.starts.slice(2, 6).map((t, i) => t - c.starts[i + 1]!);
    assert.ok(
      gaps.every((g) => g >= 145),
      `gaps ${gaps.map((g) => g.toFixed(0))}`,
    );
  });

  it('scraped every interval at another phase, a collector comes to refresh right after each scrape', async () => {
    const INTERVAL = 600;
    const c = stamped('paced');
    const runner = new Runner(
      [{ ...entry('paced', c.collector), intervalMs: INTERVAL }],
      quiet,
      '1',
    );
    await runner.start();
    // Out of phase with the collector's own timer: the scrapes come a quarter interval
    // before its refreshes would.
    await sleep((INTERVAL * 3) / 4);
    const scrapes: number[] = [];
    for (let i = 0; i < 8; i++) {
      scrapes.push(performance.now());
      await runner.exposition('prometheus');
      await sleep(INTERVAL - (performance.now() - scrapes.at(-1)!));
    }
    await runner.stop();
    // Once the scrapes have shown their rhythm, each one is followed by exactly one
    // refresh, begun right after it; on its own timer the refresh would come a quarter
    // interval (150 ms) before the next scrape, 450 ms after this one.
    const settled = scrapes.slice(4);
    const late = c.starts.filter((t) => t >= settled[0]!);
    const after = (t: number) => t - scrapes.filter((s) => s <= t).at(-1)!;
    assert.equal(
      late.length,
      settled.length,
      `refreshes ${late.length} for ${settled.length} scrapes`,
    );
    assert.ok(
      late.every((t) => after(t) < INTERVAL / 3),
      `refresh starts after their scrape: ${late.map((t) => after(t).toFixed(0))} ms`,
    );
  });

  it('scraped more often than its interval, a collector is pulled forward by at most half a scrape gap, not refreshed at every scrape', async () => {
    const c = stamped('slow');
    const runner = new Runner([{ ...entry('slow', c.collector), intervalMs: 600 }], quiet, '1');
    await runner.start();
    const t0 = performance.now();
    const scrapes: number[] = [];
    for (let i = 0; i < 12; i++) {
      scrapes.push(performance.now());
      await runner.exposition('prometheus');
      await sleep(150);
    }
    await runner.stop();
    const during = c.starts.filter((t) => t > t0);
    const gaps = during.slice(1).map((t, i) => t - during[i]!);
    const pull = Math.max(...scrapes.slice(1).map((t, i) => t - scrapes[i]!)) / 2;
    assert.ok(
      during.length >= 2 && during.length < scrapes.length / 2,
      `${during.length} refreshes for ${scrapes.length} scrapes`,
    );
    assert.ok(
      gaps.every((g) => g >= 600 - pull - 5),
      `gaps ${gaps.map((g) => g.toFixed(0))}, pull at most ${pull.toFixed(0)} ms`,
    );
  });
});
