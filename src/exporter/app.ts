import { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import Koa from 'koa';
import Router from '@koa/router';
import type { Runner } from './runner.js';
import { landingPage } from './landing.js';
import {
  errorHandler,
  fastRoutes,
  mountRoutes,
  type FastRoute,
  routeKey,
  sendJson,
  type RouteDoor,
  type RouteGate,
  type RouteNote,
} from './routes.js';
import { runbooksHandler } from './runbooks.js';
import type { Logger } from '../lib/log.js';
import { doorMiddleware, type DoorChecks } from './auth.js';
import {
  byteLength,
  Lifecycle,
  metricsFastPath,
  OPENMETRICS_TYPE,
  PROMETHEUS_TYPE,
  wantsOpenMetrics,
  type Format,
} from './front.js';

export { Lifecycle, wantsOpenMetrics };

/** koa, with the /metrics fast path in front of its request handler. */
class LookoutApp extends Koa {
  fast?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Collectors' rawBody routes, in front of koa (fastRoutes in routes.ts). */
  fastRoutes?: (req: IncomingMessage, res: ServerResponse) => boolean;

  override callback(): ReturnType<Koa['callback']> {
    const koa = super.callback();
    return (req, res) =>
      req instanceof IncomingMessage &&
      res instanceof ServerResponse &&
      (this.fast?.(req, res) || this.fastRoutes?.(req, res))
        ? Promise.resolve()
        : koa(req, res);
  }
}

/** lookout's own pages; a collector's route may not take their paths. */
const OWN_PATHS = ['/metrics', '/healthz', '/runbooks', '/'];

/**
 * The gate of collector `name`'s routes, from what the runner knows of it: closed while
 * lookout stops, while the collector is not running (not started yet, its start failed,
 * stopped), and while its service reports a fault (ctx.fault(), until ctx.healthy()). The client learns only that
 * it must come back; the fault itself is on the landing page and in the log.
 */
export function collectorGate(runner: Runner, name: string, lifecycle: Lifecycle): RouteGate {
  return {
    closed: () => {
      if (lifecycle.stopping) return 'lookout is shutting down; try again shortly';
      if (!runner.isRunning(name))
        return `the ${name} collector is not running (see the landing page); try again shortly`;
      if (runner.serviceFault(name) !== undefined)
        return `the ${name} collector reports a fault (see the landing page); try again shortly`;
      return undefined;
    },
  };
}

/**
 * `door`: the web-config file's checks (headers, rate limit, basic auth), read per
 * request. `routeDoor`: where collectors' routes report a request without their token.
 */
export function createApp(
  runner: Runner,
  version: string,
  log: Logger,
  lifecycle = new Lifecycle(),
  door?: () => DoorChecks,
  routeDoor: RouteDoor = {},
): Koa {
  const app = new LookoutApp();
  const router = new Router();
  const exposition = (format: Format) => runner.expositionChunks(format);
  app.fast = metricsFastPath(exposition, lifecycle, log, door);

  router.get('/metrics', async (ctx) => {
    // Only joins the text each collector left when it last finished: a scrape never waits on a collector.
    const om = wantsOpenMetrics(ctx.get('accept') || undefined);
    ctx.type = om ? OPENMETRICS_TYPE : PROMETHEUS_TYPE;
    const chunks = await exposition(om ? 'openmetrics' : 'prometheus');
    // Several chunks go as a stream of them, not joined: no copy of the polled part.
    ctx.body = chunks.length === 1 ? chunks[0] : Readable.from(chunks);
    ctx.length = byteLength(chunks);
  });

  router.get('/healthz', (ctx) => {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = 'ok\n';
  });

  router.get('/runbooks', runbooksHandler(log));

  const notes: RouteNote[] = [];
  router.get('/', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = landingPage(runner.states(), version, notes);
  });

  // Routes of enabled collectors only: a disabled collector was never built.
  const taken = new Map(OWN_PATHS.map((p) => [`* ${routeKey(p)}`, 'lookout itself']));
  const fast = new Map<string, FastRoute>();
  for (const [name, collector] of runner.collectors()) {
    if (!collector.routes) continue;
    const gate = collectorGate(runner, name, lifecycle);
    notes.push(...mountRoutes(router, name, collector.routes, gate, taken, routeDoor, fast));
  }
  app.fastRoutes = fastRoutes(
    fast,
    log,
    // Read per request, as the door middleware; a rate limit is counted there.
    () => {
      const checks = door?.();
      return checks?.limiter ? undefined : (checks?.headers ?? {});
    },
    () => lifecycle.stopping,
    (done) => {
      lifecycle.track(done).catch(() => undefined);
    },
  );
  for (const n of notes) {
    if (n.off === undefined)
      log.info('route mounted', { collector: n.collector, route: `${n.method} ${n.path}` });
    else
      log.warn('route off', { collector: n.collector, route: `${n.method} ${n.path}`, why: n.off });
  }
  // By method and path: another method on a route's path meets basic auth like any page.
  const ownDoor = new Set(
    notes.filter((n) => n.off === undefined).map((n) => `${n.method} ${routeKey(n.path)}`),
  );

  app.use(lifecycle.middleware());
  // Headers, rate limit and basic auth from the web-config file, before anything is read;
  // collectors' routes check their own token instead of basic auth.
  if (door)
    app.use(doorMiddleware(door, (method, path) => ownDoor.has(`${method} ${routeKey(path)}`)));
  app.use(errorHandler(log));
  app.use(async (ctx, next) => {
    // lookout's own pages take no body: one sent to them is refused unread, and the
    // connection closed, rather than drained. Collectors' routes have their own limits.
    const body = (ctx.request.length ?? 0) > 0 || ctx.get('transfer-encoding') !== '';
    if (body && OWN_PATHS.includes(ctx.path)) {
      ctx.set('Connection', 'close');
      sendJson(ctx, 413, { error: `${ctx.path} takes no request body` });
      return;
    }
    await next();
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Errors are answered and logged once by errorHandler; koa's own printing would repeat them.
  app.silent = true;
  return app;
}
