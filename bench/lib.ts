/**
 * What every bench measures the same way: lookout started as `npm start` starts it, a
 * neutral client (curl) timing sequential requests, latency quantiles, resident memory
 * and CPU seconds read from /proc. Shared so each bench compares lookout with its anchor
 * by the same yardstick.
 *
 * Importing this module also makes the bench clean up after itself: whatever it started
 * (every process below it, by the process tree, whichever helper spawned it) is stopped
 * when it exits, fails, or gets SIGINT or SIGTERM.
 *
 * BENCH_SMOKE=1 runs a bench in a few seconds (`setting()` picks the short values): it
 * starts every process it compares and measures each once, and its figures mean nothing.
 * `npm test` runs every bench so (test/bench-smoke.test.ts), so one that no longer starts
 * fails CI.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'undici';
import {
  alive,
  descendants,
  eventually,
  freePort,
  REPO,
  startProcess,
  tempDir,
  type Running,
} from '../test/helpers/procs.js';

export { cpuSeconds, mb } from './flags.js';
import { mb } from './flags.js';
import { quantile } from './stats.js';
export { quantile, residentBytes, rssBytes } from './stats.js';

const run = promisify(execFile);

/** The short run `npm test` makes of every bench: a few seconds, figures not judged. */
export const SMOKE = process.env.BENCH_SMOKE === '1';

/** A numeric setting: the environment's value if set, else the smoke or the full default. */
export function setting(name: string, full: number, smoke: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return SMOKE ? smoke : full;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v}: not a number`);
  return n;
}

// ---------------------------------------------------------------- cleanup

const STOP_GRACE_MS = 2000;

/**
 * Stops every process below this one: SIGTERM, up to STOP_GRACE_MS for them to go (lookout
 * flushes, nginx's master stops its workers), then SIGKILL. Synchronous, so it can run in
 * an 'exit' handler; the tree is read first, since a killed parent's children move to init.
 */
function stopDescendants(): void {
  const procs = descendants();
  if (procs.length === 0) return;
  const signal = (sig: NodeJS.Signals) => {
    for (const p of procs) {
      try {
        process.kill(p.pid, sig);
      } catch {
        // gone already
      }
    }
  };
  signal('SIGTERM');
  const wait = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + STOP_GRACE_MS;
  while (procs.some((p) => alive(p.pid)) && Date.now() < deadline) Atomics.wait(wait, 0, 0, 20);
  signal('SIGKILL');
}

// A failing bench ends through an uncaught error, which still emits 'exit'; a finished one
// has stopped what it started, and this finds nothing (or tsx's esbuild, which is fine).
process.on('exit', stopDescendants);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`bench: ${sig}, stopping what it started`);
    stopDescendants();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

/**
 * Called by each bench once it has started everything it compares. Prints them on stderr
 * (`bench: running pid=… comm=…`) under BENCH_SMOKE or BENCH_FAIL, so a test can see that
 * they started and, after a failure, that they are gone. BENCH_FAIL=throw fails the bench
 * here and BENCH_FAIL=hang waits for a signal: how that test makes a bench fail.
 */
export async function startedAll(): Promise<void> {
  const fail = process.env.BENCH_FAIL;
  if (SMOKE || fail !== undefined) {
    const procs = descendants().filter((p) => p.comm !== 'esbuild'); // tsx's compiler
    for (const p of procs) console.error(`bench: running pid=${p.pid} comm=${p.comm}`);
    console.error(`bench: started ${basename(process.argv[1] ?? '')}`);
  }
  if (fail === 'throw') throw new Error('BENCH_FAIL=throw: failing after start, as asked');
  if (fail === 'hang') await new Promise(() => setInterval(() => undefined, 1 << 30));
}

export interface Target {
  name: string;
  proc: Running;
}

/**
 * The launcher benches start lookout through: bin/lookout, or BENCH_LOOKOUT, a copy of it
 * with other Node flags (a heap cap to try, --trace-gc) for measuring what they change.
 */
const LAUNCHER = process.env.BENCH_LOOKOUT ?? join(REPO, 'bin/lookout');

/**
 * lookout exactly as `npm start` runs it: `bin/lookout serve` (the launcher holds the
 * environment and Node flags), on a free port, with this config (embedded defaults when
 * none is given) and extra arguments.
 */
export async function startLookoutAsNpmStart(
  configYaml?: string,
  extraArgs: string[] = [],
  launcher = LAUNCHER,
): Promise<Running> {
  const port = await freePort();
  const dir = await tempDir('lookout-bench-');
  const args = ['serve', '--web.listen-address', `127.0.0.1:${port}`, ...extraArgs];
  if (configYaml !== undefined) {
    await writeFile(join(dir, 'lookout.yml'), configYaml);
    args.push('--config', join(dir, 'lookout.yml'));
  }
  return startProcess(launcher, args, { readyPath: '/healthz', port, dir });
}

// undici's request() over a kept-alive connection: the lightest client in Node, so the
// figures are the servers' time rather than the client's.
export async function scrape(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await request(url, { headers: { 'accept-encoding': 'identity' } });
  await res.body.arrayBuffer();
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
  return performance.now() - t0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sequential requests timed by curl (one process per round, one kept-alive connection,
 * `%{time_total}` per transfer): the same neutral client for every target, so a Node
 * client's own garbage collection does not land in either tail. `curlArgs` adds TLS or
 * auth options.
 */
export async function curlTimes(
  url: string,
  n: number,
  curlArgs: string[] = [],
): Promise<number[]> {
  const args = ['-s', '-w', '%{time_total}\\n', ...curlArgs];
  for (let i = 0; i < n; i++) args.push('-o', '/dev/null', url);
  const { stdout } = await run('curl', args, { maxBuffer: 1 << 20 });
  return stdout
    .trim()
    .split('\n')
    .map((s) => Number(s) * 1000);
}

export interface LatencyFigures {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/**
 * `scrapes` sequential GETs of each target's url (default its /metrics), interleaved in
 * rounds (of 50 by default, one connection each) so every target sees the same moments of
 * this machine.
 */
export async function latency(
  targets: Target[],
  scrapes: number,
  opts: {
    url?: (t: Target) => string;
    curlArgs?: (t: Target) => string[];
    /** Sequential requests per curl process, i.e. per connection (50). */
    round?: number;
  } = {},
): Promise<Record<string, LatencyFigures>> {
  const url = opts.url ?? ((t: Target) => `${t.proc.url}/metrics`);
  const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (const t of targets) await curlTimes(url(t), 20, opts.curlArgs?.(t)); // warm-up
  const round = Math.min(opts.round ?? 50, scrapes);
  for (let done = 0; done < scrapes; done += round) {
    for (const t of targets)
      samples.get(t.name)!.push(...(await curlTimes(url(t), round, opts.curlArgs?.(t))));
  }
  const out: Record<string, LatencyFigures> = {};
  for (const [name, s] of samples) {
    s.sort((a, b) => a - b);
    out[name] = {
      n: s.length,
      p50: quantile(s, 0.5),
      p90: quantile(s, 0.9),
      p99: quantile(s, 0.99),
      max: s.at(-1)!,
    };
  }
  return out;
}

/**
 * node_exporter with `--web.config.file` (TLS, basic auth), ready once /metrics answers
 * 200 through curl with `curlArgs` (--cacert, -u).
 */
export async function startNodeExporterWeb(
  webConfig: string,
  curlArgs: string[],
): Promise<Running> {
  const port = await freePort();
  const child = spawn(
    'prometheus-node-exporter',
    [`--web.listen-address=127.0.0.1:${port}`, `--web.config.file=${webConfig}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const url = `https://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    return exited;
  };
  try {
    await eventually(
      async () => {
        const { stdout } = await run('curl', [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          ...curlArgs,
          `${url}/metrics`,
        ]).catch(() => ({ stdout: '' }));
        return stdout === '200';
      },
      20_000,
      `node_exporter with ${webConfig}\n${out}`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, port, dir: '', output: () => out, stop };
}

/**
 * /proc/PID/smaps summed by what is mapped: the node binary, every other file, malloc's
 * [heap], [stack], and unnamed anonymous mappings (V8's heap pages, malloc's mmap'd
 * arenas, threads' stacks), the largest first.
 */
export async function byMapping(pid: number, exe: string): Promise<string> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const groups = new Map<string, { rss: number; anon: number; n: number }>();
  let key = '';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1]!;
      key =
        path === exe
          ? `the node binary (${exe})`
          : path === ''
            ? 'anonymous, unnamed (V8 heap, malloc arenas, thread stacks)'
            : path.startsWith('[')
              ? path
              : path.startsWith('/')
                ? 'other files (libraries, locale)'
                : path;
      const g = groups.get(key) ?? { rss: 0, anon: 0, n: 0 };
      g.n++;
      groups.set(key, g);
      continue;
    }
    const field = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (field && key) {
      const g = groups.get(key)!;
      if (field[1] === 'Rss') g.rss += Number(field[2]) * 1024;
      else g.anon += Number(field[2]) * 1024;
    }
  }
  return [...groups]
    .filter(([, g]) => g.rss > 0)
    .sort((a, b) => b[1].rss - a[1].rss)
    .map(
      ([k, g]) =>
        `  ${mb(g.rss).padStart(6)} MB resident (${mb(g.anon)} anonymous) in ${g.n} mappings: ${k}`,
    )
    .join('\n');
}
