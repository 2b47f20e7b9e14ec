/**
 * A real Prometheus scraping lookout sees `increase(lookout_ai_cost_usd_total[…])` equal
 * to the cost of the events sent (priced by the shipped table, or reported by the
 * client), across a SIGKILL and restart of lookout: the counter is seeded from the store,
 * so Prometheus sees no reset and nothing counted twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadPricing } from '../src/aicost/pricing.js';
import {
  eventually,
  freePort,
  promQuery,
  startPrometheus,
  tempDir,
  type Running,
} from './helpers/procs.js';
import { postUsage, startAiLookout, type AiLookout } from './helpers/aicost.js';

const LABELS = { service: 'chat-api', model: 'gpt-4o', source: 'http' };

describe('a real Prometheus scraping the AI cost counters across a restart', () => {
  let lookout: AiLookout | undefined;
  let prom: Running | undefined;
  let dir: string;
  let port: number;
  before(async () => {
    dir = await tempDir('lookout-aicost-prom-');
    port = await freePort();
    lookout = await startAiLookout({ dir, port });
    prom = await startPrometheus(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: lookout
    static_configs:
      - targets: ['127.0.0.1:${port}']
`);
  });
  after(async () => {
    await prom?.stop();
    await lookout?.stop();
  });

  it('sees increase() equal to the cost of the events sent, with no reset at the restart', async () => {
    const pricing = await loadPricing();
    let expected = 0;
    let n = 0;
    const send = async (count: number) => {
      const events = Array.from({ length: count }, (_, i) => {
        n++;
        const reported = i % 3 === 0 ? { cost_usd: 0.0125 * (i + 1) } : {};
        return {
          id: `p-${n}`,
          service: LABELS.service,
          model: LABELS.model,
          provider: 'openai',
          input_tokens: 1000 * (i + 1),
          output_tokens: 250,
          cache_read_tokens: 300,
          cache_write_tokens: 0,
          ...reported,
        };
      });
      const res = await postUsage(lookout!.url, { events });
      assert.equal(res.status, 200, await res.text());
      for (const e of events) {
        if (e.cost_usd !== undefined) expected += e.cost_usd;
        else {
          const p = pricing.price({
            model: e.model,
            provider: e.provider,
            timeMs: Date.now(),
            buckets: {
              input: e.input_tokens,
              output: e.output_tokens,
              cacheRead: e.cache_read_tokens,
              cacheWrite5m: 0,
              cacheWrite1h: 0,
            },
          });
          assert.ok(p, 'gpt-4o is in the shipped table');
          expected += p.costUsd;
        }
      }
    };
    const selector = `lookout_ai_cost_usd_total{service="chat-api",model="gpt-4o",source="http"}`;
    const scraped = (value: number) =>
      eventually(
        async () => {
          const r = await promQuery(prom!.url, selector);
          return r.length === 1 && Math.abs(Number(r[0]!.value[1]) - value) < 1e-9;
        },
        30_000,
        `Prometheus to scrape ${selector} = ${value}`,
      );

    // The series exists at 0 first, so increase() has its starting point.
    const zero = await postUsage(lookout!.url, {
      id: 'p-0',
      ...LABELS,
      provider: 'openai',
      input_tokens: 0,
      output_tokens: 0,
      cost_usd: 0,
    });
    assert.equal(zero.status, 200);
    await scraped(0);
    await send(20);
    await scraped(expected);
    const before = expected;

    // Killed, started again on the same port: the counter comes back at what the store holds.
    const child = lookout!.child;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    lookout = await startAiLookout({ dir, port });
    await scraped(before);
    await send(15);
    await scraped(expected);

    // Evaluated at the last sample's time: no extrapolation past the data.
    const [ts] = await promQuery(prom!.url, `timestamp(${selector})`);
    const at = Number(ts!.value[1]);
    const res = await fetch(
      `${prom!.url}/api/v1/query?query=${encodeURIComponent(`increase(${selector}[10m])`)}&time=${at}`,
    );
    const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    const increase = Number(body.data.result[0]!.value[1]);
    assert.ok(
      Math.abs(increase - expected) < 1e-9,
      `increase() ${increase} vs the events' cost ${expected}`,
    );
    const resets = await promQuery(prom!.url, `resets(${selector}[10m])`);
    assert.equal(Number(resets[0]!.value[1]), 0);
  });
});
