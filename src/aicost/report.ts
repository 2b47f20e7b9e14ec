/**
 * `lookout cost`: what AI usage cost per window, read from the aicost store
 * (`<storage.path>/aicost/ai-usage.sqlite`) without Prometheus and without writing a
 * byte; and `lookout cost reprice`, the one read-write command, which prices the events
 * stored while the table did not know their model.
 *
 * Windows are calendar windows in the local time zone, as a person says them: `hour` is
 * this clock hour, `day` today since midnight, `week` this week since Monday 00:00,
 * `month` this month since the 1st; each is compared with the whole previous one
 * (yesterday, last week...). Sums come from the hourly rollups, which stay exact after
 * raw events are pruned; a window therefore starts at the hour that holds its local
 * start (in zones whose offset is not a whole hour, up to 30 minutes early).
 *
 * Read-only means nothing changes on disk, not even SQLite's side files: while lookout
 * serve runs (the -wal file exists) the store is opened read-only beside it and reads
 * what is committed; when it does not, the file is opened immutable, since a read-only
 * open of a WAL database would otherwise create -wal and -shm files next to it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { openStateDirectory, StorageError } from '../lib/storage.js';
import type { PricingTable } from './pricing.js';
import { DATABASE_FILE } from './schema.js';

export type Database = BetterSqlite3.Database;

/** The aicost collector's state directory under the storage root (the runner's naming). */
export const COLLECTOR = 'aicost';

export function storeFile(storageRoot: string): string {
  return join(storageRoot, COLLECTOR, DATABASE_FILE);
}

// URI filenames (for ?immutable=1) are off in better-sqlite3's build unless this is set
// when its addon loads, at the first database opened in the process: so on import here,
// which cli.ts does at start. Plain paths mean the same with it on.
process.env.SQLITE_USE_URI ??= '1';

async function sqlite(): Promise<typeof BetterSqlite3> {
  return (await import('better-sqlite3')).default;
}

/** No store where the settings point: lookout has not stored AI usage there (yet). */
export class StoreMissingError extends StorageError {}

/**
 * Opens the store read-only; nothing is created or changed. Throws StoreMissingError
 * naming the path and the settings that decide it when there is no store.
 */
export async function openStoreReadOnly(storageRoot: string): Promise<Database> {
  const dir = await openStateDirectory(storageRoot, COLLECTOR, 'read-only');
  const file = join(dir, DATABASE_FILE);
  if (!existsSync(file))
    throw new StoreMissingError(
      `no AI usage store at ${file}: lookout serve has stored no AI usage there. Check that collectors.aicost is enabled in the config lookout serve runs with, and that storage.path in the config (or --storage.path, or STATE_DIRECTORY) names the same directory for this command`,
    );
  const Database = await sqlite();
  try {
    if (existsSync(`${file}-wal`))
      return new Database(file, { readonly: true, fileMustExist: true });
    const uri = `file:${encodeURI(file).replace(/\?/g, '%3f').replace(/#/g, '%23')}?immutable=1`;
    return new Database(uri, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new StorageError(`cannot read the AI usage store ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Opens the store to write (reprice), waiting up to `busyMs` for a running lookout's commit. */
export async function openStoreReadWrite(storageRoot: string, busyMs = 10_000): Promise<Database> {
  const dir = await openStateDirectory(storageRoot, COLLECTOR, 'read-only');
  const file = join(dir, DATABASE_FILE);
  if (!existsSync(file))
    throw new StoreMissingError(
      `no AI usage store at ${file}: nothing to reprice. Check that storage.path in the config (or --storage.path, or STATE_DIRECTORY) names the directory lookout serve uses`,
    );
  const Database = await sqlite();
  try {
    const db = new Database(file, { fileMustExist: true, timeout: busyMs });
    db.pragma('synchronous = FULL');
    return db;
  } catch (err) {
    throw new StorageError(`cannot write the AI usage store ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export type WindowKind = 'hour' | 'day' | 'week' | 'month';
export const WINDOWS: readonly WindowKind[] = ['hour', 'day', 'week', 'month'];
export type GroupBy = 'service' | 'model' | 'source';
export const GROUPS: readonly GroupBy[] = ['service', 'model', 'source'];

const HOUR = 3_600_000;

export interface Window {
  label: string;
  startMs: number;
  endMs: number;
}

/** The window holding `nowMs` (up to now) and the whole one before it, in local time. */
export function windows(kind: WindowKind, nowMs: number): { current: Window; previous: Window } {
  const now = new Date(nowMs);
  const y = now.getFullYear();
  const m = now.getMonth();
  const d = now.getDate();
  let start: number;
  let prev: number;
  let labels: [string, string];
  switch (kind) {
    case 'hour':
      start = new Date(y, m, d, now.getHours()).getTime();
      prev = start - HOUR;
      labels = ['this hour', 'last hour'];
      break;
    case 'day':
      start = new Date(y, m, d).getTime();
      prev = new Date(y, m, d - 1).getTime();
      labels = ['today', 'yesterday'];
      break;
    case 'week': {
      const back = (now.getDay() + 6) % 7; // days since Monday
      start = new Date(y, m, d - back).getTime();
      prev = new Date(y, m, d - back - 7).getTime();
      labels = ['this week', 'last week'];
      break;
    }
    case 'month':
      start = new Date(y, m, 1).getTime();
      prev = new Date(y, m - 1, 1).getTime();
      labels = ['this month', 'last month'];
      break;
  }
  return {
    current: { label: labels[0], startMs: start, endMs: nowMs },
    previous: { label: labels[1], startMs: prev, endMs: start },
  };
}

export interface Totals {
  requests: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  unpricedRequests: number;
  unpricedTokens: number;
  cacheSavingsUsd: number;
  /** cache read / all input (uncached + cache read + cache write); null without input. */
  cacheHitRatio: number | null;
}

const SUMS = `COALESCE(SUM(requests), 0) AS requests,
  COALESCE(SUM(cost_usd), 0) AS costUsd,
  COALESCE(SUM(input_tokens), 0) AS inputTokens,
  COALESCE(SUM(output_tokens), 0) AS outputTokens,
  COALESCE(SUM(cache_read_tokens), 0) AS cacheReadTokens,
  COALESCE(SUM(cache_write_5m_tokens), 0) AS cacheWrite5mTokens,
  COALESCE(SUM(cache_write_1h_tokens), 0) AS cacheWrite1hTokens,
  COALESCE(SUM(unpriced_requests), 0) AS unpricedRequests,
  COALESCE(SUM(unpriced_tokens), 0) AS unpricedTokens,
  COALESCE(SUM(cache_savings_usd), 0) AS cacheSavingsUsd`;

type Row = Omit<Totals, 'cacheHitRatio'>;

function withRatio(r: Row): Totals {
  const allInput = r.inputTokens + r.cacheReadTokens + r.cacheWrite5mTokens + r.cacheWrite1hTokens;
  return { ...r, cacheHitRatio: allInput > 0 ? r.cacheReadTokens / allInput : null };
}

const EMPTY: Row = {
  requests: 0,
  costUsd: 0,
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWrite5mTokens: 0,
  cacheWrite1hTokens: 0,
  unpricedRequests: 0,
  unpricedTokens: 0,
  cacheSavingsUsd: 0,
};

/** The rollup hours a window covers: from the hour holding its start to its end. */
function hourRange(w: Window): [number, number] {
  return [Math.floor(w.startMs / HOUR) * HOUR, w.endMs];
}

function sums(db: Database, w: Window): Totals {
  const row = db
    .prepare(`SELECT ${SUMS} FROM rollups_hourly WHERE hour_ms >= ? AND hour_ms < ?`)
    .get(...hourRange(w)) as Row;
  return withRatio(row);
}

function grouped(db: Database, w: Window, by: GroupBy): Map<string, Totals> {
  const rows = db
    .prepare(
      `SELECT ${by} AS key, ${SUMS} FROM rollups_hourly WHERE hour_ms >= ? AND hour_ms < ? GROUP BY ${by}`,
    )
    .all(...hourRange(w)) as (Row & { key: string })[];
  return new Map(rows.map(({ key, ...r }) => [key, withRatio(r)]));
}

export interface CostReport {
  window: WindowKind;
  by: GroupBy;
  store: string;
  current: Window & Totals;
  previous: Window & Totals;
  /** current − previous spend. */
  changeUsd: number;
  breakdown: { key: string; current: Totals; previous: Totals }[];
  /** Models with unpriced requests in the current window: not in its spend. */
  unpriced: { model: string; requests: number; tokens: number }[];
}

export function costReport(
  db: Database,
  opts: { window: WindowKind; by: GroupBy; nowMs: number; store: string },
): CostReport {
  const { current, previous } = windows(opts.window, opts.nowMs);
  const cur = sums(db, current);
  const prev = sums(db, previous);
  const curBy = grouped(db, current, opts.by);
  const prevBy = grouped(db, previous, opts.by);
  const keys = new Set([...curBy.keys(), ...prevBy.keys()]);
  const breakdown = [...keys]
    .map((key) => ({
      key,
      current: curBy.get(key) ?? withRatio(EMPTY),
      previous: prevBy.get(key) ?? withRatio(EMPTY),
    }))
    .sort(
      (a, b) =>
        b.current.costUsd - a.current.costUsd ||
        b.previous.costUsd - a.previous.costUsd ||
        b.current.requests - a.current.requests ||
        a.key.localeCompare(b.key),
    );
  const unpriced = (
    db
      .prepare(
        `SELECT model, SUM(unpriced_requests) AS requests, SUM(unpriced_tokens) AS tokens
         FROM rollups_hourly WHERE hour_ms >= ? AND hour_ms < ?
         GROUP BY model HAVING SUM(unpriced_requests) > 0 ORDER BY requests DESC, model`,
      )
      .all(...hourRange(current)) as { model: string; requests: number; tokens: number }[]
  ).map((r) => ({ ...r }));
  return {
    window: opts.window,
    by: opts.by,
    store: opts.store,
    current: { ...current, ...cur },
    previous: { ...previous, ...prev },
    changeUsd: cur.costUsd - prev.costUsd,
    breakdown,
    unpriced,
  };
}

/** Spend today, this week and this month (for `lookout status`). */
export function spendSummary(
  db: Database,
  nowMs: number,
): { label: string; costUsd: number; unpricedRequests: number }[] {
  return (['day', 'week', 'month'] as const).map((k) => {
    const w = windows(k, nowMs).current;
    const t = sums(db, w);
    return { label: w.label, costUsd: t.costUsd, unpricedRequests: t.unpricedRequests };
  });
}

/** Models with unpriced requests anywhere in the store (for `lookout check`). */
export function unpricedModels(
  db: Database,
): { model: string; requests: number; tokens: number; firstMs: number; lastMs: number }[] {
  return db
    .prepare(
      `SELECT model, SUM(unpriced_requests) AS requests, SUM(unpriced_tokens) AS tokens,
              MIN(hour_ms) AS firstMs, MAX(hour_ms) + ${HOUR} AS lastMs
       FROM rollups_hourly WHERE unpriced_requests > 0
       GROUP BY model ORDER BY requests DESC, model`,
    )
    .all() as {
    model: string;
    requests: number;
    tokens: number;
    firstMs: number;
    lastMs: number;
  }[];
}

// ---- formatting

export function usd(v: number): string {
  const sign = v < 0 ? '-' : '';
  const a = Math.abs(v);
  if (a === 0) return '$0.00';
  if (a < 0.01) return `${sign}$${a.toPrecision(2)}`;
  return `${sign}$${a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

function signedUsd(v: number): string {
  return v > 0 ? `+${usd(v)}` : v < 0 ? usd(v) : '±$0.00';
}

export function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function ratio(r: number | null): string {
  return r === null ? 'n/a' : `${(r * 100).toFixed(1)} %`;
}

function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function pad(rows: string[][], right: boolean[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function tokens(t: Totals): number {
  return (
    t.inputTokens + t.outputTokens + t.cacheReadTokens + t.cacheWrite5mTokens + t.cacheWrite1hTokens
  );
}

/** The report as a person reads it at a terminal. */
export function formatReport(r: CostReport): string {
  const c = r.current;
  const p = r.previous;
  let text = `AI spend ${c.label}: ${usd(c.costUsd)} vs ${usd(p.costUsd)} ${p.label} (${signedUsd(r.changeUsd)})\n`;
  text += `  window     ${c.label} from ${localTime(c.startMs)} to now; ${p.label} ${localTime(p.startMs)} to ${localTime(p.endMs)} (local time)\n`;
  text += `  requests   ${count(c.requests)} vs ${count(p.requests)}\n`;
  text += `  tokens     input ${count(c.inputTokens)}, output ${count(c.outputTokens)}, cache read ${count(c.cacheReadTokens)}, cache write ${count(c.cacheWrite5mTokens + c.cacheWrite1hTokens)}\n`;
  text += `  cache      hit ratio ${ratio(c.cacheHitRatio)} vs ${ratio(p.cacheHitRatio)}; caching saved ${usd(c.cacheSavingsUsd)} vs ${usd(p.cacheSavingsUsd)}\n`;
  if (r.unpriced.length > 0) {
    const models = r.unpriced.map((u) => `${u.model} (${count(u.requests)})`).join(', ');
    text += `  UNPRICED   ${count(c.unpricedRequests)} request(s), ${count(c.unpricedTokens)} tokens, not in the spend: ${models}\n`;
    text += `             add them to collectors.aicost.pricing_file, then run lookout cost reprice\n`;
  }
  if (r.breakdown.length === 0) {
    text += `\nNo AI usage stored for ${c.label} or ${p.label}.\n`;
    return text;
  }
  const head = r.by.toUpperCase();
  const rows = [
    [head, 'SPEND', p.label.toUpperCase(), 'CHANGE', 'REQUESTS', 'TOKENS', 'CACHE HIT', 'UNPRICED'],
    ...r.breakdown.map((b) => [
      b.key,
      usd(b.current.costUsd),
      usd(b.previous.costUsd),
      signedUsd(b.current.costUsd - b.previous.costUsd),
      count(b.current.requests),
      count(tokens(b.current)),
      ratio(b.current.cacheHitRatio),
      b.current.unpricedRequests > 0 ? count(b.current.unpricedRequests) : '',
    ]),
  ];
  text += `\nBy ${r.by}, ${c.label}\n`;
  text += pad(rows, [false, true, true, true, true, true, true, true]);
  return text;
}

// ---- repricing

export interface RepriceResult {
  examined: number;
  priced: number;
  costUsd: number;
  /** Models still unpriced among the examined events, with their event counts. */
  stillUnpriced: { model: string; events: number }[];
}

interface UnpricedEvent {
  rowid: number;
  id: string;
  time_ms: number;
  service: string;
  model: string;
  provider: string;
  source: string;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_5m_tokens: number;
  cache_write_1h_tokens: number;
}

/**
 * Prices the stored events that were unpriced (from `sinceMs` on) with `table`, each at
 * its own time's price, in transactions of `batch` events: the event gets its cost,
 * `priced` and the entry that priced it; its hour's rollup gains the cost and the cache
 * savings and loses it from the unpriced counts; the all-time totals (when the store has
 * them) gain the cost. Events already priced or reported keep their cost: counters that
 * were exported never go down, so a price correction applies to events from its `from`
 * date on. Events pruned by retention are only in the rollups and stay unpriced there.
 */
export function reprice(
  db: Database,
  table: PricingTable,
  opts: { sinceMs: number; batch?: number },
): RepriceResult {
  const batch = opts.batch ?? 1000;
  const hasTotals =
    db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'totals'`).get() !==
    undefined;
  // By rowid through the partial index on unpriced events: each batch starts where the
  // last ended, so a store of many unpriced events is read once, not once per batch.
  const select = db.prepare(
    `SELECT rowid, id, time_ms, service, model, provider, source, input_tokens, output_tokens,
            cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens
     FROM events
     WHERE cost_source = 'unpriced' AND rowid > ? AND time_ms >= ?
     ORDER BY rowid LIMIT ?`,
  );
  const setEvent = db.prepare(
    `UPDATE events SET cost_usd = ?, cost_source = 'priced', priced_as = ?
     WHERE id = ? AND cost_source = 'unpriced'`,
  );
  const setRollup = db.prepare(
    `UPDATE rollups_hourly
     SET cost_usd = cost_usd + ?, cache_savings_usd = cache_savings_usd + ?,
         unpriced_requests = MAX(0, unpriced_requests - ?),
         unpriced_tokens = MAX(0, unpriced_tokens - ?)
     WHERE hour_ms = ? AND service = ? AND model = ? AND source = ?`,
  );
  const setTotal = hasTotals
    ? db.prepare(
        `UPDATE totals SET cost_usd = cost_usd + ? WHERE service = ? AND model = ? AND source = ?`,
      )
    : undefined;
  const result: RepriceResult = { examined: 0, priced: 0, costUsd: 0, stillUnpriced: [] };
  const still = new Map<string, number>();
  let cursor = 0;
  const runBatch = db.transaction((events: UnpricedEvent[]) => {
    // A batch's changes to one rollup row (or one totals row) are summed and written once.
    const rollups = new Map<
      string,
      { e: UnpricedEvent; hour: number; cost: number; saved: number; n: number; tokens: number }
    >();
    for (const e of events) {
      const buckets = {
        input: e.input_tokens,
        output: e.output_tokens,
        cacheRead: e.cache_read_tokens,
        cacheWrite5m: e.cache_write_5m_tokens,
        cacheWrite1h: e.cache_write_1h_tokens,
      };
      const p = table.price({ model: e.model, provider: e.provider, timeMs: e.time_ms, buckets });
      if (p === undefined) {
        still.set(e.model, (still.get(e.model) ?? 0) + 1);
        continue;
      }
      if (setEvent.run(p.costUsd, p.pricedAs, e.id).changes !== 1) continue;
      const hour = Math.floor(e.time_ms / HOUR) * HOUR;
      const key = JSON.stringify([hour, e.service, e.model, e.source]);
      const r = rollups.get(key) ?? { e, hour, cost: 0, saved: 0, n: 0, tokens: 0 };
      r.cost += p.costUsd;
      r.saved += p.cacheSavingsUsd;
      r.n++;
      r.tokens +=
        buckets.input +
        buckets.output +
        buckets.cacheRead +
        buckets.cacheWrite5m +
        buckets.cacheWrite1h;
      rollups.set(key, r);
      result.priced++;
      result.costUsd += p.costUsd;
    }
    const totals = new Map<string, { e: UnpricedEvent; cost: number }>();
    for (const r of rollups.values()) {
      setRollup.run(r.cost, r.saved, r.n, r.tokens, r.hour, r.e.service, r.e.model, r.e.source);
      const key = JSON.stringify([r.e.service, r.e.model, r.e.source]);
      const t = totals.get(key) ?? { e: r.e, cost: 0 };
      t.cost += r.cost;
      totals.set(key, t);
    }
    if (setTotal)
      for (const t of totals.values()) setTotal.run(t.cost, t.e.service, t.e.model, t.e.source);
  });
  for (;;) {
    const rows = select.all(cursor, opts.sinceMs, batch) as UnpricedEvent[];
    if (rows.length === 0) break;
    runBatch(rows);
    result.examined += rows.length;
    cursor = rows[rows.length - 1]!.rowid;
  }
  result.stillUnpriced = [...still]
    .map(([model, events]) => ({ model, events }))
    .sort((a, b) => b.events - a.events || a.model.localeCompare(b.model));
  return result;
}
