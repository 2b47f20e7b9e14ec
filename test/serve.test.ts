import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { findSamples, parseExposition, sampleValue } from './helpers/exposition.js';
import { eventually, REPO, startLookout, tempDir, type Running } from './helpers/procs.js';

const run = promisify(execFile);

/**
 * What a lookout started with test/fixtures/module-list.mjs has loaded now: Node's
 * built-in modules, then `file <path>` for each CommonJS file.
 */
async function loadedModules(lookout: Running, list: string): Promise<string[]> {
  await rm(list, { force: true });
  lookout.child.kill('SIGUSR2');
  return eventually(
    async () => (await readFile(list, 'utf8')).split('\n'),
    5000,
    'the module list',
  );
}

/**
 * lookout with test/fixtures/module-list.mjs preloaded: loadedModules() then reads what
 * it has loaded.
 */
async function startListing(config = ''): Promise<{ lookout: Running; list: string }> {
  const list = join(await tempDir('lookout-modules-'), 'modules.txt');
  const lookout = await startLookout(config, [], {
    NODE_OPTIONS: `--import ${join(REPO, 'test/fixtures/module-list.mjs')}`,
    LOOKOUT_MODULE_LIST: list,
  });
  return { lookout, list };
}

describe('lookout serve (built, real process)', () => {
  let lookout: Running & { configFile: string };
  before(async () => {
    lookout = await startLookout('collectors:\n  host: {interval: 1s, timeout: 1s}\n');
  });
  after(async () => {
    await lookout.stop();
  });

  it('serves exposition that promtool accepts, with host, self and runtime series', async () => {
    // The first refresh runs just after the port opens; wait for it rather than race it.
    const text = await eventually(
      async () => {
        const t = await (await fetch(`${lookout.url}/metrics`)).text();
        return sampleValue(t, 'lookout_collector_success', { collector: 'processes' }) === 1
          ? t
          : undefined;
      },
      10_000,
      'the first refresh of every collector',
    );
    const families = parseExposition(text);
    for (const name of [
      'lookout_cpu_seconds_total',
      'lookout_memory_total_bytes',
      'lookout_filesystem_size_bytes',
      'lookout_processes',
      'lookout_collector_success',
      'lookout_build_info',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.ok(findSamples(families, name).length > 0, `${name} missing`);
    }
    // prom-client's histogram of event-loop delay reads its sampling interval, not lag
    // (src/collectors/runtime.ts); it must not be served looking like a 1 s stall.
    assert.deepEqual(
      findSamples(families, /^nodejs_eventloop_lag_(min|max|mean|stddev|p50|p90|p99)_seconds$/),
      [],
    );
    // promtool parses (exit 1 on an error) and lints (exit 3). Every lookout_ name must
    // pass; the only lints allowed are prom-client's own `nodejs_active_*_total` gauges,
    // whose names lookout does not choose.
    const check = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (b) => (out += b));
      p.stderr.on('data', (b) => (out += b));
      p.on('exit', (code) => resolve({ code, out }));
      p.stdin.end(text);
    });
    const allowed = new Set([
      'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
      'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
      'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
    ]);
    const lints = check.out.split('\n').filter((l) => l.trim() !== '' && !allowed.has(l.trim()));
    assert.ok(check.code === 0 || check.code === 3, `promtool could not parse: ${check.out}`);
    assert.deepEqual(lints, [], 'promtool check metrics found problems');
  });

  it('/metrics (answered in front of koa) and HEAD /metrics (through koa) agree on status and headers, a current Date among them; a query string is served, a request body refused 413', async () => {
    const url = `${lookout.url}/metrics`;
    for (const accept of [undefined, 'application/openmetrics-text; version=1.0.0']) {
      const headers = accept ? { accept } : {};
      const get = await request(url, { headers });
      const body = Buffer.from(await get.body.arrayBuffer());
      const head = await request(url, { method: 'HEAD', headers });
      await head.body.dump();
      assert.equal(get.statusCode, 200);
      assert.equal(head.statusCode, 200);
      assert.equal(get.headers['content-type'], head.headers['content-type']);
      // The fast path writes its own Date (not Node's, cached by a timer): one, and now.
      for (const res of [get, head]) {
        const date = Date.parse(String(res.headers.date));
        assert.ok(Math.abs(date - Date.now()) < 60_000, `Date ${String(res.headers.date)}`);
      }
      assert.match(
        String(get.headers['content-type']),
        accept
          ? /^application\/openmetrics-text; version=1\.0\.0/
          : /^text\/plain; version=0\.0\.4/,
      );
      assert.equal(Number(get.headers['content-length']), body.length);
      if (accept) assert.ok(body.toString().endsWith('# EOF\n'));
    }
    // A connection asking more than twice a second is answered a turn later: still 200.
    const agent = new Agent({ connections: 1 });
    for (let i = 0; i < 6; i++) {
      const res = await request(url, { dispatcher: agent });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200);
      assert.equal(Number(res.headers['content-length']), Buffer.byteLength(text));
    }
    await agent.close();
    const query = await request(`${url}?collect=host`);
    await query.body.dump();
    assert.equal(query.statusCode, 200);
    const withBody = await request(url, { method: 'GET', body: 'x' });
    await withBody.body.dump();
    assert.equal(withBody.statusCode, 413);
  });

  it('a second lookout on the same port exits 2 with one line saying so', async () => {
    const res = await run(process.execPath, [
      'dist/cli.js',
      'serve',
      '--web.listen-address',
      `127.0.0.1:${lookout.port}`,
    ]).catch((e: { code: number; stderr: string }) => e);
    assert.equal((res as { code: number }).code, 2);
    const lines = (res as { stderr: string }).stderr.trim().split('\n');
    const last = lines.at(-1);
    assert.equal(
      last,
      `lookout: cannot listen on 127.0.0.1:${lookout.port}: is already in use; stop what listens there or pick another with --web.listen-address`,
    );
    assert.ok(!/\n\s+at /.test((res as { stderr: string }).stderr), 'no stack trace');
  });

  it('a bad --web.listen-address is a config error, exit 1', async () => {
    const res = await run(process.execPath, [
      'dist/cli.js',
      'serve',
      '--web.listen-address',
      'localhost',
    ]).catch((e: { code: number; stderr: string }) => e);
    assert.equal((res as { code: number }).code, 1);
    assert.equal(
      (res as { stderr: string }).stderr,
      '--web.listen-address: web.listen_address: expected host:port, e.g. ":10142" or "127.0.0.1:10142"\n',
    );
  });
});

describe('memory: what a refusal costs', () => {
  // Loading them costs a bare Node process 12.8 MB of RSS (docs/performance.md#the-http-client).
  it("a refused body, a 404 and a 405 leave Node's bundled undici, HTTP/2 and web-streams ReadableStream unloaded; the 413 is still JSON with its reason", async () => {
    const { lookout, list } = await startListing();
    try {
      const refused = await request(`${lookout.url}/metrics`, { method: 'POST', body: '{}' });
      assert.equal(refused.statusCode, 413);
      assert.match(String(refused.headers['content-type']), /^application\/json; charset=utf-8$/);
      assert.deepEqual(await refused.body.json(), { error: '/metrics takes no request body' });
      for (const [method, path, status] of [
        ['GET', '/nope', 404],
        ['DELETE', '/metrics', 405],
      ] as const) {
        const res = await request(`${lookout.url}${path}`, { method });
        await res.body.dump();
        assert.equal(res.statusCode, status, `${method} ${path}`);
      }
      const loaded = await loadedModules(lookout, list);
      // The list is the real one: the HTTP server lookout runs is in it.
      assert.ok(loaded.includes('NativeModule _http_server'), loaded.join(' '));
      for (const mod of [
        'internal/deps/undici/undici',
        'http2',
        'internal/webstreams/readablestream',
      ])
        assert.ok(!loaded.includes(`NativeModule ${mod}`), `${mod} was loaded`);
    } finally {
      await lookout.stop();
    }
  });
});

describe('koa loaded only for the pages that need it', () => {
  it('a lookout only scraped and health-checked never loads koa; the landing page loads it and is answered', async () => {
    const { lookout, list } = await startListing();
    /** Whether koa's CommonJS code is among the files lookout has loaded now. */
    const koaLoaded = async () => {
      const loaded = await loadedModules(lookout, list);
      assert.ok(loaded.includes('NativeModule _http_server'), 'the list is the real one');
      return loaded.some((l) => l.endsWith('/node_modules/koa/lib/application.js'));
    };
    try {
      const health = await request(`${lookout.url}/healthz`);
      assert.equal(health.statusCode, 200);
      assert.equal(health.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(await health.body.text(), 'ok\n');
      for (const accept of [undefined, 'application/openmetrics-text; version=1.0.0']) {
        const res = await request(`${lookout.url}/metrics`, { headers: accept ? { accept } : {} });
        await res.body.dump();
        assert.equal(res.statusCode, 200);
      }
      assert.equal(await koaLoaded(), false, 'koa loaded by /metrics or /healthz');
      const landing = await request(`${lookout.url}/`);
      assert.equal(landing.statusCode, 200);
      assert.match(await landing.body.text(), /<title>lookout<\/title>/);
      assert.equal(await koaLoaded(), true, 'koa loaded for the landing page');
    } finally {
      await lookout.stop();
    }
  });
});

describe('memory: what the HTTP client costs', () => {
  it('the nginx collector reads its status page without loading undici, npm package or Node’s bundled copy', async () => {
    const stub = createServer((_, res) =>
      res.end(
        'Active connections: 1 \nserver accepts handled requests\n 1 1 1 \nReading: 0 Writing: 1 Waiting: 0 \n',
      ),
    );
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    const port = (stub.address() as AddressInfo).port;
    const { lookout, list } = await startListing(
      `collectors:\n  nginx:\n    enabled: true\n    interval: 1s\n    timeout: 1s\n    status_url: http://127.0.0.1:${port}/stub_status\n`,
    );
    try {
      await eventually(
        async () =>
          sampleValue(await (await fetch(`${lookout.url}/metrics`)).text(), 'lookout_nginx_up') ===
          1,
        10_000,
        'lookout_nginx_up 1',
      );
      const loaded = await loadedModules(lookout, list);
      // The list is the real one: the HTTP client lookout used is in it, and npm packages are.
      assert.ok(loaded.includes('NativeModule _http_client'), 'node:http client loaded');
      assert.ok(
        loaded.some((l) => l.includes('/node_modules/prom-client/')),
        'npm packages are listed',
      );
      assert.deepEqual(
        loaded.filter((l) => l.includes('/node_modules/undici/')),
        [],
        'undici files loaded',
      );
      assert.ok(!loaded.includes('NativeModule internal/deps/undici/undici'));
    } finally {
      await lookout.stop();
      stub.close();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM stops lookout cleanly, exit 0, within a second', async () => {
    const lookout = await startLookout('');
    const exited = new Promise<{ code: number | null; ms: number }>((resolve) => {
      const t0 = performance.now();
      lookout.child.once('exit', (code) => resolve({ code, ms: performance.now() - t0 }));
    });
    // A keep-alive connection like Prometheus holds must not delay shutdown.
    await (await fetch(`${lookout.url}/metrics`)).text();
    lookout.child.kill('SIGTERM');
    const { code, ms } = await exited;
    assert.equal(code, 0, lookout.output());
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms to exit`);
    assert.match(lookout.output(), /msg="shutting down" signal=SIGTERM/);
  });
});

/** A GET by node:http, which sends the headers as given (undici drops a GET's Content-Length). */
function getAsIs(
  url: string,
  headers: Record<string, string>,
): Promise<{ res: IncomingMessage; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // A Content-Length past what is written would leave the answer waiting for the rest.
    req.setTimeout(5000, () => req.destroy(new Error(`${url}: no whole answer in 5 s`)));
    req.end();
  });
}

describe('/metrics with a service: the polled part and the live part written as chunks', () => {
  let lookout: Running | undefined;
  after(async () => {
    await lookout?.stop();
  });

  it('in front of koa and through koa, both formats: one whole exposition, Content-Length its length, one # EOF at the end', async () => {
    const dir = await tempDir('lookout-chunks-');
    const log = join(dir, 'access.log');
    await writeFile(log, '');
    lookout = await startLookout(`
collectors:
  host: { enabled: false }
  filesystem: { enabled: false }
  processes: { enabled: false }
  accesslog:
    poll_interval: 100ms
    logs:
      - { name: web, path: ${log}, format: combined }
`);
    const url = `${lookout.url}/metrics`;
    await eventually(
      async () =>
        sampleValue(await (await fetch(url)).text(), 'lookout_accesslog_lines_total', {
          log: 'web',
          result: 'parsed',
        }) === 0,
      10_000,
      'the access-log collector running',
    );
    for (const accept of [undefined, 'application/openmetrics-text; version=1.0.0']) {
      // A Content-Length header (even 0) turns the fast path down: koa answers.
      for (const viaKoa of [false, true]) {
        const headers: Record<string, string> = {
          ...(accept ? { accept } : {}),
          ...(viaKoa ? { 'content-length': '0' } : {}),
        };
        const { res, body } = await getAsIs(url, headers);
        const what = `${accept ?? 'prometheus'} ${viaKoa ? 'through koa' : 'in front of koa'}`;
        assert.equal(res.statusCode, 200, what);
        assert.equal(Number(res.headers['content-length']), body.length, what);
        const text = body.toString();
        if (accept) {
          assert.ok(text.endsWith('\n# EOF\n'), what);
          assert.equal(text.indexOf('# EOF'), text.length - '# EOF\n'.length, what);
        } else {
          const families = parseExposition(text).map((f) => f.name);
          // The polled part (lookout's own) and the live part (the service's) are both there.
          assert.ok(families.includes('lookout_accesslog_lines_total'), what);
          assert.ok(families.includes('lookout_collector_success'), what);
          assert.equal(new Set(families).size, families.length, `${what}: a family twice`);
        }
        assert.equal(
          sampleValue(text.replace(/# EOF\n$/, ''), 'lookout_accesslog_lines_total', {
            log: 'web',
            result: 'parsed',
          }),
          0,
          what,
        );
      }
    }
  });
});
