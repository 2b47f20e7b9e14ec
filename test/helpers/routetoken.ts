/**
 * A bearer token for collectors' routes in in-process tests: routes take theirs from an
 * environment variable here, as a collector's ingest_token_env names one.
 */
import type { RouteToken } from '../../src/collectors/collector.js';

export const TEST_ROUTE_TOKEN = 'test-route-token-4f1c9a7e2b';
process.env.LOOKOUT_TEST_ROUTE_TOKEN = TEST_ROUTE_TOKEN;

export const testRouteToken: RouteToken = {
  env: { name: 'LOOKOUT_TEST_ROUTE_TOKEN', setting: 'test.ingest_token_env' },
  hint: 'set test.ingest_token_env',
};

/** The header a client of those routes sends. */
export const withRouteToken = { authorization: `Bearer ${TEST_ROUTE_TOKEN}` };
