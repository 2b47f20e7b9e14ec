/**
 * Why each Node flag in bin/lookout is there: lookout run with bin/lookout's flags, and
 * with each flag left out, and with --no-opt added (what the optimizing compiler costs
 * at idle), side by side in one phase; then what the same flag sets do to a parsing loop
 * (bench/parse-loop.ts).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'undici';
import { freePort, REPO, startProcess, tempDir, type Running } from '../test/helpers/procs.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const mb = (b: number) => (b / 1048576).toFixed(1);

export interface Variant {
  name: string;
  flags: string[];
}

/** The flags on bin/lookout's exec line, and its UV_THREADPOOL_SIZE default. */
export async function launcherFlags(root = REPO): Promise<{ flags: string[]; threadpool: string }> {
  const script = await readFile(join(root, 'bin/lookout'), 'utf8');
  const exec = /^exec node((?: --[\w-]+(?:=\S+)?)*) /m.exec(script);
  if (!exec) throw new Error('bin/lookout: no `exec node --flags ...` line');
  const pool = /UV_THREADPOOL_SIZE:-(\d+)/.exec(script)?.[1] ?? '4';
  return { flags: exec[1]!.trim().split(/\s+/).filter(Boolean), threadpool: pool };
}

/** bin/lookout's flags; the same without each one; the same plus --no-opt. */
export function variants(flags: string[]): Variant[] {
  return [
    { name: 'bin/lookout', flags },
    ...flags.map((f) => ({ name: `without ${f}`, flags: flags.filter((g) => g !== f) })),
    { name: 'with --no-opt', flags: [...flags, '--no-opt'] },
  ];
}

/** lookout as bin/lookout runs it, with another flag set: node [flags] dist/cli.js serve. */
async function startWithFlags(v: Variant, threadpool: string): Promise<Running> {
  const port = await freePort();
  const dir = await tempDir('lookout-bench-flags-');
  return startProcess(
    process.execPath,
    [...v.flags, join(REPO, 'dist/cli.js'), 'serve', '--web.listen-address', `127.0.0.1:${port}`],
    { readyPath: '/healthz', port, dir, env: { UV_THREADPOOL_SIZE: threadpool } },
  );
}

/**
 * CPU time of every thread of a process, in seconds, from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds on CPU). utime/stime in /proc/<pid>/stat are charged in whole 10 ms ticks to
 * whoever runs when the tick fires, too coarse for exporters that wake for a millisecond.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  let ns = 0;
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0]);
    } catch {
      // the thread ended between readdir and read; its time is no longer attributable
    }
  }
  return ns / 1e9;
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
}

export interface IdleFigures {
  rssEnd: number;
  rssMax: number;
  /** CPU of every thread, ms per 15 s of wall time, over the whole phase. */
  cpuMsPer15s: number;
}

/**
 * Every variant at once, each scraped once a second for `seconds` (the soak's load), so
 * they all see the same moments of this machine. CPU counts from the first scrape on,
 * start-up excluded; RSS is read at the end.
 */
export async function idle(
  vs: Variant[],
  threadpool: string,
  seconds: number,
): Promise<Map<string, IdleFigures>> {
  const procs: Running[] = [];
  try {
    // Started at once; a failed start leaves the others to the bench's cleanup (bench/lib.ts).
    procs.push(...(await Promise.all(vs.map((v) => startWithFlags(v, threadpool)))));
    await sleep(2000); // the first refreshes
    const c0 = await Promise.all(procs.map((p) => cpuSeconds(p.child.pid!)));
    const t0 = performance.now();
    const max = procs.map(() => 0);
    for (let s = 0; s < seconds; s++) {
      const tick = performance.now();
      await Promise.all(
        procs.map(async (p) => {
          const res = await request(`${p.url}/metrics`);
          await res.body.arrayBuffer();
        }),
      );
      if (s % 10 === 0)
        (await Promise.all(procs.map((p) => rss(p.child.pid!)))).forEach(
          (r, i) => (max[i] = Math.max(max[i]!, r)),
        );
      await sleep(Math.max(0, 1000 - (performance.now() - tick)));
    }
    const wall = (performance.now() - t0) / 1000;
    const c1 = await Promise.all(procs.map((p) => cpuSeconds(p.child.pid!)));
    const end = await Promise.all(procs.map((p) => rss(p.child.pid!)));
    return new Map(
      vs.map((v, i) => [
        v.name,
        {
          rssEnd: end[i]!,
          rssMax: Math.max(max[i]!, end[i]!),
          cpuMsPer15s: (c1[i]! - c0[i]!) * 1000 * (15 / wall),
        },
      ]),
    );
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** Runs a bench script under node [flags]; its last stdout line is JSON, or undefined on a crash. */
async function child(flags: string[], script: string, arg: string): Promise<unknown> {
  try {
    const { stdout } = await run(
      process.execPath,
      [...flags, '--import', 'tsx', join(REPO, 'bench', script), arg],
      { cwd: REPO, maxBuffer: 1 << 20 },
    );
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  } catch {
    return undefined; // the caller names the flags it crashed under
  }
}

export interface ParseFigures {
  regex: number;
  regexAndCount: number;
  maxRss: number;
}

/**
 * Lines per second of bench/parse-loop.ts under each flag set: `rounds` runs each,
 * interleaved, keeping each set's best (other work on this machine only ever slows a run).
 */
export async function parseLoop(
  vs: Variant[],
  lines: number,
  rounds: number,
): Promise<Map<string, ParseFigures>> {
  const best = new Map<string, ParseFigures>(
    vs.map((v) => [v.name, { regex: 0, regexAndCount: 0, maxRss: 0 }]),
  );
  for (let r = 0; r < rounds; r++) {
    for (const v of vs) {
      const out = (await child(v.flags, 'parse-loop.ts', String(lines))) as
        ParseFigures | undefined;
      if (!out) throw new Error(`parse-loop.ts failed under ${v.flags.join(' ')}`);
      const b = best.get(v.name)!;
      b.regex = Math.max(b.regex, out.regex);
      b.regexAndCount = Math.max(b.regexAndCount, out.regexAndCount);
      b.maxRss = Math.max(b.maxRss, out.maxRss);
    }
  }
  return best;
}
