/**
 * Has V8 run its optimizing compiler (TurboFan) once, now.
 *
 * The first function V8 optimizes pages in the compiler's own code from the node binary,
 * about 3.5 MB of RSS that then stays. bin/lookout's interrupt budget keeps start-up and
 * the first refreshes interpreted, but not for ever: the processes walk, every 15 s, tiers
 * a function up after 10 to 15 minutes on a host with ~150 pids (sooner with more), and
 * the access-log tail needs the compiler for its throughput (without it, `--max-opt=1`,
 * it read 545k instead of 834k lines per CPU-second, under 5x mtail). So every
 * long-running lookout pays those pages; paying them at start makes its memory flat
 * from the first minute instead of stepping up once, unannounced, a quarter of an hour in
 * (`npm run bench:soak`, docs/performance.md).
 *
 * A small loop, run until V8 optimizes it (on-stack replacement, then the function):
 * about 10 ms of CPU under bin/lookout's flags. V8's tiering heuristics decide when; with
 * a different V8 this may compile nothing, and lookout then behaves as before.
 */
export function warmOptimizingCompiler(rounds = 100): number {
  let sum = 0;
  for (let r = 0; r < rounds; r++) sum = spin(10_000, sum);
  return sum;
}

function spin(n: number, seed: number): number {
  let s = seed;
  for (let i = 0; i < n; i++) s = (s + i * 31) % 1_000_003;
  return s;
}
