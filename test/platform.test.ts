/**
 * The collector platform: per-target fan-out against a real blackholed socket, service
 * counters across refreshes and scrapes, contributed routes over real HTTP, declared
 * metric families, the state directory, and ordered shutdown of the real CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
  type ServiceCollector,
  type ServiceContext,
} from '../src/collectors/collector.js';
import { createApp } from '../src/exporter/app.js';
import { checkFamilies, Runner, StartupError, type RunnerEntry } from '../src/exporter/runner.js';
import { Fanout, hungCalls } from '../src/lib/fanout.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';
import { openStateDirectory, StorageError } from '../src/lib/storage.js';
import { eventually, freePort, REPO, startProcess, tempDir } from './helpers/procs.js';
import { Agent, request as undiciRequest } from 'undici';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { collectorSchema, registerCollector } from '../src/collectors/collector.js';
import { parseConfig } from '../src/collectors/config.js';
import { buildRunner } from '../src/exporter/build.js';
import { testRouteToken, withRouteToken } from './helpers/routetoken.js';

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

describe('the shared HTTP client’s body limit', () => {
  it('stops reading at the limit, even from a target that streams forever', async () => {
    const endless = createHttpServer((_, res) => {
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const write = () => {
        while (res.write(chunk));
        res.once('drain', write);
      };
      write();
    });
    const port = await listen(endless);
    const http = new HttpClient();
    const res = await http.request(`http://127.0.0.1:${port}/`, {
      signal: AbortSignal.timeout(5000),
      maxBodyBytes: 1000,
    });
    assert.equal(res.body.length, 1000);
    assert.equal(res.truncated, true);
    await http.close();
    endless.closeAllConnections();
    endless.close();
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
      { deadline: t0 + 500 },
    );
    const took = performance.now() - t0;
    const [a, b, c] = results;
    assert.equal(a?.status, 'timeout');
    assert.ok(a?.status === 'timeout' && a.seconds < 0.5, 'cut to what was left of the refresh');
    for (const r of [b, c]) {
      assert.deepEqual(r, { status: 'skipped', reason: 'no time left in this refresh' });
    }
    assert.ok(took < 2000, `not the 10 s per-target timeout: ${took.toFixed(0)} ms`);
  });

  it('does not start a call with a few milliseconds left past the reserve (a timer may fire a millisecond early)', async () => {
    const fanout = new Fanout({ name: 't', concurrency: 1, timeoutMs: 10_000 });
    let started = 0;
    const [a] = await fanout.run(
      ['a'],
      (k) => k,
      async () => {
        started++;
        return 'answered';
      },
      // The 50 ms reserve plus 5 ms: less than a call is started with.
      { deadline: performance.now() + 55 },
    );
    assert.equal(started, 0, 'the call was not started');
    assert.deepEqual(a, { status: 'skipped', reason: 'no time left in this refresh' });
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
    const probe: PolledCollector = {
      async collect({ signal, deadline }) {
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
      // Node's timers count whole milliseconds on a coarser clock than performance.now().
      assert.ok(hole >= TARGET_TIMEOUT_MS / 1000 - 0.01, `blackhole took its timeout: ${hole}`);
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

describe('a collector with a service', () => {
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
    const stream: ServiceCollector = {
      service: { registry, start: () => void started++, stop: () => void stopped++ },
    };
    let polls = 0;
    const polled: PolledCollector = {
      async collect() {
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

describe('a service’s health', () => {
  it('a failed start is tried again; a fault after start is success 0 until healthy, its counts still served', async () => {
    const registry = new Registry();
    const n = new Counter({ name: 'test_lines_total', help: 'test', registers: [registry] });
    let attempts = 0;
    let ctx!: ServiceContext;
    const stream: ServiceCollector = {
      service: {
        registry,
        start(c) {
          if (++attempts === 1) throw new Error('log file not there yet');
          ctx = c;
        },
        stop() {},
      },
    };
    const runner = new Runner([entry('tail', stream, ['test_lines_total'])], quiet, 'x');
    const text = async () => (await runner.exposition('prometheus')).toString();
    await runner.collectOnce();
    assert.equal(seriesValue(await text(), 'lookout_collector_success{collector="tail"}'), 0);
    assert.match(runner.states()[0]?.lastError ?? '', /log file not there yet/);
    await runner.collectOnce();
    assert.equal(attempts, 2);
    n.inc(3);
    assert.equal(seriesValue(await text(), 'lookout_collector_success{collector="tail"}'), 1);
    const firstSuccess = seriesValue(
      await text(),
      'lookout_collector_last_success_timestamp_seconds{collector="tail"}',
    )!;

    ctx.fault(new Error('EIO reading the log'));
    let t = await text();
    assert.equal(seriesValue(t, 'lookout_collector_success{collector="tail"}'), 0);
    assert.equal(seriesValue(t, 'test_lines_total'), 3, 'what was counted is still served');
    await runner.collectOnce();
    assert.equal(runner.states()[0]?.outcome, 'failed', 'a tick does not clear a fault');

    ctx.healthy();
    await new Promise((r) => setTimeout(r, 5));
    await runner.collectOnce();
    t = await text();
    assert.equal(seriesValue(t, 'lookout_collector_success{collector="tail"}'), 1);
    assert.ok(
      seriesValue(t, 'lookout_collector_last_success_timestamp_seconds{collector="tail"}')! >
        firstSuccess,
      'a healthy tick moves last-success on',
    );
    assert.equal(attempts, 2, 'started once it had succeeded');
    await runner.stop();
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
  const ingest: ServiceCollector = {
    service: { registry, start() {}, stop() {} },
    routes: [
      {
        method: 'POST',
        path: '/api/v1/test-ingest',
        token: testRouteToken,
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
      {
        method: 'POST',
        path: '/api/v1/test-raw',
        token: testRouteToken,
        bodyLimitBytes: 1024,
        rawBody: true,
        handle(req) {
          const raw = req.raw!;
          const own = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength;
          const text = Buffer.from(raw).toString('utf8');
          return { status: 200, json: JSON.stringify({ text, own, parsed: req.body ?? null }) };
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
    fetch(url, { method: 'POST', headers: { 'content-type': type, ...withRouteToken }, body });

  it('takes valid JSON and counts it on /metrics', async () => {
    const res = await post(JSON.stringify({ id: 'a', tokens: 7 }));
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { accepted: 1 });
    const text = await (await fetch(url.replace('/api/v1/test-ingest', '/metrics'))).text();
    assert.equal(seriesValue(text, 'test_ingested_total'), 7);
  });

  it('hands a rawBody route the bytes as sent, in a buffer of their own, after the same token, type and size checks', async () => {
    const raw = url.replace('test-ingest', 'test-raw');
    const send = (body: string, headers: Record<string, string>) =>
      fetch(raw, { method: 'POST', headers, body });
    const json = { 'content-type': 'application/json', ...withRouteToken };
    const res = await send('{"a": [1, 2]} not JSON either', json);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), {
      text: '{"a": [1, 2]} not JSON either',
      own: true,
      parsed: null,
    });
    assert.equal((await send('x'.repeat(2000), json)).status, 413);
    assert.equal(
      (await send('{}', { ...withRouteToken, 'content-type': 'text/plain' })).status,
      415,
    );
    assert.equal((await send('{}', { 'content-type': 'application/json' })).status, 401);
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

  it('refuses a body sent in chunks once it passes the limit, and a compressed body', async () => {
    const { port } = new URL(url);
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/api/v1/test-ingest', method: 'POST' },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.setHeader('content-type', 'application/json');
      req.setHeader('authorization', withRouteToken.authorization);
      // No Content-Length: the limit must hold while reading, not only from the header.
      for (let i = 0; i < 20; i++) req.write(`${' '.repeat(100)}`);
      req.end('{}');
    });
    assert.equal(chunked.status, 413);
    assert.match(chunked.body, /1024 bytes/);
    const gz = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        ...withRouteToken,
      },
      body: gzipSync('{"id":"a","tokens":1}'),
    });
    assert.equal(gz.status, 415);
    assert.match(((await gz.json()) as { error: string }).error, /uncompressed/);
  });
});

describe('routes and their collector', () => {
  let startFails = true;
  const registry = new Registry();
  registerCollector({
    name: 'testroute',
    description: 'test: a route that needs its collector running',
    metrics: [],
    schema: collectorSchema({ enabled: false, interval: '1s', timeout: '1s' }, {}),
    create: (): ServiceCollector => ({
      service: {
        registry,
        start() {
          if (startFails) throw new Error('ledger disk missing');
        },
        stop() {},
      },
      routes: [
        {
          method: 'POST',
          path: '/api/v1/t',
          token: testRouteToken,
          handle: () => ({ status: 204, body: null }),
        },
      ],
    }),
  });

  async function serveWith(enabled: boolean) {
    const config = parseConfig({
      collectors: { testroute: { enabled }, host: { enabled: false } },
      storage: { path: await tempDir() },
    });
    const { runner, http } = await buildRunner(config, quiet);
    const server = createApp(runner, 'x', quiet).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      runner,
      post: () => fetch(`${base}/api/v1/t`, { method: 'POST', headers: withRouteToken }),
      close: async () => {
        server.close();
        await runner.stop();
        await http.close();
      },
    };
  }

  it('is not mounted when its collector is not enabled', async () => {
    const s = await serveWith(false);
    assert.equal((await s.post()).status, 404);
    await s.close();
  });

  it('answers 503 with Retry-After while its collector is not running, and serves once it is', async () => {
    startFails = true;
    const s = await serveWith(true);
    await s.runner.collectOnce();
    const refused = await s.post();
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match(
      ((await refused.json()) as { error: string }).error,
      /testroute collector is not running/,
    );
    startFails = false;
    await s.runner.collectOnce();
    assert.equal((await s.post()).status, 204);
    await s.close();
  });

  it('two routes on one method and path, or one on lookout’s own pages, stop start-up', () => {
    const routeOn = (path: string): ServiceCollector => ({
      service: { registry: new Registry(), start() {}, stop() {} },
      routes: [
        { method: 'GET', path, token: testRouteToken, handle: () => ({ status: 200, body: {} }) },
      ],
    });
    assert.throws(
      () =>
        createApp(
          new Runner(
            [entry('a', routeOn('/api/x'), []), entry('b', routeOn('/api/x'), [])],
            quiet,
            'x',
          ),
          'x',
          quiet,
        ),
      (err: unknown) =>
        err instanceof StartupError &&
        /collector b adds GET \/api\/x, which collector a already serves/.test(err.message),
    );
    assert.throws(
      () => createApp(new Runner([entry('a', routeOn('/metrics'), [])], quiet, 'x'), 'x', quiet),
      /collector a adds GET \/metrics, which lookout itself already serves/,
    );
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
    assert.throws(
      () =>
        checkFamilies([
          { name: 'a', metrics: ['lookout_x_total'] },
          { name: 'b', metrics: ['lookout_x'] },
        ]),
      /collectors a and b both export lookout_x_total and lookout_x/,
      'one family in OpenMetrics',
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
      async collect() {
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
    const dir = await openStateDirectory(root, 'aicost', 'read-write');
    assert.equal(dir, join(root, 'aicost'));
    assert.ok(existsSync(dir));
    assert.equal(
      await openStateDirectory(root, 'aicost', 'read-write'),
      dir,
      'a second call is fine',
    );
  });

  it('that cannot be made is a StorageError naming the setting and the fix', async () => {
    const file = join(await tempDir(), 'a-file');
    await writeFile(file, '');
    await assert.rejects(
      openStateDirectory(file, 'aicost', 'read-write'),
      (err: unknown) =>
        err instanceof StorageError &&
        /^storage\.path: cannot use .*a-file\/aicost \(a file is in the way\); set storage\.path/.test(
          err.message,
        ),
    );
  });
});

describe(
  'the real CLI with test collectors (test/fixtures/platform/serve.ts)',
  { concurrency: true },
  () => {
    const script = join(REPO, 'test/fixtures/platform/serve.ts');
    const tsx = import.meta.resolve('tsx');

    /** node's arguments for `lookout serve` with the test collectors, config in `dir`. */
    const serveArgs = (dir: string, listen: string) => [
      '--import',
      tsx,
      script,
      'serve',
      '--config',
      join(dir, 'lookout.yml'),
      '--web.listen-address',
      listen,
    ];

    async function start(config: string, env: NodeJS.ProcessEnv = {}) {
      const dir = await tempDir('lookout-platform-');
      const port = await freePort();
      await writeFile(join(dir, 'lookout.yml'), config);
      return startProcess(process.execPath, serveArgs(dir, `127.0.0.1:${port}`), {
        readyPath: '/healthz',
        port,
        dir,
        env,
      });
    }

    it('refuses to start when two enabled collectors claim one family, naming both (exit 2)', async () => {
      const dir = await tempDir('lookout-platform-');
      await writeFile(join(dir, 'lookout.yml'), 'collectors:\n  dupe:\n    enabled: true\n');
      const child = spawn(process.execPath, serveArgs(dir, '127.0.0.1:0'), {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 2, err);
      assert.match(
        err,
        /collectors (host and dupe|dupe and host) both export lookout_load1; disable one of them/,
      );
    });

    it('SIGTERM: stops accepting, lets a request in flight finish, waits for the flush, exits 0', async () => {
      const FLUSH_MS = 1500;
      const REQUEST_MS = 800;
      const lookout = await start(
        'collectors:\n  slowflush:\n    enabled: true\nstorage:\n  path: state\n',
        { LOOKOUT_TEST_FLUSH_MS: String(FLUSH_MS), LOOKOUT_TEST_REQUEST_MS: String(REQUEST_MS) },
      );
      const flushed = join(lookout.dir, 'state', 'slowflush', 'flushed');
      // A kept-alive client polling all along: it must not hold shutdown open.
      const agent = new Agent({ keepAliveTimeout: 60_000 });
      let polling = true;
      const polls = (async () => {
        let answered = 0;
        while (polling) {
          try {
            const res = await undiciRequest(`${lookout.url}/healthz`, { dispatcher: agent });
            await res.body.text();
            answered++;
          } catch {
            // refused once lookout stops accepting: the poller's job is done
            break;
          }
        }
        return answered;
      })();
      const inFlight = fetch(`${lookout.url}/api/v1/slow`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...withRouteToken },
        body: '{"n":1}',
      });
      await eventually(
        async () => lookout.output().includes('msg="slow request started"') || undefined,
        10_000,
        'the slow request reached its handler',
      );
      const t0 = performance.now();
      lookout.child.kill('SIGTERM');
      const answer = await inFlight;
      assert.equal(answer.status, 200, 'the request in flight finished');
      assert.equal(answer.headers.get('connection'), 'close');
      // The listener closed first: while the flush runs, a new connection is refused.
      assert.equal(
        await fetch(`${lookout.url}/healthz`).then(
          () => 'answered',
          () => 'refused',
        ),
        'refused',
      );
      assert.ok(!existsSync(flushed), 'the flush had not finished yet');
      const [code] = (await once(lookout.child, 'exit')) as [number];
      const took = performance.now() - t0;
      polling = false;
      assert.ok((await polls) > 0, 'the kept-alive client was answered before shutdown');
      await agent.close();
      assert.equal(code, 0, lookout.output());
      assert.ok(took >= FLUSH_MS, `waited for the flush: ${took.toFixed(0)} ms`);
      assert.ok(
        took < REQUEST_MS + FLUSH_MS + 2500,
        `the kept-alive client did not hold shutdown to the drain timeout: ${took.toFixed(0)} ms`,
      );
      assert.equal(await readFile(flushed, 'utf8'), '1', 'the flush saw the request counted');
      const log = lookout.output();
      assert.ok(log.indexOf('msg="flush done"') < log.indexOf('msg=stopped'), log);
    });

    it('a flush that overruns shutdown.flush_timeout is named in the log, exit 2', async () => {
      const lookout = await start(
        'collectors:\n  slowflush:\n    enabled: true\nstorage:\n  path: state\nshutdown:\n  flush_timeout: 500ms\n',
        { LOOKOUT_TEST_FLUSH_MS: '5000' },
      );
      lookout.child.kill('SIGTERM');
      const [code] = (await once(lookout.child, 'exit')) as [number];
      assert.equal(code, 2, lookout.output());
      assert.match(lookout.output(), /msg="collector did not stop in time" collector=slowflush/);
      assert.match(lookout.output(), /msg="shutdown incomplete: .*" collectors=slowflush/);
    });
  },
);
