/**
 * What the optimizing compiler buys on the work to come (access-log tail, ingest): a
 * combined-log regex over generated nginx lines, then the same with per-line prom-client
 * counting. Prints one JSON line; bench/scrape.ts runs it under different node flags.
 *
 *   node [flags] --import tsx bench/parse-loop.ts [lines]
 */
import { Counter, Registry } from 'prom-client';

const LINES = Number(process.argv[2] ?? process.env.BENCH_PARSE_LINES ?? 1_000_000);
/** Distinct lines, cycled: varied enough for the regex, small enough not to measure GC of input. */
const POOL = 10_000;

const COMBINED =
  /^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$/;

function generate(n: number): string[] {
  const methods = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD'];
  const statuses = ['200', '200', '200', '304', '404', '500', '301'];
  const paths = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/login', '/healthz'];
  const agents = ['Mozilla/5.0 (X11; Linux x86_64)', 'curl/7.88.1', 'Prometheus/2.42.0'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = `10.${i % 256}.${(i >> 8) % 256}.${(i * 7) % 256}`;
    out.push(
      `${ip} - ${i % 5 === 0 ? 'alice' : '-'} [01/Dec/2026:20:${String(i % 60).padStart(2, '0')}:00 +0000] ` +
        `"${methods[i % methods.length]!} ${paths[i % paths.length]!}?id=${i} HTTP/1.1" ` +
        `${statuses[i % statuses.length]!} ${(i * 37) % 50_000} "-" "${agents[i % agents.length]!}"`,
    );
  }
  return out;
}

const pool = generate(POOL);

function regexOnly(n: number): number {
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const m = COMBINED.exec(pool[i % POOL]!);
    if (m && m[8] !== '-') bytes += Number(m[8]);
  }
  return bytes;
}

function regexAndCount(n: number): void {
  const registry = new Registry();
  const requests = new Counter({
    name: 'bench_requests_total',
    help: 'x',
    labelNames: ['method', 'status'],
    registers: [registry],
  });
  const sent = new Counter({ name: 'bench_sent_bytes_total', help: 'x', registers: [registry] });
  for (let i = 0; i < n; i++) {
    const m = COMBINED.exec(pool[i % POOL]!);
    if (!m) continue;
    requests.inc({ method: m[4]!, status: m[7]! });
    if (m[8] !== '-') sent.inc(Number(m[8]));
  }
}

function linesPerSecond(fn: (n: number) => unknown): number {
  const t0 = performance.now();
  fn(LINES);
  return LINES / ((performance.now() - t0) / 1000);
}

console.log(
  JSON.stringify({
    lines: LINES,
    regex: linesPerSecond(regexOnly),
    regexAndCount: linesPerSecond(regexAndCount),
    // Peak resident memory of the run: how far the heap was let grow under this load.
    maxRss: process.resourceUsage().maxRSS * 1024,
  }),
);
