/**
 * The ledger itself (src/aicost/ledger.ts and its worker) on a real SQLite file: writes
 * that arrive together share transactions and each learns which of its events were new,
 * and pruning deletes raw events past the retention while rollups and totals stay, then
 * gives the freed pages back (incremental vacuum).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import type { StoredEvent } from '../src/aicost/event.js';
import { Ledger, type SeedResult } from '../src/aicost/ledger.js';
import { Tallies } from '../src/collectors/aicost.js';
import { DATABASE_FILE } from '../src/aicost/schema.js';
import { readStore } from './helpers/aicost.js';
import { tempDir } from './helpers/procs.js';

const DAY = 86_400_000;

function stored(id: string, timeMs: number, over: Partial<StoredEvent> = {}): StoredEvent {
  return {
    id,
    timeMs,
    receivedMs: Date.now(),
    service: 'svc',
    model: 'm',
    provider: 'p',
    operation: 'chat',
    source: 'http',
    buckets: { input: 10, output: 5, cacheRead: 2, cacheWrite5m: 1, cacheWrite1h: 0 },
    costUsd: 0.5,
    costSource: 'reported',
    pricedAs: null,
    rawUsage: null,
    cacheSavingsUsd: 0,
    ...over,
  };
}

describe('the ledger', () => {
  it('starts a transaction once 1,000 events wait: four bodies of 500 sent together are answered two by two, each in full', async () => {
    const dir = await tempDir('lookout-ledger-');
    const ledger = await Ledger.open(dir, { retentionMs: 90 * DAY });
    try {
      // The worker's answers, a message per transaction: how many requests each answers.
      const worker = (ledger as unknown as { worker: Worker }).worker;
      const perTransaction: number[] = [];
      worker.on('message', (m: { seq: number; replies?: unknown[] }) => {
        if (m.seq !== -1) perTransaction.push(m.replies?.length ?? 1);
      });
      const now = Date.now();
      const body = (b: number) =>
        new TextEncoder().encode(
          JSON.stringify({
            events: Array.from({ length: 500 }, (_, i) => ({
              id: `b${b}-${i}`,
              service: 'svc',
              model: 'm',
              provider: 'p',
              input_tokens: 10,
              output_tokens: 5,
              cost_usd: 0.001,
            })),
          }),
        );
      // One turn: the four travel to the worker in one message.
      const answers = await Promise.all(
        [0, 1, 2, 3].map((b) => ledger.ingest({ raw: body(b), now, maxBatch: 1000 })),
      );
      assert.deepEqual(perTransaction, [2, 2]);
      for (const a of answers) {
        assert.ok('answer' in a, JSON.stringify(a));
        assert.equal(a.answer.status, 200);
        assert.deepEqual(a.counts, [['http', 'accepted', 500]]);
      }
      const seed = await ledger.seed();
      assert.equal(seed.totals[0]!.requests, 2000);
    } finally {
      await ledger.close();
    }
  });

  it('answers concurrent writes each with which of its events were new, duplicates within one transaction too', async () => {
    const dir = await tempDir('lookout-ledger-');
    const ledger = await Ledger.open(dir, { retentionMs: 90 * DAY });
    try {
      const now = Date.now();
      const writes = Array.from({ length: 200 }, (_, i) =>
        ledger.write({ events: [stored(`e${i % 150}`, now), stored(`x${i}`, now)] }),
      );
      const answers = await Promise.all(writes);
      // e0..e49 were sent twice: the first write of each stores it, the second finds it.
      answers.forEach((a, i) => {
        assert.deepEqual([...a], [i < 150 ? 1 : 0, 1], `write ${i}`);
      });
      const seed = await ledger.seed();
      assert.equal(seed.totals.length, 1);
      assert.equal(seed.totals[0]!.requests, 350);
      assert.equal(seed.totals[0]!.cost, 175);
      assert.deepEqual(
        seed.counts.filter((c) => c.kind === 'events').map((c) => [c.result, c.n]),
        [
          ['accepted', 350],
          ['duplicate', 50],
        ],
      );
    } finally {
      await ledger.close();
    }
  });

  it('tells which events of large writes were new when duplicates fall anywhere in them, and the store sums what was new', async () => {
    // Large writes are inserted many rows to a statement: a duplicate inside one such
    // run (stored before, or repeated in the same write) must still be told apart.
    const dir = await tempDir('lookout-ledger-');
    const ledger = await Ledger.open(dir, { retentionMs: 90 * DAY });
    try {
      const now = Date.now();
      const first = await ledger.write({
        events: Array.from({ length: 30 }, (_, i) => stored(`old${i * 7}`, now)),
      });
      assert.deepEqual([...first], new Array(30).fill(1));
      // 260 events: new ones, ids stored above (every 7th of old0..old202), and repeats
      // of this write's own ids, across runs of every length.
      const ids: string[] = [];
      for (let i = 0; i < 260; i++) {
        if (i % 11 === 3) ids.push(`new${i - 1}`);
        else if (i < 210 && i % 7 === 0) ids.push(`old${i}`);
        else ids.push(`new${i}`);
      }
      ids.push('new259', 'new258');
      const expected: number[] = [];
      const seen = new Set<string>();
      for (const id of ids) {
        const fresh = !id.startsWith('old') && !seen.has(id);
        seen.add(id);
        expected.push(fresh ? 1 : 0);
      }
      const [big, small] = await Promise.all([
        ledger.write({ events: ids.map((id) => stored(id, now)) }),
        ledger.write({ events: [stored('old0', now), stored('lone', now), stored('lone', now)] }),
      ]);
      assert.deepEqual([...big], expected);
      assert.deepEqual([...small], [0, 1, 0]);
      const newCount = expected.filter((x) => x === 1).length + 1;
      const seed = await ledger.seed();
      assert.equal(seed.totals[0]!.requests, 30 + newCount);
      const rows = readStore(join(dir, DATABASE_FILE), (d) => ({
        events: (d.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
        rolled: (d.prepare('SELECT sum(requests) AS n FROM rollups_hourly').get() as { n: number })
          .n,
      }));
      assert.deepEqual(rows, { events: 30 + newCount, rolled: 30 + newCount });
    } finally {
      await ledger.close();
    }
  });

  it('prunes raw events past the retention, keeps rollups and totals, and gives the space back', async () => {
    const dir = await tempDir('lookout-ledger-');
    const ledger = await Ledger.open(dir, { retentionMs: 10 * DAY });
    const db = join(dir, DATABASE_FILE);
    try {
      const now = Date.now();
      // 12,000 old events (more than one pruning batch) with a large raw usage each, and 10 recent ones.
      const raw = JSON.stringify({ pad: 'x'.repeat(2000) });
      for (let b = 0; b < 12; b++) {
        await ledger.write({
          events: Array.from({ length: 1000 }, (_, i) =>
            stored(`old-${b}-${i}`, now - 20 * DAY + b * 1000 + i, { rawUsage: raw }),
          ),
        });
      }
      await ledger.write({
        events: Array.from({ length: 10 }, (_, i) => stored(`new-${i}`, now - i)),
      });
      const before = readStore(db, (d) => ({
        rollups: d.prepare('SELECT sum(requests) FROM rollups_hourly').pluck().get(),
        pages: d.pragma('page_count', { simple: true }) as number,
        autoVacuum: d.pragma('auto_vacuum', { simple: true }),
      }));
      assert.equal(before.rollups, 12_010);
      assert.equal(before.autoVacuum, 2, 'incremental');
      await ledger.prune();
      let after: { events: unknown; free: number; pages: number } | undefined;
      for (let i = 0; i < 200; i++) {
        after = readStore(db, (d) => ({
          events: d.prepare('SELECT count(*) FROM events').pluck().get(),
          free: d.pragma('freelist_count', { simple: true }) as number,
          pages: d.pragma('page_count', { simple: true }) as number,
        }));
        if (after.events === 10 && after.free === 0) break;
        await sleep(50);
      }
      assert.equal(after!.events, 10, 'only the recent events are left');
      assert.equal(after!.free, 0, 'the freed pages were given back');
      assert.ok(after!.pages < before.pages / 4, `${after!.pages} pages of ${before.pages}`);
      const kept = readStore(db, (d) => ({
        rollups: d.prepare('SELECT sum(requests) FROM rollups_hourly').pluck().get(),
        totals: d.prepare('SELECT sum(requests) FROM totals').pluck().get(),
      }));
      assert.deepEqual(kept, { rollups: 12_010, totals: 12_010 });
    } finally {
      await ledger.close();
    }
  });
});

describe('the tallies the counters show', () => {
  it('seeded twice (a start tried again) hold the store once, not twice', () => {
    const tallies = new Tallies({ services: 10, models: 10, sources: 10 });
    const seed: SeedResult = {
      totals: [
        {
          service: 'chat',
          model: 'gpt-4o',
          source: 'http',
          requests: 3,
          unpricedRequests: 0,
          input: 100,
          output: 50,
          cacheRead: 10,
          cacheWrite5m: 5,
          cacheWrite1h: 1,
          unpricedTokens: 0,
          cost: 0.25,
        },
      ],
      counts: [{ kind: 'events', key: 'http', result: 'accepted', n: 3 }],
      tails: [],
    };
    tallies.seed(seed);
    tallies.seed(seed);
    const [u] = [...tallies.usage.values()];
    assert.equal(tallies.usage.size, 1);
    assert.equal(u?.s.requests, 3);
    assert.equal(u?.s.cost, 0.25);
    assert.equal(u?.s.cacheWrite, 6);
    assert.deepEqual([...tallies.ingest], [['http\u0000accepted', 3]]);
  });
});
