import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import { StorageError } from '../lib/storage.js';
import { VERSION } from '../version.js';
import { createApp } from './app.js';
import { buildRunner } from './build.js';
import { splitListenAddress } from './listen.js';
import { StartupError } from './runner.js';

/** How long requests in flight may take to finish once shutdown begins. */
export const REQUEST_GRACE_MS = 5_000;
/** How long collectors may take to stop and flush (a ledger's fsync) once requests are done. */
export const FLUSH_DEADLINE_MS = 15_000;

/**
 * Runs the exporter until SIGTERM/SIGINT; resolves with the exit code once shutdown is
 * done: no new connections, requests in flight finished (bounded), collectors stopped and
 * flushed (bounded, laggards named in the log). A second signal ends the process at once.
 */
export async function serve(config: Config, log: Logger): Promise<number> {
  let built;
  try {
    built = await buildRunner(config, log);
  } catch (err) {
    if (err instanceof StartupError || err instanceof StorageError) {
      process.stderr.write(`lookout: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const { runner, http } = built;
  const app = createApp(runner, VERSION, log);
  const { host, port } = splitListenAddress(config.web.listen_address);

  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen({ host, port });
      s.once('listening', () => resolve(s));
      s.once('error', reject);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'is already in use; stop what listens there or pick another with --web.listen-address'
        : code === 'EACCES'
          ? 'needs privileges; pick a port above 1023'
          : code === 'EADDRNOTAVAIL'
            ? 'is not an address of this host'
            : errorText(err);
    process.stderr.write(`lookout: cannot listen on ${config.web.listen_address}: ${why}\n`);
    await runner.stop();
    return 2;
  }
  // Prometheus reuses its connection between scrapes; keep it open across a 15–60 s
  // interval rather than reconnecting. Shutdown closes idle ones at once.
  server.keepAliveTimeout = 65_000;
  log.info('listening', { address: config.web.listen_address, version: VERSION });
  runner
    .start()
    .catch((err: unknown) => log.error('collectors did not start', { err: errorText(err) }));

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('shutting down', { signal });

  // 1. Stop accepting; idle kept-alive connections go now, requests in flight may finish.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const drained = await Promise.race([closed.then(() => true), sleep(REQUEST_GRACE_MS, false)]);
  if (!drained) {
    log.warn('requests still running after the grace period; closing their connections', {
      grace_seconds: REQUEST_GRACE_MS / 1000,
    });
    server.closeAllConnections();
  }
  // 2. Stop the collectors; streaming ones flush what they must keep. A polled refresh
  // still in flight is not waited for: its result would be thrown away.
  const overran = await runner.stop(FLUSH_DEADLINE_MS);
  await http.close();
  if (overran.length > 0) {
    log.error('shutdown incomplete: collectors did not finish stopping', {
      collectors: overran.join(','),
    });
    return 2;
  }
  log.info('stopped');
  return 0;
}
