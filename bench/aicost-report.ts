/**
 * What `lookout cost` and `lookout cost reprice` take on a full store: 90 days of hourly
 * rollups for SERVICES × MODELS × 2 sources (every combination busy every hour: the
 * worst case for the rollup table) and UNPRICED raw events of one model for reprice.
 * Prints the time of each window's report (read-only, as the command opens the store),
 * of status's three sums, and of repricing every unpriced event.
 *
 *   node --import tsx bench/aicost-report.ts
 *   BENCH_AI_SERVICES=50 BENCH_AI_MODELS=20 BENCH_AI_UNPRICED=200000 node --import tsx bench/aicost-report.ts
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pricingTable } from '../src/aicost/pricing.js';
import {
  costReport,
  openStoreReadOnly,
  openStoreReadWrite,
  reprice,
  spendSummary,
  storeFile,
  WINDOWS,
} from '../src/aicost/report.js';
import { DDL } from '../src/aicost/schema.js';
import { setting } from './lib.js';

const SERVICES = setting('BENCH_AI_SERVICES', 20, 1);
const MODELS = setting('BENCH_AI_MODELS', 10, 1);
const UNPRICED = setting('BENCH_AI_UNPRICED', 100_000, 1);
const HOUR = 3_600_000;
const DAYS = 90;

const root = join(tmpdir(), `lookout-bench-aicost-${process.pid}`);
await mkdir(join(root, 'aicost'), { recursive: true });
try {
  const now = Date.now();
  const first = Math.floor(now / HOUR) * HOUR - DAYS * 24 * HOUR;
  const db = new Database(storeFile(root));
  db.pragma('journal_mode = WAL');
  db.exec(DDL);
  const roll = db.prepare(
    `INSERT INTO rollups_hourly VALUES (?, ?, ?, ?, 10, 0, 1000, 200, 3000, 100, 0, 0, 0.05, 0.01)`,
  );
  db.transaction(() => {
    for (let h = first; h <= now; h += HOUR)
      for (let s = 0; s < SERVICES; s++)
        for (let m = 0; m < MODELS; m++)
          for (const src of ['http', 'jsonl:/var/log/app.jsonl'])
            roll.run(h, `service-${s}`, `model-${m}`, src);
  })();
  const ev =
    db.prepare(`INSERT INTO events VALUES (?, ?, ?, 'svc', 'acme-llm', 'acme', 'chat', 'http',
    100, 20, 0, 0, 0, NULL, 'unpriced', NULL, NULL)`);
  const unr = db.prepare(
    `INSERT INTO rollups_hourly VALUES (?, 'svc', 'acme-llm', 'http', ?, ?, 0, 0, 0, 0, 0, ?, 0, 0)
     ON CONFLICT DO UPDATE SET requests = requests + excluded.requests`,
  );
  db.transaction(() => {
    for (let i = 0; i < UNPRICED; i++) {
      const t = now - Math.floor((i / UNPRICED) * DAYS * 24 * HOUR);
      ev.run(`e${i}`, t, t);
    }
    for (let h = first; h <= now; h += HOUR) unr.run(h, 0, 0, 0);
  })();
  db.close();
  const rows = (DAYS * 24 + 1) * SERVICES * MODELS * 2;
  console.log(
    `store: ${rows} rollup rows, ${UNPRICED} unpriced events, ${((await stat(storeFile(root))).size / 2 ** 20).toFixed(1)} MiB`,
  );

  const ro = await openStoreReadOnly(root);
  for (const window of WINDOWS) {
    const t0 = performance.now();
    const r = costReport(ro, { window, by: 'model', nowMs: now, store: root });
    console.log(
      `lookout cost --window ${window} --by model: ${(performance.now() - t0).toFixed(1)} ms (${r.current.requests} requests)`,
    );
  }
  let t0 = performance.now();
  spendSummary(ro, now);
  console.log(`status spend line: ${(performance.now() - t0).toFixed(1)} ms`);
  ro.close();

  const table = pricingTable([
    { id: 'acme-llm', provider: 'acme', prices: [{ input: 1, output: 2 }] },
  ]);
  const rw = await openStoreReadWrite(root);
  t0 = performance.now();
  const r = reprice(rw, table, { sinceMs: 0 });
  const s = (performance.now() - t0) / 1000;
  console.log(
    `lookout cost reprice: ${r.priced} events in ${s.toFixed(2)} s (${Math.round(r.priced / s)} events/s)`,
  );
  rw.close();
} finally {
  await rm(root, { recursive: true, force: true });
}
