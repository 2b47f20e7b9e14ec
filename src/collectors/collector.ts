import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '../lib/log.js';
import type { HttpClient } from '../lib/http.js';
import type { StorageMode } from '../lib/storage.js';
import { duration } from '../config/duration.js';

/** Where the host's pseudo filesystems live; tests point these at fixtures. */
export interface HostPaths {
  procfs: string;
  sysfs: string;
  rootfs: string;
}

/** What every collector gets when it is built: one object, room to grow. */
export interface CollectorContext<C = unknown> {
  /** The collector's name: its config key and its `collector` label. */
  name: string;
  /** Its `collectors.<name>` block, validated, defaults applied. */
  config: C;
  paths: HostPaths;
  log: Logger;
  /** The shared HTTP client (Node's agents, one per kind of endpoint, made on first use); never make another. */
  http: HttpClient;
  /**
   * 'read-write' under `serve`; 'read-only' for `status`, `check` and reports, which
   * read what a running service keeps and must change nothing.
   */
  stateMode: StorageMode;
  /**
   * Its own directory under `storage.path` for state that must survive a restart (a
   * ledger, a read position). Read-write: created on first call. Read-only: never
   * created — the path is returned whether or not it exists (a missing file there is
   * no state yet). Throws a StorageError naming the setting and the fix when it cannot
   * be used.
   */
  stateDirectory(): Promise<string>;
  /**
   * Another enabled collector of the same runner, by name (undefined when it is off or not
   * built yet: call it when needed, not in create()). For reading what it last saw (its
   * Observer or a typed getter), never for driving it: auto-restart reads the probes
   * collector's consecutive failures this way.
   */
  peer?(name: string): Collector | undefined;
}

export interface CollectContext {
  /** Aborted when the collector's timeout passes; pass it to every I/O call that takes one. */
  signal: AbortSignal;
  /** When that happens, in performance.now() milliseconds: give it to Fanout.run. */
  deadline: number;
  log: Logger;
}

/**
 * A collector is made of parts, any of them: `collect` (polled), `service` (long-lived)
 * and `actions` (changes to the world). The runner times each part and records success;
 * a collector never touches self-metrics. One `lookout_collector_success{collector}`
 * covers every part: a failed refresh or a service fault sets it to 0.
 */
export interface Collector {
  /**
   * Polled: refreshed in the background on the collector's interval, under its deadline.
   * Returns the collector's registry holding what it sees now — the same long-lived one
   * every time is the expected case: its metric objects are updated, and label sets that
   * went away removed, through prom-client's own API — or throws. After a throw the
   * runner serves nothing of this registry until the next refresh succeeds.
   */
  collect?(ctx: CollectContext): Promise<Registry>;
  /**
   * Long-lived (a log tail, an ingest, an event stream): started once, its counters
   * rendered on every scrape, stopped and flushed on shutdown.
   */
  service?: CollectorService;
  /**
   * What the collector may change in the world (restart a container), planned from what
   * it last saw. Run only under `serve`, only when its config's `actions.enabled` is
   * true, at most `actions.max_per_hour` times an hour each; `lookout status` and
   * `lookout check` show the plans and never run them.
   */
  actions?: readonly CollectorAction[];
  /**
   * For `lookout check`: tries each configured target once, now, and says whether it
   * answers. Collectors with targets (nginx, TLS, probes) implement it.
   */
  checkTargets?(ctx: CollectContext): Promise<TargetCheck[]>;
  /** Release sockets, timers, file handles on shutdown (after the service has stopped). */
  close?(): Promise<void> | void;
  routes?: readonly CollectorRoute[];
}

/** A collector with a polled part: what tests and `lookout check` call directly. */
export type PolledCollector = Collector & Required<Pick<Collector, 'collect'>>;

export function isPolled(c: Collector): c is PolledCollector {
  return c.collect !== undefined;
}

/** A collector with a long-lived part. */
export type ServiceCollector = Collector & Required<Pick<Collector, 'service'>>;

/**
 * A collector's long-lived part. Its registry lives as long as the process and is
 * rendered on each scrape, so its metrics must not do I/O in collect(); only the
 * service removes one of its series. A fault keeps its counters served.
 */
export interface CollectorService {
  readonly registry: Registry;
  /**
   * Begin (open the file, the socket, the ledger: create() must not, so `lookout status`
   * can build a collector without touching what a running one holds). A throw is a
   * failed start, tried again on the collector's interval.
   */
  start(ctx: ServiceContext): Promise<void> | void;
  /** Stop and flush what must be kept; awaited on shutdown, under a deadline. */
  stop(): Promise<void> | void;
}

export interface ServiceContext {
  log: Logger;
  /** Aborted when start() overruns the collector's timeout. */
  signal: AbortSignal;
  /**
   * A fault after start (the log unreadable, the ledger's disk full): success goes 0 with
   * this error until healthy(); the counters so far are still served.
   */
  fault(err: unknown): void;
  /** The fault is over. */
  healthy(): void;
}

/** One thing an action would do now, and why: what `lookout status` prints. */
export interface ActionPlan {
  /** What it acts on (a container's name). */
  target: string;
  /** What it would do, as a person says it: `restart web-1`. */
  what: string;
  /** Why, from what the collector last saw: `unhealthy 3 times in a row`. */
  why: string;
  /**
   * Shown, never run: what the action deliberately leaves alone now and why (`leave web-1
   * alone: paused: 3 restarts this hour did not help`). `lookout status` prints it without
   * "would"; the runner skips it and counts nothing.
   */
  held?: boolean;
}

/**
 * Something a collector may do to the world. plan() reads only what the collector last
 * saw (no I/O), so `lookout status` can show it; run() does it.
 */
export interface CollectorAction<P extends ActionPlan = ActionPlan> {
  /** One word, the `action` label: `restart`. */
  readonly name: string;
  /** One line for `lookout status` and the docs. */
  readonly description: string;
  /** What it would do now; empty when nothing calls for it. */
  plan(): readonly P[];
  /**
   * Does one planned thing; a throw is a failed run. The signal aborts at the
   * collector's timeout and on shutdown.
   */
  run(plan: P, ctx: ActionContext): Promise<void>;
  /**
   * How long one run may take, in ms; the collector's timeout when not given. An action
   * that waits on the world (a container given time to stop) says how long here, rather
   * than squeezing its wait under a refresh's deadline.
   */
  readonly timeoutMs?: number;
}

export interface ActionContext {
  signal: AbortSignal;
  log: Logger;
}

/** One configured target as `lookout check` reports it. */
export interface TargetCheck {
  /** The target's `target` label value. */
  target: string;
  ok: boolean;
  /** Why not, or what it answered: `HTTP 200 in 12 ms`, `connection refused`. */
  detail: string;
}

/**
 * A collector that keeps what it last saw, typed, for `lookout status` and `lookout
 * check`: they read these, not metric names looked back up in a rendered registry.
 */
export interface Observer<T> {
  lastSeen(): T | undefined;
}

/**
 * An HTTP route a collector adds (the AI-usage ingest); mounted only when its collector
 * is enabled and its own bearer token is configured (`token`), never behind the scrape
 * credentials: web-config basic auth does not open it, and its token opens nothing else.
 */
export interface CollectorRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** An absolute path, e.g. `/api/v1/ai-usage`. */
  path: string;
  /** Where its bearer token comes from: routeToken() over the collector's routeTokenSchema fields. */
  token: RouteToken;
  /** Largest request body accepted, in bytes (default 1 MiB); larger is a 413. */
  bodyLimitBytes?: number;
  /** Validates the JSON body; a mismatch is a 400 naming each wrong field. Without it (and rawBody), no body is read. */
  body?: z.ZodType;
  /**
   * The JSON body is handed over as it came, bytes (`RouteRequest.raw`), after the same
   * checks of its type, encoding and size: the route parses it itself (off the event
   * loop, in a worker that owns the memory). `body` is not used then.
   */
  rawBody?: boolean;
  handle(req: RouteRequest): Promise<RouteResponse> | RouteResponse;
}

/**
 * A route's bearer token source, from its collector's config: a file (its trailing
 * newline dropped) or an environment variable, each with the setting that names it, so a
 * missing file or an unset variable is a startup error naming that setting. Neither
 * given: the route is not mounted, and `hint` says what to set.
 */
export interface RouteToken {
  file?: { path: string; setting: string };
  env?: { name: string; setting: string };
  hint: string;
}

export interface RouteRequest {
  /** The parsed body, validated by the route's `body` schema. */
  body: unknown;
  /** The body's bytes, for a route with `rawBody` (a copy the route owns: it may transfer it). */
  raw?: Uint8Array;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  query: URLSearchParams;
}

/** One item of a batch, as the route decided it. */
export interface RouteItemResult {
  /** The item's id (its idempotency key), when it has one. */
  id?: string;
  /** accepted: stored now; duplicate: stored before (not counted again); rejected: not stored. */
  result: 'accepted' | 'duplicate' | 'rejected';
  /** Why it was rejected: what the client must change before sending it again. */
  reason?: string;
}

/**
 * A route's answer: a JSON body, or per-item results of a batch, sent as
 * `{ accepted, duplicate, rejected, items: [{ index, id?, result, reason? }] }` with
 * status 200 when no item was rejected, 207 when some were, 422 when all were (unless
 * `status` says otherwise). Items are in the order the request sent them.
 */
export type RouteResponse =
  | { status: number; body: unknown; headers?: Readonly<Record<string, string>> }
  /** A batch's answer already made by batchAnswer() (in a worker): sent as it is. */
  | { status: number; json: string; headers?: Readonly<Record<string, string>> }
  | {
      items: readonly RouteItemResult[];
      status?: number;
      headers?: Readonly<Record<string, string>>;
    };

/**
 * A batch's answer: per-item results (with their index) and the counts, 200 when none was
 * rejected, 422 when all were, else 207. The route layer sends every `items` answer so;
 * a route that answers from a worker thread makes the same with this.
 */
export function batchAnswer(items: readonly RouteItemResult[]): { status: number; json: string } {
  const counts = { accepted: 0, duplicate: 0, rejected: 0 };
  for (const item of items) counts[item.result]++;
  const n = items.length;
  const status = counts.rejected === 0 ? 200 : counts.rejected === n ? 422 : 207;
  return {
    status,
    json: JSON.stringify({ ...counts, items: items.map((item, index) => ({ index, ...item })) }),
  };
}

/** A route's answer to input it cannot take: sent as `{ error, problems? }` with this status. */
export class RouteError extends Error {
  readonly code = 'LOOKOUT_ROUTE_REJECTED';
  constructor(
    readonly status: number,
    message: string,
    readonly problems?: readonly { path: string; message: string }[],
  ) {
    super(message);
  }
}

/**
 * Thrown when there is nothing to collect on this host (no Docker socket, no nginx):
 * a quiet, distinct outcome — logged at debug, not at error.
 */
export class NothingToCollect extends Error {
  readonly code = 'LOOKOUT_NOTHING_TO_COLLECT';
}

export class CollectorError extends Error {
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.code = options?.code ?? 'LOOKOUT_COLLECTOR_FAILED';
  }
}

/** Fields every collector's config block has. */
export const baseCollectorSchema = {
  enabled: z.boolean().describe('Run this collector.'),
  interval: duration.describe(
    'How often the collector refreshes in the background, e.g. "15s" (a collector with a service: how often a failed start is tried again). While a scraper comes about as often, the refresh runs right after its scrape, so lookout wakes once per scrape.',
  ),
  timeout: duration.describe(
    'How long one refresh may take before it is abandoned and marked failed; at most the interval.',
  ),
};

export interface CollectorDefaults {
  enabled: boolean;
  interval: string;
  timeout: string;
  /**
   * Given by a collector that declares actions: its config block then has `actions:`
   * (off unless the operator opts in), with this many runs an hour allowed by default.
   */
  actions?: { maxPerHour: number };
}

/** The `actions:` block of a collector that declares actions. */
export interface ActionsConfig {
  enabled: boolean;
  max_per_hour: number;
}

function actionsSchema(maxPerHour: number) {
  return z
    .strictObject({
      enabled: z
        .boolean()
        .default(false)
        .describe(
          "Let lookout serve run this collector's actions. Off by default: an exporter changes nothing unless told to.",
        ),
      max_per_hour: z
        .number()
        .int()
        .min(1)
        .default(maxPerHour)
        .describe(
          'At most this many runs of each action in any hour; more are skipped and counted as skipped_rate_limited.',
        ),
    })
    .describe('What this collector may change (see `lookout status` for what it would do now).');
}

export interface CollectorDefinition<S extends z.ZodType = z.ZodType> {
  /** One word used everywhere: file name, config key, `collector` label. */
  name: string;
  /** One line for the landing page and docs. */
  description: string;
  /**
   * Every metric family the collector exports: a full name, or a prefix ending in `*`
   * (`process_*`). Two collectors claiming the same family is a startup error; a refresh
   * exporting a family not listed here fails, so the list cannot drift from the code.
   */
  metrics: readonly string[];
  /** Schema of `collectors.<name>`; must include baseCollectorSchema fields with defaults. */
  schema: S;
  /**
   * Builds the collector. Kept async so a collector can import heavy modules
   * (pg, ...) only when it is enabled.
   */
  create(ctx: CollectorContext<z.output<S>>): Promise<Collector> | Collector;
}

const definitions = new Map<string, CollectorDefinition>();

export function registerCollector<S extends z.ZodType>(def: CollectorDefinition<S>): void {
  if (definitions.has(def.name)) throw new Error(`collector "${def.name}" registered twice`);
  definitions.set(def.name, def as unknown as CollectorDefinition);
}

export function collectorDefinitions(): ReadonlyMap<string, CollectorDefinition> {
  return definitions;
}

/** Whether a declared family (`name` or `prefix*`) covers the metric `name`. */
export function familyCovers(declared: string, name: string): boolean {
  return declared.endsWith('*') ? name.startsWith(declared.slice(0, -1)) : declared === name;
}

/**
 * The family a sample name belongs to in OpenMetrics: a counter `x_total` and a gauge `x`
 * are one family there, and so are a histogram `x` and a gauge `x_bucket`.
 */
function familyBase(name: string): string {
  return name.replace(/_(total|created|bucket|count|sum)$/, '');
}

/** Whether two declared families can name the same metric. */
export function familiesOverlap(a: string, b: string): boolean {
  const pa = a.endsWith('*') ? a.slice(0, -1) : undefined;
  const pb = b.endsWith('*') ? b.slice(0, -1) : undefined;
  if (pa !== undefined && pb !== undefined) return pa.startsWith(pb) || pb.startsWith(pa);
  if (pa !== undefined) return b.startsWith(pa);
  if (pb !== undefined) return a.startsWith(pb);
  return familyBase(a) === familyBase(b);
}

/**
 * Builds a collector's config schema: common fields with this collector's defaults,
 * plus its own fields, strict, with the timeout ≤ interval rule.
 */
export function collectorSchema<T extends z.ZodRawShape>(defaults: CollectorDefaults, own: T) {
  return z
    .strictObject({
      enabled: baseCollectorSchema.enabled.default(defaults.enabled),
      interval: baseCollectorSchema.interval.prefault(defaults.interval),
      timeout: baseCollectorSchema.timeout.prefault(defaults.timeout),
      ...(defaults.actions
        ? { actions: actionsSchema(defaults.actions.maxPerHour).prefault({}) }
        : {}),
      ...own,
    })
    .superRefine((value, ctx) => {
      const c = value as { interval: number; timeout: number };
      if (c.timeout > c.interval) {
        ctx.addIssue({
          code: 'custom',
          path: ['timeout'],
          message: `must not be longer than the interval (${c.interval / 1000}s); shorten timeout or lengthen interval`,
        });
      }
    });
}
