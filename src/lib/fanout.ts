/**
 * Per-target fan-out for collectors with many targets (mounts, probes, certificates,
 * containers): a bound on calls in flight, a deadline per target, and calls that never
 * return (a statfs on a dead NFS server; anything that ignores its abort) tracked and not
 * started again while they are still in flight. One target's failure is its own result,
 * and the whole run ends before the refresh's own deadline, so the collector as a whole
 * still succeeds and serves every other target.
 */
import { formatDuration } from './duration.js';
import { errorText } from './log.js';

export type TargetResult<T> =
  | { status: 'ok'; value: T; seconds: number }
  | { status: 'failed'; error: unknown; seconds: number }
  /** The target's deadline (or what was left of the refresh's) passed; its call was aborted. */
  | { status: 'timeout'; seconds: number }
  /** An earlier call for this target has not returned yet, so none was started. */
  | { status: 'hung'; seconds: number }
  /** Not called: too many calls are hung, no time was left, the run was aborted, or a repeated key. */
  | { status: 'skipped'; reason: string };

export interface FanoutOptions {
  /** Names the fan-out in logs and in the list of hung calls, e.g. the collector's name. */
  name: string;
  /**
   * Calls in flight at once, counting calls that outlived their deadline and have not
   * returned: a hung fs call holds a libuv pool thread (shared by every collector) until
   * its server answers, so this is also the most threads a dead server can take.
   */
  concurrency: number;
  /** How long one target may take. */
  timeoutMs: number;
  /** Told when a call outlives its deadline, and again when it returns at last. */
  onHung?: (key: string, hung: boolean) => void;
}

export interface RunLimits {
  /** Aborts the run: calls in flight are aborted, the rest skipped. */
  signal?: AbortSignal;
  /**
   * The refresh's own deadline (performance.now() milliseconds). Each call gets at most
   * what is left of it, less a reserve for building the series, so a run of slow targets
   * ends in time and the collector does not fail as a whole.
   */
  deadline?: number;
}

/** Time kept back from the refresh's deadline for turning results into series. */
const RESERVE_MS = 50;
/**
 * The least time a call is started with. libuv counts timers in whole milliseconds and
 * may fire one up to a millisecond early, so the call before can end with a fraction of
 * a millisecond left over the reserve: a call started with that only ever times out.
 */
const MIN_CALL_MS = 10;
/** How long a worker waits for an aborted call to hand back its slot before taking it as hung. */
const SLOT_GRACE_MS = 20;

/** A deadline overran: the call is abandoned with this as the abort reason. */
export class TargetTimeoutError extends Error {
  readonly code = 'LOOKOUT_TARGET_TIMEOUT';
}

/** Whether a call ended at its deadline: the fan-out's, or an abort of its own (AbortSignal.timeout). */
export function timedOut(r: TargetResult<unknown>): boolean {
  if (r.status === 'timeout') return true;
  if (r.status !== 'failed') return false;
  const e = r.error;
  return e instanceof TargetTimeoutError || (e instanceof Error && e.name === 'TimeoutError');
}

/**
 * Why a target gave no value, in a few words, for `lookout check`, status and the log:
 * the same words for every collector with targets.
 */
export function whyNot(
  r: Exclude<TargetResult<unknown>, { status: 'ok' }>,
  timeoutMs: number,
): string {
  // A timeout the fan-out cut to what was left of the refresh: the time the call had.
  if (r.status === 'timeout')
    return `no answer within ${formatDuration(Math.min(timeoutMs, Math.round(r.seconds * 1000)))}`;
  if (timedOut(r)) return `no answer within ${formatDuration(timeoutMs)}`;
  switch (r.status) {
    case 'hung':
      return `the previous call has not returned (${r.seconds.toFixed(0)}s)`;
    case 'skipped':
      return `not tried: ${r.reason}`;
    case 'failed': {
      const e = r.error;
      // A connect to "localhost" tries each address; Node reports them as one AggregateError.
      if (e instanceof AggregateError && e.message === '')
        return e.errors.map((x: unknown) => errorText(x)).join('; ');
      return errorText(e);
    }
  }
}

/** Every fan-out's hung calls, for the exit path: only these may make lookout force its exit. */
const everyHung = new Map<symbol, { label: string; since: number }>();

/** Calls that outlived their deadline and have still not returned, as "name: key (N s)". */
export function hungCalls(now = performance.now()): string[] {
  return [...everyHung.values()].map(
    ({ label, since }) => `${label} (${((now - since) / 1000).toFixed(0)}s)`,
  );
}

export class Fanout {
  /** Target keys whose call has not returned past its deadline, and since when. */
  private readonly hung = new Map<string, number>();
  /** Calls started and not yet returned, hung ones included. */
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly opts: FanoutOptions) {}

  /** Keys of targets whose call is still in flight past its deadline. */
  hungKeys(): ReadonlySet<string> {
    return new Set(this.hung.keys());
  }

  /**
   * Calls `call` for every item, each under its own deadline, at most `concurrency` in
   * flight (hung calls included), and returns one result per item in the items' order.
   * Never rejects.
   */
  async run<I, T>(
    items: readonly I[],
    key: (item: I) => string,
    call: (item: I, signal: AbortSignal) => Promise<T>,
    limits: RunLimits = {},
  ): Promise<TargetResult<T>[]> {
    const results: (TargetResult<T> | undefined)[] = new Array(items.length);
    const keys: (string | undefined)[] = items.map((item, i) => {
      try {
        return key(item);
      } catch (error) {
        results[i] = { status: 'failed', error, seconds: 0 };
        return undefined;
      }
    });
    const seen = new Set<string>();
    keys.forEach((k, i) => {
      if (k === undefined) return;
      if (seen.has(k)) {
        // Two calls under one key would share its hung-call bookkeeping.
        results[i] = { status: 'skipped', reason: `a second target with key ${k}` };
        keys[i] = undefined;
      }
      seen.add(k);
    });

    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        // Wait for a free slot; if hung calls hold every one, this worker stops.
        if (this.inFlight >= this.opts.concurrency && !(await this.slotFreed())) return;
        const i = next++;
        const k = keys[i];
        if (k === undefined) continue;
        const since = this.hung.get(k);
        const left = limits.deadline === undefined ? Infinity : limits.deadline - performance.now();
        if (since !== undefined) {
          results[i] = { status: 'hung', seconds: (performance.now() - since) / 1000 };
        } else if (limits.signal?.aborted) {
          results[i] = { status: 'skipped', reason: 'the run was aborted' };
        } else if (left - RESERVE_MS < MIN_CALL_MS) {
          results[i] = { status: 'skipped', reason: 'no time left in this refresh' };
        } else {
          const timeout = Math.min(this.opts.timeoutMs, left - RESERVE_MS);
          results[i] = await this.one(k, (s) => call(items[i]!, s), timeout, limits.signal);
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.opts.concurrency, items.length) }, worker),
    );
    const held = `all ${this.opts.concurrency} slots are held by hung calls`;
    return Array.from(results, (r) => r ?? { status: 'skipped', reason: held });
  }

  /**
   * Resolves true when a call returns and frees a slot. A call aborted at its deadline
   * returns within moments when it honours the abort (a socket); one that does not (a
   * statfs on a dead server) is hung, and after a short grace this resolves false.
   */
  private slotFreed(): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(wake);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(false);
      }, SLOT_GRACE_MS);
      this.waiting.push(wake);
    });
  }

  /** One call under its deadline; settles at the deadline even if the call does not. */
  private one<T>(
    key: string,
    start: (signal: AbortSignal) => Promise<T>,
    timeoutMs: number,
    outer: AbortSignal | undefined,
  ): Promise<TargetResult<T>> {
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    const ac = new AbortController();
    this.inFlight++;
    // Through a promise, so a call that throws before its first await is a failed target.
    const call = Promise.resolve().then(() => start(ac.signal));
    const returned = () => {
      this.inFlight--;
      this.waiting.shift()?.();
    };
    call.then(returned, returned);
    return new Promise<TargetResult<T>>((resolve) => {
      let settled = false;
      const finish = (result: TargetResult<T>) => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        outer?.removeEventListener('abort', giveUp);
        resolve(result);
        return true;
      };
      const giveUp = () => {
        const result: TargetResult<T> = outer?.aborted
          ? { status: 'skipped', reason: 'the run was aborted' }
          : { status: 'timeout', seconds: seconds() };
        if (!finish(result)) return;
        ac.abort(new TargetTimeoutError(`${key}: no answer within ${timeoutMs / 1000}s`));
        // Until the call returns it holds its slot and is not started again. An abortable
        // call (a socket) returns at once; one that is not (statfs) stays listed.
        const token = Symbol(key);
        this.hung.set(key, t0);
        everyHung.set(token, { label: `${this.opts.name}: ${key}`, since: t0 });
        this.opts.onHung?.(key, true);
        const back = () => {
          this.hung.delete(key);
          everyHung.delete(token);
          this.opts.onHung?.(key, false);
        };
        call.then(back, back);
      };
      const timer = setTimeout(giveUp, timeoutMs);
      outer?.addEventListener('abort', giveUp, { once: true });
      call.then(
        (value) => finish({ status: 'ok', value, seconds: seconds() }),
        (error: unknown) => finish({ status: 'failed', error, seconds: seconds() }),
      );
    });
  }
}
