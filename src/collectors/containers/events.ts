/**
 * The containers collector's service: Docker's event stream, followed for as long as
 * lookout runs, counting OOM kills and (re)starts as they happen — between polls, and
 * whatever restarted the container (its restart policy, `docker restart`, the API), which
 * Docker's own RestartCount does not cover. After the stream ends (a daemon restart) it
 * is opened again from the last event's time, and events seen twice are counted once.
 */
import { existsSync } from 'node:fs';
import { Counter, Registry } from '../../lib/prom.js';
import {
  nanoTimestamp,
  type DockerClient,
  type EngineEvent,
  type EventStream,
} from '../../lib/docker.js';
import { errorText, type Logger } from '../../lib/log.js';
import { NothingToCollect, type CollectorService, type ServiceContext } from '../collector.js';
import { containerName } from './read.js';

/**
 * The event actions the service reads. `remove` is Podman's name for Docker's `destroy`
 * (its compat API sends Docker's name but filters by its own); Docker never sends it.
 */
export const EVENT_ACTIONS = ['start', 'die', 'oom', 'destroy', 'remove'] as const;
/** Keys of recent events remembered to drop a replayed one; the engine replays at most 256. */
const RECENT_KEYS = 1024;
/** A destroyed container's counters are kept this long, so a scrape still sees its last OOM. */
const KEEP_DESTROYED_MS = 15 * 60_000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 30_000;
/**
 * How far before the last event a re-open starts. Podman reads `since` as a float64 (about
 * 240 ns apart at today's Unix times), so opening at the last event's exact time may leave
 * it, and any event in the same rounding step, out of the replay; starting 1 ms earlier
 * makes the replay certain on both engines, and the recent keys drop what was counted.
 */
export const REOPEN_OVERLAP_NS = 1_000_000n;
/** The deadline for an engine's answer to a re-open when the collector gave none. */
const DEFAULT_OPEN_TIMEOUT_MS = 10_000;

/**
 * The default socket is not there (no Docker on this host): nothing to collect, known
 * from one access(2) instead of an HTTP request that fails to connect, on every refresh
 * of a host without Docker (a configured endpoint is always asked, and its absence is a failure).
 */
export function noDefaultSocket(docker: DockerClient, explicit: boolean): string | undefined {
  const path = docker.socketPath;
  return !explicit && path !== undefined && !existsSync(path)
    ? `no Docker socket at ${path}`
    : undefined;
}

export interface EventCounts {
  oomKills: number;
  restarts: number;
}

export interface EventServiceOptions {
  docker: DockerClient;
  /** The endpoint was configured: a missing socket is then a fault, not "no Docker here". */
  explicit: boolean;
  log: Logger;
  /**
   * How long opening the stream again may wait for the engine's answer (the collector's
   * timeout); past it the open failed and is tried again. The first open is start's, under
   * start's own deadline.
   */
  openTimeoutMs?: number;
}

export class ContainerEventService implements CollectorService {
  readonly registry = new Registry();
  private readonly oomKills = new Counter({
    name: 'lookout_container_oom_kills_total',
    help: "OOM kills in the container, counted from Docker's oom events since lookout started.",
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  private readonly restarts = new Counter({
    name: 'lookout_container_restarts_total',
    help: "Starts of the container after the first one lookout saw (a restart policy's, `docker restart`, an API restart), counted from Docker's events.",
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  /**
   * Container ids lookout has seen started, and the engine time (ns) up to which a start
   * is already known: the time of the listing that found it running (a start before that
   * is the one the listing saw), 0 once seen through the stream.
   */
  private readonly known = new Map<string, bigint>();
  private readonly recent = new Set<string>();
  private readonly destroyedAt = new Map<string, number>();
  private readonly counts = new Map<string, EventCounts>();
  private lastNano: bigint | undefined;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private connected = false;
  private reopened = 0;

  constructor(private readonly opts: EventServiceOptions) {}

  /** Counts so far by container name (status, tests). */
  countsByName(): ReadonlyMap<string, EventCounts> {
    return this.counts;
  }

  /**
   * Whether the stream is open now, how often it was opened again after it ended, the
   * newest event's time (`lastNano`) and the time a re-open starts from (`sinceNano`).
   */
  streamState(): { connected: boolean; reopened: number; lastNano?: bigint; sinceNano?: bigint } {
    return {
      connected: this.connected,
      reopened: this.reopened,
      lastNano: this.lastNano,
      sinceNano: this.reopenSince(),
    };
  }

  async start(ctx: ServiceContext): Promise<void> {
    const { docker } = this.opts;
    // From now: events before the stream opens are replayed by the engine, and a start
    // the listing below already saw is told apart by its time.
    const absent = noDefaultSocket(docker, this.opts.explicit);
    if (absent !== undefined) throw new NothingToCollect(absent);
    const since = BigInt(Date.now()) * 1_000_000n;
    let listed;
    try {
      listed = await docker.listContainers(ctx.signal);
    } catch (err) {
      throw this.nothingOr(err);
    }
    const listedAt = BigInt(Date.now()) * 1_000_000n;
    for (const c of listed) {
      if (c.State === 'running' || c.State === 'paused' || c.State === 'restarting')
        this.known.set(c.Id, listedAt);
    }
    this.lastNano = since;
    const abort = new AbortController();
    this.abort = abort;
    const onStartAbort = () => abort.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onStartAbort, { once: true });
    let stream: EventStream;
    try {
      // The first open is part of start: an engine that refuses the stream is a failed start.
      stream = await docker.events({ sinceNano: since, actions: EVENT_ACTIONS }, abort.signal);
    } catch (err) {
      throw this.nothingOr(err);
    } finally {
      ctx.signal.removeEventListener('abort', onStartAbort);
    }
    this.connected = true;
    this.loop = this.follow(stream, ctx, abort.signal);
    const sweep = setInterval(() => this.sweep(), 60_000);
    sweep.unref();
    abort.signal.addEventListener('abort', () => clearInterval(sweep), { once: true });
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await this.loop;
    this.connected = false;
  }

  private nothingOr(err: unknown): unknown {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' && !this.opts.explicit && this.opts.docker.socketPath)
      return new NothingToCollect(`no Docker socket at ${this.opts.docker.socketPath}`);
    return err;
  }

  private async follow(
    first: EventStream,
    ctx: ServiceContext,
    signal: AbortSignal,
  ): Promise<void> {
    let stream: EventStream | undefined = first;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!stream) {
          stream = await this.opts.docker.events(
            {
              sinceNano: this.reopenSince(),
              actions: EVENT_ACTIONS,
              headersTimeoutMs: this.opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS,
            },
            signal,
          );
          this.connected = true;
          this.reopened++;
          failures = 0;
          ctx.healthy();
          this.opts.log.info('docker event stream opened again', {
            since: this.lastNano === undefined ? undefined : nanoTimestamp(this.reopenSince()!),
          });
        }
        for await (const event of stream) this.handle(event);
        if (signal.aborted) break;
        this.opts.log.info('docker event stream ended (daemon restarting?); opening it again');
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        this.opts.log.debug('docker event stream failed', { err: errorText(err) });
        // One failed open is a daemon restarting; several in a row (some seconds) is a fault.
        if (failures >= 4) ctx.fault(err);
      }
      stream?.close();
      stream = undefined;
      this.connected = false;
      await sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(failures, 8)), signal);
    }
    stream?.close();
    this.connected = false;
  }

  private reopenSince(): bigint | undefined {
    return this.lastNano === undefined ? undefined : this.lastNano - REOPEN_OVERLAP_NS;
  }

  /** One event: counted once, whatever number of times the engine sends it. */
  handle(event: EngineEvent): void {
    const key = `${event.timeNano} ${event.Actor.ID} ${event.Action}`;
    if (this.recent.has(key)) return;
    this.recent.add(key);
    if (this.recent.size > RECENT_KEYS) {
      const oldest = this.recent.values().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    if (this.lastNano === undefined || event.timeNano > this.lastNano)
      this.lastNano = event.timeNano;
    const id = event.Actor.ID;
    const name = event.Actor.Attributes?.name ?? containerName({ Id: id, Names: [] as string[] });
    const counts = this.countsOf(name);
    switch (event.Action) {
      case 'oom':
        this.oomKills.inc({ name });
        counts.oomKills++;
        break;
      case 'start': {
        const knownUntil = this.known.get(id);
        if (knownUntil !== undefined && event.timeNano > knownUntil) {
          this.restarts.inc({ name });
          counts.restarts++;
        }
        this.known.set(id, 0n);
        this.destroyedAt.delete(name);
        break;
      }
      case 'destroy':
      case 'remove':
        this.known.delete(id);
        this.destroyedAt.set(name, Date.now());
        break;
    }
  }

  private countsOf(name: string): EventCounts {
    let c = this.counts.get(name);
    if (!c) {
      c = { oomKills: 0, restarts: 0 };
      this.counts.set(name, c);
      // Both series from the first event on, at 0, so a first OOM is an increase.
      this.oomKills.inc({ name }, 0);
      this.restarts.inc({ name }, 0);
    }
    return c;
  }

  /**
   * The names the engine listed at a refresh. A name with event series that the engine no
   * longer lists is gone although no destroy event said so (one missed while the stream
   * was down, a `docker rename`): it is swept as a destroyed one is. A listed one never is.
   */
  present(names: ReadonlySet<string>, now = Date.now()): void {
    for (const name of this.counts.keys()) {
      if (names.has(name)) this.destroyedAt.delete(name);
      else if (!this.destroyedAt.has(name)) this.destroyedAt.set(name, now);
    }
  }

  /**
   * Drops the series of containers destroyed (or gone from the list) a while ago and not
   * listed or started again under their name. Run every minute while the stream is open.
   */
  sweep(now = Date.now()): void {
    for (const [name, at] of this.destroyedAt) {
      if (now - at < KEEP_DESTROYED_MS) continue;
      this.destroyedAt.delete(name);
      this.counts.delete(name);
      this.oomKills.remove({ name });
      this.restarts.remove({ name });
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
