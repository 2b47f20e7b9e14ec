import { Counter, Gauge, Registry } from '../lib/prom.js';
import {
  familiesOverlap,
  familyCovers,
  NothingToCollect,
  type ActionPlan,
  type ActionsConfig,
  type Collector,
  type CollectorAction,
  type CollectorService,
} from '../collectors/collector.js';
import { errorText, type Logger } from '../lib/log.js';
import { RateLimitedLog } from '../lib/ratelog.js';
import { render, type Rendered } from './openmetrics.js';

export interface RunnerEntry {
  name: string;
  description: string;
  /** The metric families it may export (names, or prefixes ending in `*`). */
  metrics: readonly string[];
  collector: Collector;
  intervalMs: number;
  timeoutMs: number;
  /** Its `actions:` block, when it declares actions; without one they never run. */
  actions?: ActionsConfig;
}

/** The parts a collector is made of, as the landing page and `lookout status` name them. */
export type Part = 'collect' | 'service' | 'actions';

export type Outcome = 'pending' | 'ok' | 'failed' | 'timeout' | 'nothing' | 'stuck';

/** What the landing page and `lookout status` show about one collector. */
export interface CollectorState {
  readonly name: string;
  readonly description: string;
  readonly parts: readonly Part[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  outcome: Outcome;
  lastDurationSeconds?: number;
  lastSuccessTimestamp?: number;
  lastError?: string;
}

interface Slot {
  entry: RunnerEntry;
  /** The runner's logger with this collector's name, made once rather than per refresh. */
  log: Logger;
  state: CollectorState;
  /** The polled part: the exposition of its last good refresh, both formats (empty after a failure: nothing stale). */
  text: Rendered;
  /** The polled part's last failure (undefined after a success), kept for the service's health checks. */
  collectFailure?: { outcome: Outcome; error: string };
  /** The refresh (or service start) still running, so a hung one is not started again. */
  inFlight?: Promise<void>;
  inFlightSince: number;
  /** The next run, when no scrape pulls it forward (see schedule). */
  timer?: NodeJS.Timeout;
  /** When the last run (refresh, service start or health check) began (performance.now). */
  lastRunAt: number;
  /** The service part: started and not stopped. */
  running: boolean;
  /** The service part: the fault it reported after start, until it says it is healthy again. */
  fault?: string;
  /** The refresh or start in flight, aborted on shutdown. */
  abort?: AbortController;
  /** The actions being run after the last refresh; none are planned again until they end. */
  acting?: Promise<void>;
  /** Aborts the action running now (shutdown). */
  actionAbort?: AbortController;
  /** Per action, when each run in the last hour began (Date.now): the sliding window. */
  actionRuns: Map<string, number[]>;
}

/** How one planned action ended: the `result` label of lookout_collector_actions_total. */
export type ActionResult = 'done' | 'failed' | 'skipped_rate_limited';
const ACTION_RESULTS: readonly ActionResult[] = ['done', 'failed', 'skipped_rate_limited'];

const HOUR_MS = 3_600_000;

/** One action of one collector as `lookout status` and `lookout check` show it. */
export interface ActionReport {
  collector: string;
  action: string;
  description: string;
  /** Whether the config lets `lookout serve` run it (`actions.enabled`). */
  enabled: boolean;
  /** The config's `actions.max_per_hour` (undefined: the collector has no actions block). */
  maxPerHour?: number;
  /** Runs this process began in the last hour. */
  runsLastHour: number;
  /** What it would do now, from the collector's last refresh; undefined when that failed. */
  plans?: readonly ActionPlan[];
  /** Why there are no plans: the refresh failed, or plan() threw. */
  error?: string;
}

/** Two collectors claim one metric family, or a collector claims one of lookout's own. */
export class StartupError extends Error {
  readonly code = 'LOOKOUT_STARTUP';
}

class TimeoutError extends Error {
  readonly code = 'LOOKOUT_COLLECTOR_TIMEOUT';
}

const NOTHING: Rendered = { prometheus: '', openmetrics: '' };

/** Families the runner itself exports; no collector may claim them. */
const SELF_FAMILIES = [
  'lookout_collector_success',
  'lookout_collector_duration_seconds',
  'lookout_collector_last_success_timestamp_seconds',
  'lookout_build_info',
  'lookout_http_auth_failures_total',
  'lookout_collector_actions_total',
];

/** Throws a StartupError naming both owners when two entries can export one family. */
export function checkFamilies(entries: readonly Pick<RunnerEntry, 'name' | 'metrics'>[]): void {
  const owners = [{ name: 'lookout itself', metrics: SELF_FAMILIES }, ...entries];
  const problems: string[] = [];
  for (let i = 0; i < owners.length; i++) {
    for (let j = i + 1; j < owners.length; j++) {
      for (const a of owners[i]!.metrics) {
        for (const b of owners[j]!.metrics) {
          if (familiesOverlap(a, b)) {
            const what = a === b ? a : `${a} and ${b}`;
            problems.push(
              `collectors ${owners[i]!.name} and ${owners[j]!.name} both export ${what}; disable one of them`,
            );
          }
        }
      }
    }
  }
  if (problems.length > 0) throw new StartupError(problems.join('\n'));
}

/**
 * Per collector, the metric names already found declared: a refresh exports mostly the
 * names the last one did, and a declaration does not change while lookout runs.
 */
const declaredSeen = new WeakMap<RunnerEntry, Set<string>>();

/** Why `registry` breaks its collector's declaration, or undefined when it keeps it. */
function undeclared(registry: Registry, entry: RunnerEntry): string | undefined {
  const extra: string[] = [];
  const known = declaredSeen.get(entry) ?? new Set<string>();
  declaredSeen.set(entry, known);
  for (const { name } of registry.getMetricsAsArray()) {
    if (known.has(name)) continue;
    if (entry.metrics.some((d) => familyCovers(d, name))) known.add(name);
    else extra.push(name);
  }
  return extra.length > 0
    ? `exports ${extra.join(', ')}, which its definition does not declare`
    : undefined;
}

/** OpenMetrics' last line. */
const EOF = '# EOF\n';

/**
 * Runs each collector's parts in the background: the polled part on its interval, the
 * service from start to stop, the actions (under `serve`, when opted in) after a
 * refresh. `/metrics` reads the polled parts' last good text and renders the services'
 * in-memory counters: a scrape never waits on a collector's I/O.
 */
export class Runner {
  private readonly slots: Slot[];
  private readonly self = new Registry();
  private readonly success: Gauge;
  private readonly duration: Gauge;
  private readonly lastSuccess: Gauge;
  private readonly actionsTotal: Counter;
  private readonly actionLog: RateLimitedLog;
  /** The self metrics rendered, once per change. */
  private selfText?: Promise<Rendered>;
  /** The polled part of the exposition per format, joined on the first scrape after a change that asks for it. */
  private polledBodies: { prometheus?: Promise<Buffer>; openmetrics?: Promise<Buffer> } = {};
  private stopped = false;
  /** Timers run (start() has been called): scrapes may pull runs forward. */
  private scheduling = false;
  /** Actions may run: only `lookout serve` says so (start({ actions: true })). */
  private acting = false;
  /** The last scrape, and the time from the one before it (performance.now, ms). */
  private lastScrapeAt = 0;
  private scrapeGap?: number;
  private pullQueued = false;

  constructor(
    entries: RunnerEntry[],
    private readonly log: Logger,
    version: string,
  ) {
    checkFamilies(entries);
    this.actionLog = new RateLimitedLog(log);
    this.slots = entries.map((entry) => ({
      entry,
      log: log.child({ collector: entry.name }),
      text: NOTHING,
      inFlightSince: 0,
      lastRunAt: 0,
      running: false,
      actionRuns: new Map(),
      state: {
        name: entry.name,
        description: entry.description,
        parts: partsOf(entry.collector),
        intervalMs: entry.intervalMs,
        timeoutMs: entry.timeoutMs,
        outcome: 'pending',
      },
    }));
    const registers = [this.self];
    this.success = new Gauge({
      name: 'lookout_collector_success',
      help: 'Whether the collector works (1; also when it found nothing to collect on this host) or not (0): its last refresh failed or timed out, or its service did not start or reports a fault.',
      labelNames: ['collector'],
      registers,
    });
    this.duration = new Gauge({
      name: 'lookout_collector_duration_seconds',
      help: 'How long the last refresh of the collector took (a collector with only a service: its start).',
      labelNames: ['collector'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'lookout_collector_last_success_timestamp_seconds',
      help: 'When the collector last refreshed successfully (a collector with only a service: when it was last seen healthy) (Unix time).',
      labelNames: ['collector'],
      registers,
    });
    this.actionsTotal = new Counter({
      name: 'lookout_collector_actions_total',
      help: 'Actions a collector planned under lookout serve with its actions enabled, by how each ended: done, failed, or skipped_rate_limited (over actions.max_per_hour).',
      labelNames: ['collector', 'action', 'result'],
      registers,
    });
    new Gauge({
      name: 'lookout_build_info',
      help: 'Which lookout is running; always 1.',
      labelNames: ['version', 'nodejs_version'],
      registers,
    }).set({ version, nodejs_version: process.version }, 1);
    for (const slot of this.slots) {
      this.success.set({ collector: slot.entry.name }, 0);
      for (const action of slot.entry.collector.actions ?? [])
        for (const result of ACTION_RESULTS)
          this.actionsTotal.inc({ collector: slot.entry.name, action: action.name, result }, 0);
    }
  }

  /**
   * A counter of lookout's own, served with the runner's self metrics (the web door's
   * lookout_http_auth_failures_total). Each label set in `initial` starts at 0, so rate()
   * has a first point; an increment re-renders the exposition on the next scrape.
   */
  selfCounter(
    name: string,
    help: string,
    labelNames: string[],
    initial: Record<string, string>[],
  ): (labels: Record<string, string>) => void {
    const counter = new Counter({ name, help, labelNames, registers: [this.self] });
    for (const labels of initial) counter.inc(labels, 0);
    return (labels) => {
      counter.inc(labels);
      this.changed();
    };
  }

  states(): readonly CollectorState[] {
    return this.slots.map((s) => s.state);
  }

  /** The collectors, by name, for `lookout status` and `lookout check`. */
  collectors(): ReadonlyMap<string, Collector> {
    return new Map(this.slots.map((s) => [s.entry.name, s.entry.collector]));
  }

  /** Whether the collector of that name is enabled and, if it has a service, that runs now. */
  isRunning(name: string): boolean {
    const slot = this.slots.find((s) => s.entry.name === name);
    if (!slot || this.stopped) return false;
    return slot.entry.collector.service === undefined || slot.running;
  }

  /** The fault the named collector's service reports now, if any (its routes then answer 503). */
  serviceFault(name: string): string | undefined {
    return this.slots.find((s) => s.entry.name === name)?.fault;
  }

  /**
   * Every declared action and what it would do now, planned from the collector's last
   * refresh; nothing is run. For `lookout status` and `lookout check`.
   */
  actionReports(): ActionReport[] {
    const reports: ActionReport[] = [];
    for (const slot of this.slots) {
      const { name, collector, actions: cfg } = slot.entry;
      // Nothing to collect on this host (no Docker): nothing to act on, nothing to show.
      if (slot.state.outcome === 'nothing') continue;
      for (const action of collector.actions ?? []) {
        const report: ActionReport = {
          collector: name,
          action: action.name,
          description: action.description,
          enabled: cfg?.enabled ?? false,
          maxPerHour: cfg?.max_per_hour,
          runsLastHour: this.recentRuns(slot, action.name, Date.now()).length,
        };
        if (!this.fresh(slot))
          report.error = `not planned: ${slot.state.lastError ?? slot.state.outcome}`;
        else {
          try {
            report.plans = action.plan();
          } catch (err) {
            report.error = `plan failed: ${errorText(err)}`;
          }
        }
        reports.push(report);
      }
    }
    return reports;
  }

  /**
   * Runs every collector once now (starts the services), then each on its interval
   * (right after a scrape when one comes about then: schedule): a polled part refreshes,
   * a service that failed to start is tried again, and one that runs has its health
   * recorded. With `actions` (lookout serve only), a collector whose actions are enabled
   * runs what they plan after each successful run.
   */
  async start({ actions = false }: { actions?: boolean } = {}): Promise<void> {
    this.acting = actions;
    const began = performance.now();
    for (const slot of this.slots) slot.lastRunAt = began;
    await this.collectOnce();
    if (this.stopped) return;
    this.scheduling = true;
    for (const slot of this.slots) this.schedule(slot);
  }

  /**
   * How far before its due time a run may be pulled forward by a scrape: half the time
   * between scrapes, at most half the interval (0 until two scrapes have been seen).
   */
  private early(slot: Slot): number {
    return this.scrapeGap === undefined ? 0 : Math.min(slot.entry.intervalMs, this.scrapeGap) / 2;
  }

  /** How late a run may wait for a scrape expected about when it is due: a tenth of the interval. */
  private late(slot: Slot): number {
    return Math.min(this.early(slot), slot.entry.intervalMs / 10);
  }

  /**
   * Arms the slot's next run: its interval after the last one began, or, while scrapes
   * come regularly and the next is expected about then, `late` after that. The scrape
   * then comes first and runs it (scraped), or, when it is expected later still, each
   * run moves `late` towards it until it does. So a host scraped every interval wakes
   * once per scrape (the scrape, then the refreshes in the same wake-up) instead of once
   * for each, which is most of lookout's idle CPU (`npm run bench:wakeups`). A run is never more than a tenth of its interval late; a scrape then
   * gets what the refresh after the previous one read, about one interval old (with
   * timers alone, anything from fresh to one interval old).
   */
  private schedule(slot: Slot): void {
    clearTimeout(slot.timer);
    if (this.stopped) return;
    const now = performance.now();
    const due = slot.lastRunAt + slot.entry.intervalMs;
    const early = this.early(slot);
    const nextScrape = this.lastScrapeAt + (this.scrapeGap ?? Infinity);
    const scrapeNear = nextScrape >= now - early && Math.abs(nextScrape - due) <= early;
    const at = scrapeNear ? due + this.late(slot) : due;
    slot.timer = setTimeout(() => this.runNow(slot), Math.max(0, at - now));
  }

  private runNow(slot: Slot): void {
    slot.lastRunAt = performance.now();
    void this.run(slot);
    this.schedule(slot);
  }

  /**
   * A scrape was answered: runs every collector whose run is due within `early`, right
   * after the answer has been written (setImmediate), and re-arms the others' timers with
   * what this scrape said of the scrape rhythm.
   */
  private scraped(): void {
    const now = performance.now();
    if (this.lastScrapeAt > 0) this.scrapeGap = now - this.lastScrapeAt;
    this.lastScrapeAt = now;
    if (!this.scheduling || this.stopped || this.pullQueued) return;
    this.pullQueued = true;
    setImmediate(() => {
      this.pullQueued = false;
      if (this.stopped) return;
      const at = performance.now();
      for (const slot of this.slots) {
        const pull = at >= slot.lastRunAt + slot.entry.intervalMs - this.early(slot);
        if (pull && !slot.inFlight) this.runNow(slot);
        else this.schedule(slot);
      }
    });
  }

  /**
   * One refresh of every polled part, and a start of every service not running unless
   * `services` is false (`lookout status` must not open what the running service holds);
   * with `only`, of those collectors alone.
   * Actions run only after start({ actions: true }), never from here alone.
   */
  async collectOnce({
    services = true,
    only,
  }: { services?: boolean; only?: readonly string[] } = {}): Promise<void> {
    await Promise.all(
      this.slots
        .filter((slot) => services || slot.entry.collector.collect !== undefined)
        .filter((slot) => only === undefined || only.includes(slot.entry.name))
        .map((slot) => this.run(slot, services)),
    );
  }

  /**
   * Stops timers, then stops every collector — a service flushes what it must keep, an
   * action running is aborted and awaited — each under `deadlineMs`. Resolves with the
   * names of those that overran.
   */
  async stop(deadlineMs = 10_000): Promise<string[]> {
    this.stopped = true;
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      // A refresh still running would be thrown away: let its calls end now.
      slot.abort?.abort(new Error('lookout is shutting down'));
      slot.actionAbort?.abort(new Error('lookout is shutting down'));
    }
    const overran: string[] = [];
    await Promise.all(
      this.slots.map(async (slot) => {
        const { name, collector } = slot.entry;
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'overran'>((resolve) => {
          timer = setTimeout(() => resolve('overran'), deadlineMs);
        });
        try {
          // A service start still in flight is waited for first, so stop() sees it whole.
          const stopping = (async () => {
            await slot.inFlight;
            await slot.acting;
            if (slot.running) await collector.service?.stop();
            slot.running = false;
            await collector.close?.();
          })();
          if ((await Promise.race([stopping, deadline])) === 'overran') {
            overran.push(name);
            this.log.error('collector did not stop in time', {
              collector: name,
              deadline_seconds: deadlineMs / 1000,
            });
          }
        } catch (err) {
          this.log.warn('collector stop failed', { collector: name, err: errorText(err) });
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return overran;
  }

  /**
   * The exposition in the asked format. The polled part is encoded on the first scrape
   * after a change, not after every refresh: collectors sharing an interval finish one
   * after another, and one render then serves them all. Services' counters are rendered
   * on every scrape, from memory; when they have nothing (an access-log collector with
   * no logs), the encoded polled part is the whole answer, served as is: re-encoding its
   * 20 KB on every scrape was most of what a flood of scrapes allocated.
   */
  async exposition(format: 'prometheus' | 'openmetrics'): Promise<Buffer> {
    const chunks = await this.expositionChunks(format);
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /**
   * The exposition as the chunks to write one after another: the cached polled part as
   * is, then the services' part. Joining them would copy the whole polled part on every
   * scrape with a service (an access-log collector's is always there).
   */
  async expositionChunks(format: 'prometheus' | 'openmetrics'): Promise<Buffer[]> {
    this.scraped();
    const services: Registry[] = [];
    for (const s of this.slots) {
      const service = s.entry.collector.service;
      if (s.running && service) services.push(service.registry);
    }
    const parts = await Promise.all(services.map((r) => render(r, format)));
    const live = parts.filter((t) => t.trim().length > 0);
    this.polledBodies[format] ??= this.polled(format);
    const polled = await this.polledBodies[format];
    if (live.length === 0) return [polled];
    if (format === 'prometheus') return [polled, Buffer.from(`\n${live.join('\n')}`)];
    // A view, not a copy: the polled part without its closing `# EOF`.
    const head = polled.subarray(0, polled.length - EOF.length);
    return [head, Buffer.from(`${live.join('')}${EOF}`)];
  }

  /**
   * The polled part in one format, joined from each collector's text and the self
   * metrics: only the format asked (a Prometheus asks for one), not both.
   */
  private async polled(format: 'prometheus' | 'openmetrics'): Promise<Buffer> {
    this.selfText ??= render(this.self);
    const self = await this.selfText;
    const parts: string[] = [];
    for (const s of this.slots) if (s.text.openmetrics !== '') parts.push(s.text[format]);
    parts.push(self[format]);
    if (format === 'prometheus') return Buffer.from(parts.join('\n'));
    parts.push(EOF);
    return Buffer.from(parts.join(''));
  }

  /** The next scrape renders anew: something it shows has changed. */
  private changed(): void {
    this.selfText = undefined;
    this.polledBodies = {};
  }

  private async run(slot: Slot, services = true): Promise<void> {
    const { entry } = slot;
    const started = performance.now();
    if (slot.inFlight) {
      // Report how long the hung refresh has been running, so the duration keeps growing
      // instead of freezing at its last value.
      const runningFor = (started - slot.inFlightSince) / 1000;
      this.record(
        slot,
        'stuck',
        'the previous refresh has not returned yet (hung I/O?)',
        runningFor,
      );
      slot.text = NOTHING;
      this.log.warn('collector skipped', { collector: entry.name, err: slot.state.lastError });
      return;
    }
    const { service, collect } = entry.collector;
    const withService = services && service !== undefined;
    if (withService && this.stopped) return;
    if (collect === undefined && slot.running) this.checkService(slot);
    else
      await this.attempt(slot, started, (signal, deadline) =>
        this.parts(slot, withService ? service : undefined, signal, deadline),
      );
    if (this.acting && this.fresh(slot)) this.act(slot);
  }

  /**
   * One run of a collector's parts under one deadline: the service started if it is not
   * running, the polled part refreshed, both at once. A failed refresh drops the polled
   * text; a service that fails to start, reports a fault or exports what it did not
   * declare fails the run while the refresh's text is kept.
   */
  private async parts(
    slot: Slot,
    service: CollectorService | undefined,
    signal: AbortSignal,
    deadline: number,
  ): Promise<PartsResult> {
    const starting =
      service && !slot.running ? this.startService(slot, service, signal) : undefined;
    const refreshing = this.refresh(slot, signal, deadline);
    const [started, refreshed] = await Promise.allSettled([starting, refreshing]);
    let text: Rendered | undefined;
    let error: unknown;
    if (refreshed.status === 'fulfilled') text = refreshed.value;
    else {
      text = NOTHING;
      error = refreshed.reason;
    }
    slot.collectFailure =
      error === undefined ? undefined : { outcome: outcomeOf(error), error: errorText(error) };
    if (started.status === 'rejected') error ??= started.reason;
    else if (service && slot.running) {
      const broken = undeclared(service.registry, slot.entry) ?? slot.fault;
      if (broken !== undefined) error ??= new Error(broken);
    }
    return { text, error };
  }

  private async startService(slot: Slot, service: CollectorService, signal: AbortSignal) {
    const log = slot.log;
    // A fault reported by a start that then threw belongs to that start: this one begins clean.
    slot.fault = undefined;
    await service.start({
      log,
      signal,
      fault: (err) => {
        slot.fault = errorText(err);
        log.warn('collector fault', { err: slot.fault });
        if (slot.running) this.record(slot, 'failed', slot.fault, undefined);
      },
      healthy: () => {
        if (slot.fault === undefined) return;
        slot.fault = undefined;
        log.info('collector healthy again');
        if (slot.running) this.checkService(slot);
      },
    });
    const broken = undeclared(service.registry, slot.entry);
    if (broken !== undefined) {
      await service.stop();
      throw new Error(broken);
    }
    slot.running = true;
    if (slot.fault !== undefined) throw new Error(slot.fault);
  }

  /**
   * A running service, on its interval or when it says it is healthy again: healthy
   * moves its last-success time on; a fault, a family it created since start and did not
   * declare, or a failed last refresh of the polled part is a failure.
   */
  private checkService(slot: Slot): void {
    const service = slot.entry.collector.service!;
    const error = undeclared(service.registry, slot.entry) ?? slot.fault;
    if (error !== undefined) {
      this.record(slot, 'failed', error, undefined);
      return;
    }
    if (slot.collectFailure) {
      this.record(slot, slot.collectFailure.outcome, slot.collectFailure.error, undefined);
      return;
    }
    slot.state.lastSuccessTimestamp = Date.now() / 1000;
    this.lastSuccess.set({ collector: slot.entry.name }, slot.state.lastSuccessTimestamp);
    this.record(slot, 'ok', undefined, undefined);
  }

  /** One refresh of the polled part, if there is one: its exposition, checked against what it declared. */
  private async refresh(
    slot: Slot,
    signal: AbortSignal,
    deadline: number,
  ): Promise<Rendered | undefined> {
    const { collector } = slot.entry;
    if (collector.collect === undefined) return undefined;
    const registry = await collector.collect({ signal, deadline, log: slot.log });
    const broken = undeclared(registry, slot.entry);
    if (broken !== undefined) throw new Error(broken);
    return render(registry);
  }

  /**
   * Runs `work` under the collector's deadline and records the outcome; the polled text
   * is kept only when it came in time.
   */
  private async attempt(
    slot: Slot,
    started: number,
    work: (signal: AbortSignal, deadline: number) => Promise<PartsResult>,
  ): Promise<void> {
    const { entry, state } = slot;
    const labels = { collector: entry.name };
    const log = slot.log;
    const abort = new AbortController();
    slot.abort = abort;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TimeoutError(`timed out after ${entry.timeoutMs / 1000}s`);
        abort.abort(err);
        reject(err);
      }, entry.timeoutMs);
    });
    // Through a promise, so a collector that throws before its first await is a failed
    // refresh like any other, not an exception out of the interval timer.
    const job = Promise.resolve().then(() => work(abort.signal, started + entry.timeoutMs));
    slot.inFlightSince = started;
    slot.inFlight = job.then(
      () => undefined,
      () => undefined,
    );
    void slot.inFlight.then(() => (slot.inFlight = undefined));

    try {
      const { text, error } = await Promise.race([job, timedOut]);
      if (text !== undefined) slot.text = text;
      if (error !== undefined) throw error;
      const seconds = (performance.now() - started) / 1000;
      state.lastSuccessTimestamp = Date.now() / 1000;
      this.lastSuccess.set(labels, state.lastSuccessTimestamp);
      this.record(slot, 'ok', undefined, seconds);
      log.debug('collector succeeded', { duration_seconds: seconds.toFixed(4) });
    } catch (err) {
      const seconds = (performance.now() - started) / 1000;
      const outcome = outcomeOf(err);
      // A refresh that did not finish in time has nothing to serve.
      if (outcome === 'timeout') {
        slot.text = NOTHING;
        if (entry.collector.collect) slot.collectFailure = { outcome, error: errorText(err) };
      }
      this.record(slot, outcome, errorText(err), seconds);
      const fields = { duration_seconds: seconds.toFixed(4), err: errorText(err) };
      if (outcome === 'nothing') log.debug('collector found nothing to collect', fields);
      else log.warn('collector failed', fields);
    } finally {
      clearTimeout(timer);
    }
  }

  private record(
    slot: Slot,
    outcome: Outcome,
    error: string | undefined,
    seconds: number | undefined,
  ) {
    const labels = { collector: slot.entry.name };
    this.changed();
    slot.state.outcome = outcome;
    slot.state.lastError = error;
    if (seconds !== undefined) {
      slot.state.lastDurationSeconds = seconds;
      this.duration.set(labels, seconds);
    }
    // "Nothing to collect" (no Docker on this host) is a correct answer, not a failure:
    // counting it as one would page LookoutCollectorFailing on every host without Docker.
    const succeeded = outcome === 'ok' || outcome === 'nothing';
    this.success.set(labels, succeeded ? 1 : 0);
  }

  /** Whether the collector's last run succeeded, so what it saw is current enough to act on. */
  private fresh(slot: Slot): boolean {
    return slot.state.outcome === 'ok';
  }

  /** Starts running what the collector's actions plan now, unless they are off or still running. */
  private act(slot: Slot): void {
    const { collector, actions: cfg } = slot.entry;
    if (!collector.actions?.length || !cfg?.enabled || slot.acting || this.stopped) return;
    slot.acting = this.runActions(slot, collector.actions, cfg.max_per_hour).finally(
      () => (slot.acting = undefined),
    );
  }

  /** Each action's plans, one after another, each counted by how it ended. */
  private async runActions(
    slot: Slot,
    actions: readonly CollectorAction[],
    maxPerHour: number,
  ): Promise<void> {
    for (const action of actions) {
      let plans: readonly ActionPlan[];
      try {
        plans = action.plan();
      } catch (err) {
        slot.log.warn('action plan failed', { action: action.name, err: errorText(err) });
        continue;
      }
      for (const plan of plans) {
        if (this.stopped) return;
        // Shown by `lookout status`, never run: not a run, not counted.
        if (plan.held) continue;
        const result = await this.runAction(slot, action, plan, maxPerHour);
        this.actionsTotal.inc({ collector: slot.entry.name, action: action.name, result });
        this.changed();
      }
    }
  }

  private async runAction(
    slot: Slot,
    action: CollectorAction,
    plan: ActionPlan,
    maxPerHour: number,
  ): Promise<ActionResult> {
    const now = Date.now();
    const runs = this.recentRuns(slot, action.name, now);
    const fields = { action: action.name, target: plan.target, why: plan.why };
    if (runs.length >= maxPerHour) {
      // The same plan comes back every interval while the limit holds: say so once a while.
      this.actionLog.warn(
        `action-limit-${slot.entry.name}-${action.name}`,
        'action skipped: rate limit reached',
        { collector: slot.entry.name, ...fields, max_per_hour: maxPerHour },
      );
      return 'skipped_rate_limited';
    }
    runs.push(now);
    const abort = new AbortController();
    slot.actionAbort = abort;
    const timeoutMs = action.timeoutMs ?? slot.entry.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    // Ended at the deadline even when run() ignores its signal: the next plan must not wait forever.
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TimeoutError(`timed out after ${timeoutMs / 1000}s`);
        abort.abort(err);
        reject(err);
      }, timeoutMs);
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
    });
    slot.log.info('action running', { ...fields, what: plan.what });
    try {
      await Promise.race([action.run(plan, { signal: abort.signal, log: slot.log }), timedOut]);
      slot.log.info('action done', { ...fields, what: plan.what });
      return 'done';
    } catch (err) {
      slot.log.warn('action failed', { ...fields, what: plan.what, err: errorText(err) });
      return 'failed';
    } finally {
      clearTimeout(timer);
      slot.actionAbort = undefined;
    }
  }

  /** The action's runs begun in the hour before `now`, older ones dropped: the sliding window. */
  private recentRuns(slot: Slot, action: string, now: number): number[] {
    const runs = (slot.actionRuns.get(action) ?? []).filter((t) => t > now - HOUR_MS);
    slot.actionRuns.set(action, runs);
    return runs;
  }
}

/** What one run of a collector's parts gave: the polled text to keep, and why it failed. */
interface PartsResult {
  /** The polled part's new text (NOTHING after a failed refresh); undefined without a polled part. */
  text: Rendered | undefined;
  error?: unknown;
}

function outcomeOf(err: unknown): Outcome {
  return err instanceof TimeoutError
    ? 'timeout'
    : err instanceof NothingToCollect
      ? 'nothing'
      : 'failed';
}

function partsOf(c: Collector): Part[] {
  const parts: Part[] = [];
  if (c.collect) parts.push('collect');
  if (c.service) parts.push('service');
  if (c.actions?.length) parts.push('actions');
  return parts;
}
