/**
 * What rendering the default collectors' registries costs: CPU and bytes allocated per
 * render, lookout's renderer beside prom-client's own `registry.metrics()` (an anchor
 * measured in the same run, so contention shows in both).
 *
 *   node --import tsx --expose-gc --min-semi-space-size=256 --max-semi-space-size=256 scripts/render-cost.ts [rounds]
 *
 * The young generation is made large enough that no GC runs inside a measured loop, so
 * the heap's growth over it is what the loop allocated; a loop that saw a GC says so.
 * Each way runs once unmeasured first, so no way pays the young generation's page faults.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { isPolled } from '../src/collectors/collector.js';
import { parseConfig } from '../src/config/load.js';
import { buildRunner } from '../src/exporter/build.js';
import { render } from '../src/exporter/openmetrics.js';
import { createLogger } from '../src/lib/log.js';

const ROUNDS = Number(process.argv[2] ?? 200);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

let gcs = 0;
new PerformanceObserver((list) => (gcs += list.getEntries().length)).observe({
  entryTypes: ['gc'],
});

const { runner, http } = await buildRunner(parseConfig({}, 'defaults'), createLogger('error'));
const registries: Registry[] = [];
for (const [name, collector] of runner.collectors()) {
  if (!isPolled(collector)) continue;
  const signal = AbortSignal.timeout(10_000);
  const registry = await collector
    .collect({
      signal,
      deadline: performance.now() + 10_000,
      log: createLogger('error', { collector: name }),
    })
    // A default collector with nothing configured (nginx, TLS, probes) has nothing to render.
    .catch(() => undefined);
  if (registry) registries.push(registry);
}
const samples = (await Promise.all(registries.map((r) => r.getMetricsAsJSON())))
  .flat()
  .reduce((n, m) => n + m.values.length, 0);

async function measure(label: string, once: () => Promise<unknown>, quiet = false) {
  for (let i = 0; i < 20; i++) await once();
  gc!();
  // GC entries reach the observer later: let this one arrive before counting.
  await new Promise((r) => setTimeout(r, 100));
  const gcsBefore = gcs;
  const heap = process.memoryUsage().heapUsed;
  const cpu = process.cpuUsage();
  for (let i = 0; i < ROUNDS; i++) await once();
  const used = process.cpuUsage(cpu);
  const grown = process.memoryUsage().heapUsed - heap;
  await new Promise((r) => setTimeout(r, 100));
  const perRender = (used.user + used.system) / ROUNDS;
  if (quiet) return;
  process.stdout.write(
    `${label.padEnd(24)} ${perRender.toFixed(0).padStart(6)} µs CPU  ${(grown / ROUNDS / 1024).toFixed(1).padStart(7)} KiB allocated per render${gcs > gcsBefore ? '  (a GC ran: allocation figure too low)' : ''}\n`,
  );
}

process.stdout.write(
  `${registries.length} registries, ${samples} samples, ${ROUNDS} renders each way\n`,
);
const ways: [string, () => Promise<unknown>][] = [
  ['lookout render()', () => Promise.all(registries.map((r) => render(r)))],
  ['prom-client metrics()', () => Promise.all(registries.map((r) => r.metrics()))],
];
// Once unmeasured first: the first loop to fill the young generation's fresh pages pays
// their page faults, which would be charged to whichever way ran first.
for (const [label, once] of ways) await measure(label, once, true);
for (const [label, once] of ways) await measure(label, once);
await runner.stop();
await http.close();
