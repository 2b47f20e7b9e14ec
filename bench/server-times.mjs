// Loaded into lookout by bench/aicost.ts with BENCH_AICOST_SPLIT=1 (NODE_OPTIONS=--import):
// when each GET /metrics reached lookout's request handler and how long until its answer
// was handed to the kernel, so a slow scrape can be split into before, inside and after
// lookout. Plain JavaScript: bin/lookout runs node without a TypeScript loader.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { isMainThread } from 'node:worker_threads';

// NODE_OPTIONS loads this into the ledger's worker too, which must not write the file.
const file = isMainThread ? process.env.BENCH_SERVER_TIMES : undefined;
/**
 * [the URL (the bench tags each scrape), CLOCK_MONOTONIC ms when the handler ran (one clock
 * for every process here), ms until 'finish'] per scrape.
 */
const times = [];
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && req.url.startsWith('/metrics')) {
    const t0 = performance.now();
    const mono = Number(process.hrtime.bigint()) / 1e6;
    const url = req.url;
    res.once('finish', () => times.push([url, mono, performance.now() - t0]));
  }
  return emit.apply(this, arguments);
};
// Written every half second, off the request path.
if (file) setInterval(() => writeFileSync(file, JSON.stringify(times)), 500).unref();
