import { collectorDefinitions } from '../collectors/collector.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { Runner, type RunnerEntry } from './runner.js';
import { VERSION } from '../version.js';

/** Creates the enabled collectors, in registration order, and a runner over them. */
export async function buildRunner(config: Config, log: Logger): Promise<Runner> {
  const entries: RunnerEntry[] = [];
  for (const [name, def] of collectorDefinitions()) {
    const c = config.collectors[name];
    if (!c?.enabled) continue;
    const collector = await def.create(c, config.paths, log.child({ collector: name }));
    entries.push({
      name,
      description: def.description,
      collector,
      intervalMs: c.interval,
      timeoutMs: c.timeout,
    });
  }
  return new Runner(entries, log, VERSION);
}
