/**
 * What the ledger side (event.ts, the aicost collector) uses of pricing and usage
 * normalisation, in one import: the real modules, pricing.ts and usage.ts.
 */
export { bucketsFromCounts, normaliseUsage, totalTokens } from './usage.js';
export {
  loadPricing,
  type Price as Priced,
  type PriceQuery,
  type PricingTable,
} from './pricing.js';
