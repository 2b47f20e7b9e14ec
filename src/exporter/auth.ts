/**
 * Basic auth against the web-config file's bcrypt hashes, as the exporter toolkit does
 * it, and the toolkit's other per-request parts: its response headers and rate limit.
 */
import { randomBytes } from 'node:crypto';
import { keyedDigest } from '../lib/keyed.js';
import type Koa from 'koa';

/**
 * Why a request was turned away; the `reason` label of lookout_http_auth_failures_total.
 * `too_many_attempts`: credentials not yet verified arrived while the compare queue was
 * full (answered 503 unchecked; BasicAuth.check's `busy`) — a password flood shows there, not only as
 * wrong_credentials. `missing_token`, `wrong_token`: a collector's route (an ingest)
 * called without its own bearer token, or with another.
 */
export type AuthFailure =
  | 'missing_credentials'
  | 'wrong_credentials'
  | 'too_many_attempts'
  | 'client_certificate'
  | 'missing_token'
  | 'wrong_token';
export const AUTH_FAILURES: readonly AuthFailure[] = [
  'missing_credentials',
  'wrong_credentials',
  'too_many_attempts',
  'client_certificate',
  'missing_token',
  'wrong_token',
];

/** The bcrypt calls lookout makes; the native `bcrypt` package in production. */
export interface Bcrypt {
  compare(password: string, hash: string): Promise<boolean>;
  hash(password: string, cost: number): Promise<string>;
}

/** Successful credentials remembered, as the toolkit's cache (which holds 100). */
const CACHE_SIZE = 100;
/**
 * Compares waiting beyond this are answered 503 at once: a flood of wrong passwords then
 * costs lookout at most one bcrypt at a time plus a short queue, and scrapes whose
 * credentials are cached never wait behind it.
 */
const MAX_WAITING = 16;

export type AuthResult = 'ok' | 'missing_credentials' | 'wrong_credentials' | 'busy';

/** `user:password` from a Basic Authorization header, or undefined. */
export function parseBasic(
  header: string | undefined,
): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Checks Basic credentials in the same time whatever is wrong with them:
 * - an unknown user is compared against a dummy hash of the highest cost configured, so
 *   it costs what a known user's wrong password costs (no user enumeration by timing);
 * - the bcrypt compare itself is constant-time in the password;
 * - only verified credentials are cached (the toolkit caches failures too), keyed by an
 *   HMAC of user and password under a key made at start: the cache holds no password,
 *   and its lookup compares HMAC digests an attacker cannot steer towards a stored one,
 *   so a lookup's time tells nothing. A cache hit is fast, but only a right password can
 *   hit; a wrong one always pays a full bcrypt, which is what slows guessing.
 * - compares run one at a time (as the toolkit's mutex), off the event loop in the
 *   native addon's thread pool, so /metrics keeps its latency under a password flood.
 */
export class BasicAuth {
  private readonly cache = new Map<string, true>();
  private readonly digest = keyedDigest();
  private queue: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  private constructor(
    private readonly users: ReadonlyMap<string, string>,
    private readonly dummy: string,
    private readonly bcrypt: Bcrypt,
  ) {}

  static async create(users: ReadonlyMap<string, string>, bcrypt: Bcrypt): Promise<BasicAuth> {
    const cost = Math.max(...[...users.values()].map((h) => Number(h.slice(4, 6))));
    const dummy = await bcrypt.hash(randomBytes(18).toString('base64'), cost);
    return new BasicAuth(users, dummy, bcrypt);
  }

  private idOf(creds: { user: string; password: string }): string {
    return this.digest(creds.user, creds.password).toString('base64');
  }

  get enabled(): boolean {
    return this.users.size > 0;
  }

  /** Whether these credentials were verified before (the cache): no compare, no waiting. */
  verified(header: string | undefined): boolean {
    const creds = parseBasic(header);
    return creds !== undefined && this.cache.has(this.idOf(creds));
  }

  async check(header: string | undefined): Promise<AuthResult> {
    const creds = parseBasic(header);
    if (!creds) return 'missing_credentials';
    const id = this.idOf(creds);
    if (this.cache.has(id)) return 'ok';
    if (this.waiting >= MAX_WAITING) return 'busy';
    const known = this.users.get(creds.user);
    // $2y$ (htpasswd, PHP) and $2b$ (OpenBSD) name the same algorithm; the addon knows $2b$.
    const hash = (known ?? this.dummy).replace(/^\$2y\$/, '$2b$');
    this.waiting++;
    const run = this.queue.then(() => this.bcrypt.compare(creds.password, hash));
    this.queue = run.catch(() => undefined);
    let match: boolean;
    try {
      match = await run;
    } finally {
      this.waiting--;
    }
    if (known === undefined || !match) return 'wrong_credentials';
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(id, true);
    return 'ok';
  }
}

/** The toolkit's token bucket (`rate_limit`): `burst` requests at once, one more per interval. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) / this.intervalMs);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface DoorChecks {
  headers: Record<string, string>;
  auth?: BasicAuth;
  limiter?: TokenBucket;
  /** A request turned away; counted and logged (at a rate limit) by the caller. */
  onFailure(reason: AuthFailure, remote: string | undefined): void;
}

/** /healthz stays open: container and load-balancer health checks carry no credentials. */
const OPEN_PATHS = new Set(['/healthz']);

/**
 * The toolkit's per-request order: the configured headers, the rate limit, then basic
 * auth — the last two on every route but /healthz, and basic auth not on the paths for
 * which `ownDoor` is true: collectors' routes, which check their own bearer token (the
 * scrape credentials must not open them, and one Authorization header cannot carry both).
 */
export function doorMiddleware(
  current: () => DoorChecks,
  ownDoor: (method: string, path: string) => boolean = () => false,
): Koa.Middleware {
  return async (ctx, next) => {
    // Read per request: a reloaded web-config file applies from the next request.
    const d = current();
    for (const [k, v] of Object.entries(d.headers)) ctx.set(k, v);
    if (OPEN_PATHS.has(ctx.path)) return next();
    if (d.limiter && !d.limiter.take()) {
      ctx.status = 429;
      ctx.set('Retry-After', '1');
      ctx.body = 'Too Many Requests\n';
      return;
    }
    if (!d.auth?.enabled || ownDoor(ctx.method, ctx.path)) return next();
    const result = await d.auth.check(ctx.get('authorization') || undefined);
    if (result === 'ok') return next();
    d.onFailure(result === 'busy' ? 'too_many_attempts' : result, ctx.request.ip);
    if (result === 'busy') {
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = 'Too many authentication attempts in progress; try again\n';
      return;
    }
    ctx.status = 401;
    ctx.set('WWW-Authenticate', 'Basic realm="lookout", charset="UTF-8"');
    ctx.body = 'Unauthorized\n';
  };
}
