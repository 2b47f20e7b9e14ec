import type { Metric } from 'prom-client';
import { Registry } from '../lib/prom.js';

/**
 * A collector's registry holding, in a fixed order, those of its long-lived metric
 * objects that have a value now. A family with nothing to say on this host (no
 * MemAvailable, no conntrack module, nginx not answering) is left out of the exposition
 * altogether, as a registry built afresh each refresh left it out, rather than shown as
 * a HELP and TYPE with no sample. The registry is rebuilt, through its public
 * clear()/registerMetric(), only when that set changes, which on one host is rare.
 */
export class Shown {
  readonly registry = new Registry();
  private current: readonly Metric[] = [];

  /** Shows exactly these metrics, in this order, and returns the registry. */
  show(metrics: readonly Metric[]): Registry {
    const current = this.current;
    let same = metrics.length === current.length;
    for (let i = 0; same && i < metrics.length; i++) same = metrics[i] === current[i];
    if (!same) {
      this.registry.clear();
      for (const m of metrics) this.registry.registerMetric(m);
      this.current = [...metrics];
    }
    return this.registry;
  }
}
