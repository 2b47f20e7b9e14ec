import type { Counter } from 'prom-client';

/**
 * Sets an unlabelled counter to a value read whole from its source (a kernel counter in
 * /proc, nginx's stub_status). prom-client's Counter has no set(): reset() and inc() by
 * the value is the public API, exact (0 + v is v), and keeps the TYPE counter; inc() by
 * the difference from the last value would need that value read back and would drift by
 * float rounding.
 */
export function setCounterTo(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}
