import Koa from 'koa';
import Router from '@koa/router';
import type { Runner } from './runner.js';
import { landingPage } from './landing.js';
import { errorHandler, mountRoutes } from './routes.js';
import { runbooksHandler } from './runbooks.js';
import type { Logger } from '../lib/log.js';

const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Prometheus asks for OpenMetrics in its Accept header; anything else gets the classic format. */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}

export function createApp(runner: Runner, version: string, log: Logger): Koa {
  const app = new Koa();
  const router = new Router();

  router.get('/metrics', async (ctx) => {
    // Only joins the text each collector left when it last finished: a scrape never waits on a collector.
    const om = wantsOpenMetrics(ctx.get('accept') || undefined);
    ctx.type = om ? OPENMETRICS_TYPE : PROMETHEUS_TYPE;
    ctx.body = await runner.exposition(om ? 'openmetrics' : 'prometheus');
  });

  router.get('/healthz', (ctx) => {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = 'ok\n';
  });

  router.get('/runbooks', runbooksHandler(log));

  router.get('/', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = landingPage(runner.states(), version);
  });

  // Routes of enabled collectors only: a disabled collector was never built.
  for (const collector of runner.collectors().values()) {
    if (collector.routes) mountRoutes(router, collector.routes);
  }

  app.use(errorHandler(log));
  app.use(router.routes());
  app.use(router.allowedMethods());
  // Errors are answered and logged once by errorHandler; koa's own printing would repeat them.
  app.silent = true;
  return app;
}
