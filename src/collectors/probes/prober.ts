/**
 * What one probe kind is, as in blackbox_exporter's prober/: its target's config
 * schema (with its defaults), the `target` label it shows when none is given, the check
 * that asks the endpoint, and any metric it adds beside the ones every probe has. The
 * collector (probes.ts) runs every check under its deadline and sets success, duration
 * and consecutive failures itself: a check only answers, or throws.
 */
import { z } from 'zod';
import { duration } from '../../config/duration.js';
import type { HttpClient } from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';
import type { ProbeOutcome } from '../../lib/probe-tcp.js';

export type { ProbeOutcome };

/** Fields every target has, whatever its kind. */
export const commonFields = {
  name: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe(
      'The `target` label; default the URL, address or path. Give one when the default would hold something you would rather not show, or is not unique.',
    ),
  timeout: duration
    .optional()
    .describe(
      "How long this target may take to answer; default, and at most, the collector's timeout (as blackbox_exporter takes the scrape's). A target that does not answer in time fails this round.",
    ),
};

/** What a check gets besides its target's config. */
export interface ProbeContext {
  /** Aborted at the target's deadline; pass it to every call that waits. */
  signal: AbortSignal;
  /** The collector's logger with this target's `target` and `kind`. */
  log: Logger;
  /** The shared HTTP client; never make another. */
  http: HttpClient;
}

/**
 * A metric family a kind adds (the HTTP status code, Redis list lengths). The collector
 * creates it once, labelled `target` plus `labelNames`, and each round sets what
 * `samples` gives for every target of this kind.
 */
export interface ProbeMetric<O extends ProbeOutcome = ProbeOutcome> {
  name: string;
  help: string;
  /** Labels besides `target`. */
  labelNames: readonly string[];
  /** This round's samples for one target; `outcome` is undefined when the check threw or ran out of time. */
  samples(
    outcome: O | undefined,
  ): Iterable<readonly [labels: Record<string, string>, value: number]>;
}

/** What every target's config holds, whatever its kind. */
export interface TargetBase {
  kind: string;
  name?: string | undefined;
  timeout?: number | undefined;
}

export interface Prober<T extends TargetBase = TargetBase, O extends ProbeOutcome = ProbeOutcome> {
  /** The `kind:` value in the config, and the `kind` label. */
  readonly kind: T['kind'];
  /** How the landing page and the docs name it: "HTTP(S)", "Redis". */
  readonly title: string;
  /** One target of this kind: `kind`, the common fields and its own, strict, with defaults. */
  readonly schema: z.ZodType<T> & z.core.$ZodTypeDiscriminable;
  /** The `target` label when the target has no name; undefined when no part of it is safe to show. */
  label(target: T): string | undefined;
  /** Asks the endpoint once. A wrong answer is `ok: false`; no answer at all is a throw. */
  check(target: T, ctx: ProbeContext): Promise<O>;
  /** Loads what the checks need (pg) at start-up, when a target of this kind is configured, so the first round does not spend a target's deadline importing. */
  load?(http: HttpClient): Promise<unknown>;
  readonly metrics: readonly ProbeMetric<O>[];
}

/** A target of kind K with the common fields and `F`, as the schema outputs it. */
export type TargetOf<K extends string, F extends z.ZodRawShape> = z.output<
  z.ZodObject<F, z.core.$strict>
> & { kind: K; name?: string | undefined; timeout?: number | undefined };

/**
 * Builds a kind's entry from its own fields: the schema gets `kind` and the common
 * fields, and `refine` its checks across fields (paths inside the target).
 */
export function defineProber<
  const K extends string,
  F extends z.ZodRawShape,
  O extends ProbeOutcome = ProbeOutcome,
>(def: {
  kind: K;
  title: string;
  fields: F;
  refine?(target: TargetOf<K, F>, problem: (path: PropertyKey[], message: string) => void): void;
  label(target: TargetOf<K, F>): string | undefined;
  check(target: TargetOf<K, F>, ctx: ProbeContext): Promise<O>;
  load?(http: HttpClient): Promise<unknown>;
  metrics?: readonly ProbeMetric<O>[];
}): Prober<TargetOf<K, F>, O> {
  // The schema's output is TargetOf<K, F>; zod's own inference over a generic shape is
  // too deep for the compiler, so the types are stated here once.
  const shape: z.ZodRawShape = { kind: z.literal(def.kind), ...commonFields, ...def.fields };
  const { refine } = def;
  const schema = refine
    ? z
        .strictObject(shape)
        .superRefine((target, ctx) =>
          refine(target as TargetOf<K, F>, (path, message) =>
            ctx.addIssue({ code: 'custom', path, message }),
          ),
        )
    : z.strictObject(shape);
  return {
    kind: def.kind,
    title: def.title,
    schema: schema as unknown as Prober<TargetOf<K, F>, O>['schema'],
    label: def.label,
    check: def.check,
    load: def.load,
    metrics: def.metrics ?? [],
  } as Prober<TargetOf<K, F>, O>;
}

export { readSecret } from '../../lib/secret.js';
