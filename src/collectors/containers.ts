import { setMaxListeners } from 'node:events';
import type { LabelValues, Metric } from 'prom-client';
import { Counter, Gauge, type Registry } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import {
  DEFAULT_DOCKER_ENDPOINT,
  DockerClient,
  isNotFound,
  parseEngineEndpoint,
  type ContainerInspect,
  type ContainerStats,
  type ContainerSummary,
  type HealthcheckConfig,
} from '../lib/docker.js';
import { Fanout, whyNot } from '../lib/fanout.js';
import type { HttpClient } from '../lib/http.js';
import { errorText, type Logger } from '../lib/log.js';
import {
  CollectorError,
  NothingToCollect,
  collectorSchema,
  registerCollector,
  type CollectContext,
  type Collector,
  type CollectorContext,
  type ActionsConfig,
  type HostPaths,
  type Observer,
  type TargetCheck,
} from './collector.js';
import { readCgroupStats } from './containers/cgroup.js';
import { ContainerEventService, noDefaultSocket } from './containers/events.js';
import {
  AUTORESTART_METRICS,
  Autorestart,
  autorestartSchema,
  fromInspect,
  type WatchedContainer,
} from './containers/autorestart.js';
import { Shown } from './shown.js';
import {
  HEALTH_STATES,
  containerName,
  cpuLimitCores,
  cpuSeconds,
  healthOf,
  labelsOf,
  memoryLimitBytes,
  networkBytes,
  ownNetwork,
  shouldRun,
  statsEmpty,
  unixSeconds,
  workingSetBytes,
  type ContainerLabels,
  type HealthStatus,
} from './containers/read.js';

export { DockerClient } from '../lib/docker.js';
export { ContainerEventService } from './containers/events.js';

export const containersSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '10s', actions: { maxPerHour: 10 } },
  {
    autorestart: autorestartSchema.prefault({}),
    endpoint: z
      .string()
      .refine((s) => {
        try {
          parseEngineEndpoint(s);
          return true;
        } catch {
          return false;
        }
      }, 'expected unix:///path/to/docker.sock, tcp://host:port or http(s)://host:port')
      .optional()
      .describe(
        `Where the Docker Engine API is, as DOCKER_HOST is written: unix:///var/run/docker.sock (the default, ${DEFAULT_DOCKER_ENDPOINT}), Podman's unix:///run/podman/podman.sock (rootless: unix://$XDG_RUNTIME_DIR/podman/podman.sock), or a socket proxy's tcp://host:2375 or http(s)://host:port. Unset and no socket at the default path: nothing to collect (no Docker on this host). Set and not there: the collector fails.`,
      ),
    expect_running: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Container names expected to be running (lookout_container_should_run 1) besides those with restart policy always or unless-stopped or the label lookout.expect=running.',
      ),
    stats: z
      .boolean()
      .default(true)
      .describe(
        "Read each running container's CPU, memory and network counters (one one-shot stats request each); false reads state, health and restarts only.",
      ),
    stats_source: z
      .enum(['auto', 'api'])
      .default('auto')
      .describe(
        "Where a running container's CPU, memory and network counters come from. auto: its cgroup's files and /proc/<pid>/net/dev on this host (what the engine itself reads; at once), and the engine's one-shot stats where those cannot be read (a remote engine, lookout in another cgroup namespace). api: always the engine's one-shot stats, which it answers on its stats collector's next pass (up to a second later).",
      ),
    request_timeout: duration
      .prefault('5s')
      .describe(
        "How long one container's inspect and stats may take; past it that container's lookout_container_collect_success is 0 (cut to what is left of the refresh).",
      ),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(64)
      .describe(
        'Containers asked about at once (an inspect and a one-shot stats each). The engine answers every one-shot stats request on its next pass over the containers asked about (once a second), so the containers are best asked about together.',
      ),
    max_containers: z
      .number()
      .int()
      .min(1)
      .default(500)
      .describe(
        'At most this many containers are reported (running ones first, then by name); the rest are left out and logged, so a host with thousands of exited containers cannot flood the exposition.',
      ),
  },
);

export type ContainersConfig = z.output<typeof containersSchema>;

/** One container as the last refresh saw it (status, auto-restart). */
export interface ContainerSeen {
  id: string;
  labels: ContainerLabels;
  /** Every Docker label of the container (auto-restart reads lookout.autorestart); never exported. */
  dockerLabels: Readonly<Record<string, string>>;
  /** The list's state: created, running, paused, restarting, removing, exited, dead. */
  state: string;
  running: boolean;
  shouldRun: boolean;
  restartPolicy: string;
  restartCount: number;
  oomKilled: boolean;
  exitCode?: number;
  startedAt?: number;
  health: HealthStatus;
  /** Failed health checks in a row (Docker's FailingStreak). */
  healthFailingStreak?: number;
  healthcheck?: HealthcheckConfig;
  cpuSeconds?: number;
  /** Cores used between the refresh before and this one (docker stats's CPU %, / 100). */
  cpuCores?: number;
  cpuLimitCores?: number;
  memoryWorkingSetBytes?: number;
  memoryLimitBytes?: number;
  /** When the counters were read (Unix seconds). */
  statsReadAt?: number;
  /** Where they were read: the container's cgroup files, or the engine's stats. */
  statsSource?: 'cgroup' | 'api';
  /** Why inspect or stats failed this refresh. */
  error?: string;
}

export interface ContainersSeen {
  /** When the refresh ended (Unix seconds). */
  at: number;
  endpoint: string;
  containers: ContainerSeen[];
  /** Containers left out by max_containers. */
  omitted: number;
}

interface Reading {
  inspect: ContainerInspect;
  stats?: ContainerStats;
  source?: 'cgroup' | 'api';
  /** Podman's --health-on-failure, for a container auto-restart watches. */
  onFailure?: string;
}

const LABELS = ['name', 'image', 'compose_project', 'compose_service'] as const;

function containerMetrics() {
  const registers: Registry[] = [];
  const gauge = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: LABELS, registers });
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames: LABELS, registers });
  return {
    running: gauge(
      'lookout_container_running',
      'Whether the container is running (1) or not (0: created, exited, dead, paused, restarting), for every container the engine lists.',
    ),
    shouldRun: gauge(
      'lookout_container_should_run',
      'Whether the container is expected to run (1): restart policy always or unless-stopped, label lookout.expect=running, or collectors.containers.expect_running; 0 for one-off jobs.',
    ),
    exitCode: gauge(
      'lookout_container_last_exit_code',
      'Exit code of a stopped (exited or dead) container.',
    ),
    cpu: counter(
      'lookout_container_cpu_seconds_total',
      'CPU time the running container has used (cpu_stats.cpu_usage.total_usage); rate() it for cores in use.',
    ),
    cpuLimit: gauge(
      'lookout_container_cpu_limit_cores',
      'CPU cores the container may use (--cpus, or CpuQuota/CpuPeriod); absent when unlimited.',
    ),
    workingSet: gauge(
      'lookout_container_memory_working_set_bytes',
      'Memory the running container uses, less the inactive page cache (as docker stats shows): usage - inactive_file (cgroup v2) or total_inactive_file (v1), at least 0; Podman: usage.',
    ),
    memoryLimit: gauge(
      'lookout_container_memory_limit_bytes',
      'Memory limit of the container (-m); absent when unlimited.',
    ),
    rx: counter(
      'lookout_container_network_receive_bytes_total',
      'Bytes the running container received, summed over its networks; absent without a network.',
    ),
    tx: counter(
      'lookout_container_network_transmit_bytes_total',
      'Bytes the running container sent, summed over its networks; absent without a network.',
    ),
    restartCount: gauge(
      'lookout_container_restart_count',
      "Docker's RestartCount: restarts by the container's restart policy (not docker restart nor API restarts; see lookout_container_restarts_total).",
    ),
    health: new Gauge({
      name: 'lookout_container_health_status',
      help: 'Health check state, one of healthy, unhealthy, starting, none (no health check) is 1.',
      labelNames: [...LABELS, 'status'] as const,
      registers,
    }),
    oomKilled: gauge(
      'lookout_container_oom_killed',
      "Whether the container's last exit was an OOM kill (State.OOMKilled; cleared by its next start).",
    ),
    startTime: gauge(
      'lookout_container_start_time_seconds',
      'When the container last started (State.StartedAt, Unix time).',
    ),
    success: new Gauge({
      name: 'lookout_container_collect_success',
      help: "Whether the container's inspect and stats succeeded this refresh (1) or failed or timed out (0).",
      labelNames: ['name'] as const,
      registers,
    }),
  };
}

export type ContainersCollector = Collector &
  Required<Pick<Collector, 'collect' | 'service'>> &
  Observer<ContainersSeen> & {
    /** The engine client, for actions (restart, kill, start, stop). */
    readonly docker: DockerClient;
    readonly events: ContainerEventService;
    readonly autorestart: Autorestart;
    /** `lookout status`: what auto-restart keeps (budget, pause, pending outcomes). */
    describeState(): Promise<string[]>;
  };

/** What auto-restart needs besides the config (docs/autorestart.md). */
export type AutorestartWiring = Pick<
  CollectorContext<ContainersConfig>,
  'stateMode' | 'stateDirectory' | 'peer'
>;

/**
 * Lists the containers, then asks the engine about each (inspect, and one-shot stats for
 * a running one) in parallel through the fan-out, under the refresh's deadline. A
 * container removed meanwhile is left out; one that does not answer is its own failure
 * (collect_success 0). The event stream (the service) counts OOM kills and restarts.
 */
export function createContainersCollector(
  config: ContainersConfig,
  http: HttpClient,
  log: Logger,
  opts: {
    /** Where Docker is when no endpoint is configured (tests point it at a path of their own). */
    defaultEndpoint?: string;
    /** The host's /proc and /sys, where a container's cgroup files are read. */
    paths?: HostPaths;
  } & Partial<AutorestartWiring> = {},
): ContainersCollector {
  const endpoint = config.endpoint ?? opts.defaultEndpoint ?? DEFAULT_DOCKER_ENDPOINT;
  const paths = opts.paths ?? { procfs: '/proc', sysfs: '/sys', rootfs: '/' };
  const explicit = config.endpoint !== undefined;
  const docker = new DockerClient(http, endpoint);
  const expectRunning = new Set(config.expect_running);
  const m = containerMetrics();
  const all = Object.values(m);
  // Families with no sample this refresh (no network, no limit anywhere) are left out.
  const shown = new Shown();
  const present = new Set<Metric>();
  const put = <L extends string>(g: Gauge<L>, labels: LabelValues<L>, v: number) => {
    g.set(labels, v);
    present.add(g);
  };
  const add = <L extends string>(c: Counter<L>, labels: LabelValues<L>, v: number) => {
    c.inc(labels, v);
    present.add(c);
  };
  const fanout = new Fanout({
    name: 'containers',
    concurrency: config.concurrency,
    timeoutMs: config.request_timeout,
  });
  const events = new ContainerEventService({
    docker,
    explicit,
    log,
    openTimeoutMs: config.timeout,
  });
  let seen: ContainersSeen | undefined;
  const autorestart = new Autorestart({
    config: config.autorestart,
    actionsEnabled: (config.actions as ActionsConfig | undefined)?.enabled ?? false,
    log,
    stateMode: opts.stateMode ?? 'read-only',
    stateDirectory: opts.stateDirectory,
    engine: docker,
    intervalMs: config.interval,
    timeoutMs: config.timeout,
    probeFailures: () =>
      (
        opts.peer?.('probes') as { failureCounts?: () => ReadonlyMap<string, number> }
      )?.failureCounts?.(),
  });

  async function list(signal: AbortSignal): Promise<ContainerSummary[]> {
    const absent = noDefaultSocket(docker, explicit);
    if (absent !== undefined) throw new NothingToCollect(absent);
    try {
      return await docker.listContainers(signal);
    } catch (err) {
      if (isMissingSocket(err))
        throw new NothingToCollect(`no Docker socket at ${docker.socketPath}`);
      if (signal.aborted) throw err;
      throw new CollectorError(`containers: list ${endpoint}`, {
        cause: err,
        code: 'LOOKOUT_DOCKER_UNREACHABLE',
      });
    }
  }

  /** The default socket is not there: no Docker on this host (a configured one must be there). */
  function isMissingSocket(err: unknown): boolean {
    return (
      (err as { code?: string }).code === 'ENOENT' && !explicit && docker.socketPath !== undefined
    );
  }

  /** Podman's own API refused once (a socket proxy): said once in the log. */
  let libpodUnreadable = false;

  async function read(c: ContainerSummary, signal: AbortSignal): Promise<Reading> {
    const [reading, onFailure] = await Promise.all([
      readEngine(c, signal),
      healthOnFailure(c, signal),
    ]);
    return onFailure === undefined ? reading : { ...reading, onFailure };
  }

  /**
   * Podman's --health-on-failure of a container auto-restart watches (it then leaves the
   * container to Podman): Podman's compat inspect leaves the setting out, its own has it.
   */
  async function healthOnFailure(
    c: ContainerSummary,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    if (!autorestart.watching(containerName(c), c.Labels)) return undefined;
    try {
      if ((await docker.kind(signal)) !== 'podman') return undefined;
      return await docker.healthOnFailure(c.Id, signal);
    } catch (err) {
      if (signal.aborted || isNotFound(err)) throw err;
      // A socket proxy that lets through the Docker paths only: the container is still
      // read, and auto-restart treats it as it would on Docker.
      if (!libpodUnreadable) {
        libpodUnreadable = true;
        log.warn("Podman's own inspect not readable; auto-restart cannot see --health-on-failure", {
          endpoint,
          err: errorText(err),
        });
      }
      return undefined;
    }
  }

  async function readEngine(c: ContainerSummary, signal: AbortSignal): Promise<Reading> {
    const wantStats = config.stats && (c.State === 'running' || c.State === 'paused');
    if (wantStats && config.stats_source === 'auto') {
      const inspect = await docker.inspect(c.Id, signal);
      try {
        const stats = await readCgroupStats(
          c.Id,
          inspect.State.Pid,
          paths,
          ownNetwork(inspect.HostConfig.NetworkMode),
        );
        return { inspect, stats, source: 'cgroup' };
      } catch (err) {
        log.debug('container cgroup not readable here; asking the engine', {
          container: c.Names[0],
          err: errorText(err),
        });
      }
      const stats = await docker.stats(c.Id, signal);
      return { inspect, stats: statsEmpty(stats) ? undefined : stats, source: 'api' };
    }
    // Stats first: the engine answers a one-shot request on its stats collector's next
    // pass over the containers asked about, so they should all be asked before it runs.
    const [stats, inspect] = await Promise.all([
      wantStats ? docker.stats(c.Id, signal) : undefined,
      docker.inspect(c.Id, signal),
    ]);
    return {
      inspect,
      stats: stats && !statsEmpty(stats) ? stats : undefined,
      source: stats ? 'api' : undefined,
    };
  }

  function choose(listed: ContainerSummary[]): { chosen: ContainerSummary[]; omitted: number } {
    if (listed.length <= config.max_containers) return { chosen: listed, omitted: 0 };
    const sorted = [...listed].sort(
      (a, b) =>
        Number(b.State === 'running') - Number(a.State === 'running') ||
        (a.Names[0] ?? '').localeCompare(b.Names[0] ?? ''),
    );
    return {
      chosen: sorted.slice(0, config.max_containers),
      omitted: listed.length - config.max_containers,
    };
  }

  async function collect({ signal, deadline, log: ctxLog }: CollectContext): Promise<Registry> {
    const listed = await list(signal);
    events.present(new Set(listed.map((c) => containerName(c))));
    const { chosen, omitted } = choose(listed);
    if (omitted > 0)
      ctxLog.warn('more containers than max_containers; some left out', {
        listed: listed.length,
        omitted,
      });
    // The fan-out listens on the refresh's signal once per call in flight.
    setMaxListeners(config.concurrency + 10, signal);
    const results = await fanout.run(
      chosen,
      (c) => c.Id,
      (c, s) => read(c, s),
      { signal, deadline },
    );
    // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
    signal.throwIfAborted();
    const before = new Map(seen?.containers.map((c) => [c.id, c]));
    // Every label set is written anew, so removed containers' series go.
    for (const g of all) g.reset();
    present.clear();
    const containers: ContainerSeen[] = [];
    const watched: WatchedContainer[] = [];
    const unread = new Set<string>();
    chosen.forEach((c, i) => {
      const r = results[i]!;
      // Removed between the list and its inspect: it is not there any more, not a failure.
      if (r.status === 'failed' && isNotFound(r.error)) return;
      const labels = labelsOf(c);
      const running = c.State === 'running';
      put(m.running, labels, running ? 1 : 0);
      const item: ContainerSeen = {
        id: c.Id,
        labels,
        dockerLabels: c.Labels ?? {},
        state: c.State,
        running,
        shouldRun: shouldRun(labels.name, undefined, c.Labels, expectRunning),
        restartPolicy: '',
        restartCount: 0,
        oomKilled: false,
        health: 'none',
      };
      containers.push(item);
      if (r.status !== 'ok') {
        item.error = whyNot(r, config.request_timeout);
        // Its restart policy is in the inspect that failed: keep what the last one said, so
        // one unread refresh (a container mid-restart, a slow engine) does not make a
        // service look like a one-off job and resolve ContainerNotRunning.
        item.shouldRun = before.get(c.Id)?.shouldRun ?? item.shouldRun;
        unread.add(labels.name);
        put(m.success, { name: labels.name }, 0);
        put(m.shouldRun, labels, item.shouldRun ? 1 : 0);
        ctxLog.debug('container not read', { container: labels.name, err: item.error });
        return;
      }
      put(m.success, { name: labels.name }, 1);
      const { inspect, stats, source, onFailure } = r.value;
      item.statsSource = source;
      watched.push(
        fromInspect(
          onFailure === undefined
            ? inspect
            : { ...inspect, Config: { ...inspect.Config, HealthcheckOnFailureAction: onFailure } },
        ),
      );
      const st = inspect.State;
      item.shouldRun = shouldRun(labels.name, inspect, c.Labels, expectRunning);
      item.restartPolicy = inspect.HostConfig.RestartPolicy?.Name ?? '';
      item.restartCount = inspect.RestartCount;
      item.oomKilled = st.OOMKilled;
      item.health = healthOf(inspect);
      item.healthFailingStreak = st.Health?.FailingStreak;
      item.healthcheck = inspect.Config.Healthcheck;
      item.startedAt = unixSeconds(st.StartedAt);
      put(m.shouldRun, labels, item.shouldRun ? 1 : 0);
      put(m.restartCount, labels, inspect.RestartCount);
      put(m.oomKilled, labels, st.OOMKilled ? 1 : 0);
      for (const s of HEALTH_STATES)
        put(m.health, { ...labels, status: s }, s === item.health ? 1 : 0);
      if (item.startedAt !== undefined) put(m.startTime, labels, item.startedAt);
      if (c.State === 'exited' || c.State === 'dead') {
        item.exitCode = st.ExitCode;
        put(m.exitCode, labels, st.ExitCode);
      }
      item.cpuLimitCores = cpuLimitCores(inspect.HostConfig);
      item.memoryLimitBytes = memoryLimitBytes(inspect.HostConfig);
      if (item.cpuLimitCores !== undefined) put(m.cpuLimit, labels, item.cpuLimitCores);
      if (item.memoryLimitBytes !== undefined) put(m.memoryLimit, labels, item.memoryLimitBytes);
      if (!stats) return;
      item.statsReadAt = unixSeconds(stats.read);
      item.cpuSeconds = cpuSeconds(stats);
      if (item.cpuSeconds !== undefined) add(m.cpu, labels, item.cpuSeconds);
      item.memoryWorkingSetBytes = workingSetBytes(stats.memory_stats);
      if (item.memoryWorkingSetBytes !== undefined)
        put(m.workingSet, labels, item.memoryWorkingSetBytes);
      // Only the container's own namespace: whatever the source listed for none, host or another's.
      const net = ownNetwork(inspect.HostConfig.NetworkMode) ? networkBytes(stats) : undefined;
      if (net) {
        add(m.rx, labels, net.rx);
        add(m.tx, labels, net.tx);
      }
      const prev = before.get(c.Id);
      if (
        prev?.cpuSeconds !== undefined &&
        prev.statsReadAt !== undefined &&
        item.cpuSeconds !== undefined &&
        item.statsReadAt !== undefined &&
        item.statsReadAt > prev.statsReadAt &&
        item.cpuSeconds >= prev.cpuSeconds
      )
        item.cpuCores = (item.cpuSeconds - prev.cpuSeconds) / (item.statsReadAt - prev.statsReadAt);
    });
    seen = { at: Date.now() / 1000, endpoint, containers, omitted };
    await autorestart.observe(watched, unread);
    return shown.show([...all.filter((g) => present.has(g)), ...autorestart.metrics()]);
  }

  return {
    docker,
    events,
    autorestart,
    actions: [autorestart.action],
    describeState: () => autorestart.describeState(),
    service: events,
    lastSeen: () => seen,
    collect,
    async checkTargets({ signal }): Promise<TargetCheck[]> {
      const t0 = performance.now();
      try {
        const v = await docker.version(signal);
        const n = (await docker.listContainers(signal)).length;
        const engine = v.Components?.find((c) => /podman/i.test(c.Name))
          ? `Podman ${v.Version}`
          : `Docker ${v.Version}`;
        return [
          {
            target: endpoint,
            ok: true,
            detail: `${engine} (API ${v.ApiVersion}) in ${Math.round(performance.now() - t0)} ms: ${n} containers`,
          },
        ];
      } catch (err) {
        // No Docker on this host and none configured: nothing to check.
        if (isMissingSocket(err)) return [];
        return [{ target: endpoint, ok: false, detail: errorText(err) }];
      }
    },
  };
}

registerCollector({
  name: 'containers',
  description:
    'Docker or Podman containers through the Engine API: running, CPU, memory against the limit, network, health, restarts and OOM kills (lookout_container_*)',
  metrics: [
    'lookout_container_running',
    'lookout_container_should_run',
    'lookout_container_last_exit_code',
    'lookout_container_cpu_seconds_total',
    'lookout_container_cpu_limit_cores',
    'lookout_container_memory_working_set_bytes',
    'lookout_container_memory_limit_bytes',
    'lookout_container_network_receive_bytes_total',
    'lookout_container_network_transmit_bytes_total',
    'lookout_container_restart_count',
    'lookout_container_health_status',
    'lookout_container_oom_killed',
    'lookout_container_start_time_seconds',
    'lookout_container_collect_success',
    'lookout_container_oom_kills_total',
    'lookout_container_restarts_total',
    ...AUTORESTART_METRICS,
  ],
  schema: containersSchema,
  create: ({ config, http, log, paths, stateMode, stateDirectory, peer }) =>
    createContainersCollector(config, http, log, { paths, stateMode, stateDirectory, peer }),
});
