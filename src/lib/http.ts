import type { Agent, Dispatcher } from 'undici';

export interface HttpRequest {
  method?: Dispatcher.HttpMethod;
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

const DEFAULT_MAX_BODY = 1 << 20;

/**
 * The one HTTP client collectors share: one undici Agent with bounded connections,
 * kept-alive sockets and a connect timeout. undici is imported on the first request, so
 * a host with no HTTP collector enabled never pays its ~7 MB; a collector that uses it
 * awaits dispatcher() in create(), so its first refresh does not spend a target's
 * deadline loading undici.
 */
export class HttpClient {
  private agent?: Promise<Agent>;

  constructor(
    private readonly options: { connectTimeoutMs?: number; connectionsPerOrigin?: number } = {},
  ) {}

  /** undici's dispatcher, for a collector that needs more than request() (a Unix socket, TLS details). */
  dispatcher(): Promise<Dispatcher> {
    this.agent ??= import('undici').then(
      ({ Agent }) =>
        new Agent({
          connect: { timeout: this.options.connectTimeoutMs ?? 10_000 },
          connections: this.options.connectionsPerOrigin ?? 4,
          // Targets are polled every 15–60 s; a socket idle past that is closed, not kept.
          keepAliveTimeout: 60_000,
          keepAliveMaxTimeout: 120_000,
        }),
    );
    return this.agent;
  }

  /** One request; redirects are not followed (the caller decides). Rejects on network errors. */
  async request(url: string | URL, req: HttpRequest): Promise<HttpResponse> {
    const dispatcher = await this.dispatcher();
    // undici 7 ignores a signal that was aborted before the call (it only listens for the
    // abort event): a deadline that passed while undici was loading would never end it.
    req.signal.throwIfAborted();
    const u = new URL(url);
    const res = await dispatcher.request({
      origin: u.origin,
      path: u.pathname + u.search,
      method: req.method ?? 'GET',
      headers: req.headers,
      body: req.body,
      signal: req.signal,
    });
    const limit = req.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      const piece = chunk.length > limit - kept ? chunk.subarray(0, limit - kept) : chunk;
      chunks.push(piece);
      kept += piece.length;
      if (piece.length < chunk.length) {
        // Stop reading: a target that streams forever must not hold the refresh.
        truncated = true;
        res.body.destroy();
        break;
      }
    }
    return {
      status: res.statusCode,
      headers: res.headers,
      body: Buffer.concat(chunks),
      truncated,
    };
  }

  /** Closes kept-alive sockets; requests still running after `graceMs` are cut off. */
  async close(graceMs = 1000): Promise<void> {
    if (!this.agent) return;
    const agent = await this.agent;
    this.agent = undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
    if ((await Promise.race([agent.close(), late])) === 'late') await agent.destroy();
    clearTimeout(timer);
  }
}
