/**
 * normaliseUsage() on usage objects shaped as the providers document them:
 * - OpenAI Chat Completions `usage` (CompletionUsage: prompt_tokens includes
 *   prompt_tokens_details.cached_tokens; completion_tokens_details.reasoning_tokens),
 *   https://platform.openai.com/docs/api-reference/chat/object and the prompt-caching guide
 *   https://platform.openai.com/docs/guides/prompt-caching;
 * - OpenAI Responses `usage` (ResponseUsage: input_tokens, input_tokens_details.cached_tokens,
 *   output_tokens_details.reasoning_tokens, total_tokens),
 *   https://platform.openai.com/docs/api-reference/responses/object;
 * - Anthropic Messages `usage` (input_tokens, cache_creation_input_tokens,
 *   cache_read_input_tokens, cache_creation.ephemeral_5m_input_tokens /
 *   ephemeral_1h_input_tokens, server_tool_use, service_tier),
 *   https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching;
 * - Gemini `usageMetadata` (promptTokenCount includes cachedContentTokenCount;
 *   thoughtsTokenCount; toolUsePromptTokenCount; totalTokenCount),
 *   https://ai.google.dev/api/generate-content#UsageMetadata.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketsFromCounts, normaliseUsage, totalTokens } from '../src/aicost/usage.js';

describe('normaliseUsage: OpenAI Chat Completions', () => {
  it('takes cached tokens out of prompt_tokens and keeps reasoning in output', () => {
    const usage = {
      prompt_tokens: 2006,
      completion_tokens: 300,
      total_tokens: 2306,
      prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 128,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    };
    const r = normaliseUsage(usage);
    assert.deepEqual(r, {
      ok: true,
      shape: 'openai-chat',
      buckets: { input: 86, output: 300, cacheRead: 1920, cacheWrite5m: 0, cacheWrite1h: 0 },
    });
    assert.ok(r.ok);
    assert.equal(totalTokens(r.buckets), usage.total_tokens);
  });

  it('reads the whole chat.completion object: usage inside, the chatcmpl- id as responseId', () => {
    const r = normaliseUsage({
      id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
      object: 'chat.completion',
      model: 'gpt-4o-2024-08-06',
      usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 },
    });
    assert.ok(r.ok);
    assert.equal(r.responseId, 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT');
    assert.deepEqual(r.buckets, {
      input: 19,
      output: 10,
      cacheRead: 0,
      cacheWrite5m: 0,
      cacheWrite1h: 0,
    });
  });

  it('treats null details as absent (some OpenAI-compatible servers send null)', () => {
    const r = normaliseUsage({
      prompt_tokens: 5,
      completion_tokens: 7,
      prompt_tokens_details: null,
      completion_tokens_details: null,
    });
    assert.ok(r.ok);
    assert.equal(r.buckets.input, 5);
  });

  it('rejects cached_tokens above prompt_tokens, naming the field', () => {
    const r = normaliseUsage({
      prompt_tokens: 100,
      completion_tokens: 1,
      prompt_tokens_details: { cached_tokens: 150 },
    });
    assert.deepEqual(r, {
      ok: false,
      problems: [
        {
          path: 'usage.prompt_tokens_details.cached_tokens',
          message: '150 is more than prompt_tokens (100), which includes it',
        },
      ],
    });
  });

  it('rejects reasoning above completion, negative, fractional and string counts, each by path', () => {
    const r = normaliseUsage({
      prompt_tokens: -1,
      completion_tokens: 10,
      completion_tokens_details: { reasoning_tokens: 11 },
      total_tokens: 1.5,
      prompt_tokens_details: { cached_tokens: '3' },
    });
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.problems.map((p) => p.path),
      [
        'usage.prompt_tokens',
        'usage.prompt_tokens_details.cached_tokens',
        'usage.completion_tokens_details.reasoning_tokens',
      ],
    );
    assert.match(r.problems[0]!.message, /non-negative whole number.*-1/);
  });
});

describe('normaliseUsage: OpenAI Responses', () => {
  it('takes input_tokens_details.cached_tokens out of input_tokens; reasoning stays in output', () => {
    const usage = {
      input_tokens: 75,
      input_tokens_details: { cached_tokens: 32 },
      output_tokens: 1186,
      output_tokens_details: { reasoning_tokens: 1024 },
      total_tokens: 1261,
    };
    const r = normaliseUsage(usage);
    assert.deepEqual(r, {
      ok: true,
      shape: 'openai-responses',
      buckets: { input: 43, output: 1186, cacheRead: 32, cacheWrite5m: 0, cacheWrite1h: 0 },
    });
    assert.ok(r.ok);
    assert.equal(totalTokens(r.buckets), usage.total_tokens);
  });

  it('reads the whole response object with its resp_ id', () => {
    const r = normaliseUsage({
      id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
      object: 'response',
      usage: {
        input_tokens: 36,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 87,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 123,
      },
    });
    assert.ok(r.ok);
    assert.equal(r.shape, 'openai-responses');
    assert.equal(r.responseId, 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b');
  });

  it('rejects cached above input', () => {
    const r = normaliseUsage({
      input_tokens: 10,
      input_tokens_details: { cached_tokens: 11 },
      output_tokens: 0,
    });
    assert.ok(!r.ok);
    assert.equal(r.problems[0]!.path, 'usage.input_tokens_details.cached_tokens');
  });
});

describe('normaliseUsage: Anthropic Messages', () => {
  it('keeps input as it is (it excludes cache reads and writes) and splits writes 5m/1h', () => {
    const usage = {
      input_tokens: 50,
      cache_creation_input_tokens: 556,
      cache_read_input_tokens: 100000,
      cache_creation: { ephemeral_5m_input_tokens: 456, ephemeral_1h_input_tokens: 100 },
      output_tokens: 503,
      service_tier: 'standard',
      server_tool_use: { web_search_requests: 0 },
    };
    const r = normaliseUsage(usage);
    assert.deepEqual(r, {
      ok: true,
      shape: 'anthropic',
      buckets: { input: 50, output: 503, cacheRead: 100000, cacheWrite5m: 456, cacheWrite1h: 100 },
    });
    assert.ok(r.ok);
    assert.equal(totalTokens(r.buckets), 50 + 556 + 100000 + 503);
  });

  it('counts cache_creation_input_tokens as 5-minute writes without the breakdown', () => {
    const r = normaliseUsage({
      input_tokens: 21,
      cache_creation_input_tokens: 188086,
      cache_read_input_tokens: 0,
      output_tokens: 393,
    });
    assert.ok(r.ok);
    assert.equal(r.buckets.cacheWrite5m, 188086);
    assert.equal(r.buckets.cacheWrite1h, 0);
  });

  it('reads the whole message with its msg_ id', () => {
    const r = normaliseUsage({
      id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      type: 'message',
      model: 'claude-sonnet-4-5-20250929',
      usage: { input_tokens: 2095, output_tokens: 503 },
    });
    assert.ok(r.ok);
    assert.equal(r.shape, 'anthropic');
    assert.equal(r.responseId, 'msg_013Zva2CMHLNnXjNJJKqJ2EF');
  });

  it('rejects a breakdown that does not add up to cache_creation_input_tokens', () => {
    const r = normaliseUsage({
      input_tokens: 1,
      output_tokens: 1,
      cache_creation_input_tokens: 100,
      cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 100 },
    });
    assert.ok(!r.ok);
    assert.equal(r.problems[0]!.path, 'usage.cache_creation');
    assert.match(r.problems[0]!.message, /must equal cache_creation_input_tokens \(100\)/);
  });

  it('the provider hint picks Anthropic for a bare {input_tokens, output_tokens}', () => {
    const r = normaliseUsage({ input_tokens: 3, output_tokens: 4 }, 'anthropic');
    assert.ok(r.ok);
    assert.equal(r.shape, 'anthropic');
    const o = normaliseUsage({ input_tokens: 3, output_tokens: 4 }, 'openai');
    assert.ok(o.ok);
    assert.equal(o.shape, 'openai-responses');
    assert.deepEqual(r.buckets, o.buckets);
  });
});

describe('normaliseUsage: Gemini usageMetadata', () => {
  it('takes cachedContentTokenCount out of promptTokenCount and bills thoughts as output', () => {
    const usage = {
      promptTokenCount: 12000,
      cachedContentTokenCount: 8000,
      candidatesTokenCount: 94,
      thoughtsTokenCount: 250,
      totalTokenCount: 12344,
      promptTokensDetails: [{ modality: 'TEXT', tokenCount: 12000 }],
      cacheTokensDetails: [{ modality: 'TEXT', tokenCount: 8000 }],
    };
    const r = normaliseUsage(usage);
    assert.deepEqual(r, {
      ok: true,
      shape: 'gemini',
      buckets: { input: 4000, output: 344, cacheRead: 8000, cacheWrite5m: 0, cacheWrite1h: 0 },
    });
    assert.ok(r.ok);
    assert.equal(totalTokens(r.buckets), usage.totalTokenCount);
  });

  it('counts toolUsePromptTokenCount as input and reads a whole response with responseId', () => {
    const r = normaliseUsage({
      responseId: 'mTtUaPXvF8qEz7IPvMbc4Qk',
      modelVersion: 'gemini-2.5-flash',
      usageMetadata: {
        promptTokenCount: 10,
        toolUsePromptTokenCount: 5,
        candidatesTokenCount: 3,
        totalTokenCount: 18,
      },
    });
    assert.ok(r.ok);
    assert.equal(r.responseId, 'mTtUaPXvF8qEz7IPvMbc4Qk');
    assert.equal(r.buckets.input, 15);
    assert.equal(totalTokens(r.buckets), 18);
  });

  it('rejects cachedContentTokenCount above promptTokenCount', () => {
    const r = normaliseUsage({
      usageMetadata: { promptTokenCount: 5, cachedContentTokenCount: 6 },
    });
    assert.ok(!r.ok);
    assert.equal(r.problems[0]!.path, 'usage.usageMetadata.cachedContentTokenCount');
  });
});

describe('normaliseUsage: other input', () => {
  it('reads lookout counts given as a usage object', () => {
    const r = normaliseUsage({
      input_tokens: 1,
      output_tokens: 2,
      cache_read_tokens: 3,
      cache_write_tokens: 4,
    });
    assert.ok(r.ok);
    assert.equal(r.shape, 'buckets');
    assert.deepEqual(r.buckets, {
      input: 1,
      output: 2,
      cacheRead: 3,
      cacheWrite5m: 4,
      cacheWrite1h: 0,
    });
  });

  it('rejects what is not a usage object, saying what it expected', () => {
    for (const bad of [null, 3, 'x', [], {}, { tokens: 5 }]) {
      const r = normaliseUsage(bad);
      assert.equal(r.ok, false, JSON.stringify(bad));
      assert.ok(!r.ok);
      assert.equal(r.problems.length, 1);
      assert.match(r.problems[0]!.path, /^usage/);
    }
  });
});

describe('bucketsFromCounts', () => {
  it('splits cache_write_tokens into 1h (given) and 5m (the rest)', () => {
    const r = bucketsFromCounts({
      input_tokens: 10,
      output_tokens: 5,
      cache_read_tokens: 100,
      cache_write_tokens: 40,
      cache_write_1h_tokens: 15,
    });
    assert.deepEqual(r, {
      ok: true,
      shape: 'buckets',
      buckets: { input: 10, output: 5, cacheRead: 100, cacheWrite5m: 25, cacheWrite1h: 15 },
    });
  });

  it('rejects 1h writes above all writes and bad counts by field name', () => {
    const r = bucketsFromCounts({
      input_tokens: -3,
      output_tokens: 1,
      cache_write_tokens: 1,
      cache_write_1h_tokens: 2,
    });
    assert.ok(!r.ok);
    assert.deepEqual(
      r.problems.map((p) => p.path),
      ['input_tokens', 'cache_write_1h_tokens'],
    );
  });
});
