import { Counter, Gauge, Registry } from 'prom-client';
import {
  familiesOverlap,
  familyCovers,
  isStreaming,
  NothingToCollect,
  type Collector,
  type PolledCollector,
  type StreamingCollector,
} from '../collectors/collector.js';
import { errorText, type Logger } from '../lib/log.js';
import { render, type Rendered } from './openmetrics.js';

export interface RunnerEntry {
  name: string;
  description: string;
  /** The metric families it may export (names, or prefixes ending in `*`). */
  metrics: readonly string[];
  collector: Collector;
  intervalMs: number;
  timeoutMs: number;
}

export type Outcome = 'pending' | 'ok' | 'failed' | 'timeout' | 'nothing' | 'stuck';

/** What the landing page and `lookout status` show about one collector. */
export interface CollectorState {
  readonly name: string;
  readonly description: string;
  readonly kind: 'polled' | 'streaming';
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
  /** Polled: the exposition of the last good refresh, both formats (empty after a failure: nothing stale). */
  text: Rendered;
  /** The refresh (or streaming start) still running, so a hung one is not started again. */
  inFlight?: Promise<void>;
  inFlightSince: number;
  /** The next run, when no scrape pulls it forward (see schedule). */
  timer?: NodeJS.Timeout;
  /** When the last run (refresh, streaming start or health check) began (performance.now). */
  lastRunAt: number;
  /** Streaming: started and not stopped. */
  running: boolean;
  /** Streaming: the fault it reported after start, until it says it is healthy again. */
  fault?: string;
  /** The refresh or start in flight, aborted on shutdown. */
  abort?: AbortController;
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
 * Runs polled collectors on their intervals and streaming ones from start to stop, in the
 * background. `/metrics` reads the polled collectors' last good text and renders the
 * streaming collectors' in-memory counters: a scrape never waits on a collector's I/O.
 */
export class Runner {
  private readonly slots: Slot[];
  private readonly self = new Registry();
  private readonly success: Gauge;
  private readonly duration: Gauge;
  private readonly lastSuccess: Gauge;
  /** The polled part of the exposition, both formats, joined on the first scrape after a change. */
  private polledText?: Promise<Rendered>;
  private polledBodies: { prometheus?: Promise<Buffer>; openmetrics?: Promise<Buffer> } = {};
  private stopped = false;
  /** Timers run (start() has been called): scrapes may pull runs forward. */
  private scheduling = false;
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
    this.slots = entries.map((entry) => ({
      entry,
      log: log.child({ collector: entry.name }),
      text: NOTHING,
      inFlightSince: 0,
      lastRunAt: 0,
      running: false,
      state: {
        name: entry.name,
        description: entry.description,
        kind: isStreaming(entry.collector) ? 'streaming' : 'polled',
        intervalMs: entry.intervalMs,
        timeoutMs: entry.timeoutMs,
        outcome: 'pending',
      },
    }));
    const registers = [this.self];
    this.success = new Gauge({
      name: 'lookout_collector_success',
      help: 'Whether the last refresh of the collector succeeded (1; also when it found nothing to collect on this host) or failed or timed out (0). A streaming collector: 1 while it runs.',
      labelNames: ['collector'],
      registers,
    });
    this.duration = new Gauge({
      name: 'lookout_collector_duration_seconds',
      help: 'How long the last refresh of the collector took (a streaming collector: its start).',
      labelNames: ['collector'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'lookout_collector_last_success_timestamp_seconds',
      help: 'When the collector last refreshed successfully (a streaming collector: when it started) (Unix time).',
      labelNames: ['collector'],
      registers,
    });
    new Gauge({
      name: 'lookout_build_info',
      help: 'Which lookout is running; always 1.',
      labelNames: ['version', 'nodejs_version'],
      registers,
    }).set({ version, nodejs_version: process.version }, 1);
    for (const slot of this.slots) this.success.set({ collector: slot.entry.name }, 0);
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
      this.polledText = undefined;
      this.polledBodies = {};
    };
  }

  states(): readonly CollectorState[] {
    return this.slots.map((s) => s.state);
  }

  /** The collectors, by name, for `lookout status` and `lookout check`. */
  collectors(): ReadonlyMap<string, Collector> {
    return new Map(this.slots.map((s) => [s.entry.name, s.entry.collector]));
  }

  /** Whether the collector of that name is enabled and, if it streams, running now. */
  isRunning(name: string): boolean {
    const slot = this.slots.find((s) => s.entry.name === name);
    if (!slot || this.stopped) return false;
    return !isStreaming(slot.entry.collector) || slot.running;
  }

  /**
   * Runs every collector once now (starts the streaming ones), then each on its interval
   * (right after a scrape when one comes about then: schedule): a polled one refreshes, a
   * streaming one that failed to start is tried again, and one that runs has its health
   * recorded (its last-success time moves on while it is healthy).
   */
  async start(): Promise<void> {
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
   * for each: side by side with Prometheus scraping every 15 s, 23.0 against 20.2 ms of
   * CPU per 15 s. A run is never more than a tenth of its interval late; a scrape then
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
   * One refresh of every polled collector, and a start of every streaming one not
   * running unless `streaming` is false (`lookout status` must not open what the running
   * service holds).
   */
  async collectOnce({ streaming = true }: { streaming?: boolean } = {}): Promise<void> {
    await Promise.all(
      this.slots
        .filter((slot) => streaming || !isStreaming(slot.entry.collector))
        .map((slot) => this.run(slot)),
    );
  }

  /**
   * Stops timers, then stops every collector — a streaming one flushes what it must
   * keep — each under `deadlineMs`. Resolves with the names of those that overran.
   */
  async stop(deadlineMs = 10_000): Promise<string[]> {
    this.stopped = true;
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      // A refresh still running would be thrown away: let its calls end now.
      slot.abort?.abort(new Error('lookout is shutting down'));
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
          // A streaming start still in flight is waited for first, so stop() sees it whole.
          const stopping = (async () => {
            if (isStreaming(collector)) {
              await slot.inFlight;
              if (slot.running) await collector.stop();
              slot.running = false;
            } else {
              await collector.close?.();
            }
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
   * after another, and one render then serves them all. Streaming collectors' counters
   * are rendered on every scrape, from memory; when they have nothing (an access-log
   * collector with no logs), the encoded polled part is the whole answer, served as is:
   * re-encoding its 20 KB on every scrape was most of what a flood of scrapes allocated.
   */
  async exposition(format: 'prometheus' | 'openmetrics'): Promise<Buffer> {
    this.scraped();
    const streaming = this.slots.filter((s) => s.running);
    const parts = await Promise.all(
      streaming.map((s) => render((s.entry.collector as StreamingCollector).registry)),
    );
    const live = parts.map((p) => p[format]).filter((t) => t.trim().length > 0);
    this.polledBodies[format] ??= this.polled().then((p) =>
      Buffer.from(format === 'prometheus' ? p.prometheus : `${p.openmetrics}${EOF}`),
    );
    const polled = await this.polledBodies[format];
    if (live.length === 0) return polled;
    if (format === 'prometheus')
      return Buffer.concat([polled, Buffer.from(`\n${live.join('\n')}`)]);
    const head = polled.subarray(0, polled.length - EOF.length);
    return Buffer.concat([head, Buffer.from(`${live.join('')}${EOF}`)]);
  }

  private polled(): Promise<Rendered> {
    this.polledText ??= (async () => {
      const parts = this.slots.map((s) => s.text).filter((t) => t.openmetrics !== '');
      parts.push(await render(this.self));
      return {
        prometheus: parts.map((p) => p.prometheus).join('\n'),
        openmetrics: parts.map((p) => p.openmetrics).join(''),
      };
    })();
    return this.polledText;
  }

  private async run(slot: Slot): Promise<void> {
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
      this.log.warn('collector skipped', { collector: entry.name, err: slot.state.lastError });
      return;
    }
    const collector = entry.collector;
    if (isStreaming(collector)) {
      if (this.stopped) return;
      if (slot.running) return this.checkStream(slot, collector);
      const log = slot.log;
      await this.attempt(slot, started, async (signal) => {
        await collector.start({
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
            if (slot.running) this.checkStream(slot, collector);
          },
        });
        const broken = undeclared(collector.registry, entry);
        if (broken !== undefined) {
          await collector.stop();
          throw new Error(broken);
        }
        slot.running = true;
        if (slot.fault !== undefined) throw new Error(slot.fault);
        return undefined;
      });
    } else {
      await this.attempt(slot, started, (signal, deadline) =>
        this.refresh(slot, collector, signal, deadline),
      );
    }
  }

  /**
   * A running streaming collector, on its interval: healthy moves its last-success time
   * on; a fault, or a family it created since start and did not declare, is a failure.
   */
  private checkStream(slot: Slot, collector: StreamingCollector): void {
    const error = undeclared(collector.registry, slot.entry) ?? slot.fault;
    if (error !== undefined) {
      this.record(slot, 'failed', error, undefined);
      return;
    }
    slot.state.lastSuccessTimestamp = Date.now() / 1000;
    this.lastSuccess.set({ collector: slot.entry.name }, slot.state.lastSuccessTimestamp);
    this.record(slot, 'ok', undefined, undefined);
  }

  /** One refresh of a polled collector: its exposition, checked against what it declared. */
  private async refresh(
    slot: Slot,
    collector: PolledCollector,
    signal: AbortSignal,
    deadline: number,
  ) {
    const registry = await collector.update({
      signal,
      deadline,
      log: slot.log,
    });
    const broken = undeclared(registry, slot.entry);
    if (broken !== undefined) throw new Error(broken);
    return render(registry);
  }

  /**
   * Runs `work` under the collector's deadline and records the outcome; a polled
   * collector's text is kept only when it came in time.
   */
  private async attempt(
    slot: Slot,
    started: number,
    work: (signal: AbortSignal, deadline: number) => Promise<Rendered | undefined>,
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
      const text = await Promise.race([job, timedOut]);
      if (text !== undefined) slot.text = text;
      const seconds = (performance.now() - started) / 1000;
      state.lastSuccessTimestamp = Date.now() / 1000;
      this.lastSuccess.set(labels, state.lastSuccessTimestamp);
      this.record(slot, 'ok', undefined, seconds);
      log.debug('collector succeeded', { duration_seconds: seconds.toFixed(4) });
    } catch (err) {
      const seconds = (performance.now() - started) / 1000;
      const outcome: Outcome =
        err instanceof TimeoutError
          ? 'timeout'
          : err instanceof NothingToCollect
            ? 'nothing'
            : 'failed';
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
    this.polledText = undefined;
    this.polledBodies = {};
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
    // Drop what this collector last served: a failed collector's old values must not look fresh.
    if (outcome !== 'ok') slot.text = NOTHING;
  }
}
