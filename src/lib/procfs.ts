/**
 * Pure parsers for the Linux files the host, filesystem and processes collectors read.
 * Each takes the text of one file and returns plain values in base units (seconds,
 * bytes); no I/O here, so every edge case is testable on a literal string.
 */

/** Thrown when a file does not have the shape the kernel documents; `code` is stable. */
export class ProcfsParseError extends Error {
  readonly code = 'LOOKOUT_PROCFS_PARSE';
}

/**
 * Clock ticks per second in /proc/stat and /proc/<pid>/stat. The kernel reports these in
 * USER_HZ, which is part of the userspace ABI and is 100 on every architecture Linux
 * supports, whatever CONFIG_HZ the kernel was built with (sysconf(_SC_CLK_TCK) returns the
 * same constant). node_exporter's procfs library hardcodes it the same way; asking
 * `getconf CLK_TCK` would need a child process for a value that never changes.
 */
export const USER_HZ = 100;

/** Aggregate CPU time since boot, summed over all CPUs, in seconds. */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  /** Already included in `user` by the kernel; kept apart so nothing double-counts it. */
  guest: number;
  /** Already included in `nice` by the kernel. */
  guestNice: number;
}

/** The CPU modes exported as `mode` labels: guest time is inside user/nice already. */
export const CPU_MODES = [
  'user',
  'nice',
  'system',
  'idle',
  'iowait',
  'irq',
  'softirq',
  'steal',
] as const satisfies readonly (keyof CpuTimes)[];

export interface Stat {
  /** The "cpu " line: every CPU together. */
  cpu: CpuTimes;
  /** Number of "cpuN" lines, i.e. online CPUs. */
  cpuCount: number;
  /** Boot time, Unix seconds (btime). */
  bootTime: number;
}

/** The columns of a cpu line of /proc/stat, in order (proc(5)). */
const CPU_FIELDS: readonly (keyof CpuTimes)[] = [...CPU_MODES, 'guest', 'guestNice'];

/** A kernel counter column: decimal digits only, so "-1", "1e5" or "0x10" is not a count. */
const COUNT = /^\d+$/;

function cpuTimes(fields: string[]): CpuTimes {
  const out = {} as CpuTimes;
  CPU_FIELDS.forEach((name, i) => {
    // Older kernels have fewer columns (steal since 2.6.11, guest_nice since 2.6.33).
    const field = fields[i] || '0';
    // These feed counters: a negative one would make prom-client throw mid-refresh.
    if (!COUNT.test(field)) {
      throw new ProcfsParseError(`stat: cpu ${name} is not a count: ${JSON.stringify(field)}`);
    }
    out[name] = Number(field) / USER_HZ;
  });
  return out;
}

/** /proc/stat */
export function parseStat(text: string): Stat {
  let cpu: CpuTimes | undefined;
  let cpuCount = 0;
  let bootTime: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu')) {
      const fields = line.split(/\s+/);
      if (fields[0] === 'cpu') cpu = cpuTimes(fields.slice(1));
      else if (/^cpu\d+$/.test(fields[0] ?? '')) cpuCount++;
    } else if (line.startsWith('btime ')) {
      const field = line.slice(6).trim();
      // Unix seconds, never negative; Number() alone would take "-1", "1e9" or "0x10".
      if (!COUNT.test(field)) {
        throw new ProcfsParseError(`stat: btime is not a time: ${JSON.stringify(field)}`);
      }
      bootTime = Number(field);
    }
  }
  if (!cpu) throw new ProcfsParseError('stat: no "cpu " line');
  if (bootTime === undefined) throw new ProcfsParseError('stat: no "btime" line');
  return { cpu, cpuCount, bootTime };
}

export interface LoadAvg {
  load1: number;
  load5: number;
  load15: number;
  /** Runnable scheduling entities now (the "2" of "2/85"). */
  running: number;
  /** Scheduling entities (threads) that exist (the "85" of "2/85"). */
  total: number;
}

/** /proc/loadavg: "0.73 0.36 0.16 2/85 6257" */
export function parseLoadavg(text: string): LoadAvg {
  const f = text.trim().split(/\s+/);
  const [load1, load5, load15] = f.slice(0, 3).map(Number);
  const [running, total] = (f[3] ?? '').split('/').map(Number);
  if (
    load1 === undefined ||
    load5 === undefined ||
    load15 === undefined ||
    ![load1, load5, load15].every(Number.isFinite)
  ) {
    throw new ProcfsParseError(`loadavg: expected three numbers, got ${JSON.stringify(text)}`);
  }
  return { load1, load5, load15, running: running ?? NaN, total: total ?? NaN };
}

/**
 * The line of `text` that starts with `prefix`, without its newline; undefined when none
 * does. Found with indexOf over the whole text, so asking for a few fields of a long file
 * does not split it into a string per line.
 */
function lineStartingWith(text: string, prefix: string): string | undefined {
  const at = text.startsWith(prefix) ? 0 : text.indexOf(`\n${prefix}`) + 1;
  if (at === 0 && !text.startsWith(prefix)) return undefined;
  const end = text.indexOf('\n', at);
  return text.slice(at, end < 0 ? text.length : end);
}

const MEMINFO_LINE = /^([^:\s]+):\s+(\d+)(?:\s+(kB))?\s*$/;

/**
 * /proc/meminfo as a map from field name to value. Values with a "kB" unit (which the
 * kernel means as KiB) are converted to bytes; unitless ones (HugePages_Total) are counts.
 * With `only`, just those fields are looked up (the host collector needs four of ~55).
 */
export function parseMeminfo(text: string, only?: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  const lines =
    only === undefined ? text.split('\n') : only.map((f) => lineStartingWith(text, `${f}:`));
  for (const line of lines) {
    const m = line === undefined ? null : MEMINFO_LINE.exec(line);
    if (!m) continue;
    const value = Number(m[2]);
    out.set(m[1]!, m[3] ? value * 1024 : value);
  }
  return out;
}

export interface NetDevice {
  device: string;
  receiveBytes: number;
  receivePackets: number;
  receiveErrors: number;
  receiveDrops: number;
  transmitBytes: number;
  transmitPackets: number;
  transmitErrors: number;
  transmitDrops: number;
}

/** /proc/net/dev: two header lines, then "  eth0: rx(8 columns) tx(8 columns)". */
export function parseNetDev(text: string): NetDevice[] {
  const out: NetDevice[] = [];
  for (const line of text.split('\n').slice(2)) {
    // Old kernels print "eth0:123" with no space once the counter is wide.
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    // The kernel pads with ASCII spaces; String.trim() would also eat a no-break space,
    // which a device name may hold (found by the fuzz test).
    const device = line.slice(0, colon).replace(/^ +| +$/g, '');
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    const n = fields.map(Number);
    if (!device || n.length < 16 || !fields.every((f) => COUNT.test(f))) {
      throw new ProcfsParseError(`net/dev: cannot read line ${JSON.stringify(line)}`);
    }
    out.push({
      device,
      receiveBytes: n[0]!,
      receivePackets: n[1]!,
      receiveErrors: n[2]!,
      receiveDrops: n[3]!,
      transmitBytes: n[8]!,
      transmitPackets: n[9]!,
      transmitErrors: n[10]!,
      transmitDrops: n[11]!,
    });
  }
  return out;
}

const VMSTAT_LINE = /^(\w+) (-?\d+)$/;

/**
 * /proc/vmstat: "name value" lines, every value a count (pages or events, never bytes),
 * as a map from name to value. Fields come and go between kernel versions (oom_kill
 * since 4.13), so callers look up what they need and treat a missing one as absent.
 * With `only`, just those fields are looked up (the host collector needs four of ~180).
 */
export function parseVmstat(text: string, only?: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  const lines =
    only === undefined ? text.split('\n') : only.map((f) => lineStartingWith(text, `${f} `));
  for (const line of lines) {
    // Some gauges (nr_*) can read slightly negative from per-CPU drift.
    const m = line === undefined ? null : VMSTAT_LINE.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export interface FileNr {
  /** File handles the kernel has allocated (in use, since 2.6 nothing is kept unused). */
  allocated: number;
  /** Allocated but unused handles; always 0 since Linux 2.6. */
  unused: number;
  /** The system-wide limit, fs.file-max. */
  max: number;
}

/** /proc/sys/fs/file-nr: "allocated unused max", tab-separated (proc_sys_fs(5)). */
export function parseFileNr(text: string): FileNr {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length !== 3 || !f.every(Number.isFinite)) {
    throw new ProcfsParseError(`file-nr: expected three numbers, got ${JSON.stringify(text)}`);
  }
  return { allocated: f[0]!, unused: f[1]!, max: f[2]! };
}

/**
 * /proc/net/stat/nf_conntrack: a header line, then one line per CPU of hexadecimal
 * columns. "entries" is the network namespace's conntrack table size (what
 * nf_conntrack_count holds), the same on every CPU's line; the other columns are
 * per-CPU event counts.
 */
export function parseConntrackEntries(text: string): number {
  const [header, first] = text.split('\n');
  const column = (header ?? '').trim().split(/\s+/).indexOf('entries');
  const hex = (first ?? '').trim().split(/\s+/)[column];
  if (column < 0 || hex === undefined || !/^[0-9a-f]+$/i.test(hex)) {
    throw new ProcfsParseError(
      `nf_conntrack: no "entries" column in ${JSON.stringify(text.slice(0, 200))}`,
    );
  }
  return parseInt(hex, 16);
}

/** A sysctl file under /proc/sys that holds one integer, e.g. nf_conntrack_max. */
export function parseSysctlInteger(text: string, name: string): number {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) {
    throw new ProcfsParseError(`${name}: expected an integer, got ${JSON.stringify(text)}`);
  }
  return Number(t);
}

export interface Mount {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string[];
  readonly: boolean;
}

/** The kernel writes space, tab, newline and backslash in mount fields as \040, \011, \012, \134. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** /proc/<pid>/mounts (fstab format): "device mountpoint fstype options dump pass". */
export function parseMounts(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split(' ');
    if (f.length < 4)
      throw new ProcfsParseError(`mounts: cannot read line ${JSON.stringify(line)}`);
    const options = f[3]!.split(',');
    out.push({
      device: unescapeMountField(f[0]!),
      mountpoint: unescapeMountField(f[1]!),
      fstype: unescapeMountField(f[2]!),
      options,
      readonly: options.includes('ro'),
    });
  }
  return out;
}

/** Process states as /proc/<pid>/stat writes them (see proc(5)), by name. */
const STATE_NAMES: Readonly<Record<string, string>> = {
  R: 'running',
  S: 'sleeping',
  D: 'disk_sleep',
  Z: 'zombie',
  T: 'stopped',
  t: 'tracing_stop',
  X: 'dead',
  x: 'dead',
  I: 'idle',
  P: 'parked',
  W: 'waking',
  K: 'wakekill',
};

/** The states every host reports, so `lookout_processes{state="zombie"} 0` exists before the first zombie. */
export const COMMON_PROCESS_STATES = [
  'running',
  'sleeping',
  'disk_sleep',
  'zombie',
  'stopped',
  'idle',
] as const;

/** A state letter to its name; an unknown letter is "other" so the label set stays bounded. */
export function processStateName(letter: string): string {
  return STATE_NAMES[letter] ?? 'other';
}

export interface PidStat {
  pid: number;
  /** The command name (at most 15 bytes for user processes; the kernel truncates it). */
  comm: string;
  /** The state letter, e.g. "S". */
  state: string;
  ppid: number;
  /** CPU time in user and kernel mode, seconds. */
  utime: number;
  stime: number;
  numThreads: number;
  /** Start time after boot, seconds. */
  startTime: number;
  vsizeBytes: number;
  /** Resident set size in pages; multiply by the page size for bytes. */
  rssPages: number;
}

/**
 * /proc/<pid>/stat. The command name sits in parentheses and may itself contain spaces and
 * parentheses ("(my (weird) proc)"), so it ends at the LAST ")" in the line.
 */
export function parsePidStat(text: string): PidStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open)
    throw new ProcfsParseError(`pid stat: no "(comm)" in ${JSON.stringify(text.slice(0, 80))}`);
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  // rest[0] is field 3 of proc(5) (state), so field N is rest[N - 3]. Only fields 3–24
  // are read: split at most 22 times, not into the ~50 strings of the whole line, for
  // every pid on every walk (measured on 114 pids: 503 → 218 µs per walk).
  const rest = text
    .slice(close + 1)
    .trim()
    .split(' ', 22);
  const field = (n: number): number => Number(rest[n - 3]);
  const state = rest[0] ?? '';
  if (!Number.isInteger(pid) || state.length !== 1 || rest.length < 22) {
    throw new ProcfsParseError(`pid stat: cannot read ${JSON.stringify(text.slice(0, 80))}`);
  }
  return {
    pid,
    comm,
    state,
    ppid: field(4),
    utime: field(14) / USER_HZ,
    stime: field(15) / USER_HZ,
    numThreads: field(20),
    startTime: field(22) / USER_HZ,
    vsizeBytes: field(23),
    rssPages: field(24),
  };
}

/** What the processes walk needs of one /proc/<pid>/stat, read off its bytes in place. */
export interface PidStatScan {
  /** The command name is bytes [commStart, commEnd) of the buffer. */
  commStart: number;
  commEnd: number;
  /** The state letter as a byte (0x53 for "S"). */
  state: number;
  /** Field 24, resident set size in pages. */
  rssPages: number;
  /** Fields 14 + 15, CPU time in user and kernel mode, in clock ticks (USER_HZ). */
  cpuTicks: number;
  /** Field 22, when the process started, in clock ticks after boot: a pid's reuse changes it. */
  startTicks: number;
}

/** A PidStatScan to fill again and again. */
export function newPidStatScan(): PidStatScan {
  return { commStart: 0, commEnd: 0, state: 0, rssPages: 0, cpuTicks: 0, startTicks: 0 };
}

const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;
const SPACE = 0x20;

/** The decimal number at `i` (up to `length`), or -1 where there is no digit. */
function digitsAt(buf: Uint8Array, i: number, length: number): number {
  let value = 0;
  let digits = 0;
  for (; i < length; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) break;
    value = value * 10 + d;
    digits++;
  }
  return digits === 0 ? -1 : value;
}

/**
 * parsePidStat for the walk over every pid: it reads the state, CPU time, start time and
 * rss straight from the bytes of the file and leaves the command name where it is, into
 * `out`, so a walk makes no string, array or object per pid beyond the name. The same
 * rules: the name ends at the LAST ")" of the line; a line without fields 3–24 is a
 * ProcfsParseError. Pass a plain Uint8Array over the bytes rather than a Buffer: it is
 * searched with indexOf, which a Buffer overrides with a slower JavaScript wrapper.
 */
export function scanPidStat(buf: Uint8Array, length: number, out: PidStatScan): PidStatScan {
  const open = buf.indexOf(OPEN_PAREN);
  const close = buf.lastIndexOf(CLOSE_PAREN, length - 1);
  // "<pid> (<comm>) S ": the state is the byte two past the ")".
  const at = close + 2;
  if (open < 0 || close < open || at + 1 >= length || buf[at + 1] !== SPACE) {
    const text = Buffer.from(buf.buffer, buf.byteOffset, Math.min(length, 80)).toString();
    throw new ProcfsParseError(`pid stat: cannot read ${JSON.stringify(text)}`);
  }
  // The space after the state starts field 4, so after n more spaces `i` is at the one
  // before field 4 + n: field 24 is 20 spaces on. The fields between are numbers; the
  // ones wanted (14, 15, 22) are read on the way, in the same pass.
  let i = at + 1;
  let utime = -1;
  let stime = -1;
  let start = -1;
  for (let n = 1; n < 21; n++) {
    i = buf.indexOf(SPACE, i + 1);
    // The buffer may hold an older, longer line past `length`: nothing there counts.
    if (i < 0 || i >= length) break;
    if (n === 10) utime = digitsAt(buf, i + 1, length);
    else if (n === 11) stime = digitsAt(buf, i + 1, length);
    else if (n === 18) start = digitsAt(buf, i + 1, length);
  }
  const rss = i >= 0 && i < length ? digitsAt(buf, i + 1, length) : -1;
  if (rss < 0 || utime < 0 || stime < 0 || start < 0) {
    const text = Buffer.from(buf.buffer, buf.byteOffset, Math.min(length, 80)).toString();
    throw new ProcfsParseError(`pid stat: cannot read ${JSON.stringify(text)}`);
  }
  out.commStart = open + 1;
  out.commEnd = close;
  out.state = buf[at]!;
  out.rssPages = rss;
  out.cpuTicks = utime + stime;
  out.startTicks = start;
  return out;
}

/** os-release(5): PRETTY_NAME, or NAME, or "Linux" as the spec says to assume. */
export function parseOsRelease(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1);
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1);
      // Within double quotes, shell-style backslash escapes ($, ", \, `) apply.
      if (q === '"') value = value.replace(/\\([$"\\`])/g, '$1');
    }
    out.set(line.slice(0, eq), value);
  }
  return out;
}

export function osPrettyName(osRelease: Map<string, string>): string {
  return osRelease.get('PRETTY_NAME') || osRelease.get('NAME') || 'Linux';
}

const AT_NULL = 0;
const AT_PAGESZ = 6;

/**
 * The page size from /proc/self/auxv (the ELF auxiliary vector: pairs of native words,
 * type then value). Node has no getpagesize(); the kernel hands it to every process here.
 */
export function parseAuxvPageSize(
  auxv: Buffer,
  wordBytes: 4 | 8,
  littleEndian: boolean,
): number | undefined {
  const read = (at: number): number =>
    wordBytes === 8
      ? Number(littleEndian ? auxv.readBigUInt64LE(at) : auxv.readBigUInt64BE(at))
      : littleEndian
        ? auxv.readUInt32LE(at)
        : auxv.readUInt32BE(at);
  for (let at = 0; at + 2 * wordBytes <= auxv.length; at += 2 * wordBytes) {
    const type = read(at);
    if (type === AT_NULL) break;
    if (type === AT_PAGESZ) return read(at + wordBytes);
  }
  return undefined;
}
