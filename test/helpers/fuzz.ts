/**
 * Shared pieces of the fuzz suite (test/fuzz/*.test.ts): one seed and run count for
 * every property, printed so a failure can be replayed, input mutators for real
 * fixtures, and the check that a call threw only the project's own errors and did not
 * hang.
 *
 * Replay: `FUZZ_SEED=<seed printed> node --import tsx --test test/fuzz/<file>.test.ts`;
 * fast-check's failure message also gives the `path` of the shrunk case. FUZZ_RUNS
 * multiplies every property's default run count (FUZZ_RUNS=10 for a long soak).
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { isPolled, type Collector, type PolledCollector } from '../../src/collectors/collector.js';

/** One seed for the whole file, so one printed number replays it. */
export const FUZZ_SEED = envNumber('FUZZ_SEED', Date.now() ^ 0);
const RUNS_FACTOR = envNumber('FUZZ_RUNS', 1);

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  // A typo would otherwise replay nothing (NaN seed) or run nothing, silently.
  if (!Number.isFinite(n)) throw new Error(`${name}=${raw}: expected a number`);
  return n;
}

/**
 * How long one call of a parser may take before it counts as hung. Not a performance
 * figure: inputs are at most a few kilobytes and a healthy call takes well under a
 * millisecond, so only super-linear blow-up (a backtracking regex) comes near it.
 */
export const HANG_MS = envNumber('FUZZ_HANG_MS', 2000);

/** The fast-check parameters of one property, printed on the test's output. */
export function fuzzParams(t: TestContext, numRuns: number): fc.Parameters<unknown> {
  const runs = Math.max(1, Math.round(numRuns * RUNS_FACTOR));
  t.diagnostic(`fuzz seed=${FUZZ_SEED} numRuns=${runs} (replay: FUZZ_SEED=${FUZZ_SEED})`);
  // includeErrorInReport: the assertion that failed goes into the message node:test prints,
  // not into a `cause` it leaves out.
  return { seed: FUZZ_SEED, numRuns: runs, endOnFailure: false, includeErrorInReport: true };
}

/** Runs a synchronous property with the file's seed and prints seed and run count. */
export function fuzz<Ts extends [unknown, ...unknown[]]>(
  t: TestContext,
  numRuns: number,
  ...args: [...arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, check: (...v: Ts) => void]
): void {
  fc.assert(fc.property(...args), fuzzParams(t, numRuns) as fc.Parameters<Ts>);
}

/** The asynchronous form of `fuzz`. */
export async function fuzzAsync<Ts extends [unknown, ...unknown[]]>(
  t: TestContext,
  numRuns: number,
  ...args: [
    ...arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
    check: (...v: Ts) => Promise<void>,
  ]
): Promise<void> {
  await fc.assert(fc.asyncProperty(...args), fuzzParams(t, numRuns) as fc.Parameters<Ts>);
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Fails unless `err` is one of `allowed`, naming the input. */
function ownError(err: unknown, allowed: readonly ErrorClass[], input: unknown): undefined {
  if (allowed.some((cls) => err instanceof cls)) return undefined;
  assert.fail(
    `threw ${(err as Error)?.constructor?.name ?? typeof err} (${String(err)}) for ${JSON.stringify(input)?.slice(0, 300)}`,
  );
}

/** Fails when a call that began at `started` took longer than HANG_MS. */
function inTime(started: number, input: unknown): void {
  const ms = performance.now() - started;
  assert.ok(
    ms < HANG_MS,
    `took ${ms.toFixed(0)} ms (hang bound ${HANG_MS}) for ${JSON.stringify(input)?.slice(0, 300)}`,
  );
}

/**
 * Calls `fn`; passes when it returns, or throws an instance of one of `allowed`. Anything
 * else thrown (a TypeError, a RangeError from deep recursion, a library's own error)
 * fails with the input named, and so does a call slower than HANG_MS.
 */
export function onlyOwnErrors<T>(
  fn: () => T,
  allowed: readonly ErrorClass[],
  input: unknown,
): T | undefined {
  const started = performance.now();
  try {
    return fn();
  } catch (err) {
    return ownError(err, allowed, input);
  } finally {
    inTime(started, input);
  }
}

/** The async form of onlyOwnErrors. */
export async function onlyOwnErrorsAsync<T>(
  fn: () => Promise<T>,
  allowed: readonly ErrorClass[],
  input: unknown,
): Promise<T | undefined> {
  const started = performance.now();
  try {
    return await fn();
  } catch (err) {
    return ownError(err, allowed, input);
  } finally {
    inTime(started, input);
  }
}

/**
 * Strings a parser of kernel or YAML text trips on: separators, quotes, escapes, digits
 * at the edges of number parsing, a NUL, a byte-order mark, lone surrogates (what a
 * slice in the middle of a pair leaves) and replacement characters (what invalid UTF-8
 * decodes to).
 */
const NASTY = [
  '\n',
  '\r\n',
  '\t',
  ' ',
  '  ',
  ':',
  ': ',
  '-',
  '#',
  '"',
  "'",
  '\\',
  '\\n',
  '\\040',
  '\\1',
  '(',
  ')',
  ') (',
  '{',
  '}',
  '[',
  ']',
  ',',
  '/',
  '=',
  '&a',
  '*a',
  '!!',
  '<<: ',
  '---',
  '0',
  '-1',
  '1e400',
  '0x1f',
  'NaN',
  'Infinity',
  '18446744073709551616',
  '9'.repeat(40),
  '\0',
  '\uFEFF',
  '\uD800',
  '\uDFFF',
  '\uFFFD',
  'é',
  '🦊',
  '__proto__',
  'constructor',
];

/** A token of nasty or ordinary text. */
export const token: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
  { weight: 1, arbitrary: fc.nat().map(String) },
);

/** Random text made of tokens: closer to what a parser reads than uniform characters. */
export const soup = (maxTokens = 60): fc.Arbitrary<string> =>
  fc.array(token, { maxLength: maxTokens }).map((ts) => ts.join(''));

type Mutation =
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'swapLines'; a: number; b: number }
  | { kind: 'number'; at: number; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: token }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.nat(40) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.nat(200) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swapLines' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({
    kind: fc.constant('number' as const),
    at: fc.nat(),
    text: fc.constantFrom(
      '-1',
      '0',
      '1e400',
      '0x10',
      '99999999999999999999',
      'NaN',
      '',
      '1.5',
      '+7',
    ),
  }),
);

function apply(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : ('at' in m ? m.at : 0) % (text.length + 1);
  switch (m.kind) {
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.length);
    case 'duplicate':
      return (
        text.slice(0, at + m.length) + text.slice(at, at + m.length) + text.slice(at + m.length)
      );
    case 'truncate':
      return text.slice(0, at);
    case 'swapLines': {
      const lines = text.split('\n');
      const a = m.a % lines.length;
      const b = m.b % lines.length;
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      return lines.join('\n');
    }
    case 'number': {
      // Replaces the run of digits at or after `at`: the values parsers convert.
      const digits = /\d+/g;
      digits.lastIndex = at;
      const found = digits.exec(text) ?? /\d+/.exec(text);
      if (!found) return text;
      return text.slice(0, found.index) + m.text + text.slice(found.index + found[0].length);
    }
  }
}

/** `text` with one to eight random mutations applied: a real fixture, damaged. */
export function mutated(text: string | fc.Arbitrary<string>): fc.Arbitrary<string> {
  const base = typeof text === 'string' ? fc.constant(text) : text;
  return fc
    .tuple(base, fc.array(mutation, { minLength: 1, maxLength: 8 }))
    .map(([t, ms]) => ms.reduce(apply, t));
}

/**
 * Runs `new RegExp(pattern).test(subject)` in a worker thread, as the collectors compile a
 * config pattern, and stops the worker when a call outlives `ms`: a backtracking regexp
 * never yields, so only another thread can notice it and end it. V8's flags are the
 * process's, so the worker runs with whatever src/config/regex.ts set.
 */
export class RegexSandbox {
  private worker: Worker | undefined;

  private start(): Worker {
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       parentPort.on('message', ({ pattern, subject }) => {
         parentPort.postMessage(new RegExp(pattern).test(subject));
       });`,
      { eval: true },
    );
    worker.unref();
    return worker;
  }

  /** The match, or 'hung' when it took longer than `ms` (the worker is then replaced). */
  async test(pattern: string, subject: string, ms = HANG_MS): Promise<boolean | 'hung'> {
    const worker = (this.worker ??= this.start());
    const answer = new Promise<boolean>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    worker.postMessage({ pattern, subject });
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), ms);
    });
    try {
      const result = await Promise.race([answer, hung]);
      if (result === 'hung') {
        this.worker = undefined;
        await worker.terminate();
      }
      return result;
    } finally {
      clearTimeout(timer);
      worker.removeAllListeners('message');
      worker.removeAllListeners('error');
    }
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}

/** The polled side of a collector a factory returned (the host, filesystem and processes ones are). */
export function polled(collector: Collector): PolledCollector {
  assert.ok(isPolled(collector), 'a polled collector');
  return collector;
}
