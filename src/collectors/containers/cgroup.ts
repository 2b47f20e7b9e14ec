/**
 * A running container's CPU, memory and network counters read where the engine reads
 * them: its cgroup's files (found through /proc/<pid>/cgroup) and its network namespace's
 * /proc/<pid>/net/dev. The engine's one-shot stats answer on its stats collector's next
 * pass over the containers asked about, a second apart, so a collection through the API
 * waits for that pass; these files answer at once. Any file that cannot be read (lookout
 * in another cgroup namespace, a remote engine, a process that is not the container's) is
 * the caller's cue to ask the engine instead.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerStats } from '../../lib/docker.js';
import type { HostPaths } from '../collector.js';

/** The same fields the engine's stats answer carries, from the files it reads them from. */
export async function readCgroupStats(
  id: string,
  pid: number,
  paths: HostPaths,
  withNetwork: boolean,
): Promise<ContainerStats> {
  if (!(pid > 0)) throw new Error('no process');
  const proc = join(paths.procfs, String(pid));
  const cgroups = parseProcCgroup(await readFile(join(proc, 'cgroup'), 'utf8'));
  const root = join(paths.sysfs, 'fs/cgroup');
  const read = (path: string) => readFile(path, 'utf8');
  let cpuNs: number;
  let usage: number;
  let stats: Record<string, number>;
  const memory = cgroups.find((c) => c.controllers.includes('memory'));
  const cpuacct = cgroups.find((c) => c.controllers.includes('cpuacct'));
  const unified = cgroups.find((c) => c.hierarchy === '0' && c.controllers.length === 0);
  if (memory && cpuacct) {
    // cgroup v1: a hierarchy per controller group, mounted under its controllers' names.
    checkOwn(id, memory.path);
    const mem = join(root, memory.controllers.join(','), memory.path);
    const cpu = join(root, cpuacct.controllers.join(','), cpuacct.path);
    const [u, s, c] = await Promise.all([
      read(join(mem, 'memory.usage_in_bytes')),
      read(join(mem, 'memory.stat')),
      read(join(cpu, 'cpuacct.usage')),
    ]);
    usage = Number(u.trim());
    stats = parseFlatKeyed(s);
    cpuNs = Number(c.trim());
  } else if (unified) {
    checkOwn(id, unified.path);
    const dir = join(root, unified.path);
    const [u, s, c] = await Promise.all([
      read(join(dir, 'memory.current')),
      read(join(dir, 'memory.stat')),
      read(join(dir, 'cpu.stat')),
    ]);
    usage = Number(u.trim());
    stats = parseFlatKeyed(s);
    const usec = parseFlatKeyed(c).usage_usec;
    if (usec === undefined) throw new Error('cpu.stat has no usage_usec');
    cpuNs = usec * 1000;
  } else throw new Error('no memory and cpu cgroup for the process');
  if (!Number.isFinite(usage) || !Number.isFinite(cpuNs))
    throw new Error('unreadable cgroup counters');
  const result: ContainerStats = {
    read: new Date().toISOString(),
    cpu_stats: { cpu_usage: { total_usage: cpuNs } },
    memory_stats: { usage, stats },
  };
  if (withNetwork) {
    const nets = parseNetDev(await read(join(proc, 'net/dev')));
    if (Object.keys(nets).length > 0) result.networks = nets;
  }
  return result;
}

/** The cgroup path must name the container (docker/<id>, docker-<id>.scope, libpod-<id>.scope). */
function checkOwn(id: string, path: string): void {
  if (!path.includes(id)) throw new Error(`the process's cgroup ${path} is not the container's`);
}

export interface ProcCgroup {
  hierarchy: string;
  controllers: string[];
  path: string;
}

/** /proc/<pid>/cgroup: `hierarchy-ID:controller-list:cgroup-path` per line. */
export function parseProcCgroup(text: string): ProcCgroup[] {
  const out: ProcCgroup[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    out.push({
      hierarchy: m[1]!,
      // "name=systemd" is a named hierarchy, not a controller.
      controllers: m[2]!.split(',').filter((c) => c !== '' && !c.startsWith('name=')),
      path: m[3]!,
    });
  }
  return out;
}

/** memory.stat, cpu.stat: `key value` per line. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

/** /proc/<pid>/net/dev: bytes received and sent per interface, loopback left out (as the engine does). */
export function parseNetDev(text: string): Record<string, { rx_bytes: number; tx_bytes: number }> {
  const out: Record<string, { rx_bytes: number; tx_bytes: number }> = {};
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out[m[1]!] = { rx_bytes: f[0] ?? 0, tx_bytes: f[8] ?? 0 };
  }
  return out;
}
