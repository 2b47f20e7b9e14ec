/**
 * AI usage for the tests of the cost alerts and the AI-cost dashboard: a lookout config
 * with the aicost collector on (its own token, state, budgets, JSONL files) for a lookout
 * that AlertChain or startLookout starts, and usage events posted to its ingest route
 * the way a client does.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AI_TOKEN, postUsage } from './aicost.js';

export interface Budget {
  period: 'hour' | 'day' | 'month';
  service?: string;
  usd: number;
}

/**
 * lookout.yml (as JSON) with the aicost collector on: the token in a file under dir, the
 * state under dir, a 1 s refresh. The token file is written here.
 */
export async function aicostConfig(
  dir: string,
  opts: { budgets?: Budget[]; jsonl?: string[] } = {},
): Promise<string> {
  const tokenFile = join(dir, 'ai-ingest.token');
  await writeFile(tokenFile, `${AI_TOKEN}\n`, { mode: 0o600 });
  return JSON.stringify({
    storage: { path: join(dir, 'state') },
    collectors: {
      aicost: {
        enabled: true,
        interval: '1s',
        timeout: '1s',
        ingest_token_file: tokenFile,
        budgets: opts.budgets ?? [],
        jsonl: opts.jsonl ?? [],
      },
    },
  });
}

export interface UsageEvent {
  id: string;
  time: string;
  service: string;
  model: string;
  provider: string;
  operation: string;
  source: string;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd?: number;
}

/** One event now, with a fresh id; a reported cost_usd keeps the figures independent of prices. */
export function usageEvent(
  e: Partial<UsageEvent> & { service: string; model: string },
): UsageEvent {
  return {
    id: randomUUID(),
    time: new Date().toISOString(),
    provider: 'openai',
    operation: 'chat',
    source: 'web',
    input_tokens: 1000,
    output_tokens: 200,
    cache_read_tokens: 500,
    cache_write_tokens: 0,
    ...e,
  };
}

/**
 * POSTs a batch to lookout's ingest route; throws unless every event was accepted. A 503
 * (the store still opening: /healthz answers before it) is retried for up to 30 s.
 */
export async function postAccepted(lookoutUrl: string, events: UsageEvent[]): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const res = await postUsage(lookoutUrl, events);
    const text = await res.text();
    if (res.status === 200) return;
    if (res.status !== 503 || Date.now() > until)
      throw new Error(`POST /api/v1/ai-usage: ${res.status} ${text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
