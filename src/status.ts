/**
 * `lookout status`: one collection by the same collectors `serve` runs, printed as a
 * table for an operator at a terminal. Numbers come from the collectors' registries,
 * so what this prints is what /metrics would serve.
 */
import type { Config } from './config/schema.js';
import { buildRunner } from './exporter/build.js';
import type { CollectorState, Outcome } from './exporter/runner.js';
import { createLogger } from './lib/log.js';
import { VERSION } from './version.js';

/** CPU utilisation needs two readings of the counters; this far apart is long enough to mean something. */
const CPU_SAMPLE_MS = 500;

interface Sample {
  labels: Record<string, string>;
  value: number;
}
type Metrics = Map<string, Sample[]>;

async function readMetrics(states: readonly CollectorState[]): Promise<Metrics> {
  const out: Metrics = new Map();
  for (const s of states) {
    if (!s.registry) continue;
    for (const m of await s.registry.getMetricsAsJSON()) {
      const samples = m.values.map((v) => ({
        labels: Object.fromEntries(Object.entries(v.labels).map(([k, l]) => [k, String(l)])),
        value: v.value,
      }));
      out.set(m.name, [...(out.get(m.name) ?? []), ...samples]);
    }
  }
  return out;
}

function one(metrics: Metrics, name: string): number | undefined {
  return metrics.get(name)?.[0]?.value;
}

function byLabel(metrics: Metrics, name: string, label: string): Map<string, number> {
  return new Map((metrics.get(name) ?? []).map((s) => [s.labels[label] ?? '', s.value]));
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function humanBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

export function percent(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? '-' : `${(ratio * 100).toFixed(1)} %`;
}

function humanDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m`;
}

/** Columns padded to their widest cell; numeric columns (right: true) aligned right. */
export function table(header: string[], rows: string[][], right: boolean[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function cpuTimes(metrics: Metrics): Map<string, number> {
  return byLabel(metrics, 'lookout_cpu_seconds_total', 'mode');
}

function cpuSection(
  before: Map<string, number>,
  after: Map<string, number>,
  seconds: number,
  cores: number | undefined,
): string {
  const delta = new Map<string, number>();
  let total = 0;
  for (const [mode, v] of after) {
    const d = Math.max(0, v - (before.get(mode) ?? v));
    delta.set(mode, d);
    total += d;
  }
  if (total <= 0) return `CPU      no CPU time passed between the two readings\n`;
  const share = (mode: string) => (delta.get(mode) ?? 0) / total;
  const busy = 1 - share('idle') - share('iowait');
  const parts = ['user', 'system', 'iowait', 'steal'].map((m) => `${m} ${percent(share(m))}`);
  return `CPU      ${percent(busy)} busy over ${seconds.toFixed(1)} s on ${cores ?? '?'} cores (${parts.join(', ')})\n`;
}

const FAILED: ReadonlySet<Outcome> = new Set(['failed', 'timeout', 'stuck', 'pending']);

export async function status(config: Config, out: NodeJS.WritableStream): Promise<number> {
  // Failures are printed in the table below; log lines would only repeat them.
  const runner = await buildRunner(config, createLogger('error'));
  try {
    await runner.collectOnce();
    const firstErrors = new Map(runner.states().map((s) => [s.name, s.lastError]));
    const cpuBefore = cpuTimes(await readMetrics(runner.states()));
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, CPU_SAMPLE_MS));
    await runner.collectOnce();
    const cpuSeconds = (performance.now() - t0) / 1000;
    const states = runner.states();
    const m = await readMetrics(states);
    const enabled = new Set(states.map((s) => s.name));

    let text = '';
    const info = m.get('lookout_host_info')?.[0]?.labels;
    text += `lookout ${VERSION} status`;
    if (info) text += ` — ${info.hostname} · ${info.os} · kernel ${info.kernel} · ${info.arch}`;
    text += '\n';
    const boot = one(m, 'lookout_boot_time_seconds');
    if (boot !== undefined) {
      const up = Date.now() / 1000 - boot;
      text += `Booted ${new Date(boot * 1000).toISOString().replace(/\.\d+Z$/, 'Z')} (up ${humanDuration(up)})\n`;
    }
    text += '\n';

    // Host
    if (!enabled.has('host')) text += 'CPU, load, memory: the host collector is disabled\n';
    else if (!m.has('lookout_cpu_seconds_total'))
      text += 'CPU, load, memory: the host collector failed (see Collectors)\n';
    else {
      const cores = one(m, 'lookout_cpus');
      text += cpuSection(cpuBefore, cpuTimes(m), cpuSeconds, cores);
      const loads = ['lookout_load1', 'lookout_load5', 'lookout_load15'].map(
        (n) => one(m, n) ?? NaN,
      );
      text += `Load     ${loads.map((l) => l.toFixed(2)).join(' ')} (1m 5m 15m); per core ${loads
        .map((l) => (cores ? l / cores : NaN).toFixed(2))
        .join(' ')}\n`;
      const memTotal = one(m, 'lookout_memory_total_bytes') ?? NaN;
      const memAvail = one(m, 'lookout_memory_available_bytes');
      if (memAvail === undefined)
        text += `Memory   ${humanBytes(memTotal)} total (no MemAvailable)\n`;
      else
        text += `Memory   ${humanBytes(memTotal - memAvail)} used of ${humanBytes(memTotal)} (${percent(
          (memTotal - memAvail) / memTotal,
        )}), ${humanBytes(memAvail)} available\n`;
      const swapTotal = one(m, 'lookout_swap_total_bytes') ?? 0;
      const swapFree = one(m, 'lookout_swap_free_bytes') ?? 0;
      text +=
        swapTotal > 0
          ? `Swap     ${humanBytes(swapTotal - swapFree)} used of ${humanBytes(swapTotal)} (${percent(
              (swapTotal - swapFree) / swapTotal,
            )})\n`
          : 'Swap     none\n';
    }
    text += '\n';

    // Filesystems
    text += 'Filesystems\n';
    if (!enabled.has('filesystem')) text += '  the filesystem collector is disabled\n';
    else if (!m.has('lookout_filesystem_device_error'))
      text += '  the filesystem collector failed (see Collectors)\n';
    else {
      const key = (l: Record<string, string>) => l.mountpoint ?? '';
      const get = (name: string) => byLabel(m, name, 'mountpoint');
      const [size, free, avail, files, filesFree, ro] = [
        'lookout_filesystem_size_bytes',
        'lookout_filesystem_free_bytes',
        'lookout_filesystem_avail_bytes',
        'lookout_filesystem_files',
        'lookout_filesystem_files_free',
        'lookout_filesystem_readonly',
      ].map(get) as [
        Map<string, number>,
        Map<string, number>,
        Map<string, number>,
        Map<string, number>,
        Map<string, number>,
        Map<string, number>,
      ];
      const rows = (m.get('lookout_filesystem_device_error') ?? []).map((s) => {
        const mp = key(s.labels);
        const flags = ro.get(mp) ? 'ro' : '';
        if (s.value !== 0)
          return [mp, s.labels.device ?? '', s.labels.fstype ?? '', 'ERROR', '', '', '', '', flags];
        const sz = size.get(mp) ?? 0;
        const av = avail.get(mp) ?? 0;
        // As df: used excludes root-reserved blocks, and use% is used / (used + available).
        const used = sz - (free.get(mp) ?? av);
        const fi = files.get(mp) ?? 0;
        const inodes = fi > 0 ? percent((fi - (filesFree.get(mp) ?? 0)) / fi) : '-';
        return [
          mp,
          s.labels.device ?? '',
          s.labels.fstype ?? '',
          humanBytes(sz),
          humanBytes(used),
          humanBytes(av),
          used + av > 0 ? percent(used / (used + av)) : '-',
          inodes,
          flags,
        ];
      });
      text += table(
        ['MOUNTPOINT', 'DEVICE', 'TYPE', 'SIZE', 'USED', 'AVAIL', 'USE%', 'INODES%', ''],
        rows,
        [false, false, false, true, true, true, true, true, false],
      );
    }
    text += '\n';

    // Processes
    if (!enabled.has('processes')) text += 'Processes: the processes collector is disabled\n';
    else if (!m.has('lookout_processes'))
      text += 'Processes: the processes collector failed (see Collectors)\n';
    else {
      const byState = byLabel(m, 'lookout_processes', 'state');
      const total = [...byState.values()].reduce((a, b) => a + b, 0);
      const parts = [...byState].filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
      text += `Processes ${total}: ${parts.join(', ')}\n`;
      text += `Zombies   ${byState.get('zombie') ?? 0}\n`;
      const watched = [...byLabel(m, 'lookout_watched_processes', 'name')];
      if (watched.length) text += `Watched   ${watched.map(([n, c]) => `${n} ${c}`).join(', ')}\n`;
      const top = (m.get('lookout_top_process_resident_memory_bytes') ?? [])
        .slice()
        .sort((a, b) => Number(a.labels.rank) - Number(b.labels.rank));
      if (top.length) {
        const memTotal = one(m, 'lookout_memory_total_bytes');
        text += '\nBiggest processes by resident memory\n';
        text += table(
          ['RANK', 'NAME', 'RSS', 'OF RAM'],
          top.map((s) => [
            s.labels.rank ?? '',
            s.labels.name ?? '',
            humanBytes(s.value),
            memTotal ? percent(s.value / memTotal) : '-',
          ]),
          [true, false, true, true],
        );
      }
    }
    text += '\n';

    // Collectors
    let failed = 0;
    const rows = states.map((s) => {
      const bad = FAILED.has(s.outcome);
      if (bad) failed++;
      const err =
        s.outcome === 'stuck' && firstErrors.get(s.name)
          ? `${firstErrors.get(s.name)} (still not returned)`
          : (s.lastError ?? '');
      return [
        s.name,
        bad ? s.outcome.toUpperCase() : s.outcome,
        s.lastDurationSeconds === undefined
          ? ''
          : `${(s.lastDurationSeconds * 1000).toFixed(1)} ms`,
        err,
      ];
    });
    text += 'Collectors\n';
    text += table(['NAME', 'STATE', 'TOOK', 'ERROR'], rows, [false, false, true, false]);
    if (failed) text += `\n${failed} collector(s) failed.\n`;
    out.write(text);
    return failed ? 1 : 0;
  } finally {
    await runner.stop();
  }
}
