/**
 * The access-log collector end to end: a real nginx (Debian's) with the shipped
 * log_format file, real requests on 127.0.0.1 (200, 301, 404, 500, and slow ones proxied
 * to a Node server that waits before answering), and the built lookout read through its
 * /metrics. Counts per code must equal the responses the client got, exactly; the
 * histogram's count, sum and buckets must equal what nginx wrote in the log — before and
 * after rotation by rename + `nginx -s reopen`. Copy-truncate during traffic loses at
 * most what its window allows, counts nothing twice, and no counter goes back.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { copyFile, readFile, rename, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { eventually, REPO, startLookout, type Running } from './helpers/procs.js';
import { findSamples, parseExposition, sampleValue } from './helpers/exposition.js';
import { DEFAULT_BUCKETS } from '../src/collectors/accesslog.js';

const PATHS = ['/ok', '/moved', '/missing', '/boom', '/slow'] as const;
/** Delays of the slow upstream, in ms: either side of the 0.5 s and 2 s bucket edges too. */
const DELAYS = [20, 120, 480, 620, 1100];

let slowServer: Server;
let nginx: Nginx;
let lookout: Running;

/** Responses the client got, by code and by path: what lookout must count. */
const sent = new Map<string, number>();
let total = 0;
/** When each response arrived (performance.now()). */
const done: number[] = [];

async function send(path: string, method: 'GET' | 'OPTIONS' = 'GET'): Promise<void> {
  const url =
    path === '/slow'
      ? `${nginx.url}/slow?ms=${DELAYS[total % DELAYS.length]}`
      : `${nginx.url}${path}`;
  const res = await request(url, {
    method,
    headers: { 'user-agent': 'lookout-test "quoted" agent/1.0' },
  });
  await res.body.dump();
  const key = `${res.statusCode} ${path} ${method}`;
  sent.set(key, (sent.get(key) ?? 0) + 1);
  total++;
  done.push(performance.now());
}

/**
 * Sends `n` requests over the paths, `concurrency` at a time; `at(i)` runs before the
 * i-th request is started (a rotation in the middle of the traffic) while the other
 * workers keep sending.
 */
async function traffic(
  n: number,
  concurrency: number,
  at: Map<number, () => Promise<void>> = new Map(),
) {
  let next = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const hook = at.get(i);
      if (hook) await hook();
      await send(PATHS[i % PATHS.length]!);
    }
  });
  await Promise.all(workers);
}

async function metrics() {
  const res = await request(`${lookout.url}/metrics`);
  return parseExposition(await res.body.text());
}

const LINE = /^\S+ - \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) \d+ "[^"]*" "[^"]*" ([\d.]+) \S+/;

/** request_time of every line nginx wrote, over the live log and the rotated ones. */
async function loggedTimes(files: string[]): Promise<number[]> {
  const times: number[] = [];
  for (const f of files) {
    for (const line of (await readFile(f, 'latin1')).split('\n')) {
      const m = LINE.exec(line);
      if (m && m[2] !== '/stub_status') times.push(Number(m[4]));
    }
  }
  return times;
}

/** OPTIONS requests sent as markers, one per assertCounts. */
let markers = 0;

/**
 * Sends one OPTIONS request (a marker no other request uses) and waits until lookout has
 * counted it: every line written before it has then been read. Resolves with that exposition.
 */
async function countedMarker(who: string) {
  await send('/ok', 'OPTIONS');
  markers++;
  return eventually(
    async () => {
      const e = await metrics();
      const marked = sampleValue(e, 'lookout_http_requests_total', {
        log: 'web',
        code: '200',
        method: 'OPTIONS',
      });
      return marked === markers ? e : undefined;
    },
    15_000,
    `${who} to have counted the marker request`,
  );
}

/**
 * Sends a marker (the only OPTIONS request, so the last line of the log), waits until
 * lookout has counted it, and then requires every request sent counted exactly once: a
 * line counted twice would leave the parsed count over the number sent, one lost under it.
 */
async function assertCounts(logFiles: string[], what: string): Promise<void> {
  const e = await countedMarker(`${what}: lookout`);
  assert.equal(
    sampleValue(e, 'lookout_accesslog_lines_total', { log: 'web', result: 'parsed' }),
    total,
    `${what}: every line parsed once`,
  );
  assert.equal(
    sampleValue(e, 'lookout_accesslog_lines_total', { log: 'web', result: 'malformed' }),
    0,
  );
  const counted = new Map<string, number>();
  for (const s of findSamples(e, 'lookout_http_requests_total', { log: 'web' })) {
    const path = s.labels.route === 'slow' ? '/slow' : undefined;
    const key = `${s.labels.code} ${s.labels.method}`;
    counted.set(key, (counted.get(key) ?? 0) + s.value);
    if (path) assert.equal(s.labels.code, '200', 'the slow route answers 200');
  }
  const byCode = new Map<string, number>();
  for (const [k, v] of sent) {
    const [code, , method] = k.split(' ');
    byCode.set(`${code} ${method}`, (byCode.get(`${code} ${method}`) ?? 0) + v);
  }
  assert.deepEqual(
    Object.fromEntries([...counted].sort()),
    Object.fromEntries([...byCode].sort()),
    `${what}: requests per code`,
  );
  assert.equal(
    sampleValue(e, 'lookout_http_requests_total', {
      log: 'web',
      code: '200',
      method: 'GET',
      route: 'slow',
    }),
    sent.get('200 /slow GET'),
    `${what}: the slow route`,
  );
  // The histogram against the log itself.
  const times = await loggedTimes(logFiles);
  assert.equal(times.length, total, `${what}: lines in the log files`);
  const count = sampleValue(e, 'lookout_http_request_duration_seconds_count', { log: 'web' });
  const sum = sampleValue(e, 'lookout_http_request_duration_seconds_sum', { log: 'web' })!;
  assert.equal(count, total, `${what}: histogram count`);
  const logSum = times.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - logSum) < 1e-6, `${what}: histogram sum ${sum} vs log ${logSum}`);
  for (const le of DEFAULT_BUCKETS) {
    assert.equal(
      sampleValue(e, 'lookout_http_request_duration_seconds_bucket', {
        log: 'web',
        le: String(le),
      }),
      times.filter((t) => t <= le).length,
      `${what}: bucket le=${le}`,
    );
  }
  // The JSON log of the same server counts the same requests.
  assert.equal(
    sampleValue(e, 'lookout_accesslog_lines_total', { log: 'json', result: 'parsed' }) ??
      Number.NaN,
    sampleValue(e, 'lookout_http_request_duration_seconds_count', { log: 'json' }),
  );
}

describe('access log: real nginx, the shipped log_format, lookout /metrics', () => {
  before(async () => {
    slowServer = createServer((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.end('slow\n'), ms);
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', r));
    const slowPort = (slowServer.address() as { port: number }).port;
    nginx = await startNginx({
      http: `include ${join(REPO, 'deploy/nginx/lookout-log-format.conf')};`,
      accessLog:
        '{{dir}}/logs/access.log lookout; access_log {{dir}}/logs/access.json lookout_json',
      locations: `
        location = /ok { return 200 "ok\\n"; }
        location = /moved { return 301 /ok; }
        location = /boom { return 500; }
        location = /slow { proxy_pass http://127.0.0.1:${slowPort}; }
      `,
    });
    const log = join(nginx.dir, 'logs');
    lookout = await startLookout(`
collectors:
  host: { enabled: false }
  filesystem: { enabled: false }
  processes: { enabled: false }
  accesslog:
    poll_interval: 200ms
    logs:
      - name: web
        path: ${log}/access.log
        format: combined_timing
        routes: [{ name: slow, match: "^/slow$" }]
      - name: json
        path: ${log}/access.json
        format: json
`);
    // Lookout starts at the end: the readiness probes nginx saw before are not counted.
    await eventually(
      async () =>
        sampleValue(await metrics(), 'lookout_accesslog_lines_total', {
          log: 'web',
          result: 'parsed',
        }) === 0,
      10_000,
      'the access-log collector running',
    );
  });

  after(async () => {
    await lookout?.stop();
    await nginx?.stop();
    slowServer?.close();
  });

  it('counts every request by code, and the histogram matches the log', async () => {
    await traffic(100, 4);
    await assertCounts([join(nginx.dir, 'logs/access.log')], 'before rotation');
    const e = await metrics();
    assert.equal(
      sampleValue(e, 'lookout_accesslog_lines_total', { log: 'json', result: 'parsed' }),
      total,
      'the JSON log counts the same requests',
    );
    assert.equal(
      sampleValue(e, 'lookout_http_requests_total', {
        log: 'json',
        code: '500',
        method: 'GET',
      }),
      sent.get('500 /boom GET'),
    );
  });

  it('rename + nginx -s reopen during traffic: no line lost or counted twice', async () => {
    const log = join(nginx.dir, 'logs/access.log');
    await traffic(
      150,
      4,
      new Map([
        [
          60,
          async () => {
            await rename(log, `${log}.1`);
            // nginx keeps writing to access.log.1 until it reopens: those lines count too.
            await send('/ok');
            await nginx.reopen();
          },
        ],
      ]),
    );
    await assertCounts([`${log}.1`, log], 'after rename rotation');
  });

  it('copy-truncate during traffic: the loss stays within the copy-truncate window, no line is counted twice, counters never go back', async (ctx) => {
    const log = join(nginx.dir, 'logs/access.log');
    const parsedNow = (e: ReturnType<typeof parseExposition>) =>
      sampleValue(e, 'lookout_accesslog_lines_total', { log: 'web', result: 'parsed' })!;
    await assertCounts([`${log}.1`, log], 'before copy-truncate');
    const before = total;
    // Every series of the web log, at every look: none may ever be lower than before.
    const last = new Map<string, number>();
    const wentBack: string[] = [];
    let looks = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const e = await metrics();
        looks++;
        for (const name of [
          'lookout_accesslog_lines_total',
          'lookout_http_requests_total',
          'lookout_http_request_duration_seconds_count',
          'lookout_http_response_bytes_total',
        ]) {
          for (const s of findSamples(e, name, { log: 'web' })) {
            const key = `${name}${JSON.stringify(s.labels)}`;
            if (s.value < (last.get(key) ?? 0))
              wentBack.push(`${key}: ${last.get(key)} -> ${s.value}`);
            last.set(key, s.value);
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // logrotate copytruncate, while three senders keep sending (the fourth runs this).
    let copyStart = 0;
    let truncated = 0;
    await traffic(
      300,
      4,
      new Map([
        [
          100,
          async () => {
            copyStart = performance.now();
            await copyFile(log, `${log}.2`);
            await truncate(log, 0);
            truncated = performance.now();
          },
        ],
      ]),
    );
    // The marker is written long after the truncate: once it is counted, all is read.
    const e = await countedMarker('lookout');
    watching = false;
    await watcher;
    // The documented window (src/lib/tail.ts): lines nginx appended between the copy and
    // the truncate that the tail had not read yet. nginx writes a line as it answers, and
    // the tail sees an append at once (inotify) or within one poll (200 ms): the lines
    // that can be lost are those of requests answered from one poll's worth of time
    // before the copy to just after the truncate, and those in flight.
    const POLL_MS = 200;
    const window = done.filter((t) => t >= copyStart - POLL_MS && t <= truncated + 50).length;
    const bound = window + 4;
    const counted = parsedNow(e);
    const lost = total - counted;
    ctx.diagnostic(
      `copy-truncate during traffic: ${total - before} requests, ${done.filter((t) => Math.abs(t - truncated) < 100).length} answered within 100 ms of the truncate, copy+truncate ${(truncated - copyStart).toFixed(1)} ms, ${lost} lines lost (bound ${bound}), ${looks} looks at /metrics`,
    );
    assert.ok(copyStart > 0 && truncated > copyStart, 'the copy and truncate ran mid-traffic');
    const around = done.filter((t) => Math.abs(t - truncated) < 100).length;
    assert.ok(
      around > 0,
      'requests were answered within 100 ms of the truncate: the senders kept on',
    );
    assert.ok(lost >= 0, `no line counted twice: ${counted} counted, ${total} sent`);
    assert.ok(lost <= bound, `lost ${lost} lines, more than the window allows (${bound})`);
    assert.deepEqual(wentBack, [], 'no counter went back');
    assert.ok(looks >= 3, `${looks} looks at /metrics during the traffic`);
    // The histogram counts what the line counter counts: no line counted in one only.
    assert.equal(
      sampleValue(e, 'lookout_http_request_duration_seconds_count', { log: 'web' }),
      counted,
    );
  });
});
