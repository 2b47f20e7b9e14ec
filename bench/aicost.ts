/**
 * The AI-cost ingest and store against its targets (docs/performance.md, "AI cost"):
 *
 * 1. batched HTTP ingest, 500 events a batch, durable before each answer: events/s
 *    (target ≥ 100,000);
 * 2. single-event POSTs from 50 concurrent clients: p99 (target ≤ 10 ms), while /metrics
 *    is scraped back to back: its p99 under that load, beside node_exporter's p50 idle;
 * 3. start on a store of 1,000,000 events and 90 days of rollups: time until /metrics
 *    serves the seeded counters (target ≤ 5 s), RSS (budget 128 MiB), and RSS of the
 *    same lookout with aicost off (what the worker and the open store cost);
 * 4. 1,000,000 events a day for 7 days of simulated time (events posted with past
 *    times): RSS after each day (flat?) and the store's size.
 *
 * npm run bench:aicost; BENCH_SMOKE=1 for the short run. Settings: BENCH_AICOST_BATCHED
 * (events in phase 1), BENCH_AICOST_SINGLES (requests in phase 2), BENCH_AICOST_STORED
 * (phase 3), BENCH_AICOST_PER_DAY and BENCH_AICOST_DAYS (phase 4).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { DDL, SCHEMA_VERSION } from '../src/aicost/schema.js';
import { freePort, startNodeExporter, startProcess, tempDir } from '../test/helpers/procs.js';
import {
  cpuSeconds,
  latency,
  mb,
  quantile,
  rssBytes,
  scrape,
  setting,
  startedAll,
  SMOKE,
} from './lib.js';

const TOKEN = 'bench-ai-ingest-token-0123456789';
const BATCHED = setting('BENCH_AICOST_BATCHED', 500_000, 5_000);
const SINGLES = setting('BENCH_AICOST_SINGLES', 20_000, 200);
const STORED = setting('BENCH_AICOST_STORED', 1_000_000, 10_000);
const PER_DAY = setting('BENCH_AICOST_PER_DAY', 1_000_000, 2_000);
const DAYS = setting('BENCH_AICOST_DAYS', 7, 2);
const CLIENTS = 50;
const BATCH = 500;
const LAUNCHER = process.env.BENCH_LOOKOUT ?? join(import.meta.dirname, '..', 'bin/lookout');

const SERVICES = ['chat-api', 'search', 'summariser', 'support-bot', 'batch'];
const MODELS = [
  'gpt-4o',
  'gpt-4o-mini',
  'claude-sonnet-4-5',
  'claude-haiku-4-5',
  'gemini-2.5-flash',
];
const PROVIDERS = ['openai', 'openai', 'anthropic', 'anthropic', 'google'];

function eventJson(id: string, i: number, timeMs?: number): string {
  const m = i % MODELS.length;
  return `{"id":"${id}","service":"${SERVICES[i % SERVICES.length]}","model":"${MODELS[m]}","provider":"${PROVIDERS[m]}","input_tokens":${500 + (i % 1000)},"output_tokens":${100 + (i % 300)},"cache_read_tokens":${i % 200},"cache_write_tokens":0${timeMs === undefined ? '' : `,"time":${timeMs}`}}`;
}

async function startLookout(dir: string, aicost: boolean) {
  const port = await freePort();
  await writeFile(join(dir, 'token'), TOKEN);
  await writeFile(
    join(dir, 'lookout.yml'),
    `storage:\n  path: ${join(dir, 'state')}\ncollectors:\n  aicost:\n    enabled: ${aicost}\n    ingest_token_file: ${join(dir, 'token')}\n`,
  );
  const t0 = performance.now();
  const proc = await startProcess(
    LAUNCHER,
    ['serve', '--config', join(dir, 'lookout.yml'), '--web.listen-address', `127.0.0.1:${port}`],
    { readyPath: '/healthz', port, dir, timeoutMs: 60_000 },
  );
  return { proc, t0 };
}

async function post(url: string, body: string): Promise<void> {
  const res = await request(`${url}/api/v1/ai-usage`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200)
    throw new Error(`ingest: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
}

/** Waits until the store is open (the service starts after /healthz answers). */
async function storeOpen(url: string): Promise<void> {
  for (;;) {
    const res = await request(`${url}/metrics`);
    const text = await res.body.text();
    if (/^lookout_ai_store_up 1$/m.test(text)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends `total` events in batches of BATCH from `clients` concurrent clients; events/s. */
async function batched(
  url: string,
  total: number,
  clients: number,
  prefix: string,
  time?: (i: number) => number,
) {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (;;) {
        const start = next;
        if (start >= total) return;
        next += BATCH;
        const n = Math.min(BATCH, total - start);
        const parts: string[] = [];
        for (let i = start; i < start + n; i++)
          parts.push(eventJson(`${prefix}${i}`, i, time?.(i)));
        await post(url, `{"events":[${parts.join(',')}]}`);
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

/** A store of `n` events spread over the last 90 days, with its rollups and totals, written directly. */
function buildStore(file: string, n: number): void {
  const d = new Database(file);
  d.pragma('auto_vacuum = INCREMENTAL');
  d.pragma('journal_mode = WAL');
  d.exec(DDL);
  d.prepare("INSERT INTO meta VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
  const ins = d.prepare(`INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`);
  const now = Date.now();
  const span = 89 * 86_400_000;
  const step = 50_000;
  for (let s = 0; s < n; s += step) {
    d.transaction(() => {
      for (let i = s; i < Math.min(n, s + step); i++) {
        const m = i % MODELS.length;
        const t = now - span + Math.floor((i / n) * span);
        ins.run(
          `stored-${i}`,
          t,
          t,
          SERVICES[i % SERVICES.length],
          MODELS[m],
          PROVIDERS[m],
          'chat',
          'http',
          500 + (i % 1000),
          100 + (i % 300),
          i % 200,
          0,
          0,
          0.001 * (1 + (i % 7)),
          'priced',
          MODELS[m],
          null,
        );
      }
    })();
  }
  d.exec(`INSERT INTO rollups_hourly SELECT time_ms - time_ms % 3600000, service, model, source, count(*),
      0, sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), 0, 0, 0, sum(cost_usd), 0
    FROM events GROUP BY 1, 2, 3, 4;
    INSERT INTO totals SELECT service, model, source, count(*), 0, sum(input_tokens), sum(output_tokens),
      sum(cache_read_tokens), 0, 0, 0, sum(cost_usd) FROM events GROUP BY 1, 2, 3;
    INSERT INTO ingest_counts SELECT 'events', source, 'accepted', count(*) FROM events GROUP BY source;`);
  d.close();
}

const line = (s: string) => console.log(s);

// ------------------------------------------------------------- 1 and 2: ingest, scrapes
const dir1 = await tempDir('lookout-bench-aicost-');
const { proc: lookout } = await startLookout(dir1, true);
const nodeExporter = await startNodeExporter();
await storeOpen(lookout.url);
await startedAll();
line(`AI cost bench${SMOKE ? ' (smoke: figures mean nothing)' : ''}, ${new Date().toISOString()}`);

const cpu0 = await cpuSeconds(lookout.child.pid!);
const rate = await batched(lookout.url, BATCHED, 4, 'batched-');
const cpu1 = await cpuSeconds(lookout.child.pid!);
line(
  `batched ingest: ${BATCHED} events in batches of ${BATCH}, 4 clients: ${Math.round(rate)} events/s durable (target >= 100000); lookout used ${(cpu1 - cpu0).toFixed(1)} CPU-s (both threads): ${Math.round(BATCHED / (cpu1 - cpu0))} events per CPU-second, ${((100_000 * (cpu1 - cpu0)) / BATCHED).toFixed(2)} CPU-s per 100k events`,
);

let loading = true;
const scrapeTimes: number[] = [];
const scraper = (async () => {
  while (loading) scrapeTimes.push(await scrape(`${lookout.url}/metrics`));
})();
const cpu2 = await cpuSeconds(lookout.child.pid!);
const singleTimes: number[] = [];
let sentSingles = 0;
const t1 = performance.now();
await Promise.all(
  Array.from({ length: CLIENTS }, async () => {
    while (sentSingles < SINGLES) {
      const i = sentSingles++;
      const t = performance.now();
      await post(lookout.url, eventJson(`single-${i}`, i));
      singleTimes.push(performance.now() - t);
    }
  }),
);
const singleRate = SINGLES / ((performance.now() - t1) / 1000);
const cpu3 = await cpuSeconds(lookout.child.pid!);
loading = false;
await scraper;
singleTimes.sort((a, b) => a - b);
scrapeTimes.sort((a, b) => a - b);
const ne = await latency([{ name: 'node_exporter', proc: nodeExporter }], SMOKE ? 20 : 200);
line(
  `single-event POSTs, ${CLIENTS} concurrent clients, ${SINGLES} requests: p50 ${quantile(singleTimes, 0.5).toFixed(2)} ms, p99 ${quantile(singleTimes, 0.99).toFixed(2)} ms (target <= 10), ${Math.round(singleRate)} events/s, ${((1000 * (cpu3 - cpu2)) / SINGLES).toFixed(2)} CPU-ms each (with the scrapes), ${((100_000 * (cpu3 - cpu2)) / SINGLES).toFixed(1)} CPU-s per 100k`,
);
line(
  `/metrics scraped back to back meanwhile: ${scrapeTimes.length} scrapes, p50 ${quantile(scrapeTimes, 0.5).toFixed(2)} ms, p99 ${quantile(scrapeTimes, 0.99).toFixed(2)} ms; node_exporter p50 ${ne.node_exporter!.p50.toFixed(2)} ms idle (curl)`,
);
line(`lookout RSS after phases 1-2: ${mb(await rssBytes(lookout.child.pid!))} MB`);
await nodeExporter.stop();

// --------------------------------------------------- 4: a million a day, for DAYS days
const dayMs = 86_400_000;
const start = Date.now() - DAYS * dayMs;
for (let day = 0; day < DAYS; day++) {
  const r = await batched(
    lookout.url,
    PER_DAY,
    4,
    `d${day}-`,
    (i) => start + day * dayMs + Math.floor((i / PER_DAY) * dayMs),
  );
  const db = join(dir1, 'state', 'aicost', 'ai-usage.sqlite');
  const size = (await stat(db)).size + (await stat(`${db}-wal`).catch(() => ({ size: 0 }))).size;
  line(
    `day ${day + 1}: ${PER_DAY} events at ${Math.round(r)}/s; RSS ${mb(await rssBytes(lookout.child.pid!))} MB; store ${mb(size)} MB (with WAL)`,
  );
}
await lookout.stop();

// ------------------------------------------- 3: start on a million stored events
const dir3 = await tempDir('lookout-bench-aicost-');
const { proc: off } = await startLookout(dir3, false);
await new Promise((r) => setTimeout(r, 1000));
const rssOff = await rssBytes(off.child.pid!);
await off.stop();
const t2 = performance.now();
const { mkdir } = await import('node:fs/promises');
await mkdir(join(dir3, 'state', 'aicost'), { recursive: true });
buildStore(join(dir3, 'state', 'aicost', 'ai-usage.sqlite'), STORED);
line(
  `built a store of ${STORED} events over 89 days (with rollups) in ${((performance.now() - t2) / 1000).toFixed(1)} s`,
);
const { proc: big, t0 } = await startLookout(dir3, true);
await storeOpen(big.url);
const ready = performance.now() - t0;
await new Promise((r) => setTimeout(r, 1000));
const rssOn = await rssBytes(big.child.pid!);
line(
  `start on ${STORED} stored events: /metrics serving the seeded counters after ${(ready / 1000).toFixed(2)} s (target <= 5); RSS ${mb(rssOn)} MB (budget 128 MiB); aicost off: ${mb(rssOff)} MB, so the worker and the open store cost ${mb(rssOn - rssOff)} MB`,
);
await big.stop();
