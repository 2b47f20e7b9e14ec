/**
 * Every benchmark in package.json, run as CI can afford: BENCH_SMOKE=1 (a few seconds
 * each, figures not judged). Each must start every process it compares, measure, exit 0
 * and leave no process behind, so a bench that no longer starts fails here instead of
 * rotting unseen. And a bench that fails, or is interrupted, stops what it started.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { alive, REPO } from './helpers/procs.js';

/** package.json's bench scripts and the file each runs. */
function benchScripts(): Array<{ script: string; file: string }> {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  return Object.entries(pkg.scripts)
    .filter(([name]) => /^bench(:|$)/.test(name))
    .map(([script, cmd]) => {
      const file = /node --import tsx (bench\/\S+\.ts)/.exec(cmd)?.[1];
      assert.ok(file, `${script}: "${cmd}" runs no bench/*.ts through node --import tsx`);
      return { script, file };
    });
}

/**
 * What each bench compares, by kernel command name (15 bytes at most), as many times as
 * it runs them: the smoke run must have started them all (each bench calls startedAll()
 * from bench/lib.ts once they run). A bench not listed here is still run; it must exit 0.
 */
const COMPARES: Record<string, string[]> = {
  'bench/scrape.ts': ['node', 'prometheus-node'],
  'bench/idle.ts': ['node', 'node', 'node', 'node', 'node', 'prometheus-node'],
  'bench/nginx.ts': ['nginx', 'prometheus-ngin', 'node', 'node'],
  'bench/accesslog.ts': ['node', 'mtail'],
  'bench/tls-scrape.ts': ['node', 'prometheus-node'],
  'bench/probes.ts': ['nginx', 'prometheus-blac', 'node', 'node', 'prometheus-node'],
  'bench/wakeups.ts': ['node', 'node', 'node'],
  'bench/abuse.ts': ['node', 'prometheus-node'],
  'bench/door.ts': ['node', 'prometheus-node'],
  'bench/soak.ts': ['nginx', 'redis-server', 'node'],
  'bench/containers.ts': ['dockerd', 'node'],
  'bench/aicost.ts': ['node', 'prometheus-node'],
  'bench/ha.ts': ['node', 'victoria-metric', 'prometheus'],
};

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  /** What the bench said it had started (`bench: running pid=… comm=…`), every time it said so. */
  running: Array<{ pid: number; comm: string }>;
}

/**
 * Runs one bench file with these extra environment variables; `onStarted` is called once
 * it says it has started everything (with the child, to signal it).
 */
function runBench(
  file: string,
  env: Record<string, string>,
  timeoutMs: number,
  onStarted?: (child: ReturnType<typeof spawn>) => void,
): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, file)], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const running: Run['running'] = [];
  let said = false;
  const keep = (b: Buffer) => {
    output += b.toString();
    for (const m of b.toString().matchAll(/^bench: running pid=(\d+) comm=(.*)$/gm))
      running.push({ pid: Number(m[1]), comm: m[2]! });
    if (!said && /^bench: started /m.test(output)) {
      said = true;
      onStarted?.(child);
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  // A hung bench is killed so the run ends; the assertions then name it and what it left.
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, running });
    }),
  );
}

const tail = (s: string) => s.slice(-4000);

function assertAllGone(run: Run, what: string): void {
  const left = run.running.filter((p) => alive(p.pid));
  assert.deepEqual(
    left,
    [],
    `${what}: still running after the bench exited: ${JSON.stringify(left)}\n${tail(run.output)}`,
  );
}

/** The longest smoke runs, started first so none is left to run alone at the end. */
const LONGEST = ['bench/scrape.ts', 'bench/abuse.ts', 'bench/probes.ts'];
const rank = (file: string) => (LONGEST.includes(file) ? LONGEST.indexOf(file) : LONGEST.length);

// Three at a time: more starve the CPU of the timing-sensitive tests npm test runs beside
// this file on a 2-core machine.
describe('every benchmark in its smoke run (BENCH_SMOKE=1)', { concurrency: 3 }, () => {
  const scripts = benchScripts().sort((a, b) => rank(a.file) - rank(b.file));
  for (const { script, file } of scripts) {
    it(`npm run ${script} (${file}) starts what it compares, measures, exits 0 and leaves nothing running`, async () => {
      const run = await runBench(file, { BENCH_SMOKE: '1' }, 240_000);
      assert.equal(run.code, 0, `${file} exited ${run.code ?? run.signal}\n${tail(run.output)}`);
      if (!(file in COMPARES)) return;
      assert.match(run.output, /^bench: started /m, `${file} never said it had started`);
      const comms = run.running.map((p) => p.comm).sort();
      for (const want of new Set(COMPARES[file] ?? [])) {
        const need = COMPARES[file]!.filter((c) => c === want).length;
        const got = comms.filter((c) => c === want).length;
        assert.ok(
          got >= need,
          `${file}: ${need} × ${want} expected running, saw ${JSON.stringify(comms)}`,
        );
      }
      assertAllGone(run, file);
    });
  }

  it('a bench that fails after starting its processes (bench:probes, BENCH_FAIL=throw) exits non-zero and leaves none of them running', async () => {
    const run = await runBench(
      'bench/probes.ts',
      { BENCH_SMOKE: '1', BENCH_FAIL: 'throw' },
      120_000,
    );
    assert.notEqual(run.code, 0, tail(run.output));
    assert.match(run.output, /BENCH_FAIL=throw: failing after start/);
    // nginx's master and worker, blackbox_exporter, two lookouts, node_exporter.
    assert.ok(run.running.length >= 6, `started: ${JSON.stringify(run.running)}`);
    assertAllGone(run, 'bench:probes after its failure');
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`a bench stopped by ${signal} once it has started (bench:nginx) leaves none of its processes running`, async () => {
      const run = await runBench(
        'bench/nginx.ts',
        { BENCH_SMOKE: '1', BENCH_FAIL: 'hang' },
        120_000,
        (child) => child.kill(signal),
      );
      assert.equal(run.code, signal === 'SIGINT' ? 130 : 143, tail(run.output));
      // nginx's master and worker, nginx-prometheus-exporter, two lookouts.
      assert.ok(run.running.length >= 5, `started: ${JSON.stringify(run.running)}`);
      assertAllGone(run, `bench:nginx after ${signal}`);
    });
  }
});
