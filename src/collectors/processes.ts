import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { setImmediate } from 'node:timers/promises';
import { Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import {
  COMMON_PROCESS_STATES,
  newPidStatScan,
  parseAuxvPageSize,
  processStateName,
  scanPidStat,
  USER_HZ,
} from '../lib/procfs.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import {
  CollectorError,
  collectorSchema,
  registerCollector,
  type Collector,
  type HostPaths,
  type Observer,
} from './collector.js';

/** Longest `name` label value; comm is 15 bytes for user processes, longer only for kernel threads. */
export const NAME_LABEL_MAX = 64;
/** The kernel keeps TASK_COMM_LEN - 1 = 15 bytes of a command name. */
const COMM_MAX_BYTES = 15;
/** Pids read between two yields to the event loop (about 0.1 ms of work). */
const WALK_CHUNK = 128;
/** /proc/<pid>/stat is ~300 bytes; a 4 KiB buffer per worker reads it in one call. */
const STAT_BUFFER_BYTES = 4096;
/**
 * At most this many /proc/<pid>/stat files are kept open between walks (see readStat);
 * past it, the rest are opened and closed each walk as before. Node raises its soft
 * descriptor limit to the hard one (20000 here, 524288 under systemd), so this stays far
 * from it.
 */
export const MAX_KEPT_STAT_FDS = 2048;
const DEFAULT_PAGE_SIZE = 4096;

export const processesSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '10s' },
  {
    watch: z
      .array(z.string().min(1).max(NAME_LABEL_MAX))
      .default(['nginx', 'dockerd'])
      .describe(
        'Process names to count in lookout_watched_processes{name} (0 when none runs), matched on the kernel command name (comm, first 15 bytes).',
      ),
    top: z
      .number()
      .int()
      .min(0)
      .max(50)
      .default(5)
      .describe(
        'How many of the biggest processes by resident memory, and of the busiest by CPU, to export as lookout_top_process_resident_memory_bytes{rank,name} and lookout_top_process_cpu_usage_ratio{rank,name}; 0 turns both off.',
      ),
  },
);

export type ProcessesConfig = z.output<typeof processesSchema>;

/** The process exited while we walked /proc: not a failure, and not counted. */
function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/** /proc mounted with hidepid: other users' processes exist but are not ours to read. */
function isHidden(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

const HIDDEN = Symbol('hidden');
/** A stat file that filled the read buffer, so may be longer. */
const LONG = Symbol('long');

/**
 * Reads /proc/<pid>/stat files synchronously, keeping each one open between walks: a
 * read at offset 0 of an open stat file makes the kernel write it anew, so a walk costs
 * one pread per pid instead of open, read and close. Measured on this project's 2-core
 * machine over 123 pids: 2.0 ms of CPU per walk opening each file, 0.86 ms on kept
 * descriptors (path lookup under /proc is most of an open). A kept descriptor belongs to
 * one process, not to its pid: once that process is gone the read fails with ESRCH, even
 * if the pid has been reused, and the file is opened anew by path.
 *
 * The kernel writes these from memory (no disk, no network, no mm lock), so a read never
 * waits; through the thread pool a walk of 63 pids cost 4.5 ms (three hand-offs per
 * file). Walks run in the background, never on a scrape, and yield between chunks
 * (WALK_CHUNK) so a scrape is not held behind a host with many pids.
 */
class StatReader {
  /** pid → descriptor of its stat file, and the walk that last saw the pid. */
  private readonly kept = new Map<string, { fd: number; walk: number }>();
  private walk = 0;
  // Safe to share across refreshes: a walk is synchronous between yields, and uses the
  // buffer only inside one read call; the runner never runs two refreshes of a collector at once.
  private readonly buffer = Buffer.allocUnsafe(STAT_BUFFER_BYTES);
  /** The bytes of the last read: the shared buffer, or a whole file that did not fit it. */
  bytes: Buffer = this.buffer;
  private readonly buffers = [this.buffer];
  /**
   * The same bytes as a plain Uint8Array, for scanPidStat: Buffer's own indexOf is a
   * JavaScript wrapper that showed in the profile; a Uint8Array's is V8's builtin.
   */
  view: Uint8Array = new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, STAT_BUFFER_BYTES);
  private readonly bufferView = this.view;

  constructor(private readonly procfs: string) {}

  /** Call once before each walk. */
  startWalk(): void {
    this.walk++;
  }

  /**
   * The length of the pid's stat line, whose bytes are then in `bytes` until the next
   * read; undefined when the process has gone, HIDDEN when we may not read it.
   */
  read(pid: string): number | undefined | typeof HIDDEN {
    this.bytes = this.buffer;
    this.view = this.bufferView;
    const kept = this.kept.get(pid);
    if (kept !== undefined) {
      kept.walk = this.walk;
      try {
        const n = this.readAt(kept.fd);
        if (n !== undefined && n !== LONG) return n;
      } catch {
        // classified below, where the path is read anew and named in the error
      }
      // Its process has gone (the pid may already be another's), its line outgrew the
      // buffer, or the read failed: open the path anew.
      this.forget(pid, kept.fd);
    }
    // Not path.join: normalizing each of hundreds of paths showed in the profile.
    const path = `${this.procfs}/${pid}/stat`;
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      if (isGone(err)) return undefined;
      if (isHidden(err)) return HIDDEN;
      throw new CollectorError(`read ${path}`, { cause: err });
    }
    try {
      const n = this.readAt(fd);
      if (n === LONG) {
        // Longer than the buffer (not seen in practice: a comm is 15 bytes): read it whole.
        this.bytes = fs.readFileSync(path);
        this.view = new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length);
        return this.bytes.length;
      }
      if (n === undefined) return undefined;
      if (this.kept.size < MAX_KEPT_STAT_FDS) {
        this.kept.set(pid, { fd, walk: this.walk });
        fd = -1; // kept: not closed below
      }
      return n;
    } catch (err) {
      if (isGone(err)) return undefined;
      if (isHidden(err)) return HIDDEN;
      throw new CollectorError(`read ${path}`, { cause: err });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }

  /** Closes the files of processes this walk did not list: they have exited. */
  endWalk(): void {
    // forEach, not for-of: no [pid, kept] pair and iterator result per pid (see render()).
    this.kept.forEach((kept, pid) => {
      if (kept.walk !== this.walk) this.forget(pid, kept.fd);
    });
  }

  close(): void {
    for (const [pid, kept] of this.kept) this.forget(pid, kept.fd);
  }

  private forget(pid: string, fd: number): void {
    this.kept.delete(pid);
    try {
      fs.closeSync(fd);
    } catch {
      // closing a descriptor we own cannot fail in a way worth reporting
    }
  }

  /** The line's length in the buffer; undefined when its process has gone; LONG when it may not fit. */
  private readAt(fd: number): number | undefined | typeof LONG {
    // readvSync: fs.readSync runs five argument validators per call, this two.
    const n = fs.readvSync(fd, this.buffers, 0);
    if (n === 0) return undefined;
    return n < STAT_BUFFER_BYTES ? n : LONG;
  }
}

/** The kernel's page size, from our own auxiliary vector; the host kernel is ours too. */
export async function readPageSize(log: Logger): Promise<number> {
  try {
    const auxv = await readFile('/proc/self/auxv');
    const wordBytes = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'].includes(
      process.arch,
    )
      ? 8
      : 4;
    const size = parseAuxvPageSize(auxv, wordBytes, endianness() === 'LE');
    if (size) return size;
    log.warn('no AT_PAGESZ in /proc/self/auxv; assuming 4096-byte pages');
  } catch (err) {
    log.warn('cannot read /proc/self/auxv; assuming 4096-byte pages', { err: errorText(err) });
  }
  return DEFAULT_PAGE_SIZE;
}

/**
 * The `size` processes with the highest value (resident memory, CPU use), highest first,
 * ties by lower pid: kept as the walk goes, so a walk does not gather and sort an object
 * per process.
 */
class TopN {
  private readonly items: { pid: number; name: string; value: number }[] = [];

  constructor(private readonly size: number) {}

  offer(pid: number, name: string, value: number): void {
    const items = this.items;
    if (this.size === 0) return;
    if (items.length === this.size) {
      const last = items[items.length - 1]!;
      if (value < last.value || (value === last.value && pid > last.pid)) return;
      items.pop();
    }
    let i = items.length;
    while (i > 0) {
      const before = items[i - 1]!;
      if (before.value > value || (before.value === value && before.pid < pid)) break;
      i--;
    }
    items.splice(i, 0, { pid, name, value });
  }

  list(): readonly { name: string; value: number }[] {
    return this.items;
  }
}

/** A process's CPU time as the walk that last read it saw it. */
interface CpuSeen {
  /** utime + stime, clock ticks. */
  ticks: number;
  /** Its start time, clock ticks after boot: another value is another process on the pid. */
  start: number;
  /** When that walk started, ms on the collector's clock. */
  at: number;
  /** That walk's number, to drop the pids a later walk no longer lists. */
  walk: number;
}

function commForm(name: string): string {
  const bytes = Buffer.from(name);
  return bytes.length > COMM_MAX_BYTES ? bytes.subarray(0, COMM_MAX_BYTES).toString() : name;
}

/** What the last walk of /proc counted. */
export interface ProcessesSeen {
  /** Processes per state name, every common state present. */
  states: ReadonlyMap<string, number>;
  /** Processes per watched name. */
  watched: ReadonlyMap<string, number>;
  /** The biggest by resident memory, biggest first (at most `top`). */
  top: readonly { name: string; bytes: number }[];
}

export function createProcessesCollector(
  config: ProcessesConfig,
  paths: HostPaths,
  pageSize: number,
  now: () => number = () => performance.now(),
): Collector & Observer<ProcessesSeen> {
  let seen: ProcessesSeen | undefined;
  let warnedHidden = false;
  // A watched name longer than 15 bytes is matched on the truncated comm the kernel keeps.
  const watchedByComm = new Map<string, string[]>();
  for (const name of new Set(config.watch)) {
    const key = commForm(name);
    watchedByComm.set(key, [...(watchedByComm.get(key) ?? []), name]);
  }

  const stats = new StatReader(paths.procfs.replace(/\/+$/, ''));
  const registry = new Registry();
  const registers = [registry];
  const byState = new Gauge({
    name: 'lookout_processes',
    help: 'Processes (not threads) in each state; zombie counts processes nobody has reaped.',
    labelNames: ['state'],
    registers,
  });
  const watched = new Gauge({
    name: 'lookout_watched_processes',
    help: 'Processes whose command name is the watched name (0 when none runs).',
    labelNames: ['name'],
    registers,
  });
  const topGauge =
    config.top > 0
      ? new Gauge({
          name: 'lookout_top_process_resident_memory_bytes',
          help: 'Resident memory of the biggest processes; rank 1 is the biggest.',
          labelNames: ['rank', 'name'],
          registers,
        })
      : undefined;
  // A share of one CPU, as top's %CPU is (divided by 100): 1 is one CPU busy all along,
  // a process whose threads run on two CPUs reads 2. The kernel counts CPU time per
  // process since it started, so this is the difference between two walks over the time
  // between them; a process the earlier walk did not see started since, and all its CPU
  // time is new (a build's compilers live seconds, between two refreshes). The first
  // walk has nothing to compare with and exports none; idle processes fill the list
  // where fewer than `top` ran.
  const topCpuGauge =
    config.top > 0
      ? new Gauge({
          name: 'lookout_top_process_cpu_usage_ratio',
          help: 'CPU time the busiest processes used (user + system, /proc/<pid>/stat) since the previous refresh, per second of it: 1 is one CPU busy all along; rank 1 is the busiest.',
          labelNames: ['rank', 'name'],
          registers,
        })
      : undefined;
  const ranks = Array.from({ length: config.top }, (_, i) => String(i + 1));
  const scan = newPidStatScan();
  /** CPU time per pid from earlier walks; entries are updated in place, not made anew. */
  const cpuSeen = new Map<string, CpuSeen>();
  let walks = 0;
  /** When the last walk that read every pid it listed started. */
  let lastWalkAt: number | undefined;

  return {
    lastSeen: () => seen,
    close() {
      stats.close();
    },
    async collect({ signal, log }) {
      // Before the listing: a pid it does not hold started after this.
      const walkAt = now();
      let entries: string[];
      try {
        entries = fs.readdirSync(paths.procfs);
      } catch (err) {
        throw new CollectorError(`read ${paths.procfs}`, { cause: err });
      }

      const states = new Map<string, number>(COMMON_PROCESS_STATES.map((s) => [s, 0]));
      const counts = new Map<string, number>(config.watch.map((n) => [n, 0]));
      const top = new TopN(config.top);
      const topCpu = new TopN(config.top);
      const walk = ++walks;

      let unreadable = 0;
      let walked = 0;
      stats.startWalk();
      for (let e = 0; e < entries.length; e++) {
        const entry = entries[e]!;
        // Only /proc/<pid> (the entries that start with a digit): threads live under
        // /proc/<pid>/task and are not listed here.
        const first = entry.charCodeAt(0);
        if (first < 0x30 || first > 0x39) continue;
        if (++walked % WALK_CHUNK === 0) {
          await setImmediate(); // let a scrape in
          signal.throwIfAborted();
        }
        const length = stats.read(entry);
        if (length === undefined) continue; // exited mid-walk
        if (length === HIDDEN) {
          unreadable++;
          continue;
        }
        const p = scanPidStat(stats.view, length, scan);
        const state = processStateName(String.fromCharCode(p.state));
        states.set(state, (states.get(state) ?? 0) + 1);
        const comm = stats.bytes.toString('utf8', p.commStart, p.commEnd);
        const watchedNames = watchedByComm.get(comm);
        if (watchedNames !== undefined) {
          for (const name of watchedNames) counts.set(name, counts.get(name)! + 1);
        }
        if (p.rssPages > 0) top.offer(Number(entry), comm, p.rssPages * pageSize);
        if (topCpuGauge !== undefined) {
          const before = cpuSeen.get(entry);
          // CPU time since the walk that last read this pid; on another start time the pid
          // is another process's now, started since, so all its time is. A pid no walk
          // kept started after the last whole walk.
          const since = before?.at ?? lastWalkAt;
          const used =
            before !== undefined && before.start === p.startTicks
              ? p.cpuTicks - before.ticks
              : p.cpuTicks;
          if (since !== undefined && walkAt > since && used >= 0)
            topCpu.offer(Number(entry), comm, used / USER_HZ / ((walkAt - since) / 1000));
          if (before === undefined) {
            cpuSeen.set(entry, { ticks: p.cpuTicks, start: p.startTicks, at: walkAt, walk });
          } else {
            before.ticks = p.cpuTicks;
            before.start = p.startTicks;
            before.at = walkAt;
            before.walk = walk;
          }
        }
      }
      stats.endWalk();
      lastWalkAt = walkAt;
      // Pids this walk did not list have exited; a walk that failed half way drops none.
      cpuSeen.forEach((c, pid) => {
        if (c.walk !== walk) cpuSeen.delete(pid);
      });
      if (unreadable > 0 && !warnedHidden) {
        // Once: a host with hidepid stays that way, and the warning would repeat every refresh.
        warnedHidden = true;
        log.warn(
          'some processes cannot be read (/proc mounted with hidepid?); counts cover the visible ones only',
          {
            unreadable,
          },
        );
      }

      // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
      signal.throwIfAborted();
      // Every label set is written anew: a state no process is in any more (beyond the
      // common ones, always there) and a name that left the top list go.
      byState.reset();
      for (const [state, n] of states) byState.set({ state }, n);
      watched.reset();
      for (const [name, n] of counts) watched.set({ name }, n);
      const biggest = top
        .list()
        .map((p) => ({ name: p.name.slice(0, NAME_LABEL_MAX), bytes: p.value }));
      if (topGauge !== undefined) {
        topGauge.reset();
        biggest.forEach((p, i) => topGauge.set({ rank: ranks[i]!, name: p.name }, p.bytes));
      }
      if (topCpuGauge !== undefined) {
        topCpuGauge.reset();
        topCpu
          .list()
          .forEach((p, i) =>
            topCpuGauge.set({ rank: ranks[i]!, name: p.name.slice(0, NAME_LABEL_MAX) }, p.value),
          );
      }
      seen = { states, watched: counts, top: biggest };
      return registry;
    },
  };
}

registerCollector({
  name: 'processes',
  description:
    'Processes by state (zombies), a count per watched name, the biggest by resident memory and the busiest by CPU (lookout_processes, lookout_watched_processes, lookout_top_process_resident_memory_bytes, lookout_top_process_cpu_usage_ratio)',
  metrics: [
    'lookout_processes',
    'lookout_watched_processes',
    'lookout_top_process_resident_memory_bytes',
    'lookout_top_process_cpu_usage_ratio',
  ],
  schema: processesSchema,
  create: async ({ config, paths, log }) =>
    createProcessesCollector(config, paths, await readPageSize(log)),
});
