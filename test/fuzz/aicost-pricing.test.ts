/**
 * Properties of price() (src/aicost/pricing.ts) over the shipped table: any buckets of any
 * shipped model at any time after its first price cost a finite, non-negative amount
 * that grows with every bucket and equals the sum of the buckets priced one at a time
 * (within a tier); cache savings are never negative; a name no entry matches is never
 * priced (undefined, not $0), whatever prefix or date suffix it carries.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  loadPricing,
  parsePricingText,
  SHIPPED_PRICES,
  type PricingTable,
} from '../../src/aicost/pricing.js';
import type { UsageBuckets } from '../../src/aicost/schema.js';

const T = Date.parse('2026-12-01T00:00:00Z');
const small = fc.integer({ min: 0, max: 40_000 });
const buckets = fc.record({
  input: small,
  output: small,
  cacheRead: small,
  cacheWrite5m: small,
  cacheWrite1h: small,
});

describe('price() properties', () => {
  let table: PricingTable;
  let ids: string[];
  before(async () => {
    table = await loadPricing();
    ids = parsePricingText(await readFile(SHIPPED_PRICES, 'utf8'), SHIPPED_PRICES).models.map(
      (m) => m.id,
    );
  });

  it('is finite, non-negative and the sum of its buckets priced alone (under 200k input)', () => {
    fc.assert(
      fc.property(fc.nat(), buckets, (i, b) => {
        const model = ids[i % ids.length]!;
        const p = table.price({ model, provider: 'any', timeMs: T, buckets: b });
        assert.ok(p !== undefined, model);
        assert.ok(Number.isFinite(p.costUsd) && p.costUsd >= 0);
        assert.ok(p.cacheSavingsUsd >= 0);
        let sum = 0;
        for (const k of Object.keys(b) as (keyof UsageBuckets)[]) {
          const one = { input: 0, output: 0, cacheRead: 0, cacheWrite5m: 0, cacheWrite1h: 0 };
          one[k] = b[k];
          sum += table.price({ model, provider: 'any', timeMs: T, buckets: one })!.costUsd;
        }
        assert.ok(Math.abs(p.costUsd - sum) < 1e-9, `${model}: ${p.costUsd} vs ${sum}`);
      }),
    );
  });

  it('dated and prefixed forms of a shipped id price the same', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        buckets,
        fc.constantFrom('', 'openai/', 'anthropic/', 'models/', 'vertex_ai/'),
        fc.constantFrom('', '-20250929', '-2025-08-07', '-latest'),
        (i, b, prefix, suffix) => {
          const model = ids[i % ids.length]!;
          const plain = table.price({ model, provider: 'any', timeMs: T, buckets: b });
          const dressed = table.price({
            model: `${prefix}${model}${suffix}`,
            provider: 'any',
            timeMs: T,
            buckets: b,
          });
          // gpt-4o-2024-05-13 is a dated entry of its own; dressing the others changes nothing.
          if (!/\d{4}-\d{2}-\d{2}$/.test(model)) assert.deepEqual(dressed, plain);
        },
      ),
    );
  });

  it('a name no entry knows is never priced, never $0', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^zz[a-z0-9-]{0,20}$/), buckets, (model, b) => {
        assert.equal(table.price({ model, provider: 'openai', timeMs: T, buckets: b }), undefined);
      }),
    );
  });
});
