/**
 * A small Docker Engine API client over the shared HTTP client: the few calls lookout
 * makes (list, inspect, one-shot stats, the event stream, and restart/kill/start/stop for
 * auto-restart), typed with the fields it reads. It speaks to Docker's socket, a socket
 * proxy over TCP, or Podman's Docker-compatible socket. Paths are unversioned: the engine
 * answers them with its own API version, and Podman's compat API takes them too.
 */
import type { Readable } from 'node:stream';
import type { Endpoint, HttpClient, HttpMethod } from './http.js';

/** Docker's own default, and where lookout looks when no endpoint is configured. */
export const DEFAULT_DOCKER_ENDPOINT = 'unix:///var/run/docker.sock';

/** One container as /containers/json lists it. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  /** created, running, paused, restarting, removing, exited, dead */
  State: string;
  Status: string;
  Labels: Record<string, string> | null;
  Created: number;
}

export interface HealthcheckConfig {
  Test?: string[];
  /** Nanoseconds; 0 means Docker's default (30 s). */
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

/** The fields of /containers/{id}/json lookout reads. */
export interface ContainerInspect {
  Id: string;
  /** With a leading slash: `/web-1`. */
  Name: string;
  RestartCount: number;
  Config: {
    Image: string;
    Labels: Record<string, string> | null;
    Healthcheck?: HealthcheckConfig;
  };
  State: {
    Status: string;
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    Pid: number;
    ExitCode: number;
    Error?: string;
    /** RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` when never started. */
    StartedAt: string;
    FinishedAt: string;
    Health?: {
      /** starting, healthy, unhealthy */
      Status: string;
      FailingStreak: number;
      Log?: { Start: string; End: string; ExitCode: number; Output: string }[] | null;
    };
  };
  HostConfig: {
    RestartPolicy?: { Name: string; MaximumRetryCount?: number };
    /** bridge, host, none, container:<id>, or a network's name. */
    NetworkMode?: string;
    /** Bytes; 0 when unlimited. */
    Memory?: number;
    NanoCpus?: number;
    CpuQuota?: number;
    CpuPeriod?: number;
  };
}

/** The fields of /containers/{id}/stats lookout reads. */
export interface ContainerStats {
  /** When the engine read the numbers; `0001-01-01T00:00:00Z` for a container not running. */
  read: string;
  cpu_stats?: {
    cpu_usage?: { total_usage?: number };
    system_cpu_usage?: number;
    online_cpus?: number;
  };
  precpu_stats?: ContainerStats['cpu_stats'];
  memory_stats?: {
    usage?: number;
    limit?: number;
    /** cgroup v2: inactive_file; v1: total_inactive_file (and inactive_file); Podman: absent. */
    stats?: Record<string, number>;
  };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

/** One message of /events. */
export interface EngineEvent {
  Type: string;
  /** start, die, oom, restart, destroy, health_status: healthy, ... */
  Action: string;
  Actor: { ID: string; Attributes?: Record<string, string> };
  time: number;
  /** As sent: a decimal integer too large for a JS number, kept exact. */
  timeNano: bigint;
}

/** The engine answered with an error status; `status` 404 is a container that is gone. */
export class DockerApiError extends Error {
  readonly code: string;
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.code = status === 404 ? 'LOOKOUT_DOCKER_NOT_FOUND' : 'LOOKOUT_DOCKER_API';
  }
}

/** The endpoint setting could not be read. */
export class DockerEndpointError extends Error {
  readonly code = 'LOOKOUT_DOCKER_ENDPOINT';
}

export function isNotFound(err: unknown): boolean {
  return err instanceof DockerApiError && err.status === 404;
}

/** Where the engine is, parsed from a DOCKER_HOST-style value. */
export type EngineAddress = { socketPath: string } | { url: string };

/**
 * `unix:///var/run/docker.sock` (or a bare absolute path), `tcp://host:2375` (plain
 * HTTP, a socket proxy's usual address), `http://host:port` or `https://host:port`.
 */
export function parseEngineEndpoint(value: string): EngineAddress {
  if (value.startsWith('/')) return { socketPath: value };
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new DockerEndpointError(
      `expected unix:///path/to/docker.sock, tcp://host:port or http(s)://host:port, got ${JSON.stringify(value)}`,
    );
  }
  switch (u.protocol) {
    case 'unix:':
      if (!u.pathname.startsWith('/') || u.pathname === '/')
        throw new DockerEndpointError(`a unix endpoint needs an absolute path: ${value}`);
      return { socketPath: decodeURIComponent(u.pathname) };
    case 'tcp:':
      return { url: `http://${u.host}${u.pathname.replace(/\/$/, '')}` };
    case 'http:':
    case 'https:':
      return { url: `${u.protocol}//${u.host}${u.pathname.replace(/\/$/, '')}` };
    default:
      throw new DockerEndpointError(
        `${u.protocol} endpoints are not supported (unix:, tcp:, http:, https:): ${value}`,
      );
  }
}

const LIST_MAX_BYTES = 16 << 20;
/** Podman's own API, under the oldest version prefix it answers (4.0.0, as 4.x and 5.x do). */
const LIBPOD = '/v4.0.0/libpod';

export type EngineKind = 'docker' | 'podman';

/** The engine's time for never (a container not started, stats of one not running). */
export const ZERO_TIME = '0001-01-01T00:00:00Z';
const ONE_MAX_BYTES = 2 << 20;

export interface EventsQuery {
  /** Replay buffered events from this time on: seconds and nanoseconds, as the engine sent them. */
  sinceNano?: bigint;
  /** Event actions wanted (the `event` filter); all when absent. */
  actions?: readonly string[];
  /**
   * How long the engine may take to answer with its status and headers; past it the open
   * fails (an engine that accepts the connection and never answers). The stream itself,
   * once open, has no deadline: it is quiet for as long as nothing happens.
   */
  headersTimeoutMs?: number;
}

/** The engine accepted the connection and did not answer within the deadline. */
export class DockerTimeoutError extends Error {
  readonly code = 'LOOKOUT_DOCKER_TIMEOUT';
}

export class DockerClient {
  readonly address: EngineAddress;

  constructor(
    private readonly http: HttpClient,
    /** A DOCKER_HOST-style value (see parseEngineEndpoint). */
    readonly endpoint: string = DEFAULT_DOCKER_ENDPOINT,
  ) {
    this.address = parseEngineEndpoint(endpoint);
  }

  /** The unix socket's path, when the endpoint is one. */
  get socketPath(): string | undefined {
    return 'socketPath' in this.address ? this.address.socketPath : undefined;
  }

  private target(path: string): Endpoint {
    return 'socketPath' in this.address
      ? { socketPath: this.address.socketPath, path, host: 'docker' }
      : this.address.url + path;
  }

  private async call(
    method: HttpMethod,
    path: string,
    signal: AbortSignal,
    maxBodyBytes = ONE_MAX_BYTES,
  ): Promise<Buffer> {
    const res = await this.http.request(this.target(path), { method, signal, maxBodyBytes });
    if (res.status >= 300 && res.status !== 304) {
      let message = res.body.toString('utf8').slice(0, 500);
      try {
        message = (JSON.parse(message) as { message?: string }).message ?? message;
      } catch {
        // Not JSON (a proxy's own error page): its text is the message.
      }
      throw new DockerApiError(
        `${method} ${path.split('?')[0]}: HTTP ${res.status}: ${message.trim()}`,
        res.status,
      );
    }
    if (res.truncated)
      throw new DockerApiError(
        `${method} ${path.split('?')[0]}: answer longer than ${maxBodyBytes} bytes`,
        res.status,
      );
    return res.body;
  }

  private async json<T>(path: string, signal: AbortSignal, maxBodyBytes?: number): Promise<T> {
    return JSON.parse((await this.call('GET', path, signal, maxBodyBytes)).toString('utf8')) as T;
  }

  /** GET /_ping: the engine answers. */
  async ping(signal: AbortSignal): Promise<void> {
    await this.call('GET', '/_ping', signal);
  }

  /** GET /version: `Version`, `ApiVersion`, and `Components` (Podman names itself there). */
  async version(signal: AbortSignal): Promise<{
    Version: string;
    ApiVersion: string;
    Components?: { Name: string; Version: string }[];
  }> {
    return await this.json('/version', signal);
  }

  private kindOnce: Promise<EngineKind> | undefined;

  /**
   * Which engine answers: Podman names itself in /version's Components. Asked once; a
   * failed ask is asked again next time.
   */
  async kind(signal: AbortSignal): Promise<EngineKind> {
    this.kindOnce ??= this.version(signal).then((v) =>
      v.Components?.some((c) => /podman/i.test(c.Name)) ? 'podman' : 'docker',
    );
    try {
      return await this.kindOnce;
    } catch (err) {
      this.kindOnce = undefined;
      throw err;
    }
  }

  /**
   * Podman only: the container's `--health-on-failure` (none, kill, restart, stop), which
   * its compat inspect leaves out; read from its own (libpod) inspect. Undefined when the
   * answer has none (Podman before 4.3).
   */
  async healthOnFailure(id: string, signal: AbortSignal): Promise<string | undefined> {
    const r = await this.json<{ Config?: { HealthcheckOnFailureAction?: string } }>(
      `${LIBPOD}/containers/${encodeURIComponent(id)}/json`,
      signal,
    );
    return r.Config?.HealthcheckOnFailureAction || undefined;
  }

  /** Every container, stopped ones too. */
  async listContainers(signal: AbortSignal): Promise<ContainerSummary[]> {
    return await this.json('/containers/json?all=1', signal, LIST_MAX_BYTES);
  }

  async inspect(id: string, signal: AbortSignal): Promise<ContainerInspect> {
    return await this.json(`/containers/${encodeURIComponent(id)}/json`, signal);
  }

  /**
   * One reading of a container's counters, without the engine's second sample a second
   * later (`one-shot`: no precpu_stats). Engines that do not know one-shot (older Podman)
   * ignore it and take their own sample.
   */
  async stats(id: string, signal: AbortSignal): Promise<ContainerStats> {
    const body = await this.call(
      'GET',
      `/containers/${encodeURIComponent(id)}/stats?stream=false&one-shot=true`,
      signal,
    );
    // Podman answers a container that is not running with 200 and no body at all (Docker
    // with a zero `read` time): the same news, a container with nothing to read.
    if (body.length === 0) return { read: ZERO_TIME };
    return JSON.parse(body.toString('utf8')) as ContainerStats;
  }

  /** POST /containers/{id}/restart: stops (SIGTERM, then SIGKILL after timeoutSeconds) and starts. */
  async restart(id: string, opts: { timeoutSeconds?: number }, signal: AbortSignal): Promise<void> {
    await this.call(
      'POST',
      `/containers/${encodeURIComponent(id)}/restart${timeoutQuery(opts)}`,
      signal,
    );
  }

  /** POST /containers/{id}/stop; 304 (already stopped) is not an error. */
  async stop(id: string, opts: { timeoutSeconds?: number }, signal: AbortSignal): Promise<void> {
    await this.call(
      'POST',
      `/containers/${encodeURIComponent(id)}/stop${timeoutQuery(opts)}`,
      signal,
    );
  }

  /** POST /containers/{id}/start; 304 (already running) is not an error. */
  async start(id: string, signal: AbortSignal): Promise<void> {
    await this.call('POST', `/containers/${encodeURIComponent(id)}/start`, signal);
  }

  /** POST /containers/{id}/kill with a signal name (default SIGKILL). */
  async kill(id: string, opts: { signal?: string }, signal: AbortSignal): Promise<void> {
    const q = opts.signal ? `?signal=${encodeURIComponent(opts.signal)}` : '';
    await this.call('POST', `/containers/${encodeURIComponent(id)}/kill${q}`, signal);
  }

  /**
   * Opens the container event stream, from `sinceNano` on (the engine replays what it
   * still holds of the time before: its last 256 events, since it started). Resolves once
   * the engine has answered; the events are then read from the returned stream, which
   * ends when the engine closes it (a daemon restart) or the signal aborts.
   */
  async events(query: EventsQuery, signal: AbortSignal): Promise<EventStream> {
    const filters: Record<string, string[]> = { type: ['container'] };
    if (query.actions) filters.event = [...query.actions];
    let path = `/events?filters=${encodeURIComponent(JSON.stringify(filters))}`;
    if (query.sinceNano !== undefined) path += `&since=${nanoTimestamp(query.sinceNano)}`;
    const headers = new AbortController();
    const timer =
      query.headersTimeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              headers.abort(
                new DockerTimeoutError(
                  `GET /events: no answer within ${query.headersTimeoutMs} ms`,
                ),
              ),
            query.headersTimeoutMs,
          );
    let res;
    try {
      // The deadline's own signal is never aborted once the headers are in: the stream
      // then lives as long as the caller's signal.
      res = await this.http.stream(this.target(path), {
        signal: timer === undefined ? signal : AbortSignal.any([signal, headers.signal]),
      });
    } finally {
      clearTimeout(timer);
    }
    if (res.status !== 200) {
      const body = await readSome(res.body);
      res.destroy();
      throw new DockerApiError(`GET /events: HTTP ${res.status}: ${body.trim()}`, res.status);
    }
    return {
      close: () => res.destroy(),
      async *[Symbol.asyncIterator]() {
        try {
          let rest = '';
          // Decoded by the stream, so a character split between two chunks (in a label
          // value the engine copies into Attributes) is not turned into two U+FFFD.
          res.body.setEncoding('utf8');
          for await (const chunk of res.body as AsyncIterable<string>) {
            rest += chunk;
            let nl: number;
            while ((nl = rest.indexOf('\n')) >= 0) {
              const line = rest.slice(0, nl).trim();
              rest = rest.slice(nl + 1);
              if (line === '') continue;
              const event = parseEvent(line);
              if (event) yield event;
            }
            if (rest.length > 1 << 20) throw new Error('GET /events: a line longer than 1 MiB');
          }
        } finally {
          res.destroy();
        }
      },
    };
  }
}

/** An open event stream: iterate it for events; close() ends it. */
export interface EventStream extends AsyncIterable<EngineEvent> {
  close(): void;
}

function timeoutQuery(opts: { timeoutSeconds?: number }): string {
  return opts.timeoutSeconds === undefined
    ? ''
    : `?t=${Math.max(0, Math.round(opts.timeoutSeconds))}`;
}

/** `seconds.nanoseconds`, the form the engine's `since` takes without losing precision. */
export function nanoTimestamp(nano: bigint): string {
  const s = nano / 1_000_000_000n;
  const ns = nano % 1_000_000_000n;
  return `${s}.${ns.toString().padStart(9, '0')}`;
}

/** One line of /events; undefined for a line that is not an event (ignored, not fatal). */
export function parseEvent(line: string): EngineEvent | undefined {
  let raw: {
    Type?: string;
    Action?: string;
    status?: string;
    id?: string;
    Actor?: { ID?: string; Attributes?: Record<string, string> };
    time?: number;
  };
  try {
    raw = JSON.parse(line) as typeof raw;
  } catch {
    return undefined;
  }
  const action = raw.Action ?? raw.status;
  const id = raw.Actor?.ID ?? raw.id;
  if (typeof action !== 'string' || typeof id !== 'string') return undefined;
  // timeNano exceeds 2^53: read its digits from the text, not from the parsed number.
  const m = /"timeNano"\s*:\s*(\d+)/.exec(line);
  const time = typeof raw.time === 'number' ? raw.time : 0;
  const timeNano = m ? BigInt(m[1]!) : BigInt(time) * 1_000_000_000n;
  return {
    Type: raw.Type ?? 'container',
    Action: action,
    Actor: { ID: id, Attributes: raw.Actor?.Attributes ?? {} },
    time,
    timeNano,
  };
}

async function readSome(body: Readable): Promise<string> {
  let text = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      text += chunk.toString('utf8');
      if (text.length > 2000) break;
    }
  } catch {
    // The error status is the news; a body cut short adds nothing.
  }
  return text.slice(0, 2000);
}
