/**
 * Probes: does each configured endpoint answer right now, correctly and in time — HTTP(S),
 * TCP, Redis, PostgreSQL, SQLite. blackbox_exporter's questions, asked from lookout's
 * background refresh: every target through one fan-out with its own deadline, so a
 * blackholed target costs only its own timeout, and /metrics serves the last round at
 * once. Consecutive failures are counted here, across refreshes, for "failing N times
 * in a row" alerts.
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import { duration, formatDuration } from '../config/duration.js';
import { regexSource } from '../config/regex.js';
import { Fanout, timedOut, whyNot, type TargetResult } from '../lib/fanout.js';
import type { HttpClient } from '../lib/http.js';
import type { Logger } from '../lib/log.js';
import { probeHttp, type HttpProbe } from '../lib/probe-http.js';
import { loadPg, probePostgres } from '../lib/probe-postgres.js';
import { probeRedis } from '../lib/probe-redis.js';
import { probeSqlite, sqliteAvailable, sqliteUnavailableMessage } from '../lib/probe-sqlite.js';
import { isAddress, probeTcp, type ProbeOutcome } from '../lib/probe-tcp.js';
import {
  collectorSchema,
  registerCollector,
  type PolledCollector,
  type TargetCheck,
  type CollectContext,
} from './collector.js';

export const KINDS = ['http', 'tcp', 'redis', 'postgres', 'sqlite'] as const;
export type Kind = (typeof KINDS)[number];

/** Keys per Redis target: each is a series, and the config is the only bound on them. */
const MAX_LIST_KEYS = 32;
/** How long a probe may take to return after its abort before it is logged as hung. */
const HUNG_GRACE_MS = 1000;

const address = z
  .string()
  .refine(isAddress, { message: 'expected host:port, e.g. "127.0.0.1:6379" or "[::1]:6379"' });

const common = {
  name: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe(
      'The `target` label; default the URL, address or path. Give one when the default would hold something you would rather not show, or is not unique.',
    ),
  timeout: duration
    .optional()
    .describe(
      "How long this target may take to answer; default, and at most, the collector's timeout (as blackbox_exporter takes the scrape's). A target that does not answer in time fails this round.",
    ),
};

/** One expected status: a code (200) or a class ("2xx"). */
const statusPattern = z.union([
  z.number().int().min(100).max(599),
  z
    .string()
    .regex(/^[1-5]xx$/, { message: 'expected a status code like 200 or a class like "2xx"' }),
]);

const httpTarget = z.strictObject({
  kind: z.literal('http'),
  ...common,
  url: z
    .url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' })
    .refine((u) => {
      const { username, password } = new URL(u);
      return username === '' && password === '';
    }, 'a user or password in the URL would be shown in the target label and logs; put it in headers (Authorization) instead')
    .describe('The URL to request.'),
  method: z
    .enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'])
    .default('GET')
    .describe('HTTP method.'),
  headers: z.record(z.string(), z.string()).default({}).describe('Request headers.'),
  body: z.string().optional().describe('Request body (for POST/PUT/PATCH).'),
  expected_status: z
    .array(statusPattern)
    .min(1)
    .default(['2xx'])
    .describe(
      'Status codes that count as success: codes (200, 301) and classes ("2xx"); default any 2xx, as blackbox_exporter.',
    ),
  body_regex: regexSource('the response body')
    .optional()
    .describe('When set, the body (its first MiB) must match this regular expression.'),
  follow_redirects: z
    .boolean()
    .default(true)
    .describe(
      'Follow redirects (at most 10) and judge the final response, as blackbox_exporter does by default; false judges the first response itself (a 301 you expect).',
    ),
});

const tcpTarget = z.strictObject({
  kind: z.literal('tcp'),
  ...common,
  address: address.describe('host:port to connect to.'),
});

const redisTarget = z.strictObject({
  kind: z.literal('redis'),
  ...common,
  address: address.describe('host:port of the Redis server.'),
  username: z.string().min(1).optional().describe('ACL user name (Redis 6+); needs password_file.'),
  password_file: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding the password for AUTH (read at each probe; a trailing newline is dropped).',
    ),
  db: z.number().int().min(0).default(0).describe('Database number to SELECT for list_keys.'),
  list_keys: z
    .array(z.string().min(1))
    .max(MAX_LIST_KEYS)
    .default([])
    .describe(
      `Keys whose LLEN is exported as lookout_redis_list_length{target,key} (queue depth); at most ${MAX_LIST_KEYS}. A missing key is 0.`,
    ),
});

const postgresTarget = z.strictObject({
  kind: z.literal('postgres'),
  ...common,
  connection_string: z
    .string()
    .min(1)
    .optional()
    .describe(
      'libpq connection string or URL without a password, e.g. "postgres://lookout@127.0.0.1:5432/app?sslmode=require".',
    ),
  connection_string_file: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding the whole connection string (password included), instead of connection_string.',
    ),
  password_file: z
    .string()
    .min(1)
    .optional()
    .describe('File holding the password (read at each probe; a trailing newline is dropped).'),
  query: z
    .string()
    .min(1)
    .default('select 1')
    .describe(
      'One SQL statement, run in a read-only transaction; its time is what a slow database shows.',
    ),
});

const sqliteTarget = z.strictObject({
  kind: z.literal('sqlite'),
  ...common,
  path: z.string().min(1).describe('Database file, opened read-only.'),
  query: z.string().min(1).default('select 1').describe('One SQL statement, run read-only.'),
});

const target = z.discriminatedUnion(
  'kind',
  [httpTarget, tcpTarget, redisTarget, postgresTarget, sqliteTarget],
  { error: `expected one of ${KINDS.map((k) => JSON.stringify(k)).join(', ')}` },
);
export type ProbeTargetConfig = z.output<typeof target>;

/** A password in a connection string: `postgres://u:pw@h` or `password=pw`. */
function hasPassword(conn: string): boolean {
  if (/^postgres(ql)?:\/\//.test(conn)) {
    try {
      return new URL(conn).password !== '' || new URL(conn).searchParams.has('password');
    } catch {
      return false; // not a URL pg can read either: left to pg, which says why at probe time
    }
  }
  return /(^|\s)password\s*=/.test(conn);
}

/** The `target` label when no name is given; undefined when there is no safe one. */
export function defaultLabel(t: ProbeTargetConfig): string | undefined {
  switch (t.kind) {
    case 'http': {
      // Without the query string: it may carry a token, and the label is public.
      const u = new URL(t.url);
      return u.origin + u.pathname;
    }
    case 'tcp':
    case 'redis':
      return t.address;
    case 'sqlite':
      return t.path;
    case 'postgres': {
      if (t.connection_string === undefined) return undefined;
      // user@host:port/db, without query parameters.
      if (/^postgres(ql)?:\/\//.test(t.connection_string)) {
        try {
          const u = new URL(t.connection_string);
          return `${u.protocol}//${u.username ? u.username + '@' : ''}${u.host}${u.pathname}`;
        } catch {
          return t.connection_string;
        }
      }
      return t.connection_string;
    }
  }
}

export function targetLabel(t: ProbeTargetConfig): string {
  return t.name ?? defaultLabel(t) ?? t.kind;
}

export const probesSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '10s' },
  {
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(32)
      .describe('Probes in flight at once; a blackholed target holds one slot until its timeout.'),
    targets: z
      .array(target)
      .default([])
      .describe(
        'What to probe; none by default. Each has a kind: http, tcp, redis, postgres or sqlite.',
      ),
  },
).superRefine((value, ctx) => {
  const seen = new Map<string, number>();
  value.targets.forEach((t, i) => {
    if (t.timeout !== undefined && t.timeout > value.timeout)
      ctx.addIssue({
        code: 'custom',
        path: ['targets', i, 'timeout'],
        message: `must not be longer than the collector's timeout (${formatDuration(value.timeout)}); shorten it or lengthen collectors.probes.timeout`,
      });
    if (t.kind === 'postgres') {
      const both = t.connection_string !== undefined && t.connection_string_file !== undefined;
      const neither = t.connection_string === undefined && t.connection_string_file === undefined;
      if (both || neither)
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i],
          message: 'give exactly one of connection_string and connection_string_file',
        });
      else if (t.connection_string !== undefined && hasPassword(t.connection_string))
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, 'connection_string'],
          message:
            'holds a password; put it in password_file (or the whole string in connection_string_file) so the config holds no secret',
        });
      if (t.connection_string_file !== undefined && t.name === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, 'name'],
          message: 'required with connection_string_file (the label cannot come from a secret)',
        });
    }
    if (t.kind === 'redis' && t.username !== undefined && t.password_file === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['targets', i, 'password_file'],
        message: 'required with username (AUTH needs a password)',
      });
    if (t.kind === 'sqlite' && !sqliteAvailable())
      ctx.addIssue({
        code: 'custom',
        path: ['targets', i, 'kind'],
        message: sqliteUnavailableMessage(),
      });
    const key = `${t.kind} ${targetLabel(t)}`;
    const first = seen.get(key);
    if (first !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['targets', i, 'name'],
        message: `target "${targetLabel(t)}" (${t.kind}) is also targets[${first}]; give each a distinct name`,
      });
    else seen.set(key, i);
  });
});

export type ProbesConfig = z.output<typeof probesSchema>;

/** A configured target, ready to probe. */
interface Target {
  config: ProbeTargetConfig;
  label: string;
  kind: Kind;
  /** The fan-out key and the failure counter's key. */
  key: string;
  timeoutMs: number;
  /** An http target's request and checks, built once from its config. */
  http?: HttpProbe;
}

/** A secret file's contents without the newline an editor or `echo` leaves. */
async function readSecret(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
}

function expectedStatus(patterns: readonly (number | string)[]): number[] {
  return patterns.flatMap((p) => {
    if (typeof p === 'number') return [p];
    const base = Number(p[0]) * 100;
    return Array.from({ length: 100 }, (_, i) => base + i);
  });
}

function runProbe(http: HttpClient, t: Target, signal: AbortSignal): Promise<ProbeOutcome> {
  const c = t.config;
  switch (c.kind) {
    case 'http':
      return probeHttp(http, t.http!, signal);
    case 'tcp':
      return probeTcp(c.address, signal);
    case 'redis':
      return (async () =>
        probeRedis(
          {
            address: c.address,
            username: c.username,
            password: c.password_file === undefined ? undefined : await readSecret(c.password_file),
            db: c.db,
            listKeys: c.list_keys,
          },
          signal,
        ))();
    case 'postgres':
      return (async () =>
        probePostgres(
          {
            connectionString: c.connection_string ?? (await readSecret(c.connection_string_file!)),
            password: c.password_file === undefined ? undefined : await readSecret(c.password_file),
            query: c.query,
          },
          signal,
        ))();
    case 'sqlite':
      return probeSqlite({ path: c.path, query: c.query }, signal);
  }
}

/** Why a probe failed, in a few words: for `lookout check` and the log. */
export function failureText(r: TargetResult<ProbeOutcome>, timeoutMs: number): string {
  return r.status === 'ok' ? r.value.detail : whyNot(r, timeoutMs);
}

export interface ProbesCollector extends PolledCollector {
  checkTargets(ctx: CollectContext): Promise<TargetCheck[]>;
  /** Consecutive failures by `kind target`, as the next refresh will add to them. */
  failureCounts(): ReadonlyMap<string, number>;
}

export function createProbesCollector(
  config: ProbesConfig,
  http: HttpClient,
  log: Logger,
): ProbesCollector {
  const targets: Target[] = config.targets.map((c) => {
    const label = targetLabel(c);
    return {
      config: c,
      label,
      kind: c.kind,
      key: `${c.kind} ${label}`,
      timeoutMs: c.timeout ?? config.timeout,
      http:
        c.kind === 'http'
          ? {
              url: c.url,
              method: c.method,
              headers: c.headers,
              body: c.body,
              expectedStatus: expectedStatus(c.expected_status),
              expectedText: c.expected_status.join(', '),
              bodyRegex: c.body_regex === undefined ? undefined : new RegExp(c.body_regex),
              followRedirects: c.follow_redirects,
            }
          : undefined,
    };
  });
  const slowest = Math.max(0, ...targets.map((t) => t.timeoutMs));
  const hungTimers = new Map<string, NodeJS.Timeout>();
  const fanout = new Fanout({
    name: 'probes',
    concurrency: config.concurrency,
    // The longest target timeout; a target with a shorter one gets its own signal below.
    timeoutMs: slowest,
    onHung: (key, hung) => {
      // Every timed-out probe is "hung" for the moment its abort takes to land; only one
      // still running a second later ignores its abort and is worth a line.
      clearTimeout(hungTimers.get(key));
      hungTimers.delete(key);
      if (hung)
        hungTimers.set(
          key,
          setTimeout(() => {
            hungTimers.delete(key);
            log.warn('probe did not return after its abort; not started again until it does', {
              target: key,
            });
          }, HUNG_GRACE_MS).unref(),
        );
    },
  });
  /** Survives refreshes; holds only configured targets' keys. */
  const failures = new Map<string, number>(targets.map((t) => [t.key, 0]));

  const probeAll = (ctx: CollectContext) => {
    // The fan-out listens on the refresh's signal once per call in flight: up to
    // `concurrency` listeners, not a leak.
    setMaxListeners(config.concurrency + 10, ctx.signal);
    return fanout.run(
      targets,
      (t) => t.key,
      // Most targets share the fan-out's timeout and take its signal as it is; a combined
      // signal and a timer per probe are made only for a target with a shorter timeout.
      (t, signal) =>
        runProbe(
          http,
          t,
          t.timeoutMs < slowest
            ? AbortSignal.any([signal, AbortSignal.timeout(t.timeoutMs)])
            : signal,
        ),
      { signal: ctx.signal, deadline: ctx.deadline },
    );
  };

  return {
    failureCounts: () => failures,

    async collect(ctx) {
      const results = await probeAll(ctx);
      const registry = new Registry();
      const registers = [registry];
      const success = new Gauge({
        name: 'lookout_probe_success',
        help: 'Whether the probe answered correctly and in time this round (1) or not (0).',
        labelNames: ['target', 'kind'],
        registers,
      });
      const seconds = new Gauge({
        name: 'lookout_probe_duration_seconds',
        help: 'How long the probe took, until its answer or its timeout.',
        labelNames: ['target', 'kind'],
        registers,
      });
      const consecutive = new Gauge({
        name: 'lookout_probe_consecutive_failures',
        help: 'Rounds in a row this probe has failed; 0 after a success.',
        labelNames: ['target', 'kind'],
        registers,
      });
      const status = new Gauge({
        name: 'lookout_probe_http_status_code',
        help: 'Status code of the final HTTP response; 0 when there was none.',
        labelNames: ['target'],
        registers,
      });
      const listLength = new Gauge({
        name: 'lookout_redis_list_length',
        help: 'LLEN of a configured Redis key (0 when absent): a queue depth.',
        labelNames: ['target', 'key'],
        registers,
      });

      targets.forEach((t, i) => {
        const r = results[i]!;
        const labels = { target: t.label, kind: t.kind };
        const ok = r.status === 'ok' && r.value.ok;
        const before = failures.get(t.key) ?? 0;
        const count = ok ? 0 : before + 1;
        failures.set(t.key, count);
        if (!ok && before === 0)
          log.warn('probe failing', {
            target: t.label,
            kind: t.kind,
            err: failureText(r, t.timeoutMs),
          });
        else if (ok && before > 0)
          log.info('probe answering again', {
            target: t.label,
            kind: t.kind,
            failed_rounds: before,
          });
        success.set(labels, ok ? 1 : 0);
        consecutive.set(labels, count);
        if (r.status !== 'skipped') seconds.set(labels, r.seconds);
        if (t.kind === 'http')
          status.set({ target: t.label }, r.status === 'ok' ? (r.value.httpStatus ?? 0) : 0);
        if (r.status === 'ok')
          for (const [key, n] of r.value.listLengths ?? [])
            listLength.set({ target: t.label, key }, n);
      });
      return registry;
    },

    async checkTargets(ctx) {
      const results = await probeAll(ctx);
      return targets.map((t, i) => {
        const r = results[i]!;
        const ok = r.status === 'ok' && r.value.ok;
        // A timeout's text already says how long; an answer's time is added to it.
        const answered = (r.status === 'ok' || r.status === 'failed') && !timedOut(r);
        const took = answered ? ` (${(r.seconds * 1000).toFixed(0)} ms)` : '';
        return { target: `${t.kind} ${t.label}`, ok, detail: failureText(r, t.timeoutMs) + took };
      });
    },
  };
}

registerCollector({
  name: 'probes',
  description:
    'HTTP(S), TCP, Redis, PostgreSQL and SQLite probes: success, duration, HTTP status, consecutive failures, Redis list lengths',
  metrics: [
    'lookout_probe_success',
    'lookout_probe_duration_seconds',
    'lookout_probe_http_status_code',
    'lookout_probe_consecutive_failures',
    'lookout_redis_list_length',
  ],
  schema: probesSchema,
  async create({ config, http, log }) {
    // Load what the probes need now, so the first round does not spend a target's
    // deadline importing undici or pg.
    if (config.targets.some((t) => t.kind === 'http')) await http.dispatcher();
    if (config.targets.some((t) => t.kind === 'postgres')) await loadPg();
    return createProbesCollector(config, http, log);
  },
});
