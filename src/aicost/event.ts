/**
 * One AI-usage event as a client sends it (over HTTP or as a JSONL line), validated into
 * the row the ledger stores: field-level reasons for what is wrong, the idempotency key
 * decided (the client's id, else the provider's response id from the usage object), the
 * time checked against the window the store keeps, the usage normalised into disjoint
 * buckets and priced.
 */
import { z } from 'zod';
import { formatPath } from '../config/load.js';
import type { CostSource, UsageBuckets } from './schema.js';
import type { PricingTable } from './pricing.js';
import { bucketsFromCounts, normaliseUsage, totalTokens } from './usage.js';

/** An event more than this far ahead of lookout's clock is refused (a client clock gone wrong). */
export const MAX_FUTURE_MS = 5 * 60_000;

const name = (what: string, max = 128) =>
  z
    .string({
      error: (i) =>
        i.input === undefined ? `required: the ${what}` : `expected a ${what} (a string)`,
    })
    .min(1, `expected a non-empty ${what}`)
    .max(max, `expected a ${what} of at most ${max} characters`)
    .regex(/^[^\u0000-\u001f\u007f]+$/, `expected a ${what} without control characters`);

const tokens = z
  .number()
  .int('expected a whole number of tokens')
  .min(0, 'expected a token count of 0 or more')
  .max(Number.MAX_SAFE_INTEGER);

/** The four token counts (and the 1-hour part of the cache writes). */
const TOKEN_FIELDS = [
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_write_tokens',
  'cache_write_1h_tokens',
] as const;

/** What a client may send: one JSON object per event. */
export const eventSchema = z
  .strictObject({
    id: name('id (the idempotency key)', 200).optional(),
    time: z
      .union([
        z.string().min(1, 'expected an RFC 3339 time or epoch milliseconds/seconds'),
        z.number().finite().positive(),
      ])
      .optional(),
    service: name('service name'),
    model: name('model name'),
    provider: name('provider name (openai, anthropic, google, ...)', 64),
    operation: name('operation (chat, responses, embeddings, ...)', 64).optional(),
    source: name('source', 128).optional(),
    input_tokens: tokens.optional(),
    output_tokens: tokens.optional(),
    cache_read_tokens: tokens.optional(),
    cache_write_tokens: tokens.optional(),
    cache_write_1h_tokens: tokens.optional(),
    usage: z.record(z.string(), z.unknown()).optional(),
    cost_usd: z.number().finite().min(0, 'expected a cost of 0 or more').optional(),
  })
  .superRefine((e, ctx) => {
    const given = TOKEN_FIELDS.filter((k) => e[k] !== undefined);
    if (e.usage !== undefined && given.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: [given[0]!],
        message:
          'send either the token counts or the provider usage object, not both (the usage object is normalised into the counts)',
      });
    } else if (e.usage === undefined) {
      for (const k of ['input_tokens', 'output_tokens'] as const) {
        if (e[k] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message: `required (or send the provider's usage object as "usage")`,
          });
        }
      }
    }
  });

export { totalTokens };

export type EventInput = z.input<typeof eventSchema>;
type EventData = z.output<typeof eventSchema>;

const FIELDS = new Set(Object.keys(eventSchema.shape));
const CONTROL = /[\u0000-\u001f\u007f]/;

function text(v: unknown, max: number, optional: boolean): boolean {
  if (v === undefined) return optional;
  return typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL.test(v);
}

/**
 * The event as eventSchema would pass it, when it certainly would; undefined otherwise
 * (then eventSchema itself runs, for its field-level reasons). The same rules, written
 * out: zod takes about 20 µs an event, this well under one, and batched ingest is
 * measured in hundreds of thousands of events a second.
 */
export function wellFormed(input: unknown): EventData | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  const e = input as Record<string, unknown>;
  for (const k in e) if (!FIELDS.has(k)) return undefined;
  if (
    !text(e.id, 200, true) ||
    !text(e.service, 128, false) ||
    !text(e.model, 128, false) ||
    !text(e.provider, 64, false) ||
    !text(e.operation, 64, true) ||
    !text(e.source, 128, true)
  )
    return undefined;
  const t = e.time;
  if (
    t !== undefined &&
    !(typeof t === 'string' && t.length > 0) &&
    !(typeof t === 'number' && Number.isFinite(t) && t > 0)
  )
    return undefined;
  let counts = 0;
  for (const k of TOKEN_FIELDS) {
    const v = e[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 0) return undefined;
    counts++;
  }
  const u = e.usage;
  if (u !== undefined) {
    if (typeof u !== 'object' || u === null || Array.isArray(u) || counts > 0) return undefined;
  } else if (e.input_tokens === undefined || e.output_tokens === undefined) return undefined;
  const c = e.cost_usd;
  if (c !== undefined && !(typeof c === 'number' && Number.isFinite(c) && c >= 0)) {
    return undefined;
  }
  return e as EventData;
}

/** The row the ledger stores (src/aicost/schema.ts `events`). */
export interface StoredEvent {
  id: string;
  timeMs: number;
  receivedMs: number;
  service: string;
  model: string;
  provider: string;
  operation: string;
  source: string;
  buckets: UsageBuckets;
  costUsd: number | null;
  costSource: CostSource;
  pricedAs: string | null;
  rawUsage: string | null;
  /** What cache reads saved against the input price (rollups only; 0 when unpriced). */
  cacheSavingsUsd: number;
}

export interface Problem {
  path: string;
  message: string;
}

export type Checked = { ok: true; event: StoredEvent } | { ok: false; problems: Problem[] };

export interface CheckOptions {
  /** Now, in ms (lookout's clock). */
  now: number;
  /** Raw events older than this are pruned: one older is refused, so a re-send is never counted twice. */
  retentionMs: number;
  /** The source when the event names none: `http`, or `jsonl:<path>`. */
  defaultSource: string;
  pricing: PricingTable;
}

/** Epoch milliseconds from an RFC 3339 string or an epoch number (seconds below 1e11, else ms). */
export function parseTime(t: string | number): number | undefined {
  if (typeof t === 'number') return Math.round(t < 1e11 ? t * 1000 : t);
  if (/^\d+(\.\d+)?$/.test(t)) return parseTime(Number(t));
  // RFC 3339: a date, a time, and a zone (Z or ±hh:mm); Date.parse alone takes far more.
  if (!/^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Validates one event: the row to store, or every problem with the field it is in. */
export function checkEvent(input: unknown, opts: CheckOptions): Checked {
  let e = wellFormed(input);
  if (e === undefined) {
    const parsed = eventSchema.safeParse(input, { reportInput: false });
    if (!parsed.success) {
      return {
        ok: false,
        problems: parsed.error.issues.map((i) => ({
          path: formatPath(i.path) || '(event)',
          message: i.message,
        })),
      };
    }
    e = parsed.data;
  }
  const problems: Problem[] = [];
  let timeMs = opts.now;
  if (e.time !== undefined) {
    const t = parseTime(e.time);
    if (t === undefined) {
      problems.push({
        path: 'time',
        message:
          'expected an RFC 3339 time with a zone (2026-12-06T10:00:00Z) or epoch seconds/milliseconds',
      });
    } else if (t < opts.now - opts.retentionMs) {
      problems.push({
        path: 'time',
        message: `older than the store keeps raw events (${Math.round(opts.retentionMs / 86_400_000)} days, collectors.aicost.retention); not stored`,
      });
    } else if (t > opts.now + MAX_FUTURE_MS) {
      problems.push({
        path: 'time',
        message: `more than ${MAX_FUTURE_MS / 60_000} minutes ahead of lookout's clock; check the client's clock`,
      });
    } else timeMs = t;
  }
  const n = e.usage !== undefined ? normaliseUsage(e.usage, e.provider) : bucketsFromCounts(e, '');
  let buckets: UsageBuckets | undefined;
  let responseId: string | undefined;
  if (n.ok) {
    buckets = n.buckets;
    responseId = n.responseId;
  } else problems.push(...n.problems);
  const id = e.id ?? responseId;
  if (id === undefined) {
    problems.push({
      path: 'id',
      message:
        "required: an idempotency key, or a usage object that carries the provider's response id (chatcmpl-..., resp_..., msg_...)",
    });
  }
  if (problems.length > 0 || buckets === undefined || id === undefined) {
    return { ok: false, problems };
  }
  // Priced even when the client reported its cost: what caching saved comes from the table.
  const p = opts.pricing.price({ model: e.model, provider: e.provider, timeMs, buckets });
  let costUsd: number | null = null;
  let costSource: CostSource = 'unpriced';
  let pricedAs: string | null = null;
  if (e.cost_usd !== undefined) {
    costUsd = e.cost_usd;
    costSource = 'reported';
  } else if (p !== undefined) {
    costUsd = p.costUsd;
    costSource = 'priced';
    pricedAs = p.pricedAs;
  }
  return {
    ok: true,
    event: {
      id,
      timeMs,
      receivedMs: opts.now,
      service: e.service,
      model: e.model,
      provider: e.provider,
      operation: e.operation ?? 'chat',
      source: e.source ?? opts.defaultSource,
      buckets,
      costUsd,
      costSource,
      pricedAs,
      rawUsage: e.usage === undefined ? null : JSON.stringify(e.usage),
      cacheSavingsUsd: p?.cacheSavingsUsd ?? 0,
    },
  };
}

/** One line of problems, for a batch item's reason and the log. */
export function problemText(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}
