import { z } from 'zod';
import type { RouteToken } from './collector.js';

/**
 * The config fields of a collector whose routes take writes (an ingest): its own bearer
 * token, from a file or an environment variable. Spread into collectorSchema's own
 * fields; pass the parsed block to routeToken().
 */
export const routeTokenSchema = {
  ingest_token_file: z
    .string()
    .min(1)
    .optional()
    .describe(
      "A file holding the bearer token clients send to this collector's routes (Authorization: Bearer <token>); one trailing newline is dropped. Neither this nor ingest_token_env: the routes are off (404). The scrape credentials (web config basic auth) never open them.",
    ),
  ingest_token_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name like INGEST_TOKEN')
    .optional()
    .describe(
      "An environment variable holding the bearer token for this collector's routes, instead of ingest_token_file.",
    ),
};

export interface RouteTokenConfig {
  ingest_token_file?: string;
  ingest_token_env?: string;
}

/** Where the token of collector `name`'s routes comes from, with the settings that say so. */
export function routeToken(name: string, config: RouteTokenConfig): RouteToken {
  const at = `collectors.${name}`;
  return {
    file:
      config.ingest_token_file === undefined
        ? undefined
        : { path: config.ingest_token_file, setting: `${at}.ingest_token_file` },
    env:
      config.ingest_token_env === undefined
        ? undefined
        : { name: config.ingest_token_env, setting: `${at}.ingest_token_env` },
    hint: `set ${at}.ingest_token_file or ${at}.ingest_token_env`,
  };
}
