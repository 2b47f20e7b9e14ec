/**
 * How many lookout hosts one Prometheus and one VictoriaMetrics hold: one real lookout
 * (default config) scraped as N hosts (N file_sd targets at its address, each with its own
 * `instance`), by a Prometheus that runs every shipped rule and remote-writes to a
 * VictoriaMetrics with -dedup.minScrapeInterval, both at the shipped 15 s interval. Every
 * 30 s it prints each part's resident memory, CPU and disk, the head series and the
 * samples a second; at the end the per-series and per-host costs.
 *
 *   node --import tsx bench/ha.ts [--hosts 200] [--minutes 4]
 *
 * The series of N copies of one host compress as one host's do (each series on its own),
 * so disk per sample is a real host's; their values being alike changes nothing there.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { diskBytes, rssBytes, startProc } from '../test/helpers/ha.js';
import {
  REPO,
  eventually,
  freePort,
  promQuery,
  startPrometheus,
  tempDir,
} from '../test/helpers/procs.js';
import { SMOKE, cpuSeconds, mb, setting, startLookoutAsNpmStart, startedAll } from './lib.js';

const { values } = parseArgs({
  options: { hosts: { type: 'string' }, minutes: { type: 'string' } },
});
const HOSTS = Number(values.hosts ?? (SMOKE ? 3 : 200));
const MINUTES = Number(values.minutes ?? (SMOKE ? 0.1 : 4));
/** Between two rows of figures, and how long VictoriaMetrics is given to settle. */
const ROW_MS = Math.min(30_000, MINUTES * 60_000);
const SETTLE_MS = setting('BENCH_HA_SETTLE_MS', 15_000, 1_000);

const lookout = await startLookoutAsNpmStart();
const vmDir = await tempDir('lookout-bench-vm-');
const vmPort = await freePort();
const vm = await startProc(
  'victoria-metrics',
  [
    `-storageDataPath=${join(vmDir, 'data')}`,
    `-httpListenAddr=127.0.0.1:${vmPort}`,
    '-dedup.minScrapeInterval=15s',
  ],
  { cwd: vmDir, readyUrl: `http://127.0.0.1:${vmPort}/health` },
);
const work = await tempDir('lookout-bench-ha-');
const targets = join(work, 'targets.json');
await writeFile(
  targets,
  JSON.stringify(
    Array.from({ length: HOSTS }, (_, i) => ({
      targets: [`127.0.0.1:${lookout.port}`],
      labels: { instance: `host-${i}:10142` },
    })),
  ),
);
const prom = await startPrometheus(
  JSON.stringify({
    global: {
      scrape_interval: '15s',
      evaluation_interval: '15s',
      external_labels: { replica: 'a' },
    },
    rule_files: [join(REPO, 'rules/*.yml')],
    remote_write: [
      {
        url: `http://127.0.0.1:${vmPort}/api/v1/write`,
        write_relabel_configs: [{ action: 'labeldrop', regex: 'replica' }],
      },
    ],
    scrape_configs: [{ job_name: 'lookout', file_sd_configs: [{ files: [targets] }] }],
  }),
  // The admin API's head snapshot writes the head as a block: its compressed size.
  ['--web.enable-admin-api'],
);

const stopAll = async () => {
  await prom.stop();
  await vm.stop();
  await lookout.stop();
};
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

try {
  await eventually(
    async () => (await promQuery(prom.url, 'count(up == 1)'))[0]?.value[1] === String(HOSTS),
    60_000,
    `Prometheus to scrape ${HOSTS} targets`,
  );
  await startedAll();
  const t0 = Date.now();
  const cpu0 = { prom: await cpuSeconds(prom.child.pid!), vm: await cpuSeconds(vm.pid) };
  console.log(`${HOSTS} hosts, ${MINUTES} min, scrape and evaluation 15 s`);
  console.log(
    'min  head_series  samples/s  prom_rss_MiB  prom_disk_MiB  vm_rss_MiB  vm_disk_MiB  lookout_rss_MiB',
  );
  let last: Record<string, number> = {};
  // Prometheus does not scrape itself here (its series would count as hosts').
  const selfMetric = async (name: string) => {
    const text = await (await fetch(`${prom.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  };
  while (Date.now() - t0 < MINUTES * 60_000) {
    await sleep(ROW_MS);
    const q = async (e: string) => Number((await promQuery(prom.url, e))[0]?.value[1] ?? NaN);
    last = {
      series: await selfMetric('prometheus_tsdb_head_series'),
      sps: (await q('sum(scrape_samples_scraped)')) / 15,
      promRss: await rssBytes(prom.child.pid!),
      promDisk: await diskBytes(prom.dir),
      vmRss: await rssBytes(vm.pid),
      vmDisk: await diskBytes(vmDir),
      lookoutRss: await rssBytes(lookout.child.pid!),
    };
    console.log(
      [
        ((Date.now() - t0) / 60_000).toFixed(1).padStart(3),
        String(last.series).padStart(11),
        last.sps!.toFixed(0).padStart(10),
        mb(last.promRss!).padStart(13),
        mb(last.promDisk!).padStart(14),
        mb(last.vmRss!).padStart(11),
        mb(last.vmDisk!).padStart(12),
        mb(last.lookoutRss!).padStart(16),
      ].join('  '),
    );
  }
  const secs = (Date.now() - t0) / 1000;
  const promCpu = ((await cpuSeconds(prom.child.pid!)) - cpu0.prom) / secs;
  const vmCpu = ((await cpuSeconds(vm.pid)) - cpu0.vm) / secs;
  const samples = last.sps! * secs;
  console.log(
    `\nper series: Prometheus ${(last.promRss! / last.series!).toFixed(0)} B RSS, ` +
      `VictoriaMetrics ${(last.vmRss! / last.series!).toFixed(0)} B RSS; ` +
      `CPU: Prometheus ${(promCpu * 100).toFixed(1)} %, VictoriaMetrics ${(vmCpu * 100).toFixed(1)} % of a core; ` +
      `VictoriaMetrics disk ${(last.vmDisk! / samples).toFixed(2)} B/sample as written ` +
      `(${samples.toFixed(0)} samples)`,
  );
  // On disk once settled: VictoriaMetrics flushed and merged; Prometheus' head cut as a
  // block (what the WAL becomes at the 2 h compaction). Every sample of the run, both.
  const vmUrl = `http://127.0.0.1:${vmPort}`;
  await (await fetch(`${vmUrl}/internal/force_flush`)).arrayBuffer();
  await (await fetch(`${vmUrl}/internal/force_merge`)).arrayBuffer();
  await sleep(SETTLE_MS);
  const snap = await fetch(`${prom.url}/api/v1/admin/tsdb/snapshot`, { method: 'POST' });
  const name = ((await snap.json()) as { data: { name: string } }).data.name;
  const block = await diskBytes(join(prom.dir, 'data', 'snapshots', name));
  const vmSettled = await diskBytes(vmDir);
  console.log(
    `settled: VictoriaMetrics ${(vmSettled / samples).toFixed(2)} B/sample (${mb(vmSettled)} MiB), ` +
      `a Prometheus block ${(block / samples).toFixed(2)} B/sample (${mb(block)} MiB)`,
  );
} finally {
  await stopAll();
}
