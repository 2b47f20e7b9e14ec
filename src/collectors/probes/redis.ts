/** Redis: PING (after AUTH and SELECT) and the length of named lists: queue depths. */
import { z } from 'zod';
import { probeRedis, type RedisOutcome } from '../../lib/probe-redis.js';
import { defineProber, readSecret } from './prober.js';
import { address } from './tcp.js';

/** Keys per target: each is a series, and the config is the only bound on them. */
const MAX_LIST_KEYS = 32;

export const prober = defineProber({
  kind: 'redis',
  title: 'Redis',
  fields: {
    address: address.describe('host:port of the Redis server.'),
    username: z
      .string()
      .min(1)
      .optional()
      .describe('ACL user name (Redis 6+); needs password_file.'),
    password_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File holding the password for AUTH (read at each probe; a trailing newline is dropped).',
      ),
    db: z.number().int().min(0).default(0).describe('Database number to SELECT for list_keys.'),
    list_keys: z
      .array(z.string().min(1))
      .max(MAX_LIST_KEYS)
      .default([])
      .describe(
        `Keys whose LLEN is exported as lookout_redis_list_length{target,key} (queue depth); at most ${MAX_LIST_KEYS}. A missing key is 0.`,
      ),
  },
  refine(t, problem) {
    if (t.username !== undefined && t.password_file === undefined)
      problem(['password_file'], 'required with username (AUTH needs a password)');
  },
  label: (t) => t.address,
  async check(t, { signal }) {
    return probeRedis(
      {
        address: t.address,
        username: t.username,
        password: t.password_file === undefined ? undefined : await readSecret(t.password_file),
        db: t.db,
        listKeys: t.list_keys,
      },
      signal,
    );
  },
  metrics: [
    {
      name: 'lookout_redis_list_length',
      help: 'LLEN of a configured Redis key (0 when absent): a queue depth.',
      labelNames: ['key'],
      samples: (outcome: RedisOutcome | undefined) =>
        [...(outcome?.listLengths ?? [])].map(([key, n]) => [{ key }, n] as const),
    },
  ],
});
