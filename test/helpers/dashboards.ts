/**
 * Running dashboard panel queries against a live Prometheus, for the dashboard tests.
 */
import { join } from 'node:path';
import { REPO, promQuery, startPrometheus } from './procs.js';

/**
 * A real Prometheus scraping one lookout (`host:port`) every second and evaluating every
 * shipped rule file every second: what the dashboards' recording-rule panels need.
 */
export function startRulesPrometheus(instance: string): ReturnType<typeof startPrometheus> {
  return startPrometheus(
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(REPO, 'rules/*.yml')],
      scrape_configs: [{ job_name: 'lookout', static_configs: [{ targets: [instance] }] }],
    }),
  );
}

/**
 * Grafana's variables in a dashboard query, substituted the way Grafana would for one
 * host, so the query can run against a real Prometheus:
 *   $__rate_interval   → 1m  (Grafana's floor is 4 × the datasource's 15s timeInterval)
 *   $__interval        → 15s
 *   $__range           → 1h
 *   $instance          → the lookout target, e.g. 127.0.0.1:41234
 *   $service, $model   → .*  (the AI-cost dashboard's "All", its allValue)
 */
export function substitute(expr: string, instance: string): string {
  return expr
    .replaceAll(/\$\{?__rate_interval\}?/g, '1m')
    .replaceAll(/\$\{?__interval\}?/g, '15s')
    .replaceAll(/\$\{?__range\}?/g, '1h')
    .replaceAll(/\$\{?instance\}?/g, instance)
    .replaceAll(/\$\{?(service|model)\}?/g, '.*');
}

/**
 * One wait for all queries: asks each until it has returned a series once, or time is
 * up. The result per query is its series count, or the error Prometheus gave (Number(error)
 * is NaN, so an error stays pending until a later answer replaces it).
 */
export async function answerAll<Q>(
  promUrl: string,
  queries: Q[],
  expr: (q: Q) => string,
  waitMs: number,
): Promise<Map<Q, number | Error>> {
  const results = new Map<Q, number | Error>();
  const answered = (q: Q) => Number(results.get(q)) > 0;
  const deadline = Date.now() + waitMs;
  for (;;) {
    for (const q of queries.filter((q) => !answered(q))) {
      try {
        results.set(q, (await promQuery(promUrl, expr(q))).length);
      } catch (err) {
        results.set(q, err as Error);
      }
    }
    if (queries.every(answered) || Date.now() > deadline) return results;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
