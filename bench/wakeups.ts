/**
 * What a periodic wake-up costs an idle Node process on this machine: three bare
 * node:http servers, side by side, differing only in connectionsCheckingInterval (how
 * often Node checks every connection against the header and request timeouts): 1 s
 * (what lookout had), 5 s and Node's own 30 s. Nothing scrapes them; their CPU per 15 s
 * (a Prometheus interval) is the wake-ups' price. lookout now arms a timer per
 * connection only while one owes it a request (src/exporter/deadlines.ts), so an idle
 * lookout pays none of them.
 *
 *   npm run bench:wakeups                    # 120 s
 *   BENCH_WAKE_SECONDS=300 npm run bench:wakeups
 */
import { spawn } from 'node:child_process';
import { cpuSeconds, setting, sleep, startedAll } from './lib.js';

const SECONDS = setting('BENCH_WAKE_SECONDS', 120, 2);
const INTERVALS = [1000, 5000, 30_000];

const server = (ms: number) =>
  spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import http from 'node:http';
       http.createServer({ connectionsCheckingInterval: ${ms} }, (q, r) => r.end()).listen(0, '127.0.0.1', () => process.send?.('up'));`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );

const children = INTERVALS.map(server);
try {
  await Promise.all(children.map((c) => new Promise((r) => c.once('message', r))));
  await startedAll();
  await sleep(2000);
  const before = await Promise.all(children.map((c) => cpuSeconds(c.pid!)));
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const wall = (performance.now() - t0) / 1000;
  const after = await Promise.all(children.map((c) => cpuSeconds(c.pid!)));
  console.log(`# idle node:http servers, ${SECONDS} s side by side, CPU per 15 s`);
  const per15 = INTERVALS.map((_, i) => ((after[i]! - before[i]!) / wall) * 15 * 1000);
  INTERVALS.forEach((ms, i) =>
    console.log(
      `connectionsCheckingInterval ${String(ms / 1000).padStart(2)} s: ${per15[i]!.toFixed(2)} ms per 15 s (${(15_000 / ms).toFixed(1)} wake-ups)`,
    ),
  );
  const perWake = (per15[0]! - per15[2]!) / (15 - 0.5);
  console.log(`one wake-up ≈ ${perWake.toFixed(2)} ms of CPU`);
} finally {
  for (const c of children) c.kill();
}
