/**
 * The ledger under SIGKILL: HTTP clients send batches concurrently (each retried with the
 * same ids until acknowledged, as an idempotent client does), a writer appends JSONL
 * lines, and lookout is killed at random points and started again, several times. Then:
 * every acknowledged event is stored once, the counters equal the store's sums, and no
 * JSONL line was lost or read twice (a replayed line would count as a duplicate).
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findSamples, sampleValue } from './helpers/exposition.js';
import { eventually, tempDir } from './helpers/procs.js';
import { postUsage, readStore, startAiLookout, type AiLookout } from './helpers/aicost.js';

const KILLS = 4;
const CLIENTS = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the AI usage ledger killed with SIGKILL while it ingests', () => {
  let lookout: AiLookout | undefined;
  after(async () => {
    await lookout?.stop();
  });

  it('stores every acknowledged event exactly once, its counters equal the store, and no JSONL line is lost or doubled', async () => {
    const dir = await tempDir('lookout-aicost-crash-');
    const jsonl = join(dir, 'usage.jsonl');
    appendFileSync(jsonl, '');
    const aicost = [
      `    ingest_token_file: ${join(dir, 'token')}`,
      `    jsonl: [${jsonl}]`,
      '',
    ].join('\n');
    lookout = await startAiLookout({ dir, aicost });
    let done = false;
    // Set when a restart fails: the clients stop retrying, so the test fails instead of hanging.
    let abandoned = false;
    const acknowledged = new Set<string>();
    let sent = 0;

    const client = async (c: number) => {
      for (let b = 0; !done; b++) {
        const n = 1 + ((b * 7 + c) % 40);
        const events = Array.from({ length: n }, (_, i) => ({
          id: `c${c}-b${b}-${i}`,
          service: `svc-${i % 3}`,
          model: i % 2 ? 'gpt-4o' : 'claude-sonnet-4-5',
          provider: i % 2 ? 'openai' : 'anthropic',
          input_tokens: 100 + i,
          output_tokens: 10 + b,
          cache_read_tokens: i,
          cache_write_tokens: i % 5,
          ...(i % 4 === 0 ? { cost_usd: 0.001 * (i + 1) } : {}),
        }));
        sent += n;
        // The same batch until it is answered: what a client with idempotency keys does.
        while (!abandoned) {
          try {
            const res = await postUsage(lookout!.url, { events });
            if (res.status === 200) {
              await res.arrayBuffer();
              for (const e of events) acknowledged.add(e.id);
              break;
            }
            await res.arrayBuffer();
          } catch {
            // Killed under it, or not up again yet.
          }
          await sleep(20);
        }
      }
    };
    let lines = 0;
    const writer = async () => {
      while (!done) {
        const block = Array.from({ length: 1 + (lines % 9) }, () => {
          lines++;
          return (
            JSON.stringify({
              id: `line-${lines}`,
              service: 'batch-job',
              model: 'gpt-4o-mini',
              provider: 'openai',
              input_tokens: lines,
              output_tokens: 3,
            }) + '\n'
          );
        }).join('');
        appendFileSync(jsonl, block);
        await sleep(5);
      }
    };
    const work = [...Array.from({ length: CLIENTS }, (_, c) => client(c)), writer()];

    try {
      for (let k = 0; k < KILLS; k++) {
        await sleep(300 + Math.floor(Math.random() * 1200));
        const child = lookout.child;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
        lookout = await startAiLookout({ dir, aicost });
      }
    } catch (err) {
      abandoned = done = true;
      await Promise.all(work);
      throw err;
    }
    await sleep(500);
    done = true;
    await Promise.all(work);

    const running = lookout;
    const scrape = async () => (await fetch(`${running.url}/metrics`)).text();
    // The tail has read every line written.
    await eventually(
      async () =>
        (sampleValue(await scrape(), 'lookout_ai_jsonl_lines_total', {
          file: jsonl,
          result: 'stored',
        }) ?? 0) >= lines,
      30_000,
      `all ${lines} JSONL lines stored`,
    );
    const text = await scrape();
    const store = readStore(running.db, (d) => ({
      http: d.prepare("SELECT id FROM events WHERE source = 'http'").pluck().all() as string[],
      lines: d
        .prepare("SELECT count(*) FROM events WHERE source = ? AND id LIKE 'line-%'")
        .pluck()
        .get(`jsonl:${jsonl}`) as number,
      sums: d
        .prepare(
          `SELECT sum(requests) AS requests, sum(input_tokens) AS input, sum(output_tokens) AS output,
            sum(cache_read_tokens) AS cacheRead, sum(cache_write_5m_tokens + cache_write_1h_tokens) AS cacheWrite,
            sum(cost_usd) AS cost FROM totals`,
        )
        .get() as Record<
        'requests' | 'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cost',
        number
      >,
      events: d
        .prepare(
          `SELECT count(*) AS requests, sum(input_tokens) AS input, sum(output_tokens) AS output,
            sum(cache_read_tokens) AS cacheRead, sum(cache_write_5m_tokens + cache_write_1h_tokens) AS cacheWrite,
            sum(cost_usd) AS cost FROM events`,
        )
        .get() as Record<
        'requests' | 'input' | 'output' | 'cacheRead' | 'cacheWrite' | 'cost',
        number
      >,
    }));

    // Every acknowledged event once, and nothing that was not sent.
    assert.ok(acknowledged.size > 100, `only ${acknowledged.size} events acknowledged`);
    assert.equal(acknowledged.size, sent, 'every batch was retried until acknowledged');
    assert.equal(store.http.length, acknowledged.size);
    assert.deepEqual(new Set(store.http), acknowledged);
    // Every JSONL line once: stored, none read twice (a replay would be a duplicate).
    assert.equal(store.lines, lines);
    const jsonlCount = (result: string) =>
      sampleValue(text, 'lookout_ai_jsonl_lines_total', { file: jsonl, result });
    assert.equal(jsonlCount('stored'), lines);
    assert.equal(jsonlCount('duplicate'), 0, 'no JSONL line was read twice');
    assert.equal(jsonlCount('rejected'), 0);

    // The counters are the store's sums, and the rollups agree with the raw events.
    const sum = (name: string, labels: Record<string, string> = {}) =>
      findSamples(text, name, labels).reduce((a, s) => a + s.value, 0);
    assert.equal(sum('lookout_ai_requests_total'), store.sums.requests);
    assert.equal(store.sums.requests, acknowledged.size + lines);
    assert.equal(store.events.requests, store.sums.requests);
    for (const [type, key] of [
      ['input', 'input'],
      ['output', 'output'],
      ['cache_read', 'cacheRead'],
      ['cache_write', 'cacheWrite'],
    ] as const) {
      assert.equal(sum('lookout_ai_tokens_total', { type }), store.sums[key], type);
      assert.equal(store.events[key], store.sums[key], type);
    }
    const cost = sum('lookout_ai_cost_usd_total');
    assert.ok(store.sums.cost > 0);
    assert.ok(
      Math.abs(cost - store.sums.cost) < 1e-9 * store.sums.cost,
      `${cost} vs ${store.sums.cost}`,
    );
    assert.ok(Math.abs(store.events.cost - store.sums.cost) < 1e-9 * store.sums.cost);
    assert.equal(
      sum('lookout_ai_ingest_events_total', { result: 'accepted' }),
      acknowledged.size + lines,
    );
  });
});
