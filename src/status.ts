/**
 * `lookout status`: one collection by the same collectors `serve` runs, printed as a
 * table for an operator at a terminal. Numbers come from what each collector last saw
 * (its `lastSeen()`), the same readings /metrics serves.
 */
import type { Collector, Observer } from './collectors/collector.js';
import type { MountSeen } from './collectors/filesystem.js';
import type { HostSeen } from './collectors/host.js';
import type { ProcessesSeen } from './collectors/processes.js';
import type { ContainersSeen } from './collectors/containers.js';
import type { Config } from './config/schema.js';
import { buildRunner } from './exporter/build.js';
import type { ActionReport, Outcome } from './exporter/runner.js';
import type { CpuTimes } from './lib/procfs.js';
import { createLogger, errorText } from './lib/log.js';
import { isStateReporter } from './lib/storage.js';
import { existsSync } from 'node:fs';
import { VERSION } from './version.js';

/** CPU utilisation needs two readings of the counters; this far apart is long enough to mean something. */
const CPU_SAMPLE_MS = 500;

/** The collector of that name, as the observer its module builds, when it is enabled. */
function observer<T>(
  collectors: ReadonlyMap<string, Collector>,
  name: string,
): Observer<T> | undefined {
  return collectors.get(name) as (Collector & Observer<T>) | undefined;
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

function cpuSection(
  before: CpuTimes | undefined,
  after: CpuTimes,
  seconds: number,
  cores: number,
): string {
  const delta = new Map<string, number>();
  let total = 0;
  for (const [mode, v] of Object.entries(after)) {
    const d = Math.max(0, v - (before?.[mode as keyof CpuTimes] ?? v));
    delta.set(mode, d);
    total += d;
  }
  if (total <= 0) return `CPU      no CPU time passed between the two readings\n`;
  const share = (mode: string) => (delta.get(mode) ?? 0) / total;
  const busy = 1 - share('idle') - share('iowait');
  const parts = ['user', 'system', 'iowait', 'steal'].map((m) => `${m} ${percent(share(m))}`);
  return `CPU      ${percent(busy)} busy over ${seconds.toFixed(1)} s on ${cores} cores (${parts.join(', ')})\n`;
}

/**
 * What each collector's actions would do now, for `lookout status` and `lookout check`:
 * planned from the collection just made, never run. Empty when no collector has actions.
 */
export function formatActions(reports: readonly ActionReport[]): string {
  if (reports.length === 0) return '';
  let text =
    '\nActions: what each would do now (only lookout serve runs them; this command never does)\n';
  for (const r of reports) {
    const limit = r.maxPerHour === undefined ? '' : `, at most ${r.maxPerHour} runs an hour`;
    const state = r.enabled
      ? `on${limit}`
      : r.maxPerHour === undefined
        ? 'off (this collector has no actions block)'
        : `off: collectors.${r.collector}.actions.enabled is false${limit}`;
    text += `  ${r.collector} ${r.action}: ${r.description}\n    ${state}\n`;
    if (r.error !== undefined) text += `    ${r.error}\n`;
    else if (!r.plans?.length) text += '    nothing to do now\n';
    else for (const p of r.plans) text += `    ${p.held ? '' : 'would '}${p.what}: ${p.why}\n`;
  }
  return text;
}

/**
 * What the running service keeps under storage.path, as each collector that keeps state
 * reads it (opened read-only: nothing is made or changed).
 */
async function stateSection(
  root: string,
  collectors: ReadonlyMap<string, Collector>,
): Promise<string> {
  let text = `\nState in ${root}\n`;
  if (!existsSync(root)) return text + '  none yet (no such directory)\n';
  const rows: string[][] = [];
  for (const [name, c] of collectors) {
    if (!isStateReporter(c)) continue;
    // One collector's unreadable state is its row's news, not the end of the report.
    try {
      for (const line of await c.describeState()) rows.push([name, line]);
    } catch (err) {
      rows.push([name, `cannot read its state: ${errorText(err)}`]);
    }
  }
  if (rows.length === 0) return text + '  nothing kept by the enabled collectors\n';
  return text + table(['COLLECTOR', 'KEPT'], rows).replace(/^/gm, '  ');
}

/**
 * The containers as `docker stats` shows them: CPU % of one core over the two refreshes
 * status makes, memory working set against the limit, health, and Docker's restart count.
 */
export function containersSection(seen: ContainersSeen | undefined): string {
  if (!seen) return 'Containers: the containers collector failed (see Collectors)\n';
  if (seen.containers.length === 0) return `Containers: none (${seen.endpoint})\n`;
  const running = seen.containers.filter((c) => c.running).length;
  let text = `Containers ${seen.containers.length}, ${running} running (${seen.endpoint})\n`;
  const rows = [...seen.containers]
    .sort(
      (a, b) => Number(b.running) - Number(a.running) || a.labels.name.localeCompare(b.labels.name),
    )
    .map((c) => {
      const mem = c.memoryWorkingSetBytes;
      const state = c.error
        ? `${c.state} (not read: ${c.error})`
        : c.state === 'exited' && c.exitCode !== undefined
          ? `exited (${c.exitCode})${c.oomKilled ? ' OOM' : ''}`
          : c.state;
      return [
        c.labels.name,
        state,
        c.cpuCores === undefined ? '-' : `${(c.cpuCores * 100).toFixed(1)} %`,
        mem === undefined ? '-' : humanBytes(mem),
        c.memoryLimitBytes === undefined ? '-' : humanBytes(c.memoryLimitBytes),
        mem === undefined || c.memoryLimitBytes === undefined
          ? '-'
          : percent(mem / c.memoryLimitBytes),
        c.health,
        String(c.restartCount),
      ];
    });
  text += table(['NAME', 'STATE', 'CPU %', 'MEM', 'LIMIT', 'MEM %', 'HEALTH', 'RESTARTS'], rows, [
    false,
    false,
    true,
    true,
    true,
    true,
    false,
    true,
  ]);
  if (seen.omitted > 0) text += `(${seen.omitted} more left out by max_containers)\n`;
  return text;
}

const FAILED: ReadonlySet<Outcome> = new Set(['failed', 'timeout', 'stuck', 'pending']);

export async function status(config: Config, out: NodeJS.WritableStream): Promise<number> {
  // Failures are printed in the table below; log lines would only repeat them.
  const { runner, http } = await buildRunner(config, createLogger('error'));
  const collectors = runner.collectors();
  const host = observer<HostSeen>(collectors, 'host');
  const filesystem = observer<MountSeen[]>(collectors, 'filesystem');
  const processes = observer<ProcessesSeen>(collectors, 'processes');
  const containers = observer<ContainersSeen>(collectors, 'containers');
  try {
    await runner.collectOnce({ services: false });
    const firstErrors = new Map(runner.states().map((s) => [s.name, s.lastError]));
    const cpuBefore = host?.lastSeen()?.stat.cpu;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, CPU_SAMPLE_MS));
    await runner.collectOnce({ services: false });
    const cpuSeconds = (performance.now() - t0) / 1000;
    const states = runner.states();
    const outcome = new Map(states.map((s) => [s.name, s.outcome]));
    // A reading from the first round is not shown as current when the second failed.
    const fresh = <T>(name: string, o: Observer<T> | undefined) =>
      outcome.get(name) === 'ok' ? o?.lastSeen() : undefined;
    const h = fresh('host', host);
    const fs = fresh('filesystem', filesystem);
    const ps = fresh('processes', processes);
    const cs = fresh('containers', containers);

    let text = `lookout ${VERSION} status`;
    if (h) {
      const i = h.info;
      text += ` — ${i.hostname} · ${i.os} · kernel ${i.kernel} · ${i.arch}\n`;
      const up = Date.now() / 1000 - h.stat.bootTime;
      text += `Booted ${new Date(h.stat.bootTime * 1000).toISOString().replace(/\.\d+Z$/, 'Z')} (up ${humanDuration(up)})\n`;
    } else text += '\n';
    text += '\n';

    // Host
    if (!host) text += 'CPU, load, memory: the host collector is disabled\n';
    else if (!h) text += 'CPU, load, memory: the host collector failed (see Collectors)\n';
    else {
      const cores = h.stat.cpuCount;
      text += cpuSection(cpuBefore, h.stat.cpu, cpuSeconds, cores);
      const loads = [h.load.load1, h.load.load5, h.load.load15];
      text += `Load     ${loads.map((l) => l.toFixed(2)).join(' ')} (1m 5m 15m); per core ${loads
        .map((l) => (cores ? l / cores : NaN).toFixed(2))
        .join(' ')}\n`;
      const { total: memTotal, available: memAvail, swapTotal, swapFree } = h.memory;
      if (memAvail === undefined)
        text += `Memory   ${humanBytes(memTotal)} total (no MemAvailable)\n`;
      else
        text += `Memory   ${humanBytes(memTotal - memAvail)} used of ${humanBytes(memTotal)} (${percent(
          (memTotal - memAvail) / memTotal,
        )}), ${humanBytes(memAvail)} available\n`;
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
    if (!filesystem) text += '  the filesystem collector is disabled\n';
    else if (!fs) text += '  the filesystem collector failed (see Collectors)\n';
    else {
      const rows = fs.map(({ mount, stats }) => {
        const flags = mount.readonly ? 'ro' : '';
        const where = [mount.mountpoint, mount.device, mount.fstype];
        if (!stats) return [...where, 'ERROR', '', '', '', '', flags];
        const size = stats.blocks * stats.bsize;
        const avail = stats.bavail * stats.bsize;
        // As df: used excludes root-reserved blocks, and use% is used / (used + available).
        const used = size - stats.bfree * stats.bsize;
        const inodes = stats.files > 0 ? percent((stats.files - stats.ffree) / stats.files) : '-';
        return [
          ...where,
          humanBytes(size),
          humanBytes(used),
          humanBytes(avail),
          used + avail > 0 ? percent(used / (used + avail)) : '-',
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
    if (!processes) text += 'Processes: the processes collector is disabled\n';
    else if (!ps) text += 'Processes: the processes collector failed (see Collectors)\n';
    else {
      const total = [...ps.states.values()].reduce((a, b) => a + b, 0);
      const parts = [...ps.states].filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
      text += `Processes ${total}: ${parts.join(', ')}\n`;
      text += `Zombies   ${ps.states.get('zombie') ?? 0}\n`;
      const watched = [...ps.watched];
      if (watched.length) text += `Watched   ${watched.map(([n, c]) => `${n} ${c}`).join(', ')}\n`;
      if (ps.top.length) {
        const memTotal = h?.memory.total;
        text += '\nBiggest processes by resident memory\n';
        text += table(
          ['RANK', 'NAME', 'RSS', 'OF RAM'],
          ps.top.map((p, i) => [
            String(i + 1),
            p.name,
            humanBytes(p.bytes),
            memTotal ? percent(p.bytes / memTotal) : '-',
          ]),
          [true, false, true, true],
        );
      }
    }
    text += '\n';
    if (containers && (cs || outcome.get('containers') !== 'nothing'))
      text += containersSection(cs) + '\n';
    // Collectors
    let failed = 0;
    const rows = states.map((s) => {
      // A service counts events in the running lookout; status does not start it.
      if (!s.parts.includes('collect'))
        return [s.name, 'service (see the running service)', '', ''];
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
    text += await stateSection(config.storage.path, collectors);
    if (failed) text += `\n${failed} collector(s) failed.\n`;
    text += formatActions(runner.actionReports());
    out.write(text);
    return failed ? 1 : 0;
  } finally {
    await runner.stop();
    await http.close();
  }
}
