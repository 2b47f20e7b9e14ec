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
    collectDefaultMetrics({ register: own });
    return {
      async update(registry) {
        for (const metric of own.getMetricsAsArray())
          registry.registerMetric(metric as unknown as Metric);
      },
    };
  },
});
