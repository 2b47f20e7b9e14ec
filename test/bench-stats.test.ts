import assert from 'node:assert/strict';
import { it } from 'node:test';

it("the abuse test's helpers bring no bench cleanup: importing them adds no exit, SIGINT or SIGTERM handler", async () => {
  const before = ['exit', 'SIGINT', 'SIGTERM'].map((e) => process.listenerCount(e));
  await import('./helpers/abuse.js');
  const { quantile, residentBytes } = await import('../bench/stats.js');
  const after = ['exit', 'SIGINT', 'SIGTERM'].map((e) => process.listenerCount(e));
  assert.deepEqual(after, before);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 3);
  const mem = await residentBytes(process.pid);
  assert.ok(mem.rss > 0 && mem.anon > 0 && mem.file > 0, JSON.stringify(mem));
  // bench/lib does install them: the check above can see a handler being added.
  await import('../bench/lib.js');
  assert.equal(process.listenerCount('SIGTERM'), before[2]! + 1);
});
