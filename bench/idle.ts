/**
 * Where an idle lookout's CPU goes: variants side by side in one run, each one's CPU
 * (every thread's schedstat, ns), user and system ticks, and context switches read from
 * /proc over BENCH_IDLE_MINUTES one-minute windows, while a real Prometheus scrapes the
 * ones marked scraped every 15 s:
 *
 *   bare            node with bin/lookout's flags, an http server nobody asks, a 15 s setInterval
 *   bare-scraped    the same server answering /metrics with a fixed 20 KB text, scraped
 *   none            lookout with every collector off, scraped
 *   defaults-quiet  lookout with the default collectors, never scraped
 *   defaults        lookout with the default collectors, scraped (as `npm run bench`)
 *   only-<name>     lookout with one default collector, scraped (BENCH_IDLE_EACH=1)
 *   node_exporter   scraped
 *
 * BENCH_IDLE_VARIANTS=a,b,c picks variants by name; BENCH_IDLE_FLAGS adds node flags to
 * every lookout (and bare) variant; BENCH_IDLE_EXTRA=name:--flag,--flag adds a variant of
 * `defaults` with more flags (repeatable, separated by ';'); BENCH_BASELINE=<dir> adds
 * `defaults` of that build as `before`.
 *
 *   BENCH_IDLE_MINUTES=6 node --import tsx bench/idle.ts
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import {
  eventually,
  freePort,
  promQuery,
  REPO,
  startNodeExporter,
  startProcess,
  startPrometheus,
  tempDir,
  type Running,
} from '../test/helpers/procs.js';
import { setting, sleep, startedAll } from './lib.js';
import { launcherFlags } from './flags.js';

const MINUTES = setting('BENCH_IDLE_MINUTES', 6, 1);
const WINDOW_S = setting('BENCH_IDLE_WINDOW_SECONDS', 60, 3);
const INTERVAL_S = setting('BENCH_IDLE_SCRAPE_SECONDS', 15, 1);
const EACH = process.env.BENCH_IDLE_EACH === '1';
const PICK = process.env.BENCH_IDLE_VARIANTS?.split(',').filter(Boolean);
const EXTRA_FLAGS = (process.env.BENCH_IDLE_FLAGS ?? '').split(/\s+/).filter(Boolean);
const BASELINE = process.env.BENCH_BASELINE;

const ALL = [
  'accesslog',
  'aicost',
  'containers',
  'filesystem',
  'host',
  'nginx',
  'probes',
  'processes',
  'runtime',
  'timex',
  'tls',
];
const DEFAULTS = [
  'accesslog',
  'containers',
  'filesystem',
  'host',
  'probes',
  'processes',
  'runtime',
  'timex',
  'tls',
];

const only = (on: string[]) =>
  `collectors:\n${ALL.map((c) => `  ${c}: { enabled: ${on.includes(c)} }`).join('\n')}\n`;

interface Variant {
  name: string;
  scraped: boolean;
  start: () => Promise<Running>;
}

async function lookout(flags: string[], config?: string, root = REPO): Promise<Running> {
  const port = await freePort();
  const dir = await tempDir('lookout-bench-idle-');
  const args = [
    ...flags,
    join(root, 'dist/cli.js'),
    'serve',
    '--web.listen-address',
    `127.0.0.1:${port}`,
  ];
  if (config !== undefined) {
    await writeFile(join(dir, 'lookout.yml'), config);
    args.push('--config', join(dir, 'lookout.yml'));
  }
  return startProcess(process.execPath, args, {
    readyPath: '/healthz',
    port,
    dir,
    env: { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '8' },
  });
}

const BARE = `
const http = require('node:http');
const body = Buffer.from('# x\\n'.repeat(5000));
http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain; version=0.0.4');
  res.end(req.url === '/healthz' ? 'ok' : body);
}).listen(Number(process.argv[1]), '127.0.0.1');
setInterval(() => {}, 15000);
`;

async function bare(flags: string[]): Promise<Running> {
  const port = await freePort();
  const dir = await tempDir('lookout-bench-bare-');
  return startProcess(process.execPath, [...flags, '-e', BARE, String(port)], {
    readyPath: '/healthz',
    port,
    dir,
  });
}

interface Sample {
  ns: number;
  utime: number;
  stime: number;
  vcs: number;
  nvcs: number;
}

async function sample(pid: number): Promise<Sample> {
  const s: Sample = { ns: 0, utime: 0, stime: 0, vcs: 0, nvcs: 0 };
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      s.ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]);
      const st = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8');
      s.vcs += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      s.nvcs += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
    } catch {
      // the thread ended
    }
  }
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  s.utime = Number(stat[11]);
  s.stime = Number(stat[12]);
  return s;
}

async function main() {
  const { flags: launcher } = await launcherFlags();
  const flags = [...launcher, ...EXTRA_FLAGS];
  const vs: Variant[] = [
    { name: 'bare', scraped: false, start: () => bare(flags) },
    { name: 'bare-scraped', scraped: true, start: () => bare(flags) },
    { name: 'none', scraped: true, start: () => lookout(flags, only([])) },
    { name: 'defaults-quiet', scraped: false, start: () => lookout(flags) },
    { name: 'defaults', scraped: true, start: () => lookout(flags) },
    ...(EACH
      ? DEFAULTS.map((c) => ({
          name: `only-${c}`,
          scraped: true,
          start: () => lookout(flags, only([c])),
        }))
      : []),
    ...(process.env.BENCH_IDLE_EXTRA ?? '')
      .split(';')
      .filter(Boolean)
      .map((spec) => {
        const [name, f] = spec.split(':');
        return {
          name: name!,
          scraped: true,
          start: () => lookout([...flags, ...(f ?? '').split(',').filter(Boolean)]),
        };
      }),
    ...(BASELINE
      ? [
          {
            name: 'before',
            scraped: true,
            // With the Node flags of that build's own launcher.
            start: async () => lookout((await launcherFlags(BASELINE)).flags, undefined, BASELINE),
          },
        ]
      : []),
    { name: 'node_exporter', scraped: true, start: () => startNodeExporter() },
  ];
  const chosen = vs.filter((v) => !PICK || PICK.includes(v.name));
  const procs: Array<{ v: Variant; p: Running }> = [];
  try {
    for (const v of chosen) procs.push({ v, p: await v.start() });
    await startedAll();
    const scraped = procs.filter(({ v }) => v.scraped);
    const prometheus = await startPrometheus(
      [
        `global: { scrape_interval: ${INTERVAL_S}s, scrape_timeout: ${Math.min(10, INTERVAL_S)}s }`,
        'scrape_configs:',
        ...scraped.map(
          ({ v, p }) =>
            `  - { job_name: ${v.name}, static_configs: [{ targets: ['127.0.0.1:${p.port}'] }] }`,
        ),
      ].join('\n'),
    );
    try {
      await eventually(
        async () => (await promQuery(prometheus.url, 'up == 1')).length === scraped.length,
        INTERVAL_S * 3000 + 10_000,
        'Prometheus scraping every target',
      );
      await sleep(Math.min(30, INTERVAL_S * 2) * 1000);
      const rows = new Map<string, Sample[]>(procs.map(({ v }) => [v.name, []]));
      const loads: number[] = [];
      for (let m = 0; m < MINUTES; m++) {
        const a = await Promise.all(procs.map(({ p }) => sample(p.child.pid!)));
        const t0 = performance.now();
        await sleep(WINDOW_S * 1000);
        const wall = (performance.now() - t0) / 1000;
        const b = await Promise.all(procs.map(({ p }) => sample(p.child.pid!)));
        loads.push(loadavg()[0]!);
        const per15 = 15 / wall;
        procs.forEach(({ v }, i) =>
          rows.get(v.name)!.push({
            ns: (b[i]!.ns - a[i]!.ns) * per15,
            utime: (b[i]!.utime - a[i]!.utime) * per15,
            stime: (b[i]!.stime - a[i]!.stime) * per15,
            vcs: (b[i]!.vcs - a[i]!.vcs) * per15,
            nvcs: (b[i]!.nvcs - a[i]!.nvcs) * per15,
          }),
        );
        console.log(
          `window ${m + 1} (load ${loads.at(-1)!.toFixed(2)}): ` +
            procs
              .map(({ v }) => `${v.name} ${(rows.get(v.name)!.at(-1)!.ns / 1e6).toFixed(1)}`)
              .join(', '),
        );
      }
      console.log(
        `\n# per 15 s, mean of ${MINUTES} windows of ${WINDOW_S} s (load ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}): CPU ms (median window), user+sys ticks, voluntary/involuntary context switches`,
      );
      const rss = await Promise.all(
        procs.map(
          async ({ p }) =>
            Number(
              /^VmRSS:\s+(\d+)/m.exec(await readFile(`/proc/${p.child.pid}/status`, 'utf8'))?.[1],
            ) / 1024,
        ),
      );
      const rssOf = new Map(procs.map(({ v }, i) => [v.name, rss[i]!]));
      const ne = rows.get('node_exporter');
      const neMean = ne ? ne.reduce((s, r) => s + r.ns, 0) / ne.length : undefined;
      for (const [name, rs] of rows) {
        const mean = (f: (r: Sample) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
        const sorted = rs.map((r) => r.ns).sort((x, y) => x - y);
        const med = sorted[Math.floor(sorted.length / 2)]!;
        const vsNe = neMean ? ` (${(mean((r) => r.ns) / neMean).toFixed(2)} × node_exporter)` : '';
        console.log(
          `${name.padEnd(18)} ${(mean((r) => r.ns) / 1e6).toFixed(2).padStart(6)} ms (median ${(med / 1e6).toFixed(2)})${vsNe}  ticks u ${mean((r) => r.utime).toFixed(2)} s ${mean((r) => r.stime).toFixed(2)}  cs ${mean((r) => r.vcs).toFixed(1)}/${mean((r) => r.nvcs).toFixed(1)}  RSS ${rssOf.get(name)!.toFixed(1)} MB`,
        );
      }
    } finally {
      await prometheus.stop();
    }
  } finally {
    for (const { p } of procs) await p.stop();
  }
}

await main();
