/**
 * Probes: does each configured endpoint answer right now, correctly and in time — one
 * kind per file under probes/, listed in probes/table.ts. blackbox_exporter's questions,
 * asked from lookout's background refresh: every target through one fan-out with its own
 * deadline, so a blackholed target costs only its own timeout, and /metrics serves the
 * last round at once. This file is the handler: it sets success, duration and
 * consecutive failures (counted here, across refreshes, for "failing N times in a row"
 * alerts), whatever the kind.
 */
import { setMaxListeners } from 'node:events';
import { Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import { Fanout, timedOut, whyNot, type TargetResult } from '../lib/fanout.js';
import { formatDuration } from '../lib/duration.js';
import type { HttpClient } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import {
  collectorSchema,
  registerCollector,
  type PolledCollector,
  type TargetCheck,
  type CollectContext,
} from './collector.js';
import type { ProbeMetric, ProbeOutcome, Prober, TargetBase } from './probes/prober.js';
import { PROBERS, type ProbeTable, type TargetIn } from './probes/table.js';

export { PROBERS, probeTable, type ProbeTable } from './probes/table.js';
export type { Prober, ProbeContext, ProbeMetric, ProbeOutcome } from './probes/prober.js';

/** How long a probe may take to return after its abort before it is logged as hung. */
const HUNG_GRACE_MS = 1000;

/** Every kind's target as the config outputs it. */
export type ProbeTargetConfig = TargetIn<typeof PROBERS>;

/** The series every probe has, whatever its kind; a kind's own come from its entry. */
const COMMON_METRICS = [
  'lookout_probe_success',
  'lookout_probe_duration_seconds',
  'lookout_probe_consecutive_failures',
] as const;

/** The metric families a table's kinds add, each once; two kinds may share one only as one definition. */
function kindMetrics(table: ProbeTable): ProbeMetric[] {
  const byName = new Map<string, ProbeMetric>();
  for (const p of Object.values(table))
    for (const m of p.metrics) {
      const seen = byName.get(m.name);
      if (seen !== undefined && seen !== m)
        throw new Error(`probe kinds declare ${m.name} twice; share one definition`);
      byName.set(m.name, m);
    }
  return [...byName.values()];
}

function proberFor(table: ProbeTable, target: TargetBase): Prober {
  const p = table[target.kind];
  // The schema admits only the table's kinds: only a config that bypassed it gets here.
  if (p === undefined) throw new Error(`no probe kind "${target.kind}"`);
  return p;
}

/** The `target` label: its name, else what its kind shows, else the kind. */
export function targetLabel(t: TargetBase, table: ProbeTable = PROBERS): string {
  return t.name ?? proberFor(table, t).label(t) ?? t.kind;
}

/** The `collectors.probes` block for the kinds in `table`. */
export function probesSchemaFor(table: ProbeTable) {
  const kinds = Object.keys(table);
  const options = Object.values(table).map((p) => p.schema);
  const target = z.discriminatedUnion(
    'kind',
    options as [(typeof options)[number], ...(typeof options)[number][]],
    { error: `expected one of ${kinds.map((k) => JSON.stringify(k)).join(', ')}` },
  );
  const titles = Object.values(table).map((p) => p.title);
  return collectorSchema(
    { enabled: true, interval: '15s', timeout: '10s' },
    {
      concurrency: z
        .number()
        .int()
        .min(1)
        .max(256)
        .default(32)
        .describe(
          'Probes in flight at once; a blackholed target holds one slot until its timeout.',
        ),
      targets: z
        .array(target)
        .default([])
        .describe(
          `What to probe; none by default. Each has a kind: ${listed(kinds, 'or')} (${titles.join(', ')}).`,
        ),
    },
  ).superRefine((value, ctx) => {
    const seen = new Map<string, number>();
    value.targets.forEach((t, i) => {
      if (t.timeout !== undefined && t.timeout > value.timeout)
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, 'timeout'],
          message: `must not be longer than the collector's timeout (${formatDuration(value.timeout)}); shorten it or lengthen collectors.probes.timeout`,
        });
      const label = targetLabel(t, table);
      const key = `${t.kind} ${label}`;
      const first = seen.get(key);
      if (first !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, 'name'],
          message: `target "${label}" (${t.kind}) is also targets[${first}]; give each a distinct name`,
        });
      else seen.set(key, i);
    });
  });
}

export const probesSchema = probesSchemaFor(PROBERS);

/** What the collector reads of its config block; `probesSchemaFor(table)` outputs it. */
export interface ProbesConfig {
  timeout: number;
  concurrency: number;
  targets: readonly TargetBase[];
}

/** A configured target, ready to probe. */
interface Target {
  config: TargetBase;
  prober: Prober;
  label: string;
  kind: string;
  /** The fan-out key and the failure counter's key. */
  key: string;
  timeoutMs: number;
  log: Logger;
}

/** Why a probe failed, in a few words: for `lookout check` and the log. */
export function failureText(r: TargetResult<ProbeOutcome>, timeoutMs: number): string {
  return r.status === 'ok' ? r.value.detail : whyNot(r, timeoutMs);
}

export interface ProbesCollector extends PolledCollector {
  checkTargets(ctx: CollectContext): Promise<TargetCheck[]>;
  /** Consecutive failures by `kind target`, as the next refresh will add to them. */
  failureCounts(): ReadonlyMap<string, number>;
}

export function createProbesCollector(
  config: ProbesConfig,
  http: HttpClient,
  log: Logger,
  table: ProbeTable = PROBERS,
): ProbesCollector {
  const targets: Target[] = config.targets.map((c) => {
    const label = targetLabel(c, table);
    return {
      config: c,
      prober: proberFor(table, c),
      label,
      kind: c.kind,
      key: `${c.kind} ${label}`,
      timeoutMs: c.timeout ?? config.timeout,
      log: log.child({ target: label, kind: c.kind }),
    };
  });
  const slowest = Math.max(0, ...targets.map((t) => t.timeoutMs));
  const hungTimers = new Map<string, NodeJS.Timeout>();
  const fanout = new Fanout({
    name: 'probes',
    concurrency: config.concurrency,
    // The longest target timeout; a target with a shorter one gets its own signal below.
    timeoutMs: slowest,
    onHung: (key, hung) => {
      // Every timed-out probe is "hung" for the moment its abort takes to land; only one
      // still running a second later ignores its abort and is worth a line.
      clearTimeout(hungTimers.get(key));
      hungTimers.delete(key);
      if (hung)
        hungTimers.set(
          key,
          setTimeout(() => {
            hungTimers.delete(key);
            log.warn('probe did not return after its abort; not started again until it does', {
              target: key,
            });
          }, HUNG_GRACE_MS).unref(),
        );
    },
  });
  /** Survives refreshes; holds only configured targets' keys. */
  const failures = new Map<string, number>(targets.map((t) => [t.key, 0]));

  // The metric objects live as long as the collector; each refresh resets and sets them.
  const registry = new Registry();
  const registers = [registry];
  const success = new Gauge({
    name: 'lookout_probe_success',
    help: 'Whether the probe answered correctly and in time this round (1) or not (0).',
    labelNames: ['target', 'kind'],
    registers,
  });
  const seconds = new Gauge({
    name: 'lookout_probe_duration_seconds',
    help: 'How long the probe took, until its answer or its timeout.',
    labelNames: ['target', 'kind'],
    registers,
  });
  const consecutive = new Gauge({
    name: 'lookout_probe_consecutive_failures',
    help: 'Rounds in a row this probe has failed; 0 after a success.',
    labelNames: ['target', 'kind'],
    registers,
  });
  const own = new Map(
    kindMetrics(table).map((m) => [
      m.name,
      new Gauge({ name: m.name, help: m.help, labelNames: ['target', ...m.labelNames], registers }),
    ]),
  );
  const gauges = [success, seconds, consecutive, ...own.values()];

  const probeAll = (ctx: CollectContext) => {
    // The fan-out listens on the refresh's signal once per call in flight: up to
    // `concurrency` listeners, not a leak.
    setMaxListeners(config.concurrency + 10, ctx.signal);
    return fanout.run(
      targets,
      (t) => t.key,
      // Most targets share the fan-out's timeout and take its signal as it is; a combined
      // signal and a timer per probe are made only for a target with a shorter timeout.
      (t, signal) =>
        t.prober.check(t.config, {
          signal:
            t.timeoutMs < slowest
              ? AbortSignal.any([signal, AbortSignal.timeout(t.timeoutMs)])
              : signal,
          log: t.log,
          http,
        }),
      { signal: ctx.signal, deadline: ctx.deadline },
    );
  };

  return {
    failureCounts: () => failures,

    async collect(ctx) {
      const results = await probeAll(ctx);
      // From here to the return nothing awaits, so a scrape never sees the reset half-set;
      // a label set not set again this round (a Redis key that is no longer a list) is gone.
      for (const g of gauges) g.reset();
      targets.forEach((t, i) => {
        const r = results[i]!;
        const labels = { target: t.label, kind: t.kind };
        const ok = r.status === 'ok' && r.value.ok;
        const before = failures.get(t.key) ?? 0;
        const count = ok ? 0 : before + 1;
        failures.set(t.key, count);
        if (!ok && before === 0) t.log.warn('probe failing', { err: failureText(r, t.timeoutMs) });
        else if (ok && before > 0) t.log.info('probe answering again', { failed_rounds: before });
        success.set(labels, ok ? 1 : 0);
        consecutive.set(labels, count);
        if (r.status !== 'skipped') seconds.set(labels, r.seconds);
        const outcome = r.status === 'ok' ? r.value : undefined;
        for (const m of t.prober.metrics) {
          const gauge = own.get(m.name)!;
          for (const [extra, value] of m.samples(outcome))
            gauge.set({ ...extra, target: t.label }, value);
        }
      });
      return registry;
    },

    async checkTargets(ctx) {
      const results = await probeAll(ctx);
      return targets.map((t, i) => {
        const r = results[i]!;
        const ok = r.status === 'ok' && r.value.ok;
        // A timeout's text already says how long; an answer's time is added to it.
        const answered = (r.status === 'ok' || r.status === 'failed') && !timedOut(r);
        const took = answered ? ` (${(r.seconds * 1000).toFixed(0)} ms)` : '';
        return { target: `${t.kind} ${t.label}`, ok, detail: failureText(r, t.timeoutMs) + took };
      });
    },
  };
}

/** "a, b and c" (or "a, b or c"). */
function listed(words: readonly string[], conjunction = 'and'): string {
  return words.length < 2
    ? words.join('')
    : `${words.slice(0, -1).join(', ')} ${conjunction} ${words.at(-1)}`;
}

/** The families the probes collector exports with `table`'s kinds. */
export function probeMetricNames(table: ProbeTable = PROBERS): string[] {
  return [...COMMON_METRICS, ...kindMetrics(table).map((m) => m.name)];
}

registerCollector({
  name: 'probes',
  description: `${listed(Object.values(PROBERS).map((p) => p.title))} probes: success, duration, consecutive failures; ${listed(kindMetrics(PROBERS).map((m) => m.name))}`,
  metrics: probeMetricNames(),
  schema: probesSchema,
  async create({ config, http, log }) {
    // Load what the configured kinds need now, so the first round does not spend a
    // target's deadline importing pg.
    const kinds = new Set(config.targets.map((t) => t.kind));
    for (const kind of kinds) await proberFor(PROBERS, { kind }).load?.(http);
    return createProbesCollector(config, http, log);
  },
});
