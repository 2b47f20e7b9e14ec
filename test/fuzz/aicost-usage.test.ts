/**
 * Properties of normaliseUsage() (src/aicost/usage.ts) over generated usage objects of each
 * provider's shape: a consistent object's buckets add up to the total the provider bills
 * (each token once, no cache token counted again as input) and none is negative; an
 * inconsistent one (a part above its whole, a negative count) is rejected with a path;
 * random values never throw.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { normaliseUsage, totalTokens } from '../../src/aicost/usage.js';
import type { UsageBuckets } from '../../src/aicost/schema.js';

const n = fc.integer({ min: 0, max: 2_000_000 });

function nonNegative(b: UsageBuckets): boolean {
  return Object.values(b).every((v) => Number.isSafeInteger(v) && v >= 0);
}

/** A whole and a part of it. */
const wholeAndPart = fc.tuple(n, n).map(([a, b]) => [Math.max(a, b), Math.min(a, b)] as const);

/** Keys no provider sends today (a new detail field), with any JSON value. */
const extra = fc.dictionary(fc.stringMatching(/^x_[a-z]{1,8}$/), fc.jsonValue(), { maxKeys: 3 });

describe('normaliseUsage properties', () => {
  it('OpenAI chat: buckets sum to total_tokens, none negative', () => {
    fc.assert(
      fc.property(wholeAndPart, wholeAndPart, (prompt, completion) => {
        const usage = {
          prompt_tokens: prompt[0],
          completion_tokens: completion[0],
          total_tokens: prompt[0] + completion[0],
          prompt_tokens_details: { cached_tokens: prompt[1], audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: completion[1] },
        };
        const r = normaliseUsage(usage);
        assert.ok(r.ok);
        assert.equal(totalTokens(r.buckets), usage.total_tokens);
        assert.equal(r.buckets.cacheRead, prompt[1]);
        assert.ok(nonNegative(r.buckets));
      }),
    );
  });

  it('OpenAI responses: buckets sum to total_tokens, none negative', () => {
    fc.assert(
      fc.property(wholeAndPart, wholeAndPart, (input, output) => {
        const usage = {
          input_tokens: input[0],
          input_tokens_details: { cached_tokens: input[1] },
          output_tokens: output[0],
          output_tokens_details: { reasoning_tokens: output[1] },
          total_tokens: input[0] + output[0],
        };
        const r = normaliseUsage(usage);
        assert.ok(r.ok);
        assert.equal(totalTokens(r.buckets), usage.total_tokens);
        assert.ok(nonNegative(r.buckets));
      }),
    );
  });

  it('Anthropic: buckets sum to input + cache read + cache creation + output, writes split', () => {
    fc.assert(
      fc.property(n, n, n, n, n, fc.boolean(), (input, output, read, w5m, w1h, breakdown) => {
        const usage: Record<string, unknown> = {
          input_tokens: input,
          output_tokens: output,
          cache_read_input_tokens: read,
          cache_creation_input_tokens: breakdown ? w5m + w1h : w5m,
        };
        if (breakdown)
          usage.cache_creation = { ephemeral_5m_input_tokens: w5m, ephemeral_1h_input_tokens: w1h };
        const r = normaliseUsage(usage);
        assert.ok(r.ok);
        const billed = input + output + read + (usage.cache_creation_input_tokens as number);
        assert.equal(totalTokens(r.buckets), billed);
        assert.equal(r.buckets.cacheWrite1h, breakdown ? w1h : 0);
        assert.ok(nonNegative(r.buckets));
      }),
    );
  });

  it('Gemini: buckets sum to totalTokenCount, none negative', () => {
    fc.assert(
      fc.property(wholeAndPart, n, n, n, (prompt, candidates, thoughts, tool) => {
        const usage = {
          promptTokenCount: prompt[0],
          cachedContentTokenCount: prompt[1],
          candidatesTokenCount: candidates,
          thoughtsTokenCount: thoughts,
          toolUsePromptTokenCount: tool,
          totalTokenCount: prompt[0] + candidates + thoughts + tool,
        };
        const r = normaliseUsage(usage);
        assert.ok(r.ok);
        assert.equal(totalTokens(r.buckets), usage.totalTokenCount);
        assert.equal(r.buckets.cacheRead, prompt[1]);
        assert.ok(nonNegative(r.buckets));
      }),
    );
  });

  it('unknown detail keys change nothing', () => {
    fc.assert(
      fc.property(wholeAndPart, n, extra, extra, (prompt, completion, top, details) => {
        const base = {
          prompt_tokens: prompt[0],
          completion_tokens: completion,
          prompt_tokens_details: { cached_tokens: prompt[1] },
        };
        const withExtra = {
          ...top,
          ...base,
          prompt_tokens_details: { ...details, ...base.prompt_tokens_details },
        };
        assert.deepEqual(normaliseUsage(withExtra), normaliseUsage(base));
      }),
    );
  });

  it('a cached count above the prompt it is part of is rejected, never a negative bucket', () => {
    fc.assert(
      fc.property(n, fc.integer({ min: 1, max: 1000 }), (prompt, over) => {
        for (const usage of [
          { prompt_tokens: prompt, prompt_tokens_details: { cached_tokens: prompt + over } },
          { input_tokens: prompt, input_tokens_details: { cached_tokens: prompt + over } },
          { promptTokenCount: prompt, cachedContentTokenCount: prompt + over },
        ]) {
          const r = normaliseUsage(usage);
          assert.equal(r.ok, false);
          assert.ok(!r.ok);
          assert.ok(r.problems.every((p) => p.path.startsWith('usage.') && p.message !== ''));
        }
      }),
    );
  });

  it('any JSON value gives a result or field-level problems, never a throw or a negative bucket', () => {
    const usageLike = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          prompt_tokens: fc.jsonValue(),
          completion_tokens: fc.jsonValue(),
          prompt_tokens_details: fc.jsonValue(),
          input_tokens: fc.jsonValue(),
          cache_creation: fc.jsonValue(),
          cache_creation_input_tokens: fc.jsonValue(),
          promptTokenCount: fc.jsonValue(),
          cachedContentTokenCount: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(
        usageLike,
        fc.constantFrom(undefined, 'openai', 'anthropic', 'google'),
        (u, p) => {
          const r = normaliseUsage(u, p);
          if (r.ok) assert.ok(nonNegative(r.buckets));
          else
            assert.ok(r.problems.length > 0 && r.problems.every((x) => x.path.startsWith('usage')));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
