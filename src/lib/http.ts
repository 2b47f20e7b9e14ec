import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';

export interface HttpRequest {
  method?: HttpMethod;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Aborts the request; pass the target's deadline. */
  signal: AbortSignal;
  /** Bytes of the response body kept; the rest is read and dropped (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body was longer than maxBodyBytes and was cut there. */
  truncated: boolean;
}

/**
 * An HTTP server on a unix socket (the Docker Engine API): the socket's path and the
 * request's path and query. `host` is the Host header sent (default `localhost`).
 */
export interface UnixEndpoint {
  socketPath: string;
  path: string;
  host?: string;
}

/**
 * A response whose body is read as it comes (an event stream): the status and headers
 * once they arrive, the body as a stream. Aborting the request's signal, or destroy(),
 * closes the connection.
 */
export interface HttpStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  destroy(): void;
}

/** Where a request goes: a URL (http: or https:), or a unix socket. */
export type Endpoint = string | URL | UnixEndpoint;

/** The kinds of endpoint, each with its own dispatcher (a connection pool). */
export type EndpointKind = 'tcp' | 'tls' | 'unix';

const DEFAULT_MAX_BODY = 1 << 20;

/**
 * node:https (and node:tls under it), imported for the first https: endpoint: a lookout
 * whose targets are all plain HTTP or unix sockets never loads them (see src/lib/prom.ts
 * and docs/performance.md for what they cost).
 */
type Https = typeof import('node:https');
const httpsFor = (kind: EndpointKind): Promise<Https> | undefined =>
  kind === 'tls' ? import('node:https') : undefined;

/** Connecting (TCP, and the TLS handshake after it) took longer than connectTimeoutMs. */
export class ConnectTimeoutError extends Error {
  readonly code = 'LOOKOUT_CONNECT_TIMEOUT';
}

/**
 * The one HTTP client collectors share, on Node's own http and https modules: one
 * keep-alive agent per kind of endpoint (TCP, TLS, unix socket), each made on first use,
 * with bounded connections per origin (per socket path) and a connect timeout. Node's
 * HTTP server code is loaded for lookout's own door anyway, so a request costs its
 * sockets; undici's index cost 20-29 MB of RSS in a bare Node 20 process after a few
 * requests (its llhttp WebAssembly compiled on first use), Node's http 3.5 MB.
 */
export class HttpClient {
  private readonly agents = new Map<EndpointKind, HttpAgent>();

  constructor(
    private readonly options: { connectTimeoutMs?: number; connectionsPerOrigin?: number } = {},
  ) {}

  /** The kinds of endpoint a dispatcher was made for so far (tests, status). */
  kindsInUse(): EndpointKind[] {
    return [...this.agents.keys()];
  }

  private agent(kind: EndpointKind, https: Https | undefined): HttpAgent {
    let agent = this.agents.get(kind);
    if (!agent) {
      const options = {
        keepAlive: true,
        maxSockets: this.options.connectionsPerOrigin ?? 4,
        // Targets are polled every 15–60 s; a socket idle past that is closed, not kept
        // (a server's shorter Keep-Alive timeout hint wins).
        timeout: 60_000,
      };
      agent = https ? new https.Agent(options) : new HttpAgent(options);
      this.agents.set(kind, agent);
    }
    return agent;
  }

  /**
   * One request; redirects are not followed (the caller decides). Rejects on network
   * errors, and with the signal's reason once it aborts (a TimeoutError for
   * AbortSignal.timeout), whether the request had begun or not.
   */
  async request(endpoint: Endpoint, req: HttpRequest): Promise<HttpResponse> {
    req.signal.throwIfAborted();
    const method = req.method ?? 'GET';
    const target = targetOf(endpoint);
    const https = await httpsFor(target.kind);
    req.signal.throwIfAborted();
    const agent = this.agent(target.kind, https);
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    const limit = req.maxBodyBytes ?? DEFAULT_MAX_BODY;
    return await new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        req.signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      const onAbort = () => {
        // The signal's own reason, as fetch and undici reject: a deadline reads as a
        // TimeoutError, not as a generic abort.
        const reason: unknown = req.signal.reason;
        fail(reason);
        request.destroy(reason instanceof Error ? reason : undefined);
      };
      const make = https ? https.request : httpRequest;
      const request = make({
        ...target.options,
        method,
        agent,
        headers: { ...target.options.headers, ...req.headers },
      });
      request.on('error', fail);
      request.on('socket', (socket: Socket) => {
        connectTimer = connectDeadline(request, socket, target, connectTimeoutMs);
      });
      request.on('response', (res: IncomingMessage) => {
        clearTimeout(connectTimer);
        const chunks: Buffer[] = [];
        let kept = 0;
        let truncated = false;
        res.on('data', (chunk: Buffer) => {
          if (truncated) return;
          const piece = chunk.length > limit - kept ? chunk.subarray(0, limit - kept) : chunk;
          chunks.push(piece);
          kept += piece.length;
          if (piece.length < chunk.length) {
            // Stop reading: a target that streams forever must not hold the refresh. The
            // socket goes with it (it is mid-body, so it cannot be kept).
            truncated = true;
            res.destroy();
            done();
          }
        });
        res.on('end', done);
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) fail(new Error(`${target.where} closed the connection mid-response`));
        });
        function done() {
          if (settled) return;
          settled = true;
          req.signal.removeEventListener('abort', onAbort);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            truncated,
          });
        }
      });
      req.signal.addEventListener('abort', onAbort, { once: true });
      request.end(req.body);
    });
  }

  /**
   * A request whose response body is read as a stream (Docker's /events), on a
   * connection of its own: it is not taken from the pool, so a stream held open for
   * hours never takes a slot a collector's requests need. Resolves once the status and
   * headers have arrived; rejects as request() does until then (network errors, the
   * connect timeout, the signal). After that the signal, or destroy(), ends the body.
   */
  async stream(endpoint: Endpoint, req: HttpRequest): Promise<HttpStream> {
    req.signal.throwIfAborted();
    const target = targetOf(endpoint);
    const https = await httpsFor(target.kind);
    req.signal.throwIfAborted();
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    return await new Promise<HttpStream>((resolve, reject) => {
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;
      const make = https ? https.request : httpRequest;
      const request = make({
        ...target.options,
        method: req.method ?? 'GET',
        agent: false,
        headers: { ...target.options.headers, ...req.headers },
      });
      const onAbort = () => {
        const reason: unknown = req.signal.reason;
        request.destroy(reason instanceof Error ? reason : undefined);
        if (!settled) {
          settled = true;
          clearTimeout(connectTimer);
          reject(reason instanceof Error ? reason : new Error(String(reason)));
        }
      };
      request.on('error', (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        req.signal.removeEventListener('abort', onAbort);
        reject(err);
      });
      request.on('socket', (socket: Socket) => {
        connectTimer = connectDeadline(request, socket, target, connectTimeoutMs);
      });
      request.on('response', (res: IncomingMessage) => {
        clearTimeout(connectTimer);
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        // An error on the body after this is the body's to report ('error' on the stream).
        request.on('error', () => undefined);
        res.once('close', () => req.signal.removeEventListener('abort', onAbort));
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: res,
          destroy: () => {
            res.destroy();
            request.destroy();
          },
        });
      });
      req.signal.addEventListener('abort', onAbort, { once: true });
      request.end(req.body);
    });
  }

  /**
   * Closes kept-alive sockets now; requests still running after `graceMs` are cut off.
   * The agents are dropped: a request after close makes new ones.
   */
  async close(graceMs = 1000): Promise<void> {
    const agents = [...this.agents.values()];
    this.agents.clear();
    if (agents.length === 0) return;
    // Idle sockets go at once; a socket in use is handed back (and closed, being no
    // longer kept) when its request ends, or destroyed when the grace runs out.
    const busy = () =>
      agents.some((a) => Object.values(a.sockets).some((list) => (list?.length ?? 0) > 0));
    for (const a of agents) for (const list of Object.values(a.freeSockets)) closeAll(list);
    const until = performance.now() + graceMs;
    while (busy() && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    for (const a of agents) a.destroy();
  }
}

function closeAll(list: Socket[] | undefined): void {
  for (const s of list ?? []) s.destroy();
}

/**
 * Destroys the request with a ConnectTimeoutError when its socket has not connected (and,
 * for TLS, finished the handshake) within connectTimeoutMs; a kept-alive socket is
 * connected already. Returns the timer, to clear once a response arrives.
 */
function connectDeadline(
  request: ClientRequest,
  socket: Socket,
  target: { kind: EndpointKind; where: string },
  connectTimeoutMs: number,
): NodeJS.Timeout | undefined {
  if (!socket.connecting) return undefined;
  const timer = setTimeout(() => {
    request.destroy(
      new ConnectTimeoutError(
        `connect to ${target.where} timed out after ${connectTimeoutMs / 1000}s`,
      ),
    );
  }, connectTimeoutMs);
  socket.once(target.kind === 'tls' ? 'secureConnect' : 'connect', () => clearTimeout(timer));
  return timer;
}

function targetOf(endpoint: Endpoint) {
  return typeof endpoint === 'string' || endpoint instanceof URL
    ? tcpTarget(new URL(endpoint))
    : {
        kind: 'unix' as const,
        options: {
          socketPath: endpoint.socketPath,
          path: endpoint.path,
          headers: { host: endpoint.host ?? 'localhost' } as Record<string, string>,
        },
        where: `unix:${endpoint.socketPath}`,
      };
}

function tcpTarget(u: URL) {
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new TypeError(`${u.protocol} URLs are not fetched (only http: and https:): ${u.href}`);
  }
  const tls = u.protocol === 'https:';
  return {
    kind: tls ? ('tls' as const) : ('tcp' as const),
    options: {
      protocol: u.protocol,
      // node:http takes a bare IPv6 address, without URL brackets.
      hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: u.port === '' ? undefined : Number(u.port),
      path: u.pathname + u.search,
      headers: {} as Record<string, string>,
    },
    where: u.host,
  };
}
