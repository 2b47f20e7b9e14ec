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
  /** The shared HTTP client (undici, loaded on first use); never make another. */
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
}

export interface UpdateContext {
  /** Aborted when the collector's timeout passes; pass it to every I/O call that takes one. */
  signal: AbortSignal;
  /** When that happens, in performance.now() milliseconds: give it to Fanout.run. */
  deadline: number;
  log: Logger;
}

/**
 * Polled: refreshed in the background on an interval (host, filesystem, probes). Each
 * refresh returns a registry holding what the collector sees now — a fresh one, so a
 * series that went away is gone — or throws. The runner times it and records success;
 * a collector never touches self-metrics.
 */
export interface PolledCollector {
  readonly kind?: 'polled';
  update(ctx: UpdateContext): Promise<Registry>;
  /**
   * For `lookout check`: tries each configured target once, now, and says whether it
   * answers. Collectors with targets (nginx, TLS, probes) implement it.
   */
  checkTargets?(ctx: UpdateContext): Promise<TargetCheck[]>;
  /** Release sockets, timers, file handles on shutdown. */
  close?(): Promise<void> | void;
  routes?: readonly CollectorRoute[];
}

/**
 * Streaming: started once, counts events as they come (a log tail, an ingest route).
 * Its registry lives as long as the process and is rendered on each scrape, so its
 * metrics must not do I/O in collect(); only the collector removes one of its series.
 */
export interface StreamingCollector {
  readonly kind: 'streaming';
  readonly registry: Registry;
  /**
   * Begin reading (open the file, the socket, the ledger: create() must not, so
   * `lookout status` can build a collector without touching what a running one holds).
   * A throw is a failed start, tried again on the collector's interval.
   */
  start(ctx: StreamContext): Promise<void> | void;
  /** Stop reading and flush what must be kept; awaited on shutdown, under a deadline. */
  stop(): Promise<void> | void;
  routes?: readonly CollectorRoute[];
}

export interface StreamContext {
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

export type Collector = PolledCollector | StreamingCollector;

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

export function isStreaming(c: Collector): c is StreamingCollector {
  return c.kind === 'streaming';
}

/** An HTTP route a collector adds (the AI-usage ingest); mounted only when it is enabled. */
export interface CollectorRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** An absolute path, e.g. `/api/v1/ai-usage`. */
  path: string;
  /** Largest request body accepted, in bytes (default 1 MiB); larger is a 413. */
  bodyLimitBytes?: number;
  /** Validates the JSON body; a mismatch is a 400 naming each wrong field. Without it, no body is read. */
  body?: z.ZodType;
  handle(req: RouteRequest): Promise<RouteResponse> | RouteResponse;
}

export interface RouteRequest {
  /** The parsed body, validated by the route's `body` schema. */
  body: unknown;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  query: URLSearchParams;
}

export interface RouteResponse {
  status: number;
  /** Sent as JSON. */
  body: unknown;
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
    'How often the collector refreshes in the background, e.g. "15s" (streaming collectors: how often a failed start is tried again). While a scraper comes about as often, the refresh runs right after its scrape, so lookout wakes once per scrape.',
  ),
  timeout: duration.describe(
    'How long one refresh may take before it is abandoned and marked failed; at most the interval.',
  ),
};

export interface CollectorDefaults {
  enabled: boolean;
  interval: string;
  timeout: string;
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
   * (undici, ...) only when it is enabled.
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
