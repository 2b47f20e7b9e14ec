/**
 * `lookout cost` (src/aicost/report.ts, src/cost.ts) against real SQLite stores written
 * with the shared schema (src/aicost/schema.ts): windows as a person reads them, spend,
 * tokens, requests and the breakdown against the previous window, cache hit ratio and
 * savings, unpriced requests kept out of the spend; the read-only guarantee (the store's
 * file and directory unchanged, no -wal/-shm made) whether lookout serve is running or
 * not; repricing history once the table knows a model, each event at its own time's
 * price; and the command run as a user runs it (bin/lookout, built dist/).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { loadPricing } from '../src/aicost/pricing.js';
import {
  costReport,
  formatReport,
  openStoreReadOnly,
  reprice,
  spendSummary,
  storeFile,
  StoreMissingError,
  unpricedModels,
  windows,
} from '../src/aicost/report.js';
import { DDL } from '../src/aicost/schema.js';
import { REPO, tempDir } from './helpers/procs.js';

const run = promisify(execFile);
const HOUR = 3_600_000;

interface Ev {
  id: string;
  timeMs: number;
  service: string;
  model: string;
  provider?: string;
  source?: string;
  input?: number;
  output?: number;
  cacheRead?: number;
  cacheWrite5m?: number;
  cacheWrite1h?: number;
  /** undefined = unpriced */
  costUsd?: number;
  savings?: number;
}

/**
 * A store as the ledger writes it: WAL, the schema's DDL, the events and their hourly
 * rollups (and totals when the schema has them) in one transaction.
 */
function writeStore(storageRoot: string, events: Ev[]): Database.Database {
  const file = storeFile(storageRoot);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(DDL);
  addEvents(db, events);
  return db;
}

function addEvents(db: Database.Database, events: Ev[]): void {
  const hasTotals =
    db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'totals'`).get() !== undefined;
  const ins = db.prepare(`INSERT INTO events VALUES (@id, @time, @time, @service, @model, @provider,
    'chat', @source, @input, @output, @cacheRead, @w5, @w1, @cost, @costSource, @pricedAs, NULL)`);
  const roll = db.prepare(`INSERT INTO rollups_hourly VALUES (@hour, @service, @model, @source, 1,
      @unpriced, @input, @output, @cacheRead, @w5, @w1, @unpricedTokens, @costOr0, @savings)
    ON CONFLICT (hour_ms, service, model, source) DO UPDATE SET
      requests = requests + 1, unpriced_requests = unpriced_requests + excluded.unpriced_requests,
      input_tokens = input_tokens + excluded.input_tokens,
      output_tokens = output_tokens + excluded.output_tokens,
      cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
      cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
      cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
      unpriced_tokens = unpriced_tokens + excluded.unpriced_tokens,
      cost_usd = cost_usd + excluded.cost_usd,
      cache_savings_usd = cache_savings_usd + excluded.cache_savings_usd`);
  const total = hasTotals
    ? db.prepare(`INSERT INTO totals VALUES (@service, @model, @source, 1, @unpriced, @input,
        @output, @cacheRead, @w5, @w1, @unpricedTokens, @costOr0)
      ON CONFLICT (service, model, source) DO UPDATE SET requests = requests + 1,
        cost_usd = cost_usd + excluded.cost_usd,
        unpriced_requests = unpriced_requests + excluded.unpriced_requests`)
    : undefined;
  db.transaction(() => {
    for (const e of events) {
      const p = {
        id: e.id,
        time: e.timeMs,
        hour: Math.floor(e.timeMs / HOUR) * HOUR,
        service: e.service,
        model: e.model,
        provider: e.provider ?? 'openai',
        source: e.source ?? 'http',
        input: e.input ?? 0,
        output: e.output ?? 0,
        cacheRead: e.cacheRead ?? 0,
        w5: e.cacheWrite5m ?? 0,
        w1: e.cacheWrite1h ?? 0,
        cost: e.costUsd ?? null,
        costOr0: e.costUsd ?? 0,
        costSource: e.costUsd === undefined ? 'unpriced' : 'priced',
        pricedAs: e.costUsd === undefined ? null : e.model,
        unpriced: e.costUsd === undefined ? 1 : 0,
        unpricedTokens:
          e.costUsd === undefined
            ? (e.input ?? 0) +
              (e.output ?? 0) +
              (e.cacheRead ?? 0) +
              (e.cacheWrite5m ?? 0) +
              (e.cacheWrite1h ?? 0)
            : 0,
        savings: e.savings ?? 0,
      };
      ins.run(p);
      roll.run(p);
      total?.run(p);
    }
  })();
}

/** What a directory holds, with each file's size and mtime: the read-only guarantee's witness. */
async function snapshot(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).sort();
  const out = [`dir mtime ${(await stat(dir)).mtimeMs}`];
  for (const n of names) {
    const s = await stat(join(dir, n));
    out.push(`${n} ${s.size} ${s.mtimeMs}`);
  }
  return out;
}

describe('cost windows', () => {
  it('day is today since local midnight against the whole of yesterday', () => {
    const now = new Date(2026, 11, 6, 15, 42).getTime();
    const { current, previous } = windows('day', now);
    assert.equal(current.startMs, new Date(2026, 11, 6).getTime());
    assert.equal(current.endMs, now);
    assert.equal(previous.startMs, new Date(2026, 11, 5).getTime());
    assert.equal(previous.endMs, current.startMs);
    assert.deepEqual([current.label, previous.label], ['today', 'yesterday']);
  });

  it('week starts on Monday, month on the 1st, hour on the clock hour', () => {
    const sunday = new Date(2026, 11, 6, 9).getTime(); // 2026-12-06 is a Sunday
    assert.equal(windows('week', sunday).current.startMs, new Date(2026, 10, 30).getTime());
    assert.equal(windows('week', sunday).previous.startMs, new Date(2026, 10, 23).getTime());
    const monday = new Date(2026, 10, 30, 0, 5).getTime();
    assert.equal(windows('week', monday).current.startMs, new Date(2026, 10, 30).getTime());
    const m = windows('month', new Date(2026, 0, 15).getTime());
    assert.equal(m.current.startMs, new Date(2026, 0, 1).getTime());
    assert.equal(m.previous.startMs, new Date(2025, 11, 1).getTime());
    const h = windows('hour', new Date(2026, 11, 6, 9, 59, 59).getTime());
    assert.equal(h.current.startMs, new Date(2026, 11, 6, 9).getTime());
    assert.equal(h.previous.startMs, new Date(2026, 11, 6, 8).getTime());
  });
});

describe('lookout cost against a real store', () => {
  let root: string;
  let db: Database.Database;
  const now = new Date(2026, 11, 6, 15, 30).getTime();
  const today = new Date(2026, 11, 6, 10).getTime();
  const yesterday = new Date(2026, 11, 5, 20).getTime();
  before(async () => {
    root = await tempDir('lookout-cost-');
    await mkdir(join(root, 'aicost'));
    db = writeStore(root, [
      {
        id: 'a1',
        timeMs: today,
        service: 'chat',
        model: 'gpt-4.1',
        input: 1000,
        output: 500,
        cacheRead: 3000,
        costUsd: 4,
        savings: 0.5,
      },
      { id: 'a2', timeMs: today + 60_000, service: 'chat', model: 'gpt-4.1', costUsd: 1.2 },
      {
        id: 'b1',
        timeMs: today,
        service: 'search',
        model: 'claude-haiku-4-5',
        provider: 'anthropic',
        source: 'jsonl:/var/log/app.jsonl',
        input: 100,
        cacheWrite5m: 400,
        cacheWrite1h: 500,
        costUsd: 0.01,
      },
      { id: 'u1', timeMs: today, service: 'search', model: 'acme-llm', input: 700, output: 300 },
      { id: 'y1', timeMs: yesterday, service: 'chat', model: 'gpt-4.1', costUsd: 0.45 },
      // Before yesterday: in neither window.
      { id: 'old', timeMs: yesterday - 2 * 86_400_000, service: 'chat', model: 'o3', costUsd: 99 },
    ]);
  });
  after(async () => {
    db?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('sums spend, requests and tokens for today against yesterday, unpriced kept out of the spend', async () => {
    const ro = await openStoreReadOnly(root);
    try {
      const r = costReport(ro, { window: 'day', by: 'service', nowMs: now, store: 'x' });
      assert.ok(Math.abs(r.current.costUsd - 5.21) < 1e-9, String(r.current.costUsd));
      assert.equal(r.previous.costUsd, 0.45);
      assert.ok(Math.abs(r.changeUsd - 4.76) < 1e-9);
      assert.equal(r.current.requests, 4);
      assert.equal(r.previous.requests, 1);
      assert.equal(r.current.inputTokens, 1800);
      assert.equal(r.current.cacheReadTokens, 3000);
      assert.equal(r.current.cacheWrite5mTokens + r.current.cacheWrite1hTokens, 900);
      // cache read / all input = 3000 / (1800 + 3000 + 900)
      assert.ok(Math.abs(r.current.cacheHitRatio! - 3000 / 5700) < 1e-12);
      assert.equal(r.current.cacheSavingsUsd, 0.5);
      assert.equal(r.current.unpricedRequests, 1);
      assert.equal(r.current.unpricedTokens, 1000);
      assert.deepEqual(r.unpriced, [{ model: 'acme-llm', requests: 1, tokens: 1000 }]);
      assert.deepEqual(
        r.breakdown.map((b) => [b.key, b.current.costUsd, b.previous.costUsd]),
        [
          ['chat', 5.2, 0.45],
          ['search', 0.01, 0],
        ],
      );
      const text = formatReport(r);
      assert.match(text, /^AI spend today: \$5\.21 vs \$0\.45 yesterday \(\+\$4\.76\)/);
      assert.match(text, /UNPRICED +1 request\(s\), 1000 tokens, not in the spend: acme-llm \(1\)/);
      assert.match(text, /\nchat +\$5\.20 +\$0\.45 +\+\$4\.75 +2 /);
    } finally {
      ro.close();
    }
  });

  it('breaks down by model and by source', async () => {
    const ro = await openStoreReadOnly(root);
    try {
      const byModel = costReport(ro, { window: 'day', by: 'model', nowMs: now, store: 'x' });
      assert.deepEqual(
        byModel.breakdown.map((b) => b.key),
        ['gpt-4.1', 'claude-haiku-4-5', 'acme-llm'],
      );
      const bySource = costReport(ro, { window: 'day', by: 'source', nowMs: now, store: 'x' });
      assert.deepEqual(
        bySource.breakdown.map((b) => [b.key, b.current.requests]),
        [
          ['http', 3],
          ['jsonl:/var/log/app.jsonl', 1],
        ],
      );
    } finally {
      ro.close();
    }
  });

  it("gives status today's, this week's and this month's spend and check the unpriced models", async () => {
    const ro = await openStoreReadOnly(root);
    try {
      const s = spendSummary(ro, now);
      assert.deepEqual(
        s.map((x) => x.label),
        ['today', 'this week', 'this month'],
      );
      assert.ok(Math.abs(s[0]!.costUsd - 5.21) < 1e-9);
      // The week (since Monday 2026-11-30) and the month (since 2026-12-01) hold
      // yesterday; the o3 event of 2026-12-03 is in both too.
      assert.ok(Math.abs(s[1]!.costUsd - (5.21 + 0.45 + 99)) < 1e-9);
      assert.ok(Math.abs(s[2]!.costUsd - (5.21 + 0.45 + 99)) < 1e-9);
      const u = unpricedModels(ro);
      assert.equal(u.length, 1);
      assert.equal(u[0]!.model, 'acme-llm');
    } finally {
      ro.close();
    }
  });
});

describe('the read-only guarantee', () => {
  let root: string;
  before(async () => {
    root = await tempDir('lookout-cost-ro-');
    await mkdir(join(root, 'aicost'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a stopped lookout: the report changes nothing and makes no -wal or -shm file', async () => {
    const w = writeStore(root, [
      { id: 'e', timeMs: Date.now(), service: 's', model: 'gpt-4o', costUsd: 1 },
    ]);
    w.close(); // the last connection: SQLite checkpoints and removes -wal and -shm
    const dir = join(root, 'aicost');
    const before = await snapshot(dir);
    assert.deepEqual(await readdir(dir), ['ai-usage.sqlite']);
    const ro = await openStoreReadOnly(root);
    const r = costReport(ro, { window: 'day', by: 'service', nowMs: Date.now(), store: 'x' });
    assert.equal(r.current.requests, 1);
    // While open, too: nothing beside the file.
    assert.deepEqual(await readdir(dir), ['ai-usage.sqlite']);
    ro.close();
    assert.deepEqual(await snapshot(dir), before);
  });

  it('a running lookout: the report reads what is committed and leaves the file and its WAL alone', async () => {
    const w = new Database(storeFile(root));
    w.pragma('journal_mode = WAL');
    w.pragma('wal_autocheckpoint = 0');
    addEvents(w, [{ id: 'live', timeMs: Date.now(), service: 's', model: 'gpt-4o', costUsd: 2 }]);
    const dir = join(root, 'aicost');
    const file = storeFile(root);
    const before = [await stat(file), await stat(`${file}-wal`)].map((s) => [s.size, s.mtimeMs]);
    const ro = await openStoreReadOnly(root);
    try {
      const r = costReport(ro, { window: 'day', by: 'service', nowMs: Date.now(), store: 'x' });
      assert.equal(r.current.requests, 2);
      assert.equal(r.current.costUsd, 3);
    } finally {
      ro.close();
    }
    const afterRead = [await stat(file), await stat(`${file}-wal`)].map((s) => [s.size, s.mtimeMs]);
    assert.deepEqual(afterRead, before);
    assert.deepEqual((await readdir(dir)).sort(), [
      'ai-usage.sqlite',
      'ai-usage.sqlite-shm',
      'ai-usage.sqlite-wal',
    ]);
    w.close();
  });

  it('no store: says where it looked and what to set, and creates nothing', async () => {
    const empty = await tempDir('lookout-cost-none-');
    try {
      await assert.rejects(openStoreReadOnly(empty), (err: unknown) => {
        assert.ok(err instanceof StoreMissingError);
        assert.match(err.message, /no AI usage store at .*aicost\/ai-usage\.sqlite/);
        assert.match(err.message, /collectors\.aicost/);
        assert.match(err.message, /storage\.path/);
        return true;
      });
      assert.deepEqual(await readdir(empty), []);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('lookout cost reprice', () => {
  let root: string;
  let prices: string;
  before(async () => {
    root = await tempDir('lookout-reprice-');
    await mkdir(join(root, 'aicost'));
    prices = join(root, 'prices.yml');
    await writeFile(
      prices,
      [
        'models:',
        '  - id: acme-llm',
        '    provider: acme',
        '    prices:',
        '      - { from: 2026-01-01, input: 10, output: 20 }',
        '      - { from: 2026-07-01, input: 1, output: 2, cache_read: 0.5 }',
      ].join('\n'),
    );
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('prices unpriced events at their own time, moves rollups (and totals), leaves the unknown and the priced alone', async () => {
    const march = Date.UTC(2026, 2, 10, 12);
    const august = Date.UTC(2026, 7, 10, 12);
    const w = writeStore(root, [
      { id: 'm1', timeMs: march, service: 's', model: 'acme-llm', provider: 'acme', input: 1e6 },
      {
        id: 'a1',
        timeMs: august,
        service: 's',
        model: 'acme-llm',
        provider: 'acme',
        output: 1e6,
        cacheRead: 1e6,
      },
      { id: 'a2', timeMs: august, service: 's', model: 'mystery', input: 5 },
      { id: 'p1', timeMs: august, service: 's', model: 'gpt-4o', input: 1e6, costUsd: 7 },
    ]);
    const table = await loadPricing({ userFile: prices });
    const r = reprice(w, table, { sinceMs: 0, batch: 2 });
    assert.equal(r.examined, 3);
    assert.equal(r.priced, 2);
    assert.ok(Math.abs(r.costUsd - (10 + 2 + 0.5)) < 1e-9, String(r.costUsd));
    assert.deepEqual(r.stillUnpriced, [{ model: 'mystery', events: 1 }]);
    const ev = (id: string) =>
      w.prepare('SELECT cost_usd, cost_source, priced_as FROM events WHERE id = ?').get(id);
    assert.deepEqual(ev('m1'), {
      cost_usd: 10,
      cost_source: 'priced',
      priced_as: 'acme-llm@2026-01-01',
    });
    assert.deepEqual(ev('a1'), {
      cost_usd: 2.5,
      cost_source: 'priced',
      priced_as: 'acme-llm@2026-07-01',
    });
    assert.deepEqual(ev('p1'), { cost_usd: 7, cost_source: 'priced', priced_as: 'gpt-4o' });
    const roll = w
      .prepare(
        `SELECT model, cost_usd AS cost, unpriced_requests AS ur, unpriced_tokens AS ut,
                cache_savings_usd AS saved
         FROM rollups_hourly WHERE hour_ms = ? ORDER BY model`,
      )
      .all(Date.UTC(2026, 7, 10, 12));
    assert.deepEqual(roll, [
      { model: 'acme-llm', cost: 2.5, ur: 0, ut: 0, saved: 0.5 },
      { model: 'gpt-4o', cost: 7, ur: 0, ut: 0, saved: 0 },
      { model: 'mystery', cost: 0, ur: 1, ut: 5, saved: 0 },
    ]);
    const hasTotals = w.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'totals'`).get();
    if (hasTotals)
      assert.deepEqual(w.prepare(`SELECT cost_usd FROM totals WHERE model = 'acme-llm'`).get(), {
        cost_usd: 12.5,
      });
    // Again: nothing left to price, nothing counted twice.
    const again = reprice(w, table, { sinceMs: 0 });
    assert.equal(again.priced, 0);
    assert.equal(again.examined, 1);
    w.close();
  });

  it('--since leaves older events unpriced', async () => {
    const w = new Database(storeFile(root));
    addEvents(w, [
      { id: 'x-old', timeMs: Date.UTC(2026, 7, 1), service: 't', model: 'acme-llm', input: 1 },
      { id: 'x-new', timeMs: Date.UTC(2026, 8, 1), service: 't', model: 'acme-llm', input: 1 },
    ]);
    const table = await loadPricing({ userFile: prices });
    const r = reprice(w, table, { sinceMs: Date.UTC(2026, 7, 15) });
    assert.equal(r.priced, 1);
    assert.equal(
      (
        w.prepare(`SELECT cost_source FROM events WHERE id = 'x-old'`).get() as {
          cost_source: string;
        }
      ).cost_source,
      'unpriced',
    );
    w.close();
  });
});

describe('lookout cost, run as a user runs it', () => {
  let root: string;
  const lookout = (...args: string[]) =>
    run(join(REPO, 'bin/lookout'), args, { cwd: REPO }).then(
      (r) => ({ code: 0, ...r }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
  before(async () => {
    if (!existsSync(join(REPO, 'dist/cost.js')))
      await run('npm', ['run', 'build', '--silent'], { cwd: REPO });
    root = await tempDir('lookout-cost-cli-');
    await mkdir(join(root, 'aicost'));
    const now = Date.now();
    const { previous } = windows('day', now);
    const w = writeStore(root, [
      { id: 't', timeMs: now, service: 'chat', model: 'gpt-4o', costUsd: 5.2, input: 10 },
      { id: 'y', timeMs: previous.startMs + HOUR, service: 'chat', model: 'gpt-4o', costUsd: 0.45 },
    ]);
    w.close();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('prints today against yesterday, and JSON with --json', async () => {
    const text = await lookout('cost', '--storage.path', root);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^AI spend today: \$5\.20 vs \$0\.45 yesterday \(\+\$4\.75\)\n/);
    assert.match(text.stdout, /\nBy service, today\n/);
    const json = await lookout('cost', '--json', '--by', 'model', '--storage.path', root);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as { by: string; current: { costUsd: number } };
    assert.equal(r.by, 'model');
    assert.equal(r.current.costUsd, 5.2);
    assert.deepEqual(await readdir(join(root, 'aicost')), ['ai-usage.sqlite']);
  });

  it('no store: exit 2, saying where it looked and what to set', async () => {
    const r = await lookout('cost', '--storage.path', join(root, 'nowhere'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^lookout: no AI usage store at .*nowhere\/aicost\/ai-usage\.sqlite/);
    assert.match(r.stderr, /storage\.path/);
    assert.equal(existsSync(join(root, 'nowhere')), false);
  });

  it("reprice with the config's pricing_file, then check and status show the store", async () => {
    const prices = join(root, 'prices.yml');
    await writeFile(
      prices,
      'models:\n  - id: acme-llm\n    provider: acme\n    prices:\n      - { input: 1000000, output: 0 }\n',
    );
    const config = join(root, 'lookout.yml');
    await writeFile(
      config,
      `storage:\n  path: ${root}\ncollectors:\n  aicost:\n    enabled: true\n    pricing_file: ${prices}\n`,
    );
    const w = new Database(storeFile(root));
    addEvents(w, [
      {
        id: 'u1',
        timeMs: Date.now(),
        service: 'chat',
        model: 'acme-llm',
        provider: 'acme',
        input: 3,
      },
      { id: 'u2', timeMs: Date.now(), service: 'chat', model: 'nobody-knows', input: 1 },
    ]);
    w.close();
    const check = await lookout('check', '--config', config);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /prices\.yml: OK\n/);
    assert.match(
      check.stdout,
      /AI models seen without a price.*\n {2}acme-llm: 1 request\(s\), 3 tokens/,
    );
    assert.match(check.stdout, /\n {2}nobody-knows: 1 request\(s\)/);
    const rp = await lookout('cost', 'reprice', '--config', config);
    assert.equal(rp.code, 0, rp.stderr);
    assert.match(rp.stdout, /^priced 1 of 2 unpriced event\(s\): \$3\.00\n/);
    assert.match(rp.stdout, /still unpriced \(no price in the table\): nobody-knows \(1\)/);
    const report = await lookout('cost', '--config', config);
    assert.match(report.stdout, /^AI spend today: \$8\.20 vs \$0\.45 yesterday/);
    const status = await lookout('status', '--config', config);
    assert.match(
      status.stdout,
      /\nAI spend {2}today \$8\.20, this week \$[\d.,]+, this month \$[\d.,]+ \(\+ 1 unpriced request/,
    );
    // A wrong price table fails check as a wrong config does.
    await writeFile(prices, 'models:\n  - id: x\n    provider: y\n    prices: []\n');
    const bad = await lookout('check', '--config', config);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /prices\.yml: models\[0\]\.prices: Too small/);
  });

  it('a bad flag: exit 1 with what it expected', async () => {
    const r = await lookout('cost', '--window', 'year', '--storage.path', root);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--window: expected one of hour, day, week, month, got "year"/);
    const since = await lookout('cost', 'reprice', '--since', '2026-02-30', '--storage.path', root);
    assert.equal(since.code, 1);
    assert.match(since.stderr, /--since: expected a date like 2026-11-01 .*got "2026-02-30"/);
    const misplaced = await lookout('cost', '--since', '2026-01-01', '--storage.path', root);
    assert.equal(misplaced.code, 1);
    assert.match(misplaced.stderr, /--since is for lookout cost reprice/);
    const s = await lookout('status', '--json');
    assert.equal(s.code, 1);
    assert.match(s.stderr, /--json is a flag of lookout cost/);
  });
});
