/**
 * The answer to a body of events checked and stored in the ledger's worker: byte for byte
 * what batchAnswer() (src/collectors/collector.ts) makes of the per-item results, written
 * straight to JSON. batchAnswer takes an object per item and copies each into another
 * with its index; for a batch of 500 that was a thousand objects of garbage a request in
 * the thread whose CPU bounds batched ingest (docs/performance.md, "AI cost").
 */
import type { RouteItemResult } from '../collectors/collector.js';

/**
 * `items` events in the body; `rejected[i]` the answer of each item refused before the
 * store; the others, in order, are the stored events: item `at[k]` has id `ids(k)` and
 * was stored now when `inserted[k]` is 1 (else it was there already: a duplicate).
 */
export function ingestAnswer(
  items: number,
  rejected: readonly (RouteItemResult | undefined)[],
  at: readonly number[],
  ids: (k: number) => string,
  inserted: Uint8Array,
): { status: number; json: string } {
  let accepted = 0;
  for (let k = 0; k < at.length; k++) accepted += inserted[k]!;
  const duplicate = at.length - accepted;
  const refused = items - at.length;
  const status = refused === 0 ? 200 : refused === items ? 422 : 207;
  let json = `{"accepted":${accepted},"duplicate":${duplicate},"rejected":${refused},"items":[`;
  let k = 0;
  for (let i = 0; i < items; i++) {
    if (i > 0) json += ',';
    const r = rejected[i];
    if (r !== undefined) {
      json += JSON.stringify({ index: i, ...r });
      continue;
    }
    json += `{"index":${i},"id":${JSON.stringify(ids(k))},"result":"${inserted[k] ? 'accepted' : 'duplicate'}"}`;
    k++;
  }
  return { status, json: json + ']}' };
}
