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
import { errorText, type Logger } from '../lib/log.js';
import { doorMiddleware, type DoorChecks } from './auth.js';
import { Paced } from '../lib/paced.js';

const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Prometheus asks for OpenMetrics in its Accept header; anything else gets the classic format. */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}

/**
 * Requests in flight, and whether lookout is stopping: then every answer closes its
 * connection (a kept-alive client cannot hold shutdown open) and collectors' routes
 * answer 503, so nothing new reaches a collector that is about to flush.
 */
export class Lifecycle {
  stopping = false;
  private active = 0;
  private waiters: (() => void)[] = [];

  middleware(): Koa.Middleware {
    return async (ctx, next) => {
      this.active++;
      try {
        await next();
      } finally {
        if (this.stopping) ctx.set('Connection', 'close');
        if (--this.active === 0) for (const wake of this.waiters.splice(0)) wake();
      }
    };
  }

  /** Counts a request served outside koa (the /metrics fast path) as in flight until `done`. */
  async track(done: Promise<void>): Promise<void> {
    this.active++;
    try {
      await done;
    } finally {
      if (--this.active === 0) for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }
}

type Format = 'prometheus' | 'openmetrics';

function byteLength(chunks: Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/** Scrapes a second on one established connection answered at once; more are paced. */
const FREQUENT_PER_SECOND = 2;
/**
 * Frequent connections' scrapes answered per batch, a batch a millisecond: a flood is
 * held to about 2,000 scrapes a second, a fraction of the loop, whatever it sends.
 */
const FREQUENT_PER_TURN = 2;
const FREQUENT_GAP_MS = 1;

/**
 * A plain GET /metrics without a body, whose door checks (if any) are done by knowing
 * its credentials: answered here, in front of koa. Under a flood of parallel scrapes
 * every request's own cost is what a well-behaved scraper waits behind, and koa's
 * context, router and response handling were most of it (bench/abuse.ts); the launcher's
 * interrupt budget keeps that code interpreted for long. Behind basic auth, credentials
 * verified before (BasicAuth's cache) pass here; anything to compare, refuse or rate-limit
 * goes through koa's door middleware, as does everything else. Returns whether it answered.
 */
function metricsFastPath(
  exposition: (format: Format) => Promise<Buffer[]>,
  lifecycle: Lifecycle,
  log: Logger,
  door?: () => DoorChecks,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  /**
   * Per connection: its first scrape, when its current second began, its scrapes in it,
   * and whether one of them is waiting in the paced queue.
   */
  const recent = new WeakMap<
    object,
    { first: number; since: number; n: number; waiting: boolean }
  >();
  const later = new Paced(FREQUENT_PER_TURN, FREQUENT_GAP_MS);
  return (req, res) => {
    const url = req.url ?? '';
    if (req.method !== 'GET' || (url !== '/metrics' && !url.startsWith('/metrics?'))) return false;
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'])
      return false;
    if (lifecycle.stopping) return false;
    // Read per request, as the door middleware: a reloaded web-config file applies at once.
    const checks = door?.();
    if (
      checks &&
      (checks.limiter || (checks.auth?.enabled && !checks.auth.verified(req.headers.authorization)))
    )
      return false;
    const headers = checks?.headers ?? {};
    const om = wantsOpenMetrics(req.headers.accept);
    // Paced (two a millisecond) are a connection's scrapes past two a second, and all of a
    // connection's first second (a flood that opens new connections sends their first
    // scrapes together). A scraper on its kept-alive connection is answered within the
    // turn that reads its request, instead of behind a whole poll's worth of a flood's;
    // without a flood, paced costs one turn. `npm run bench:abuse` measures it
    // (docs/performance.md).
    const now = performance.now();
    let seen = recent.get(req.socket);
    if (!seen) recent.set(req.socket, (seen = { first: now, since: now, n: 0, waiting: false }));
    if (now - seen.since > 1000) {
      seen.since = now;
      seen.n = 0;
    }
    // At most one paced scrape per connection: one pipelining many requests has the rest
    // answered at once, queued by Node behind the paced one, which stops Node reading
    // more from it until they are sent (otherwise every request it sent would wait in the
    // queue, and everyone else behind them).
    const paced = (++seen.n > FREQUENT_PER_SECOND || now - seen.first < 1000) && !seen.waiting;
    const conn = seen;
    const answered = paced
      ? new Promise<void>((r) => {
          conn.waiting = true;
          later.run(r);
        }).then(() => {
          conn.waiting = false;
          return answer(om, res, headers);
        })
      : answer(om, res, headers);
    lifecycle.track(answered).catch((err: unknown) => {
      log.error('request failed', { method: 'GET', path: '/metrics', err: errorText(err) });
    });
    return true;
  };
  function answer(
    om: boolean,
    res: ServerResponse,
    headers: Record<string, string>,
  ): Promise<void> {
    return exposition(om ? 'openmetrics' : 'prometheus').then(
      (chunks) => {
        res.writeHead(200, {
          ...headers,
          'Content-Type': om ? OPENMETRICS_TYPE : PROMETHEUS_TYPE,
          'Content-Length': byteLength(chunks),
          // Written here rather than by Node: its Date header is cached until the next
          // second by a timer, which woke an idle lookout once more after every scrape.
          Date: new Date().toUTCString(),
          // As the Lifecycle middleware: stopping began while this one was in flight.
          ...(lifecycle.stopping ? { Connection: 'close' } : {}),
        });
        // Corked: the chunks leave together, end() uncorks.
        res.cork();
        for (let i = 0; i < chunks.length - 1; i++) res.write(chunks[i]);
        res.end(chunks[chunks.length - 1]);
      },
      (err: unknown) => {
        // As errorHandler answers and logs a failure of ours.
        log.error('request failed', { method: 'GET', path: '/metrics', err: errorText(err) });
        const body = JSON.stringify({ error: 'internal error; the exporter log has the cause' });
        res.writeHead(500, {
          ...headers,
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(body),
        });
        res.end(body);
      },
    );
  }
}

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
