import { readFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { join } from 'node:path';
import type { Metric } from 'prom-client';
import { Counter, Gauge } from '../lib/prom.js';
import { z } from 'zod';
import {
  CPU_MODES,
  osPrettyName,
  parseConntrackEntries,
  parseFileNr,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseOsRelease,
  parseStat,
  parseSysctlInteger,
  parseVmstat,
  type LoadAvg,
  type Stat,
} from '../lib/procfs.js';
import {
  CollectorError,
  collectorSchema,
  registerCollector,
  type Collector,
  type HostPaths,
  type Observer,
} from './collector.js';
import { regexSource } from '../config/regex.js';
import { ProcFiles } from './procfile.js';
import { Shown } from './shown.js';
import { setCounterTo } from './counter.js';

export const hostSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '5s' },
  {
    network: z
      .strictObject({
        devices_exclude: regexSource('network device names')
          .default('^lo$')
          .describe(
            'Network devices (as in /proc/net/dev) to leave out, a regular expression; "^lo$" drops loopback. Use "^(lo|veth.*)$" on container hosts.',
          ),
      })
      .prefault({})
      .describe('Per-device network byte counters.'),
  },
);

export type HostConfig = z.output<typeof hostSchema>;

/**
 * The kernel hostname is per UTS namespace, so in a container it is the container's;
 * with the host's root mounted elsewhere, its /etc/hostname names the host.
 */
async function readRootfsHostname(paths: HostPaths, signal: AbortSignal) {
  if (paths.rootfs === '/') return undefined;
  const path = join(paths.rootfs, 'etc/hostname');
  try {
    return (await readFile(path, { encoding: 'utf8', signal })).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CollectorError(`read ${path}`, { cause: err });
  }
}

/** os-release lives in /etc, or in /usr/lib where /etc has none (os-release(5)). */
async function readOsRelease(rootfs: string, signal: AbortSignal): Promise<string | undefined> {
  for (const rel of ['etc/os-release', 'usr/lib/os-release']) {
    try {
      return await readFile(join(rootfs, rel), { encoding: 'utf8', signal });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new CollectorError(`read ${join(rootfs, rel)}`, { cause: err });
      }
    }
  }
  return undefined;
}

/**
 * Files under rootfs are on a real filesystem, so they are read through the thread pool
 * (four hand-offs, each waking the event loop). What they say changes on a rename or an
 * upgrade, not between refreshes: they are read again at most this often.
 */
export const ROOTFS_METADATA_MAX_AGE_MS = 5 * 60_000;

/** The fields of /proc/meminfo and /proc/vmstat the host collector exports. */
const MEMINFO_FIELDS = ['MemTotal', 'MemAvailable', 'SwapTotal', 'SwapFree'];
const VMSTAT_FIELDS = ['oom_kill', 'pswpin', 'pswpout', 'pgmajfault'];

/** What the host collector read at its last refresh. */
export interface HostSeen {
  stat: Stat;
  load: LoadAvg;
  memory: { total: number; available?: number; swapTotal: number; swapFree: number };
  info: { hostname: string; kernel: string; os: string; arch: string };
}

/** A counter for a kernel counter read whole from /proc (see hostMetrics). */
function counter(name: string, help: string, labelNames: readonly string[] = []) {
  return new Counter({ name, help, labelNames, registers: [] });
}

function gauge(name: string, help: string, labelNames: readonly string[] = []) {
  return new Gauge({ name, help, labelNames, registers: [] });
}

/**
 * The host collector's metric objects, made once. A kernel counter is read as its
 * absolute value, and each refresh sets it so (setCounterTo: reset() then inc(); a Gauge
 * would render TYPE gauge). A labelled counter is reset() whole, then inc()ed per label
 * set: that also drops the label sets that vanished (a removed network device) and keeps
 * the order /proc lists them in.
 */
function hostMetrics() {
  const perDevice = (name: string, help: string) => counter(name, help, ['device']);
  return {
    cpu: counter(
      'lookout_cpu_seconds_total',
      'CPU time spent in each mode since boot, summed over all CPUs (guest time is inside user and nice).',
      ['mode'],
    ),
    cpus: gauge('lookout_cpus', 'Number of online CPUs.'),
    load1: gauge('lookout_load1', 'Load average over 1 minute.'),
    load5: gauge('lookout_load5', 'Load average over 5 minutes.'),
    load15: gauge('lookout_load15', 'Load average over 15 minutes.'),
    memTotal: gauge('lookout_memory_total_bytes', 'Usable RAM (MemTotal).'),
    memAvailable: gauge(
      'lookout_memory_available_bytes',
      'RAM available for starting new applications without swapping (MemAvailable).',
    ),
    swapTotal: gauge('lookout_swap_total_bytes', 'Swap space (SwapTotal).'),
    swapFree: gauge('lookout_swap_free_bytes', 'Unused swap space (SwapFree).'),
    bootTime: gauge('lookout_boot_time_seconds', 'When the host booted (Unix time).'),
    oomKills: counter(
      'lookout_oom_kills_total',
      'Processes killed by the kernel OOM killer since boot (/proc/vmstat oom_kill; absent before Linux 4.13).',
    ),
    swapIn: counter(
      'lookout_swap_in_pages_total',
      'Pages read in from swap since boot, in pages, not bytes (/proc/vmstat pswpin).',
    ),
    swapOut: counter(
      'lookout_swap_out_pages_total',
      'Pages written out to swap since boot, in pages, not bytes (/proc/vmstat pswpout).',
    ),
    majorFaults: counter(
      'lookout_major_page_faults_total',
      'Major page faults since boot: accesses that had to read the page from disk (/proc/vmstat pgmajfault).',
    ),
    fds: gauge(
      'lookout_file_descriptors',
      'File handles allocated system-wide (/proc/sys/fs/file-nr, first field; since Linux 2.6 all are in use).',
    ),
    fdsLimit: gauge(
      'lookout_file_descriptors_limit',
      'System-wide limit on file handles, fs.file-max (/proc/sys/fs/file-nr, third field).',
    ),
    conntrack: gauge(
      'lookout_conntrack_entries',
      "Entries in the host network namespace's connection tracking table (/proc/1/net/stat/nf_conntrack entries, as nf_conntrack_count); absent without the nf_conntrack module.",
    ),
    conntrackLimit: gauge(
      'lookout_conntrack_entries_limit',
      'Size limit of the connection tracking table (/proc/sys/net/netfilter/nf_conntrack_max); absent without the nf_conntrack module.',
    ),
    rx: perDevice('lookout_network_receive_bytes_total', 'Bytes received by the network device.'),
    tx: perDevice(
      'lookout_network_transmit_bytes_total',
      'Bytes transmitted by the network device.',
    ),
    rxPackets: perDevice(
      'lookout_network_receive_packets_total',
      'Good packets received by the network device (/proc/net/dev receive packets; packets with errors are not in it).',
    ),
    txPackets: perDevice(
      'lookout_network_transmit_packets_total',
      'Packets the network device transmitted (/proc/net/dev transmit packets; failed and dropped ones are not in it).',
    ),
    rxErrors: perDevice(
      'lookout_network_receive_errors_total',
      'Receive errors on the network device (/proc/net/dev receive errs).',
    ),
    txErrors: perDevice(
      'lookout_network_transmit_errors_total',
      'Transmit errors on the network device (/proc/net/dev transmit errs).',
    ),
    rxDrops: perDevice(
      'lookout_network_receive_drops_total',
      'Received packets dropped on the network device (/proc/net/dev receive drop).',
    ),
    txDrops: perDevice(
      'lookout_network_transmit_drops_total',
      'Packets dropped on transmit on the network device (/proc/net/dev transmit drop).',
    ),
    info: gauge('lookout_host_info', 'Host metadata; always 1.', [
      'hostname',
      'kernel',
      'os',
      'arch',
    ]),
  };
}

/** The /proc/vmstat fields exported as counters, by metric name. */
const VMSTAT_COUNTERS = [
  ['lookout_oom_kills_total', 'oom_kill'],
  ['lookout_swap_in_pages_total', 'pswpin'],
  ['lookout_swap_out_pages_total', 'pswpout'],
  ['lookout_major_page_faults_total', 'pgmajfault'],
] as const;

/** One label object per mode, made once: prom-client keeps the object it is given. */
const MODE_LABELS = CPU_MODES.map((mode) => ({ mode }));

export function createHostCollector(
  config: HostConfig,
  paths: HostPaths,
  rootfsMaxAgeMs = ROOTFS_METADATA_MAX_AGE_MS,
): Collector & Observer<HostSeen> {
  let seen: HostSeen | undefined;
  const devicesExclude = new RegExp(config.network.devices_exclude);
  const proc = (rel: string) => join(paths.procfs, rel);
  let warnedNetFallback = false;
  let rootfsMetadata: { hostname?: string; osRelease?: string; readAt: number } | undefined;
  const files = new ProcFiles(paths.procfs);
  const m = hostMetrics();
  const shown = new Shown();

  return {
    lastSeen: () => seen,
    close: () => files.close(),
    async collect({ signal, log }) {
      if (
        rootfsMetadata === undefined ||
        performance.now() - rootfsMetadata.readAt >= rootfsMaxAgeMs
      ) {
        const [hostname, osRelease] = await Promise.all([
          readRootfsHostname(paths, signal),
          readOsRelease(paths.rootfs, signal),
        ]);
        rootfsMetadata = { hostname, osRelease, readAt: performance.now() };
      }
      const { osRelease } = rootfsMetadata;
      const hostname = rootfsMetadata.hostname ?? files.read(proc('sys/kernel/hostname')).trim();
      const statText = files.read(proc('stat'));
      const loadText = files.read(proc('loadavg'));
      const memText = files.read(proc('meminfo'));
      const netDev = files.readHost(paths.procfs, 'net/dev');
      const kernel = files.read(proc('sys/kernel/osrelease'));
      const vmstatText = files.read(proc('vmstat'));
      // fs.file-nr is system-wide, not per namespace: our own /proc/sys is the host's.
      const fileNrText = files.read(proc('sys/fs/file-nr'));
      // The conntrack count is per network namespace, and /proc/sys/net/* shows the
      // reader's namespace only (there is no /proc/1/sys): net/stat/nf_conntrack, which
      // PID 1 has, holds the same count for the host's. nf_conntrack_max is one global
      // limit, the same in every namespace. Both are missing without the module loaded.
      const conntrack = files.readOptionalHost(paths.procfs, 'net/stat/nf_conntrack');
      const conntrackMaxText = files.readOptional(proc('sys/net/netfilter/nf_conntrack_max'));
      const stat = parseStat(statText);
      const load = parseLoadavg(loadText);
      const mem = parseMeminfo(memText, MEMINFO_FIELDS);
      const net = parseNetDev(netDev.text);
      const vmstat = parseVmstat(vmstatText, VMSTAT_FIELDS);
      const fileNr = parseFileNr(fileNrText);
      const conntrackEntries =
        conntrack === undefined ? undefined : parseConntrackEntries(conntrack.text);
      const conntrackMax =
        conntrackMaxText === undefined
          ? undefined
          : parseSysctlInteger(conntrackMaxText, 'nf_conntrack_max');
      const memTotal = mem.get('MemTotal');
      if (memTotal === undefined) throw new CollectorError(`${proc('meminfo')}: no MemTotal`);
      // Every check that can fail the refresh comes before the first value is set, so a
      // failed refresh leaves no family half written.
      for (const [name, field] of VMSTAT_COUNTERS) {
        const value = vmstat.get(field);
        // parseVmstat keeps negatives (nr_* gauges drift below 0); an event count never is.
        if (value !== undefined && value < 0)
          throw new CollectorError(`${proc('vmstat')}: ${name} read ${value}`);
      }
      const fellBack = netDev.fellBack ?? conntrack?.fellBack;
      if (fellBack && !warnedNetFallback) {
        warnedNetFallback = true;
        log.warn("network counters come from lookout's own network namespace", {
          err: fellBack,
        });
      }
      const info = {
        hostname,
        kernel: kernel.trim(),
        os: osRelease === undefined ? 'Linux' : osPrettyName(parseOsRelease(osRelease)),
        // uname -m of the running kernel (x86_64, aarch64), not Node's own name (x64).
        arch: machine(),
      };
      // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
      signal.throwIfAborted();

      // The families with a value now, in the order a fresh registry used to list them.
      const present: Metric[] = [];
      const setGauge = (metric: Gauge, value: number | undefined) => {
        if (value === undefined) return;
        metric.set(value);
        present.push(metric);
      };
      // A field this kernel lacks is no series at all.
      const setCounter = (metric: Counter, value: number | undefined) => {
        if (value === undefined) return;
        setCounterTo(metric, value);
        present.push(metric);
      };

      m.cpu.reset();
      for (let i = 0; i < CPU_MODES.length; i++)
        m.cpu.inc(MODE_LABELS[i]!, stat.cpu[CPU_MODES[i]!]);
      present.push(m.cpu);
      setGauge(m.cpus, stat.cpuCount);
      setGauge(m.load1, load.load1);
      setGauge(m.load5, load.load5);
      setGauge(m.load15, load.load15);
      setGauge(m.memTotal, memTotal);
      // MemAvailable exists since Linux 3.14; no estimate is made up where it is missing.
      setGauge(m.memAvailable, mem.get('MemAvailable'));
      setGauge(m.swapTotal, mem.get('SwapTotal') ?? 0);
      setGauge(m.swapFree, mem.get('SwapFree') ?? 0);
      setGauge(m.bootTime, stat.bootTime);
      setCounter(m.oomKills, vmstat.get('oom_kill'));
      setCounter(m.swapIn, vmstat.get('pswpin'));
      setCounter(m.swapOut, vmstat.get('pswpout'));
      setCounter(m.majorFaults, vmstat.get('pgmajfault'));
      setGauge(m.fds, fileNr.allocated);
      setGauge(m.fdsLimit, fileNr.max);
      setGauge(m.conntrack, conntrackEntries);
      setGauge(m.conntrackLimit, conntrackMax);

      const perDevice = [
        m.rx,
        m.tx,
        m.rxPackets,
        m.txPackets,
        m.rxErrors,
        m.txErrors,
        m.rxDrops,
        m.txDrops,
      ];
      for (const c of perDevice) c.reset();
      for (const dev of net) {
        if (devicesExclude.test(dev.device)) continue;
        const device = { device: dev.device };
        m.rx.inc(device, dev.receiveBytes);
        m.tx.inc(device, dev.transmitBytes);
        m.rxPackets.inc(device, dev.receivePackets);
        m.txPackets.inc(device, dev.transmitPackets);
        m.rxErrors.inc(device, dev.receiveErrors);
        m.txErrors.inc(device, dev.transmitErrors);
        m.rxDrops.inc(device, dev.receiveDrops);
        m.txDrops.inc(device, dev.transmitDrops);
      }
      present.push(...perDevice);

      m.info.reset();
      m.info.set(info, 1);
      present.push(m.info);
      seen = {
        stat,
        load,
        memory: {
          total: memTotal,
          available: mem.get('MemAvailable'),
          swapTotal: mem.get('SwapTotal') ?? 0,
          swapFree: mem.get('SwapFree') ?? 0,
        },
        info,
      };
      return shown.show(present);
    },
  };
}

registerCollector({
  name: 'host',
  description:
    'CPU time, load, memory, swap, memory pressure, OOM kills, network bytes, packets, errors and drops, conntrack, file descriptors, boot time and host info from /proc (lookout_cpu_*, lookout_load*, lookout_memory_*, ...)',
  metrics: [
    'lookout_cpu_seconds_total',
    'lookout_cpus',
    'lookout_load1',
    'lookout_load5',
    'lookout_load15',
    'lookout_memory_total_bytes',
    'lookout_memory_available_bytes',
    'lookout_swap_total_bytes',
    'lookout_swap_free_bytes',
    'lookout_boot_time_seconds',
    'lookout_oom_kills_total',
    'lookout_swap_in_pages_total',
    'lookout_swap_out_pages_total',
    'lookout_major_page_faults_total',
    'lookout_file_descriptors',
    'lookout_file_descriptors_limit',
    'lookout_conntrack_entries',
    'lookout_conntrack_entries_limit',
    'lookout_network_receive_bytes_total',
    'lookout_network_transmit_bytes_total',
    'lookout_network_receive_packets_total',
    'lookout_network_transmit_packets_total',
    'lookout_network_receive_errors_total',
    'lookout_network_transmit_errors_total',
    'lookout_network_receive_drops_total',
    'lookout_network_transmit_drops_total',
    'lookout_host_info',
  ],
  schema: hostSchema,
  create: ({ config, paths }) => createHostCollector(config, paths),
});
