/**
 * lookout with every collector on, scraped once a second for a long time: does its memory
 * stay inside the budget and stop growing? Real parts on 127.0.0.1: an nginx (its
 * stub_status for the nginx collector; three TLS servers, with a valid, an expiring and
 * an expired certificate, and a certificate file for the TLS collector; an HTTP and a TCP
 * probe target) writing its access log in lookout's format, which lookout tails while the
 * bench sends nginx 10 requests a second; a redis-server with a list for the Redis probe.
 * lookout runs exactly as `npm start` runs it (bin/lookout), at its default intervals.
 *
 * Prints the RSS curve (a line per minute: the median, least and most of the once-a-second
 * readings, anonymous and file pages, and V8's heap as lookout's own runtime collector
 * reports it), then where the memory is at the end (/proc/PID/smaps_rollup, and
 * /proc/PID/smaps summed by mapping: the node binary, other files, malloc's [heap],
 * anonymous mappings), and judges:
 *   - RSS at the end ≤ 75 MB: the most of the last minute's readings;
 *   - flat after BENCH_SOAK_FLAT_FROM minutes (10): the last minute's median RSS at most
 *     2 MB above that minute's median (medians, so one garbage collection's tooth neither
 *     hides nor fakes growth);
 *   - every collector still succeeding, every probe and TLS target answering as expected,
 *     and the access log counted as nginx wrote it (a soak whose collectors stopped
 *     working measures nothing).
 * Exits 1 when a judgement fails (not in the smoke run, which judges no figure).
 *
 *   npm run bench:soak                         # 30 minutes
 *   BENCH_SOAK_MINUTES=3 BENCH_SOAK_FLAT_FROM=1 npm run bench:soak   # a short look
 */
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { makeTestPki, standardCerts, tlsServerBlock } from '../test/helpers/certs.js';
import { sampleValue } from '../test/helpers/exposition.js';
import { startNginx } from '../test/helpers/nginx.js';
import { freePort, REPO } from '../test/helpers/procs.js';
import { startRedis } from '../test/helpers/redis.js';
import {
  byMapping,
  mb,
  residentBytes,
  setting,
  sleep,
  SMOKE,
  startedAll,
  startLookoutAsNpmStart,
} from './lib.js';

const MINUTES = setting('BENCH_SOAK_MINUTES', 30, 0.1);
/** One line of the curve per this many seconds: a minute, a few seconds in the smoke run. */
const LINE_SECONDS = setting('BENCH_SOAK_LINE_SECONDS', 60, 2);
const FLAT_FROM_MINUTES = setting('BENCH_SOAK_FLAT_FROM', 10, 0);
const REQUESTS_PER_SECOND = setting('BENCH_SOAK_RPS', 10, 10);
const RSS_TARGET_MB = 75;
const FLAT_MB = 2;

const COLLECTORS = [
  'host',
  'filesystem',
  'processes',
  'runtime',
  'nginx',
  'tls',
  'probes',
  'accesslog',
];

async function main(): Promise<boolean> {
  const pki = await makeTestPki();
  const certs = await standardCerts(pki);
  const tlsPorts = {
    valid: await freePort(),
    expiring: await freePort(),
    expired: await freePort(),
  };
  const nginx = await startNginx({
    http: [
      `include ${join(REPO, 'deploy/nginx/lookout-log-format.conf')};`,
      tlsServerBlock(tlsPorts.valid, certs.valid),
      tlsServerBlock(tlsPorts.expiring, certs.expiring),
      tlsServerBlock(tlsPorts.expired, certs.expired),
    ].join('\n'),
    locations: 'location / { return 200 "page\\n"; }',
    accessLog: '{{dir}}/logs/access.log lookout',
  });
  const accessLog = join(nginx.dir, 'logs/access.log');
  const redis = await startRedis();
  await redis.cli('rpush', 'jobs', 'a', 'b', 'c');
  const lookout = await startLookoutAsNpmStart(`collectors:
  nginx:
    enabled: true
    status_url: ${nginx.url}/stub_status
  tls:
    ca_file: ${pki.caFile}
    targets:
      - { name: valid, address: 127.0.0.1:${tlsPorts.valid}, server_name: localhost }
      - { name: expiring, address: 127.0.0.1:${tlsPorts.expiring}, server_name: localhost }
      - { name: expired, address: 127.0.0.1:${tlsPorts.expired}, server_name: localhost }
      - { name: file, file: ${certs.valid.fullchain} }
  probes:
    targets:
      - { kind: http, name: page, url: "${nginx.url}/page" }
      - { kind: tcp, name: nginx-tcp, address: 127.0.0.1:${nginx.port} }
      - { kind: redis, name: redis, address: ${redis.address}, list_keys: [jobs] }
  accesslog:
    logs:
      - { name: web, path: ${accessLog}, format: combined_timing }
`);
  const pid = lookout.child.pid!;
  const exe = await readlink(`/proc/${pid}/exe`);
  await startedAll();

  // The access log's traffic: REQUESTS_PER_SECOND GETs a second over kept-alive connections.
  const client = new Agent({ connections: 4 });
  let sent = 0;
  let failed = 0;
  const traffic = setInterval(() => {
    sent++;
    request(`${nginx.url}/page?n=${sent}`, { dispatcher: client })
      .then((r) => r.body.dump())
      .catch(() => failed++);
  }, 1000 / REQUESTS_PER_SECOND);

  interface Line {
    at: number;
    rss: number[];
    anon: number;
    file: number;
    heapUsed: number;
    heapTotal: number;
  }
  const lines: Line[] = [];
  let text = '';
  let scrapes = 0;
  let scrapeErrors = 0;
  let heapPeak = 0;
  const t0 = performance.now();
  const seconds = Math.max(1, Math.round(MINUTES * 60));
  console.log(
    `# lookout (bin/lookout, pid ${pid}) with every collector on, scraped once a second for ${seconds} s; nginx gets ${REQUESTS_PER_SECOND} requests a second`,
  );
  console.log('   at   RSS median    least     most     anon     file   V8 heap used / total');
  let current: number[] = [];
  try {
    for (let s = 1; s <= seconds; s++) {
      const tick = performance.now();
      try {
        const res = await request(`${lookout.url}/metrics`);
        text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
        scrapes++;
      } catch (err) {
        scrapeErrors++;
        if (scrapeErrors === 1) console.log(`scrape failed: ${(err as Error).message}`);
      }
      heapPeak = Math.max(heapPeak, sampleValue(text, 'nodejs_heap_size_used_bytes') ?? 0);
      const r = await residentBytes(pid);
      current.push(r.rss);
      if (s % LINE_SECONDS === 0 || s === seconds) {
        const sorted = [...current].sort((a, b) => a - b);
        const line: Line = {
          at: s,
          rss: sorted,
          anon: r.anon,
          file: r.file,
          heapUsed: sampleValue(text, 'nodejs_heap_size_used_bytes') ?? NaN,
          heapTotal: sampleValue(text, 'nodejs_heap_size_total_bytes') ?? NaN,
        };
        lines.push(line);
        current = [];
        const at = s % 60 === 0 ? `${s / 60} min` : `${s} s`;
        console.log(
          `${at.padStart(7)} ${mb(median(sorted)).padStart(8)} MB ${mb(sorted[0]!).padStart(8)} ${mb(sorted.at(-1)!).padStart(8)} ${mb(line.anon).padStart(8)} ${mb(line.file).padStart(8)}   ${mb(line.heapUsed)} / ${mb(line.heapTotal)}`,
        );
      }
      await sleep(Math.max(0, 1000 - (performance.now() - tick)));
    }
  } finally {
    clearInterval(traffic);
  }
  const wall = (performance.now() - t0) / 1000;

  console.log(`\n# where lookout's memory is at the end`);
  console.log(await rollup(pid));
  console.log(await byMapping(pid, exe));
  console.log(
    `  V8, as lookout's runtime collector last reported it: heap ${mb(sampleValue(text, 'nodejs_heap_size_total_bytes') ?? NaN)} MB (used ${mb(sampleValue(text, 'nodejs_heap_size_used_bytes') ?? NaN)}, peak used seen ${mb(heapPeak)}), external ${mb(sampleValue(text, 'nodejs_external_memory_bytes') ?? NaN)} MB`,
  );

  // ------------------------------------------------------------ health
  await sleep(1500); // the last requests reach the log and the tail
  const health = await healthOf(lookout.url, sent - failed);
  console.log(`\n# health after ${wall.toFixed(0)} s: ${scrapes} scrapes, ${scrapeErrors} failed`);
  for (const h of health) console.log(`  ${h.ok ? 'ok ' : 'BAD'} ${h.what}`);

  // ------------------------------------------------------------ judgement
  const last = lines.at(-1)!;
  const end = last.rss.at(-1)!;
  const endOk = end <= RSS_TARGET_MB * 1048576;
  const from = lines.find((l) => l.at >= FLAT_FROM_MINUTES * 60);
  const growth = from && from !== last ? median(last.rss) - median(from.rss) : undefined;
  const flatOk = growth === undefined || growth <= FLAT_MB * 1048576;
  const healthy = scrapeErrors === 0 && health.every((h) => h.ok);
  console.log(`\n# judgement${SMOKE ? ' (smoke run: figures not judged)' : ''}`);
  console.log(
    `  RSS at the end (most of the last ${LINE_SECONDS} s) ${mb(end)} MB ≤ ${RSS_TARGET_MB} MB: ${endOk ? 'MET' : 'MISSED'}`,
  );
  console.log(
    growth === undefined
      ? `  flat after ${FLAT_FROM_MINUTES} min: not judged (the run is not longer than that)`
      : `  flat after ${FLAT_FROM_MINUTES} min: median RSS ${mb(median(from!.rss))} MB then, ${mb(median(last.rss))} MB in the last ${LINE_SECONDS} s, ${growth >= 0 ? '+' : ''}${mb(growth)} MB ≤ ${FLAT_MB} MB: ${flatOk ? 'MET' : 'MISSED'}`,
  );
  console.log(
    `  every collector and target healthy, every scrape answered: ${healthy ? 'MET' : 'MISSED'}`,
  );

  await client.close();
  await lookout.stop();
  await redis.stop();
  await nginx.stop();
  // The smoke run judges no figure, but a soak whose collectors broke did not run.
  return SMOKE ? healthy : endOk && flatOk && healthy;
}

function median(sorted: number[]): number {
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** What lookout reports about its collectors and targets: each a line, ok or not. */
async function healthOf(url: string, requests: number) {
  const text = await (await request(`${url}/metrics`)).body.text();
  const v = (name: string, labels: Record<string, string> = {}) => sampleValue(text, name, labels);
  const out: Array<{ what: string; ok: boolean }> = [];
  for (const c of COLLECTORS) {
    const ok = v('lookout_collector_success', { collector: c });
    out.push({ what: `collector ${c} success ${ok}`, ok: ok === 1 });
  }
  const up = v('lookout_nginx_up');
  out.push({ what: `lookout_nginx_up ${up}`, ok: up === 1 });
  for (const t of ['page', 'nginx-tcp', 'redis']) {
    const ok = v('lookout_probe_success', { target: t });
    out.push({ what: `probe ${t} success ${ok}`, ok: ok === 1 });
  }
  const jobs = v('lookout_redis_list_length', { target: 'redis', key: 'jobs' });
  out.push({ what: `redis list jobs length ${jobs}`, ok: jobs === 3 });
  const verified = { valid: 1, expiring: 1, expired: 0, file: 1 } as const;
  for (const [t, want] of Object.entries(verified)) {
    const got = v('lookout_tls_cert_verified', { target: t });
    out.push({ what: `TLS ${t} verified ${got} (want ${want})`, ok: got === want });
  }
  // nginx logs the bench's requests and lookout's own (stub_status, the HTTP probe).
  const counted = sampleSum(text, 'lookout_accesslog_lines_total', { log: 'web' });
  out.push({
    what: `access log: ${counted} lines counted, ${requests} requests answered by nginx`,
    ok: counted >= requests,
  });
  return out;
}

function sampleSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, val]) => line.includes(`${k}="${val}"`)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** /proc/PID/smaps_rollup's totals that say where resident memory is. */
async function rollup(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (f: string) =>
    Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return (
    `  smaps_rollup: Rss ${mb(kb('Rss'))} MB = Anonymous ${mb(kb('Anonymous'))} + file-backed ${mb(kb('Rss') - kb('Anonymous'))}` +
    ` (Pss_File ${mb(kb('Pss_File'))}: shared with other node processes); Private_Dirty ${mb(kb('Private_Dirty'))} MB, Swap ${mb(kb('Swap'))} MB`
  );
}

if (!(await main())) process.exitCode = 1;
