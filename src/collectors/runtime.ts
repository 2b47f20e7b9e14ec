import { readdirSync, statSync } from 'node:fs';
import { collectDefaultMetrics, Gauge, Registry } from '../lib/prom.js';
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

/**
 * prom-client's nodejs_eventloop_lag_seconds, without the histogram statistics its
 * collect() also computes for the series above: how long a callback queued now waits
 * for the loop, set when it runs (so each refresh exports the delay the previous one
 * measured), as prom-client does.
 */
function eventLoopLag(registers: Registry[]): void {
  const lag = new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers,
    aggregator: 'average',
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / 1e9));
    },
  });
}

/**
 * prom-client's process_open_fds counts by listing /proc/self/fd: a string per
 * descriptor, and lookout keeps one open per process for the processes collector. Since
 * Linux 6.2 the directory's size is that count; older kernels report 0 there and are
 * listed as before.
 */
function openFds(registers: Registry[]): void {
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers,
    collect() {
      try {
        const size = statSync('/proc/self/fd').size;
        // Minus 1 for the descriptor readdirSync itself holds while it lists.
        this.set(size > 0 ? size : readdirSync('/proc/self/fd').length - 1);
      } catch {
        // not Linux, or /proc not mounted: no value, as prom-client
      }
    },
  });
}

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
    own.removeSingleMetric('nodejs_eventloop_lag_seconds');
    eventLoopLag([own]);
    if (process.platform === 'linux') {
      own.removeSingleMetric('process_open_fds');
      openFds([own]);
    }
    return {
      async collect() {
        return own;
      },
    };
  },
});
