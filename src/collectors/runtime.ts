import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { collectorSchema, registerCollector } from './collector.js';

registerCollector({
  name: 'runtime',
  description: "lookout's own process: CPU, memory, heap, event-loop lag (process_*, nodejs_*)",
  schema: collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {}),
  create() {
    // prom-client's default metrics keep observers (GC, event-loop delay) alive, so they
    // live in one long-lived registry; each refresh lends its metric objects to the fresh one.
    const own = new Registry();
    // prom-client samples event-loop delay every 10 ms by default: 100 wake-ups a second
    // on an otherwise idle exporter, which measured as most of its idle CPU. One sample a
    // second still records any stall (the delay is measured, not the sampling period).
    collectDefaultMetrics({ register: own, eventLoopMonitoringPrecision: 1000 });
    return {
      async update(registry) {
        for (const metric of own.getMetricsAsArray())
          registry.registerMetric(metric as unknown as Metric);
      },
    };
  },
});
