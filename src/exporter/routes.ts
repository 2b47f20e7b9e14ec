import type Koa from 'koa';
import type Router from '@koa/router';
import getRawBody from 'raw-body';
import type { z } from 'zod';
import { RouteError, type CollectorRoute } from '../collectors/collector.js';
import { formatPath } from '../config/load.js';
import { errorText, type Logger } from '../lib/log.js';
import { StartupError } from './runner.js';

export const DEFAULT_BODY_LIMIT_BYTES = 1 << 20;

/** raw-body's errors carry the HTTP status and a machine-readable type. */
interface BodyReadError {
  status?: number;
  type?: string;
  limit?: number;
}

/** Reads the body under the route's limit and parses it as JSON; a RouteError when it cannot. */
async function readJson(ctx: Koa.Context, limit: number): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new RouteError(415, 'send the body as JSON with Content-Type: application/json');
  }
  const encoding = ctx.get('content-encoding').toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    throw new RouteError(
      415,
      `send the body uncompressed (Content-Encoding ${encoding} is not read)`,
    );
  }
  let text: string;
  try {
    // raw-body stops reading past the limit (and at once when Content-Length says so), so
    // an oversized body is refused without being buffered.
    text = await getRawBody(ctx.req, {
      length: ctx.get('content-length') || undefined,
      limit,
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as BodyReadError;
    if (e.type === 'entity.too.large') {
      throw new RouteError(413, `the body is larger than this route takes (${limit} bytes)`);
    }
    if (e.status !== undefined && e.status >= 400 && e.status < 500) {
      throw new RouteError(400, `the body could not be read: ${errorText(err)}`);
    }
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RouteError(400, `the body is not valid JSON: ${errorText(err)}`);
  }
}

function validate(schema: z.ZodType, body: unknown): unknown {
  const result = schema.safeParse(body, { reportInput: false });
  if (result.success) return result.data;
  throw new RouteError(
    400,
    'the body does not match what this route takes',
    result.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
  );
}

/** Answers 503 instead of calling a route: its collector is not running, or lookout is stopping. */
export interface RouteGate {
  /** Why the route cannot be served now, or undefined when it can. */
  closed(): string | undefined;
}

/**
 * Mounts a collector's routes; input problems become JSON 4xx answers. `taken` holds the
 * `METHOD path` pairs already served (lookout's own pages included): a second is a
 * StartupError, so one collector can never shadow another or /metrics.
 */
export function mountRoutes(
  router: Router,
  collector: string,
  routes: readonly CollectorRoute[],
  gate: RouteGate,
  taken: Map<string, string>,
): void {
  for (const route of routes) {
    const id = `${route.method} ${route.path}`;
    const owner = taken.get(id) ?? taken.get(`* ${route.path}`);
    if (owner !== undefined) {
      throw new StartupError(`collector ${collector} adds ${id}, which ${owner} already serves`);
    }
    taken.set(id, `collector ${collector}`);
    const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
    router[method](route.path, async (ctx) => {
      const why = gate.closed();
      if (why !== undefined) {
        // A client that retries (an ingest with idempotent ids) comes back later.
        ctx.set('Retry-After', '5');
        throw new RouteError(503, why);
      }
      const body = route.body
        ? validate(
            route.body,
            await readJson(ctx, route.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES),
          )
        : undefined;
      const res = await route.handle({
        body,
        headers: ctx.headers,
        query: new URLSearchParams(ctx.querystring),
      });
      sendJson(ctx, res.status, res.body);
    });
  }
}

/**
 * Answers with `value` as JSON, handed to koa already serialized. Handed an object, koa's
 * body setter tests it against the ReadableStream and Response globals, and Node loads
 * its bundled undici, HTTP/2 and web streams on the first touch of those: 12.8 MB of RSS
 * in a bare Node process, paid for good by whoever first sends lookout a body to refuse.
 */
export function sendJson(ctx: Koa.Context, status: number, value: unknown): void {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(value) ?? 'null';
}

/**
 * The outermost middleware: a RouteError is the client's mistake, answered as JSON with
 * its reason; anything else is ours, logged once with the request's method and path and
 * answered with a bare 500 (no internals to the client).
 */
export function errorHandler(log: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof RouteError) {
        const body = err.problems
          ? { error: err.message, problems: err.problems }
          : { error: err.message };
        sendJson(ctx, err.status, body);
        return;
      }
      log.error('request failed', { method: ctx.method, path: ctx.path, err: errorText(err) });
      sendJson(ctx, 500, { error: 'internal error; the exporter log has the cause' });
    }
  };
}
