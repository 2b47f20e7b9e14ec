import { readFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { join } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
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

  return {
    lastSeen: () => seen,
    close: () => files.close(),
    async collect({ signal, log }) {
      const registry = new Registry();
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
      const fellBack = netDev.fellBack ?? conntrack?.fellBack;
      if (fellBack && !warnedNetFallback) {
        warnedNetFallback = true;
        log.warn("network counters come from lookout's own network namespace", {
          err: fellBack,
        });
      }
      const registers = [registry];

      const cpu = new Counter({
        name: 'lookout_cpu_seconds_total',
        help: 'CPU time spent in each mode since boot, summed over all CPUs (guest time is inside user and nice).',
        labelNames: ['mode'],
        registers,
      });
      // A fresh registry each refresh: inc() by the absolute value read from /proc.
      for (const mode of CPU_MODES) cpu.inc({ mode }, stat.cpu[mode]);

      const gauge = (name: string, help: string, value: number | undefined) => {
        if (value === undefined) return;
        new Gauge({ name, help, registers }).set(value);
      };
      gauge('lookout_cpus', 'Number of online CPUs.', stat.cpuCount);
      gauge('lookout_load1', 'Load average over 1 minute.', load.load1);
      gauge('lookout_load5', 'Load average over 5 minutes.', load.load5);
      gauge('lookout_load15', 'Load average over 15 minutes.', load.load15);

      const memTotal = mem.get('MemTotal');
      if (memTotal === undefined) throw new CollectorError(`${proc('meminfo')}: no MemTotal`);
      gauge('lookout_memory_total_bytes', 'Usable RAM (MemTotal).', memTotal);
      // MemAvailable exists since Linux 3.14; no estimate is made up where it is missing.
      gauge(
        'lookout_memory_available_bytes',
        'RAM available for starting new applications without swapping (MemAvailable).',
        mem.get('MemAvailable'),
      );
      gauge('lookout_swap_total_bytes', 'Swap space (SwapTotal).', mem.get('SwapTotal') ?? 0);
      gauge('lookout_swap_free_bytes', 'Unused swap space (SwapFree).', mem.get('SwapFree') ?? 0);
      gauge('lookout_boot_time_seconds', 'When the host booted (Unix time).', stat.bootTime);

      // Counters read as absolute values; a field this kernel lacks is no series at all.
      const counter = (name: string, help: string, value: number | undefined) => {
        if (value === undefined) return;
        // parseVmstat keeps negatives (nr_* gauges drift below 0); an event count never is.
        if (value < 0) throw new CollectorError(`${proc('vmstat')}: ${name} read ${value}`);
        new Counter({ name, help, registers }).inc(value);
      };
      counter(
        'lookout_oom_kills_total',
        'Processes killed by the kernel OOM killer since boot (/proc/vmstat oom_kill; absent before Linux 4.13).',
        vmstat.get('oom_kill'),
      );
      counter(
        'lookout_swap_in_pages_total',
        'Pages read in from swap since boot, in pages, not bytes (/proc/vmstat pswpin).',
        vmstat.get('pswpin'),
      );
      counter(
        'lookout_swap_out_pages_total',
        'Pages written out to swap since boot, in pages, not bytes (/proc/vmstat pswpout).',
        vmstat.get('pswpout'),
      );
      counter(
        'lookout_major_page_faults_total',
        'Major page faults since boot: accesses that had to read the page from disk (/proc/vmstat pgmajfault).',
        vmstat.get('pgmajfault'),
      );
      gauge(
        'lookout_file_descriptors',
        'File handles allocated system-wide (/proc/sys/fs/file-nr, first field; since Linux 2.6 all are in use).',
        fileNr.allocated,
      );
      gauge(
        'lookout_file_descriptors_limit',
        'System-wide limit on file handles, fs.file-max (/proc/sys/fs/file-nr, third field).',
        fileNr.max,
      );
      gauge(
        'lookout_conntrack_entries',
        "Entries in the host network namespace's connection tracking table (/proc/1/net/stat/nf_conntrack entries, as nf_conntrack_count); absent without the nf_conntrack module.",
        conntrack === undefined ? undefined : parseConntrackEntries(conntrack.text),
      );
      gauge(
        'lookout_conntrack_entries_limit',
        'Size limit of the connection tracking table (/proc/sys/net/netfilter/nf_conntrack_max); absent without the nf_conntrack module.',
        conntrackMaxText === undefined
          ? undefined
          : parseSysctlInteger(conntrackMaxText, 'nf_conntrack_max'),
      );

      const rx = new Counter({
        name: 'lookout_network_receive_bytes_total',
        help: 'Bytes received by the network device.',
        labelNames: ['device'],
        registers,
      });
      const tx = new Counter({
        name: 'lookout_network_transmit_bytes_total',
        help: 'Bytes transmitted by the network device.',
        labelNames: ['device'],
        registers,
      });
      const perDevice = (name: string, help: string) =>
        new Counter({ name, help, labelNames: ['device'], registers });
      const rxErrors = perDevice(
        'lookout_network_receive_errors_total',
        'Receive errors on the network device (/proc/net/dev receive errs).',
      );
      const txErrors = perDevice(
        'lookout_network_transmit_errors_total',
        'Transmit errors on the network device (/proc/net/dev transmit errs).',
      );
      const rxDrops = perDevice(
        'lookout_network_receive_drops_total',
        'Received packets dropped on the network device (/proc/net/dev receive drop).',
      );
      const txDrops = perDevice(
        'lookout_network_transmit_drops_total',
        'Packets dropped on transmit on the network device (/proc/net/dev transmit drop).',
      );
      for (const dev of net) {
        if (devicesExclude.test(dev.device)) continue;
        const device = { device: dev.device };
        rx.inc(device, dev.receiveBytes);
        tx.inc(device, dev.transmitBytes);
        rxErrors.inc(device, dev.receiveErrors);
        txErrors.inc(device, dev.transmitErrors);
        rxDrops.inc(device, dev.receiveDrops);
        txDrops.inc(device, dev.transmitDrops);
      }

      const info = {
        hostname,
        kernel: kernel.trim(),
        os: osRelease === undefined ? 'Linux' : osPrettyName(parseOsRelease(osRelease)),
        // uname -m of the running kernel (x86_64, aarch64), not Node's own name (x64).
        arch: machine(),
      };
      new Gauge({
        name: 'lookout_host_info',
        help: 'Host metadata; always 1.',
        labelNames: ['hostname', 'kernel', 'os', 'arch'],
        registers,
      }).set(info, 1);
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
      return registry;
    },
  };
}

registerCollector({
  name: 'host',
  description:
    'CPU time, load, memory, swap, memory pressure, OOM kills, network bytes, errors and drops, conntrack, file descriptors, boot time and host info from /proc (lookout_cpu_*, lookout_load*, lookout_memory_*, ...)',
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
    'lookout_network_receive_errors_total',
    'lookout_network_transmit_errors_total',
    'lookout_network_receive_drops_total',
    'lookout_network_transmit_drops_total',
    'lookout_host_info',
  ],
  schema: hostSchema,
  create: ({ config, paths }) => createHostCollector(config, paths),
});
