/**
 * The ledger's worker writes a batch's answer straight to JSON (src/aicost/answer.ts):
 * it must be byte for byte what batchAnswer() makes of the same per-item results.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ingestAnswer } from '../src/aicost/answer.js';
import { batchAnswer, type RouteItemResult } from '../src/collectors/collector.js';

/** A body of `items` items: `rejectedAt` refused (with or without an id), the rest stored, duplicates where `dupAt`. */
function both(
  items: number,
  rejectedAt: Set<number>,
  dupAt: Set<number>,
  id = (i: number) => `e${i}`,
) {
  const results: RouteItemResult[] = [];
  const rejected: (RouteItemResult | undefined)[] = new Array(items);
  const at: number[] = [];
  const ids: string[] = [];
  const flags: number[] = [];
  for (let i = 0; i < items; i++) {
    if (rejectedAt.has(i)) {
      const r: RouteItemResult =
        i % 2 === 0
          ? { id: id(i), result: 'rejected', reason: `time: "bad" \\ ${i}` }
          : { result: 'rejected', reason: 'id: required' };
      results.push(r);
      rejected[i] = r;
      continue;
    }
    const result = dupAt.has(i) ? 'duplicate' : 'accepted';
    results.push({ id: id(i), result });
    at.push(i);
    ids.push(id(i));
    flags.push(result === 'accepted' ? 1 : 0);
  }
  return {
    want: batchAnswer(results),
    got: ingestAnswer(items, rejected, at, (k) => ids[k]!, Uint8Array.from(flags)),
  };
}

describe("the worker's batch answer", () => {
  it('is what batchAnswer makes: all accepted, with duplicates, some or all rejected, one item', () => {
    const cases: [number, number[], number[]][] = [
      [1, [], []],
      [1, [], [0]],
      [1, [0], []],
      [5, [], []],
      [5, [], [1, 3]],
      [6, [0, 5], [2]],
      [4, [0, 1, 2, 3], []],
      [500, [7, 8, 499], [0, 100, 250]],
    ];
    for (const [n, rej, dup] of cases) {
      const { want, got } = both(n, new Set(rej), new Set(dup));
      assert.deepEqual(got, want, `${n} items, rejected ${rej}, duplicates ${dup}`);
    }
  });

  it('escapes ids as JSON.stringify does (quotes, backslashes, non-ASCII, lone surrogates)', () => {
    const odd = ['a"b', 'c\\d', 'é✓😀', 'x\ud800y', '\u2028', 'tab\there'];
    const { want, got } = both(odd.length, new Set([1]), new Set([2]), (i) => odd[i]!);
    assert.deepEqual(got, want);
    assert.doesNotThrow(() => JSON.parse(got.json));
  });
});
