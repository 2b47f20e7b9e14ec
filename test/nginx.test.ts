/**
 * The nginx collector against a real nginx (values checked against nginx's own page, read right after) and
 * against every way a status URL goes wrong — refused, a blackhole, a page that is not
 * stub_status, an HTTP error, an answer too slow — and through a running lookout whose
 * nginx is stopped under it.
 */
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createNginxCollector, nginxSchema } from '../src/collectors/nginx.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { parseStubStatus } from '../src/lib/stubstatus.js';
import { findSamples, seriesValue } from './helpers/exposition.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { eventually, freePort, startLookout } from './helpers/procs.js';

const log = createLogger('error');
const PAGE = `Active connections: 291 
server accepts handled requests
 16630948 16630947 31070465 
Reading: 6 Writing: 179 Waiting: 106 
`;

/** GET over a new connection (no agent), as a client other than the collector. */
function getNewConnection(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    }).on('error', reject);
  });
}

let nginx: Nginx;
const http = new HttpClient();
let blackhole: Server;
const held: Socket[] = [];
let slow: HttpServer;
const slowTimers: NodeJS.Timeout[] = [];
const url = (port: number, path = '/stub_status') => `http://127.0.0.1:${port}${path}`;

async function refresh(statusUrl: string, statusTimeout = '1s') {
  const collector = createNginxCollector(
    nginxSchema.parse({ status_url: statusUrl, status_timeout: statusTimeout }),
    http,
  );
  const registry = await collector.collect({
    signal: AbortSignal.timeout(10_000),
    deadline: performance.now() + 10_000,
    log,
  });
  return { text: await registry.metrics(), collector };
}

before(async () => {
  nginx = await startNginx({
    locations: `
    location = /hello { default_type text/html; return 200 "<html><body>Welcome to nginx!</body></html>\\n"; }
    location = /error { return 500 "oops\\n"; }
    location = /missing { return 404; }`,
  });
  blackhole = createServer((s) => held.push(s));
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  // Answers with a real stub_status page, but only after 5 s.
  slow = createHttpServer((_req, res) => {
    slowTimers.push(setTimeout(() => res.end(PAGE), 5000));
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
});

after(async () => {
  for (const t of slowTimers) clearTimeout(t);
  for (const s of held) s.destroy();
  slow?.closeAllConnections();
  slow?.close();
  blackhole?.close();
  await http.close();
  await nginx?.stop();
});

describe('nginx collector against a real nginx', () => {
  it("reports what nginx's own page says, read right after", async () => {
    // Some traffic first, each on its own connection.
    for (let i = 0; i < 5; i++) await getNewConnection(url(nginx.port, '/hello'));
    const { text, collector } = await refresh(url(nginx.port));
    // One more request on one new connection: the counters move by exactly one.
    const page = parseStubStatus(await getNewConnection(url(nginx.port)));
    assert.equal(seriesValue(text, 'lookout_nginx_up'), 1, JSON.stringify(collector.lastSeen()));
    assert.equal(seriesValue(text, 'lookout_nginx_http_requests_total'), page.requests - 1);
    assert.equal(seriesValue(text, 'lookout_nginx_connections_accepted_total'), page.accepted - 1);
    assert.equal(seriesValue(text, 'lookout_nginx_connections_handled_total'), page.handled - 1);
    assert.ok(page.requests >= 7, `${page.requests} requests`);
    // Gauges move with every connection; their relation holds on every page.
    const state = (s: string) => seriesValue(text, `lookout_nginx_connections{state="${s}"}`)!;
    assert.equal(state('active'), state('reading') + state('writing') + state('waiting'));
    assert.ok(state('writing') >= 1, 'the collector’s own request was being written');
    assert.equal(findSamples(text, 'lookout_nginx_connections').length, 4);
  });

  const down: [string, () => string, RegExp][] = [
    ['a refused port', () => url(refusedPort), /ECONNREFUSED/],
    ['a blackhole (accepts, never answers)', () => url(port(blackhole)), /no answer within 1s/],
    ['an answer slower than status_timeout', () => url(port(slow)), /no answer within 1s/],
    [
      'a 200 page that is not stub_status',
      () => url(nginx.port, '/hello'),
      /not an nginx stub_status page/,
    ],
    ['an HTTP 500', () => url(nginx.port, '/error'), /HTTP 500/],
    ['an HTTP 404', () => url(nginx.port, '/missing'), /HTTP 404/],
  ];
  let refusedPort: number;
  const port = (s: Server | HttpServer) => (s.address() as { port: number }).port;
  before(async () => (refusedPort = await freePort()));

  for (const [what, target, why] of down) {
    it(`${what}: lookout_nginx_up 0, no other series, the refresh succeeds`, async () => {
      const { text, collector } = await refresh(target());
      assert.equal(seriesValue(text, 'lookout_nginx_up'), 0);
      assert.deepEqual(
        findSamples(text, /^lookout_nginx_/).map((s) => s.name),
        ['lookout_nginx_up'],
      );
      const seen = collector.lastSeen();
      assert.ok(seen && !seen.up);
      assert.match(seen.error, why);
    });
  }

  it('one collector across refreshes: its nginx stopped, the connection and request series go and lookout_nginx_up stays; restarted, they are back', async () => {
    const own = await startNginx();
    try {
      const collector = createNginxCollector(
        nginxSchema.parse({ status_url: url(own.port), status_timeout: '1s' }),
        http,
      );
      const refreshOnce = async () =>
        (
          await collector.collect!({
            signal: AbortSignal.timeout(10_000),
            deadline: performance.now() + 10_000,
            log,
          })
        ).metrics();
      const up = await refreshOnce();
      assert.equal(seriesValue(up, 'lookout_nginx_up'), 1);
      assert.equal(findSamples(up, 'lookout_nginx_connections').length, 4);
      const requests = seriesValue(up, 'lookout_nginx_http_requests_total')!;
      assert.ok(requests >= 1);
      // The counters are nginx's own figures each time, not added up across refreshes.
      const again = await refreshOnce();
      assert.equal(seriesValue(again, 'lookout_nginx_http_requests_total'), requests + 1);

      await own.stop();
      const down = await refreshOnce();
      assert.equal(seriesValue(down, 'lookout_nginx_up'), 0);
      assert.deepEqual(
        findSamples(down, /^lookout_nginx_/).map((s) => s.name),
        ['lookout_nginx_up'],
      );
      // The families themselves go, not only their samples: no HELP left behind.
      assert.doesNotMatch(down, /lookout_nginx_connections|_total/);

      await own.restart();
      const back = await refreshOnce();
      assert.equal(seriesValue(back, 'lookout_nginx_up'), 1);
      // A new nginx counts from its own start: the counter is what its page says, not
      // that added to the old nginx's count.
      const page = parseStubStatus(await getNewConnection(url(own.port)));
      assert.equal(seriesValue(back, 'lookout_nginx_http_requests_total'), page.requests - 1);
      assert.deepEqual(
        [...new Set(findSamples(back, /^lookout_nginx_/).map((s) => s.name))],
        [
          'lookout_nginx_up',
          'lookout_nginx_connections',
          'lookout_nginx_connections_accepted_total',
          'lookout_nginx_connections_handled_total',
          'lookout_nginx_http_requests_total',
        ],
      );
    } finally {
      await own.stop();
    }
  });

  it('checkTargets says whether the status page answers', async () => {
    const check = (u: string) =>
      createNginxCollector(nginxSchema.parse({ status_url: u }), http).checkTargets!({
        signal: AbortSignal.timeout(5000),
        deadline: performance.now() + 5000,
        log,
      });
    const [good] = await check(url(nginx.port));
    assert.equal(good!.ok, true);
    assert.match(good!.detail, /^stub_status in \d+ ms: \d+ active connections$/);
    const [bad] = await check(url(refusedPort));
    assert.deepEqual(
      { ...bad!, detail: undefined },
      { target: url(refusedPort), ok: false, detail: undefined },
    );
    assert.match(bad!.detail, /ECONNREFUSED/);
  });

  it('names the field when status_url is not an http URL', () => {
    const r = nginxSchema.safeParse({ status_url: 'localhost/stub_status' });
    assert.ok(!r.success);
    assert.deepEqual(r.error.issues[0]!.path, ['status_url']);
    assert.match(r.error.issues[0]!.message, /expected an http:\/\/ or https:\/\/ URL/);
  });
});

describe('nginx collector in a running lookout', () => {
  it('serves stub_status on /metrics, then up 0 with the collector still succeeding once nginx stops', async () => {
    const own = await startNginx();
    const lookout = await startLookout(
      `collectors:
  nginx:
    enabled: true
    interval: 1s
    timeout: 1s
    status_url: http://127.0.0.1:${own.port}/stub_status
    status_timeout: 500ms
`,
    );
    const metrics = async () => (await fetch(`${lookout.url}/metrics`)).text();
    try {
      const up = await eventually(
        async () => {
          const t = await metrics();
          return seriesValue(t, 'lookout_nginx_up') === 1 && t;
        },
        15_000,
        'lookout_nginx_up 1',
      );
      assert.ok(seriesValue(up, 'lookout_nginx_http_requests_total')! >= 1);
      assert.ok(seriesValue(up, 'lookout_nginx_connections_accepted_total')! >= 1);
      await own.stop();
      const down = await eventually(
        async () => {
          const t = await metrics();
          return seriesValue(t, 'lookout_nginx_up') === 0 && t;
        },
        15_000,
        'lookout_nginx_up 0 after nginx stopped',
      );
      assert.equal(seriesValue(down, 'lookout_collector_success{collector="nginx"}'), 1);
      assert.equal(seriesValue(down, 'lookout_nginx_http_requests_total'), undefined);
    } finally {
      await lookout.stop();
      await own.stop();
    }
  });
});
