import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import { StorageError } from '../lib/storage.js';
import { VERSION } from '../version.js';
import { createApp, Lifecycle } from './app.js';
import { buildRunner } from './build.js';
import { splitListenAddress } from './listen.js';
import { StartupError } from './runner.js';

/** The first SIGTERM or SIGINT; a second one ends the process at once (the default action). */
function firstStopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.removeListener('SIGTERM', on);
      process.removeListener('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/**
 * Runs the exporter until SIGTERM/SIGINT; resolves with the exit code once shutdown is
 * done: no new connections, requests in flight finished (shutdown.drain_timeout),
 * collectors stopped and flushed (shutdown.flush_timeout, laggards named in the log).
 */
export async function serve(config: Config, log: Logger): Promise<number> {
  // Listened for from the start: a signal during start-up still gets an ordered stop.
  const stopSignal = firstStopSignal();
  const lifecycle = new Lifecycle();
  let built;
  let app;
  try {
    built = await buildRunner(config, log);
    app = createApp(built.runner, VERSION, log, lifecycle);
  } catch (err) {
    if (err instanceof StartupError || err instanceof StorageError) {
      process.stderr.write(`lookout: ${err.message}\n`);
      await built?.runner.stop();
      return 2;
    }
    throw err;
  }
  const { runner, http } = built;
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

  const signal = await stopSignal;
  const { drain_timeout: drainMs, flush_timeout: flushMs } = config.shutdown;
  log.info('shutting down', { signal });

  // 1. Stop accepting. Idle kept-alive connections close now; each answer from here on
  // closes its connection, and collectors' routes answer 503.
  lifecycle.stopping = true;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const drained = await Promise.race([
    Promise.all([closed, lifecycle.idle()]).then(() => true),
    sleep(drainMs, false),
  ]);
  if (!drained) {
    log.warn('requests still running after drain_timeout; closing their connections', {
      drain_timeout_seconds: drainMs / 1000,
    });
    server.closeAllConnections();
  }
  // 2. Stop the collectors; streaming ones flush what they must keep. A polled refresh
  // still in flight is aborted: its result would be thrown away.
  const overran = await runner.stop(flushMs);
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
