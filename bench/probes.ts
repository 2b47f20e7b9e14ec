/**
 * lookout's probes collector against Debian's blackbox_exporter, side by side in one run,
 * probing the same 50 HTTP targets on 127.0.0.1 (a real nginx): fast ones, slow ones
 * (nginx proxying to an upstream that waits) and blackholed ones (a socket that accepts
 * and never answers), all under a 2 s timeout.
 *
 *   1. One round of all 50: wall time and CPU seconds. blackbox_exporter: 50 /probe
 *      requests issued at once, as a Prometheus with 50 probe targets does; CPU over
 *      BENCH_ROUNDS such rounds, back to back, divided by the rounds. lookout: its probes
 *      collector refreshing every BENCH_INTERVAL seconds (only that collector on); CPU
 *      over BENCH_ROUNDS refreshes, divided by the refreshes (the idle time between them
 *      is charged to lookout, not subtracted); wall time is its own
 *      lookout_collector_duration_seconds.
 *   2. Resident memory of each after the rounds.
 *   3. lookout's /metrics latency while its probe rounds run with blackholed targets in
 *      flight, against the same lookout with no probe targets and node_exporter, for the
 *      foundation's target (lookout p99 at most half node_exporter's p50).
 *
 * Each target has its own name (its `target` label): the default, the URL without its
 * query string, would give the 40 fast ones one name, which the config rejects.
 *
 *   npm run bench:probes
 *   BENCH_ROUNDS=5 BENCH_SCRAPES=200 npm run bench:probes     # a quick look
 */
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { sampleValue } from '../test/helpers/exposition.js';
import { startNginx } from '../test/helpers/nginx.js';
import { freePort, startNodeExporter, startProcess, tempDir } from '../test/helpers/procs.js';
import {
  cpuSeconds,
  latency,
  mb,
  rssBytes,
  setting,
  sleep,
  startedAll,
  startLookoutAsNpmStart,
  type Target,
} from './lib.js';

const ROUNDS = setting('BENCH_ROUNDS', 10, 1);
const SCRAPES = setting('BENCH_SCRAPES', 1000, 20);
const INTERVAL_S = setting('BENCH_INTERVAL', 3, 3);
const TIMEOUT = '2s';
const FAST = 40;
const SLOW = 6;
const BLACKHOLED = 4;
const SLOW_MS = 500;

// ---------------------------------------------------------------- fixtures

const held: Socket[] = [];
const blackhole = createServer((s) => {
  held.push(s);
  s.on('error', () => undefined);
});
await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
const blackholePort = (blackhole.address() as { port: number }).port;

const upstream = createHttpServer((req, res) => {
  const timer = setTimeout(() => res.end('slow but fine\n'), SLOW_MS);
  res.on('close', () => clearTimeout(timer));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
const upstreamPort = (upstream.address() as { port: number }).port;

const nginx = await startNginx({
  locations: `
    location = /ok { return 200 "ok\\n"; }
    location = /slow { proxy_pass http://127.0.0.1:${upstreamPort}; }
  `,
});

const targetsOf = (kind: string, n: number, url: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => ({ name: `${kind}-${i}`, url: url(i) }));
const probeTargets = [
  ...targetsOf('fast', FAST, (i) => `http://127.0.0.1:${nginx.port}/ok?t=${i}`),
  ...targetsOf('slow', SLOW, (i) => `http://127.0.0.1:${nginx.port}/slow?t=${i}`),
  ...targetsOf('blackholed', BLACKHOLED, (i) => `http://127.0.0.1:${blackholePort}/?t=${i}`),
];
const urls = probeTargets.map((t) => t.url);

// ---------------------------------------------------------------- the two exporters

const bbDir = await tempDir('lookout-bench-blackbox-');
await writeFile(
  join(bbDir, 'blackbox.yml'),
  `modules:\n  http_2xx:\n    prober: http\n    timeout: ${TIMEOUT}\n    http:\n      preferred_ip_protocol: ip4\n`,
);
const bbPort = await freePort();
const blackbox = await startProcess(
  'prometheus-blackbox-exporter',
  [`--config.file=${join(bbDir, 'blackbox.yml')}`, `--web.listen-address=127.0.0.1:${bbPort}`],
  { readyPath: '/-/healthy', port: bbPort, dir: bbDir },
);

const collectorsOff = ['host', 'filesystem', 'processes', 'runtime']
  .map((c) => `  ${c}: { enabled: false }`)
  .join('\n');
const lookout = await startLookoutAsNpmStart(
  `collectors:
${collectorsOff}
  probes:
    interval: ${INTERVAL_S}s
    timeout: ${INTERVAL_S}s
    targets:
${probeTargets.map((t) => `      - { kind: http, name: ${t.name}, url: "${t.url}", timeout: ${TIMEOUT} }`).join('\n')}
`,
);
// The same lookout with no probe targets: what it spends between rounds (its timers, the
// runner, garbage collection), and what the rounds add to /metrics latency.
const idleLookout = await startLookoutAsNpmStart(`collectors:\n${collectorsOff}\n`);
const nodeExporter = await startNodeExporter();
await startedAll();

async function get(url: string): Promise<string> {
  const res = await request(url);
  return res.body.text();
}

// ---------------------------------------------------------------- 1. one round of 50

/** One blackbox round: 50 /probe requests at once; the wall time, and how many succeeded. */
async function blackboxRound(): Promise<{ ms: number; ok: number }> {
  const t0 = performance.now();
  const bodies = await Promise.all(
    urls.map((u) => get(`${blackbox.url}/probe?module=http_2xx&target=${encodeURIComponent(u)}`)),
  );
  const ms = performance.now() - t0;
  return { ms, ok: bodies.filter((b) => /^probe_success 1$/m.test(b)).length };
}

await blackboxRound(); // warm-up: connections, Go's runtime
const bbCpu0 = await cpuSeconds(blackbox.child.pid!);
const bbWalls: number[] = [];
let bbOk = 0;
for (let i = 0; i < ROUNDS; i++) {
  const r = await blackboxRound();
  bbWalls.push(r.ms);
  bbOk = r.ok;
}
const bbCpuPerRound = ((await cpuSeconds(blackbox.child.pid!)) - bbCpu0) / ROUNDS;
const bbRss = await rssBytes(blackbox.child.pid!);

/** lookout's last refresh: when it ended, how long it took, how many targets succeeded. */
async function lookoutRound() {
  const text = await get(`${lookout.url}/metrics`);
  const c = { collector: 'probes' };
  return {
    at: sampleValue(text, 'lookout_collector_last_success_timestamp_seconds', c) ?? 0,
    seconds: sampleValue(text, 'lookout_collector_duration_seconds', c) ?? NaN,
    ok: (text.match(/^lookout_probe_success\{.*\} 1$/gm) ?? []).length,
  };
}

// Warm-up: two refreshes past the first.
const first = await lookoutRound();
while ((await lookoutRound()).at < first.at + 2 * INTERVAL_S) await sleep(250);
const lkStart = await lookoutRound();
const lkCpu0 = await cpuSeconds(lookout.child.pid!);
const idleCpu0 = await cpuSeconds(idleLookout.child.pid!);
const lkWalls: number[] = [];
let last = lkStart;
while (lkWalls.length < ROUNDS) {
  await sleep(INTERVAL_S * 1000);
  const r = await lookoutRound();
  if (r.at > last.at) lkWalls.push(r.seconds * 1000);
  last = r;
}
const lkRounds = Math.round((last.at - lkStart.at) / INTERVAL_S);
const lkCpuPerRound = ((await cpuSeconds(lookout.child.pid!)) - lkCpu0) / lkRounds;
const idleCpuPerRound = ((await cpuSeconds(idleLookout.child.pid!)) - idleCpu0) / lkRounds;
const lkRss = await rssBytes(lookout.child.pid!);

// ---------------------------------------------------------------- 3. /metrics with a blackhole

const targets: Target[] = [
  { name: 'lookout', proc: lookout },
  { name: 'lookout, no probes', proc: idleLookout },
  { name: 'node_exporter', proc: nodeExporter },
];
const lat = await latency(targets, SCRAPES);

// ---------------------------------------------------------------- report

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (x: number) => `${x.toFixed(1)} ms`;
const cpuMs = (x: number) => `${(x * 1000).toFixed(1)} ms`;
console.log(
  `\n50 HTTP targets (${FAST} fast, ${SLOW} slow ${SLOW_MS} ms, ${BLACKHOLED} blackholed), timeout ${TIMEOUT}, ${ROUNDS} rounds each\n`,
);
console.log('                           lookout probes   blackbox_exporter   lookout / blackbox');
const row = (name: string, l: string, b: string, ratio: number) =>
  console.log(`${name.padEnd(27)}${l.padEnd(17)}${b.padEnd(20)}${ratio.toFixed(2)}`);
row('wall time per round (avg)', ms(avg(lkWalls)), ms(avg(bbWalls)), avg(lkWalls) / avg(bbWalls));
row('CPU per round', cpuMs(lkCpuPerRound), cpuMs(bbCpuPerRound), lkCpuPerRound / bbCpuPerRound);
row('  of which lookout at idle', cpuMs(idleCpuPerRound), '', idleCpuPerRound / bbCpuPerRound);
row('RSS after the rounds', `${mb(lkRss)} MB`, `${mb(bbRss)} MB`, lkRss / bbRss);
console.log(
  `succeeded per round        ${last.ok}/50            ${bbOk}/50               (the ${BLACKHOLED} blackholed fail)`,
);
console.log(
  `\ntarget: lookout CPU per round at most blackbox's: ${lkCpuPerRound <= bbCpuPerRound ? 'met' : 'MISSED'} (${(lkCpuPerRound / bbCpuPerRound).toFixed(2)})`,
);
const l = lat.lookout!;
const n = lat.node_exporter!;
const q = lat['lookout, no probes']!;
console.log(
  `\n/metrics over ${l.n} sequential scrapes while probe rounds run with ${BLACKHOLED} blackholed targets in flight:`,
);
console.log(
  `  lookout                       p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  max ${ms(l.max)}`,
);
console.log(
  `  lookout without probe targets p50 ${ms(q.p50)}  p90 ${ms(q.p90)}  p99 ${ms(q.p99)}  max ${ms(q.max)}`,
);
console.log(
  `  node_exporter                 p50 ${ms(n.p50)}  p90 ${ms(n.p90)}  p99 ${ms(n.p99)}  max ${ms(n.max)}`,
);
console.log(
  `  target: lookout p99 at most half node_exporter's p50: ${l.p99 <= n.p50 / 2 ? 'met' : 'MISSED'} (${(l.p99 / n.p50).toFixed(2)})`,
);

await Promise.all([
  lookout.stop(),
  idleLookout.stop(),
  blackbox.stop(),
  nodeExporter.stop(),
  nginx.stop(),
]);
for (const s of held) s.destroy();
blackhole.close();
upstream.close();
