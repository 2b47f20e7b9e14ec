/**
 * The AI-usage ledger, main-thread side: a handle on the worker thread that owns the
 * SQLite store (ledger-worker.ts). `write()` resolves once the events are durable (their
 * transaction committed, WAL with synchronous=FULL), saying which were stored now and
 * which were there already (the event id is the primary key: duplicates are found on
 * disk, so memory stays bounded whatever the volume). Writes arriving while a commit runs
 * share the next transaction (group commit).
 */
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../lib/worker-heap.js';
import type { TailPosition } from '../lib/tail.js';
import type { StoredEvent } from './event.js';
import { DATABASE_FILE } from './schema.js';

export interface OpenOptions {
  file: string;
  /** Raw events older than this are pruned (rollups and totals are kept). */
  retentionMs: number;
  /** How often pruning (and the incremental vacuum after it) runs. */
  pruneEveryMs: number;
  /** How long a write waits for another writer's lock (`lookout cost reprice`). */
  busyTimeoutMs: number;
  /** SQLite's page cache, KiB. */
  cacheKiB: number;
  /** The user's pricing table (collectors.aicost.pricing_file), for events ingested in the worker. */
  pricingFile?: string;
}

/** A body of events as it came over HTTP, parsed, checked and priced in the worker. */
export interface IngestRequest {
  /** The body's bytes (transferred: the caller's view is emptied). */
  raw: Uint8Array;
  /** lookout's clock when the request came. */
  now: number;
  maxBatch: number;
  /** The source label values the counters know now, when they changed since the last ingest: a rejected event is counted under its source only if known, else `other`. */
  knownSources?: string[];
}

/** Sums of the events stored now for one service, model and source. */
export type StoredSums = Omit<TotalsRow, 'service' | 'model' | 'source'> & {
  service: string;
  model: string;
  source: string;
};

export type IngestReply =
  /** Refused as a whole (not JSON, not events, one invalid event, too many): nothing stored. */
  | { refused: { status: number; message: string; problems?: { path: string; message: string }[] } }
  | {
      /** The answer to send, made by batchAnswer(). */
      answer: { status: number; json: string };
      /** What the counters add: the events stored now by service, model and source, in the order first stored. */
      stored: StoredSums[];
      /** By source (the counters' label value, or the true one for accepted) and result. */
      counts: [source: string, result: 'accepted' | 'duplicate' | 'rejected', n: number][];
      /** provider and model of each distinct unpriced model stored now. */
      unpriced: [provider: string, model: string][];
    };

/** One write: events (validated and priced), what was rejected, and a JSONL position. */
export interface WriteRequest {
  events: StoredEvent[];
  /** Events refused before they reached the store, by source: counted in the same transaction. */
  rejected?: Record<string, number>;
  /** Lines of a followed JSONL file: its position is stored with their events. */
  jsonl?: { file: string; rejected: number; position: TailPosition };
}

export interface TotalsRow {
  service: string;
  model: string;
  source: string;
  requests: number;
  unpricedRequests: number;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  unpricedTokens: number;
  cost: number;
}

export interface IngestCountRow {
  kind: 'events' | 'jsonl';
  key: string;
  result: string;
  n: number;
}

export interface TailPositionRow {
  path: string;
  state: string;
}

export interface SeedResult {
  totals: TotalsRow[];
  counts: IngestCountRow[];
  tails: TailPositionRow[];
}

/** Values an event takes in a write message's rows, in this order (see encodeRows): the events table's columns. */
export const ROW_WIDTH = 17;
export type RowValue = string | number | null;

/**
 * A write as it crosses to the worker: the events as one flat array of values, ROW_WIDTH
 * each, in the order of the events table's columns (so a run of them binds a multi-row
 * INSERT as it is), and what each event's cache reads saved beside them. Cloning one
 * array of strings and numbers costs far less than cloning as many objects (with their
 * nested buckets), and makes less garbage on both sides.
 */
export type WireWrite = Omit<WriteRequest, 'events'> & {
  rows: RowValue[];
  savings: number[];
  count: number;
};

export function encodeRows(events: readonly StoredEvent[]): {
  rows: RowValue[];
  savings: number[];
} {
  const rows: RowValue[] = new Array(events.length * ROW_WIDTH);
  const savings: number[] = new Array(events.length);
  let j = 0;
  let i = 0;
  for (const e of events) {
    const b = e.buckets;
    rows[j++] = e.id;
    rows[j++] = e.timeMs;
    rows[j++] = e.receivedMs;
    rows[j++] = e.service;
    rows[j++] = e.model;
    rows[j++] = e.provider;
    rows[j++] = e.operation;
    rows[j++] = e.source;
    rows[j++] = b.input;
    rows[j++] = b.output;
    rows[j++] = b.cacheRead;
    rows[j++] = b.cacheWrite5m;
    rows[j++] = b.cacheWrite1h;
    rows[j++] = e.costUsd;
    rows[j++] = e.costSource;
    rows[j++] = e.pricedAs;
    rows[j++] = e.rawUsage;
    savings[i++] = e.cacheSavingsUsd;
  }
  return { rows, savings };
}

export type LedgerRequest =
  | { seq: number; op: 'open'; options: OpenOptions }
  | { seq: number; op: 'write'; req: WireWrite }
  | { seq: number; op: 'ingest'; req: IngestRequest }
  | { seq: number; op: 'seed' | 'totals' | 'probe' | 'prune' | 'close' }
  /** The ingests asked for in one turn of the event loop, in order: one message, not one each. */
  | { seq: -2; op: 'ingests'; each: { seq: number; req: IngestRequest }[] };

export type LedgerReply =
  | { seq: number; ok: true }
  | { seq: number; inserted: Uint8Array }
  | { seq: number; seed: SeedResult }
  | { seq: number; totals: TotalsRow[] }
  | { seq: number; ingested: IngestReply }
  | { seq: number; error: string; code?: string }
  | { seq: -1; pruned: number }
  | { seq: -1; log: string }
  /** The answers to the writes of one transaction, in order: one message, not one each. */
  | { seq: -2; replies: LedgerReply[] };

/** The store failed (disk full, I/O error, the worker gone): the write is not durable. */
export class LedgerError extends Error {
  constructor(
    message: string,
    readonly code = 'LOOKOUT_LEDGER_FAILED',
  ) {
    super(message);
  }
}

export interface LedgerEvents {
  /** The worker thread ended without close() (a crash inside SQLite or the thread). */
  onExit?(err: Error): void;
  /** Something to log from the worker (pruning done or failed). */
  onNote?(msg: string, fields: Record<string, number | string>): void;
}

/**
 * The worker's young generation (2 MB semi-spaces; the launcher gives every other isolate
 * 1 MB): a body of 500 events, parsed and checked, outlived a 1 MB semi-space, so each was
 * copied, promoted and collected again in the old generation. It costs RSS: its own pages,
 * and more in glibc's malloc unless bin/lookout's MALLOC_ARENA_MAX and
 * MALLOC_MMAP_THRESHOLD_ are set (docs/performance.md, "AI cost", has the figures).
 */
const WORKER_YOUNG_GENERATION_MB = 6;

/** The worker's module: its .ts source under tsx (tests, `npm run` scripts), its build otherwise. */
function workerScript(): { source: string | URL; eval: boolean } {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return { source: new URL('./ledger-worker.js', self), eval: false };
  const url = new URL('./ledger-worker.ts', self).href;
  // A worker does not inherit the loader hooks of `--import tsx` on Node 20: load through tsx's API.
  const api = import.meta.resolve('tsx/esm/api');
  return {
    source: `import(${JSON.stringify(api)}).then((t) => t.tsImport(${JSON.stringify(url)}, ${JSON.stringify(url)}))`,
    eval: true,
  };
}

export class Ledger {
  private seq = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (r: LedgerReply) => void; reject: (e: Error) => void }
  >();
  private closed = false;
  private exited: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    events: LedgerEvents,
  ) {
    const settle = (r: LedgerReply) => {
      const w = this.waiting.get(r.seq);
      if (!w) return;
      this.waiting.delete(r.seq);
      if ('error' in r) w.reject(new LedgerError(r.error, r.code));
      else w.resolve(r);
    };
    worker.on('message', (r: LedgerReply) => {
      if (r.seq === -1) {
        if ('pruned' in r) events.onNote?.('pruned old AI usage events', { events: r.pruned });
        else if ('log' in r) events.onNote?.(r.log, {});
        return;
      }
      if (r.seq === -2 && 'replies' in r) for (const each of r.replies) settle(each);
      else settle(r);
    });
    const gone = (err: Error) => {
      if (this.exited) return;
      this.exited = err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
      if (!this.closed) events.onExit?.(err);
    };
    worker.on('error', (err) => gone(new LedgerError(`the store's thread failed: ${err.message}`)));
    worker.on('exit', (code) => gone(new LedgerError(`the store's thread exited (${code})`)));
  }

  /** Opens (creating) the store in `dir`; rejects with the reason when it cannot be used. */
  static async open(
    dir: string,
    o: Partial<Omit<OpenOptions, 'file'>> & { retentionMs: number },
    events: LedgerEvents = {},
  ): Promise<Ledger> {
    const script = workerScript();
    let worker: Worker;
    try {
      worker = await startWorker(script.source, {
        eval: script.eval,
        resourceLimits: {
          // Its heap holds one transaction's events, and the largest body parsed
          // (max_body_bytes, 8 MiB by default); SQLite's cache is outside it.
          maxOldGenerationSizeMb: 64,
          maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
        },
      });
    } catch (err) {
      throw new LedgerError(`the store's thread failed: ${(err as Error).message}`);
    }
    const ledger = new Ledger(worker, events);
    try {
      await ledger.call({
        op: 'open',
        options: {
          file: join(dir, DATABASE_FILE),
          pruneEveryMs: 3_600_000,
          busyTimeoutMs: 5000,
          cacheKiB: 4096,
          ...o,
        },
      });
    } catch (err) {
      ledger.closed = true;
      await worker.terminate();
      throw err;
    }
    return ledger;
  }

  private call(m: { op: 'open'; options: OpenOptions }): Promise<LedgerReply>;
  private call(m: { op: 'write'; req: WireWrite }): Promise<LedgerReply>;
  private call(
    m: { op: 'ingest'; req: IngestRequest },
    transfer: ArrayBuffer[],
  ): Promise<LedgerReply>;
  private call(m: { op: 'seed' | 'totals' | 'probe' | 'prune' | 'close' }): Promise<LedgerReply>;
  private call(m: Omit<LedgerRequest, 'seq'>, transfer?: ArrayBuffer[]): Promise<LedgerReply> {
    if (this.exited) return Promise.reject(this.exited);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      if (m.op === 'ingest') {
        // Sent together after this turn (many small posts arrive in one): each message
        // wakes the worker and costs both threads. Still before any later call's message.
        this.outbox.push({ seq, req: (m as unknown as { req: IngestRequest }).req });
        this.outboxTransfer.push(...transfer!);
        if (this.outbox.length === 1) setImmediate(this.sendOutbox);
        return;
      }
      this.sendOutbox();
      this.worker.postMessage({ ...m, seq } as LedgerRequest, transfer);
    });
  }

  private outbox: { seq: number; req: IngestRequest }[] = [];
  private outboxTransfer: ArrayBuffer[] = [];
  private readonly sendOutbox = () => {
    if (this.outbox.length === 0) return;
    const each = this.outbox;
    const transfer = this.outboxTransfer;
    this.outbox = [];
    this.outboxTransfer = [];
    if (this.exited) {
      for (const { seq } of each) {
        this.waiting.get(seq)?.reject(this.exited);
        this.waiting.delete(seq);
      }
      return;
    }
    const m: LedgerRequest =
      each.length === 1
        ? { seq: each[0]!.seq, op: 'ingest', req: each[0]!.req }
        : { seq: -2, op: 'ingests', each };
    this.worker.postMessage(m, transfer);
  };

  /** Whether the worker is gone (crashed): a new Ledger must be opened. */
  get broken(): boolean {
    return this.exited !== undefined;
  }

  /**
   * Stores the events (and counts, and a JSONL position) in one transaction shared with
   * the writes waiting beside it. Resolves after the commit: for each event, 1 if it was
   * stored now, 0 if its id was there already.
   */
  async write(req: WriteRequest): Promise<Uint8Array> {
    const { events, ...rest } = req;
    const r = await this.call({
      op: 'write',
      req: { ...rest, ...encodeRows(events), count: events.length },
    });
    return (r as { inserted: Uint8Array }).inserted;
  }

  /**
   * Parses, checks, prices and stores a body of events in the worker (the bytes are
   * moved there, not copied), in a transaction shared with the writes beside it.
   * Resolves after the commit with the answer to send and what the counters add, or
   * with why the whole body was refused (then nothing was stored).
   */
  async ingest(req: IngestRequest): Promise<IngestReply> {
    let raw = req.raw;
    if (raw.byteOffset !== 0 || raw.byteLength !== raw.buffer.byteLength) raw = new Uint8Array(raw);
    const r = await this.call({ op: 'ingest', req: { ...req, raw } }, [raw.buffer as ArrayBuffer]);
    return (r as { ingested: IngestReply }).ingested;
  }

  /** What the store holds for the counters and the tails: totals, ingest counts, positions. */
  async seed(): Promise<SeedResult> {
    const r = await this.call({ op: 'seed' });
    return (r as { seed: SeedResult }).seed;
  }

  /**
   * The store's totals table now (a row per service, model and source: small). Every
   * write asked for before this call has committed and been answered before it resolves.
   */
  async totals(): Promise<TotalsRow[]> {
    const r = await this.call({ op: 'totals' });
    return (r as { totals: TotalsRow[] }).totals;
  }

  /** One small write transaction: whether the store takes writes again after a fault. */
  async probe(): Promise<void> {
    await this.call({ op: 'probe' });
  }

  /** Prunes old raw events now (it runs on its own schedule too). */
  async prune(): Promise<void> {
    await this.call({ op: 'prune' });
  }

  /** Commits what is waiting, closes the database and ends the thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.exited) {
      try {
        await this.call({ op: 'close' });
      } catch {
        // Gone already: nothing left to flush.
      }
    }
    await this.worker.terminate();
  }
}
