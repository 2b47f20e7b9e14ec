/**
 * The collector platform: per-target fan-out against a real blackholed socket, streaming
 * counters across refreshes and scrapes, contributed routes over real HTTP, declared
 * metric families, the state directory, and ordered shutdown of the real CLI.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import {
  RouteError,
  type PolledCollector,
  type StreamingCollector,
} from '../src/collectors/collector.js';
import { createApp } from '../src/exporter/app.js';
import { checkFamilies, Runner, StartupError, type RunnerEntry } from '../src/exporter/runner.js';
import { Fanout, hungCalls } from '../src/lib/fanout.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';
import { ensureStateDirectory, StorageError } from '../src/lib/storage.js';
import { freePort, REPO, startProcess, tempDir } from './helpers/procs.js';

const quiet = createLogger('error', {}, () => {});

function entry(
  name: string,
  collector: RunnerEntry['collector'],
  metrics: string[],
  timeoutMs = 2000,
): RunnerEntry {
  return { name, description: name, metrics, collector, intervalMs: 60_000, timeoutMs };
}

function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

describe('the shared HTTP client', () => {
  it('honours a deadline that passed before the request began (undici alone would not)', async () => {
    const held: Socket[] = [];
    const blackhole = createTcpServer((s) => held.push(s));
    const port = await listen(blackhole);
    const http = new HttpClient();
    const ac = new AbortController();
    ac.abort(new Error('deadline passed'));
    await assert.rejects(
      http.request(`http://127.0.0.1:${port}/`, { signal: ac.signal }),
      /deadline passed/,
    );
    assert.equal(held.length, 0, 'no connection was made');
    await http.close();
    blackhole.close();
  });
});

describe('per-target fan-out', () => {
  it('keeps at most `concurrency` calls in flight and returns results in the items’ order', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 3, timeoutMs: 1000 });
    let inFlight = 0;
    let most = 0;
    const results = await fanout.run(
      Array.from({ length: 10 }, (_, i) => i),
      String,
      async (i) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 5 + (i % 3) * 5));
        inFlight--;
        return i * 2;
      },
    );
    assert.equal(most, 3);
    assert.deepEqual(
      results.map((r) => (r.status === 'ok' ? r.value : r.status)),
      [0, 2, 4, 6, 8, 10, 12, 14, 16, 18],
    );
  });

  it('a call that ignores its abort stays hung: not started again until it returns', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 2, timeoutMs: 30 });
    let release!: () => void;
    const never = new Promise<void>((r) => (release = r));
    const calls = new Map<string, number>();
    const call = async (k: string) => {
      calls.set(k, (calls.get(k) ?? 0) + 1);
      if (k === 'stuck') await never; // ignores the signal, like statfs on a dead server
      return k;
    };
    const first = await fanout.run(['stuck', 'ok'], (k) => k, call);
    assert.deepEqual(
      first.map((r) => r.status),
      ['timeout', 'ok'],
    );
    assert.deepEqual([...fanout.hungKeys()], ['stuck']);
    assert.deepEqual(
      hungCalls().map((c) => c.replace(/ \(\d+s\)$/, '')),
      ['t: stuck'],
    );
    const second = await fanout.run(['stuck', 'ok'], (k) => k, call);
    assert.deepEqual(
      second.map((r) => r.status),
      ['hung', 'ok'],
    );
    assert.equal(calls.get('stuck'), 1, 'not called again while its call is in flight');
    release();
    await never;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([...fanout.hungKeys()], []);
    assert.deepEqual(hungCalls(), []);
    const third = await fanout.run(['stuck', 'ok'], (k) => k, call);
    assert.deepEqual(
      third.map((r) => r.status),
      ['ok', 'ok'],
    );
  });

  it('hung calls hold their slots: no more than `concurrency` calls are ever in flight', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 2, timeoutMs: 20 });
    let inFlight = 0;
    let most = 0;
    const release: (() => void)[] = [];
    // Each call ignores its abort and returns only when released, like statfs on a dead server.
    const call = () =>
      new Promise<void>((resolve) => {
        most = Math.max(most, ++inFlight);
        release.push(() => {
          inFlight--;
          resolve();
        });
      });
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    for (let round = 0; round < 3; round++) await fanout.run(keys, (k) => k, call);
    assert.equal(most, 2, 'two calls at most, over three runs of ten targets');
    assert.equal(fanout.hungKeys().size, 2);
    const last = await fanout.run(keys, (k) => k, call);
    assert.match(
      last[9]!.status === 'skipped' ? last[9]!.reason : '',
      /all 2 slots are held by hung calls/,
    );
    for (const r of release) r();
  });

  it('ends a run of slow targets before the refresh deadline, skipping what has no time left', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 1, timeoutMs: 10_000 });
    const t0 = performance.now();
    const results = await fanout.run(
      ['a', 'b', 'c'],
      (k) => k,
      (_k, signal) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      { deadline: t0 + 300 },
    );
    const took = performance.now() - t0;
    assert.deepEqual(
      results.map((r) => r.status),
      ['timeout', 'skipped', 'skipped'],
    );
    assert.ok(took < 300, `the run ended before the refresh deadline: ${took.toFixed(0)} ms`);
  });

  it('a repeated key or a key() that throws is that item’s result, not the run’s', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 2, timeoutMs: 1000 });
    const results = await fanout.run(
      ['a', 'a', 'bad'],
      (k) => {
        if (k === 'bad') throw new Error('no key');
        return k;
      },
      async (k) => k,
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['ok', 'skipped', 'failed'],
    );
  });

  it('a throw before the first await is that target’s failure, not the run’s', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 2, timeoutMs: 1000 });
    const results = await fanout.run(
      ['a', 'b'],
      (k) => k,
      (k) => {
        if (k === 'a') throw new Error('sync');
        return Promise.resolve(k);
      },
    );
    assert.equal(results[0]?.status, 'failed');
    assert.equal(results[1]?.status, 'ok');
  });
});

describe('a blackholed target (accepts, never answers) through the shared HTTP client', () => {
  const held: Socket[] = [];
  const blackhole = createTcpServer((s) => held.push(s));
  const web = createHttpServer((_, res) => res.end('ok'));
  const http = new HttpClient();
  // Long enough that the answering target never misses it on a loaded 2-core CI machine.
  const TARGET_TIMEOUT_MS = 1500;
  let runner: Runner;
  let server: Server;
  let base: string;
  let fanout: Fanout;

  before(async () => {
    const targets = [
      `http://127.0.0.1:${await listen(web)}/`,
      `http://127.0.0.1:${await listen(blackhole)}/`,
    ];
    fanout = new Fanout({ name: 'probe', concurrency: 4, timeoutMs: TARGET_TIMEOUT_MS });
    await http.dispatcher(); // as a collector's create() does: undici loaded before any deadline
    const probe: PolledCollector = {
      async update({ signal, deadline }) {
        const results = await fanout.run(
          targets,
          (t) => t,
          async (url, s) => (await http.request(url, { signal: s })).status,
          { signal, deadline },
        );
        const registry = new Registry();
        const success = new Gauge({
          name: 'test_probe_success',
          help: 'test',
          labelNames: ['target'],
          registers: [registry],
        });
        const duration = new Gauge({
          name: 'test_probe_duration_seconds',
          help: 'test',
          labelNames: ['target'],
          registers: [registry],
        });
        results.forEach((r, i) => {
          const target = i === 0 ? 'web' : 'blackhole';
          success.set({ target }, r.status === 'ok' && r.value === 200 ? 1 : 0);
          if ('seconds' in r) duration.set({ target }, r.seconds);
        });
        return registry;
      },
    };
    runner = new Runner(
      [entry('probe', probe, ['test_probe_success', 'test_probe_duration_seconds'], 5000)],
      quiet,
      'x',
    );
    server = createApp(runner, 'x', quiet).listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await runner.stop();
    await http.close();
    for (const s of held) s.destroy();
    blackhole.close();
    web.close();
  });

  it('costs its own timeout and leaves the other target’s series; the collector succeeds', async () => {
    const connections: number[] = [];
    for (let round = 1; round <= 2; round++) {
      await runner.collectOnce();
      connections.push(held.length);
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(seriesValue(text, 'test_probe_success{target="web"}'), 1, `round ${round}`);
      assert.equal(seriesValue(text, 'test_probe_success{target="blackhole"}'), 0);
      assert.equal(seriesValue(text, 'lookout_collector_success{collector="probe"}'), 1);
      const hole = seriesValue(text, 'test_probe_duration_seconds{target="blackhole"}')!;
      const good = seriesValue(text, 'test_probe_duration_seconds{target="web"}')!;
      assert.ok(hole >= TARGET_TIMEOUT_MS / 1000, `blackhole took its timeout: ${hole}`);
      assert.ok(good < TARGET_TIMEOUT_MS / 1000, `the answering target did not wait: ${good}`);
      const refresh = seriesValue(text, 'lookout_collector_duration_seconds{collector="probe"}')!;
      assert.ok(
        refresh < 5,
        `the refresh ended well before the collector's own timeout: ${refresh}`,
      );
    }
    // An aborted socket call returns at once, so it is not held as hung.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([...fanout.hungKeys()], []);
    assert.ok(connections[1]! > connections[0]!, 'the blackhole was asked again in round 2');
  });
});

describe('a streaming collector', () => {
  it('keeps counting across many refreshes and scrapes, never reset', async () => {
    const registry = new Registry();
    const events = new Counter({
      name: 'test_events_total',
      help: 'test',
      labelNames: ['kind'],
      registers: [registry],
    });
    let started = 0;
    let stopped = 0;
    const stream: StreamingCollector = {
      kind: 'streaming',
      registry,
      start: () => void started++,
      stop: () => void stopped++,
    };
    let polls = 0;
    const polled: PolledCollector = {
      async update() {
        const r = new Registry();
        new Gauge({ name: 'test_polls', help: 'test', registers: [r] }).set(++polls);
        return r;
      },
    };
    const runner = new Runner(
      [entry('stream', stream, ['test_events_total']), entry('polled', polled, ['test_polls'])],
      quiet,
      'x',
    );
    const server = createApp(runner, 'x', quiet).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await runner.start();
    let sent = 0;
    for (let i = 1; i <= 25; i++) {
      events.inc({ kind: 'a' }, i);
      sent += i;
      if (i % 5 === 0) await runner.collectOnce();
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(
        seriesValue(text, 'test_events_total{kind="a"}'),
        sent,
        `after event batch ${i}`,
      );
      const om = await (
        await fetch(`${base}/metrics`, { headers: { accept: 'application/openmetrics-text' } })
      ).text();
      assert.equal(seriesValue(om, 'test_events_total{kind="a"}'), sent);
      assert.ok(om.endsWith('# EOF\n'), 'one # EOF, at the end');
    }
    assert.equal(polls, 6, 'the polled collector refreshed while the stream kept counting');
    assert.equal(started, 1, 'started once, whatever the refreshes');
    server.close();
    await runner.stop();
    assert.equal(stopped, 1);
  });
});

describe('a contributed route', () => {
  const lines: string[] = [];
  const log = createLogger('info', {}, (l) => lines.push(l));
  const registry = new Registry();
  const accepted = new Counter({
    name: 'test_ingested_total',
    help: 'test',
    registers: [registry],
  });
  const ingest: StreamingCollector = {
    kind: 'streaming',
    registry,
    start() {},
    stop() {},
    routes: [
      {
        method: 'POST',
        path: '/api/v1/test-ingest',
        bodyLimitBytes: 1024,
        body: z.strictObject({ id: z.string().min(1), tokens: z.number().int().nonnegative() }),
        handle(req) {
          const body = req.body as { id: string; tokens: number };
          if (body.id === 'boom') throw new Error('kaboom');
          if (body.id === 'dup') throw new RouteError(409, 'id already accepted');
          accepted.inc(body.tokens);
          return { status: 202, body: { accepted: 1 } };
        },
      },
    ],
  };
  const runner = new Runner([entry('ingest', ingest, ['test_ingested_total'])], log, 'x');
  let server: Server;
  let url: string;
  before(async () => {
    await runner.start();
    server = createApp(runner, 'x', log).listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/test-ingest`;
  });
  after(async () => {
    server.close();
    await runner.stop();
  });
  const post = (body: string, type = 'application/json') =>
    fetch(url, { method: 'POST', headers: { 'content-type': type }, body });

  it('takes valid JSON and counts it on /metrics', async () => {
    const res = await post(JSON.stringify({ id: 'a', tokens: 7 }));
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { accepted: 1 });
    const text = await (await fetch(url.replace('/api/v1/test-ingest', '/metrics'))).text();
    assert.equal(seriesValue(text, 'test_ingested_total'), 7);
  });

  it('answers bad input with a JSON 4xx that says why', async () => {
    const cases: [string, Response, number, RegExp][] = [
      [
        'too large',
        await post(JSON.stringify({ id: 'x'.repeat(2000), tokens: 1 })),
        413,
        /1024 bytes/,
      ],
      ['not JSON', await post('{"id": "a",'), 400, /not valid JSON/],
      [
        'wrong type',
        await post('id=a', 'application/x-www-form-urlencoded'),
        415,
        /application\/json/,
      ],
      [
        'refused by the route',
        await post(JSON.stringify({ id: 'dup', tokens: 1 })),
        409,
        /already accepted/,
      ],
    ];
    for (const [what, res, status, reason] of cases) {
      assert.equal(res.status, status, what);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, what);
      assert.match(((await res.json()) as { error: string }).error, reason, what);
    }
  });

  it('names each wrong field', async () => {
    const res = await post(JSON.stringify({ id: '', tokens: -1, extra: true }));
    assert.equal(res.status, 400);
    const body = (await res.json()) as { problems: { path: string }[] };
    assert.deepEqual(body.problems.map((p) => p.path).sort(), ['(top level)', 'id', 'tokens']);
  });

  it('a throw is a JSON 500 and one log line with the method and path', async () => {
    lines.length = 0;
    const res = await post(JSON.stringify({ id: 'boom', tokens: 1 }));
    assert.equal(res.status, 500);
    assert.doesNotMatch(JSON.stringify(await res.json()), /kaboom/, 'no internals to the client');
    const logged = lines.filter((l) => l.includes('request failed'));
    assert.equal(logged.length, 1, lines.join('\n'));
    assert.match(logged[0]!, /method=POST path=\/api\/v1\/test-ingest err=kaboom/);
  });

  it('is not there when its collector is not enabled', async () => {
    const bare = new Runner([], quiet, 'x');
    const s = createApp(bare, 'x', quiet).listen(0, '127.0.0.1');
    await once(s, 'listening');
    const res = await fetch(
      `http://127.0.0.1:${(s.address() as AddressInfo).port}/api/v1/test-ingest`,
      { method: 'POST', body: '{}' },
    );
    assert.equal(res.status, 404);
    s.close();
  });
});

describe('metric families', () => {
  it('two collectors claiming one family, or a prefix covering it, is a startup error naming both', () => {
    assert.throws(
      () =>
        checkFamilies([
          { name: 'a', metrics: ['lookout_x'] },
          { name: 'b', metrics: ['lookout_y', 'lookout_x'] },
        ]),
      (err: unknown) =>
        err instanceof StartupError && /collectors a and b both export lookout_x/.test(err.message),
    );
    assert.throws(
      () =>
        checkFamilies([
          { name: 'a', metrics: ['process_*'] },
          { name: 'b', metrics: ['process_open_fds'] },
        ]),
      /collectors a and b both export process_\* and process_open_fds/,
    );
    assert.throws(
      () => checkFamilies([{ name: 'a', metrics: ['lookout_collector_success'] }]),
      /lookout itself and a/,
    );
    assert.doesNotThrow(() =>
      checkFamilies([
        { name: 'a', metrics: ['lookout_x', 'process_*'] },
        { name: 'b', metrics: ['lookout_xy', 'nodejs_*'] },
      ]),
    );
  });

  it('a refresh exporting a family its definition does not declare fails, and serves nothing', async () => {
    const sneaky: PolledCollector = {
      async update() {
        const r = new Registry();
        new Gauge({ name: 'test_declared', help: 't', registers: [r] }).set(1);
        new Gauge({ name: 'test_sneaky', help: 't', registers: [r] }).set(1);
        return r;
      },
    };
    const runner = new Runner([entry('sneaky', sneaky, ['test_declared'])], quiet, 'x');
    await runner.collectOnce();
    assert.equal(runner.states()[0]?.outcome, 'failed');
    assert.match(runner.states()[0]?.lastError ?? '', /exports test_sneaky, which its definition/);
    const text = (await runner.exposition('prometheus')).toString();
    assert.equal(seriesValue(text, 'test_declared'), undefined);
    await runner.stop();
  });
});

describe('the state directory', () => {
  it('is made under storage.path, once per collector', async () => {
    const root = join(await tempDir(), 'deeper', 'state');
    const dir = await ensureStateDirectory(root, 'aicost');
    assert.equal(dir, join(root, 'aicost'));
    assert.ok(existsSync(dir));
    assert.equal(await ensureStateDirectory(root, 'aicost'), dir, 'a second call is fine');
  });

  it('that cannot be made is a StorageError naming the setting and the fix', async () => {
    const file = join(await tempDir(), 'a-file');
    await writeFile(file, '');
    await assert.rejects(
      ensureStateDirectory(file, 'aicost'),
      (err: unknown) =>
        err instanceof StorageError &&
        /^storage\.path: cannot use .*a-file\/aicost \(a file is in the way\); set storage\.path/.test(
          err.message,
        ),
    );
  });
});

describe('the real CLI with test collectors (test/fixtures/platform/serve.ts)', () => {
  const script = join(REPO, 'test/fixtures/platform/serve.ts');
  const tsx = import.meta.resolve('tsx');

  async function start(config: string, env: NodeJS.ProcessEnv = {}) {
    const dir = await tempDir('lookout-platform-');
    const port = await freePort();
    await writeFile(join(dir, 'lookout.yml'), config);
    return startProcess(
      process.execPath,
      [
        '--import',
        tsx,
        script,
        'serve',
        '--config',
        join(dir, 'lookout.yml'),
        '--web.listen-address',
        `127.0.0.1:${port}`,
      ],
      { readyPath: '/healthz', port, dir, env },
    );
  }

  it('refuses to start when two enabled collectors claim one family, naming both (exit 2)', async () => {
    const dir = await tempDir('lookout-platform-');
    await writeFile(join(dir, 'lookout.yml'), 'collectors:\n  dupe:\n    enabled: true\n');
    const child = (await import('node:child_process')).spawn(
      process.execPath,
      [
        '--import',
        tsx,
        script,
        'serve',
        '--config',
        join(dir, 'lookout.yml'),
        '--web.listen-address',
        '127.0.0.1:0',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 2, err);
    assert.match(
      err,
      /collectors (host and dupe|dupe and host) both export lookout_load1; disable one of them/,
    );
  });

  it('SIGTERM during a slow flush: stops accepting at once, waits for the flush, exits 0', async () => {
    const FLUSH_MS = 1500;
    const lookout = await start(
      'collectors:\n  slowflush:\n    enabled: true\nstorage:\n  path: state\n',
      { LOOKOUT_TEST_FLUSH_MS: String(FLUSH_MS) },
    );
    const flushed = join(lookout.dir, 'state', 'slowflush', 'flushed');
    const t0 = performance.now();
    lookout.child.kill('SIGTERM');
    // The listener closes first: while the flush runs, a new connection is refused.
    const deadline = Date.now() + FLUSH_MS / 2;
    let refused = false;
    while (!refused && Date.now() < deadline) {
      refused = await fetch(`${lookout.url}/healthz`).then(
        () => false,
        () => true,
      );
    }
    assert.ok(refused, 'new connections refused while the flush was still running');
    assert.ok(!existsSync(flushed), 'the flush had not finished yet');
    const [code] = (await once(lookout.child, 'exit')) as [number];
    const took = performance.now() - t0;
    assert.equal(code, 0, lookout.output());
    assert.ok(took >= FLUSH_MS, `waited for the flush: ${took.toFixed(0)} ms`);
    assert.ok(existsSync(flushed), 'the flush finished before the exit');
    const log = lookout.output();
    assert.ok(
      log.indexOf('msg="flush done"') < log.indexOf('msg=stopped'),
      `flush, then stop:\n${log}`,
    );
    assert.match(await readFile(flushed, 'utf8'), /^\d{4}-/);
  });
});
