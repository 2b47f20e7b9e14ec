/**
 * Parts for the HA test (test/e2e/ha.test.ts): "hosts" that are network namespaces with an
 * address of their own, and long-lived processes on fixed ports that a test kills
 * (SIGKILL, as a crash) and starts again on the same port and data directory.
 *
 * A host namespace is joined to this one by a veth pair: 10.B.I.1 on this side, 10.B.I.2
 * inside (B from the test's pid, so two runs do not collide). Traffic goes only to the
 * inside address, which exists only in the namespace the test made.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { waitForHttp } from './procs.js';

const run = promisify(execFile);

export interface HostNetns {
  name: string;
  /** The address inside the namespace, where its lookout listens. */
  address: string;
  remove: () => Promise<void>;
}

/** Namespace `lkha-<pid>-<i>` with 10.B.i.2/30 on eth0 and lo up. */
export async function addHostNetns(i: number): Promise<HostNetns> {
  const name = `lkha-${process.pid}-${i}`;
  const b = 200 + (process.pid % 50);
  const outside = `lkha${process.pid % 100_000}h${i}`;
  const remove = async () => {
    // Deleting the namespace destroys its end of the pair, and with it this end.
    await run('ip', ['netns', 'delete', name]).catch(() => undefined);
    await run('ip', ['link', 'delete', outside]).catch(() => undefined);
  };
  await run('ip', ['netns', 'add', name]);
  try {
    await run('ip', [
      'link',
      'add',
      outside,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      name,
    ]);
    await run('ip', ['addr', 'add', `10.${b}.${i}.1/30`, 'dev', outside]);
    await run('ip', ['link', 'set', outside, 'up']);
    const ns = (...args: string[]) => run('ip', ['-n', name, ...args]);
    await ns('addr', 'add', `10.${b}.${i}.2/30`, 'dev', 'eth0');
    await ns('link', 'set', 'eth0', 'up');
    await ns('link', 'set', 'lo', 'up');
  } catch (err) {
    await remove();
    throw err;
  }
  return { name, address: `10.${b}.${i}.2`, remove };
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  output: () => string;
  /** SIGTERM, SIGKILL after 5 s; resolves when it has exited. */
  stop: () => Promise<void>;
  /** SIGKILL: a crash, nothing flushed. */
  kill: () => Promise<void>;
}

/**
 * Starts cmd (inside netns when given, through nsenter, which execs it: the pid is the
 * program's) and waits until readyUrl answers 2xx.
 */
export async function startProc(
  cmd: string,
  args: string[],
  opts: {
    cwd: string;
    readyUrl: string;
    netns?: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
  },
): Promise<Proc> {
  const [file, argv] = opts.netns
    ? ['nsenter', [`--net=/run/netns/${opts.netns}`, cmd, ...args]]
    : [cmd, args];
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async () => {
    if (gone()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const kill = async () => {
    if (gone()) return;
    child.kill('SIGKILL');
    await exited;
  };
  const output = () => out;
  try {
    await waitForHttp(opts.readyUrl, child, output, opts.timeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, pid: child.pid ?? 0, output, stop, kill };
}

/** Resident memory of a live process, in bytes (VmRSS). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status: no VmRSS`);
  return Number(m[1]) * 1024;
}

/** Bytes under dir, as `du -sb` counts them. */
export async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', dir]);
  return Number(stdout.split('\t')[0]);
}

/** GET a JSON document; throws with the body on a non-2xx answer. */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Raw samples of the series matching selector between start and end (seconds), from
 *  VictoriaMetrics' /api/v1/export (after its deduplication). */
export async function vmExport(
  vmUrl: string,
  selector: string,
  start: number,
  end: number,
): Promise<Array<{ metric: Record<string, string>; timestamps: number[] }>> {
  const qs = `match[]=${encodeURIComponent(selector)}&start=${start}&end=${end}`;
  const res = await fetch(`${vmUrl}/api/v1/export?${qs}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`export ${selector}: ${res.status} ${text}`);
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { metric: Record<string, string>; timestamps: number[] });
}

/** The longest interval between consecutive timestamps (ms), with the edges of [from, to]. */
export function longestGapMs(timestamps: number[], from: number, to: number): number {
  const ts = [from, ...timestamps.filter((t) => t >= from && t <= to).sort((a, b) => a - b), to];
  let gap = 0;
  for (let i = 1; i < ts.length; i++) gap = Math.max(gap, ts[i]! - ts[i - 1]!);
  return gap;
}
