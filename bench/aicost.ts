/**
 * The AI-cost ingest and store against its targets (docs/performance.md, "AI cost"):
 *
 * 1. batched HTTP ingest, 500 events a batch, durable before each answer: events/s
 *    (target >= 100,000), and lookout's CPU per 100k events by thread;
 * 2. single-event POSTs from 50 clients, twice over:
 *    a. closed loop: each client posts its next event when its last is answered. This
 *       measures saturation: latency is 50 / throughput (Little's law), on a machine the
 *       load generator shares;
 *    b. open loop: the 50 clients together post at a fixed rate (OPEN_RATES events/s),
 *       each latency from the event's scheduled send time, so queueing counts; the clock
 *       starts once each connection is open and a second at the rate has run.
 *    Target p99 <= 10 ms; meanwhile /metrics of lookout and of node_exporter are scraped
 *    as Prometheus does (SCRAPERS connections each, each once a second, each target at
 *    an offset of its own): target lookout's p99 <= 0.5 x node_exporter's p50 in the
 *    same phase (and a commit never blocks a scrape), judged as the exporter's /metrics
 *    target is everywhere (bench/abuse.ts): over MIN_SCRAPES scrapes or more, so that a
 *    p99 is not the second-slowest of a handful. A second lookout, aicost off and taking no ingest, is scraped the same way
 *    beside them: what its scrapes share with the first's is the machine;
 * 3. start on a store of 1,000,000 events and 90 days of rollups: time until /metrics
 *    serves the seeded counters (target <= 5 s), RSS (budget 128 MiB), and RSS of the
 *    same lookout with aicost off (what the worker and the open store cost);
 * 4. 1,000,000 events a day for 7 days of simulated time (events posted with past
 *    times): RSS after each day (flat?) and the store's size.
 *
 * The load of phases 1 and 2 comes from bench/aicost-client.ts, a process of its own, so
 * its CPU is not lookout's; lookout's CPU is read from /proc by thread (the main thread,
 * and the others: the ledger's worker, V8's and libuv's helpers).
 *
 * npm run bench:aicost; BENCH_SMOKE=1 for the short run. Settings: BENCH_AICOST_BATCHED
 * (events in phase 1), BENCH_AICOST_SINGLES (requests in phase 2a), BENCH_AICOST_OPEN_SECONDS
 * (each rate of phase 2b), BENCH_AICOST_STORED (phase 3), BENCH_AICOST_PER_DAY and
 * BENCH_AICOST_DAYS (phase 4). BENCH_LOOKOUT runs another build's launcher; BENCH_AICOST_SPLIT=1
 * splits lookout's scrapes at its request handler (bench/server-times.mjs).
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Client, request } from 'undici';
import { DDL, SCHEMA_VERSION } from '../src/aicost/schema.js';
import { freePort, startNodeExporter, startProcess, tempDir } from '../test/helpers/procs.js';
import type { Job, Result } from './aicost-client.js';
import { BATCH, eventJson, MODELS, PROVIDERS, SERVICES, TOKEN } from './aicost-events.js';
import {
  byMapping,
  latency,
  mb,
  quantile,
  rssBytes,
  setting,
  sleep,
  startedAll,
  SMOKE,
} from './lib.js';

const BATCHED = setting('BENCH_AICOST_BATCHED', 500_000, 5_000);
const SINGLES = setting('BENCH_AICOST_SINGLES', 20_000, 200);
/** A p99 of fewer scrapes is not judged: of 160 scrapes, a p99 is the second-slowest one. */
const MIN_SCRAPES = 500;
const CLIENTS = 50;
const SCRAPERS = 8;
const SCRAPE_EVERY_MS = 1000;
// Each rate long enough for MIN_SCRAPES of each exporter's scrapes inside the clock.
const OPEN_SECONDS = setting(
  'BENCH_AICOST_OPEN_SECONDS',
  Math.ceil((MIN_SCRAPES * SCRAPE_EVERY_MS) / 1000 / SCRAPERS) + 2,
  0.5,
);
const OPEN_RATES = [1000, 2000];
const STORED = setting('BENCH_AICOST_STORED', 1_000_000, 10_000);
const PER_DAY = setting('BENCH_AICOST_PER_DAY', 1_000_000, 2_000);
const DAYS = setting('BENCH_AICOST_DAYS', 7, 2);
const LAUNCHER = process.env.BENCH_LOOKOUT ?? join(import.meta.dirname, '..', 'bin/lookout');
const CLIENT = fileURLToPath(new URL('./aicost-client.ts', import.meta.url));
/**
 * BENCH_AICOST_SPLIT=1: lookout runs with bench/server-times.mjs loaded, and each open-loop
 * phase splits lookout's scrapes into the time before its request handler ran, the
 * handler until the answer went to the kernel, and the time after, until the scraper had
 * it all.
 */
const SPLIT = process.env.BENCH_AICOST_SPLIT === '1';
/** CLOCK_MONOTONIC in ms: one clock for every process here (each's timeOrigin is its own). */
const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

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
    {
      readyPath: '/healthz',
      port,
      dir,
      timeoutMs: 60_000,
      env: SPLIT
        ? {
            NODE_OPTIONS: `--import=${new URL('./server-times.mjs', import.meta.url).href}`,
            BENCH_SERVER_TIMES: join(dir, 'server-times.json'),
          }
        : {},
    },
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
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline)
      throw new Error(`${url}: the AI usage store did not open within 60 s`);
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

/** CPU-seconds of a process's threads so far: its main thread, and all the others together. */
async function threadCpu(pid: number): Promise<{ main: number; others: number }> {
  let main = 0;
  let others = 0;
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      const s =
        Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]) / 1e9;
      if (Number(tid) === pid) main += s;
      else others += s;
    } catch {
      // the thread ended between readdir and read
    }
  }
  return { main, others };
}

/** Runs the load generator (bench/aicost-client.ts) and measures lookout's CPU across it. */
async function load(job: Job, pid: number) {
  const cpu0 = await threadCpu(pid);
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENT, JSON.stringify(job)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`bench/aicost-client.ts exited with ${code}`);
  const cpu1 = await threadCpu(pid);
  const r = JSON.parse(out) as Result;
  return {
    ...r,
    seconds: (r.end - r.start) / 1000,
    main: cpu1.main - cpu0.main,
    others: cpu1.others - cpu0.others,
  };
}

/** Scrapes tagged so far (BENCH_AICOST_SPLIT): each tag once in the run. */
let tags = 0;

/** A scrape: when it began (Unix ms, as the generator's times) and how long it took. */
interface Scrape {
  at: number;
  /** The same, on the system-wide monotonic clock (in ms), which lookout's times share. */
  mono: number;
  ms: number;
  /** Its path: /metrics, with a tag of its own under BENCH_AICOST_SPLIT. */
  path: string;
}

/**
 * Scrapes each url's /metrics as Prometheus does, each connection once every
 * SCRAPE_EVERY_MS (lookout paces a connection's scrapes past two a second and in its first
 * second, src/exporter/app.ts), over SCRAPERS connections a url, staggered: the times of
 * each url, from the call on. Each url's scrapes start at an offset of their own in the
 * slot between two connections', as Prometheus offsets each target in its interval (a hash
 * of its labels and URL): scraped at the same moments, every one of lookout's scrapes met
 * node_exporter's, whose collectors run in parallel for 10-20 ms (docs/performance.md
 * has both).
 */
async function scraping(urls: string[]) {
  const clients = urls.map((u) => Array.from({ length: SCRAPERS }, () => new Client(u)));
  const once = async (c: Client, path = '/metrics') => {
    const t0 = performance.now();
    const res = await c.request({
      path,
      method: 'GET',
      headers: { 'accept-encoding': 'identity' },
    });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`/metrics: HTTP ${res.statusCode}`);
    return performance.now() - t0;
  };
  // Each connection open and past its first second before the figures start.
  await Promise.all(clients.flat().map((c) => once(c)));
  await sleep(1100);
  let on = true;
  const times = urls.map((): Scrape[] => []);
  const loops = clients.flatMap((cs, k) =>
    cs.map(async (c, j) => {
      await sleep(((j + k / urls.length) * SCRAPE_EVERY_MS) / SCRAPERS);
      while (on) {
        const t = performance.now();
        const at = Date.now();
        const mono = monotonicMs();
        const path = SPLIT ? `/metrics?scrape=${++tags}` : '/metrics';
        times[k]!.push({ at, mono, path, ms: await once(c, path) });
        await sleep(Math.max(0, SCRAPE_EVERY_MS - (performance.now() - t)));
      }
    }),
  );
  /** Each url's latencies, sorted: of every scrape, and of those begun between `from` and `to` (Unix ms). */
  return async (from: number, to: number) => {
    on = false;
    await Promise.all(loops);
    await Promise.all(clients.flat().map((c) => c.close()));
    const sorted = (l: Scrape[]) => l.map((s) => s.ms).sort((a, b) => a - b);
    return times.map((t) => {
      const clocked = t.filter((s) => s.at >= from && s.at <= to);
      return { all: sorted(t), clocked: sorted(clocked), scrapes: clocked };
    });
  };
}

/** A one-row commit (WAL, synchronous=FULL) in `dir`, as the store commits: the disk's floor under a durable answer. */
function commitTimes(dir: string, n: number): number[] {
  const d = new Database(join(dir, 'floor.sqlite'));
  d.pragma('journal_mode = WAL');
  d.pragma('synchronous = FULL');
  d.exec('CREATE TABLE t (id TEXT PRIMARY KEY)');
  const ins = d.prepare('INSERT INTO t VALUES (?)');
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    ins.run(`row-${i}`);
    times.push(performance.now() - t);
  }
  d.close();
  return times.sort((a, b) => a - b);
}

const line = (s: string) => console.log(s);
const ms = (v: number) => `${v.toFixed(2)} ms`;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
const judged: string[] = [];
const judge = (what: string, target: string, measured: string, ok: boolean) => {
  judged.push(`| ${what} | ${target} | ${measured} | ${verdict(ok)} |`);
  line(`  ${what}: target ${target}, measured ${measured}: ${verdict(ok)}`);
};
const loadavg = async () =>
  (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

// ------------------------------------------------------------- 1 and 2: ingest, scrapes
const dir1 = await tempDir('lookout-bench-aicost-');
const { proc: lookout } = await startLookout(dir1, true);
const nodeExporter = await startNodeExporter();
// Scraped beside lookout in phase 2: the same build with aicost off, taking no ingest, on
// the same machine at the same time. What its scrapes share with lookout's is the machine.
const { proc: bystander } = await startLookout(await tempDir('lookout-bench-aicost-off-'), false);
await storeOpen(lookout.url);
await startedAll();
const pid = lookout.child.pid!;
line(
  `AI cost bench${SMOKE ? ' (smoke: figures mean nothing)' : ''}, ${new Date().toISOString()}, lookout ${LAUNCHER}, load average ${await loadavg()}`,
);

const b = await load(
  { kind: 'batched', url: lookout.url, total: BATCHED, clients: 4, prefix: 'batched-' },
  pid,
);
const rate = BATCHED / b.seconds;
// lookout's CPU was read across the warm-up too.
const batchedSent = BATCHED + b.warmup * BATCH;
const cold = batchedSent / ((b.end - b.coldStart) / 1000);
line(
  `1. batched ingest: ${BATCHED} events in bodies of ${BATCH}, 4 clients, after ${b.warmup * BATCH} to warm up: ${Math.round(rate)} events/s durable (from the fresh lookout's first body on: ${Math.round(cold)}); lookout used ${(b.main + b.others).toFixed(2)} CPU-s (main thread ${b.main.toFixed(2)}, others ${b.others.toFixed(2)}): ${((100_000 * (b.main + b.others)) / batchedSent).toFixed(2)} CPU-s per 100k events (main ${((100_000 * b.main) / batchedSent).toFixed(2)}, others ${((100_000 * b.others) / batchedSent).toFixed(2)}); the generator ${b.cpu.toFixed(2)} CPU-s; load average ${await loadavg()}`,
);
judge(
  'batched ingest, 500 a body, durable',
  '>= 100000 events/s',
  `${Math.round(rate)} events/s`,
  rate >= 100_000,
);

const ne = await latency([{ name: 'node_exporter', proc: nodeExporter }], SMOKE ? 20 : 200);
line(
  `node_exporter /metrics idle (curl, sequential): p50 ${ms(ne.node_exporter!.p50)}, p99 ${ms(ne.node_exporter!.p99)}`,
);

const floor = commitTimes(dir1, SMOKE ? 20 : 500);
line(
  `the disk: a one-row commit (WAL, synchronous=FULL) beside the store: p50 ${ms(quantile(floor, 0.5))}, p99 ${ms(quantile(floor, 0.99))}, max ${ms(floor.at(-1)!)} (a durable answer waits for one commit, or for two when it arrives during one)`,
);

/** The slowest five of sorted latencies, in ms. */
const slowestFive = (sorted: number[]) =>
  sorted
    .slice(-5)
    .map((v) => v.toFixed(1))
    .join(', ');

/** One single-event phase with the scrapes beside it; judged unless it is the closed loop. */
async function singles(job: Job, title: string) {
  const stop = await scraping([lookout.url, bystander.url, nodeExporter.url]);
  const r = await load(job, pid);
  // Judged: the scrapes begun while the clock ran, as the latencies are. The others fell
  // in the generator's start (a node process compiling its TypeScript and serializing
  // every body) and its warm-up: reported apart.
  const scrapes = await stop(r.start, r.end);
  const [mine, aside, theirs] = scrapes.map((s) => s.clocked);
  const [mineAll, , theirsAll] = scrapes.map((s) => s.all);
  const t = r.latencies.sort((a, b) => a - b);
  const p99 = quantile(t, 0.99);
  const got = r.requests / r.seconds;
  // lookout's CPU was read across the whole run of the generator, warm-up included.
  const sent = r.requests + r.warmup;
  const perRequest = (r.main + r.others) / sent;
  line(
    `${title}: ${r.requests} requests in ${r.seconds.toFixed(1)} s (${Math.round(got)} events/s)${r.warmup > 0 ? ` after ${r.warmup} to warm up` : ''}: p50 ${ms(quantile(t, 0.5))}, p99 ${ms(p99)}, max ${ms(t.at(-1)!)}; lookout ${(1000 * perRequest).toFixed(3)} CPU-ms a request (main thread ${((1000 * r.main) / sent).toFixed(3)}, others ${((1000 * r.others) / sent).toFixed(3)}; scrapes included), ${(perRequest * got).toFixed(2)} CPUs busy; the generator ${((r.cpu / sent) * got).toFixed(2)} CPUs; load average ${await loadavg()}`,
  );
  const lp99 = quantile(mine!, 0.99);
  const np50 = quantile(theirs!, 0.5);
  line(
    `   /metrics meanwhile: lookout ${mine!.length} scrapes p50 ${ms(quantile(mine!, 0.5))} p99 ${ms(lp99)}, the slowest five ${slowestFive(mine!)} ms; node_exporter ${theirs!.length} scrapes p50 ${ms(np50)} p99 ${ms(quantile(theirs!, 0.99))}; lookout p99 / node_exporter p50 = ${(lp99 / np50).toFixed(2)}; with the ${mineAll!.length - mine!.length} scrapes outside the clock too: lookout p99 ${ms(quantile(mineAll!, 0.99))}, node_exporter p50 ${ms(quantile(theirsAll!, 0.5))}`,
  );
  const ap99 = quantile(aside!, 0.99);
  line(
    `   a lookout without aicost beside it, scraped the same way: ${aside!.length} scrapes p50 ${ms(quantile(aside!, 0.5))} p99 ${ms(ap99)}, the slowest five ${slowestFive(aside!)} ms; its p99 / node_exporter p50 = ${(ap99 / np50).toFixed(2)}`,
  );
  if (SPLIT) line(await split(scrapes[0]!.scrapes));
  return { p99, lp99, ap99, np50, got, scrapes: mine!.length, theirScrapes: theirs!.length };
}

/**
 * Splits lookout's scrapes by bench/server-times.mjs's record of each (BENCH_AICOST_SPLIT):
 * before lookout's handler ran (the request's way in, and the event loop busy or waiting
 * for a core), the handler until the answer went to the kernel, and after, until the
 * scraper had read it all (its own wait for a core among them).
 */
async function split(scrapes: Scrape[]): Promise<string> {
  await sleep(1500); // the module writes its file every half second, later when busy
  const records = JSON.parse(await readFile(join(dir1, 'server-times.json'), 'utf8')) as [
    string,
    number,
    number,
  ][];
  const server = new Map(records.map(([path, t, d]) => [path, { t, d }]));
  const parts: { ms: number; before: number; inside: number; after: number }[] = [];
  for (const { mono, ms, path } of scrapes) {
    const s = server.get(path);
    if (s) parts.push({ ms, before: s.t - mono, inside: s.d, after: ms - (s.t - mono) - s.d });
  }
  if (parts.length === 0) return `   lookout's scrapes split: none begun while the clock ran`;
  const q = (pick: (p: (typeof parts)[number]) => number, at: number) =>
    ms(
      quantile(
        parts.map(pick).sort((a, b) => a - b),
        at,
      ),
    );
  const slowest = parts
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 3)
    .map((p) => `${ms(p.ms)} = ${ms(p.before)} + ${ms(p.inside)} + ${ms(p.after)}`);
  return `   lookout's ${parts.length} scrapes split: before its handler p50 ${q((p) => p.before, 0.5)} p99 ${q((p) => p.before, 0.99)}; the handler until the answer went to the kernel p50 ${q((p) => p.inside, 0.5)} p99 ${q((p) => p.inside, 0.99)}; after, until the scraper had it, p50 ${q((p) => p.after, 0.5)} p99 ${q((p) => p.after, 0.99)}; the slowest three (before + handler + after): ${slowest.join('; ')}`;
}

const closed = await singles(
  { kind: 'closed', url: lookout.url, total: SINGLES, clients: CLIENTS, prefix: 'single-' },
  `2a. closed loop, ${CLIENTS} clients back to back (saturation)`,
);
line(
  `   Little's law: ${CLIENTS} in flight / ${Math.round(closed.got)} per s = ${ms((1000 * CLIENTS) / closed.got)} mean latency; this phase measures throughput, not the latency a client sees below saturation`,
);
for (const r of OPEN_RATES) {
  const o = await singles(
    {
      kind: 'open',
      url: lookout.url,
      total: Math.round(r * OPEN_SECONDS),
      clients: CLIENTS,
      prefix: `open${r}-`,
      rate: r,
    },
    `2b. open loop at ${r} events/s over ${CLIENTS} connections`,
  );
  judge(`single-event POSTs at ${r}/s, p99`, '<= 10 ms', ms(o.p99), o.p99 <= 10);
  const enough = Math.min(o.scrapes, o.theirScrapes) >= MIN_SCRAPES;
  judge(
    `/metrics p99 during ${r}/s, over node_exporter's p50 then`,
    `<= 0.5, over >= ${MIN_SCRAPES} scrapes`,
    `${ms(o.lp99)} / ${ms(o.np50)} = ${(o.lp99 / o.np50).toFixed(2)}, over ${o.scrapes} and ${o.theirScrapes}${enough ? '' : ' (too few to judge)'}; without aicost beside it ${(o.ap99 / o.np50).toFixed(2)}`,
    enough && o.lp99 <= 0.5 * o.np50,
  );
}
// Saturation, not a latency a client sees below it (Little's law): reported, not judged.
judged.push(
  `| single-event POSTs, closed loop (saturation), p99 | not judged | ${ms(closed.p99)} at ${Math.round(closed.got)} events/s | |`,
);
line(`lookout RSS after phases 1-2: ${mb(await rssBytes(pid))} MB`);
await nodeExporter.stop();
await bystander.stop();

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
line(
  `where lookout's memory is after the week:\n${await byMapping(pid, await readlink(`/proc/${pid}/exe`))}`,
);
await lookout.stop();
// A full run leaves over a gigabyte of store here.
await rm(dir1, { recursive: true, force: true });

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
await rm(dir3, { recursive: true, force: true });

line('\n| what | target | measured | |\n|---|---|---|---|');
for (const j of judged) line(j);
