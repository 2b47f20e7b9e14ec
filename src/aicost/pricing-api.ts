/**
 * Stand-in for src/aicost/pricing.ts (p-pricing) until it lands: the contract's
 * signatures, pricing nothing (every model unpriced, never $0). Replaced on merge by a
 * re-export of the real module.
 */
import type { UsageBuckets } from './schema.js';

export { bucketsFromCounts, normaliseUsage, totalTokens } from './usage.js';

export interface PriceQuery {
  model: string;
  provider: string;
  timeMs: number;
  buckets: UsageBuckets;
}

export interface Priced {
  costUsd: number;
  pricedAs: string;
  cacheSavingsUsd: number;
}

export interface PricingTable {
  price(q: PriceQuery): Priced | undefined;
}

export function loadPricing(_opts: { userFile?: string }): Promise<PricingTable> {
  return Promise.resolve({ price: () => undefined });
}
