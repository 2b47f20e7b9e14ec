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
