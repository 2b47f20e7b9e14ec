/**
 * What an AI request cost: the shipped price table (pricing/ai-prices.yml) merged with a
 * user's own (collectors.aicost.pricing_file), looked up by model id and the event's own
 * time. An unknown model has no price — `price()` answers undefined, never $0 — so the
 * caller counts it as unpriced until the table knows it (`lookout cost reprice`).
 *
 * Lookup: the model id is cleaned up (lower case; a provider prefix such as `openai/`,
 * `anthropic/`, `models/` dropped; then a date suffix `-20250929`, `@20250929`,
 * `-2024-08-06`, `-latest`, Gemini's `-001` or Bedrock's `anthropic.`…`-v1:0` dropped) and matched, in this order, to an
 * entry's id or alias as given, then as cleaned up, then to an entry's `match` pattern.
 * The user's entries come first; an entry of the same provider as the event wins over
 * one of another provider with the same name.
 *
 * Price periods: an entry's prices apply from their `from` date (UTC midnight) until the
 * next period's; an event is priced with the period its time falls in, so a replayed old
 * event gets the old price. An event before an entry's first `from` is unpriced.
 *
 * Tiers: a request whose whole input (uncached + cache read + cache writes) is above a
 * tier's `above_input_tokens` is priced entirely at that tier's prices, as Anthropic's
 * long-context and Google's over-200k prices are.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, formatPath, parseYamlDocument } from '../config/load.js';
import { PACKAGE_ROOT } from '../lib/storage.js';
import type { UsageBuckets } from './schema.js';

/** Where the shipped table lives in a checkout, the release archive and the image. */
export const SHIPPED_PRICES = join(PACKAGE_ROOT, 'pricing', 'ai-prices.yml');

const usdPerMillion = z.number().finite().min(0).describe('US dollars per million tokens');

const rates = {
  input: usdPerMillion.describe('Uncached input, USD per million tokens.'),
  output: usdPerMillion.describe('Output including reasoning, USD per million tokens.'),
  cache_read: usdPerMillion
    .optional()
    .describe('Cache reads (cached input), USD per million tokens; default: input.'),
  cache_write_5m: usdPerMillion
    .optional()
    .describe('Cache writes that live 5 minutes, USD per million tokens; default: input.'),
  cache_write_1h: usdPerMillion
    .optional()
    .describe('Cache writes that live 1 hour, USD per million tokens; default: cache_write_5m.'),
};

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, { message: 'expected a date like 2025-06-10' })
  .refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)), { message: 'not a real date' });

const tierSchema = z.strictObject({
  above_input_tokens: z.number().int().min(1),
  ...rates,
});

const periodSchema = z.strictObject({
  from: isoDate.optional().describe('First day (UTC) these prices apply; none: from the start.'),
  ...rates,
  tiers: z.array(tierSchema).optional(),
});

const patternSchema = z.string().refine(
  (s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a valid regular expression' },
);

const modelSchema = z.strictObject({
  id: z.string().min(1),
  provider: z.string().min(1),
  aliases: z.array(z.string().min(1)).optional(),
  match: patternSchema.optional(),
  source: z.string().min(1).optional(),
  checked: isoDate.optional(),
  via: z.string().optional(),
  note: z.string().optional(),
  prices: z
    .array(periodSchema)
    .min(1)
    .superRefine((periods, ctx) => {
      periods.forEach((p, i) => {
        if (i > 0 && p.from === undefined)
          ctx.addIssue({
            code: 'custom',
            path: [i, 'from'],
            message: 'every price period after the first needs its from date',
          });
        const prev = periods[i - 1]?.from;
        if (i > 0 && prev !== undefined && p.from !== undefined && p.from <= prev)
          ctx.addIssue({
            code: 'custom',
            path: [i, 'from'],
            message: `must be after the previous period's from (${prev})`,
          });
      });
    }),
});

export const pricingFileSchema = z.strictObject({
  models: z.array(modelSchema),
});

export type PricingFile = z.infer<typeof pricingFileSchema>;
type ModelEntry = z.infer<typeof modelSchema>;

interface Rates {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
}

interface Period {
  fromMs: number;
  from: string | undefined;
  base: Rates;
  tiers: { above: number; rates: Rates; pricedAs: string }[];
  /** Price.pricedAs below the tiers, made once (one string for every event it prices). */
  pricedAs: string;
}

interface Model {
  id: string;
  provider: string;
  periods: Period[];
}

export interface Price {
  costUsd: number;
  /** The entry and period that priced it: `claude-sonnet-4-5`, `o3@2025-06-10`, `…>200000` for a tier. */
  pricedAs: string;
  /** What the cache reads saved against the input price. */
  cacheSavingsUsd: number;
}

export interface PriceQuery {
  model: string;
  provider: string;
  timeMs: number;
  buckets: UsageBuckets;
}

export interface PricingTable {
  price(q: PriceQuery): Price | undefined;
  /** The entry a model id resolves to (its id), or undefined when none does. */
  resolve(model: string, provider: string): string | undefined;
}

function toRates(r: {
  input: number;
  output: number;
  cache_read?: number;
  cache_write_5m?: number;
  cache_write_1h?: number;
}): Rates {
  const cacheWrite5m = r.cache_write_5m ?? r.input;
  return {
    input: r.input,
    output: r.output,
    cacheRead: r.cache_read ?? r.input,
    cacheWrite5m,
    cacheWrite1h: r.cache_write_1h ?? cacheWrite5m,
  };
}

function toModel(e: ModelEntry): Model {
  return {
    id: e.id,
    provider: e.provider.toLowerCase(),
    periods: e.prices.map((p) => {
      const pricedAs = p.from === undefined ? e.id : `${e.id}@${p.from}`;
      return {
        fromMs: p.from === undefined ? -Infinity : Date.parse(`${p.from}T00:00:00Z`),
        from: p.from,
        base: toRates(p),
        tiers: (p.tiers ?? [])
          .map((t) => ({
            above: t.above_input_tokens,
            rates: toRates(t),
            pricedAs: `${pricedAs}>${t.above_input_tokens}`,
          }))
          .sort((a, b) => b.above - a.above),
        pricedAs,
      };
    }),
  };
}

/** A model id without its provider prefix, date suffix or version tag, lower-cased. */
export function cleanModelId(model: string): string {
  let m = model.trim().toLowerCase();
  m = m.slice(m.lastIndexOf('/') + 1);
  // Bedrock: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  m = m.replace(/^([a-z]+\.)?anthropic\./, '').replace(/-v\d+(:\d+)?$/, '');
  // Vertex AI: claude-sonnet-4-5@20250929
  m = m.replace(/@.*$/, '');
  m = m.replace(/-latest$/, '');
  m = m.replace(/-\d{4}-\d{2}-\d{2}$/, '');
  m = m.replace(/-\d{8}$/, '');
  m = m.replace(/-\d{3}$/, '');
  return m;
}

/** Names a provider family, so `azure` and `openai` (and `vertex_ai` and `google`) agree. */
function family(provider: string): string {
  const p = provider.toLowerCase();
  if (/anthropic|claude|bedrock/.test(p)) return 'anthropic';
  if (/gemini|google|vertex/.test(p)) return 'google';
  if (/openai|azure/.test(p)) return 'openai';
  return p;
}

interface Candidate {
  model: Model;
  exact: Set<string>;
  cleaned: Set<string>;
  pattern: RegExp | undefined;
}

function candidate(e: ModelEntry): Candidate {
  const names = [e.id, ...(e.aliases ?? [])];
  return {
    model: toModel(e),
    exact: new Set(names.map((n) => n.toLowerCase())),
    cleaned: new Set(names.map(cleanModelId)),
    pattern: e.match === undefined ? undefined : new RegExp(e.match, 'i'),
  };
}

/** The cost of `buckets` at `r`, in US dollars. */
function cost(b: UsageBuckets, r: Rates): number {
  return (
    (b.input * r.input +
      b.output * r.output +
      b.cacheRead * r.cacheRead +
      b.cacheWrite5m * r.cacheWrite5m +
      b.cacheWrite1h * r.cacheWrite1h) /
    1e6
  );
}

/** A table over `entries`, earlier entries winning a name over later ones. */
export function pricingTable(entries: readonly ModelEntry[]): PricingTable {
  const candidates = entries.map(candidate);
  /**
   * What find() answered, by provider and model as sent: every event asks, most the
   * same; found through a map per level, without making a key string each time.
   */
  let seen = new Map<string, Map<string, Model | null>>();
  let seenSize = 0;

  const find = (model: string, provider: string): Model | undefined => {
    let models = seen.get(provider);
    const known = models?.get(model);
    if (known !== undefined) return known ?? undefined;
    const answer = resolveModel(model, provider) ?? null;
    if (seenSize >= 10_000) {
      seen = new Map();
      seenSize = 0;
      models = undefined;
    }
    if (models === undefined) seen.set(provider, (models = new Map()));
    models.set(model, answer);
    seenSize++;
    return answer ?? undefined;
  };

  const resolveModel = (model: string, provider: string): Model | undefined => {
    const lower = model.trim().toLowerCase();
    const bare = lower.slice(lower.lastIndexOf('/') + 1);
    const cleaned = cleanModelId(model);
    const fam = family(provider);
    const tests: ((c: Candidate) => boolean)[] = [
      (c) => c.exact.has(lower) || c.exact.has(bare),
      (c) => c.cleaned.has(cleaned),
      (c) => c.pattern !== undefined && (c.pattern.test(bare) || c.pattern.test(cleaned)),
    ];
    let found: Model | undefined;
    for (const test of tests) {
      const matching = candidates.filter(test);
      if (matching.length === 0) continue;
      found = (matching.find((c) => family(c.model.provider) === fam) ?? matching[0])!.model;
      break;
    }
    return found;
  };

  return {
    resolve: (model, provider) => find(model, provider)?.id,
    price(q) {
      const m = find(q.model, q.provider);
      if (m === undefined) return undefined;
      let period: Period | undefined;
      for (const p of m.periods) if (p.fromMs <= q.timeMs) period = p;
      if (period === undefined) return undefined;
      const b = q.buckets;
      const wholeInput = b.input + b.cacheRead + b.cacheWrite5m + b.cacheWrite1h;
      const tier = period.tiers.find((t) => wholeInput > t.above);
      const r = tier?.rates ?? period.base;
      return {
        costUsd: cost(b, r),
        pricedAs: tier?.pricedAs ?? period.pricedAs,
        cacheSavingsUsd: Math.max(0, (b.cacheRead * (r.input - r.cacheRead)) / 1e6),
      };
    },
  };
}

/** Parses and validates one table's text; ConfigError names the file and every wrong field. */
export function parsePricingText(text: string, file: string): PricingFile {
  const result = pricingFileSchema.safeParse(parseYamlDocument(text, file) ?? {});
  if (!result.success)
    throw new ConfigError(
      file,
      result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`),
    );
  const ids = new Set<string>();
  const dup = result.data.models.flatMap((m, i) => {
    const id = m.id.toLowerCase();
    if (ids.has(id)) return [`models[${i}].id: ${m.id} is listed twice`];
    ids.add(id);
    return [];
  });
  if (dup.length > 0) throw new ConfigError(file, dup);
  return result.data;
}

async function readTable(file: string, what: string): Promise<PricingFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      code === 'ENOENT'
        ? `no such file; check ${what}`
        : `cannot be read (${code ?? String(err)}); check ${what}`,
    ]);
  }
  return parsePricingText(text, file);
}

/**
 * The shipped table with the user's merged over it: a user entry replaces the shipped one
 * with the same id, and the user's entries are matched first.
 */
export function mergeTables(shipped: PricingFile, user: PricingFile | undefined): ModelEntry[] {
  if (user === undefined) return shipped.models;
  const replaced = new Set(user.models.map((m) => m.id.toLowerCase()));
  return [...user.models, ...shipped.models.filter((m) => !replaced.has(m.id.toLowerCase()))];
}

/** Loads the shipped table and the user's (`collectors.aicost.pricing_file`), merged. */
export async function loadPricing(
  opts: { userFile?: string; shippedFile?: string } = {},
): Promise<PricingTable> {
  const shipped = await readTable(opts.shippedFile ?? SHIPPED_PRICES, 'the lookout installation');
  const user =
    opts.userFile === undefined
      ? undefined
      : await readTable(opts.userFile, 'collectors.aicost.pricing_file');
  return pricingTable(mergeTables(shipped, user));
}
