import type { Fields, Logger } from './log.js';

/**
 * Logs one line per key per window; what it held back meanwhile is counted in the next
 * line (`suppressed=N`). An abusive client must not be able to flood the journal, and
 * the operator still learns that it happened and how often.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(key: string, msg: string, fields: Fields = {}): void {
    const t = this.now();
    const seen = this.last.get(key);
    if (seen && t - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    // Keys are a fixed set of event kinds, never client input, so the map stays small.
    this.last.set(key, { at: t, suppressed: 0 });
    this.log.warn(msg, seen?.suppressed ? { ...fields, suppressed: seen.suppressed } : fields);
  }
}
