/**
 * A provider's own usage object turned into lookout's disjoint token buckets (see
 * UsageBuckets in schema.ts): uncached input, cache read, cache write 5 min, cache
 * write 1 h, output including reasoning. The caller keeps the raw object; this only
 * reads it. The providers count differently, and each rule below is one they document:
 *
 * - OpenAI Chat Completions: `prompt_tokens` INCLUDES `prompt_tokens_details.cached_tokens`;
 *   `completion_tokens` includes `completion_tokens_details.reasoning_tokens`.
 * - OpenAI Responses: `input_tokens` INCLUDES `input_tokens_details.cached_tokens`;
 *   `output_tokens` includes `output_tokens_details.reasoning_tokens`.
 * - Anthropic Messages: `input_tokens` EXCLUDES `cache_read_input_tokens` and
 *   `cache_creation_input_tokens`; `cache_creation.ephemeral_5m_input_tokens` and
 *   `ephemeral_1h_input_tokens` split the writes (priced differently). Without that
 *   breakdown every write is a 5-minute one (the API's default lifetime).
 * - Gemini `usageMetadata`: `promptTokenCount` INCLUDES `cachedContentTokenCount`;
 *   `thoughtsTokenCount` is billed as output beside `candidatesTokenCount`;
 *   `toolUsePromptTokenCount` is input outside the prompt count.
 *
 * So a cache token is counted once, in its cache bucket, never again as input. Counts
 * must be non-negative integers (null or absent = 0); a part larger than the whole it
 * belongs to (cached > prompt, reasoning > completion, a write breakdown that does not
 * add up) is rejected with the field's path. Keys this does not know are left alone.
 */
import type { UsageBuckets } from './schema.js';

export type UsageShape = 'openai-chat' | 'openai-responses' | 'anthropic' | 'gemini' | 'buckets';

export interface NormalisedUsage {
  ok: true;
  shape: UsageShape;
  buckets: UsageBuckets;
  /** The provider's response id (`chatcmpl-…`, `resp_…`, `msg_…`), when the whole response was passed. */
  responseId?: string;
}

export interface UsageProblem {
  ok: false;
  problems: { path: string; message: string }[];
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads token counts under `base`, collecting a problem per bad field. */
class Reader {
  readonly problems: { path: string; message: string }[] = [];
  constructor(private readonly base: string) {}

  /** A count at `obj[key]`: absent or null is 0; anything but a non-negative integer is a problem. */
  count(obj: Obj, key: string, path = key): number {
    const v = obj[key];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.problems.push({
        path: this.at(path),
        message: `expected a non-negative whole number of tokens, got ${JSON.stringify(v) ?? String(v)}`,
      });
      return 0;
    }
    return v;
  }

  /** The details object at `obj[key]`: absent or null is {}; anything else but an object is a problem. */
  details(obj: Obj, key: string): Obj {
    const v = obj[key];
    if (v === undefined || v === null) return {};
    if (!isObject(v)) {
      this.problems.push({ path: this.at(key), message: `expected an object, got ${typeof v}` });
      return {};
    }
    return v;
  }

  notAbove(part: number, partPath: string, whole: number, wholePath: string): void {
    if (part > whole)
      this.problems.push({
        path: this.at(partPath),
        message: `${part} is more than ${wholePath} (${whole}), which includes it`,
      });
  }

  at(path: string): string {
    return this.base === '' ? path : `${this.base}.${path}`;
  }
}

function done(r: Reader, shape: UsageShape, buckets: UsageBuckets): NormalisedUsage | UsageProblem {
  if (r.problems.length > 0) return { ok: false, problems: r.problems };
  return { ok: true, shape, buckets };
}

/**
 * OpenAI's two shapes: a whole that includes its cached part, and an output that includes
 * its reasoning part. Names differ between Chat Completions and Responses.
 */
function openai(
  u: Obj,
  r: Reader,
  shape: 'openai-chat' | 'openai-responses',
  names: { input: string; output: string; inputDetails: string; outputDetails: string },
): NormalisedUsage | UsageProblem {
  const input = r.count(u, names.input);
  const output = r.count(u, names.output);
  const cachedPath = `${names.inputDetails}.cached_tokens`;
  const reasoningPath = `${names.outputDetails}.reasoning_tokens`;
  const cached = r.count(r.details(u, names.inputDetails), 'cached_tokens', cachedPath);
  const reasoning = r.count(r.details(u, names.outputDetails), 'reasoning_tokens', reasoningPath);
  r.notAbove(cached, cachedPath, input, names.input);
  r.notAbove(reasoning, reasoningPath, output, names.output);
  return done(r, shape, {
    input: Math.max(0, input - cached),
    output,
    cacheRead: cached,
    cacheWrite5m: 0,
    cacheWrite1h: 0,
  });
}

const CHAT = {
  input: 'prompt_tokens',
  output: 'completion_tokens',
  inputDetails: 'prompt_tokens_details',
  outputDetails: 'completion_tokens_details',
};
const RESPONSES = {
  input: 'input_tokens',
  output: 'output_tokens',
  inputDetails: 'input_tokens_details',
  outputDetails: 'output_tokens_details',
};

function anthropic(u: Obj, r: Reader): NormalisedUsage | UsageProblem {
  const input = r.count(u, 'input_tokens');
  const output = r.count(u, 'output_tokens');
  const read = r.count(u, 'cache_read_input_tokens');
  const created = r.count(u, 'cache_creation_input_tokens');
  let w5m = created;
  let w1h = 0;
  const cc = u.cache_creation;
  if (cc !== undefined && cc !== null) {
    const d = r.details(u, 'cache_creation');
    const has5m = d.ephemeral_5m_input_tokens !== undefined && d.ephemeral_5m_input_tokens !== null;
    const has1h = d.ephemeral_1h_input_tokens !== undefined && d.ephemeral_1h_input_tokens !== null;
    if (has5m || has1h) {
      w5m = r.count(d, 'ephemeral_5m_input_tokens', 'cache_creation.ephemeral_5m_input_tokens');
      w1h = r.count(d, 'ephemeral_1h_input_tokens', 'cache_creation.ephemeral_1h_input_tokens');
      // The breakdown is of cache_creation_input_tokens; a sender that gave only the
      // breakdown gets it as the total.
      const hasTotal =
        u.cache_creation_input_tokens !== undefined && u.cache_creation_input_tokens !== null;
      if (hasTotal && w5m + w1h !== created)
        r.problems.push({
          path: r.at('cache_creation'),
          message: `ephemeral_5m_input_tokens + ephemeral_1h_input_tokens (${w5m} + ${w1h}) must equal cache_creation_input_tokens (${created})`,
        });
    }
  }
  return done(r, 'anthropic', {
    input,
    output,
    cacheRead: read,
    cacheWrite5m: w5m,
    cacheWrite1h: w1h,
  });
}

function gemini(u: Obj, r: Reader): NormalisedUsage | UsageProblem {
  const prompt = r.count(u, 'promptTokenCount');
  const cached = r.count(u, 'cachedContentTokenCount');
  const toolPrompt = r.count(u, 'toolUsePromptTokenCount');
  const candidates = r.count(u, 'candidatesTokenCount');
  const thoughts = r.count(u, 'thoughtsTokenCount');
  r.notAbove(cached, 'cachedContentTokenCount', prompt, 'promptTokenCount');
  return done(r, 'gemini', {
    input: Math.max(0, prompt - cached) + toolPrompt,
    output: candidates + thoughts,
    cacheRead: cached,
    cacheWrite5m: 0,
    cacheWrite1h: 0,
  });
}

/** lookout's own four counts (input uncached), the form an event carries without a usage object. */
export interface TokenCounts {
  input_tokens?: unknown;
  output_tokens?: unknown;
  cache_read_tokens?: unknown;
  /** All cache writes, 5-minute and 1-hour ones. */
  cache_write_tokens?: unknown;
  /** The part of cache_write_tokens written for 1 hour (the rest is 5-minute). */
  cache_write_1h_tokens?: unknown;
}

function counts(u: Obj, r: Reader): NormalisedUsage | UsageProblem {
  const input = r.count(u, 'input_tokens');
  const output = r.count(u, 'output_tokens');
  const read = r.count(u, 'cache_read_tokens');
  const write = r.count(u, 'cache_write_tokens');
  const write1h = r.count(u, 'cache_write_1h_tokens');
  r.notAbove(write1h, 'cache_write_1h_tokens', write, 'cache_write_tokens');
  return done(r, 'buckets', {
    input,
    output,
    cacheRead: read,
    cacheWrite5m: Math.max(0, write - write1h),
    cacheWrite1h: write1h,
  });
}

/**
 * Buckets from lookout's own counts: `input_tokens` is uncached input, `cache_write_tokens`
 * all cache writes of which `cache_write_1h_tokens` (optional) were for 1 hour. Absent
 * counts are 0. Problems are reported with the field's name (`base` prefixes it).
 */
export function bucketsFromCounts(c: TokenCounts, base = ''): NormalisedUsage | UsageProblem {
  return counts(c as Obj, new Reader(base));
}

/** The provider families a hint names: the shape to read an ambiguous object as. */
function hinted(provider: string | undefined): 'openai' | 'anthropic' | 'gemini' | undefined {
  const p = provider?.toLowerCase() ?? '';
  if (/anthropic|claude|bedrock/.test(p)) return 'anthropic';
  if (/gemini|google|vertex/.test(p)) return 'gemini';
  if (/openai|azure/.test(p)) return 'openai';
  return undefined;
}

function detect(u: Obj, provider: string | undefined): UsageShape | undefined {
  const has = (k: string) => k in u;
  if (has('promptTokenCount') || has('candidatesTokenCount') || has('cachedContentTokenCount'))
    return 'gemini';
  if (has('prompt_tokens') || has('completion_tokens')) return 'openai-chat';
  if (has('cache_read_input_tokens') || has('cache_creation_input_tokens') || has('cache_creation'))
    return 'anthropic';
  if (has('input_tokens_details') || has('output_tokens_details')) return 'openai-responses';
  if (has('cache_read_tokens') || has('cache_write_tokens') || has('cache_write_1h_tokens'))
    return 'buckets';
  if (has('input_tokens') || has('output_tokens')) {
    // Both APIs name plain input/output alike; with no cache keys they mean the same
    // buckets, so the hint only names the shape.
    const family = hinted(provider);
    if (family === 'anthropic') return 'anthropic';
    if (family === 'openai' || has('total_tokens')) return 'openai-responses';
    return 'anthropic';
  }
  return undefined;
}

/**
 * Normalises a provider's usage object. `usage` may also be the whole response: an
 * object with `usage` (OpenAI, Anthropic) or `usageMetadata` (Gemini) inside, in which
 * case its `id` (or Gemini's `responseId`) comes back as `responseId`. `provider` is a
 * hint for the one ambiguous case ({input_tokens, output_tokens} alone).
 */
export function normaliseUsage(usage: unknown, provider?: string): NormalisedUsage | UsageProblem {
  if (!isObject(usage))
    return {
      ok: false,
      problems: [{ path: 'usage', message: `expected an object, got ${describe(usage)}` }],
    };
  let u = usage;
  let base = 'usage';
  let responseId: string | undefined;
  const inner = isObject(usage.usageMetadata)
    ? 'usageMetadata'
    : isObject(usage.usage)
      ? 'usage'
      : undefined;
  if (inner !== undefined) {
    u = usage[inner] as Obj;
    base = `usage.${inner}`;
    const id = usage.id ?? usage.responseId;
    if (typeof id === 'string' && id !== '') responseId = id;
  }
  const shape = detect(u, provider);
  if (shape === undefined)
    return {
      ok: false,
      problems: [
        {
          path: base,
          message:
            'not a usage object lookout knows: expected OpenAI (prompt_tokens or input_tokens), Anthropic (input_tokens, cache_*_input_tokens), Gemini (promptTokenCount) or lookout counts (input_tokens, cache_read_tokens)',
        },
      ],
    };
  const r = new Reader(base);
  const result =
    shape === 'openai-chat'
      ? openai(u, r, shape, CHAT)
      : shape === 'openai-responses'
        ? openai(u, r, shape, RESPONSES)
        : shape === 'anthropic'
          ? anthropic(u, r)
          : shape === 'gemini'
            ? gemini(u, r)
            : counts(u, r);
  if (result.ok && responseId !== undefined) result.responseId = responseId;
  return result;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** All tokens of the buckets: what the provider billed, each once. */
export function totalTokens(b: UsageBuckets): number {
  return b.input + b.output + b.cacheRead + b.cacheWrite5m + b.cacheWrite1h;
}
