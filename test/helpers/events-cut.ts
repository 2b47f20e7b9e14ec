/**
 * The containers collector's event stream cut and opened again, on a real engine (dockerd
 * or Podman) behind a proxy: one API restart of a container counted, every connection
 * cut, the stream opened again from just before the last event (which the engine replays),
 * `replayed` asked whether the engine did send that event again, one more restart. The
 * count of restarts lookout ends with is 2 when the replay was counted once.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { containersSchema, createContainersCollector } from '../../src/collectors/containers.js';
import type { HttpClient } from '../../src/lib/http.js';
import type { Logger } from '../../src/lib/log.js';
import { engineProxy } from './engine-proxy.js';
import { eventually, tempDir } from './procs.js';

export async function restartsAcrossCut(opts: {
  /** The engine's own socket. */
  socket: string;
  /** The container restarted (name), and its id. */
  name: string;
  id: string;
  http: HttpClient;
  log: Logger;
  /**
   * Whether the engine, asked from `sinceNano` (where lookout re-opens), sends the event at
   * `lastNano` (the last lookout counted) again.
   */
  replayed: (sinceNano: bigint, lastNano: bigint) => Promise<boolean>;
}): Promise<number> {
  const dir = await tempDir('lkcut-');
  const proxy = await engineProxy(opts.socket, join(dir, 'p.sock'));
  const c = createContainersCollector(
    containersSchema.parse({ endpoint: `unix://${proxy.path}` }),
    opts.http,
    opts.log,
  );
  const n = () => c.events.countsByName().get(opts.name)?.restarts ?? 0;
  const restart = () =>
    c.docker.restart(opts.id, { timeoutSeconds: 0 }, AbortSignal.timeout(20_000));
  try {
    await c.service.start({
      log: opts.log,
      signal: AbortSignal.timeout(10_000),
      fault: () => undefined,
      healthy: () => undefined,
    });
    await restart();
    await eventually(async () => n() === 1, 20_000, 'the restart counted');
    const { sinceNano, lastNano } = c.events.streamState();
    proxy.cut();
    await eventually(
      async () => c.events.streamState().reopened >= 1 && c.events.streamState().connected,
      20_000,
      'the stream opened again',
    );
    assert.ok(await opts.replayed(sinceNano!, lastNano!), 'the engine replays the last event');
    await restart();
    await eventually(async () => n() >= 2, 20_000, 'the next restart counted');
    await new Promise((r) => setTimeout(r, 500));
    return n();
  } finally {
    await c.service.stop();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
}
