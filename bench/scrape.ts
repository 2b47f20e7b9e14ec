/**
 * lookout against node_exporter on this host, side by side in one run:
 *   1. /metrics latency over N sequential scrapes each (interleaved): lookout p99 vs node_exporter p50
 *   2. resident memory over a soak of 1-second scrapes (10 minutes by default), sampled
 *      every 30 s, with where lookout's memory goes at the end
 *   3. CPU with default collectors while a real Prometheus scrapes both every 15 s (one
 *      kept-alive connection, gzip and OpenMetrics asked for, as Prometheus does), minute
 *      by minute over 5 minutes by default, once both are warm (after the soak)
 *   4. each Node flag in bin/lookout, with and without, and --no-opt added (what the
 *      optimizing compiler costs at idle): RSS and CPU per 15 s after BENCH_FLAG_SECONDS
 *      (120) of 1-second scrapes, all variants side by side (bench/flags.ts)
 *   5. the same flag sets on a parsing loop (bench/parse-loop.ts: lines/s, best of
 *      BENCH_PARSE_ROUNDS=3)
 * lookout runs exactly as `npm start` runs it (through bin/lookout, which holds the node flags).
 *
 *   npm run bench                         # the full run (~20 minutes)
 *   BENCH_SOAK_SECONDS=60 BENCH_CPU_MINUTES=1 BENCH_FLAG_SECONDS=60 npm run bench   # a quick look
 *   BENCH_ONLY=cpu BENCH_SOAK_SECONDS=60 BENCH_CPU_MINUTES=5 npm run bench   # only the CPU phase
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  eventually,
  promQuery,
  startNodeExporter,
  startPrometheus,
} from '../test/helpers/procs.js';
import { findSamples, parseExposition, sampleValue } from '../test/helpers/exposition.js';
import { idle, launcherFlags, parseLoop, variants } from './flags.js';
import {
  cpuSeconds,
  latency,
  mb,
  rssBytes,
  scrape,
  setting,
  sleep,
  startedAll,
  startLookoutAsNpmStart,
  type Target,
} from './lib.js';

const SCRAPES = setting('BENCH_SCRAPES', 1000, 20);
const CPU_MINUTES = setting('BENCH_CPU_MINUTES', 5, 1);
/** One CPU window; a minute, or a few seconds in the smoke run. */
const CPU_WINDOW_SECONDS = setting('BENCH_CPU_WINDOW_SECONDS', 60, 3);
/** Prometheus's scrape interval in the CPU phase: 15 s, as deployed. */
const PROM_INTERVAL_SECONDS = setting('BENCH_PROM_INTERVAL_SECONDS', 15, 1);
const SOAK_SECONDS = setting('BENCH_SOAK_SECONDS', 600, 3);
const FLAG_SECONDS = setting('BENCH_FLAG_SECONDS', 120, 2);
const PARSE_LINES = setting('BENCH_PARSE_LINES', 1_000_000, 10_000);
const PARSE_ROUNDS = setting('BENCH_PARSE_ROUNDS', 3, 1);
/**
 * `cpu`: only the CPU phase (after a BENCH_SOAK_SECONDS warm-up of 1-second scrapes),
 * for measuring one change to idle CPU side by side without the rest of the run.
 */
const ONLY = process.env.BENCH_ONLY;
/**
 * A second lookout to run beside the first, under the same load: another checkout (built,
 * its bin/lookout), e.g. the code before a change. Its figures are printed as
 * `lookout_before` with the same ratios to node_exporter, so before and after come from
 * one run.
 */
const BASELINE = process.env.BENCH_BASELINE;
/** Its name in the figures. */
const BASE = process.env.BENCH_BASELINE_NAME ?? 'lookout_before';
/** Idle CPU: lookout at most this share of node_exporter's. */
const CPU_TARGET = 0.8;
/** Idle RSS after the soak: not above 2026-12-01's 58–61 MB. */
const RSS_TARGET_MB = 61;

/** The 1, 5 and 15 minute load averages now, printed beside each figure. */
function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}
if (ONLY !== undefined && ONLY !== 'cpu')
  throw new Error(`BENCH_ONLY=${ONLY}: only "cpu" is known`);

/**
 * CPU share of each target, minute by minute, while a real Prometheus scrapes them all
 * every 15 s: the load an exporter carries on a host, request headers, gzip and
 * connection reuse included.
 */
async function cpu(targets: Target[]): Promise<Array<Record<string, number>>> {
  const prometheus = await startPrometheus(
    [
      `global: { scrape_interval: ${PROM_INTERVAL_SECONDS}s, scrape_timeout: ${Math.min(10, PROM_INTERVAL_SECONDS)}s }`,
      'scrape_configs:',
      ...targets.map(
        (t) =>
          `  - { job_name: ${t.name}, static_configs: [{ targets: ['127.0.0.1:${t.proc.port}'] }] }`,
      ),
    ].join('\n'),
  );
  try {
    // Prometheus's first scrapes and connections, then a few more scrapes to settle.
    await eventually(
      async () => (await promQuery(prometheus.url, 'up == 1')).length === targets.length,
      PROM_INTERVAL_SECONDS * 3000 + 10_000,
      'Prometheus scraping every target',
    );
    await sleep(Math.min(20, PROM_INTERVAL_SECONDS) * 1000);
    const minutes: Array<Record<string, number>> = [];
    for (let m = 0; m < CPU_MINUTES; m++) {
      const before = await Promise.all(targets.map((t) => cpuSeconds(t.proc.child.pid!)));
      const t0 = performance.now();
      await sleep(CPU_WINDOW_SECONDS * 1000);
      const wall = (performance.now() - t0) / 1000;
      const after = await Promise.all(targets.map((t) => cpuSeconds(t.proc.child.pid!)));
      minutes.push(
        Object.fromEntries(targets.map((t, i) => [t.name, (after[i]! - before[i]!) / wall])),
      );
    }
    const up = (await (
      await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent('up')}`)
    ).json()) as { data: { result: Array<{ metric: { job: string }; value: [number, string] }> } };
    for (const t of targets) {
      const r = up.data.result.find((x) => x.metric.job === t.name);
      if (r?.value[1] !== '1')
        throw new Error(`Prometheus could not scrape ${t.name}: up=${r?.value[1]}`);
    }
    return minutes;
  } finally {
    await prometheus.stop();
  }
}

async function soak(targets: Target[]) {
  const series = new Map<string, Array<[number, number]>>(targets.map((t) => [t.name, []]));
  const t0 = performance.now();
  let next = 0;
  for (let s = 0; s < SOAK_SECONDS; s++) {
    const tick = performance.now();
    await Promise.all(targets.map((t) => scrape(`${t.proc.url}/metrics`)));
    if (s >= next) {
      for (const t of targets) series.get(t.name)!.push([s, await rssBytes(t.proc.child.pid!)]);
      next += 30;
    }
    await sleep(Math.max(0, 1000 - (performance.now() - tick)));
  }
  for (const t of targets)
    series
      .get(t.name)!
      .push([Math.round((performance.now() - t0) / 1000), await rssBytes(t.proc.child.pid!)]);
  return series;
}

/** Least-squares slope of RSS over the second half of the soak, in MB per hour. */
function growthMbPerHour(points: Array<[number, number]>): number {
  const half = points.slice(Math.floor(points.length / 2));
  const n = half.length;
  const mx = half.reduce((a, [x]) => a + x, 0) / n;
  const my = half.reduce((a, [, y]) => a + y, 0) / n;
  const num = half.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = half.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : ((num / den) * 3600) / 1048576;
}

async function whereLookoutMemoryGoes(url: string): Promise<string> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const families = parseExposition(text);
  const v = (name: string) => sampleValue(families, name) ?? NaN;
  const rss = v('process_resident_memory_bytes');
  const heapTotal = v('nodejs_heap_size_total_bytes');
  const heapUsed = v('nodejs_heap_size_used_bytes');
  const external = v('nodejs_external_memory_bytes');
  return [
    `  rss ${mb(rss)} MB = V8 heap ${mb(heapTotal)} MB (used ${mb(heapUsed)}) + external ${mb(external)} MB + code, stacks and libraries ${mb(rss - heapTotal - external)} MB`,
    `  series served: ${findSamples(families).length}, exposition ${(text.length / 1024).toFixed(1)} KiB`,
  ].join('\n');
}

/** The figures that decide the targets, printed again as one table at the end. */
const summary: Array<[string, string, string, string]> = [];

/** The CPU phase: its minutes printed, its figure added to the summary. */
async function cpuPhase(targets: Target[]): Promise<Array<Record<string, number>>> {
  console.log(
    `\n# CPU, default collectors, a real Prometheus scraping both every ${PROM_INTERVAL_SECONDS} s, ${CPU_MINUTES} windows of ${CPU_WINDOW_SECONDS} s, after the soak (warm)`,
  );
  const minutes = await cpu(targets);
  const pct = (v: number) => `${(v * 100).toFixed(3)} %`;
  minutes.forEach((m, i) =>
    console.log(
      `window ${i + 1}: ${targets.map((t) => `${t.name} ${pct(m[t.name]!)}`).join('  ')}  ratio ${(m.lookout! / m.node_exporter!).toFixed(3)}${m[BASE] === undefined ? '' : ` (${BASE} ${(m[BASE] / m.node_exporter!).toFixed(3)})`}`,
    ),
  );
  const c = Object.fromEntries(
    targets.map((t) => [t.name, minutes.reduce((a, m) => a + m[t.name]!, 0) / minutes.length]),
  ) as Record<string, number>;
  for (const [name, v] of Object.entries(c))
    console.log(`${name.padEnd(14)} ${pct(v)} of one core on average`);
  const worst = Math.max(...minutes.map((m) => m.lookout!));
  const below = minutes.filter((m) => m.lookout! < m.node_exporter!).length;
  const cpuRatio = c.lookout! / c.node_exporter!;
  // Issue 21's target: at most 0.8 of node_exporter's CPU, and below it in 4 of 5 windows.
  const cpuMet = cpuRatio <= CPU_TARGET && below >= Math.ceil(0.8 * minutes.length);
  console.log(
    `ratio lookout / node_exporter = ${cpuRatio.toFixed(3)}, below in ${below} of ${minutes.length} windows; lookout ≤ 1 % in every minute (worst ${pct(worst)}): ${worst <= 0.01 ? 'MET' : 'MISSED'}; ≤ ${CPU_TARGET} × node_exporter and below in 4 of 5: ${cpuMet ? 'MET' : 'MISSED'} (load ${loadAverage()})`,
  );
  const baseCpu = c[BASE];
  if (baseCpu !== undefined) {
    const r = baseCpu / c.node_exporter!;
    const b = minutes.filter((m) => m[BASE]! < m.node_exporter!).length;
    const fewer = minutes.filter((m) => m.lookout! < m[BASE]!).length;
    console.log(
      `ratio ${BASE} / node_exporter = ${r.toFixed(3)}, below in ${b} of ${minutes.length} windows; lookout below ${BASE} in ${fewer} of ${minutes.length}`,
    );
    summary.push([
      `CPU, ${BASE} beside it`,
      `${pct(baseCpu)} (${((baseCpu * 15_000) | 0).toString()} ms/15 s)`,
      `${pct(c.node_exporter!)}`,
      `ratio ${r.toFixed(3)}, below in ${b}/${minutes.length}`,
    ]);
  }
  summary.push([
    `CPU, Prometheus every ${PROM_INTERVAL_SECONDS} s, ${minutes.length} × ${CPU_WINDOW_SECONDS} s`,
    `${pct(c.lookout!)} (${((c.lookout! * 15_000) | 0).toString()} ms/15 s)`,
    `${pct(c.node_exporter!)}`,
    `ratio ${cpuRatio.toFixed(3)} (≤ ${CPU_TARGET}), below in ${below}/${minutes.length}: ${cpuMet ? 'MET' : 'MISSED'}; load ${loadAverage()}`,
  ]);
  return minutes;
}

async function main() {
  const lookout = await startLookoutAsNpmStart();
  const before = BASELINE
    ? await startLookoutAsNpmStart(undefined, [], join(BASELINE, 'bin/lookout'))
    : undefined;
  const node = await startNodeExporter();
  const targets: Target[] = [
    { name: 'lookout', proc: lookout },
    ...(before ? [{ name: BASE, proc: before }] : []),
    { name: 'node_exporter', proc: node },
  ];
  try {
    await startedAll();
    await sleep(2000); // let lookout's first refresh land
    if (ONLY === 'cpu') {
      console.log(`# warm-up: one scrape a second for ${SOAK_SECONDS} s`);
      await soak(targets);
      await cpuPhase(targets);
      return;
    }
    console.log(
      `# /metrics latency, ${SCRAPES} sequential scrapes each (curl, kept-alive), interleaved in rounds of 50`,
    );
    const lat = await latency(targets, SCRAPES);
    for (const [name, l] of Object.entries(lat)) {
      console.log(
        `${name.padEnd(14)} p50 ${l.p50.toFixed(2)} ms  p90 ${l.p90.toFixed(2)} ms  p99 ${l.p99.toFixed(2)} ms  max ${l.max.toFixed(2)} ms`,
      );
    }
    const latRatio = lat.lookout!.p99 / lat.node_exporter!.p50;
    console.log(
      `ratio lookout p99 / node_exporter p50 = ${latRatio.toFixed(3)} (target ≤ 0.5) ${latRatio <= 0.5 ? 'MET' : 'MISSED'}`,
    );
    summary.push([
      '/metrics latency',
      `p50 ${lat.lookout!.p50.toFixed(2)} ms, p99 ${lat.lookout!.p99.toFixed(2)} ms`,
      `p50 ${lat.node_exporter!.p50.toFixed(2)} ms`,
      `p99/p50 ${latRatio.toFixed(3)} ≤ 0.5 ${latRatio <= 0.5 ? 'MET' : 'MISSED'}; load ${loadAverage()}`,
    ]);

    console.log(`\n# resident memory, one scrape a second for ${SOAK_SECONDS} s`);
    const rss = await soak(targets);
    for (const [name, points] of rss) {
      const end = points.at(-1)![1];
      const max = Math.max(...points.map(([, y]) => y));
      console.log(
        `${name.padEnd(14)} start ${mb(points[0]![1])} MB  end ${mb(end)} MB  max ${mb(max)} MB  growth (2nd half) ${growthMbPerHour(points).toFixed(2)} MB/h`,
      );
      console.log(`  samples: ${points.map(([s, y]) => `${s}s=${mb(y)}`).join(' ')}`);
    }
    const lookoutPoints = rss.get('lookout')!;
    const third = Math.max(1, Math.floor(lookoutPoints.length / 3));
    const mean = (ps: Array<[number, number]>) => ps.reduce((a, [, y]) => a + y, 0) / ps.length;
    const firstThird = mean(lookoutPoints.slice(0, third));
    const lastThird = mean(lookoutPoints.slice(-third));
    // V8's heap is a sawtooth between collections; "growing" is the last third's mean
    // standing clearly above the first third's, not a rise inside one tooth.
    console.log(
      `lookout mean RSS first third ${mb(firstThird)} MB, last third ${mb(lastThird)} MB; not growing (within 2 MB): ${lastThird - firstThird <= 2 * 1048576 ? 'MET' : 'MISSED'}`,
    );
    const lookoutEnd = lookoutPoints.at(-1)![1];
    console.log(
      `ratio lookout / node_exporter RSS at end = ${(lookoutEnd / rss.get('node_exporter')!.at(-1)![1]).toFixed(2)}; lookout ≤ 80 MB: ${lookoutEnd <= 80 * 1048576 ? 'MET' : 'MISSED'}`,
    );
    const flat = lastThird - firstThird <= 2 * 1048576;
    const rssMet = lookoutEnd <= RSS_TARGET_MB * 1048576;
    console.log(
      `lookout RSS at the end ≤ ${RSS_TARGET_MB} MB: ${rssMet ? 'MET' : 'MISSED'} (load ${loadAverage()})`,
    );
    const beforePoints = rss.get(BASE);
    summary.push([
      `RSS after ${SOAK_SECONDS} s of 1 s scrapes`,
      `${mb(lookoutEnd)} MB (thirds ${mb(firstThird)} → ${mb(lastThird)})${beforePoints ? `; ${BASE} beside it ${mb(beforePoints.at(-1)![1])} MB` : ''}`,
      `${mb(rss.get('node_exporter')!.at(-1)![1])} MB`,
      `≤ ${RSS_TARGET_MB} MB: ${rssMet ? 'MET' : 'MISSED'}; ≤ 80 MB and flat: ${lookoutEnd <= 80 * 1048576 && flat ? 'MET' : 'MISSED'}; load ${loadAverage()}`,
    ]);
    console.log('where lookout memory goes:');
    console.log(await whereLookoutMemoryGoes(lookout.url));
    const minutes = await cpuPhase(targets);
    await writeFile(
      join(lookout.dir, 'bench.json'),
      JSON.stringify({ lat, cpu: minutes, rss: Object.fromEntries(rss) }),
    );
  } finally {
    await lookout.stop();
    await before?.stop();
    await node.stop();
  }
  await flagPhases();
  console.log(
    '\n# summary (one run, side by side; CPU figures swing with other work on the machine)',
  );
  console.log('| what | lookout | node_exporter | target |\n|---|---|---|---|');
  for (const row of summary) console.log(`| ${row.join(' | ')} |`);
}

/** Each flag of bin/lookout with and without, --no-opt added, at idle and on a parsing loop. */
async function flagPhases() {
  const { flags, threadpool } = await launcherFlags();
  const vs = variants(flags);
  console.log(
    `\n# node flags: bin/lookout's (${flags.join(' ')}), each left out, and --no-opt added; all side by side, RSS and CPU after ${FLAG_SECONDS} s of 1-second scrapes (start-up excluded from CPU)`,
  );
  const base = await idle(vs, threadpool, FLAG_SECONDS);
  const b = base.get('bin/lookout')!;
  for (const v of vs) {
    const f = base.get(v.name)!;
    console.log(
      `${v.name.padEnd(40)} RSS ${mb(f.rssEnd)} MB (max ${mb(f.rssMax)}, ${f.rssEnd >= b.rssEnd ? '+' : ''}${mb(f.rssEnd - b.rssEnd)})  CPU ${f.cpuMsPer15s.toFixed(1)} ms per 15 s`,
    );
  }

  console.log(
    `\n# the same flag sets on a parsing loop: a combined-log regex over ${PARSE_LINES} lines, then the same with a prom-client counter inc per line (best of ${PARSE_ROUNDS}, interleaved)`,
  );
  const parse = await parseLoop(vs, PARSE_LINES, PARSE_ROUNDS);
  const k = (n: number) => `${(n / 1e6).toFixed(2)} M lines/s`;
  for (const v of vs) {
    const p = parse.get(v.name)!;
    console.log(
      `${v.name.padEnd(40)} regex ${k(p.regex)}  regex + counter ${k(p.regexAndCount)}  peak RSS ${mb(p.maxRss)} MB`,
    );
  }

  const noOpt = base.get('with --no-opt')!;
  const pOpt = parse.get('bin/lookout')!;
  const pNoOpt = parse.get('with --no-opt')!;
  summary.push([
    `the optimizing compiler at idle (${FLAG_SECONDS} s)`,
    `RSS ${mb(b.rssEnd)} MB vs ${mb(noOpt.rssEnd)} with --no-opt; CPU ${b.cpuMsPer15s.toFixed(1)} vs ${noOpt.cpuMsPer15s.toFixed(1)} ms/15 s`,
    '',
    'its idle price',
  ]);
  summary.push([
    'the optimizing compiler on a parsing loop',
    `regex ${k(pOpt.regex)} vs ${k(pNoOpt.regex)}; + counter ${k(pOpt.regexAndCount)} vs ${k(pNoOpt.regexAndCount)} with --no-opt`,
    '',
    'what it buys',
  ]);
  for (const v of vs.slice(1, -1)) {
    const f = base.get(v.name)!;
    const p = parse.get(v.name)!;
    summary.push([
      `flag: ${v.name}`,
      `RSS ${f.rssEnd >= b.rssEnd ? '+' : ''}${mb(f.rssEnd - b.rssEnd)} MB, CPU ${(f.cpuMsPer15s - b.cpuMsPer15s).toFixed(1)} ms/15 s, regex + counter ${k(p.regexAndCount)}`,
      '',
      'vs bin/lookout',
    ]);
  }
}

await main();
