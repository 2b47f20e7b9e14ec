/**
 * The access-log collector: tails web server access logs (src/lib/tail.ts) and counts
 * requests by code, method and route, response bytes, and request durations into a
 * histogram. Streaming: the counters live in memory from start-up; a scrape renders them
 * and never reads a file.
 *
 * The hot loop (one line) is one regex match, a Map lookup for the method, an integer
 * key for the series and a linear walk of the buckets; the prom-client metric objects
 * only turn those plain numbers into samples when /metrics is rendered.
 */
import { Counter, Histogram, Registry, type MetricType } from 'prom-client';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import { regexSource } from '../config/regex.js';
import { errorText, type Logger } from '../lib/log.js';
import { forEachLine, Tail } from '../lib/tail.js';
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

/** Everything counted for one log: plain numbers, turned into samples at render time. */
export class LogCounts {
  readonly name: string;
  readonly timed: boolean;
  private readonly parse: Parser;
  private readonly routes: { name: string; re: RegExp }[];
  private readonly req: Request = emptyRequest();
  /** Requests by key = (route * 16 + method) * 1000 + code. */
  readonly requests = new Map<number, number>();
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly buckets: Float64Array;
  durationSum = 0;
  durationCount = 0;
  bytes = 0;
  parsed = 0;
  malformed = 0;
  private malformedLogged = 0;
  private malformedSinceReport = 0;
  private lastReason = '';
  private lastReportAt = 0;

  constructor(
    cfg: LogConfig,
    private readonly bounds: readonly number[],
    private readonly log: Logger,
  ) {
    this.name = cfg.name;
    this.timed = hasTiming(cfg.format as Format, cfg.pattern);
    this.parse = parserFor(cfg.format as Format, cfg.pattern);
    this.routes = cfg.routes.map((r) => ({ name: r.name, re: new RegExp(r.match) }));
    this.buckets = new Float64Array(bounds.length + 1);
  }

  get routed(): boolean {
    return this.routes.length > 0;
  }

  /** The route labels by index; `other` is last. */
  routeLabels(): string[] {
    return [...this.routes.map((r) => r.name), 'other'];
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
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    this.bytes += r.bytes;
    const s = r.seconds;
    if (s === s) {
      // not NaN
      const bounds = this.bounds;
      let b = 0;
      while (b < bounds.length && s > bounds[b]!) b++;
      this.buckets[b]!++;
      this.durationSum += s;
      this.durationCount++;
    }
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

type Sample = { labels: Record<string, string>; value: number; metricName?: string };

/**
 * A prom-client metric whose samples come from a function at render time: the counts
 * live in LogCounts as plain numbers, so the per-line path never touches prom-client.
 */
const noCollect = (): void => undefined;
// prom-client's types declare the type field as an enum; at run time it is this string.
const metricType = (t: 'counter' | 'histogram') => t as unknown as MetricType;

class RenderedCounter extends Counter<string> {
  constructor(
    private readonly cfg: {
      name: string;
      help: string;
      labelNames: string[];
      registers: Registry[];
    },
    private readonly samples: () => Sample[],
  ) {
    super(cfg);
  }
  override async get() {
    const { name, help } = this.cfg;
    return {
      name,
      help,
      type: metricType('counter'),
      aggregator: 'sum' as const,
      collect: noCollect,
      values: this.samples(),
    };
  }
}

class RenderedHistogram extends Histogram<string> {
  constructor(
    private readonly cfg: {
      name: string;
      help: string;
      labelNames: string[];
      buckets: number[];
      registers: Registry[];
    },
    private readonly samples: () => Sample[],
  ) {
    super(cfg);
  }
  override async get() {
    const { name, help } = this.cfg;
    const values = this.samples() as (Sample & { metricName: string })[];
    return {
      name,
      help,
      type: metricType('histogram'),
      aggregator: 'sum' as const,
      collect: noCollect,
      values,
    };
  }
  // The registry renders a histogram through this one when it has it (prom-client 15).
  async getForPromString() {
    return this.get();
  }
}

export function requestSamples(logs: readonly LogCounts[]): Sample[] {
  const out: Sample[] = [];
  for (const l of logs) {
    const routes = l.routeLabels();
    const keys = [...l.requests.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const code = key % 1000;
      const rm = (key - code) / 1000;
      const method = METHOD_LABELS[rm % 16]!;
      const labels: Record<string, string> = { log: l.name, code: String(code), method };
      if (l.routed) labels.route = routes[Math.floor(rm / 16)]!;
      out.push({ labels, value: l.requests.get(key)! });
    }
  }
  return out;
}

export function durationSamples(logs: readonly LogCounts[], bounds: readonly number[]): Sample[] {
  const name = 'lookout_http_request_duration_seconds';
  const out: Sample[] = [];
  for (const l of logs) {
    if (!l.timed) continue;
    let cumulative = 0;
    for (let b = 0; b <= bounds.length; b++) {
      cumulative += l.buckets[b]!;
      out.push({
        metricName: `${name}_bucket`,
        labels: { log: l.name, le: b < bounds.length ? String(bounds[b]) : '+Inf' },
        value: cumulative,
      });
    }
    out.push({ metricName: `${name}_sum`, labels: { log: l.name }, value: l.durationSum });
    out.push({ metricName: `${name}_count`, labels: { log: l.name }, value: l.durationCount });
  }
  return out;
}

/** The registry with the four families, rendering from these logs' counts. */
export function accesslogRegistry(logs: readonly LogCounts[], bounds: readonly number[]): Registry {
  const registry = new Registry();
  // No logs configured (the default): no families at all, rather than four empty ones on
  // every host's /metrics.
  if (logs.length === 0) return registry;
  const registers = [registry];
  new RenderedCounter(
    {
      name: 'lookout_http_requests_total',
      help: 'Requests in the access log by status code, method (unknown ones as other) and route (only where routes are configured).',
      labelNames: ['log', 'code', 'method', 'route'],
      registers,
    },
    () => requestSamples(logs),
  );
  new RenderedHistogram(
    {
      name: 'lookout_http_request_duration_seconds',
      help: 'Request durations from the access log ($request_time), for logs whose format has them.',
      labelNames: ['log'],
      buckets: [...bounds],
      registers,
    },
    () => durationSamples(logs, bounds),
  );
  new RenderedCounter(
    {
      name: 'lookout_http_response_bytes_total',
      help: 'Response body bytes in the access log ($body_bytes_sent).',
      labelNames: ['log'],
      registers,
    },
    () => logs.map((l) => ({ labels: { log: l.name }, value: l.bytes })),
  );
  new RenderedCounter(
    {
      name: 'lookout_accesslog_lines_total',
      help: 'Access log lines read, by result: parsed, or malformed (counted, not used; the first few are logged with the reason).',
      labelNames: ['log', 'result'],
      registers,
    },
    () =>
      logs.flatMap((l) => [
        { labels: { log: l.name, result: 'parsed' }, value: l.parsed },
        { labels: { log: l.name, result: 'malformed' }, value: l.malformed },
      ]),
  );
  return registry;
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
  create(ctx): ServiceCollector {
    const cfg = ctx.config;
    const logs = cfg.logs.map((l) => new LogCounts(l, cfg.buckets, ctx.log));
    const registry = accesslogRegistry(logs, cfg.buckets);
    let tails: Tail[] = [];
    return {
      service: {
        registry,
        async start(sctx: ServiceContext) {
          const failing = new Map<string, string>();
          const update = () => {
            if (failing.size === 0) sctx.healthy();
            else sctx.fault(new Error([...failing].map(([p, e]) => `${p}: ${e}`).join('; ')));
          };
          tails = cfg.logs.map((l, i) => {
            const counts = logs[i]!;
            return new Tail(l.path, {
              onLines: counts.onLines,
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
          sctx.log.info('following access logs', {
            logs: cfg.logs.map((l) => `${l.name}=${l.path}`).join(','),
          });
        },
        async stop() {
          const running = tails;
          tails = [];
          await Promise.all(running.map((t) => t.stop()));
        },
      },
    };
  },
});

/** A log line with every query string cut to `?…`. */
function withoutQueries(line: string): string {
  return line.replace(/\?[^\s"]*/g, '?…');
}
