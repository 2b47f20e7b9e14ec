/**
 * The AI cost path end to end: a running lookout (built dist/) takes events over HTTP in
 * each provider's own usage shape, prices them with the shipped table, and `lookout cost`
 * (bin/lookout, another process) reports the spend while lookout keeps running; a model
 * the table did not know is counted apart until the user's table names it and `lookout
 * cost reprice` prices it, beside the running lookout.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadPricing, type PricingTable } from '../src/aicost/pricing.js';
import type { CostReport } from '../src/aicost/report.js';
import { postUsage, startAiLookout, type AiLookout, type BatchAnswer } from './helpers/aicost.js';
import { REPO, tempDir } from './helpers/procs.js';

const run = promisify(execFile);

/** The sum of a metric's series on the running lookout's /metrics. */
async function metricSum(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

const costTotal = (url: string) => metricSum(url, 'lookout_ai_cost_usd_total');

describe('lookout cost beside a running lookout', () => {
  let dir: string;
  let lk: AiLookout;
  let prices: string;
  let table: PricingTable;
  const now = Date.now();
  const lookout = (...args: string[]) =>
    run(join(REPO, 'bin/lookout'), [...args, '--config', lk.configFile], { cwd: REPO });

  before(async () => {
    await run('npm', ['run', 'build', '--silent'], { cwd: REPO });
    dir = await tempDir('lookout-cost-e2e-');
    prices = join(dir, 'prices.yml');
    await writeFile(prices, 'models: []\n');
    lk = await startAiLookout({
      dir,
      // A short interval: the counters follow the store's totals on each refresh.
      aicost: `    interval: 1s\n    timeout: 1s\n    ingest_token_file: ${join(dir, 'token')}\n    pricing_file: ${prices}\n`,
    });
    table = await loadPricing();
  });
  after(async () => {
    await lk?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prices each usage shape with the shipped table and reports it, unknown models apart', async () => {
    const time = new Date(now).toISOString();
    const batch = [
      {
        service: 'chat',
        model: 'gpt-4o-2024-08-06',
        provider: 'openai',
        time,
        usage: {
          id: 'chatcmpl-e2e-1',
          usage: {
            prompt_tokens: 2006,
            completion_tokens: 300,
            total_tokens: 2306,
            prompt_tokens_details: { cached_tokens: 1920 },
          },
        },
      },
      {
        id: 'ant-1',
        service: 'agent',
        model: 'claude-sonnet-4-5-20250929',
        provider: 'anthropic',
        time,
        usage: {
          input_tokens: 50,
          cache_creation_input_tokens: 556,
          cache_read_input_tokens: 100000,
          cache_creation: { ephemeral_5m_input_tokens: 456, ephemeral_1h_input_tokens: 100 },
          output_tokens: 503,
        },
      },
      {
        id: 'gem-1',
        service: 'agent',
        model: 'models/gemini-2.5-flash',
        provider: 'google',
        time,
        usage: {
          promptTokenCount: 12000,
          cachedContentTokenCount: 8000,
          candidatesTokenCount: 94,
          thoughtsTokenCount: 250,
          totalTokenCount: 12344,
        },
      },
      {
        id: 'acme-1',
        service: 'chat',
        model: 'acme-llm',
        provider: 'acme',
        time,
        input_tokens: 1000,
        output_tokens: 10,
      },
    ];
    const res = await postUsage(lk.url, batch);
    const answer = (await res.json()) as BatchAnswer;
    assert.equal(answer.accepted, 4, JSON.stringify(answer));

    const price = (model: string, provider: string, b: Record<string, number>) =>
      table.price({
        model,
        provider,
        timeMs: now,
        buckets: { input: 0, output: 0, cacheRead: 0, cacheWrite5m: 0, cacheWrite1h: 0, ...b },
      })!.costUsd;
    const gpt = price('gpt-4o', 'openai', { input: 86, cacheRead: 1920, output: 300 });
    const claude = price('claude-sonnet-4-5', 'anthropic', {
      input: 50,
      cacheRead: 100000,
      cacheWrite5m: 456,
      cacheWrite1h: 100,
      output: 503,
    });
    const gemini = price('gemini-2.5-flash', 'google', {
      input: 4000,
      cacheRead: 8000,
      output: 344,
    });

    const { stdout } = await lookout('cost', '--json', '--by', 'model');
    const r = JSON.parse(stdout) as CostReport;
    assert.ok(Math.abs(r.current.costUsd - (gpt + claude + gemini)) < 1e-9, stdout);
    assert.equal(r.current.requests, 4);
    assert.equal(r.current.cacheReadTokens, 1920 + 100000 + 8000);
    assert.equal(r.current.cacheWrite1hTokens, 100);
    assert.deepEqual(r.unpriced, [{ model: 'acme-llm', requests: 1, tokens: 1010 }]);
    const byModel = new Map(r.breakdown.map((b) => [b.key, b.current.costUsd]));
    assert.ok(Math.abs(byModel.get('claude-sonnet-4-5-20250929')! - claude) < 1e-9);
    assert.equal(byModel.get('acme-llm'), 0);
    const text = await lookout('cost');
    assert.match(text.stdout, /^AI spend today: \$[\d.]+ vs \$0\.00 yesterday/);
    assert.match(text.stdout, /UNPRICED +1 request\(s\), 1010 tokens, not in the spend: acme-llm/);
  });

  it('reprice prices the unknown model once the user table has it, beside the running lookout, and lookout_ai_cost_usd_total rises by that cost without a restart', async () => {
    const costBefore = await costTotal(lk.url);
    await writeFile(
      prices,
      'models:\n  - id: acme-llm\n    provider: acme\n    prices:\n      - { input: 1000, output: 100000 }\n',
    );
    const rp = await lookout('cost', 'reprice', '--json');
    const result = JSON.parse(rp.stdout) as { priced: number; costUsd: number };
    assert.equal(result.priced, 1);
    assert.ok(Math.abs(result.costUsd - (1000 * 1000 + 10 * 100000) / 1e6) < 1e-9);
    const { stdout } = await lookout('cost', '--json');
    const r = JSON.parse(stdout) as CostReport;
    assert.equal(r.current.unpricedRequests, 0);
    assert.deepEqual(r.unpriced, []);
    // The running lookout's counters follow the store's totals: the repriced cost is counted.
    let costAfter = costBefore;
    for (let i = 0; i < 300 && costAfter - costBefore < result.costUsd - 1e-9; i++) {
      await new Promise((res) => setTimeout(res, 50));
      costAfter = await costTotal(lk.url);
    }
    assert.ok(
      Math.abs(costAfter - costBefore - result.costUsd) < 1e-9,
      `lookout_ai_cost_usd_total went from ${costBefore} to ${costAfter}; reprice priced ${result.costUsd}`,
    );
    const unpriced = await metricSum(lk.url, 'lookout_ai_unpriced_requests_total');
    assert.equal(unpriced, 1, 'unpriced requests is a counter: repricing does not lower it');
    // lookout keeps taking events after the second writer has gone.
    const res = await postUsage(lk.url, [
      {
        id: 'after-1',
        service: 'chat',
        model: 'gpt-4o',
        provider: 'openai',
        input_tokens: 1,
        output_tokens: 1,
      },
    ]);
    const after1 = (await res.json()) as BatchAnswer;
    assert.equal(after1.accepted, 1, JSON.stringify(after1));
  });
});
