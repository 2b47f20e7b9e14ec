import { collectorSchema, registerCollector } from './collector.js';

// PLACEHOLDER — being written.
registerCollector({
  name: 'filesystem',
  description: 'filesystem',
  schema: collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {}),
  create() {
    return { async update() {} };
  },
});
