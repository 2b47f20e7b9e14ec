import { Counter, Gauge } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import { Fanout, whyNot, type TargetResult } from '../lib/fanout.js';
import type { HttpClient } from '../lib/http.js';
import { parseStubStatus, type StubStatus } from '../lib/stubstatus.js';
import {
  collectorSchema,
  registerCollector,
  type Observer,
  type PolledCollector,
  type TargetCheck,
} from './collector.js';
import { Shown } from './shown.js';
import { setCounterTo } from './counter.js';

/** nginx-prometheus-exporter's default `-nginx.scrape-uri`, so a config written for it carries over. */
export const DEFAULT_STATUS_URL = 'http://127.0.0.1:8080/stub_status';
/** The page is ~100 bytes; anything much longer is not stub_status. */
const MAX_BODY_BYTES = 4096;

const httpUrl = z
  .string()
  .refine(
    (s) => URL.canParse(s) && ['http:', 'https:'].includes(new URL(s).protocol),
    'expected an http:// or https:// URL like "http://127.0.0.1:8080/stub_status"',
  );

export const nginxSchema = collectorSchema(
  { enabled: false, interval: '15s', timeout: '10s' },
  {
    status_url: httpUrl
      .default(DEFAULT_STATUS_URL)
      .describe(
        "URL of nginx's stub_status page (a `location = /stub_status { stub_status; }` block). When it does not answer, lookout_nginx_up is 0; the NginxDown alert fires only for an nginx that was up within the day.",
      ),
    status_timeout: duration
      .prefault('3s')
      .describe(
        'How long the status page may take to answer; past it lookout_nginx_up is 0 (cut to what is left of the refresh timeout).',
      ),
  },
);

export type NginxConfig = z.output<typeof nginxSchema>;

export type NginxSeen = { up: true; status: StubStatus } | { up: false; error: string };

function describeFailure(result: TargetResult<StubStatus>, timeoutMs: number): string {
  return result.status === 'ok' ? '' : whyNot(result, timeoutMs);
}

/** Made once: prom-client keeps the label objects it is given. */
const ACTIVE = { state: 'active' };
const READING = { state: 'reading' };
const WRITING = { state: 'writing' };
const WAITING = { state: 'waiting' };

/** The nginx collector's metric objects, made once; Shown registers those present. */
function nginxMetrics() {
  const counter = (name: string, help: string) => new Counter({ name, help, registers: [] });
  return {
    up: new Gauge({
      name: 'lookout_nginx_up',
      help: 'Whether nginx answered its stub_status page (1) or not: refused, timed out, an HTTP error or another page (0).',
      registers: [],
    }),
    connections: new Gauge({
      name: 'lookout_nginx_connections',
      help: 'Client connections by state: active (all open, waiting included), reading (request header), writing (response), waiting (idle keep-alive).',
      labelNames: ['state'] as const,
      registers: [],
    }),
    accepted: counter(
      'lookout_nginx_connections_accepted_total',
      'Client connections nginx accepted.',
    ),
    handled: counter(
      'lookout_nginx_connections_handled_total',
      'Client connections nginx handled; fewer than accepted when a resource limit (worker_connections) was reached.',
    ),
    requests: counter('lookout_nginx_http_requests_total', 'Client requests nginx received.'),
  };
}

/**
 * Scrapes stub_status through the shared HTTP client. Anything short of a stub_status
 * page (refused, timed out, an HTTP error, another page) is lookout_nginx_up 0 with the
 * other series absent; the collector itself still succeeds, as nginx-prometheus-exporter's
 * nginx_up does.
 */
export function createNginxCollector(
  config: NginxConfig,
  http: HttpClient,
): PolledCollector & Observer<NginxSeen> {
  let seen: NginxSeen | undefined;
  // One target, but through the fan-out all the same: its deadline is cut to what is
  // left of the refresh, so a blackholed status URL is up 0, never a failed refresh.
  const fanout = new Fanout({ name: 'nginx', concurrency: 1, timeoutMs: config.status_timeout });

  async function fetchStatus(signal: AbortSignal): Promise<StubStatus> {
    const res = await http.request(config.status_url, {
      signal,
      maxBodyBytes: MAX_BODY_BYTES,
      headers: { accept: 'text/plain' },
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return parseStubStatus(res.body.toString('utf8'));
  }

  async function probe(signal: AbortSignal, deadline: number) {
    const [result] = await fanout.run(
      [config.status_url],
      (u) => u,
      (_, s) => fetchStatus(s),
      {
        signal,
        deadline,
      },
    );
    return result!;
  }

  const m = nginxMetrics();
  const shown = new Shown();
  // With nginx not answering only lookout_nginx_up is shown, as nginx-prometheus-exporter.
  const whenDown = [m.up];
  const whenUp = [m.up, m.connections, m.accepted, m.handled, m.requests];

  return {
    lastSeen: () => seen,

    async collect({ signal, deadline, log }) {
      const result = await probe(signal, deadline);
      // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
      signal.throwIfAborted();
      m.up.set(result.status === 'ok' ? 1 : 0);
      if (result.status !== 'ok') {
        const error = describeFailure(result, config.status_timeout);
        seen = { up: false, error };
        log.debug('nginx stub_status not answering', { url: config.status_url, err: error });
        return shown.show(whenDown);
      }
      const s = result.value;
      seen = { up: true, status: s };
      m.connections.set(ACTIVE, s.active);
      m.connections.set(READING, s.reading);
      m.connections.set(WRITING, s.writing);
      m.connections.set(WAITING, s.waiting);
      // stub_status's counters are absolute: reset() and inc() by the value read, as the
      // host collector's kernel counters (prom-client's Counter has no set()).
      setCounterTo(m.accepted, s.accepted);
      setCounterTo(m.handled, s.handled);
      setCounterTo(m.requests, s.requests);
      return shown.show(whenUp);
    },

    async checkTargets({ signal, deadline }): Promise<TargetCheck[]> {
      const t0 = performance.now();
      const result = await probe(signal, deadline);
      const ms = Math.round(performance.now() - t0);
      return [
        result.status === 'ok'
          ? {
              target: config.status_url,
              ok: true,
              detail: `stub_status in ${ms} ms: ${result.value.active} active connections`,
            }
          : {
              target: config.status_url,
              ok: false,
              detail: describeFailure(result, config.status_timeout),
            },
      ];
    },
  };
}

registerCollector({
  name: 'nginx',
  description:
    "nginx's stub_status: up, connections by state, accepted and handled connections, requests (lookout_nginx_*)",
  metrics: [
    'lookout_nginx_up',
    'lookout_nginx_connections',
    'lookout_nginx_connections_accepted_total',
    'lookout_nginx_connections_handled_total',
    'lookout_nginx_http_requests_total',
  ],
  schema: nginxSchema,
  create({ config, http }) {
    return createNginxCollector(config, http);
  },
});
