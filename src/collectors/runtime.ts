import { collectDefaultMetrics, Registry } from 'prom-client';
import { collectorSchema, registerCollector } from './collector.js';

/**
 * prom-client's event-loop-delay histogram records the time between its samples, so
 * each value is the sampling interval plus the delay. At prom-client's 10 ms interval
 * that is 100 wake-ups a second, most of an idle exporter's CPU; at any interval cheap
 * enough to keep, the interval swamps the delay (at 1 s, p99 reads 1.001 s). These
 * series are left out and the sampling is pushed past any uptime; the delay is still
 * exported as nodejs_eventloop_lag_seconds, measured at each refresh.
 */
const NEVER_MS = 2 ** 31 - 1;
const INTERVAL_SERIES = new Set(
  ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map(
    (s) => `nodejs_eventloop_lag_${s}_seconds`,
  ),
);

registerCollector({
  name: 'runtime',
  description: "lookout's own process: CPU, memory, heap, event-loop lag (process_*, nodejs_*)",
  metrics: ['process_*', 'nodejs_*'],
  schema: collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {}),
  create() {
    // prom-client's default metrics keep observers (GC) alive, so they live in one
    // long-lived registry, rendered (their collect() run) at each refresh, not per scrape.
    const own = new Registry();
    collectDefaultMetrics({ register: own, eventLoopMonitoringPrecision: NEVER_MS });
    for (const name of INTERVAL_SERIES) own.removeSingleMetric(name);
    return {
      async update() {
        return own;
      },
    };
  },
});
