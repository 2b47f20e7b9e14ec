import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import { RateLimitedLog } from '../lib/ratelog.js';
import { StorageError } from '../lib/storage.js';
import { warmOptimizingCompiler } from '../lib/compiler.js';
import { VERSION } from '../version.js';
import { lazyApp, Lifecycle, metricsFastPath } from './front.js';
import { buildRunner } from './build.js';
import {
  AUTH_FAILURES,
  BasicAuth,
  TokenBucket,
  type AuthFailure,
  type Bcrypt,
  type DoorChecks,
} from './auth.js';
import { Door, type DoorEvents } from './listen.js';
import type { WebConfig } from './webconfig.js';
import { StartupError } from './runner.js';

/** The native bcrypt addon: compares run in libuv's thread pool, not on the event loop. */
async function nativeBcrypt(): Promise<Bcrypt> {
  const { default: bcrypt } = await import('bcrypt');
  return bcrypt;
}

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
  // The web-config file first: a wrong one is the user's to fix (exit 1), before anything starts.
  // Its code is imported only when there is one: a plain-HTTP lookout never runs it.
  const web = config.web.config_file
    ? await (await import('./webconfig.js')).loadWebConfig(config.web.config_file)
    : undefined;
  // The optimizing compiler's pages, which a long-running lookout takes on anyway, now.
  warmOptimizingCompiler();
  let built;
  let app;
  let failure: ((labels: Record<string, string>) => void) | undefined;
  let prepare: DoorEvents['prepare'] = () => Promise.resolve(() => undefined);
  try {
    built = await buildRunner(config, log, { storage: 'read-write' });
    failure = built.runner.selfCounter(
      'lookout_http_auth_failures_total',
      "Requests (basic auth, a collector route's bearer token) and TLS connections (client certificate) turned away: missing or wrong credentials or token, or too many unverified ones waiting (503).",
      ['reason'],
      AUTH_FAILURES.map((reason) => ({ reason })),
    );
    const count = failure;
    const warn = new RateLimitedLog(log);
    const onFailure = (reason: AuthFailure, remote: string | undefined) => {
      count({ reason });
      warn.warn(`auth-${reason}`, 'authentication failed', { reason, remote });
    };
    const checksFor = async (w: WebConfig): Promise<DoorChecks> => ({
      headers: w.headers,
      // The native addon is loaded only when some user is configured: no cost otherwise.
      auth: w.users.size > 0 ? await BasicAuth.create(w.users, await nativeBcrypt()) : undefined,
      limiter: w.rateLimit ? new TokenBucket(w.rateLimit.intervalMs, w.rateLimit.burst) : undefined,
      onFailure,
    });
    let checks = web ? await checksFor(web) : undefined;
    prepare = async (next) => {
      const c = await checksFor(next);
      return () => (checks = c);
    };
    const door = web ? () => checks! : undefined;
    const runner = built.runner;
    // koa and the pages behind it are loaded for the first request the fast path (GET
    // /metrics, /healthz) leaves to them; at once when a collector has routes of its own,
    // so a route that cannot be mounted stops the start, as before.
    const build = async () => {
      const { createApp } = await import('./app.js');
      return createApp(runner, VERSION, log, lifecycle, door, { onFailure }).callback();
    };
    const hasRoutes = [...runner.collectors().values()].some((c) => c.routes !== undefined);
    const koa = hasRoutes ? await build() : undefined;
    const exposition = (format: 'prometheus' | 'openmetrics') => runner.expositionChunks(format);
    app = lazyApp(
      metricsFastPath(exposition, lifecycle, log, door),
      koa ? () => Promise.resolve(koa) : build,
      lifecycle,
      log,
    );
  } catch (err) {
    if (err instanceof StartupError || err instanceof StorageError) {
      process.stderr.write(`lookout: ${err.message}\n`);
      await built?.runner.stop();
      return 2;
    }
    await built?.runner.stop();
    throw err;
  }
  const { runner, http } = built;
  const countFailure = failure!;
  let server: Door;
  try {
    server = await Door.open(app, config.web.listen_address, config.web, web, log, {
      onClientCertificateFailure: () => countFailure({ reason: 'client_certificate' }),
      prepare,
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      await runner.stop();
      throw err;
    }
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
  log.info('listening', { address: config.web.listen_address, version: VERSION });
  // Only here do collectors' actions run (when their config opts in): status and check never.
  runner
    .start({ actions: true })
    .catch((err: unknown) => log.error('collectors did not start', { err: errorText(err) }));

  const signal = await stopSignal;
  const { drain_timeout: drainMs, flush_timeout: flushMs } = config.shutdown;
  log.info('shutting down', { signal });

  // 1. Stop accepting. Idle kept-alive connections close now; each answer from here on
  // closes its connection, and collectors' routes answer 503.
  lifecycle.stopping = true;
  const closed = server.close();
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
  // 2. Stop the collectors; services flush what they must keep. A polled refresh
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
