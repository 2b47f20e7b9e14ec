/**
 * `lookout check`'s second half: after the config is found valid, every enabled
 * collector with targets (probes, nginx, TLS — anything implementing checkTargets) tries
 * each once, now, under its own timeout, and the answers are printed as a table.
 *
 * The exit code stays about the config: 0 when it is valid, whatever the targets say.
 * `lookout check` is the unit's ExecStartPre and a CI step for the config file; a down
 * upstream must not keep lookout — the thing that reports the upstream is down — from
 * starting, nor fail a config change that is right.
 */
import type { TargetCheck } from './collectors/collector.js';
import type { Config } from './config/schema.js';
import { buildRunner } from './exporter/build.js';
import type { ActionReport } from './exporter/runner.js';
import { createLogger, errorText } from './lib/log.js';
import { formatActions, table } from './status.js';

export interface CollectorChecks {
  collector: string;
  checks: TargetCheck[];
  /** The check itself failed (not a target: the collector). */
  error?: string;
}

export interface CheckReport {
  /** Per collector with targets, whether each answers now. */
  targets: CollectorChecks[];
  /** What each collector's actions would do now (never run here). */
  actions: ActionReport[];
}

/**
 * Runs every enabled collector's checkTargets at once (one without targets is left out),
 * and one refresh of each collector that declares actions, to show what they would do.
 */
export async function checkTargets(config: Config): Promise<CheckReport> {
  const log = createLogger('error');
  const { runner, http } = await buildRunner(config, log);
  try {
    const jobs: Promise<CollectorChecks>[] = [];
    const acting = [...runner.collectors()].filter(([, c]) => c.actions?.length);
    const planned = runner.collectOnce({ services: false, only: acting.map(([n]) => n) });
    for (const [name, collector] of runner.collectors()) {
      if (!collector.checkTargets) continue;
      const timeoutMs = config.collectors[name]!.timeout;
      const signal = AbortSignal.timeout(timeoutMs);
      const deadline = performance.now() + timeoutMs;
      jobs.push(
        collector.checkTargets({ signal, deadline, log: log.child({ collector: name }) }).then(
          (checks) => ({ collector: name, checks }),
          (err: unknown) => ({ collector: name, checks: [], error: errorText(err) }),
        ),
      );
    }
    const targets = (await Promise.all(jobs)).filter((c) => c.checks.length > 0 || c.error);
    await planned;
    return { targets, actions: runner.actionReports() };
  } finally {
    await runner.stop();
    await http.close();
  }
}

/** What `lookout check` prints after the config: targets, then actions; empty when there are neither. */
export function formatChecks({ targets, actions }: CheckReport): string {
  return formatTargets(targets) + formatActions(actions);
}

function formatTargets(results: readonly CollectorChecks[]): string {
  if (results.length === 0) return '';
  const rows = results.flatMap((r) =>
    r.error !== undefined
      ? [[r.collector, '', 'ERROR', r.error]]
      : r.checks.map((c) => [r.collector, c.target, c.ok ? 'ok' : 'FAIL', c.detail]),
  );
  const all = results.flatMap((r) => r.checks);
  const failing = all.filter((c) => !c.ok).length + results.filter((r) => r.error).length;
  return (
    '\nTargets, answering now:\n' +
    table(['COLLECTOR', 'TARGET', 'STATE', 'DETAIL'], rows) +
    (failing
      ? `${failing} of ${all.length} target(s) do not answer right (the config is valid; exit code 0).\n`
      : `all ${all.length} target(s) answer.\n`)
  );
}
