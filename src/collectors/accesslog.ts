/**
 * The access-log collector: tails web server access logs (src/lib/tail.ts) and counts
 * requests by code, method and route, response bytes, and request durations into a
 * histogram. A service: the counters live in memory from start-up; a scrape renders them
 * and never reads a file. It keeps how far it read each log in its state directory, for
 * `lookout status`.
 *
 * The hot loop (one line) is one regex match, a Map lookup for the method, an integer
 * key for the series, and for lines with a duration a bucket search and two adds into the
 * log's own histogram series (src/lib/constmetric.ts); the counters take the counts the
 * lines added when /metrics is rendered (their collect()), so the per-line path makes no
 * label hash.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Registry } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import { regexSource } from '../config/regex.js';
import { ConstHistogram, type HistogramSeries } from '../lib/constmetric.js';
import { errorText, type Logger } from '../lib/log.js';
import { type StateReporter } from '../lib/storage.js';
import { forEachLine, Tail, type TailPosition } from '../lib/tail.js';
import {
  checkPattern,
  emptyRequest,
  FORMATS,
  hasTiming,
  parserFor,
  type Format,
  type Parser,
  type Request,
} from './accesslog/parse.js';
import {
  collectorSchema,
  registerCollector,
  type ServiceCollector,
  type ServiceContext,
} from './collector.js';

/** Methods kept as label values; any other is `other` (a scanner's junk, WebDAV verbs). */
export const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'CONNECT',
  'TRACE',
] as const;
const METHOD_LABELS = [...METHODS, 'other'];
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]));
const OTHER_METHOD = METHODS.length;

/** Routes per log, at most: each is a label value, so the set must stay small. */
export const MAX_ROUTES = 50;
/** Malformed lines logged in full per log before the rate limit applies. */
const MALFORMED_LOGGED_FIRST = 5;
/** After those, at most one summary line per log per this many ms. */
const MALFORMED_LOG_EVERY_MS = 60_000;

/** Default buckets: Prometheus's, with 0.5 s and 2 s as edges (the latency alerts' thresholds). */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

const LABEL_VALUE = /^[A-Za-z0-9_.:-]{1,64}$/;

const routeSchema = z.strictObject({
  name: z
    .string()
    .regex(LABEL_VALUE, 'expected 1-64 letters, digits, _ . : -')
    .describe('The `route` label value for requests whose path matches.'),
  match: regexSource('a request path (without its query string)').describe(
    'A regular expression tested against the path without its query string, e.g. "^/api/users/[0-9]+$". The first route that matches wins.',
  ),
});

const logSchema = z
  .strictObject({
    name: z
      .string()
      .regex(LABEL_VALUE, 'expected 1-64 letters, digits, _ . : -')
      .describe('The `log` label value, e.g. "web".'),
    path: z
      .string()
      .startsWith('/', 'expected an absolute path, e.g. /var/log/nginx/access.log')
      .describe(
        'The access log file. It may not exist yet; lookout starts at its end and follows it through rotation.',
      ),
    format: z
      .enum(FORMATS)
      .default('combined_timing')
      .describe(
        'combined (nginx and Apache default, no durations), combined_timing (combined plus $request_time $upstream_response_time: the log_format lookout ships), json (escape=json lines), or pattern (a regular expression in `pattern`).',
      ),
    pattern: regexSource('an access log line')
      .optional()
      .describe(
        'For format: pattern — a regular expression with named groups: status (required), method, path or request, bytes, seconds or milliseconds.',
      ),
    routes: z
      .array(routeSchema)
      .max(MAX_ROUTES)
      .default([])
      .describe(
        'Optional route grouping: requests are labelled with the first matching route, others with route="other". Without routes, there is no route label.',
      ),
  })
  .superRefine((log, ctx) => {
    if (log.format === 'pattern') {
      const problem =
        log.pattern === undefined ? 'required when format is pattern' : checkPattern(log.pattern);
      if (problem) ctx.addIssue({ code: 'custom', path: ['pattern'], message: problem });
    } else if (log.pattern !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: `only used with format: pattern (format is ${log.format}); remove it or set format: pattern`,
      });
    }
    const names = new Set<string>();
    log.routes.forEach((r, i) => {
      if (r.name === 'other' || names.has(r.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'name'],
          message: `"${r.name}" is used twice or is the reserved "other"; give each route its own name`,
        });
      }
      names.add(r.name);
    });
  });

export const accesslogSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '5s' },
  {
    logs: z
      .array(logSchema)
      .default([])
      .superRefine((logs, ctx) => {
        const seen = new Set<string>();
        logs.forEach((l, i) => {
          if (seen.has(l.name)) {
            ctx.addIssue({
              code: 'custom',
              path: [i, 'name'],
              message: `"${l.name}" names two logs; each log needs its own name`,
            });
          }
          seen.add(l.name);
        });
      })
      .describe('The access logs to follow; none by default.'),
    buckets: z
      .array(z.number().positive())
      .min(1)
      .default(DEFAULT_BUCKETS)
      .refine((b) => b.every((v, i) => i === 0 || v > b[i - 1]!), {
        message: 'expected bucket bounds in increasing order, e.g. [0.1, 0.5, 1, 2]',
      })
      .describe(
        'Upper bounds (seconds) of lookout_http_request_duration_seconds buckets; keep 0.5 and 2 for the shipped latency alerts.',
      ),
    poll_interval: duration
      .prefault('1s')
      .describe(
        'How often each log is checked for new lines and rotation when no inotify event says so (the fallback; appends are usually seen at once).',
      ),
  },
);

export type AccesslogConfig = z.output<typeof accesslogSchema>;
export type LogConfig = AccesslogConfig['logs'][number];

/**
 * Everything counted for one log. Request, byte and line counts are plain numbers on the
 * per-line path and reach their prom-client counters, as increments, in the counters'
 * collect() when /metrics is rendered; durations go to the log's histogram series as they
 * are read.
 */
export class LogCounts {
  readonly name: string;
  readonly timed: boolean;
  private readonly parse: Parser;
  private readonly routes: { name: string; re: RegExp }[];
  private readonly req: Request = emptyRequest();
  /** Requests not yet handed to the counter, by key = (route * 16 + method) * 1000 + code. */
  readonly pendingRequests = new Map<number, number>();
  /** The counter's labels for each key seen: built once per series, not once per scrape. */
  private readonly labelsByKey = new Map<number, Record<string, string>>();
  /** Where durations go: this log's histogram series, for a timed log (accesslogRegistry). */
  durations: HistogramSeries | undefined;
  pendingBytes = 0;
  parsed = 0;
  malformed = 0;
  reportedParsed = 0;
  reportedMalformed = 0;
  private malformedLogged = 0;
  private malformedSinceReport = 0;
  private lastReason = '';
  private lastReportAt = 0;

  constructor(
    cfg: LogConfig,
    readonly bounds: readonly number[],
    private readonly log: Logger,
  ) {
    this.name = cfg.name;
    this.timed = hasTiming(cfg.format as Format, cfg.pattern);
    this.parse = parserFor(cfg.format as Format, cfg.pattern);
    this.routes = cfg.routes.map((r) => ({ name: r.name, re: new RegExp(r.match) }));
  }

  get routed(): boolean {
    return this.routes.length > 0;
  }

  /** The counter's labels for a request key. */
  requestLabels(key: number): Record<string, string> {
    let labels = this.labelsByKey.get(key);
    if (labels === undefined) {
      const code = key % 1000;
      const rm = (key - code) / 1000;
      labels = { log: this.name, code: String(code), method: METHOD_LABELS[rm % 16]! };
      if (this.routed) {
        const route = Math.floor(rm / 16);
        labels.route = route < this.routes.length ? this.routes[route]!.name : 'other';
      }
      this.labelsByKey.set(key, labels);
    }
    return labels;
  }

  /** Counts every line of a block of complete lines (each ending in "\n"). */
  readonly onLines = (block: string): void => forEachLine(block, (text) => this.line(text));

  line(text: string): void {
    const r = this.req;
    const reason = this.parse(text, r);
    if (reason !== undefined) {
      this.malformedLine(reason, text);
      return;
    }
    this.parsed++;
    const method = METHOD_INDEX.get(r.method) ?? OTHER_METHOD;
    let route = 0;
    if (this.routes.length > 0) {
      const routes = this.routes;
      while (route < routes.length && !routes[route]!.re.test(r.path)) route++;
    }
    const key = (route * 16 + method) * 1000 + r.status;
    this.pendingRequests.set(key, (this.pendingRequests.get(key) ?? 0) + 1);
    this.pendingBytes += r.bytes;
    // NaN (the line has no duration) and Infinity (a 309-digit $request_time) are not
    // counted by observe().
    this.durations?.observe(r.seconds);
  }

  /** A line the tail had to cut (longer than its limit). */
  overlong(): void {
    this.malformedLine('longer than the longest line kept (64 KiB); cut', '');
  }

  private malformedLine(reason: string, text: string): void {
    this.malformed++;
    if (this.malformedLogged < MALFORMED_LOGGED_FIRST) {
      this.malformedLogged++;
      this.log.warn('malformed access log line', {
        log: this.name,
        reason,
        // Query strings can carry tokens (reset links, API keys): the log shows none.
        line: withoutQueries(text.length > 300 ? `${text.slice(0, 300)}...` : text),
        ...(this.malformedLogged === MALFORMED_LOGGED_FIRST
          ? { note: `further malformed lines are summarised at most once a minute` }
          : {}),
      });
      this.lastReportAt = Date.now();
      return;
    }
    this.malformedSinceReport++;
    this.lastReason = reason;
    const now = Date.now();
    if (now - this.lastReportAt >= MALFORMED_LOG_EVERY_MS) {
      this.log.warn('malformed access log lines', {
        log: this.name,
        count: this.malformedSinceReport,
        last_reason: this.lastReason,
      });
      this.malformedSinceReport = 0;
      this.lastReportAt = now;
    }
  }
}

/**
 * The registry with the four families for these logs: its metric objects are made here,
 * once, and live as long as the collector. The counters take what the logs counted since
 * the last render through their collect() (labels().inc() by the difference), so a
 * series counts from start-up and only goes up; durations are observed into each log's
 * histogram series as lines are read. No label set goes away while the collector runs: a log's series exist from its
 * first request until the process ends.
 */
export function accesslogRegistry(logs: readonly LogCounts[], bounds: readonly number[]): Registry {
  const registry = new Registry();
  // No logs configured (the default): no families at all, rather than four empty ones on
  // every host's /metrics.
  if (logs.length === 0) return registry;
  const registers = [registry];
  new Counter({
    name: 'lookout_http_requests_total',
    help: 'Requests in the access log by status code, method (unknown ones as other) and route (only where routes are configured).',
    labelNames: ['log', 'code', 'method', 'route'],
    registers,
    collect() {
      for (const l of logs) {
        for (const [key, n] of l.pendingRequests) this.inc(l.requestLabels(key), n);
        l.pendingRequests.clear();
      }
    },
  });
  const duration = new ConstHistogram({
    name: 'lookout_http_request_duration_seconds',
    help: 'Request durations from the access log ($request_time), for logs whose format has them.',
    labelNames: ['log'],
    buckets: [...bounds],
    registers,
  });
  const bytes = new Counter({
    name: 'lookout_http_response_bytes_total',
    help: 'Response body bytes in the access log ($body_bytes_sent).',
    labelNames: ['log'],
    registers,
    collect() {
      for (const l of logs) {
        this.inc({ log: l.name }, l.pendingBytes);
        l.pendingBytes = 0;
      }
    },
  });
  const lines = new Counter({
    name: 'lookout_accesslog_lines_total',
    help: 'Access log lines read, by result: parsed, or malformed (counted, not used; the first few are logged with the reason).',
    labelNames: ['log', 'result'],
    registers,
    collect() {
      for (const l of logs) {
        this.inc({ log: l.name, result: 'parsed' }, l.parsed - l.reportedParsed);
        this.inc({ log: l.name, result: 'malformed' }, l.malformed - l.reportedMalformed);
        l.reportedParsed = l.parsed;
        l.reportedMalformed = l.malformed;
      }
    },
  });
  for (const l of logs) {
    // Present at 0 from the start, as a counter should be, so the first lines are an increase.
    bytes.inc({ log: l.name }, 0);
    lines.inc({ log: l.name, result: 'parsed' }, 0);
    lines.inc({ log: l.name, result: 'malformed' }, 0);
    if (l.timed) l.durations = duration.labels({ log: l.name });
  }
  return registry;
}

/** What the accesslog collector keeps in its state directory: how far each log was read. */
interface SavedPositions {
  saved: string;
  logs: Record<string, { path: string; position: TailPosition }>;
}

const POSITIONS_FILE = 'positions.json';

/** Writes the file whole or not at all: a reader never sees half of it. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { mode: 0o640 });
  await rename(tmp, path);
}

/** `lookout status`'s lines: each log's saved position against the file at its path now. */
async function describePositions(dir: string, logs: readonly LogConfig[]): Promise<string[]> {
  let saved: SavedPositions | undefined;
  try {
    saved = JSON.parse(await readFile(join(dir, POSITIONS_FILE), 'utf8')) as SavedPositions;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return Promise.all(
    logs.map(async (l) => {
      const p = saved?.logs[l.name]?.position;
      if (!saved || !p) return `${l.name} ${l.path}: no read position saved yet`;
      const at = `read to byte ${p.offset}`;
      const when = `saved ${saved.saved}`;
      const st = await stat(l.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!st || st.dev !== p.dev || st.ino !== p.ino)
        return `${l.name} ${l.path}: ${at} of a file rotated away since (inode ${p.ino}), ${when}`;
      return `${l.name} ${l.path}: ${at} of ${st.size} (${Math.max(0, st.size - p.offset)} behind), ${when}`;
    }),
  );
}

registerCollector({
  name: 'accesslog',
  description:
    'web server access logs, tailed: requests by code, method and route, bytes, a duration histogram',
  metrics: [
    'lookout_http_requests_total',
    'lookout_http_request_duration_seconds',
    'lookout_http_response_bytes_total',
    'lookout_accesslog_lines_total',
  ],
  schema: accesslogSchema,
  create(ctx): ServiceCollector & StateReporter {
    const cfg = ctx.config;
    const logs = cfg.logs.map((l) => new LogCounts(l, cfg.buckets, ctx.log));
    const registry = accesslogRegistry(logs, cfg.buckets);
    let tails: Tail[] = [];
    let saver: NodeJS.Timeout | undefined;
    let lastSaved = '';
    /**
     * How far each log was read, for `lookout status` (an operator's "is lookout behind
     * on this log?"). Not a place to resume from: the counters start at 0 with the
     * process, and lines written while lookout was down would all land in its first
     * scrape, so a start is at the logs' ends, as before.
     */
    const savePositions = async (dir: string) => {
      const entries = tails.flatMap((t, i) => {
        const position = t.position();
        return position ? [[cfg.logs[i]!.name, { path: t.path, position }] as const] : [];
      });
      const key = JSON.stringify(entries);
      if (key === lastSaved) return;
      const saved: SavedPositions = {
        saved: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        logs: Object.fromEntries(entries),
      };
      await writeAtomically(join(dir, POSITIONS_FILE), JSON.stringify(saved) + '\n');
      lastSaved = key;
    };
    return {
      async describeState() {
        if (cfg.logs.length === 0) return [];
        return describePositions(await ctx.stateDirectory(), cfg.logs);
      },
      service: {
        registry,
        async start(sctx: ServiceContext) {
          const failing = new Map<string, string>();
          const update = () => {
            if (failing.size === 0) sctx.healthy();
            else sctx.fault(new Error([...failing].map(([p, e]) => `${p}: ${e}`).join('; ')));
          };
          const dir = cfg.logs.length > 0 ? await ctx.stateDirectory() : undefined;
          tails = cfg.logs.map((l, i) => {
            const counts = logs[i]!;
            return new Tail(l.path, {
              // Counted in memory, nothing to commit: acknowledged as soon as it returns —
              // even when counting threw, or the tail would hand the same block over again
              // for good.
              onLines: (block) => {
                try {
                  counts.onLines(block);
                } catch (err) {
                  sctx.log.error('counting access log lines failed', {
                    log: l.name,
                    err: errorText(err),
                  });
                }
              },
              onOverlong: () => counts.overlong(),
              onError: (err) => {
                // The tail retries on every poll: report a fault once, not once a second.
                const text = errorText(err);
                if (failing.get(l.path) === text) return;
                failing.set(l.path, text);
                update();
              },
              onRecovered: () => {
                failing.delete(l.path);
                update();
              },
              pollMs: cfg.poll_interval,
              // nginx escapes bytes past ASCII in its default format, so latin1 (V8's
              // one-byte strings) is exact there and cheapest; JSON and patterns get utf8.
              encoding:
                l.format === 'combined' || l.format === 'combined_timing' ? 'latin1' : 'utf8',
            });
          });
          await Promise.all(tails.map((t) => t.start()));
          if (dir !== undefined) {
            const save = () =>
              savePositions(dir).catch((err: unknown) =>
                sctx.log.warn('cannot save the access logs read positions', {
                  err: errorText(err),
                }),
              );
            await save();
            saver = setInterval(() => void save(), cfg.interval);
            saver.unref();
          }
          sctx.log.info('following access logs', {
            logs: cfg.logs.map((l) => `${l.name}=${l.path}`).join(','),
          });
        },
        async stop() {
          clearInterval(saver);
          saver = undefined;
          const running = tails;
          await Promise.all(running.map((t) => t.stop()));
          if (running.length > 0 && ctx.stateMode === 'read-write') {
            await savePositions(await ctx.stateDirectory());
          }
          tails = [];
        },
      },
    };
  },
});

/** A log line with every query string cut to `?…`. */
function withoutQueries(line: string): string {
  return line.replace(/\?[^\s"]*/g, '?…');
}
