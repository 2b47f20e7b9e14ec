/**
 * Heap room for the ingest and tail work to come: N short string ids in a Set (an
 * ingest's dedupe set), under the node flags this runs with. Prints one JSON line;
 * a heap cap too small ends the process with V8's out-of-memory abort instead.
 *
 *   node [flags] --import tsx bench/ids.ts [count]
 */
const COUNT = Number(process.argv[2] ?? process.env.BENCH_IDS ?? 1_000_000);
const ids = new Set<string>();
for (let i = 0; i < COUNT; i++) ids.add(`req-${((i * 2654435761) >>> 0).toString(36)}-${i}`);
const m = process.memoryUsage();
console.log(JSON.stringify({ ids: ids.size, heapUsed: m.heapUsed, rss: m.rss }));
