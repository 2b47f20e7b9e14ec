/**
 * Per-target fan-out for collectors with many targets (mounts, probes, certificates,
 * containers): a bound on calls in flight, a deadline per target, and calls that never
 * return (a statfs on a dead NFS server, a socket that accepts and never answers while
 * ignoring the abort) tracked and not started again while they are still in flight.
 * One target's failure is its own result; the collector as a whole still succeeds.
 */

export type TargetResult<T> =
  | { status: 'ok'; value: T; seconds: number }
  | { status: 'failed'; error: unknown; seconds: number }
  /** The target's deadline passed; its call was aborted. */
  | { status: 'timeout'; seconds: number }
  /** An earlier call for this target has not returned yet, so none was started. */
  | { status: 'hung'; seconds: number }
  /** Not called: too many calls are hung, or the whole refresh was aborted. */
  | { status: 'skipped'; reason: string };

export interface FanoutOptions {
  /** Names the fan-out in the list of hung calls, e.g. the collector's name. */
  name: string;
  /** Calls in flight at once. */
  concurrency: number;
  /** How long one target may take. */
  timeoutMs: number;
  /**
   * Past this many hung calls no new call starts: each may hold a thread of the libuv
   * pool (fs calls) until its server answers, and the pool is shared by every collector.
   */
  maxHung?: number;
  /** While any call is hung, at most this many run at once, so new hangs pile up slowly. */
  concurrencyWhileHung?: number;
  /** Told when a call outlives its deadline, and again when it returns at last. */
  onHung?: (key: string, hung: boolean) => void;
}

/** A deadline overran: the call is abandoned with this as the abort reason. */
export class TargetTimeoutError extends Error {
  readonly code = 'LOOKOUT_TARGET_TIMEOUT';
}

/** Every fan-out's hung calls, for the exit path: only these may make lookout force its exit. */
const everyHung = new Map<string, number>();

/** Calls that outlived their deadline and have still not returned, as "key (N s)". */
export function hungCalls(now = performance.now()): string[] {
  return [...everyHung].map(([key, since]) => `${key} (${((now - since) / 1000).toFixed(0)}s)`);
}

export class Fanout {
  /** Target keys whose call has not returned, and since when (performance.now()). */
  private readonly hung = new Map<string, number>();

  constructor(private readonly opts: FanoutOptions) {}

  /** Keys of targets whose call is still in flight past its deadline. */
  hungKeys(): ReadonlySet<string> {
    return new Set(this.hung.keys());
  }

  /**
   * Calls `call` for every item, each under its own deadline, at most `concurrency` at
   * once, and returns one result per item in the items' order. Never rejects.
   */
  async run<I, T>(
    items: readonly I[],
    key: (item: I) => string,
    call: (item: I, signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<TargetResult<T>[]> {
    const results: TargetResult<T>[] = new Array(items.length);
    const { maxHung = Infinity } = this.opts;
    let next = 0;
    const width =
      this.hung.size > 0
        ? Math.min(this.opts.concurrency, this.opts.concurrencyWhileHung ?? Infinity)
        : this.opts.concurrency;
    const workers = Array.from({ length: Math.max(1, Math.min(width, items.length)) }, () =>
      (async () => {
        while (next < items.length) {
          const i = next++;
          const item = items[i]!;
          const k = key(item);
          const since = this.hung.get(k);
          if (since !== undefined) {
            results[i] = { status: 'hung', seconds: (performance.now() - since) / 1000 };
          } else if (signal?.aborted) {
            results[i] = { status: 'skipped', reason: 'the refresh was aborted' };
          } else if (this.hung.size >= maxHung) {
            results[i] = { status: 'skipped', reason: `${this.hung.size} other calls are hung` };
          } else {
            results[i] = await this.one(k, (s) => call(item, s), signal);
          }
        }
      })(),
    );
    await Promise.all(workers);
    return results;
  }

  /** One call under its deadline; settles at the deadline even if the call does not. */
  private one<T>(
    key: string,
    start: (signal: AbortSignal) => Promise<T>,
    outer: AbortSignal | undefined,
  ): Promise<TargetResult<T>> {
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    const ac = new AbortController();
    // Through a promise, so a call that throws before its first await is a failed target.
    const call = Promise.resolve().then(() => start(ac.signal));
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
        const reason = new TargetTimeoutError(
          `${key}: no answer within ${this.opts.timeoutMs / 1000}s`,
        );
        if (!finish({ status: 'timeout', seconds: seconds() })) return;
        ac.abort(reason);
        // Until the call returns it may hold a socket or a pool thread: not started again.
        // An abortable call (a socket) returns at once; one that is not (statfs) stays.
        const hungKey = `${this.opts.name}: ${key}`;
        this.hung.set(key, t0);
        everyHung.set(hungKey, t0);
        this.opts.onHung?.(key, true);
        const returned = () => {
          this.hung.delete(key);
          everyHung.delete(hungKey);
          this.opts.onHung?.(key, false);
        };
        call.then(returned, returned);
      };
      const timer = setTimeout(giveUp, this.opts.timeoutMs);
      outer?.addEventListener('abort', giveUp, { once: true });
      call.then(
        (value) => finish({ status: 'ok', value, seconds: seconds() }),
        (error: unknown) => finish({ status: 'failed', error, seconds: seconds() }),
      );
    });
  }
}
