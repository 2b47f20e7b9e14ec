import { Gauge, Registry } from 'prom-client';
import type { Collector } from '../collectors/collector.js';
import { NothingToCollect } from '../collectors/collector.js';
import { errorText, type Logger } from '../lib/log.js';
import { toOpenMetrics } from './openmetrics.js';

export interface RunnerEntry {
  name: string;
  description: string;
  collector: Collector;
  intervalMs: number;
  timeoutMs: number;
}

export type Outcome = 'pending' | 'ok' | 'failed' | 'timeout' | 'nothing' | 'stuck';

/** What the landing page and `lookout status` show about one collector. */
export interface CollectorState {
  readonly name: string;
  readonly description: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  outcome: Outcome;
  lastDurationSeconds?: number;
  lastSuccessTimestamp?: number;
  lastError?: string;
  /** The registry of the last good update; undefined after a failure, so nothing stale is served. */
  registry?: Registry;
}

interface Slot {
  entry: RunnerEntry;
  state: CollectorState;
  text: string;
  /** The update still running, so a hung one is not started again (it would pile up threads). */
  inFlight?: Promise<void>;
  inFlightSince: number;
  timer?: NodeJS.Timeout;
}

class TimeoutError extends Error {
  readonly code = 'LOOKOUT_COLLECTOR_TIMEOUT';
}

/**
 * Runs every collector on its own interval, in the background, and keeps the
 * exposition text of their last good values. `/metrics` only reads that text.
 */
export class Runner {
  private readonly slots: Slot[];
  private readonly self = new Registry();
  private readonly success: Gauge;
  private readonly duration: Gauge;
  private readonly lastSuccess: Gauge;
  /** The exposition, rendered on the first scrape after something changed; undefined = stale. */
  private body?: Promise<Buffer>;
  private openMetricsBody?: Promise<Buffer>;
  private stopped = false;

  constructor(
    entries: RunnerEntry[],
    private readonly log: Logger,
    version: string,
  ) {
    this.slots = entries.map((entry) => ({
      entry,
      text: '',
      inFlightSince: 0,
      state: {
        name: entry.name,
        description: entry.description,
        intervalMs: entry.intervalMs,
        timeoutMs: entry.timeoutMs,
        outcome: 'pending',
      },
    }));
    const registers = [this.self];
    this.success = new Gauge({
      name: 'lookout_collector_success',
      help: 'Whether the last refresh of the collector succeeded (1; also when it found nothing to collect on this host) or failed or timed out (0).',
      labelNames: ['collector'],
      registers,
    });
    this.duration = new Gauge({
      name: 'lookout_collector_duration_seconds',
      help: 'How long the last refresh of the collector took.',
      labelNames: ['collector'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'lookout_collector_last_success_timestamp_seconds',
      help: 'When the collector last refreshed successfully (Unix time).',
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

  states(): readonly CollectorState[] {
    return this.slots.map((s) => s.state);
  }

  /** Runs every collector once now, then each on its interval. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.run(slot)));
    for (const slot of this.slots) {
      if (this.stopped) return;
      slot.timer = setInterval(() => void this.run(slot), slot.entry.intervalMs);
    }
  }

  /** One refresh of every collector, waiting for all (used by `lookout status` and tests). */
  async collectOnce(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.run(slot)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const slot of this.slots) clearInterval(slot.timer);
    await Promise.all(
      this.slots.map(async (slot) => {
        try {
          await slot.entry.collector.close?.();
        } catch (err) {
          this.log.warn('collector close failed', {
            collector: slot.entry.name,
            err: errorText(err),
          });
        }
      }),
    );
  }

  /**
   * The exposition of every collector's last good values, in the asked format. Encoded on
   * the first scrape after a change, not after every refresh: collectors sharing an
   * interval finish one after another, and one render then serves them all.
   */
  exposition(format: 'prometheus' | 'openmetrics'): Promise<Buffer> {
    this.body ??= this.render();
    if (format === 'prometheus') return this.body;
    this.openMetricsBody ??= this.body.then((b) => Buffer.from(toOpenMetrics(b.toString())));
    return this.openMetricsBody;
  }

  private async run(slot: Slot): Promise<void> {
    const { entry, state } = slot;
    const labels = { collector: entry.name };
    const log = this.log.child({ collector: entry.name });
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

    const registry = new Registry();
    const abort = new AbortController();
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
    const update = Promise.resolve().then(() =>
      entry.collector.update(registry, { signal: abort.signal, log }),
    );
    slot.inFlightSince = started;
    slot.inFlight = update.then(
      () => undefined,
      () => undefined,
    );
    void slot.inFlight.then(() => (slot.inFlight = undefined));

    try {
      await Promise.race([update, timedOut]);
      slot.text = await registry.metrics();
      const seconds = (performance.now() - started) / 1000;
      state.lastSuccessTimestamp = Date.now() / 1000;
      state.registry = registry;
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
    this.body = this.openMetricsBody = undefined;
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
    if (outcome !== 'ok') {
      // Drop what this collector last served: a failed collector's old values must not look fresh.
      slot.text = '';
      slot.state.registry = undefined;
    }
  }

  private async render(): Promise<Buffer> {
    const parts = this.slots.map((s) => s.text).filter((t) => t.trim().length > 0);
    parts.push(await this.self.metrics());
    return Buffer.from(parts.join('\n'));
  }
}
