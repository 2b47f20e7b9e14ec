import { collectorDefinitions } from '../collectors/collector.js';
import type { Config } from '../config/schema.js';
import { HttpClient } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { ensureStateDirectory } from '../lib/storage.js';
import { Runner, type RunnerEntry } from './runner.js';
import { VERSION } from '../version.js';

/** The enabled collectors, in registration order, the runner over them and what they share. */
export interface Built {
  runner: Runner;
  http: HttpClient;
}

/**
 * Creates the enabled collectors and a runner over them. Throws a StartupError when two
 * of them claim one metric family, before anything is served.
 */
export async function buildRunner(config: Config, log: Logger): Promise<Built> {
  // As many connections to one origin as probes in flight (collectors.probes.concurrency's
  // default): with fewer, a slow endpoint holds the sockets and its fast siblings on the
  // same site wait behind it, their wait counted in their own probe duration.
  const http = new HttpClient({ connectionsPerOrigin: 32 });
  const entries: RunnerEntry[] = [];
  for (const [name, def] of collectorDefinitions()) {
    const c = config.collectors[name];
    if (!c?.enabled) continue;
    const collector = await def.create({
      name,
      config: c,
      paths: config.paths,
      log: log.child({ collector: name }),
      http,
      stateDirectory: () => ensureStateDirectory(config.storage.path, name),
    });
    entries.push({
      name,
      description: def.description,
      metrics: def.metrics,
      collector,
      intervalMs: c.interval,
      timeoutMs: c.timeout,
      actions: c.actions,
    });
  }
  return { runner: new Runner(entries, log, VERSION), http };
}
