import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { keyedDigest } from '../lib/keyed.js';
import { readSecretSync } from '../lib/secret.js';
import type Koa from 'koa';
import type Router from '@koa/router';
import getRawBody from 'raw-body';
import type { z } from 'zod';
import {
  batchAnswer,
  RouteError,
  type CollectorRoute,
  type RouteResponse,
  type RouteToken,
} from '../collectors/collector.js';
import type { AuthFailure } from './auth.js';
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

/** Reads a JSON body's bytes under the route's limit; a RouteError when it cannot. */
async function readBody(ctx: Koa.Context, limit: number): Promise<Buffer> {
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
  try {
    // raw-body stops reading past the limit (and at once when Content-Length says so), so
    // an oversized body is refused without being buffered.
    return await getRawBody(ctx.req, {
      length: ctx.get('content-length') || undefined,
      limit,
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
}

/** Reads the body under the route's limit and parses it as JSON; a RouteError when it cannot. */
async function readJson(ctx: Koa.Context, limit: number): Promise<unknown> {
  const text = (await readBody(ctx, limit)).toString('utf8');
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

/**
 * Answers 503 (with Retry-After) instead of calling a route: its collector is not
 * running, its service reported a fault (ctx.fault() until ctx.healthy()), or lookout is
 * stopping. Asked on every request, after the route's token was checked.
 */
export interface RouteGate {
  /** Why the route cannot be served now, or undefined when it can. */
  closed(): string | undefined;
}

/** Shortest token taken: a guessable one would open writes to anyone who tries. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * The token a route's settings name, read now (at start): undefined when none is
 * configured; a StartupError naming the setting when one is configured but cannot be
 * used (a missing or empty file, an unset variable, a short token).
 */
export function resolveRouteToken(token: RouteToken): string | undefined {
  if (token.file && token.env) {
    throw new StartupError(
      `${token.file.setting} and ${token.env.setting} are both set; keep one of them`,
    );
  }
  let value: string;
  let setting: string;
  if (token.file) {
    setting = token.file.setting;
    try {
      value = readSecretSync(token.file.path);
    } catch (err) {
      throw new StartupError(`${setting}: cannot read ${token.file.path}: ${errorText(err)}`);
    }
    if (value === '') throw new StartupError(`${setting}: ${token.file.path} is empty`);
  } else if (token.env) {
    setting = token.env.setting;
    const v = process.env[token.env.name];
    if (v === undefined || v === '') {
      throw new StartupError(
        `${setting}: the environment variable ${token.env.name} is ${v === undefined ? 'not set' : 'empty'}`,
      );
    }
    value = v;
  } else {
    return undefined;
  }
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new StartupError(
      `${setting}: the token holds spaces, control or non-ASCII characters, which an Authorization header cannot carry unchanged`,
    );
  }
  if (value.length < MIN_TOKEN_LENGTH) {
    throw new StartupError(
      `${setting}: the token is ${value.length} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`,
    );
  }
  return value;
}

export type BearerResult = 'ok' | 'missing_token' | 'wrong_token';

/**
 * A route's bearer token, compared in constant time: both sides are HMACs under a key
 * made at start, so the compare is of equal lengths whatever is sent, and its time tells
 * nothing about the token's length or its first differing byte.
 */
export class BearerToken {
  private readonly mac = keyedDigest();
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = this.mac(token);
  }

  check(header: string | undefined): BearerResult {
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return 'missing_token';
    return timingSafeEqual(this.mac(m[1]!), this.digest) ? 'ok' : 'wrong_token';
  }
}

/** What became of one route at start, for the log and the landing page. */
export interface RouteNote {
  collector: string;
  method: string;
  path: string;
  /** Undefined when mounted; else why not and what to set. */
  off?: string;
}

export interface RouteDoor {
  /** A request turned away for its token; counted in lookout_http_auth_failures_total. */
  onFailure?(reason: AuthFailure, remote: string | undefined): void;
}

/** Paths compared as the router matches them: case-insensitive, a trailing slash ignored. */
export function routeKey(path: string): string {
  const p = path.toLowerCase();
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * Mounts a collector's routes behind their own bearer token; input problems become JSON
 * 4xx answers. A route whose token is not configured is not mounted (a 404), and says so
 * in the returned notes. `taken` holds the `METHOD path` pairs already served (lookout's
 * own pages included): a second is a StartupError, so one collector can never shadow
 * another or /metrics.
 */
export function mountRoutes(
  router: Router,
  collector: string,
  routes: readonly CollectorRoute[],
  gate: RouteGate,
  taken: Map<string, string>,
  door: RouteDoor = {},
  fast?: Map<string, FastRoute>,
): RouteNote[] {
  const notes: RouteNote[] = [];
  for (const route of routes) {
    const id = `${route.method} ${route.path}`;
    const key = routeKey(route.path);
    const owner = taken.get(`${route.method} ${key}`) ?? taken.get(`* ${key}`);
    if (owner !== undefined) {
      throw new StartupError(`collector ${collector} adds ${id}, which ${owner} already serves`);
    }
    taken.set(`${route.method} ${key}`, `collector ${collector}`);
    const value = resolveRouteToken(route.token);
    if (value === undefined) {
      notes.push({
        collector,
        method: route.method,
        path: route.path,
        off: `no token configured; ${route.token.hint}`,
      });
      continue;
    }
    notes.push({ collector, method: route.method, path: route.path });
    const bearer = new BearerToken(value);
    const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
    if (route.rawBody && fast)
      fast.set(`${route.method} ${route.path}`, { route, bearer, gate, verified: new WeakMap() });
    router[method](route.path, async (ctx) => {
      // The token first: a client without it learns nothing, not even the collector's state.
      const result = bearer.check(ctx.get('authorization') || undefined);
      if (result !== 'ok') {
        door.onFailure?.(result, ctx.request.ip);
        ctx.set(
          'WWW-Authenticate',
          result === 'wrong_token'
            ? 'Bearer realm="lookout", error="invalid_token"'
            : 'Bearer realm="lookout"',
        );
        // The body is not read: the connection goes, rather than draining what was sent.
        ctx.set('Connection', 'close');
        throw new RouteError(
          401,
          result === 'wrong_token'
            ? "the bearer token is not this route's"
            : 'this route takes its own bearer token: Authorization: Bearer <token>',
        );
      }
      const why = gate.closed();
      if (why !== undefined) {
        // A client that retries (an ingest with idempotent ids) comes back later.
        ctx.set('Retry-After', '5');
        throw new RouteError(503, why);
      }
      const limit = route.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
      let body: unknown;
      let raw: Uint8Array | undefined;
      if (route.rawBody) raw = ownBytes(await readBody(ctx, limit));
      else if (route.body) body = validate(route.body, await readJson(ctx, limit));
      const res = await route.handle({
        body,
        raw,
        headers: ctx.headers,
        query: new URLSearchParams(ctx.querystring),
      });
      answer(ctx, res);
    });
  }
  return notes;
}

/** A mounted route with `rawBody`, which the fast path (fastRoutes) may answer in front of koa. */
export interface FastRoute {
  route: CollectorRoute;
  bearer: BearerToken;
  gate: RouteGate;
  /** Per connection, the Authorization header that passed this route's token check on it. */
  verified: WeakMap<object, string>;
}

const JSON_TYPE = /^application\/json[ \t]*(;|$)/i;

/**
 * The request a rawBody route's fast path takes: the route's method and exact path, no
 * query, a JSON body of a stated length within the route's limit, not encoded, and the
 * route's own token. Undefined for anything else, which koa answers (and refuses, with
 * the reasons and counts of the ordinary path): the fast path only ever says yes.
 */
function fastCandidate(
  routes: ReadonlyMap<string, FastRoute>,
  req: IncomingMessage,
): { f: FastRoute; length: number } | undefined {
  const f = routes.get(`${req.method} ${req.url}`);
  if (f === undefined) return undefined;
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return undefined;
  const encoding = h['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return undefined;
  if (!JSON_TYPE.test(h['content-type'] ?? '')) return undefined;
  const length = Number(h['content-length']);
  const limit = f.route.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!Number.isSafeInteger(length) || length <= 0 || length > limit) return undefined;
  // A kept-alive client sends the same header with every post: verified once per
  // connection. Comparing against what this connection itself sent and had verified
  // tells it nothing it did not know; anything else is verified afresh.
  const authorization = h.authorization;
  if (authorization === undefined) return undefined;
  if (f.verified.get(req.socket) !== authorization) {
    if (f.bearer.check(authorization) !== 'ok') return undefined;
    f.verified.set(req.socket, authorization);
  }
  if (f.gate.closed() !== undefined) return undefined;
  return { f, length };
}

/** The body's bytes, `length` of them (Node's parser holds the body to Content-Length), in an ArrayBuffer of their own. */
function readExactly(req: IncomingMessage, length: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const bytes = new Uint8Array(length);
    let at = 0;
    req.on('data', (chunk: Buffer) => {
      if (at + chunk.length > length) {
        req.destroy();
        return;
      }
      bytes.set(chunk, at);
      at += chunk.length;
    });
    req.once('end', () =>
      at === length ? resolve(bytes) : reject(new Error('the body ended early')),
    );
    req.once('error', reject);
    req.once('close', () => {
      if (at !== length) reject(new Error('the connection closed before the body was read'));
    });
  });
}

/**
 * Collectors' rawBody routes (the AI-usage ingest) answered in front of koa, as /metrics
 * is (src/exporter/app.ts): under many small posts, koa's context, middleware, router,
 * body reader and response handling were most of the event loop's cost a request
 * (docs/performance.md, "AI cost"). Only a request the route will take comes here (see
 * fastCandidate); the answer is the one koa would send. `headers()` gives the web-config
 * file's extra headers, undefined when the request must go through koa (a rate limit).
 * Returns whether it answered; `track` counts the request as in flight until answered.
 */
export function fastRoutes(
  routes: ReadonlyMap<string, FastRoute>,
  log: Logger,
  headers: () => Record<string, string> | undefined,
  stopping: () => boolean,
  track: (done: Promise<void>) => void,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (routes.size === 0 || req.method === 'GET' || stopping()) return false;
    const extra = headers();
    if (extra === undefined) return false;
    const c = fastCandidate(routes, req);
    if (c === undefined) return false;
    const send = (status: number, json: string, more?: Readonly<Record<string, string>>) => {
      res.writeHead(status, {
        ...extra,
        ...more,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(json),
        ...(stopping() ? { Connection: 'close' } : {}),
      });
      res.end(json);
    };
    const serve = async () => {
      let raw: Uint8Array;
      try {
        raw = await readExactly(req, c.length);
      } catch {
        return; // The client went before its body came: nothing to answer.
      }
      let r: RouteResponse;
      try {
        r = await c.f.route.handle({
          body: undefined,
          raw,
          headers: req.headers,
          query: new URLSearchParams(),
        });
      } catch (err) {
        // As errorHandler answers: the client's mistake with its reason, ours logged.
        if (err instanceof RouteError) {
          const body = err.problems
            ? { error: err.message, problems: err.problems }
            : { error: err.message };
          send(err.status, JSON.stringify(body));
          return;
        }
        log.error('request failed', { method: req.method, path: req.url, err: errorText(err) });
        send(500, JSON.stringify({ error: 'internal error; the exporter log has the cause' }));
        return;
      }
      if ('json' in r) send(r.status, r.json, r.headers);
      else if (!('items' in r)) send(r.status, JSON.stringify(r.body) ?? 'null', r.headers);
      else {
        const made = batchAnswer(r.items);
        send(r.status ?? made.status, made.json, r.headers);
      }
    };
    const done = serve().catch((err: unknown) => {
      log.error('request failed', { method: req.method, path: req.url, err: errorText(err) });
    });
    track(done);
    return true;
  };
}

/**
 * The bytes in a view of their own whole ArrayBuffer, which the route may transfer to a
 * worker: a small body read from the socket is a view into Node's shared buffer pool.
 */
function ownBytes(buf: Buffer): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf;
  return new Uint8Array(buf);
}

/** Sends a route's answer: its body, or a batch's per-item results with their counts. */
function answer(ctx: Koa.Context, res: RouteResponse): void {
  for (const [k, v] of Object.entries(res.headers ?? {})) ctx.set(k, v);
  if ('json' in res) {
    ctx.status = res.status;
    ctx.type = 'application/json';
    ctx.body = res.json;
    return;
  }
  if (!('items' in res)) {
    sendJson(ctx, res.status, res.body);
    return;
  }
  const made = batchAnswer(res.items);
  ctx.status = res.status ?? made.status;
  ctx.type = 'application/json';
  ctx.body = made.json;
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
