import { z } from 'zod';
import { parseDuration } from '../lib/duration.js';

// The grammar lives in lib (the fan-out's messages format durations too); the config
// re-exports it so a config author's "15s" and the code's reading of it stay one thing.
export { formatDuration, parseDuration } from '../lib/duration.js';

/** A duration in the config file, as Prometheus writes them ("15s"); parsed to milliseconds. */
export const duration = z.unknown().transform((value, ctx) => {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like "5s", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  if (ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `must be greater than zero, got "${value}"` });
    return z.NEVER;
  }
  return ms;
});
