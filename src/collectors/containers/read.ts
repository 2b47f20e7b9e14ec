/**
 * What the containers collector reads out of the engine's answers, as pure functions on
 * the parsed JSON: tested on literal objects (Docker on cgroup v1 and v2, Podman).
 */
import type { ContainerInspect, ContainerStats, ContainerSummary } from '../../lib/docker.js';

/** Docker's label that says to lookout a container must be running. */
export const EXPECT_LABEL = 'lookout.expect';
export const COMPOSE_PROJECT_LABEL = 'com.docker.compose.project';
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';

export type HealthStatus = 'healthy' | 'unhealthy' | 'starting' | 'none';
export const HEALTH_STATES: readonly HealthStatus[] = ['healthy', 'unhealthy', 'starting', 'none'];

/** The labels every per-container series carries. */
export interface ContainerLabels {
  name: string;
  image: string;
  compose_project: string;
  compose_service: string;
}

/** The name Docker shows (`web-1`), from the list's `/web-1`. */
export function containerName(c: Pick<ContainerSummary, 'Names' | 'Id'>): string {
  const n = c.Names?.[0];
  return n ? n.replace(/^\//, '') : c.Id.slice(0, 12);
}

export function labelsOf(c: ContainerSummary): ContainerLabels {
  const l = c.Labels ?? {};
  return {
    name: containerName(c),
    image: c.Image,
    compose_project: l[COMPOSE_PROJECT_LABEL] ?? '',
    compose_service: l[COMPOSE_SERVICE_LABEL] ?? '',
  };
}

/**
 * Memory in use that the kernel would not reclaim first, as `docker stats` and cAdvisor
 * show it: usage less the inactive page cache — `total_inactive_file` on cgroup v1,
 * `inactive_file` on v2 — floored at 0. Podman's compat stats carry no such field: the
 * usage is the working set then. Undefined when the engine gave no usage (the container
 * stopped between the list and its stats).
 */
export function workingSetBytes(memory: ContainerStats['memory_stats']): number | undefined {
  const usage = memory?.usage;
  if (usage === undefined) return undefined;
  const s = memory?.stats ?? {};
  const inactive = s.total_inactive_file ?? s.inactive_file ?? 0;
  return Math.max(0, usage - inactive);
}

/** Cores the container may use: NanoCpus (`--cpus`), else CpuQuota/CpuPeriod; undefined when unlimited. */
export function cpuLimitCores(host: ContainerInspect['HostConfig']): number | undefined {
  if (host.NanoCpus && host.NanoCpus > 0) return host.NanoCpus / 1e9;
  if (host.CpuQuota && host.CpuQuota > 0) return host.CpuQuota / (host.CpuPeriod || 100_000);
  return undefined;
}

/** The memory limit in bytes; undefined when unlimited (never 0). */
export function memoryLimitBytes(host: ContainerInspect['HostConfig']): number | undefined {
  return host.Memory && host.Memory > 0 ? host.Memory : undefined;
}

/** CPU time the container has used, in seconds (one-shot stats: no precpu). */
export function cpuSeconds(stats: ContainerStats): number | undefined {
  const ns = stats.cpu_stats?.cpu_usage?.total_usage;
  return ns === undefined ? undefined : ns / 1e9;
}

/** Bytes received and sent, summed over the container's networks; undefined without any. */
export function networkBytes(stats: ContainerStats): { rx: number; tx: number } | undefined {
  const nets = stats.networks ? Object.values(stats.networks) : [];
  if (nets.length === 0) return undefined;
  let rx = 0;
  let tx = 0;
  for (const n of nets) {
    rx += n.rx_bytes ?? 0;
    tx += n.tx_bytes ?? 0;
  }
  return { rx, tx };
}

/**
 * Whether the container has a network namespace of its own whose counters are its traffic:
 * not `none` (nothing but loopback; Podman's stats still list a zero `network` entry for
 * it), not `host` nor `container:<id>` (another's counters).
 */
export function ownNetwork(mode: string | undefined): boolean {
  const m = mode ?? '';
  return m !== 'none' && m !== 'host' && !m.startsWith('container:');
}

/** Stats for a container not running: the engine reads nothing and says so with a zero time. */
export function statsEmpty(stats: ContainerStats): boolean {
  return !stats.read || stats.read.startsWith('0001-01-01');
}

export function healthOf(inspect: ContainerInspect): HealthStatus {
  const s = inspect.State.Health?.Status;
  return s === 'healthy' || s === 'unhealthy' || s === 'starting' ? s : 'none';
}

/** A Docker time in Unix seconds; undefined for the zero time (never happened). */
export function unixSeconds(rfc3339: string | undefined): number | undefined {
  if (!rfc3339 || rfc3339.startsWith('0001-01-01')) return undefined;
  const ms = Date.parse(rfc3339);
  if (!Number.isFinite(ms)) return undefined;
  // Date.parse keeps milliseconds; the engine's nanoseconds beyond them are read here.
  const frac = /\.(\d+)/.exec(rfc3339)?.[1] ?? '';
  return Math.floor(ms / 1000) + (frac ? Number(`0.${frac}`) : (ms % 1000) / 1000);
}

/**
 * Whether the container is expected to be running: a restart policy of `always` or
 * `unless-stopped`, the label `lookout.expect=running`, or its name in the config's
 * expect_running. A one-off job (no such policy) that has exited is not a fault.
 */
export function shouldRun(
  name: string,
  inspect: ContainerInspect | undefined,
  labels: Record<string, string> | null,
  expectRunning: ReadonlySet<string>,
): boolean {
  if (expectRunning.has(name)) return true;
  if ((labels ?? {})[EXPECT_LABEL] === 'running') return true;
  const policy = inspect?.HostConfig.RestartPolicy?.Name;
  return policy === 'always' || policy === 'unless-stopped';
}
