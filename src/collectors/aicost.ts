/**
 * The AI-cost collector: takes AI usage events over HTTP (`POST /api/v1/ai-usage`, behind
 * its own bearer token) and from JSONL files apps write, prices them (src/aicost/
 * pricing.ts), stores them in the ledger (src/aicost/ledger.ts: SQLite in a worker
 * thread, durable before an answer) and counts them in `lookout_ai_*`. A counter moves
 * only after its event is durable, and at start the counters are seeded from the store's
 * totals, so a restart or a crash is never a reset and never counts an event twice.
 * Label values (service, model, source) are capped: past the limit a new value is folded
 * into `other` (the store keeps the true one). Off by default.
 */
import { Counter, Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import type { StoredEvent } from '../aicost/event.js';
import type { Ledger, IngestReply, SeedResult, TotalsRow, WriteRequest } from '../aicost/ledger.js';
import type { PricingTable } from '../aicost/pricing.js';
import { totalTokens } from '../aicost/usage.js';
import { BusyTiering } from '../lib/compiler.js';
import { errorText, type Logger } from '../lib/log.js';
import { RateLimitedLog } from '../lib/ratelog.js';
import { forEachLine, Tail, type TailPosition } from '../lib/tail.js';
import {
  collectorSchema,
  registerCollector,
  RouteError,
  type Collector,
  type RouteResponse,
  type ServiceContext,
} from './collector.js';
import { routeToken, routeTokenSchema } from './routetoken.js';

/**
 * The ingest's code (event checks, the store, the price table), imported when the service
 * starts: off by default, and a lookout with it off never loads it.
 */
const ingestCode = async () => {
  const [event, ledger, pricing] = await Promise.all([
    import('../aicost/event.js'),
    import('../aicost/ledger.js'),
    import('../aicost/pricing.js'),
  ]);
  return {
    checkEvent: event.checkEvent,
    problemText: event.problemText,
    Ledger: ledger.Ledger,
    LedgerError: ledger.LedgerError,
    loadPricing: pricing.loadPricing,
  };
};

export const INGEST_PATH = '/api/v1/ai-usage';
/** The label value a capped label's overflow is folded into. */
export const OTHER = 'other';

const budgetSchema = z.strictObject({
  period: z.enum(['hour', 'day', 'month']).describe('The window the budget is for.'),
  service: z
    .string()
    .min(1)
    .default('*')
    .describe('The service it is for; "*" (the default) is the whole host\'s spend.'),
  usd: z.number().positive().describe('The budget in US dollars.'),
});

export const aicostSchema = collectorSchema(
  { enabled: false, interval: '15s', timeout: '10s' },
  {
    ...routeTokenSchema,
    retention: duration
      .prefault('90d')
      .describe(
        'How long raw events are kept in the store; hourly rollups and totals are kept for good. Events older than this are refused at ingest (a re-sent pruned event would otherwise count twice).',
      ),
    jsonl: z
      .array(
        z.string().startsWith('/', 'expected an absolute path, e.g. /var/log/app/ai-usage.jsonl'),
      )
      .default([])
      .describe(
        'JSONL files to follow, one event per line (the same schema as the HTTP ingest). Read from their start the first time, then from the position stored with the events, through rotation.',
      ),
    pricing_file: z
      .string()
      .startsWith('/', 'expected an absolute path')
      .optional()
      .describe(
        "Your own pricing table (the shipped table's format): overrides and extends the shipped prices.",
      ),
    limits: z
      .strictObject({
        services: z.number().int().min(1).default(50),
        models: z.number().int().min(1).default(100),
        sources: z.number().int().min(1).default(20),
      })
      .prefault({})
      .describe(
        'Distinct label values per label in lookout_ai_* (first come, first kept); more are counted as "other". The store keeps the true values.',
      ),
    budgets: z
      .array(budgetSchema)
      .default([])
      .describe(
        'Budgets, exported as lookout_ai_budget_usd{period,service} for the cost alerts; none by default.',
      ),
    max_body_bytes: z
      .number()
      .int()
      .min(1024)
      .default(8 << 20)
      .describe('Largest ingest request body, bytes; larger is a 413.'),
    max_batch: z
      .number()
      .int()
      .min(1)
      .default(5000)
      .describe('Most events in one ingest request; more is a 413.'),
  },
);

export type AicostConfig = z.output<typeof aicostSchema>;

/** First-come label values up to a limit; the rest fold into `other`. */
export class LabelCap {
  private readonly known = new Set<string>();
  constructor(private readonly limit: number) {}

  /** The label for a value, admitting it while there is room. */
  admit(value: string): string {
    if (this.known.has(value)) return value;
    if (this.known.size < this.limit && value !== OTHER) {
      this.known.add(value);
      return value;
    }
    return OTHER;
  }

  get size(): number {
    return this.known.size;
  }

  values(): string[] {
    return [...this.known];
  }

  /** The label for a value, admitting nothing new. */
  lookup(value: string): string {
    return this.known.has(value) ? value : OTHER;
  }
}

interface Sums {
  requests: number;
  unpricedRequests: number;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  unpricedTokens: number;
  cost: number;
}

const zero = (): Sums => ({
  requests: 0,
  unpricedRequests: 0,
  input: 0,
  output: 0,
  cacheRead: 0,
  cacheWrite: 0,
  unpricedTokens: 0,
  cost: 0,
});

/** Adds a totals row (or what one commit stored) to the sums of its capped labels. */
function addRow(s: Sums, t: TotalsRow): void {
  s.requests += t.requests;
  s.unpricedRequests += t.unpricedRequests;
  s.input += t.input;
  s.output += t.output;
  s.cacheRead += t.cacheRead;
  s.cacheWrite += t.cacheWrite5m + t.cacheWrite1h;
  s.unpricedTokens += t.unpricedTokens;
  s.cost += t.cost;
}

/**
 * Everything the counters show, by capped labels, as totals since the store began: seeded
 * from the store at start, added to after each commit. A scrape sets the counters to these.
 */
export class Tallies {
  readonly services: LabelCap;
  readonly models: LabelCap;
  readonly sources: LabelCap;
  /** By `service\0model\0source` (capped). */
  readonly usage = new Map<string, { labels: [string, string, string]; s: Sums }>();
  /** By `source\0result`. */
  readonly ingest = new Map<string, number>();
  /** By `file\0result`. */
  readonly jsonl = new Map<string, number>();
  readonly readErrors = new Map<string, number>();

  constructor(limits: { services: number; models: number; sources: number }) {
    this.services = new LabelCap(limits.services);
    this.models = new LabelCap(limits.models);
    this.sources = new LabelCap(limits.sources);
  }

  private sums(service: string, model: string, source: string): Sums {
    const labels: [string, string, string] = [
      this.services.admit(service),
      this.models.admit(model),
      this.sources.admit(source),
    ];
    const key = labels.join('\u0000');
    let u = this.usage.get(key);
    if (u === undefined) {
      u = { labels, s: zero() };
      this.usage.set(key, u);
    }
    return u.s;
  }

  bump(map: Map<string, number>, key: string, n: number): void {
    if (n !== 0) map.set(key, (map.get(key) ?? 0) + n);
  }

  /**
   * The store's totals, in the order they were first stored (so caps admit as before).
   * Replaces what was tallied: a start tried again must not count the store twice, and
   * the store holds at least everything counted, so no counter goes down.
   */
  seed(seed: SeedResult): void {
    this.usage.clear();
    this.ingest.clear();
    this.jsonl.clear();
    for (const t of seed.totals) this.add(t);
    for (const c of seed.counts) {
      if (c.kind === 'events')
        this.bump(this.ingest, `${this.sources.lookup(c.key)}\u0000${c.result}`, c.n);
      else this.bump(this.jsonl, `${c.key}\u0000${c.result}`, c.n);
    }
  }

  /** Sums of events stored (a totals row, or what one commit stored) for one service, model and source. */
  add(t: TotalsRow): void {
    addRow(this.sums(t.service, t.model, t.source), t);
  }

  /**
   * Raises each counter to what the store's totals table holds (never lowers one): what
   * another process added there — `lookout cost reprice` pricing events stored unpriced —
   * is counted without a restart. The caller makes sure every write in `rows` is tallied.
   */
  raise(rows: readonly TotalsRow[]): void {
    const store = new Map<string, Sums>();
    for (const t of rows) {
      const key = `${this.services.admit(t.service)}\u0000${this.models.admit(t.model)}\u0000${this.sources.admit(t.source)}`;
      let s = store.get(key);
      if (s === undefined) {
        s = zero();
        store.set(key, s);
      }
      addRow(s, t);
    }
    for (const [key, from] of store) {
      const [service, model, source] = key.split('\u0000') as [string, string, string];
      const s = this.sums(service, model, source);
      for (const k of Object.keys(from) as (keyof Sums)[]) {
        if (from[k] > s[k]) s[k] = from[k];
      }
    }
  }

  /** One event the store took now. */
  stored(e: StoredEvent): void {
    const s = this.sums(e.service, e.model, e.source);
    const b = e.buckets;
    s.requests++;
    s.input += b.input;
    s.output += b.output;
    s.cacheRead += b.cacheRead;
    s.cacheWrite += b.cacheWrite5m + b.cacheWrite1h;
    if (e.costUsd === null) {
      s.unpricedRequests++;
      s.unpricedTokens += totalTokens(b);
    } else s.cost += e.costUsd;
    this.bump(this.ingest, `${this.sources.lookup(e.source)}\u0000accepted`, 1);
  }

  duplicate(e: StoredEvent): void {
    this.bump(this.ingest, `${this.sources.lookup(e.source)}\u0000duplicate`, 1);
  }
}

/** The counters and gauges, rendered from the tallies on each scrape. */
function aicostRegistry(t: Tallies, cfg: AicostConfig, storeUp: () => number): Registry {
  const registry = new Registry();
  const registers = [registry];
  const fromUsage = (
    counter: Counter<string>,
    each: (labels: [string, string, string], s: Sums, set: (l: object, v: number) => void) => void,
  ) => {
    counter.reset();
    const set = (l: object, v: number) => counter.inc(l as Record<string, string>, v);
    for (const { labels, s } of t.usage.values()) each(labels, s, set);
  };
  new Counter({
    name: 'lookout_ai_requests_total',
    help: 'AI API requests stored in the ledger, by service, model and source (label values past the configured limits are "other").',
    labelNames: ['service', 'model', 'source'],
    registers,
    collect() {
      fromUsage(this, ([service, model, source], s, set) =>
        set({ service, model, source }, s.requests),
      );
    },
  });
  new Counter({
    name: 'lookout_ai_tokens_total',
    help: 'Tokens of the stored AI API requests by type: input (uncached), output (with reasoning), cache_read, cache_write (5 min and 1 h).',
    labelNames: ['service', 'model', 'source', 'type'],
    registers,
    collect() {
      // Summed per label set first: two true values folded into "other" share a series.
      const sums = new Map<string, { l: Record<string, string>; v: number }>();
      const add = (l: Record<string, string>, v: number) => {
        const k = `${l.service}\u0000${l.model}\u0000${l.source}\u0000${l.type}`;
        const e = sums.get(k);
        if (e) e.v += v;
        else sums.set(k, { l, v });
      };
      for (const {
        labels: [service, model, source],
        s,
      } of t.usage.values()) {
        add({ service, model, source, type: 'input' }, s.input);
        add({ service, model, source, type: 'output' }, s.output);
        add({ service, model, source, type: 'cache_read' }, s.cacheRead);
        add({ service, model, source, type: 'cache_write' }, s.cacheWrite);
      }
      this.reset();
      for (const { l, v } of sums.values()) this.inc(l, v);
    },
  });
  new Counter({
    name: 'lookout_ai_cost_usd_total',
    help: 'US dollars spent on the stored AI API requests (priced from the pricing table, or as the client reported); unpriced requests add nothing here.',
    labelNames: ['service', 'model', 'source'],
    registers,
    collect() {
      fromUsage(this, ([service, model, source], s, set) =>
        set({ service, model, source }, s.cost),
      );
    },
  });
  const bySM = (pick: (s: Sums) => number) =>
    function (this: Counter<string>) {
      const sums = new Map<string, { l: Record<string, string>; v: number }>();
      for (const {
        labels: [service, model],
        s,
      } of t.usage.values()) {
        if (s.unpricedRequests === 0) continue;
        const k = `${service}\u0000${model}`;
        const e = sums.get(k);
        if (e) e.v += pick(s);
        else sums.set(k, { l: { service, model }, v: pick(s) });
      }
      this.reset();
      for (const { l, v } of sums.values()) this.inc(l, v);
    };
  new Counter({
    name: 'lookout_ai_unpriced_requests_total',
    help: 'Stored AI API requests whose model the pricing table did not know at the time (their cost is not in lookout_ai_cost_usd_total until repriced).',
    labelNames: ['service', 'model'],
    registers,
    collect: bySM((s) => s.unpricedRequests),
  });
  new Counter({
    name: 'lookout_ai_unpriced_tokens_total',
    help: 'All tokens of the unpriced AI API requests.',
    labelNames: ['service', 'model'],
    registers,
    collect: bySM((s) => s.unpricedTokens),
  });
  const budget = new Gauge({
    name: 'lookout_ai_budget_usd',
    help: 'A configured AI spend budget (collectors.aicost.budgets), US dollars per period; service="*" is the whole host.',
    labelNames: ['period', 'service'],
    registers,
  });
  for (const b of cfg.budgets) budget.set({ period: b.period, service: b.service }, b.usd);
  const fromMap = (map: Map<string, number>, names: [string, string]) =>
    function (this: Counter<string>) {
      this.reset();
      for (const [k, v] of map) {
        const [a, b] = k.split('\u0000');
        this.inc({ [names[0]]: a!, [names[1]]: b! }, v);
      }
    };
  new Counter({
    name: 'lookout_ai_ingest_events_total',
    help: 'AI usage events offered to lookout (HTTP and JSONL), by source and result: accepted (stored now), duplicate (stored before, not counted again), rejected (invalid; not stored).',
    labelNames: ['source', 'result'],
    registers,
    collect: fromMap(t.ingest, ['source', 'result']),
  });
  new Gauge({
    name: 'lookout_ai_store_up',
    help: 'Whether the AI usage store takes writes (1) or not (0: ingest answers 503, JSONL waits).',
    registers,
    collect() {
      this.set(storeUp());
    },
  });
  if (cfg.jsonl.length > 0) {
    new Counter({
      name: 'lookout_ai_jsonl_lines_total',
      help: 'Lines of the followed JSONL files by result: stored, duplicate (an event stored before) or rejected (not an event; logged).',
      labelNames: ['file', 'result'],
      registers,
      collect() {
        this.reset();
        for (const file of cfg.jsonl) {
          for (const result of ['stored', 'duplicate', 'rejected']) {
            this.inc({ file, result }, t.jsonl.get(`${file}\u0000${result}`) ?? 0);
          }
        }
      },
    });
    new Counter({
      name: 'lookout_ai_jsonl_read_errors_total',
      help: 'Failed reads of a followed JSONL file (missing directory, permissions, I/O errors); the tail keeps trying.',
      labelNames: ['file'],
      registers,
      collect() {
        this.reset();
        for (const file of cfg.jsonl) this.inc({ file }, t.readErrors.get(file) ?? 0);
      },
    });
  }
  return registry;
}

/** Events offered (stored, duplicate or rejected) after which V8 tiers up at its own pace (BusyTiering). */
const BUSY_EVENTS = 1_000;

/** The collector's long-lived state: the ledger, the tallies, the tails. */
class AicostService {
  readonly tallies: Tallies;
  readonly registry: Registry;
  private ledger: Ledger | undefined;
  private pricing: PricingTable | undefined;
  private sctx: ServiceContext | undefined;
  private faulted: string | undefined;
  private probe: NodeJS.Timeout | undefined;
  private tails: Tail[] = [];
  private refresh: NodeJS.Timeout | undefined;
  private refreshing = false;
  private recovering = false;
  /** How many source label values the worker was last told of, and which (see IngestRequest.knownSources). */
  private sourcesSent = -1;
  private sourcesSentTo: Ledger | undefined;
  /** Writes not yet tallied (see followStore()). */
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly rate: RateLimitedLog;
  private readonly unpricedLogged = new Set<string>();
  private dir = '';
  /** Set by start(), before anything that uses it. */
  private code: Awaited<ReturnType<typeof ingestCode>> | undefined;
  private readonly tiering: BusyTiering;

  constructor(
    private readonly cfg: AicostConfig,
    private readonly stateDirectory: () => Promise<string>,
    private readonly log: Logger,
  ) {
    this.tallies = new Tallies(cfg.limits);
    this.registry = aicostRegistry(this.tallies, cfg, () =>
      this.ledger !== undefined && this.faulted === undefined ? 1 : 0,
    );
    this.rate = new RateLimitedLog(log, 60_000);
    this.tiering = new BusyTiering(BUSY_EVENTS, () =>
      log.info('AI usage ingest is busy: V8 now optimizes hot code at its own pace', {
        events: BUSY_EVENTS,
        why: 'bin/lookout delays optimizing to keep an idle lookout small; docs/performance.md',
      }),
    );
  }

  async start(sctx: ServiceContext): Promise<void> {
    this.sctx = sctx;
    this.dir = await this.stateDirectory();
    this.code ??= await ingestCode();
    this.pricing = await this.code.loadPricing({ userFile: this.cfg.pricing_file });
    await this.ledger?.close();
    this.ledger = await this.openLedger();
    let seed: SeedResult;
    try {
      seed = await this.ledger.seed();
    } catch (err) {
      await this.ledger.close();
      this.ledger = undefined;
      throw err;
    }
    this.tallies.seed(seed);
    const saved = new Map(seed.tails.map((t) => [t.path, this.position(t.path, t.state)]));
    this.tails = this.cfg.jsonl.map((path) => this.follow(path, saved.get(path)));
    await Promise.all(this.tails.map((t) => t.start()));
    this.refresh = setInterval(() => void this.followStore(), this.cfg.interval);
    this.refresh.unref();
    sctx.log.info('AI usage store open', {
      path: this.dir,
      series: this.tallies.usage.size,
      jsonl: this.cfg.jsonl.length,
    });
  }

  /** A stored tail position; one that does not parse is no position (the file is read from its start, its lines deduplicated by id). */
  private position(path: string, state: string): TailPosition | undefined {
    try {
      return JSON.parse(state) as TailPosition;
    } catch (err) {
      this.log.warn('stored JSONL position unreadable; reading the file from its start', {
        file: path,
        err: errorText(err),
      });
      return undefined;
    }
  }

  private async openLedger(): Promise<Ledger> {
    this.code ??= await ingestCode();
    return this.code.Ledger.open(
      this.dir,
      { retentionMs: this.cfg.retention, pricingFile: this.cfg.pricing_file },
      {
        onExit: (err) => this.fail(err),
        onNote: (msg, fields) => this.log.info(msg, fields),
      },
    );
  }

  /**
   * Raises the counters to the store's totals (see Tallies.raise), on the collector's
   * interval. The worker answers the read after every write sent before it; those writes'
   * tallies are awaited first, so nothing is counted twice, and writes sent after it are
   * not in the read, so their counts can only be above it.
   */
  private async followStore(): Promise<void> {
    const ledger = this.ledger;
    if (this.refreshing || ledger === undefined || this.faulted !== undefined) return;
    this.refreshing = true;
    try {
      const before = [...this.inflight];
      const rows = await ledger.totals();
      await Promise.allSettled(before);
      this.tallies.raise(rows);
    } catch {
      // A failed read is the store's fault, seen by the next write too; the next refresh tries again.
    } finally {
      this.refreshing = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.refresh);
    this.refresh = undefined;
    clearInterval(this.probe);
    this.probe = undefined;
    const tails = this.tails;
    this.tails = [];
    // The tails first: a block being stored is committed (and acknowledged) before the ledger closes.
    await Promise.all(tails.map((t) => t.stop()));
    await this.ledger?.close();
    this.ledger = undefined;
  }

  /** The store failed a write: a fault until a probe write succeeds (the route answers 503 meanwhile). */
  private fail(err: unknown): void {
    const text = errorText(err);
    if (this.faulted === undefined) {
      this.faulted = text;
      this.sctx?.fault(new Error(`the AI usage store fails: ${text}`));
    }
    if (this.probe !== undefined) return;
    this.probe = setInterval(() => void this.tryRecover(), 5000);
    this.probe.unref();
  }

  private async tryRecover(): Promise<void> {
    // One attempt at a time: a reopen slower than the probe's interval (the store locked
    // by a reprice) must not open a second ledger over the first.
    if (this.recovering) return;
    this.recovering = true;
    try {
      if (this.ledger === undefined || this.ledger.broken) {
        await this.ledger?.close();
        this.ledger = undefined;
        const ledger = await this.openLedger();
        // Stopped meanwhile: close what this attempt opened, or it outlives the service.
        if (this.probe === undefined) {
          await ledger.close();
          return;
        }
        this.ledger = ledger;
      }
      await this.ledger.probe();
    } catch {
      return;
    } finally {
      this.recovering = false;
    }
    if (this.probe === undefined) return;
    clearInterval(this.probe);
    this.probe = undefined;
    this.faulted = undefined;
    this.sctx?.healthy();
  }

  /** Stores what was checked; counts after the commit. Throws LedgerError when the store fails. */
  store(req: WriteRequest): Promise<Uint8Array> {
    return this.track(this.storeAndCount(req));
  }

  /** A write in flight until it is tallied (see followStore()). */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => void this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  private async storeAndCount(req: WriteRequest): Promise<Uint8Array> {
    const ledger = this.ledger;
    if (ledger === undefined) {
      this.code ??= await ingestCode();
      throw new this.code.LedgerError('the AI usage store is not open');
    }
    let inserted: Uint8Array;
    try {
      inserted = await ledger.write(req);
    } catch (err) {
      this.fail(err);
      throw err;
    }
    const t = this.tallies;
    this.tiering.add(req.events.length);
    req.events.forEach((e, i) => {
      if (inserted[i]) {
        t.stored(e);
        if (e.costUsd === null) this.unpriced(e.provider, e.model);
      } else t.duplicate(e);
    });
    for (const [source, n] of Object.entries(req.rejected ?? {})) {
      t.bump(t.ingest, `${source}\u0000rejected`, n);
      this.tiering.add(n);
    }
    if (req.jsonl) {
      const { file, rejected } = req.jsonl;
      let stored = 0;
      for (const x of inserted) stored += x;
      t.bump(t.jsonl, `${file}\u0000stored`, stored);
      t.bump(t.jsonl, `${file}\u0000duplicate`, inserted.length - stored);
      t.bump(t.jsonl, `${file}\u0000rejected`, rejected);
    }
    return inserted;
  }

  private unpriced(provider: string, model: string): void {
    const key = `${provider}/${model}`;
    if (this.unpricedLogged.has(key)) return;
    if (this.unpricedLogged.size >= 1000) {
      this.rate.warn('unpriced', 'AI usage of models the pricing table does not know', {
        model,
      });
      return;
    }
    this.unpricedLogged.add(key);
    this.log.warn('AI usage of a model the pricing table does not know: counted as unpriced', {
      model,
      provider,
      hint: 'add it to collectors.aicost.pricing_file, then run lookout cost reprice',
    });
  }

  /** The key a rejected event is counted under: its source if already a label, else other. */
  private rejectedSource(input: unknown, fallback: string): string {
    const s = (input as { source?: unknown } | null)?.source;
    return this.tallies.sources.lookup(typeof s === 'string' ? s : fallback);
  }

  /**
   * An HTTP body of events: parsed, checked, priced and stored in the ledger's worker
   * (the event loop only moves the bytes there and counts after the commit).
   */
  async ingest(raw: Uint8Array): Promise<RouteResponse> {
    const ledger = this.ledger;
    if (ledger === undefined) {
      throw new RouteError(503, 'the AI usage store cannot take writes now: it is not open');
    }
    const sources = this.tallies.sources;
    const knownSources =
      sources.size !== this.sourcesSent || ledger !== this.sourcesSentTo
        ? sources.values()
        : undefined;
    this.sourcesSent = sources.size;
    this.sourcesSentTo = ledger;
    let r: IngestReply;
    try {
      r = await this.track(
        ledger.ingest({ raw, now: Date.now(), maxBatch: this.cfg.max_batch, knownSources }),
      );
    } catch (err) {
      this.sourcesSent = -1;
      this.fail(err);
      throw new RouteError(503, `the AI usage store cannot take writes now: ${errorText(err)}`);
    }
    if ('refused' in r)
      throw new RouteError(r.refused.status, r.refused.message, r.refused.problems);
    const t = this.tallies;
    for (const s of r.stored) t.add(s);
    for (const [source, result, n] of r.counts) {
      t.bump(t.ingest, `${t.sources.lookup(source)}\u0000${result}`, n);
      this.tiering.add(n);
    }
    for (const [provider, model] of r.unpriced) this.unpriced(provider, model);
    return r.answer;
  }

  private follow(path: string, from: TailPosition | undefined): Tail {
    const source = `jsonl:${path}`;
    // Tails are made in start(), after the ingest's code is loaded.
    const { checkEvent, problemText } = this.code!;
    return new Tail(path, {
      from: from ?? 'start',
      onLines: async (block, position) => {
        const opts = {
          now: Date.now(),
          retentionMs: this.cfg.retention,
          defaultSource: source,
          pricing: this.pricing!,
        };
        const events: StoredEvent[] = [];
        const rejectedBy: Record<string, number> = {};
        let rejected = 0;
        forEachLine(block, (line) => {
          if (line.trim() === '') return;
          let value: unknown;
          let reason: string;
          try {
            value = JSON.parse(line) as unknown;
            const c = checkEvent(value, opts);
            if (c.ok) {
              events.push(c.event);
              return;
            }
            reason = problemText(c.problems);
          } catch (err) {
            reason = `not JSON: ${errorText(err)}`;
          }
          rejected++;
          const s = this.rejectedSource(value, source);
          rejectedBy[s] = (rejectedBy[s] ?? 0) + 1;
          this.rate.warn(`jsonl:${path}`, 'rejected a JSONL line', {
            file: path,
            reason: reason.length > 300 ? `${reason.slice(0, 300)}...` : reason,
          });
        });
        await this.store({
          events,
          rejected: rejectedBy,
          jsonl: { file: path, rejected, position },
        });
      },
      onError: (err) => {
        if ((err as { code?: string }).code === 'LOOKOUT_TAIL_CONSUMER_FAILED') return;
        this.tallies.bump(this.tallies.readErrors, path, 1);
        this.rate.warn(`jsonl-read:${path}`, 'cannot read a JSONL file', {
          file: path,
          err: errorText(err),
        });
      },
      onGap: (why) => this.log.warn('JSONL file: lines skipped', { file: path, why }),
      onOverlong: () => {
        this.rate.warn(`jsonl-long:${path}`, 'a JSONL line longer than 64 KiB was dropped', {
          file: path,
        });
      },
      encoding: 'utf8',
    });
  }
}

registerCollector({
  name: 'aicost',
  description:
    'AI API usage and cost: events over HTTP (POST /api/v1/ai-usage) and JSONL, priced, stored durably in SQLite',
  metrics: [
    'lookout_ai_requests_total',
    'lookout_ai_tokens_total',
    'lookout_ai_cost_usd_total',
    'lookout_ai_unpriced_requests_total',
    'lookout_ai_unpriced_tokens_total',
    'lookout_ai_budget_usd',
    'lookout_ai_ingest_events_total',
    'lookout_ai_store_up',
    'lookout_ai_jsonl_lines_total',
    'lookout_ai_jsonl_read_errors_total',
  ],
  schema: aicostSchema,
  create(ctx): Collector {
    const cfg = ctx.config;
    const svc = new AicostService(cfg, () => ctx.stateDirectory(), ctx.log);
    return {
      service: {
        registry: svc.registry,
        start: (sctx) => svc.start(sctx),
        stop: () => svc.stop(),
      },
      routes: [
        {
          method: 'POST',
          path: INGEST_PATH,
          token: routeToken(ctx.name, cfg),
          bodyLimitBytes: cfg.max_body_bytes,
          rawBody: true,
          handle: (req) => svc.ingest(req.raw!),
        },
      ],
    };
  },
});
