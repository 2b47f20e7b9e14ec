/**
 * lookout with its nginx collector on against Debian's prometheus-nginx-exporter, both
 * reading the same real nginx's stub_status, side by side in one run: /metrics latency
 * over N sequential scrapes each (interleaved, timed by curl), resident memory and CPU
 * seconds after them, and the ratios. lookout runs as `npm start` runs it (bin/lookout),
 * with its default collectors plus nginx — what a user runs; nginx-prometheus-exporter
 * exports nginx alone, and reads stub_status on every scrape where lookout serves what
 * its background refresh read last.
 *
 *   npm run bench:nginx
 *   BENCH_SCRAPES=200 npm run bench:nginx      # a quick look
 */
import { loadavg } from 'node:os';
import { freePort, startProcess, tempDir } from '../test/helpers/procs.js';
import { startNginx } from '../test/helpers/nginx.js';
import { findSamples, sampleValue } from '../test/helpers/exposition.js';
import {
  cpuSeconds,
  latency,
  mb,
  rssBytes,
  setting,
  startedAll,
  startLookoutAsNpmStart,
  type Target,
} from './lib.js';

const SCRAPES = setting('BENCH_SCRAPES', 1000, 20);

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

async function main() {
  const nginx = await startNginx();
  const statusUrl = `${nginx.url}/stub_status`;
  const port = await freePort();
  const exporter = await startProcess(
    'prometheus-nginx-exporter',
    ['-nginx.scrape-uri', statusUrl, '-web.listen-address', `127.0.0.1:${port}`],
    { readyPath: '/metrics', port, dir: await tempDir('lookout-nginx-exporter-') },
  );
  const lookout = await startLookoutAsNpmStart(
    `collectors:\n  nginx:\n    enabled: true\n    status_url: ${statusUrl}\n`,
  );
  // The same with every other collector off: the like-for-like figure.
  const off = ['host', 'filesystem', 'processes', 'runtime', 'tls']
    .map((c) => `  ${c}:\n    enabled: false\n`)
    .join('');
  const alone = await startLookoutAsNpmStart(
    `collectors:\n  nginx:\n    enabled: true\n    status_url: ${statusUrl}\n${off}`,
  );
  const targets: Target[] = [
    { name: 'lookout', proc: lookout },
    { name: 'lookout-nginx-only', proc: alone },
    { name: 'nginx-prometheus-exporter', proc: exporter },
  ];
  try {
    await startedAll();
    // Both see nginx before anything is measured.
    const text = (t: Target) => fetch(`${t.proc.url}/metrics`).then((r) => r.text());
    for (let i = 0; i < 100; i++) {
      const [l, a, e] = await Promise.all(targets.map(text));
      if (
        sampleValue(l!, 'lookout_nginx_up') === 1 &&
        sampleValue(a!, 'lookout_nginx_up') === 1 &&
        sampleValue(e!, 'nginx_up') === 1
      )
        break;
      if (i === 99) throw new Error('lookout or nginx-prometheus-exporter never saw nginx up');
      await new Promise((r) => setTimeout(r, 200));
    }
    const series = (await Promise.all(targets.map(text))).map((t) => findSamples(t).length);
    const cpu0 = await Promise.all(targets.map((t) => cpuSeconds(t.proc.child.pid!)));
    const lat = await latency(targets, SCRAPES);
    const cpu1 = await Promise.all(targets.map((t) => cpuSeconds(t.proc.child.pid!)));
    const rss = await Promise.all(targets.map((t) => rssBytes(t.proc.child.pid!)));

    const [lk, la, ex] = targets.map((t) => lat[t.name]!) as [
      (typeof lat)[string],
      (typeof lat)[string],
      (typeof lat)[string],
    ];
    const ms = (x: number) => `${x.toFixed(2)} ms`;
    const cpu = cpu1.map((c, i) => c - cpu0[i]!);
    const row = (name: string, v: number[], show: (x: number) => string) => [
      name,
      ...v.map(show),
      ratio(v[0]!, v[2]!),
      ratio(v[1]!, v[2]!),
    ];
    console.log(`nginx 1.22 stub_status at ${statusUrl}; ${SCRAPES} sequential scrapes each`);
    // Tails move with whatever else the machine runs: say how busy it was.
    console.log(
      `load average after the scrapes: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
    );
    console.log(
      [
        [
          '',
          'lookout (defaults + nginx)',
          'lookout (nginx only)',
          'nginx-prometheus-exporter',
          'ratio defaults',
          'ratio nginx only',
        ],
        ['series on /metrics', ...series.map(String), '', ''],
        row('/metrics p50', [lk.p50, la.p50, ex.p50], ms),
        row('/metrics p90', [lk.p90, la.p90, ex.p90], ms),
        row('/metrics p99', [lk.p99, la.p99, ex.p99], ms),
        row('/metrics max', [lk.max, la.max, ex.max], ms),
        row('RSS after', rss, (b) => `${mb(b)} MB`),
        row('CPU during the scrapes', cpu, (c) => `${c.toFixed(2)} s`),
      ]
        .map((row) => row.map((c, i) => String(c).padEnd(i === 0 ? 24 : 27)).join(''))
        .join('\n'),
    );
  } finally {
    await lookout.stop();
    await alone.stop();
    await exporter.stop();
    await nginx.stop();
  }
}

await main();
