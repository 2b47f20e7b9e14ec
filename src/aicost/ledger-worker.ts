/**
 * The thread that owns the AI-usage database (src/aicost/schema.ts): every statement runs
 * here, so a commit (an fsync, milliseconds) never holds up the event loop that answers
 * scrapes. better-sqlite3 is synchronous, which is what makes group commit simple: write
 * requests that arrive while a transaction runs queue in this thread's message port, and
 * the next turn takes all of them into one transaction. Each request is answered only
 * after its transaction has committed (WAL, synchronous=FULL: on disk).
 *
 * Messages in: open, write, seed, totals, probe, prune, close (see ledger.ts, the other side).
 */
import { parentPort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { RouteItemResult } from '../collectors/collector.js';
import { ingestAnswer } from './answer.js';
import { checkEvent, problemText, type StoredEvent } from './event.js';
import { loadPricing, type PricingTable } from './pricing.js';
import { DDL, SCHEMA_VERSION } from './schema.js';
import type {
  IngestCountRow,
  IngestReply,
  IngestRequest,
  StoredSums,
  LedgerReply,
  LedgerRequest,
  OpenOptions,
  RowValue,
  SeedResult,
  TailPositionRow,
  TotalsRow,
  WireWrite,
} from './ledger.js';
import { encodeRows, ROW_WIDTH } from './ledger.js';

const port = parentPort!;
let db: Database.Database | undefined;
let opts: OpenOptions | undefined;
let statements: ReturnType<typeof prepare> | undefined;
/** A body checked here: its items, the answers of the ones refused, and which item each stored event is. */
interface Checked {
  items: number;
  rejected: (RouteItemResult | undefined)[];
  at: number[];
  rejectedBy: Record<string, number>;
}
const pending: { seq: number; req: WireWrite; checked?: Checked }[] = [];
let pricing: PricingTable | undefined;
/** The source label values the counters know (see IngestRequest.knownSources). */
let knownSources = new Set<string>();
const OTHER = 'other';
let flushScheduled = false;
/** Events in `pending`: at FLUSH_AT, the transaction runs without waiting for the turn's end. */
let pendingEvents = 0;
let pruneTimer: NodeJS.Timeout | undefined;
let pruning = false;

/**
 * A transaction starts once this many events wait, before the rest of the messages
 * already queued are parsed: their senders' answers then leave while those are parsed
 * and stored, and their next bodies arrive meanwhile. One transaction for every queued
 * body would answer all the clients at once and leave the worker waiting for all of them
 * (docs/performance.md, "AI cost"). Single events still share a transaction per turn.
 */
const FLUSH_AT = 1000;
/** Raw events deleted per transaction while pruning: writes get a turn between batches. */
const PRUNE_BATCH = 5000;
/** Free pages given back to the filesystem per incremental_vacuum step. */
const VACUUM_PAGES = 2000;
/**
 * Checkpoints (copying committed pages from the WAL into the database file, with an
 * fsync of each) run between transactions, once the answers are sent and no write
 * waits, at most this often: SQLite's own runs inside the COMMIT that fills the WAL to
 * its threshold, and that commit's answers waited for it (docs/performance.md, "AI cost").
 */
const CHECKPOINT_EVERY_MS = 250;
/** SQLite's own checkpoint, in WAL pages, left as the bound when writes never pause. */
const AUTOCHECKPOINT_PAGES = 8000;

function reply(r: LedgerReply): void {
  port.postMessage(r);
}

/** A store lookout cannot use as it is: the message says why and what to do. */
class LedgerFileError extends Error {
  readonly code = 'LOOKOUT_LEDGER_UNUSABLE';
}

function open(o: OpenOptions): void {
  const d = new Database(o.file, { timeout: o.busyTimeoutMs });
  try {
    const fresh =
      (
        d.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as {
          n: number;
        }
      ).n === 0;
    // Only a file without tables can switch to incremental vacuum without a full VACUUM.
    if (fresh) d.pragma('auto_vacuum = INCREMENTAL');
    d.pragma('journal_mode = WAL');
    d.pragma('synchronous = FULL');
    d.pragma(`cache_size = -${o.cacheKiB}`);
    d.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    const version = fresh
      ? undefined
      : (d.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
          { value: string } | undefined);
    if (version !== undefined && Number(version.value) > SCHEMA_VERSION) {
      throw new LedgerFileError(
        `${o.file} has store schema version ${version.value}, written by a newer lookout; this one knows version ${SCHEMA_VERSION} and will not change it. Run the newer lookout, or point storage.path at another directory`,
      );
    }
    d.exec(DDL);
    d.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)").run(
      String(SCHEMA_VERSION),
    );
  } catch (err) {
    d.close();
    throw err;
  }
  db = d;
  opts = o;
  statements = prepare(d);
  pruneTimer = setInterval(() => prune(), o.pruneEveryMs);
  pruneTimer.unref();
  // A first pass soon after start, not during it: start-up is what /metrics waits for.
  setTimeout(() => prune(), Math.min(o.pruneEveryMs, 60_000)).unref();
}

/** The columns a rollup row and a totals row add up (the rollup also sums cache savings). */
const SUMMED = [
  'requests',
  'unpriced_requests',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_write_5m_tokens',
  'cache_write_1h_tokens',
  'unpriced_tokens',
  'cost_usd',
];

/** An upsert's SET list that adds what the conflicting insert brought to what is there. */
function addedUp(columns: readonly string[]): string {
  return columns.map((c) => `${c} = ${c} + excluded.${c}`).join(', ');
}

/**
 * Rows per INSERT: each statement run has a fixed cost (binding, running the program,
 * the result object), which a multi-row INSERT shares; 50 rows of 17 values stay well
 * inside SQLite's limit on bound values (32,766).
 */
const CHUNK = 50;
const ROW = `(${new Array(ROW_WIDTH).fill('?').join(',')})`;

function prepare(d: Database.Database) {
  const inserts = new Map<number, Database.Statement>();
  return {
    /** INSERT OR IGNORE of `n` events (1 to CHUNK), made on first use. */
    insert(n: number): Database.Statement {
      let st = inserts.get(n);
      if (st === undefined) {
        st =
          d.prepare(`INSERT OR IGNORE INTO events (id, time_ms, received_ms, service, model, provider,
          operation, source, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,
          cache_write_1h_tokens, cost_usd, cost_source, priced_as, raw_usage)
          VALUES ${new Array(n).fill(ROW).join(',')}`);
        inserts.set(n, st);
      }
      return st;
    },
    /** The ids of the rows added after rowid ?, in order. */
    idsAfter: d.prepare('SELECT id FROM events WHERE rowid > ? ORDER BY rowid').pluck(),
    rollup:
      d.prepare(`INSERT INTO rollups_hourly (hour_ms, service, model, source, requests, unpriced_requests,
      input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
      unpriced_tokens, cost_usd, cache_savings_usd) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
      ON CONFLICT (hour_ms, service, model, source) DO UPDATE SET
        ${addedUp([...SUMMED, 'cache_savings_usd'])}`),
    total: d.prepare(`INSERT INTO totals (service, model, source, requests, unpriced_requests,
      input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
      unpriced_tokens, cost_usd) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
      ON CONFLICT (service, model, source) DO UPDATE SET ${addedUp(SUMMED)}`),
    count: d.prepare(`INSERT INTO ingest_counts (kind, key, result, n) VALUES (?,?,?,?)
      ON CONFLICT (kind, key, result) DO UPDATE SET n = n + excluded.n`),
    tail: d.prepare(
      'INSERT OR REPLACE INTO tail_positions (path, dev, ino, offset, state) VALUES (?,?,?,?,?)',
    ),
    probe: d.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_probe', ?)"),
    totals: d.prepare(
      `SELECT service, model, source, requests, unpriced_requests AS unpricedRequests,
        input_tokens AS input, output_tokens AS output, cache_read_tokens AS cacheRead,
        cache_write_5m_tokens AS cacheWrite5m, cache_write_1h_tokens AS cacheWrite1h,
        unpriced_tokens AS unpricedTokens, cost_usd AS cost FROM totals ORDER BY rowid`,
    ),
  };
}

/** Sums of one rollup or totals key within a transaction. */
interface Sums {
  requests: number;
  unpricedRequests: number;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  unpricedTokens: number;
  cost: number;
  savings: number;
}

function zero(): Sums {
  return {
    requests: 0,
    unpricedRequests: 0,
    input: 0,
    output: 0,
    cacheRead: 0,
    cacheWrite5m: 0,
    cacheWrite1h: 0,
    unpricedTokens: 0,
    cost: 0,
    savings: 0,
  };
}

/** Adds the event at `r[b]` (a row of a write message, see encodeRows), whose cache reads saved `savings`, to `s`. */
function addRow(s: Sums, r: RowValue[], b: number, savings: number): void {
  const input = r[b + 8] as number;
  const output = r[b + 9] as number;
  const cacheRead = r[b + 10] as number;
  const cacheWrite5m = r[b + 11] as number;
  const cacheWrite1h = r[b + 12] as number;
  const cost = r[b + 13] as number | null;
  s.requests++;
  s.input += input;
  s.output += output;
  s.cacheRead += cacheRead;
  s.cacheWrite5m += cacheWrite5m;
  s.cacheWrite1h += cacheWrite1h;
  if (cost === null) {
    s.unpricedRequests++;
    s.unpricedTokens += input + output + cacheRead + cacheWrite5m + cacheWrite1h;
  } else s.cost += cost;
  s.savings += savings;
}

function addSums(to: Sums, from: Sums): void {
  to.requests += from.requests;
  to.unpricedRequests += from.unpricedRequests;
  to.input += from.input;
  to.output += from.output;
  to.cacheRead += from.cacheRead;
  to.cacheWrite5m += from.cacheWrite5m;
  to.cacheWrite1h += from.cacheWrite1h;
  to.unpricedTokens += from.unpricedTokens;
  to.cost += from.cost;
  to.savings += from.savings;
}

function sumsArgs(s: Sums): number[] {
  return [
    s.requests,
    s.unpricedRequests,
    s.input,
    s.output,
    s.cacheRead,
    s.cacheWrite5m,
    s.cacheWrite1h,
    s.unpricedTokens,
    s.cost,
  ];
}

/** The events stored for one service, model and source: their sums, and by hour. */
interface Group {
  service: string;
  model: string;
  source: string;
  s: Sums;
  hours: Map<number, Sums>;
}

/**
 * Groups by service, model and source, in the order first asked for (the order totals
 * rows are made in, which is the order label caps admit values): found through a map per
 * level, so an event costs three lookups and no key string.
 */
class Groups {
  private readonly tree = new Map<string, Map<string, Map<string, Group>>>();
  readonly list: Group[] = [];

  get(service: string, model: string, source: string): Group {
    let models = this.tree.get(service);
    if (models === undefined) this.tree.set(service, (models = new Map()));
    let sources = models.get(model);
    if (sources === undefined) models.set(model, (sources = new Map()));
    let g = sources.get(source);
    if (g === undefined) {
      g = { service, model, source, s: zero(), hours: new Map() };
      sources.set(source, g);
      this.list.push(g);
    }
    return g;
  }

  /** Adds what `g` (of another Groups) holds. */
  merge(g: Group): void {
    const to = this.get(g.service, g.model, g.source);
    addSums(to.s, g.s);
    for (const [hour, s] of g.hours) {
      const h = to.hours.get(hour);
      if (h === undefined) to.hours.set(hour, { ...s });
      else addSums(h, s);
    }
  }
}

/**
 * Inserts a write's `n` events, CHUNK to a statement, and marks in `inserted` the ones
 * stored now; the others' ids were there already (or earlier in the same write).
 */
function insertAll(r: RowValue[], n: number, inserted: Uint8Array): void {
  const st = statements!;
  for (let from = 0; from < n; from += CHUNK) {
    const k = Math.min(CHUNK, n - from);
    const args = k === n ? r : r.slice(from * ROW_WIDTH, (from + k) * ROW_WIDTH);
    const { changes, lastInsertRowid } = st.insert(k).run(args);
    if (changes === k) {
      inserted.fill(1, from, from + k);
      continue;
    }
    if (changes === 0) continue;
    // Some were duplicates. A new row takes the largest rowid + 1, so the rows this
    // statement added are the `changes` rowids up to lastInsertRowid, and their ids say
    // which: each at its first occurrence here (a later one is a duplicate of it).
    const fresh = new Set(st.idsAfter.all(Number(lastInsertRowid) - changes) as string[]);
    for (let i = from; i < from + k; i++) {
      if (fresh.delete(r[i * ROW_WIDTH] as string)) inserted[i] = 1;
    }
  }
}

/** What one write request of a transaction stored. */
interface Stored {
  inserted: Uint8Array;
  groups: Groups;
  /** Duplicates by source, when there were any. */
  duplicate: Map<string, number> | undefined;
  /** provider and model of each distinct unpriced model stored now. */
  unpriced: Map<string, [string, string]> | undefined;
}

/** One transaction for every write request waiting now. */
function flush(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const group = pending.splice(0, pending.length);
  pendingEvents = 0;
  const st = statements!;
  const results: Stored[] = [];
  try {
    db!
      .transaction(() => {
        const all = new Groups();
        const counts = new Map<string, { key: string[]; n: number }>();
        const count = (kind: string, key: string, result: string, n: number) => {
          if (n === 0) return;
          const k = `${kind}\u0000${key}\u0000${result}`;
          const c = counts.get(k);
          if (c) c.n += n;
          else counts.set(k, { key: [kind, key, result], n });
        };
        for (const { req } of group) {
          const r = req.rows;
          const inserted = new Uint8Array(req.count);
          insertAll(r, req.count, inserted);
          const groups = new Groups();
          let stored = 0;
          let duplicate: Map<string, number> | undefined;
          let unpriced: Map<string, [string, string]> | undefined;
          for (let i = 0; i < req.count; i++) {
            const b = i * ROW_WIDTH;
            const source = r[b + 7] as string;
            if (inserted[i] === 0) {
              duplicate ??= new Map();
              duplicate.set(source, (duplicate.get(source) ?? 0) + 1);
              continue;
            }
            stored++;
            const model = r[b + 4] as string;
            const g = groups.get(r[b + 3] as string, model, source);
            const time = r[b + 1] as number;
            const hour = time - (time % 3_600_000);
            let h = g.hours.get(hour);
            if (h === undefined) g.hours.set(hour, (h = zero()));
            addRow(h, r, b, req.savings[i]!);
            if (r[b + 13] === null) {
              const provider = r[b + 5] as string;
              unpriced ??= new Map();
              unpriced.set(`${provider}/${model}`, [provider, model]);
            }
          }
          for (const g of groups.list) {
            for (const h of g.hours.values()) addSums(g.s, h);
            all.merge(g);
            count('events', g.source, 'accepted', g.s.requests);
          }
          for (const [source, n] of duplicate ?? []) count('events', source, 'duplicate', n);
          for (const [source, n] of Object.entries(req.rejected ?? {})) {
            count('events', source, 'rejected', n);
          }
          if (req.jsonl) {
            const j = req.jsonl;
            count('jsonl', j.file, 'stored', stored);
            count('jsonl', j.file, 'duplicate', req.count - stored);
            count('jsonl', j.file, 'rejected', j.rejected);
            const p = j.position;
            st.tail.run(j.file, p.dev, p.ino, p.offset, JSON.stringify(p));
          }
          results.push({ inserted, groups, duplicate, unpriced });
        }
        for (const { service, model, source, s, hours } of all.list) {
          for (const [hour, h] of hours) {
            st.rollup.run(hour, service, model, source, ...sumsArgs(h), h.savings);
          }
          st.total.run(service, model, source, ...sumsArgs(s));
        }
        for (const { key, n } of counts.values()) st.count.run(...key, n);
      })
      .immediate();
  } catch (err) {
    const e = err as Error & { code?: string };
    replyAll(group.map(({ seq }) => ({ seq, error: e.message, code: e.code })));
    return;
  }
  replyAll(
    group.map(({ seq, req, checked }, i): LedgerReply => {
      const done = results[i]!;
      if (checked === undefined) return { seq, inserted: done.inserted };
      return { seq, ingested: ingested(req, checked, done) };
    }),
  );
  walDirty = true;
  scheduleCheckpoint();
}

let walDirty = false;
let lastCheckpoint = 0;
let checkpointTimer: NodeJS.Timeout | undefined;

function scheduleCheckpoint(): void {
  if (checkpointTimer !== undefined) return;
  const wait = Math.max(0, lastCheckpoint + CHECKPOINT_EVERY_MS - Date.now());
  checkpointTimer = setTimeout(() => {
    // A turn later, after the messages that came meanwhile are taken in: a write waiting
    // goes first, and its flush asks again.
    setImmediate(() => {
      checkpointTimer = undefined;
      if (db === undefined || !walDirty) return;
      if (pending.length > 0) return;
      walDirty = false;
      lastCheckpoint = Date.now();
      try {
        db.pragma('wal_checkpoint(PASSIVE)');
      } catch (err) {
        // SQLite's own checkpoint still runs when the WAL reaches its bound.
        reply({
          seq: -1,
          log: `checkpointing the AI usage store failed: ${(err as Error).message}`,
        });
      }
    });
  }, wait);
  checkpointTimer.unref();
}

/** The answers of one transaction: one message (each wakes the event loop and costs it). */
function replyAll(replies: LedgerReply[]): void {
  reply(replies.length === 1 ? replies[0]! : { seq: -2, replies });
}

/** The shapes a body may take: one event, an array of them, or `{ events: [...] }`. */
function itemsOf(
  body: unknown,
  maxBatch: number,
): { items: unknown[]; single: boolean } | Extract<IngestReply, { refused: unknown }> {
  const shape = {
    refused: {
      status: 400,
      message: 'the body does not match what this route takes',
      problems: [
        {
          path: '(top level)',
          message: 'expected one event (an object), an array of events, or {"events": [...]}',
        },
      ],
    },
  };
  let items: unknown[];
  let single = false;
  if (Array.isArray(body)) items = body;
  else if (typeof body !== 'object' || body === null) return shape;
  else if ('events' in body && Object.keys(body).length === 1) {
    const events = (body as { events: unknown }).events;
    if (!Array.isArray(events)) {
      return {
        refused: {
          status: 400,
          message: 'the body does not match what this route takes',
          problems: [{ path: 'events', message: 'expected an array of events' }],
        },
      };
    }
    items = events;
  } else {
    items = [body];
    single = true;
  }
  if (items.length === 0) return { refused: { status: 400, message: 'the batch holds no events' } };
  if (items.length > maxBatch) {
    return {
      refused: {
        status: 413,
        message: `the batch holds ${items.length} events; send at most ${maxBatch} per request (collectors.aicost.max_batch)`,
      },
    };
  }
  return { items, single };
}

/**
 * Parses and checks a body of events (see collectors/aicost.ts): queued for the next
 * transaction, or refused as a whole now.
 */
function ingest(seq: number, req: IngestRequest): void {
  if (req.knownSources) knownSources = new Set(req.knownSources);
  const text = Buffer.from(req.raw.buffer, req.raw.byteOffset, req.raw.byteLength).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch (err) {
    reply({
      seq,
      ingested: {
        refused: { status: 400, message: `the body is not valid JSON: ${(err as Error).message}` },
      },
    });
    return;
  }
  const shaped = itemsOf(body, req.maxBatch);
  if ('refused' in shaped) {
    reply({ seq, ingested: shaped });
    return;
  }
  const { items, single } = shaped;
  const check = {
    now: req.now,
    retentionMs: opts!.retentionMs,
    defaultSource: 'http',
    pricing: pricing!,
  };
  const rejected: (RouteItemResult | undefined)[] = new Array(items.length);
  const events: StoredEvent[] = [];
  const at: number[] = [];
  const rejectedBy: Record<string, number> = {};
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const c = checkEvent(item, check);
    if (c.ok) {
      events.push(c.event);
      at.push(i);
      continue;
    }
    if (single) {
      reply({
        seq,
        ingested: {
          refused: { status: 400, message: 'the event is not valid', problems: c.problems },
        },
      });
      return;
    }
    const id = (item as { id?: unknown } | null)?.id;
    rejected[i] = {
      ...(typeof id === 'string' ? { id } : {}),
      result: 'rejected',
      reason: problemText(c.problems),
    };
    const s = (item as { source?: unknown } | null)?.source;
    const named = typeof s === 'string' ? s : 'http';
    const source = knownSources.has(named) ? named : OTHER;
    rejectedBy[source] = (rejectedBy[source] ?? 0) + 1;
  }
  queue({
    seq,
    req: { ...encodeRows(events), count: events.length, rejected: rejectedBy },
    checked: { items: items.length, rejected, at, rejectedBy },
  });
}

/** Queues a write for the next transaction, which runs now once FLUSH_AT events wait. */
function queue(entry: (typeof pending)[number]): void {
  pending.push(entry);
  pendingEvents += entry.req.count;
  if (pendingEvents >= FLUSH_AT) flush();
  else scheduleFlush();
}

/** The answer and the counters' additions for a checked body, after its commit. */
function ingested(req: WireWrite, c: Checked, done: Stored): IngestReply {
  const counts: [string, 'accepted' | 'duplicate' | 'rejected', number][] = [];
  const accepted = new Map<string, number>();
  for (const g of done.groups.list)
    accepted.set(g.source, (accepted.get(g.source) ?? 0) + g.s.requests);
  for (const [source, n] of accepted) counts.push([source, 'accepted', n]);
  for (const [source, n] of done.duplicate ?? []) counts.push([source, 'duplicate', n]);
  for (const [source, n] of Object.entries(c.rejectedBy)) counts.push([source, 'rejected', n]);
  const r = req.rows;
  return {
    answer: ingestAnswer(
      c.items,
      c.rejected,
      c.at,
      (k) => r[k * ROW_WIDTH] as string,
      done.inserted,
    ),
    stored: done.groups.list.map(({ service, model, source, s }): StoredSums => {
      const { savings, ...sums } = s;
      void savings;
      return { service, model, source, ...sums };
    }),
    counts,
    unpriced: [...(done.unpriced?.values() ?? [])],
  };
}

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  // After every message already queued is taken in: they share the transaction.
  setImmediate(flush);
}

/** The totals table, in the order each combination was first stored: the order label caps admit values. */
function totals(): TotalsRow[] {
  return statements!.totals.all() as TotalsRow[];
}

function seed(): SeedResult {
  const d = db!;
  return {
    totals: totals(),
    counts: d.prepare('SELECT kind, key, result, n FROM ingest_counts').all() as IngestCountRow[],
    tails: d.prepare('SELECT path, state FROM tail_positions').all() as TailPositionRow[],
  };
}

/**
 * Deletes raw events older than the retention, a batch per transaction with a turn for
 * writes between them, then hands the freed pages back to the filesystem the same way.
 * Rollups and totals stay: they are what totals and counters come from.
 */
function prune(): void {
  if (pruning || db === undefined || opts === undefined) return;
  pruning = true;
  const d = db;
  const cutoff = Date.now() - opts.retentionMs;
  const del = d.prepare(
    'DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE time_ms < ? LIMIT ?)',
  );
  let deleted = 0;
  const step = () => {
    if (db !== d) return;
    try {
      const n = del.run(cutoff, PRUNE_BATCH).changes;
      deleted += n;
      if (n === PRUNE_BATCH) {
        setImmediate(step);
        return;
      }
      vacuumStep(deleted);
    } catch (err) {
      pruning = false;
      reply({ seq: -1, log: `pruning old AI usage events failed: ${(err as Error).message}` });
    }
  };
  const vacuumStep = (done: number) => {
    if (db !== d) return;
    try {
      const free = d.pragma('freelist_count', { simple: true }) as number;
      if (free > 0) {
        d.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
        if (free > VACUUM_PAGES) {
          setImmediate(() => vacuumStep(done));
          return;
        }
      }
      pruning = false;
      if (done > 0) reply({ seq: -1, pruned: done });
    } catch (err) {
      pruning = false;
      reply({ seq: -1, log: `vacuuming the AI usage store failed: ${(err as Error).message}` });
    }
  };
  step();
}

port.on('message', (m: LedgerRequest) => {
  try {
    switch (m.op) {
      case 'open': {
        open(m.options);
        const seq = m.seq;
        loadPricing({ userFile: m.options.pricingFile }).then(
          (p) => {
            pricing = p;
            reply({ seq, ok: true });
          },
          (err: Error & { code?: string }) => reply({ seq, error: err.message, code: err.code }),
        );
        return;
      }
      case 'write':
        queue({ seq: m.seq, req: m.req });
        return;
      case 'ingest':
        ingest(m.seq, m.req);
        return;
      case 'ingests':
        for (const { seq, req } of m.each) {
          try {
            ingest(seq, req);
          } catch (err) {
            const e = err as Error & { code?: string };
            reply({ seq, error: e.message, code: e.code });
          }
        }
        return;
      case 'seed':
        reply({ seq: m.seq, seed: seed() });
        return;
      case 'totals':
        // After every write queued before it: its answer follows theirs.
        flush();
        reply({ seq: m.seq, totals: totals() });
        return;
      case 'probe':
        statements!.probe.run(new Date().toISOString());
        reply({ seq: m.seq, ok: true });
        return;
      case 'prune':
        prune();
        reply({ seq: m.seq, ok: true });
        return;
      case 'close':
        flush();
        clearInterval(pruneTimer);
        db?.close();
        db = undefined;
        reply({ seq: m.seq, ok: true });
        port.close();
        return;
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    reply({ seq: m.seq, error: e.message, code: e.code });
  }
});
