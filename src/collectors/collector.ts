import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '../lib/log.js';
import { duration } from '../config/duration.js';

/** Where the host's pseudo filesystems live; tests point these at fixtures. */
export interface HostPaths {
  procfs: string;
  sysfs: string;
  rootfs: string;
}

export interface UpdateContext {
  /** Aborted when the collector's timeout passes; pass it to every I/O call that takes one. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * A collector fills a fresh registry with what it sees now, or throws.
 * It never touches self-metrics: the runner times it and records success.
 */
export interface Collector {
  update(registry: Registry, ctx: UpdateContext): Promise<void>;
  /** Optional: release sockets, timers, file handles on shutdown. */
  close?(): Promise<void> | void;
}

/**
 * Thrown when there is nothing to collect on this host (no Docker socket, no nginx):
 * a quiet, distinct outcome — success 0, logged at debug, not at error.
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
  interval: duration.describe('How often the collector refreshes in the background, e.g. "15s".'),
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
  /** Schema of `collectors.<name>`; must include baseCollectorSchema fields with defaults. */
  schema: S;
  /**
   * Builds the collector. Kept async so a collector can import heavy modules
   * (undici, ...) only when it is enabled.
   */
  create(config: z.output<S>, paths: HostPaths, log: Logger): Promise<Collector> | Collector;
}

const definitions = new Map<string, CollectorDefinition>();

export function registerCollector<S extends z.ZodType>(def: CollectorDefinition<S>): void {
  if (definitions.has(def.name)) throw new Error(`collector "${def.name}" registered twice`);
  definitions.set(def.name, def as unknown as CollectorDefinition);
}

export function collectorDefinitions(): ReadonlyMap<string, CollectorDefinition> {
  return definitions;
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
