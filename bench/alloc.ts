/**
 * Bytes of JavaScript heap one refresh of each default collector allocates, against this
 * host's real /proc: `node --expose-gc --import tsx bench/alloc.ts [refreshes] [warm-up]`
 * (200 and 100 by default; `3 3` is a smoke run of a few seconds).
 *
 * How: the young generation is made large enough (the bench re-runs itself with
 * `--min-semi-space-size` and `--max-semi-space-size`) that a refresh never triggers a
 * scavenge; before each refresh a full GC empties it, and the rise in the bytes the
 * heap's data spaces hold across the refresh (v8.getHeapSpaceStatistics, code spaces
 * left out: see dataBytes) is what it allocated. A refresh during which a GC ran anyway
 * (seen through the `gc` performance entries) is measured again. Node 20 has no
 * `total_allocated_bytes` counter; this reads the same quantity while nothing else runs.
 * Buffers' backing stores are outside the heap and not counted; the strings decoded from
 * them are.
 *
 * What: each collector's own refresh (`collect()`), not
 * the runner's rendering of the registry afterwards. The first refreshes (JIT warm-up,
 * descriptors opened) are run and not counted.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { Registry } from 'prom-client';
import '../src/collectors/index.js';
import {
  collectorDefinitions,
  NothingToCollect,
  type CollectorContext,
  type CollectContext,
} from '../src/collectors/collector.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';

const SEMI_SPACE_MB = 64;

if (!process.execArgv.some((a) => a.startsWith('--max-semi-space-size'))) {
  const child = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      `--min-semi-space-size=${SEMI_SPACE_MB}`,
      `--max-semi-space-size=${SEMI_SPACE_MB}`,
      // Full GCs would otherwise flush the bytecode of functions run once per refresh,
      // and its recompilation would count as the refresh's allocation.
      '--no-flush-bytecode',
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

const gc = globalThis.gc;
if (gc === undefined) throw new Error('run with --expose-gc');
// The smoke run (npm test) only shows the bench still runs: three refreshes, no figure judged.
const smoke = process.env.BENCH_SMOKE === '1';
const refreshes = Number(process.argv[2] ?? (smoke ? 3 : 200));
const warmup = Number(process.argv[3] ?? (smoke ? 3 : 100));

/** A polled collector's refresh. */
type Refresh = (ctx: CollectContext) => Promise<Registry>;
function refreshOf(collector: { collect?: Refresh }): Refresh | undefined {
  return collector.collect?.bind(collector);
}

/**
 * Bytes in use in the heap's data spaces. The code spaces are left out: the optimizing
 * compilers install code there from background threads whenever they finish, which on a
 * busy machine lands inside one refresh or another and is not the refresh's allocation.
 */
function dataBytes(): number {
  let n = 0;
  for (const s of getHeapSpaceStatistics())
    if (!s.space_name.includes('code')) n += s.space_used_size;
  return n;
}

let gcs = 0;
const observer = new PerformanceObserver((list) => (gcs += list.getEntries().length));
observer.observe({ entryTypes: ['gc'] });
/** GC entries reach the observer from a later turn of the event loop. */
const settle = () => new Promise((r) => setImmediate(() => setImmediate(r)));

const log = createLogger('error');
const http = new HttpClient();
const paths = { procfs: '/proc', sysfs: '/sys', rootfs: '/' };
const ctx: CollectContext = { signal: new AbortController().signal, deadline: Infinity, log };

/**
 * What any renderer does first: each metric's values through prom-client's public API,
 * which runs the metric's `collect()` (the runtime collector's work is there).
 */
async function readValues(registry: Registry): Promise<void> {
  await registry.getMetricsAsJSON();
}

function summary(bytes: number[]): string[] {
  bytes.sort((a, b) => a - b);
  const mean = bytes.reduce((a, b) => a + b, 0) / bytes.length;
  const q = (p: number) => bytes[Math.min(bytes.length - 1, Math.floor(p * bytes.length))]!;
  return [String(q(0.5)), String(Math.round(mean)), `${q(0)}–${q(1)}`];
}

const rows: string[][] = [];
for (const def of collectorDefinitions().values()) {
  const config = def.schema.parse({}) as { enabled: boolean };
  if (!config.enabled) continue;
  const collector = await def.create({
    name: def.name,
    config,
    paths,
    log,
    http,
    stateDirectory: () => Promise.reject(new Error('the bench keeps no state')),
  } as CollectorContext<never>);
  const refresh = refreshOf(collector);
  if (refresh === undefined) {
    rows.push([def.name, 'not polled']);
    continue;
  }
  try {
    for (let i = 0; i < warmup; i++) await refresh(ctx);
  } catch (err) {
    if (!(err instanceof NothingToCollect)) throw err;
    rows.push([def.name, `nothing to collect: ${err.message}`]);
    continue;
  }
  const own: number[] = [];
  const read: number[] = [];
  let retried = 0;
  while (own.length < refreshes) {
    gc();
    await settle();
    gcs = 0;
    const before = dataBytes();
    const registry = await refresh(ctx);
    const refreshed = dataBytes();
    await readValues(registry);
    const after = dataBytes();
    await settle();
    if (gcs > 0) {
      if (++retried > refreshes) throw new Error(`${def.name}: a GC ran during every refresh`);
      continue;
    }
    own.push(refreshed - before);
    read.push(after - before);
  }
  rows.push([def.name, String(refreshes), ...summary(own), ...summary(read)]);
  const closing = collector as { close?: () => unknown };
  await closing.close?.();
}
observer.disconnect();

const header = [
  'collector',
  'refreshes',
  'median B',
  'mean B',
  'min–max B',
  '+values median B',
  '+values mean B',
  '+values min–max B',
];
// A row that says why it has no figures runs on past the columns.
const widths = header.map((h, i) =>
  Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => r[i]!.length)),
);
const line = (r: string[]) =>
  r.length === 2
    ? `${r[0]!.padEnd(widths[0]!)}  ${r[1]}`
    : r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(
  `heap bytes allocated per refresh (${refreshes} refreshes each, real /proc, ${process.version}); +values: with every metric's values read through prom-client's getMetricsAsJSON()`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));
