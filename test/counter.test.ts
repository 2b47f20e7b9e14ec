import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { setCounterTo } from '../src/collectors/counter.js';

it('setCounterTo sets a counter to the value read, down as well as up, and keeps TYPE counter', async () => {
  const registry = new Registry();
  const c = new Counter({ name: 'x_total', help: 'x', registers: [registry] });
  setCounterTo(c, 5);
  setCounterTo(c, 7);
  assert.equal((await c.get()).values[0]?.value, 7);
  // A source that restarted (nginx) reads lower: the counter follows, as a reset.
  setCounterTo(c, 2);
  assert.equal((await c.get()).values[0]?.value, 2);
  assert.match(await registry.metrics(), /# TYPE x_total counter\nx_total 2\n/);
});
