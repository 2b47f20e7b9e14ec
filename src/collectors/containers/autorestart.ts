/**
 * Auto-restart: the containers collector's `restart` action. A container opts in (label
 * `lookout.autorestart=true`, or its name under `autorestart.containers`); after
 * `failures` failed health checks in a row — its own Docker health check's FailingStreak,
 * or a lookout probe's consecutive failures — lookout restarts it through the Docker API,
 * escalating to kill + start when the restart is refused. Never while it is starting
 * (inside its start_period since StartedAt) or already restarting, at most
 * `max_restarts_per_hour` times an hour per container with an exponential back-off
 * between attempts; when that budget is spent and it still fails, lookout stops trying
 * (`lookout_container_remediation_paused` 1) until it is healthy again or someone else
 * starts it. The budget, back-off, pause and pending outcomes live in a JSON file in the
 * collector's state directory, so a restart of lookout does not renew them.
 *
 * observe() is fed each refresh's containers and decides; plan() returns that decision
 * (no I/O, so `lookout status` shows it); run() acts, under `serve` only.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Metric } from 'prom-client';
import { Counter, Gauge, type Registry } from '../../lib/prom.js';
import { z } from 'zod';
import { duration } from '../../config/duration.js';
import { errorText, type Logger } from '../../lib/log.js';
import type { StorageMode } from '../../lib/storage.js';
import type { ActionContext, ActionPlan, CollectorAction } from '../collector.js';

export const AUTORESTART_LABEL = 'lookout.autorestart';
export const STATE_FILE = 'autorestart.json';
const HOUR_MS = 3_600_000;
/** What a restart may take beyond stop_timeout: the start, inspects, a kill-and-start escalation. */
const RESTART_SLACK_MS = 20_000;
/** Docker's defaults for a health check field left at 0. */
const DOCKER_INTERVAL_MS = 30_000;
const DOCKER_RETRIES = 3;

export const AUTORESTART_METRICS = [
  'lookout_container_remediation_restarts_total',
  'lookout_container_remediation_outcomes_total',
  'lookout_container_remediation_paused',
  'lookout_container_remediation_enabled',
] as const;

export const autorestartSchema = z
  .strictObject({
    containers: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Containers (by name) auto-restart watches, besides those labelled lookout.autorestart=true.',
      ),
    probes: z
      .record(z.string().min(1), z.string().min(1))
      .default({})
      .describe(
        'A container whose health signal is a lookout probe rather than its own Docker health check: container name → the probe\'s target name (or "kind name"), from collectors.probes.targets (which must be enabled). Listing a container here opts it in too.',
      ),
    failures: z
      .number()
      .int()
      .min(1)
      .default(3)
      .describe('Restart after this many failed health checks (or probe rounds) in a row.'),
    max_restarts_per_hour: z
      .number()
      .int()
      .min(1)
      .default(3)
      .describe(
        'At most this many restarts of one container in any hour; past it lookout stops trying (lookout_container_remediation_paused 1) until the container is healthy again or someone else starts it.',
      ),
    backoff: duration
      .prefault('30s')
      .describe(
        'The wait after the first restart of the hour before another; doubled after each further one (30s, 1m, 2m, ...).',
      ),
    stop_timeout: duration
      .prefault('5s')
      .describe(
        'How long Docker waits after SIGTERM before SIGKILL on a restart. One restart may take this long plus 20s before lookout counts it failed.',
      ),
    start_period: duration
      .prefault('30s')
      .describe(
        "For a container watched through a probe: how long after it starts its probe's failures do not count (its own health check's start_period when that is longer).",
      ),
    recovery_window: duration
      .prefault('2m')
      .describe(
        'How long after a restart a container without a health check has to answer its probe to count as recovered (with a health check: its start_period + interval × retries).',
      ),
  })
  .describe(
    'Auto-restart of unhealthy containers (runs only when actions.enabled is true, only under lookout serve). Needs WRITE access to the Docker API (restart, kill, start): whoever has that is root on the host — give it through a socket proxy that allows only those calls (docs/autorestart.md).',
  );

export type AutorestartConfig = z.output<typeof autorestartSchema>;

/** The fields of Docker's (or Podman's) /containers/{id}/json auto-restart reads. */
export interface InspectLike {
  Id: string;
  Name: string;
  Config: {
    Labels?: Record<string, string> | null;
    Healthcheck?: {
      Test?: string[] | null;
      Interval?: number;
      Timeout?: number;
      StartPeriod?: number;
      Retries?: number;
    } | null;
    /** Podman: `--health-on-failure` (none, kill, restart, stop). */
    HealthcheckOnFailureAction?: string;
  };
  State: {
    Status?: string;
    Running: boolean;
    Restarting: boolean;
    StartedAt: string;
    Health?: { Status: string; FailingStreak: number } | null;
  };
}

/** One container as auto-restart sees it. */
export interface WatchedContainer {
  id: string;
  name: string;
  running: boolean;
  restarting: boolean;
  /** Unix ms; undefined when never started. */
  startedAtMs?: number;
  labels: Readonly<Record<string, string>>;
  /** Its Docker health check's state; undefined without one. */
  health?: { status: string; failingStreak: number };
  /** Its health check's settings, Docker's defaults filled in; undefined without one. */
  healthcheck?: { intervalMs: number; startPeriodMs: number; retries: number };
  /** Podman's --health-on-failure, when set to something other than none. */
  onFailure?: string;
}

/** The Docker API calls auto-restart makes (the containers collector's client has them). */
export interface RestartEngine {
  inspect(id: string, signal: AbortSignal): Promise<InspectLike>;
  restart(id: string, opts: { timeoutSeconds?: number }, signal: AbortSignal): Promise<void>;
  kill(id: string, opts: { signal?: string }, signal: AbortSignal): Promise<void>;
  start(id: string, signal: AbortSignal): Promise<void>;
}

const NS_PER_MS = 1_000_000;

/** Docker's inspect answer, as auto-restart reads it. */
export function fromInspect(c: InspectLike): WatchedContainer {
  const hc = c.Config.Healthcheck;
  const test = hc?.Test ?? [];
  const hasCheck = test.length > 0 && test[0] !== 'NONE';
  const started = Date.parse(c.State.StartedAt);
  const onFailure = c.Config.HealthcheckOnFailureAction;
  const health = c.State.Health;
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    running: c.State.Running,
    restarting: c.State.Restarting || c.State.Status === 'restarting',
    // Never started: Docker says 0001-01-01T00:00:00Z.
    startedAtMs: Number.isFinite(started) && started > 0 ? started : undefined,
    labels: c.Config.Labels ?? {},
    health:
      hasCheck && health
        ? { status: health.Status, failingStreak: health.FailingStreak }
        : undefined,
    healthcheck: hasCheck
      ? {
          intervalMs: hc?.Interval ? hc.Interval / NS_PER_MS : DOCKER_INTERVAL_MS,
          startPeriodMs: (hc?.StartPeriod ?? 0) / NS_PER_MS,
          retries: hc?.Retries || DOCKER_RETRIES,
        }
      : undefined,
    onFailure: onFailure && onFailure !== 'none' ? onFailure : undefined,
  };
}

/** What auto-restart keeps per container across restarts of lookout. */
interface Kept {
  /** When each restart attempt of the last hour began (Unix ms). */
  restarts: number[];
  /** StartedAt after lookout's last restart: a later start was someone else's. */
  started_at?: number;
  /** Since when it is paused (budget spent, still failing). */
  paused_since?: number;
  /** A restart whose outcome is not known yet. */
  pending?: { restarted_at: number; deadline: number };
  /** Killed by lookout (its restart refused) and not seen started since: start it. */
  killed?: number;
}

interface StateFile {
  version: 1;
  containers: Record<string, Kept>;
}

export interface RestartPlan extends ActionPlan {
  /** Set on a plan run() may act on. */
  id?: string;
  /** Finish a kill + start whose start failed. */
  startOnly?: boolean;
}

export interface AutorestartOptions {
  config: AutorestartConfig;
  /** The collector's `actions.enabled`: whether lookout serve may act at all. */
  actionsEnabled: boolean;
  /** Where the four series are registered; without one, the collector shows metrics(). */
  registry?: Registry;
  log: Logger;
  stateMode: StorageMode;
  /** The collector's state directory; without one the state lives in memory only. */
  stateDirectory?: () => Promise<string>;
  engine: RestartEngine;
  /** The collector's interval and timeout (ms): outcome grace, and the least a restart may take. */
  intervalMs: number;
  timeoutMs: number;
  /** The probes collector's consecutive failures by `kind target`, when it runs. */
  probeFailures?: () => ReadonlyMap<string, number> | undefined;
  now?: () => number;
}

type Signal = { kind: 'docker' } | { kind: 'probe'; target: string };

export class Autorestart {
  readonly action: CollectorAction<RestartPlan>;
  private readonly restarts: Counter;
  private readonly outcomes: Counter;
  private readonly paused: Gauge;
  private readonly enabled: Gauge;
  private state?: StateFile;
  private loading?: Promise<StateFile>;
  private plans: RestartPlan[] = [];
  private shown = new Set<string>();
  /** Containers that have series now. */
  private series = new Set<string>();
  /** Per container, the probe's failure count when it last started (probe counts run on across restarts). */
  private probeBase = new Map<string, number>();
  private saving: Promise<void> = Promise.resolve();
  /** Containers run() is restarting now. */
  private inFlight = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly o: AutorestartOptions) {
    this.now = o.now ?? Date.now;
    const registers = o.registry ? [o.registry] : [];
    this.restarts = new Counter({
      name: 'lookout_container_remediation_restarts_total',
      help: 'Auto-restart: restarts lookout did (restarted; a refused restart followed by a kill and start counts here too), that failed (failed), or that were due but not done (skipped: found healthy, starting, restarting or gone when looked at again, or the hour’s budget spent).',
      labelNames: ['name', 'result'],
      registers,
    });
    this.outcomes = new Counter({
      name: 'lookout_container_remediation_outcomes_total',
      help: 'Auto-restart: whether a restart helped — healthy again within its health check’s window (start_period + interval × retries; autorestart.recovery_window without one): recovered, else not_recovered.',
      labelNames: ['name', 'outcome'],
      registers,
    });
    this.paused = new Gauge({
      name: 'lookout_container_remediation_paused',
      help: 'Auto-restart: 1 when the container’s restart budget (autorestart.max_restarts_per_hour) is spent and it still fails, so lookout stopped trying; 0 again once it is healthy or someone else starts it.',
      labelNames: ['name'],
      registers,
    });
    this.enabled = new Gauge({
      name: 'lookout_container_remediation_enabled',
      help: 'Auto-restart: 1 for each opted-in container lookout would restart (actions enabled, a health signal, not left to Podman’s --health-on-failure), else 0.',
      labelNames: ['name'],
      registers,
    });
    this.action = {
      name: 'restart',
      description: `restart a container that failed its health check ${o.config.failures} times in a row (at most ${o.config.max_restarts_per_hour} times an hour each)`,
      plan: () => this.plans,
      run: (plan, ctx) => this.run(plan, ctx),
      // Docker waits stop_timeout for the container to stop, then starts it; inspects and
      // a kill-and-start escalation come on top.
      timeoutMs: Math.max(o.timeoutMs, o.config.stop_timeout + RESTART_SLACK_MS),
    };
  }

  /** The metric objects to show, once any container is opted in (none: no empty families). */
  metrics(): Metric[] {
    return this.series.size > 0 ? [this.restarts, this.outcomes, this.paused, this.enabled] : [];
  }

  private watches(c: Pick<WatchedContainer, 'name' | 'labels'>): boolean {
    const cfg = this.o.config;
    return (
      c.labels[AUTORESTART_LABEL] === 'true' ||
      cfg.containers.includes(c.name) ||
      cfg.probes[c.name] !== undefined
    );
  }

  /** Whether the container (its name and Docker labels) is opted in. */
  watching(name: string, labels: Readonly<Record<string, string>> | null): boolean {
    return this.watches({ name, labels: labels ?? {} });
  }

  /** Once per process per key: a line that would otherwise repeat every refresh. */
  private once(key: string, f: () => void): void {
    if (this.shown.has(key)) return;
    this.shown.add(key);
    f();
  }

  private kept(name: string): Kept {
    const s = this.state!;
    return (s.containers[name] ??= { restarts: [] });
  }

  /**
   * The state, read from its file once. Callers that overlap (a refresh's observe() and
   * status's describeState()) share the one read: a second read finishing later would
   * replace the state the first caller has changed since (a pause, a restart counted).
   */
  private load(): Promise<StateFile> {
    this.loading ??= this.read();
    return this.loading;
  }

  private async read(): Promise<StateFile> {
    let state: StateFile = { version: 1, containers: {} };
    try {
      if (!this.o.stateDirectory)
        throw Object.assign(new Error('no state directory'), { code: 'ENOENT' });
      const dir = await this.o.stateDirectory();
      const text = await readFile(join(dir, STATE_FILE), 'utf8');
      const parsed = JSON.parse(text) as Partial<StateFile>;
      if (parsed.version === 1 && parsed.containers && typeof parsed.containers === 'object')
        state = { version: 1, containers: parsed.containers };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.o.log.warn('auto-restart state unreadable; starting with an empty budget', {
          err: errorText(err),
        });
    }
    this.state = state;
    return state;
  }

  /** Writes the state file whole (tmp + rename), one write at a time; never in read-only mode. */
  private save(): Promise<void> {
    const dir = this.o.stateDirectory;
    if (this.o.stateMode !== 'read-write' || !this.state || !dir) return this.saving;
    const text = JSON.stringify(this.state);
    this.saving = this.saving.then(async () => {
      try {
        const path = join(await dir(), STATE_FILE);
        await writeFile(`${path}.tmp`, text, { mode: 0o640 });
        await rename(`${path}.tmp`, path);
      } catch (err) {
        this.o.log.warn('auto-restart state not saved', { err: errorText(err) });
      }
    });
    return this.saving;
  }

  private signalOf(c: WatchedContainer): Signal | undefined {
    const target = this.o.config.probes[c.name];
    if (target !== undefined) return { kind: 'probe', target };
    return c.health ? { kind: 'docker' } : undefined;
  }

  /** The probe's consecutive failures, or undefined when the probes collector has no such target. */
  private probeCount(target: string): number | undefined {
    const counts = this.o.probeFailures?.();
    if (!counts) return undefined;
    let found: number | undefined;
    for (const [key, n] of counts)
      if (key === target || key.endsWith(` ${target}`)) found = Math.max(found ?? 0, n);
    return found;
  }

  private startWindowMs(c: WatchedContainer, signal: Signal): number {
    const own = c.healthcheck?.startPeriodMs ?? 0;
    return signal.kind === 'probe' ? Math.max(own, this.o.config.start_period) : own;
  }

  private recoveryWindowMs(c: WatchedContainer): number {
    const hc = c.healthcheck;
    return hc ? hc.startPeriodMs + hc.intervalMs * hc.retries : this.o.config.recovery_window;
  }

  private backoffUntil(k: Kept, now: number): number | undefined {
    const recent = k.restarts.filter((t) => t > now - HOUR_MS);
    if (recent.length === 0) return undefined;
    const until = Math.max(...recent) + this.o.config.backoff * 2 ** (recent.length - 1);
    return until > now ? until : undefined;
  }

  /**
   * One refresh's containers: updates the series, resolves outcomes, pauses and resumes,
   * and decides what the action would do now (plan()). Saves the state when it changed.
   * `unread`: containers the engine listed whose inspect failed or timed out this refresh.
   * They keep their series as they were: dropping them would reset their counters to 0
   * over one slow answer, and nothing is decided about them.
   */
  async observe(
    containers: readonly WatchedContainer[],
    unread: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    const state = await this.load();
    const cfg = this.o.config;
    const now = this.now();
    const plans: RestartPlan[] = [];
    let changed = false;
    const seen = new Set<string>();

    for (const c of containers) {
      if (!this.watches(c)) continue;
      const name = c.name;
      seen.add(name);
      this.series.add(name);
      for (const result of ['restarted', 'failed', 'skipped'])
        this.restarts.inc({ name, result }, 0);
      for (const outcome of ['recovered', 'not_recovered']) this.outcomes.inc({ name, outcome }, 0);

      if (c.onFailure !== undefined) {
        const why = `Podman's --health-on-failure=${c.onFailure} acts on it`;
        this.once(`podman ${name}`, () =>
          this.o.log.info('auto-restart leaves this container to Podman', {
            container: name,
            health_on_failure: c.onFailure,
          }),
        );
        plans.push({ target: name, what: `leave ${name} to Podman`, why, held: true });
        this.enabled.set({ name }, 0);
        this.paused.set({ name }, 0);
        continue;
      }
      const signal = this.signalOf(c);
      let failures: number | undefined;
      if (signal?.kind === 'probe') {
        const count = this.probeCount(signal.target);
        if (count !== undefined) {
          const base = this.probeBase.get(name) ?? 0;
          const from = count < base ? 0 : base;
          if (count < base) this.probeBase.delete(name);
          failures = count - from;
        }
      } else if (signal?.kind === 'docker') failures = c.health!.failingStreak;
      if (signal === undefined || failures === undefined) {
        const why =
          signal?.kind === 'probe'
            ? `no probe "${signal.target}" in collectors.probes (is it enabled?)`
            : 'it has no health check and autorestart.probes names no probe for it';
        this.once(`nosignal ${name}`, () =>
          this.o.log.warn('auto-restart cannot watch this container', { container: name, why }),
        );
        plans.push({ target: name, what: `cannot watch ${name}`, why, held: true });
        this.enabled.set({ name }, 0);
        this.paused.set({ name }, 0);
        continue;
      }
      this.enabled.set({ name }, this.o.actionsEnabled ? 1 : 0);
      const healthy =
        signal.kind === 'docker'
          ? c.health!.status === 'healthy'
          : this.probeCount(signal.target) === 0;
      const k = state.containers[name];
      if (this.inFlight.has(name)) {
        // Being restarted now: what this refresh saw may be from before or during it.
        this.paused.set({ name }, k?.paused_since !== undefined ? 1 : 0);
        continue;
      }
      if (
        k?.started_at !== undefined &&
        c.startedAtMs !== undefined &&
        c.startedAtMs < k.started_at
      ) {
        // Read before lookout's last restart of it (an inspect that waited out the restart):
        // nothing to judge or decide from.
        this.paused.set({ name }, k.paused_since !== undefined ? 1 : 0);
        continue;
      }
      const fewer = k?.restarts.filter((t) => t > now - HOUR_MS);
      if (k && fewer && fewer.length !== k.restarts.length) {
        k.restarts = fewer;
        changed = true;
      }

      // Outcome of the last restart: healthy within its window, or not.
      if (k?.pending && (healthy || now > k.pending.deadline)) {
        this.outcomes.inc({ name, outcome: healthy ? 'recovered' : 'not_recovered' });
        this.o.log.info(healthy ? 'auto-restart helped' : 'auto-restart did not help', {
          container: name,
        });
        k.pending = undefined;
        changed = true;
      }
      // Paused until it is healthy again or someone else starts it.
      if (k?.paused_since !== undefined) {
        const startedElsewhere =
          c.startedAtMs !== undefined && k.started_at !== undefined && c.startedAtMs > k.started_at;
        if (healthy || startedElsewhere) {
          k.paused_since = undefined;
          changed = true;
          this.o.log.info('auto-restart resumes', {
            container: name,
            why: healthy ? 'healthy again' : 'started by someone else',
          });
        }
      }

      const starting =
        c.startedAtMs !== undefined && now < c.startedAtMs + this.startWindowMs(c, signal);
      // A probe's count runs on across a restart: only failures after the start window count.
      if (signal.kind === 'probe' && starting) {
        const count = this.probeCount(signal.target) ?? 0;
        this.probeBase.set(name, count);
        failures = 0;
      }
      const what =
        signal.kind === 'docker'
          ? `unhealthy ${failures} times in a row`
          : `probe ${signal.target} failed ${failures} times in a row`;

      if (k?.paused_since !== undefined) {
        const n = cfg.max_restarts_per_hour;
        plans.push({
          target: name,
          what: `leave ${name} alone`,
          why: `paused: ${n} restart${n === 1 ? '' : 's'} this hour did not help (resumes when it is healthy or started by someone else)`,
          held: true,
        });
      } else if (!c.running) {
        // Stopped: not a health matter (lookout_container_running says so), unless lookout
        // stopped it: a kill whose start failed is finished.
        if (k?.killed !== undefined && !c.restarting)
          plans.push({
            target: name,
            what: `start ${name}`,
            why: 'lookout killed it when its restart was refused, and starting it failed',
            id: c.id,
            startOnly: true,
          });
      } else if (c.restarting) {
        if (failures >= cfg.failures)
          plans.push({
            target: name,
            what: `leave ${name} alone`,
            why: 'restarting already',
            held: true,
          });
      } else if (failures >= cfg.failures) {
        if (k?.pending) {
          // Failing again before its window ended: that restart did not help.
          this.outcomes.inc({ name, outcome: 'not_recovered' });
          k.pending = undefined;
          changed = true;
        }
        const recent = k?.restarts.length ?? 0;
        const until = k ? this.backoffUntil(k, now) : undefined;
        if (starting) {
          const end = c.startedAtMs! + this.startWindowMs(c, signal);
          plans.push({
            target: name,
            what: `leave ${name} alone`,
            why: `starting: inside its start period until ${clock(end)}`,
            held: true,
          });
        } else if (recent >= cfg.max_restarts_per_hour) {
          const kk = this.kept(name);
          kk.paused_since = now;
          changed = true;
          this.restarts.inc({ name, result: 'skipped' });
          this.o.log.warn('auto-restart paused: the hour’s restarts did not help', {
            container: name,
            restarts_this_hour: recent,
            why: what,
          });
          plans.push({
            target: name,
            what: `leave ${name} alone`,
            why: `paused: ${recent} restart${recent === 1 ? '' : 's'} this hour did not help (resumes when it is healthy or started by someone else)`,
            held: true,
          });
        } else if (until !== undefined) {
          plans.push({
            target: name,
            what: `wait to restart ${name}`,
            why: `${what}; back-off after ${recent} restart${recent === 1 ? '' : 's'} this hour until ${clock(until)}`,
            held: true,
          });
        } else plans.push({ target: name, what: `restart ${name}`, why: what, id: c.id });
      }
      this.paused.set({ name }, this.state!.containers[name]?.paused_since !== undefined ? 1 : 0);
    }

    // Containers gone or no longer opted in: their series go.
    for (const name of this.series) {
      if (seen.has(name) || unread.has(name)) continue;
      this.series.delete(name);
      this.probeBase.delete(name);
      this.shown.delete(`podman ${name}`);
      this.shown.delete(`nosignal ${name}`);
      for (const result of ['restarted', 'failed', 'skipped'])
        this.restarts.remove({ name, result });
      for (const outcome of ['recovered', 'not_recovered']) this.outcomes.remove({ name, outcome });
      this.paused.remove({ name });
      this.enabled.remove({ name });
    }
    // Nothing worth keeping: dropped, so the file stays small.
    for (const [name, k] of Object.entries(state.containers))
      if (
        k.restarts.length === 0 &&
        !k.pending &&
        k.paused_since === undefined &&
        k.killed === undefined
      ) {
        delete state.containers[name];
        changed = true;
      }
    this.plans = plans;
    if (changed) await this.save();
  }

  private async run(plan: RestartPlan, ctx: ActionContext): Promise<void> {
    if (plan.held || plan.id === undefined) return;
    await this.load();
    const cfg = this.o.config;
    const name = plan.target;
    const log = ctx.log.child({ container: name });
    // Looked at again right before acting: what the refresh saw may be a second old.
    let now: WatchedContainer;
    try {
      now = fromInspect(await this.o.engine.inspect(plan.id, ctx.signal));
    } catch (err) {
      this.restarts.inc({ name, result: 'skipped' });
      log.info('auto-restart skipped: container not found', { err: errorText(err) });
      return;
    }
    if (plan.startOnly) {
      const k = this.kept(name);
      if (now.running || k.killed === undefined) return;
      try {
        await this.o.engine.start(plan.id, ctx.signal);
      } catch (err) {
        this.restarts.inc({ name, result: 'failed' });
        throw err;
      }
      k.killed = undefined;
      await this.save();
      this.restarts.inc({ name, result: 'restarted' });
      log.warn('auto-restart: started what it had killed', {});
      return;
    }
    const signal = this.signalOf(now);
    const still =
      signal?.kind === 'probe' ||
      (now.health !== undefined && now.health.failingStreak >= cfg.failures);
    const starting =
      signal !== undefined &&
      now.startedAtMs !== undefined &&
      this.now() < now.startedAtMs + this.startWindowMs(now, signal);
    if (!now.running || now.restarting || starting || !still) {
      this.restarts.inc({ name, result: 'skipped' });
      log.info('auto-restart skipped', {
        why: !now.running
          ? 'not running'
          : now.restarting
            ? 'restarting already'
            : starting
              ? 'starting'
              : 'no longer failing',
      });
      return;
    }

    this.inFlight.add(name);
    try {
      await this.restart({ ...plan, id: plan.id }, now, signal, ctx);
    } finally {
      this.inFlight.delete(name);
    }
  }

  private async restart(
    plan: RestartPlan & { id: string },
    now: WatchedContainer,
    signal: Signal | undefined,
    ctx: ActionContext,
  ): Promise<void> {
    const cfg = this.o.config;
    const name = plan.target;
    const log = ctx.log.child({ container: name });
    const at = this.now();
    const k = this.kept(name);
    k.restarts.push(at);
    // Counted against the budget before the call: a lookout killed mid-restart still counts it.
    await this.save();
    const timeoutSeconds = Math.floor(cfg.stop_timeout / 1000);
    let escalated = false;
    try {
      try {
        await this.o.engine.restart(plan.id, { timeoutSeconds }, ctx.signal);
      } catch (err) {
        // Our own deadline: Docker may still be restarting it; a kill now would race it.
        if (ctx.signal.aborted) throw err;
        log.warn('auto-restart: restart refused; killing and starting it', { err: errorText(err) });
        escalated = true;
        k.killed = this.now();
        await this.save();
        await this.o.engine.kill(plan.id, {}, ctx.signal).catch((e: unknown) => {
          // Not running any more (409) is what kill was for.
          if ((e as { status?: number }).status !== 409) throw e;
        });
        await this.o.engine.start(plan.id, ctx.signal);
        k.killed = undefined;
      }
    } catch (err) {
      this.restarts.inc({ name, result: 'failed' });
      await this.save();
      throw err;
    }
    this.restarts.inc({ name, result: 'restarted' });
    const after = await this.o.engine
      .inspect(plan.id, ctx.signal)
      .then(fromInspect)
      .catch(() => undefined);
    k.started_at = after?.startedAtMs ?? at;
    k.pending = {
      restarted_at: at,
      // From its new start; one refresh of grace, as the first that can see it healthy may come that late.
      deadline: k.started_at + this.recoveryWindowMs(after ?? now) + this.o.intervalMs,
    };
    this.probeBase.set(name, signal?.kind === 'probe' ? (this.probeCount(signal.target) ?? 0) : 0);
    await this.save();
    log.warn(escalated ? 'auto-restart: killed and started' : 'auto-restart: restarted', {
      why: plan.why,
      restarts_this_hour: k.restarts.filter((t) => t > at - HOUR_MS).length,
      max_restarts_per_hour: cfg.max_restarts_per_hour,
    });
  }

  /** `lookout status`'s lines about what the state file holds. */
  async describeState(): Promise<string[]> {
    const state = await this.load();
    const now = this.now();
    const lines: string[] = [];
    for (const [name, k] of Object.entries(state.containers)) {
      const recent = k.restarts.filter((t) => t > now - HOUR_MS).length;
      let line = `auto-restart ${name}: ${recent} restart${recent === 1 ? '' : 's'} in the last hour`;
      if (k.paused_since !== undefined) line += `, paused since ${clock(k.paused_since)}`;
      if (k.pending) line += `, outcome pending until ${clock(k.pending.deadline)}`;
      lines.push(line);
    }
    return lines;
  }
}

/** A time of day in UTC, as the log and `lookout status` show it: 10:31:05 UTC. */
function clock(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}
