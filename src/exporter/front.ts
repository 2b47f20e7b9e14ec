/**
 * What answers a request before koa does: GET /metrics and GET /healthz, the two a
 * scraper and a health check send, with koa's answer and headers. `serve` loads koa and
 * the rest of the app (src/exporter/app.ts: the landing page, the runbooks, collectors'
 * routes) only for the first request that needs it, so a lookout only ever scraped never
 * loads it: about 1.8 MB of heap and 2.5 MB of RSS (docs/performance.md).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type Koa from 'koa';
import type { DoorChecks } from './auth.js';
import { errorText, type Logger } from '../lib/log.js';
import { Paced } from '../lib/paced.js';

export const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

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

export type Format = 'prometheus' | 'openmetrics';

export function byteLength(chunks: Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/** /healthz's body. */
const HEALTHY = 'ok\n';

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
 * its credentials, and a plain GET /healthz: answered here, in front of koa. Under a flood of parallel scrapes
 * every request's own cost is what a well-behaved scraper waits behind, and koa's
 * context, router and response handling were most of it (bench/abuse.ts); the launcher's
 * interrupt budget keeps that code interpreted for long. Behind basic auth, credentials
 * verified before (BasicAuth's cache) pass here; anything to compare, refuse or rate-limit
 * goes through koa's door middleware, as does everything else. Returns whether it answered.
 */
export function metricsFastPath(
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
    if (req.method !== 'GET') return false;
    const health = url === '/healthz';
    if (!health && url !== '/metrics' && !url.startsWith('/metrics?')) return false;
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'])
      return false;
    if (lifecycle.stopping) return false;
    // Read per request, as the door middleware: a reloaded web-config file applies at once.
    const checks = door?.();
    if (health) {
      // As koa's route answers it: open to everyone (the door middleware asks no
      // credentials and counts no rate there), with the web-config file's headers.
      res.writeHead(200, {
        ...checks?.headers,
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': HEALTHY.length,
        Date: new Date().toUTCString(),
      });
      res.end(HEALTHY);
      return true;
    }
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

/**
 * `serve`'s request handler: the fast path (metricsFastPath), then the koa app that
 * `build` makes (src/exporter/app.ts's createApp), made once, on the first request the
 * fast path leaves to it. A request that waits for it counts as in flight.
 */
export function lazyApp(
  fast: (req: IncomingMessage, res: ServerResponse) => boolean,
  build: () => Promise<RequestListener>,
  lifecycle: Lifecycle,
  log: Logger,
): RequestListener {
  let app: Promise<RequestListener> | undefined;
  return (req, res) => {
    if (fast(req, res)) return;
    const made = (app ??= build());
    lifecycle
      .track(
        made.then(
          (handler) => handler(req, res),
          (err: unknown) => {
            // Tried again by the next request; this one gets what errorHandler answers.
            app = undefined;
            log.error('request failed', {
              method: req.method,
              path: req.url?.split('?')[0],
              err: errorText(err),
            });
            const body = JSON.stringify({
              error: 'internal error; the exporter log has the cause',
            });
            res.writeHead(500, {
              'Content-Type': 'application/json; charset=utf-8',
              'Content-Length': Buffer.byteLength(body),
            });
            res.end(body);
          },
        ),
      )
      .catch(() => undefined);
  };
}
