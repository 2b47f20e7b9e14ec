import { collectorSchema, registerCollector } from './collector.js';

// PLACEHOLDER — being written.
registerCollector({
  name: 'processes',
  description: 'processes',
  schema: collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {}),
  create() {
    return { async update() {} };
  },
});
