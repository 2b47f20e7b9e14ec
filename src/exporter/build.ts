import { collectorDefinitions, type Collector } from '../collectors/collector.js';
import type { Config } from '../config/schema.js';
import { HttpClient } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { openStateDirectory, type StorageMode } from '../lib/storage.js';
import { Runner, type RunnerEntry } from './runner.js';
import { VERSION } from '../version.js';

/** The enabled collectors, in registration order, the runner over them and what they share. */
export interface Built {
  runner: Runner;
  http: HttpClient;
}

/**
 * Creates the enabled collectors and a runner over them. Throws a StartupError when two
 * of them claim one metric family, before anything is served, and a StorageError when
 * storage.path cannot be used in `storage` mode: `serve` opens it read-write (made and
 * checked writable now, rather than at the first flush an hour later); reports open it
 * read-only, the default, so a command that forgets to say creates nothing.
 */
export async function buildRunner(
  config: Config,
  log: Logger,
  opts: { storage?: StorageMode } = {},
): Promise<Built> {
  const storage = opts.storage ?? 'read-only';
  const root = await openStateDirectory(config.storage.path, undefined, storage);
  // As many connections to one origin as probes in flight (collectors.probes.concurrency's
  // default): with fewer, a slow endpoint holds the sockets and its fast siblings on the
  // same site wait behind it, their wait counted in their own probe duration.
  const http = new HttpClient({ connectionsPerOrigin: 32 });
  const entries: RunnerEntry[] = [];
  const built = new Map<string, Collector>();
  for (const [name, def] of collectorDefinitions()) {
    const c = config.collectors[name];
    if (!c?.enabled) continue;
    const collector = await def.create({
      name,
      config: c,
      paths: config.paths,
      log: log.child({ collector: name }),
      http,
      stateMode: storage,
      stateDirectory: () => openStateDirectory(root, name, storage),
      peer: (other) => built.get(other),
    });
    built.set(name, collector);
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
