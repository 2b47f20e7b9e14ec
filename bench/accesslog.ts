/**
 * Access-log throughput and memory: lookout (exactly as `npm start` runs it) and Debian's
 * mtail tail the same file, side by side, while the bench appends a burst to it — by
 * default 1 GB of nginx lines in the shipped format (combined + $request_time
 * $upstream_response_time). Each counts requests by code and feeds a latency histogram
 * (mtail with the equivalent program below). Measured: lines per CPU-second end to end
 * (the CPU each process used from before the burst until its counters showed every line,
 * from /proc), and lookout's resident memory through the burst.
 *
 *   npm run bench:accesslog                       # 1 GB, a few minutes
 *   BENCH_ACCESSLOG_MB=100 npm run bench:accesslog   # a quick look
 */
import { open, writeFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort, startProcess, tempDir, type Running } from '../test/helpers/procs.js';
import { findSamples, parseExposition } from '../test/helpers/exposition.js';
import {
  cpuSeconds,
  mb,
  rssBytes,
  setting,
  sleep,
  startedAll,
  startLookoutAsNpmStart,
} from './lib.js';

const SIZE_BYTES = setting('BENCH_ACCESSLOG_MB', 1024, 2) * 1024 * 1024;
/** A burst must be counted within this long, or the bench says so and stops. */
const TIMEOUT_MS = setting('BENCH_ACCESSLOG_TIMEOUT_S', 900, 60) * 1000;
const TARGET_RATIO = 5;
const TARGET_RSS_MB = 80;

/**
 * mtail's equivalent of what lookout does with this file: a counter by code, a histogram
 * (lookout also counts bytes, methods and malformed lines; mtail rc50's compiler rejects
 * a counter without labels added to from a capture, so it is left out here).
 */
const MTAIL_PROGRAM = `counter http_requests_total by code
histogram http_request_duration_seconds buckets 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10

/^\\S+ \\S+ [^"\\[]*\\[[^\\]]*\\] "[^"]*" (?P<status>\\d{3}) (?P<bytes>\\d+|-) "[^"]*" "[^"]*" (?P<request_time>\\d+(\\.\\d*)?)/ {
  http_requests_total[$status]++
  http_request_duration_seconds = float($request_time)
}
`;

/** 10,000 distinct lines, cycled: varied methods, codes, paths, agents, IPv4 and IPv6. */
function linePool(): string[] {
  const methods = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD'];
  const statuses = ['200', '200', '200', '304', '404', '500', '301'];
  const paths = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/login', '/healthz'];
  const agents = [
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
    'curl/7.88.1',
    'Prometheus/2.42.0',
  ];
  const out: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const ip = i % 10 === 0 ? `2001:db8::${i.toString(16)}` : `10.${i % 256}.${(i >> 8) % 256}.7`;
    const t = (((i * 7919) % 3000) / 1000).toFixed(3);
    out.push(
      `${ip} - ${i % 5 === 0 ? 'alice' : '-'} [01/Dec/2026:20:${String(i % 60).padStart(2, '0')}:00 +0000] ` +
        `"${methods[i % methods.length]!} ${paths[i % paths.length]!}?id=${i} HTTP/1.1" ` +
        `${statuses[i % statuses.length]!} ${(i * 37) % 50_000} "-" "${agents[i % agents.length]!}" ${t} ${t}\n`,
    );
  }
  return out;
}

async function metricsOf(url: string) {
  const res = await request(`${url}/metrics`);
  return parseExposition(await res.body.text());
}

const lookoutLines = async (p: Running) =>
  findSamples(await metricsOf(p.url), 'lookout_accesslog_lines_total', { log: 'web' }).reduce(
    (a, s) => a + s.value,
    0,
  );
const mtailLines = async (p: Running) =>
  findSamples(await metricsOf(p.url), 'http_requests_total').reduce((a, s) => a + s.value, 0);

async function main(): Promise<void> {
  const dir = await tempDir('lookout-bench-accesslog-');
  const log = join(dir, 'access.log');
  await writeFile(log, '');
  await mkdir(join(dir, 'progs'));
  await writeFile(join(dir, 'progs', 'nginx.mtail'), MTAIL_PROGRAM);

  const lookout = await startLookoutAsNpmStart(`
collectors:
  host: { enabled: false }
  filesystem: { enabled: false }
  processes: { enabled: false }
  accesslog:
    logs:
      - { name: web, path: ${log}, format: combined_timing }
`);
  const mtailPort = await freePort();
  const mtail = await startProcess(
    'mtail',
    [
      '--progs',
      join(dir, 'progs'),
      '--logs',
      log,
      '--port',
      String(mtailPort),
      '--address',
      '127.0.0.1',
    ],
    { readyPath: '/metrics', port: mtailPort, dir },
  );
  try {
    await startedAll();
    // Both are up and following the (empty) file.
    for (let i = 0; i < 100 && (await lookoutLines(lookout)) !== 0; i++) await sleep(100);
    await sleep(1000);
    const pids = { lookout: lookout.child.pid!, mtail: mtail.child.pid! };
    const cpu0 = { lookout: await cpuSeconds(pids.lookout), mtail: await cpuSeconds(pids.mtail) };
    const rss0 = await rssBytes(pids.lookout);

    // The burst: appended as fast as the disk takes it, in 4 MB writes.
    const pool = linePool();
    const chunks: Buffer[] = [];
    for (let i = 0; i < pool.length; i += 1000) {
      chunks.push(Buffer.from(pool.slice(i, i + 1000).join(''), 'latin1'));
    }
    const rss: number[] = [];
    // Sampled while lookout tails the burst: from the first write until it has counted all.
    let sampling = true;
    const sampler = (async () => {
      while (sampling || rss.length === 0) {
        rss.push(await rssBytes(pids.lookout));
        await sleep(250);
      }
    })();
    const t0 = performance.now();
    const fh = await open(log, 'a');
    let bytes = 0;
    let lines = 0;
    for (let c = 0; bytes < SIZE_BYTES; c++) {
      const chunk = chunks[c % chunks.length]!;
      await fh.write(chunk);
      bytes += chunk.length;
      lines += 1000;
    }
    await fh.close();
    const writeS = (performance.now() - t0) / 1000;
    console.log(
      `wrote ${lines.toLocaleString()} lines, ${mb(bytes)} MB in ${writeS.toFixed(1)} s; waiting for both to count them`,
    );

    // Each is done when its counters show every line; its CPU is read at that moment.
    const done: Partial<Record<'lookout' | 'mtail', { cpu: number; wall: number }>> = {};
    const deadline = performance.now() + TIMEOUT_MS;
    let reported = performance.now();
    while ((!done.lookout || !done.mtail) && performance.now() < deadline) {
      const seen = { lookout: await lookoutLines(lookout), mtail: await mtailLines(mtail) };
      if (performance.now() - reported > 10_000) {
        reported = performance.now();
        console.log(`  counted so far: lookout ${seen.lookout}, mtail ${seen.mtail}`);
      }
      if (!done.lookout && seen.lookout >= lines) {
        done.lookout = {
          cpu: (await cpuSeconds(pids.lookout)) - cpu0.lookout,
          wall: (performance.now() - t0) / 1000,
        };
        sampling = false;
      }
      if (!done.mtail && seen.mtail >= lines) {
        done.mtail = {
          cpu: (await cpuSeconds(pids.mtail)) - cpu0.mtail,
          wall: (performance.now() - t0) / 1000,
        };
      }
      await sleep(250);
    }
    sampling = false;
    await sampler;
    // After both have counted the burst: what it left behind in lookout.
    const rssEnd = await rssBytes(pids.lookout);
    const mtailRss = await rssBytes(pids.mtail);
    const third = Math.max(1, Math.floor(rss.length / 3));
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const peak = Math.max(...rss, rssEnd);

    const row = (name: string, d: { cpu: number; wall: number } | undefined) =>
      d
        ? `${name.padEnd(8)} ${d.cpu.toFixed(2).padStart(7)} CPU-s  ${Math.round(lines / d.cpu)
            .toLocaleString()
            .padStart(11)} lines/CPU-s  (all counted ${d.wall.toFixed(1)} s after the burst began)`
        : `${name.padEnd(8)} did not count all ${lines} lines within ${TIMEOUT_MS / 1000} s`;
    console.log(`\naccess-log tail, ${lines.toLocaleString()} lines (${mb(bytes)} MB), same file:`);
    console.log(row('lookout', done.lookout));
    console.log(row('mtail', done.mtail));
    if (done.lookout && done.mtail) {
      const ratio = done.mtail.cpu / done.lookout.cpu;
      console.log(
        `lookout/mtail lines per CPU-second: ${ratio.toFixed(2)}x  (target >= ${TARGET_RATIO}x: ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'})`,
      );
    }
    console.log(
      `lookout RSS: ${mb(rss0)} MB before; while tailing (${rss.length} samples) peak ${mb(peak)} MB, first third ${mb(avg(rss.slice(0, third)))} MB, last third ${mb(avg(rss.slice(-third)))} MB, ${mb(rssEnd)} MB after  (target <= ${TARGET_RSS_MB} MB: ${peak / 1048576 <= TARGET_RSS_MB ? 'met' : 'MISSED'})`,
    );
    console.log(`mtail RSS after: ${mb(mtailRss)} MB`);
    // A tail that lost lines is a broken bench, not a figure.
    if (!done.lookout || !done.mtail) process.exitCode = 1;
  } finally {
    await lookout.stop();
    await mtail.stop();
    await rm(dir, { recursive: true, force: true }); // the burst: 1 GB by default
  }
}

await main();
