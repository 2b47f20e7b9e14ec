/**
 * The probes collector against real parts on 127.0.0.1: nginx (200, 301, 500, a slow
 * upstream), a refused port, a blackhole (accepts, never answers), redis-server,
 * a throwaway PostgreSQL cluster; the config errors; and the built lookout serving the
 * probes on /metrics and `lookout check` reporting them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  createProbesCollector,
  PROBERS,
  probeMetricNames,
  probesSchema,
  probesSchemaFor,
  probeTable,
  targetLabel,
  type ProbesCollector,
  type ProbeTargetConfig,
} from '../src/collectors/probes.js';
import { ConfigError, parseConfig } from '../src/collectors/config.js';
import { configLoader } from '../src/config/load.js';
import { prober as fileProber } from './fixtures/probes/file.js';
import { HttpClient } from '../src/lib/http.js';
import { probeHttp } from '../src/lib/probe-http.js';
import { createLogger } from '../src/lib/log.js';
import { encodeCommand, parseReply, RespError } from '../src/lib/probe-redis.js';
import { sqliteAvailable } from '../src/lib/probe-sqlite.js';
import { findSamples, sampleValue } from './helpers/exposition.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { startPostgres, type Postgres } from './helpers/postgres.js';
import { eventually, freePort, REPO, startLookout, tempDir } from './helpers/procs.js';
import { startRedis, type Redis } from './helpers/redis.js';

const run = promisify(execFile);
const log = createLogger('error');

/** Listens on 127.0.0.1, accepts every connection and never writes a byte. */
async function startBlackhole(): Promise<{
  address: string;
  port: number;
  close(): Promise<void>;
}> {
  const held: Socket[] = [];
  const server: Server = createServer((s) => {
    held.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise((r) => {
        for (const s of held) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An upstream nginx proxies to: /slow?ms=N answers after N ms, /toggle with `toggle.status`. */
const toggle = { status: 500 };
async function startUpstream(): Promise<{ port: number; server: HttpServer }> {
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/slow') {
      const timer = setTimeout(
        () => res.end('slow but fine\n'),
        Number(url.searchParams.get('ms')),
      );
      res.on('close', () => clearTimeout(timer));
    } else {
      res.statusCode = toggle.status;
      res.end(`status ${toggle.status}\n`);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

function collector(probes: unknown, http: HttpClient): ProbesCollector {
  return createProbesCollector(probesSchema.parse(probes), http, log);
}

/** One refresh, as the runner does it: under the collector's timeout. */
async function refresh(c: ProbesCollector, timeoutMs = 10_000): Promise<string> {
  const registry = await c.collect({
    signal: AbortSignal.timeout(timeoutMs),
    deadline: performance.now() + timeoutMs,
    log,
  });
  return registry.metrics();
}

const success = (text: string, target: string, kind: string) =>
  sampleValue(text, 'lookout_probe_success', { target, kind });
const seconds = (text: string, target: string, kind: string) =>
  sampleValue(text, 'lookout_probe_duration_seconds', { target, kind });
const failures = (text: string, target: string, kind: string) =>
  sampleValue(text, 'lookout_probe_consecutive_failures', { target, kind });
const statusCode = (text: string, target: string) =>
  sampleValue(text, 'lookout_probe_http_status_code', { target });

describe('probes config', () => {
  const problems = (probes: unknown): string[] => {
    try {
      parseConfig({ collectors: { probes } });
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };

  test(
    'a sqlite target on a Node without node:sqlite is a config error naming the Node version needed',
    { skip: sqliteAvailable() && `this Node (${process.version}) has node:sqlite` },
    () => {
      assert.deepEqual(problems({ targets: [{ kind: 'sqlite', path: '/var/lib/app.db' }] }), [
        `collectors.probes.targets[0].kind: kind "sqlite" needs node:sqlite, which Node 22.5 and later have (22.5 to 22.12 with --experimental-sqlite); this is Node ${process.version}. Run lookout on a newer Node, or remove this target`,
      ]);
    },
  );

  test('an HTTP URL with a user or password is refused; the default label leaves the query out', () => {
    assert.deepEqual(
      problems({ targets: [{ kind: 'http', url: 'https://admin:s3cret@shop.example/health' }] }),
      [
        'collectors.probes.targets[0].url: a user or password in the URL would be shown in the target label and logs; put it in headers (Authorization) instead',
      ],
    );
    const cfg = parseConfig({
      collectors: {
        probes: { targets: [{ kind: 'http', url: 'https://shop.example/health?token=abc' }] },
      },
    });
    const probes = cfg.collectors.probes as unknown as { targets: ProbeTargetConfig[] };
    assert.equal(targetLabel(probes.targets[0]!), 'https://shop.example/health');
  });

  test('secrets stay out of the config; each wrong field is named with its fix', () => {
    assert.deepEqual(
      problems({
        targets: [
          { kind: 'postgres', connection_string: 'postgres://app:hunter2@127.0.0.1:5432/app' },
          { kind: 'postgres', connection_string: 'host=127.0.0.1 user=app password=hunter2' },
          { kind: 'postgres', connection_string_file: '/etc/lookout/pg' },
          { kind: 'tcp', address: '127.0.0.1:22', timeout: '11s' },
          { kind: 'tcp', address: '127.0.0.1:22' },
          { kind: 'redis', address: '127.0.0.1:6379', username: 'probe' },
        ],
      }),
      [
        'collectors.probes.targets[0].connection_string: holds a password; put it in password_file (or the whole string in connection_string_file) so the config holds no secret',
        'collectors.probes.targets[1].connection_string: holds a password; put it in password_file (or the whole string in connection_string_file) so the config holds no secret',
        'collectors.probes.targets[2].name: required with connection_string_file (the label cannot come from a secret)',
        // Each kind's own checks come with its target; the collector's across targets after.
        'collectors.probes.targets[5].password_file: required with username (AUTH needs a password)',
        "collectors.probes.targets[3].timeout: must not be longer than the collector's timeout (10s); shorten it or lengthen collectors.probes.timeout",
        'collectors.probes.targets[4].name: target "127.0.0.1:22" (tcp) is also targets[3]; give each a distinct name',
      ],
    );
    assert.deepEqual(
      problems({
        targets: [
          { kind: 'smtp', address: '127.0.0.1:25' },
          { kind: 'http', url: 'ftp://127.0.0.1/', expected_status: [200, '2xx', 'ok'] },
          { kind: 'tcp', address: '127.0.0.1' },
        ],
      }),
      [
        'collectors.probes.targets[0].kind: expected one of "http", "tcp", "redis", "postgres", "sqlite"',
        'collectors.probes.targets[1].url: expected an http:// or https:// URL',
        'collectors.probes.targets[1].expected_status[2]: expected a status code like 200 or a class like "2xx"',
        'collectors.probes.targets[2].address: expected host:port, e.g. "127.0.0.1:6379" or "[::1]:6379"',
      ],
    );
  });
});

describe('the table of probe kinds', () => {
  test('a kind defined in one file outside src/ and added to a table is configured, probed and exported', async (t) => {
    const dir = await tempDir();
    t.after(() => rm(dir, { recursive: true, force: true }));
    const present = join(dir, 'present');
    const growing = join(dir, 'growing');
    await writeFile(present, 'twelve bytes');
    await writeFile(growing, '');
    // The one entry: the built-in kinds plus the new one.
    const table = probeTable(...Object.values(PROBERS), fileProber);
    const { parseConfig: parse } = configLoader({
      collectors: [['probes', { schema: probesSchemaFor(table) }]],
    });
    const doc = (targets: unknown[]) => ({ collectors: { probes: { targets } } });
    const fail = (targets: unknown[]) =>
      assert.throws(
        () => parse(doc(targets), 'lookout.yml'),
        (e: unknown) => e instanceof ConfigError && (problems.push(...e.problems), true),
      );
    const problems: string[] = [];
    fail([{ kind: 'file', path: 'relative' }]);
    fail([{ kind: 'file', path: '/x', min_byte: 1 }]);
    fail([{ kind: 'fil', path: '/x' }]);
    assert.deepEqual(problems, [
      'collectors.probes.targets[0].path: expected an absolute path',
      'collectors.probes.targets[0].min_byte: unknown key; did you mean min_bytes?',
      'collectors.probes.targets[0].kind: expected one of "http", "tcp", "redis", "postgres", "sqlite", "file"',
    ]);

    const config = parse(
      doc([
        { kind: 'file', path: present },
        { kind: 'file', path: growing, name: 'growing', min_bytes: 1 },
        { kind: 'tcp', address: `127.0.0.1:${await freePort()}` },
      ]),
    ).collectors.probes as unknown as Parameters<typeof createProbesCollector>[0];
    assert.deepEqual(probeMetricNames(table), [
      ...probeMetricNames(),
      'lookout_probe_file_size_bytes',
    ]);
    const client = new HttpClient();
    t.after(() => client.close());
    const c = createProbesCollector(config, client, log, table);
    const round = () =>
      c.collect({ signal: AbortSignal.timeout(5000), deadline: performance.now() + 5000, log });
    const registry = await round();
    let text = await registry.metrics();
    assert.equal(success(text, present, 'file'), 1);
    assert.equal(success(text, 'growing', 'file'), 0, 'below min_bytes');
    assert.equal(failures(text, 'growing', 'file'), 1);
    assert.ok(seconds(text, present, 'file')! >= 0);
    assert.equal(sampleValue(text, 'lookout_probe_file_size_bytes', { target: present }), 12);
    assert.equal(sampleValue(text, 'lookout_probe_file_size_bytes', { target: 'growing' }), 0);
    const refused = targetLabel(config.targets[2]!, table);
    assert.equal(success(text, refused, 'tcp'), 0, 'the built-in kinds still run beside it');

    // The next round: one file gone, the other grown. The same registry, the gone
    // file's size series removed rather than left at its last value.
    await rm(present);
    await writeFile(growing, 'now it has bytes');
    assert.equal(await round(), registry, 'the metric objects live as long as the collector');
    text = await registry.metrics();
    assert.equal(success(text, present, 'file'), 0);
    assert.equal(failures(text, present, 'file'), 1);
    assert.equal(
      sampleValue(text, 'lookout_probe_file_size_bytes', { target: present }),
      undefined,
    );
    assert.equal(success(text, 'growing', 'file'), 1);
    assert.equal(failures(text, 'growing', 'file'), 0);
    assert.equal(sampleValue(text, 'lookout_probe_file_size_bytes', { target: 'growing' }), 16);

    const checks = await c.checkTargets({
      signal: AbortSignal.timeout(5000),
      deadline: performance.now() + 5000,
      log,
    });
    assert.deepEqual(
      checks.map((x) => [x.target, x.ok]),
      [
        [`file ${present}`, false],
        ['file growing', true],
        [`tcp ${refused}`, false],
      ],
    );
    assert.match(checks[0]!.detail, /ENOENT/);
  });

  test('the built-in kinds and their metric families come from the table, one entry per kind', () => {
    assert.deepEqual(Object.keys(PROBERS), ['http', 'tcp', 'redis', 'postgres', 'sqlite']);
    assert.deepEqual(probeMetricNames(), [
      'lookout_probe_success',
      'lookout_probe_duration_seconds',
      'lookout_probe_consecutive_failures',
      'lookout_probe_http_status_code',
      'lookout_redis_list_length',
    ]);
    for (const [kind, p] of Object.entries(PROBERS)) assert.equal(p.kind, kind);
    assert.throws(() => probeTable(PROBERS.tcp, PROBERS.tcp), /probe kind "tcp" listed twice/);
  });
});

describe('RESP, the few replies the Redis probe reads', () => {
  test('commands are arrays of bulk strings, lengths in bytes', () => {
    assert.equal(
      encodeCommand(['LLEN', 'jobs:é']).toString(),
      '*2\r\n$4\r\nLLEN\r\n$7\r\njobs:é\r\n',
    );
  });

  test('simple, error, integer, bulk, null and array replies; a partial reply waits for more', () => {
    const buf = Buffer.from(
      '+PONG\r\n-WRONGPASS invalid\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$1\r\nx\r\n',
    );
    const values: unknown[] = [];
    for (let at = 0, r = parseReply(buf, at); r; at = r.next, r = parseReply(buf, at))
      values.push(r.value);
    assert.deepEqual(values, [
      'PONG',
      new RespError('WRONGPASS invalid'),
      42,
      'abc',
      null,
      [1, 'x'],
    ]);
    assert.equal(parseReply(Buffer.from('$5\r\nab')), undefined);
    assert.equal(parseReply(Buffer.from(':4')), undefined);
    assert.equal(parseReply(Buffer.from('*2\r\n:1\r\n')), undefined);
    assert.throws(() => parseReply(Buffer.from('HTTP/1.1 400\r\n')), /not a Redis reply/);
  });
});

describe('HTTP and TCP probes against real nginx', () => {
  let nginx: Nginx;
  let upstream: { port: number; server: HttpServer };
  let blackhole: Awaited<ReturnType<typeof startBlackhole>>;
  let refused: number;
  const http = new HttpClient();
  const url = (path: string) => `http://127.0.0.1:${nginx.port}${path}`;

  before(async () => {
    upstream = await startUpstream();
    blackhole = await startBlackhole();
    refused = await freePort();
    nginx = await startNginx({
      http: 'absolute_redirect off;',
      locations: `
        location = /ok { return 200 "all good\\n"; }
        location = /moved { return 301 /ok; }
        location = /error { return 500; }
        location = /slow { proxy_pass http://127.0.0.1:${upstream.port}; }
        location = /toggle { proxy_pass http://127.0.0.1:${upstream.port}; }
      `,
    });
  });
  after(async () => {
    await http.close();
    await nginx?.stop();
    await blackhole?.close();
    upstream?.server.close();
  });

  test('200, 301 (expected, not followed, and followed), 500: success, status code, duration', async () => {
    const text = await refresh(
      collector(
        {
          targets: [
            { kind: 'http', name: 'ok', url: url('/ok') },
            {
              kind: 'http',
              name: 'moved-expected',
              url: url('/moved'),
              expected_status: [200, 301],
              follow_redirects: false,
            },
            { kind: 'http', name: 'moved-2xx-only', url: url('/moved'), follow_redirects: false },
            { kind: 'http', name: 'moved-followed', url: url('/moved') },
            { kind: 'http', name: 'error', url: url('/error') },
            { kind: 'http', name: 'error-expected', url: url('/error'), expected_status: ['5xx'] },
          ],
        },
        http,
      ),
    );
    const want: [string, number, number][] = [
      ['ok', 1, 200],
      ['moved-expected', 1, 301],
      ['moved-2xx-only', 0, 301],
      ['moved-followed', 1, 200],
      ['error', 0, 500],
      ['error-expected', 1, 500],
    ];
    for (const [target, ok, code] of want) {
      assert.equal(success(text, target, 'http'), ok, `${target} success`);
      assert.equal(statusCode(text, target), code, `${target} status`);
      assert.ok(seconds(text, target, 'http')! > 0, `${target} has a duration`);
    }
  });

  test('the target label is the URL when no name is given', async () => {
    const text = await refresh(collector({ targets: [{ kind: 'http', url: url('/ok') }] }, http));
    assert.equal(success(text, url('/ok'), 'http'), 1);
  });

  test('a body regex must match the body', async () => {
    const text = await refresh(
      collector(
        {
          targets: [
            { kind: 'http', name: 'matches', url: url('/ok'), body_regex: 'all g[o]+d' },
            { kind: 'http', name: 'differs', url: url('/ok'), body_regex: '^maintenance' },
          ],
        },
        http,
      ),
    );
    assert.equal(success(text, 'matches', 'http'), 1);
    assert.equal(success(text, 'differs', 'http'), 0);
    assert.equal(statusCode(text, 'differs'), 200);
  });

  test('a slow response within its timeout succeeds with its duration; past its timeout it fails', async () => {
    const text = await refresh(
      collector(
        {
          targets: [
            { kind: 'http', name: 'slow', url: url('/slow?ms=800'), timeout: '5s' },
            { kind: 'http', name: 'too-slow', url: url('/slow?ms=3000'), timeout: '500ms' },
          ],
        },
        http,
      ),
    );
    assert.equal(success(text, 'slow', 'http'), 1);
    assert.ok(seconds(text, 'slow', 'http')! >= 0.8, `slow took ${seconds(text, 'slow', 'http')}`);
    assert.equal(success(text, 'too-slow', 'http'), 0);
    assert.equal(statusCode(text, 'too-slow'), 0, 'no response, status 0');
    assert.ok(seconds(text, 'too-slow', 'http')! >= 0.5);
  });

  test('a refused port and a blackhole fail; the blackhole costs its own timeout, not the next target’s', async () => {
    // One slot: the blackhole goes first and holds it until its own timeout; the target
    // after it still gets its whole deadline and answers.
    const c = collector(
      {
        concurrency: 1,
        targets: [
          { kind: 'http', name: 'blackhole', url: `http://${blackhole.address}/`, timeout: '1s' },
          { kind: 'tcp', name: 'blackhole-tcp-ok', address: blackhole.address, timeout: '1s' },
          { kind: 'http', name: 'refused', url: `http://127.0.0.1:${refused}/` },
          { kind: 'tcp', name: 'refused-tcp', address: `127.0.0.1:${refused}` },
          { kind: 'http', name: 'ok', url: url('/ok'), timeout: '1s' },
          { kind: 'tcp', name: 'nginx-tcp', address: `127.0.0.1:${nginx.port}` },
        ],
      },
      http,
    );
    const text = await refresh(c);
    assert.equal(success(text, 'blackhole', 'http'), 0);
    assert.ok(seconds(text, 'blackhole', 'http')! >= 1, 'the blackhole took its timeout');
    assert.equal(statusCode(text, 'blackhole'), 0);
    // A blackhole accepts: a TCP connect to it succeeds (that is all TCP asks).
    assert.equal(success(text, 'blackhole-tcp-ok', 'tcp'), 1);
    assert.equal(success(text, 'refused', 'http'), 0);
    assert.equal(success(text, 'refused-tcp', 'tcp'), 0);
    assert.equal(success(text, 'ok', 'http'), 1, 'the target after the blackhole answered');
    assert.equal(success(text, 'nginx-tcp', 'tcp'), 1);
    const checks = await c.checkTargets({
      signal: AbortSignal.timeout(10_000),
      deadline: performance.now() + 10_000,
      log,
    });
    assert.deepEqual(
      checks.map((x) => [x.target, x.ok, x.detail.replace(/ \(\d+ ms\)$/, '')]),
      [
        ['http blackhole', false, 'no answer within 1s'],
        ['tcp blackhole-tcp-ok', true, 'connected'],
        ['http refused', false, `connect ECONNREFUSED 127.0.0.1:${refused}`],
        ['tcp refused-tcp', false, `connect ECONNREFUSED 127.0.0.1:${refused}`],
        ['http ok', true, 'HTTP 200'],
        ['tcp nginx-tcp', true, 'connected'],
      ],
    );
  });

  test('a blackhole at the longest timeout ends by the fan-out’s deadline, not hung', async () => {
    // Every target has the same timeout here, so the fan-out's own deadline ends them
    // (a shorter one gets a signal of its own, as in the test above).
    const c = collector(
      {
        targets: [
          {
            kind: 'http',
            name: 'blackhole',
            url: `http://${blackhole.address}/`,
            timeout: '500ms',
          },
          { kind: 'tcp', name: 'nginx', address: `127.0.0.1:${nginx.port}`, timeout: '500ms' },
        ],
      },
      http,
    );
    for (let round = 1; round <= 2; round++) {
      const text = await refresh(c);
      assert.equal(success(text, 'blackhole', 'http'), 0);
      assert.equal(failures(text, 'blackhole', 'http'), round, 'probed again, not left as hung');
      assert.equal(success(text, 'nginx', 'tcp'), 1);
    }
    const [hole] = await c.checkTargets({
      signal: AbortSignal.timeout(10_000),
      deadline: performance.now() + 10_000,
      log,
    });
    assert.deepEqual(hole, {
      target: 'http blackhole',
      ok: false,
      detail: 'no answer within 500ms',
    });
  });

  test('consecutive failures count over refreshes, reset on success, and the collector keeps them', async () => {
    const c = collector(
      {
        targets: [
          { kind: 'http', name: 'flaky', url: url('/toggle') },
          { kind: 'http', name: 'steady', url: url('/ok') },
        ],
      },
      http,
    );
    const counts: number[] = [];
    toggle.status = 500;
    for (let i = 0; i < 3; i++) counts.push(failures(await refresh(c), 'flaky', 'http')!);
    toggle.status = 200;
    const back = await refresh(c);
    counts.push(failures(back, 'flaky', 'http')!);
    toggle.status = 503;
    counts.push(failures(await refresh(c), 'flaky', 'http')!);
    assert.deepEqual(counts, [1, 2, 3, 0, 1]);
    assert.equal(success(back, 'flaky', 'http'), 1);
    assert.equal(failures(back, 'steady', 'http'), 0);
    assert.deepEqual(
      [...c.failureCounts()],
      [
        ['http flaky', 1],
        ['http steady', 0],
      ],
    );
  });
});

describe('HTTP probe redirects', () => {
  test("a redirect to another origin gets the probe's headers but not its credentials", async () => {
    const seen: Record<string, string | string[] | undefined>[] = [];
    const other = createHttpServer((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherPort = (other.address() as { port: number }).port;
    const first = createHttpServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(302, { location: `http://127.0.0.1:${otherPort}/landing` }).end();
    });
    await new Promise<void>((r) => first.listen(0, '127.0.0.1', r));
    const http = new HttpClient();
    try {
      const out = await probeHttp(
        http,
        {
          url: `http://127.0.0.1:${(first.address() as { port: number }).port}/start`,
          method: 'GET',
          headers: { Authorization: 'Bearer t0ken', Cookie: 'sid=1', 'X-Probe': 'lookout' },
          expectedStatus: [],
          followRedirects: true,
        },
        AbortSignal.timeout(5000),
      );
      assert.equal(out.ok, true, out.detail);
      assert.equal(seen.length, 2);
      assert.equal(seen[0]!.authorization, 'Bearer t0ken', 'the probe’s own origin gets them');
      assert.equal(seen[0]!.cookie, 'sid=1');
      assert.equal(seen[1]!.authorization, undefined, 'no Authorization to another origin');
      assert.equal(seen[1]!.cookie, undefined, 'no Cookie to another origin');
      assert.equal(seen[1]!['x-probe'], 'lookout', 'other headers still go');
    } finally {
      await http.close();
      first.close();
      other.close();
    }
  });
});

describe('Redis probes against a real redis-server', () => {
  let redis: Redis;
  let dir: string;
  before(async () => {
    redis = await startRedis({ password: 'redis-secret' });
    dir = await tempDir('lookout-probes-redis-');
    await writeFile(join(dir, 'pw'), 'redis-secret\n');
    await writeFile(join(dir, 'wrong'), 'nope\n');
    await redis.cli('rpush', 'jobs', 'a', 'b', 'c');
    await redis.cli('set', 'not-a-list', 'x');
    await redis.cli('-n', '2', 'rpush', 'db2-jobs', 'a');
  });
  after(() => redis?.stop());

  test('PING with AUTH, and LLEN of named keys (a missing key is 0, a non-list has no series)', async () => {
    const http = new HttpClient();
    const text = await refresh(
      collector(
        {
          targets: [
            {
              kind: 'redis',
              name: 'cache',
              address: redis.address,
              password_file: join(dir, 'pw'),
              list_keys: ['jobs', 'missing', 'not-a-list'],
            },
            {
              kind: 'redis',
              name: 'db2',
              address: redis.address,
              password_file: join(dir, 'pw'),
              db: 2,
              list_keys: ['db2-jobs'],
            },
            { kind: 'redis', name: 'no-password', address: redis.address },
            {
              kind: 'redis',
              name: 'wrong-password',
              address: redis.address,
              password_file: join(dir, 'wrong'),
            },
          ],
        },
        http,
      ),
    );
    assert.equal(success(text, 'cache', 'redis'), 1);
    assert.equal(
      sampleValue(text, 'lookout_redis_list_length', { target: 'cache', key: 'jobs' }),
      3,
    );
    assert.equal(
      sampleValue(text, 'lookout_redis_list_length', { target: 'cache', key: 'missing' }),
      0,
    );
    assert.deepEqual(findSamples(text, 'lookout_redis_list_length', { key: 'not-a-list' }), []);
    assert.equal(
      sampleValue(text, 'lookout_redis_list_length', { target: 'db2', key: 'db2-jobs' }),
      1,
    );
    assert.equal(success(text, 'no-password', 'redis'), 0);
    assert.equal(success(text, 'wrong-password', 'redis'), 0);
  });

  test('Redis down: success 0, no list series, failures counted', async () => {
    const other = await startRedis();
    const http = new HttpClient();
    const c = collector(
      { targets: [{ kind: 'redis', name: 'gone', address: other.address, list_keys: ['q'] }] },
      http,
    );
    const up = await refresh(c);
    assert.equal(success(up, 'gone', 'redis'), 1);
    assert.equal(sampleValue(up, 'lookout_redis_list_length', { target: 'gone', key: 'q' }), 0);
    await other.stop();
    const down = await refresh(c);
    assert.equal(success(down, 'gone', 'redis'), 0);
    assert.deepEqual(findSamples(down, 'lookout_redis_list_length'), []);
    assert.equal(failures(await refresh(c), 'gone', 'redis'), 2);
  });
});

describe('PostgreSQL probes against a throwaway cluster', () => {
  let pg: Postgres;
  let dir: string;
  let blackhole: Awaited<ReturnType<typeof startBlackhole>>;
  before(async () => {
    pg = await startPostgres();
    blackhole = await startBlackhole();
    dir = await tempDir('lookout-probes-pg-');
    await writeFile(join(dir, 'pw'), `${pg.password}\n`);
    await writeFile(
      join(dir, 'conn'),
      `postgres://${pg.user}:${pg.password}@127.0.0.1:${pg.port}/postgres\n`,
    );
  });
  after(async () => {
    await pg?.stop();
    await blackhole?.close();
  });

  test('a query in a read-only transaction: fast, slow (pg_sleep), a write refused, a blackhole', async () => {
    const http = new HttpClient();
    const pgTarget = (name: string, query: string, extra: Record<string, unknown> = {}) => ({
      kind: 'postgres',
      name,
      connection_string: pg.url,
      password_file: join(dir, 'pw'),
      query,
      ...extra,
    });
    const c = collector(
      {
        targets: [
          pgTarget('fast', 'select 1'),
          pgTarget('slow', 'select pg_sleep(0.6)'),
          pgTarget('write', 'create table probe_wrote_here (i int)'),
          pgTarget('sneaky-commit', 'commit; create table probe_wrote_here (i int)'),
          {
            kind: 'postgres',
            name: 'from-file',
            connection_string_file: join(dir, 'conn'),
            query: 'select count(*) from pg_stat_activity',
          },
          { kind: 'postgres', name: 'no-password', connection_string: pg.url },
          {
            kind: 'postgres',
            name: 'blackhole',
            connection_string: `postgres://lookout@${blackhole.address}/postgres`,
            timeout: '1s',
          },
        ],
      },
      http,
    );
    const text = await refresh(c);
    assert.equal(success(text, 'fast', 'postgres'), 1);
    assert.equal(success(text, 'slow', 'postgres'), 1);
    assert.ok(
      seconds(text, 'slow', 'postgres')! >= 0.6,
      `slow: ${seconds(text, 'slow', 'postgres')}`,
    );
    assert.equal(success(text, 'write', 'postgres'), 0);
    assert.equal(success(text, 'sneaky-commit', 'postgres'), 0);
    assert.equal(success(text, 'from-file', 'postgres'), 1);
    assert.equal(success(text, 'no-password', 'postgres'), 0);
    assert.equal(success(text, 'blackhole', 'postgres'), 0);
    assert.ok(seconds(text, 'blackhole', 'postgres')! >= 1);
    assert.equal(
      (await pg.psql("select count(*) from pg_tables where tablename = 'probe_wrote_here'")).trim(),
      '0',
      'nothing was written',
    );
    const checks = await c.checkTargets({
      signal: AbortSignal.timeout(10_000),
      deadline: performance.now() + 10_000,
      log,
    });
    const detail = (t: string) => checks.find((x) => x.target === `postgres ${t}`)!.detail;
    assert.match(detail('write'), /cannot execute CREATE TABLE in a read-only transaction/);
    assert.match(
      detail('sneaky-commit'),
      /cannot insert multiple commands into a prepared statement/,
    );
    assert.match(detail('slow'), /^query took \d+ ms, 1 rows \(\d+ ms\)$/);
    assert.match(detail('no-password'), /password/);
    assert.equal(detail('blackhole'), 'no answer within 1s');
  });
});

describe('lookout serving probes (built dist/)', () => {
  let nginx: Nginx;
  let blackhole: Awaited<ReturnType<typeof startBlackhole>>;
  let upstream: { port: number; server: HttpServer };
  before(async () => {
    blackhole = await startBlackhole();
    upstream = await startUpstream();
    nginx = await startNginx({
      locations: `location = /ok { return 200; }\nlocation = /error { return 500; }
        location = /slow { proxy_pass http://127.0.0.1:${upstream.port}; }`,
    });
  });
  after(async () => {
    await nginx?.stop();
    await blackhole?.close();
    upstream?.server.close();
  });

  const config = (targets: string) => `
collectors:
  probes:
    interval: 1s
    timeout: 1s
    targets:
${targets}`;
  const ok = `      - {kind: http, name: ok, url: "http://127.0.0.1:PORT/ok"}`;
  const error = `      - {kind: http, name: error, url: "http://127.0.0.1:PORT/error"}`;
  const hole = `      - {kind: http, name: blackhole, url: "http://BH/", timeout: 800ms}`;
  const fill = (s: string) =>
    s.replaceAll('PORT', String(nginx.port)).replaceAll('BH', blackhole.address);

  test('/metrics carries success and consecutive failures, and answers while a target blackholes', async () => {
    const first = await startLookout(fill(config([ok, error, hole].join('\n'))));
    try {
      const metrics = async () => (await fetch(`${first.url}/metrics`)).text();
      const text = await eventually(
        async () => {
          const t = await metrics();
          return (failures(t, 'error', 'http') ?? 0) >= 2 && t;
        },
        15_000,
        'the 500 target failing twice in a row',
      );
      assert.equal(success(text, 'ok', 'http'), 1);
      assert.equal(success(text, 'error', 'http'), 0);
      assert.equal(success(text, 'blackhole', 'http'), 0);
      assert.equal(statusCode(text, 'error'), 500);
      assert.equal(
        sampleValue(text, 'lookout_collector_success', { collector: 'probes' }),
        1,
        'a failing target is not a failing collector',
      );
      // Every round has the blackhole in flight for 800 ms of its 1 s: scrapes during it
      // are served from the last round, not held by it.
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${first.url}/metrics`, { signal: AbortSignal.timeout(700) });
        assert.equal(res.status, 200);
        await res.text();
      }
    } finally {
      await first.stop();
    }
  });

  test('slow endpoints do not make a fast one on the same site wait behind them', async () => {
    // Six requests of 2.5 s to one origin at once: a client that allowed only a few
    // connections per origin would queue the fast sibling behind them past its 1 s timeout.
    const slow = Array.from(
      { length: 6 },
      (_, i) =>
        `      - {kind: http, name: slow${i}, url: "http://127.0.0.1:PORT/slow?ms=2500&i=${i}", timeout: 4s}`,
    );
    const sibling = `      - {kind: http, name: sibling, url: "http://127.0.0.1:PORT/ok", timeout: 1s}`;
    const lookout = await startLookout(
      fill(`
collectors:
  probes:
    interval: 5s
    timeout: 5s
    targets:
${[...slow, sibling].join('\n')}`),
    );
    try {
      const text = await eventually(
        async () => {
          const t = await (await fetch(`${lookout.url}/metrics`)).text();
          return success(t, 'slow5', 'http') === 1 && t;
        },
        20_000,
        'a round in which the slow endpoints answered',
      );
      assert.equal(success(text, 'sibling', 'http'), 1, 'the fast sibling answered within 1s');
      assert.equal(failures(text, 'sibling', 'http'), 0);
    } finally {
      await lookout.stop();
    }
  });

  test("lookout check reports the nginx and TLS collectors' targets through the same loop", async () => {
    const dir = await tempDir('lookout-probes-check-');
    const file = join(dir, 'lookout.yml');
    await writeFile(
      file,
      fill(`
collectors:
  nginx:
    enabled: true
    status_url: http://127.0.0.1:PORT/stub_status
  tls:
    targets:
      - { address: "127.0.0.1:PORT", name: plain-http }
  probes:
    targets:
${ok}`),
    );
    const { stdout } = await run(process.execPath, [
      join(REPO, 'dist/cli.js'),
      'check',
      '--config',
      file,
    ]);
    const rows = stdout
      .split('\n')
      .filter((l) => /^(nginx|tls|probes) /.test(l))
      .map((l) => l.split(/\s{2,}/).slice(0, 3));
    assert.deepEqual(rows, [
      ['nginx', `http://127.0.0.1:${nginx.port}/stub_status`, 'ok'],
      ['tls', 'plain-http', 'FAIL'],
      ['probes', 'http ok', 'ok'],
    ]);
    assert.match(stdout, /^1 of 3 target\(s\) do not answer right/m);
  });

  test('lookout check lists each target and whether it answers, and exits 0 on a valid config', async () => {
    const dir = await tempDir('lookout-probes-check-');
    const file = join(dir, 'lookout.yml');
    await writeFile(file, fill(config([ok, error, hole].join('\n'))));
    const { stdout } = await run(process.execPath, [
      join(REPO, 'dist/cli.js'),
      'check',
      '--config',
      file,
    ]);
    const lines = stdout.split('\n');
    assert.equal(lines[0], `${file}: OK`);
    assert.match(stdout, /^probes\s+http ok\s+ok\s+HTTP 200 \(\d+ ms\)$/m);
    assert.match(stdout, /^probes\s+http error\s+FAIL\s+HTTP 500, expected 2xx \(\d+ ms\)$/m);
    assert.match(stdout, /^probes\s+http blackhole\s+FAIL\s+no answer within 800ms$/m);
    assert.match(
      stdout,
      /^2 of 3 target\(s\) do not answer right \(the config is valid; exit code 0\)\.$/m,
    );
  });
});
