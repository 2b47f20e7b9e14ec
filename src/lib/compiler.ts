import v8 from 'node:v8';

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

/** V8's own interrupt budget (`node --v8-options`), which bin/lookout multiplies by 64. */
const V8_DEFAULT_INTERRUPT_BUDGET = 67_584;

/**
 * bin/lookout's interrupt budget keeps an idle lookout interpreted (docs/performance.md,
 * "The Node flags"), and costs a busy one: code that runs thousands of times a second
 * stays interpreted for minutes. Under AI usage ingest at 1,000 single events a second,
 * the event loop spent 0.311 CPU-ms a request, against 0.223 with V8's default budget
 * (`npm run bench:aicost`, docs/performance.md). So once a host has shown it ingests (`events`
 * offered since start), hot code tiers up at V8's default pace from then on: the flag is
 * process-wide, and V8 reads it each time a function's budget runs out.
 */
export class BusyTiering {
  private seen = 0;
  private done: boolean;

  constructor(
    private readonly events: number,
    private readonly onSwitch: () => void,
    execArgv: readonly string[] = process.execArgv,
  ) {
    // Nothing to undo when lookout runs without the launcher's budget (tsx, tests).
    this.done = !execArgv.some((a) => a.startsWith('--interrupt-budget='));
  }

  /** Counts `n` events offered; at the threshold, restores V8's budget once. */
  add(n: number): void {
    if (this.done) return;
    this.seen += n;
    if (this.seen < this.events) return;
    this.done = true;
    v8.setFlagsFromString(`--interrupt-budget=${V8_DEFAULT_INTERRUPT_BUDGET}`);
    this.onSwitch();
  }
}
