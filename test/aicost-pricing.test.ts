/**
 * The price table (src/aicost/pricing.ts, pricing/ai-prices.yml): the shipped table loads
 * and every entry says where its price came from; lookups by dated ids, prefixes and
 * aliases; price periods (a replayed old event at the old price); long-context tiers;
 * 5-minute vs 1-hour cache writes; cache savings; a user's table overriding and
 * extending; unknown models unpriced; a bad user table named field by field.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../src/config/load.js';
import {
  cleanModelId,
  loadPricing,
  parsePricingText,
  SHIPPED_PRICES,
  type PricingTable,
} from '../src/aicost/pricing.js';
import type { UsageBuckets } from '../src/aicost/schema.js';
import { readFile } from 'node:fs/promises';

const T = Date.parse('2026-12-01T12:00:00Z');

function b(partial: Partial<UsageBuckets>): UsageBuckets {
  return { input: 0, output: 0, cacheRead: 0, cacheWrite5m: 0, cacheWrite1h: 0, ...partial };
}

/** Floating-point sums of prices: equal to a millionth of a cent. */
function near(actual: number | undefined, expected: number, what = ''): void {
  assert.ok(actual !== undefined, `${what}: priced`);
  assert.ok(Math.abs(actual - expected) < 1e-8, `${what}: ${actual} ≈ ${expected}`);
}

describe('the shipped price table', () => {
  let table: PricingTable;
  before(async () => {
    table = await loadPricing();
  });

  it('loads, and every entry names its source page and the date it was checked', async () => {
    const file = parsePricingText(await readFile(SHIPPED_PRICES, 'utf8'), SHIPPED_PRICES);
    assert.ok(file.models.length >= 30);
    for (const m of file.models) {
      assert.match(m.source ?? '', /^https:\/\//, `${m.id}: source`);
      assert.match(m.checked ?? '', /^\d{4}-\d{2}-\d{2}$/, `${m.id}: checked`);
    }
    const providers = new Set(file.models.map((m) => m.provider));
    assert.deepEqual([...providers].sort(), ['anthropic', 'google', 'openai']);
  });

  it('holds prices that make sense: cache reads cheaper than input, writes dearer, tiers dearer than base', async () => {
    const file = parsePricingText(await readFile(SHIPPED_PRICES, 'utf8'), SHIPPED_PRICES);
    for (const m of file.models)
      for (const p of m.prices) {
        const where = `${m.id}${p.from ? `@${p.from}` : ''}`;
        assert.ok(p.input > 0 && p.output >= p.input, `${where}: output at least input`);
        assert.ok((p.cache_read ?? p.input) < p.input || m.id === 'gpt-4o-2024-05-13', where);
        if (m.provider === 'anthropic' && m.id !== 'claude-3-haiku') {
          // The page's multipliers: 5-minute write 1.25x, 1-hour write 2x, read 0.1x
          // (Claude 3 Haiku's row rounds them: $0.30 and $0.03 on $0.25).
          assert.ok(Math.abs(p.cache_write_5m! - 1.25 * p.input) < 1e-9, `${where}: 5m`);
          assert.ok(Math.abs(p.cache_write_1h! - 2 * p.input) < 1e-9, `${where}: 1h`);
          assert.ok(Math.abs(p.cache_read! - 0.1 * p.input) < 1e-9, `${where}: read`);
        } else if (m.provider !== 'anthropic')
          assert.equal(p.cache_write_5m, undefined, `${where}: no cache-write price`);
        for (const t of p.tiers ?? []) {
          assert.equal(t.above_input_tokens, 200_000, where);
          assert.ok(t.input > p.input && t.output > p.output, `${where}: tier dearer`);
        }
      }
  });

  it('prices each bucket at its own rate: 1M of each on Claude Sonnet 4.5', () => {
    const one = 1_000_000;
    const p = table.price({
      model: 'claude-sonnet-4-5',
      provider: 'anthropic',
      timeMs: T,
      buckets: b({ input: one / 10, output: one / 10, cacheRead: one / 10 }),
    });
    near(p?.costUsd, 0.3 + 1.5 + 0.03, 'sonnet 4.5');
    assert.equal(p?.pricedAs, 'claude-sonnet-4-5');
  });

  it('prices 5-minute and 1-hour cache writes differently (Anthropic: 1.25x and 2x input)', () => {
    const w5 = table.price({
      model: 'claude-haiku-4-5',
      provider: 'anthropic',
      timeMs: T,
      buckets: b({ cacheWrite5m: 1_000_000 }),
    });
    const w1 = table.price({
      model: 'claude-haiku-4-5',
      provider: 'anthropic',
      timeMs: T,
      buckets: b({ cacheWrite1h: 1_000_000 }),
    });
    near(w5?.costUsd, 1.25, '5m');
    near(w1?.costUsd, 2, '1h');
  });

  it('matches dated ids, provider prefixes, Bedrock and Vertex names to the entry', () => {
    const cases: [string, string, string][] = [
      ['claude-sonnet-4-5-20250929', 'anthropic', 'claude-sonnet-4-5'],
      ['anthropic/claude-sonnet-4-5-20250929', 'anthropic', 'claude-sonnet-4-5'],
      ['us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'bedrock', 'claude-sonnet-4-5'],
      ['claude-sonnet-4-5@20250929', 'vertex_ai', 'claude-sonnet-4-5'],
      ['claude-3-5-haiku-latest', 'anthropic', 'claude-3-5-haiku'],
      ['gpt-4o-2024-08-06', 'openai', 'gpt-4o'],
      ['openai/gpt-4o-mini-2024-07-18', 'openai', 'gpt-4o-mini'],
      ['gpt-5-2025-08-07', 'azure', 'gpt-5'],
      ['o3-2025-04-16', 'openai', 'o3'],
      ['models/gemini-2.5-pro', 'google', 'gemini-2.5-pro'],
      ['gemini-2.0-flash-001', 'google', 'gemini-2.0-flash'],
      ['chatgpt-4o-latest', 'openai', 'gpt-4o'],
      ['claude-opus-4-0', 'anthropic', 'claude-opus-4'],
    ];
    for (const [model, provider, entry] of cases)
      assert.equal(table.resolve(model, provider), entry, model);
  });

  it('an exact dated entry wins over the cleaned-up name: gpt-4o-2024-05-13 keeps its own price', () => {
    const old = table.price({
      model: 'gpt-4o-2024-05-13',
      provider: 'openai',
      timeMs: T,
      buckets: b({ input: 1_000_000 }),
    });
    const now = table.price({
      model: 'gpt-4o-2024-11-20',
      provider: 'openai',
      timeMs: T,
      buckets: b({ input: 1_000_000 }),
    });
    near(old?.costUsd, 5, '2024-05-13');
    near(now?.costUsd, 2.5, '2024-11-20');
  });

  it('prices an event by its own time: o3 replayed from before the 2025-06-10 cut at the old price', () => {
    const q = { model: 'o3', provider: 'openai', buckets: b({ output: 1_000_000 }) };
    const before = table.price({ ...q, timeMs: Date.parse('2025-06-09T23:59:59Z') });
    const afterCut = table.price({ ...q, timeMs: Date.parse('2025-06-10T00:00:00Z') });
    near(before?.costUsd, 40, 'before');
    assert.equal(before?.pricedAs, 'o3');
    near(afterCut?.costUsd, 8, 'after');
    assert.equal(afterCut?.pricedAs, 'o3@2025-06-10');
  });

  it('prices a request over 200k input tokens wholly at the long-context tier (Sonnet 4.5, Gemini 2.5 Pro)', () => {
    const under = table.price({
      model: 'claude-sonnet-4-5-20250929',
      provider: 'anthropic',
      timeMs: T,
      buckets: b({ input: 150_000, cacheRead: 50_000, output: 1000 }),
    });
    near(under?.costUsd, (150_000 * 3 + 50_000 * 0.3 + 1000 * 15) / 1e6, 'at 200k');
    const over = table.price({
      model: 'claude-sonnet-4-5-20250929',
      provider: 'anthropic',
      timeMs: T,
      buckets: b({ input: 150_001, cacheRead: 50_000, cacheWrite1h: 10, output: 1000 }),
    });
    near(over?.costUsd, (150_001 * 6 + 50_000 * 0.6 + 10 * 12 + 1000 * 22.5) / 1e6, 'over 200k');
    assert.equal(over?.pricedAs, 'claude-sonnet-4-5>200000');
    const gemini = table.price({
      model: 'gemini-2.5-pro',
      provider: 'google',
      timeMs: T,
      buckets: b({ input: 250_000, output: 1_000_000 }),
    });
    near(gemini?.costUsd, 250_000 * 2.5e-6 + 15, 'gemini over 200k');
  });

  it('reports what cache reads saved: cache_read tokens × (input − cache read price)', () => {
    const p = table.price({
      model: 'gpt-4.1',
      provider: 'openai',
      timeMs: T,
      buckets: b({ input: 100, cacheRead: 1_000_000 }),
    });
    near(p?.cacheSavingsUsd, 2 - 0.5, 'savings');
    near(p?.costUsd, (100 * 2 + 1_000_000 * 0.5) / 1e6, 'cost');
  });

  it('an unknown model has no price (undefined), never $0', () => {
    for (const model of ['my-finetune', 'gpt-7', 'claude-sonnet-9', ''])
      assert.equal(
        table.price({ model, provider: 'openai', timeMs: T, buckets: b({ input: 1 }) }),
        undefined,
        model,
      );
  });
});

describe("a user's price table", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lookout-pricing-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('overrides a shipped entry by id, adds its own models, aliases and patterns', async () => {
    const file = join(dir, 'prices.yml');
    await writeFile(
      file,
      [
        'models:',
        '  - id: gpt-4o',
        '    provider: openai',
        '    prices:',
        '      - { input: 1, output: 2 }',
        '  - id: acme-llm',
        '    provider: acme',
        '    aliases: [acme-large]',
        "    match: '^acme-llm-v\\d+$'",
        '    prices:',
        '      - { from: 2026-01-01, input: 10, output: 20 }',
        '      - { from: 2026-07-01, input: 5, output: 10, cache_read: 1 }',
      ].join('\n'),
    );
    const table = await loadPricing({ userFile: file });
    const one = b({ input: 1_000_000 });
    near(
      table.price({ model: 'gpt-4o-2024-08-06', provider: 'openai', timeMs: T, buckets: one })
        ?.costUsd,
      1,
      'override',
    );
    // Shipped entries the user did not name stay.
    near(
      table.price({ model: 'gpt-4o-mini', provider: 'openai', timeMs: T, buckets: one })?.costUsd,
      0.15,
      'shipped',
    );
    near(
      table.price({ model: 'acme-large', provider: 'acme', timeMs: T, buckets: one })?.costUsd,
      5,
      'alias, second period',
    );
    near(
      table.price({
        model: 'acme-llm-v3',
        provider: 'acme',
        timeMs: Date.parse('2026-03-01T00:00:00Z'),
        buckets: one,
      })?.costUsd,
      10,
      'pattern, first period',
    );
    assert.equal(
      table.price({
        model: 'acme-llm',
        provider: 'acme',
        timeMs: Date.parse('2025-12-31T23:59:59Z'),
        buckets: one,
      }),
      undefined,
      'before its first price: unpriced',
    );
  });

  it('rejects a bad table with the file and each wrong field named', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(
      file,
      [
        'models:',
        '  - id: x',
        '    provider: acme',
        '    prices:',
        '      - { input: -1, output: 2, cache_reed: 1 }',
        '      - { input: 1, output: 2 }',
        '  - id: y',
        '    provider: acme',
        "    match: '('",
        '    prices:',
        '      - { from: 2026-13-01, input: 1, output: 1 }',
      ].join('\n'),
    );
    await assert.rejects(loadPricing({ userFile: file }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.message;
      assert.match(text, /bad\.yml: models\[0\]\.prices\[0\]: Unrecognized key: "cache_reed"/);
      assert.match(text, /bad\.yml: models\[0\]\.prices\[0\]\.input: Too small/);
      assert.match(text, /models\[0\]\.prices\[1\]\.from: every price period after the first/);
      assert.match(text, /models\[1\]\.match: not a valid regular expression/);
      assert.match(text, /models\[1\]\.prices\[0\]\.from: not a real date/);
      return true;
    });
  });

  it('a missing user table is a config error naming the setting', async () => {
    await assert.rejects(loadPricing({ userFile: join(dir, 'nope.yml') }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /nope\.yml: no such file; check collectors\.aicost\.pricing_file/);
      return true;
    });
  });
});

describe('cleanModelId', () => {
  it('drops prefixes and date suffixes, keeps the name', () => {
    assert.equal(cleanModelId('Anthropic/Claude-Sonnet-4-5-20250929'), 'claude-sonnet-4-5');
    assert.equal(cleanModelId('gpt-4.1-mini-2025-04-14'), 'gpt-4.1-mini');
    assert.equal(cleanModelId('gemini-3-pro-preview'), 'gemini-3-pro-preview');
    assert.equal(cleanModelId('o4-mini'), 'o4-mini');
  });
});
