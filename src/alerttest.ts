/**
 * `lookout alert-test`: posts one synthetic alert to Alertmanager's API so a person sees,
 * within a minute, that email and Slack really arrive — the same path a real alert takes
 * from Prometheus, minus the rule.
 */
import { hostname } from 'node:os';
import { errorText } from './lib/log.js';
import { HttpClient } from './lib/http.js';
import { VERSION } from './version.js';

export const ALERT_NAME = 'LookoutAlertTest';
export const SEVERITIES = ['warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

const RUNBOOK_URL = '/runbooks#lookoutalerttest';
const DASHBOARD_URL = '/d/lookout-overview';
/** Long enough to see it in the Alertmanager UI, short enough to show the resolved notice. */
const LIFETIME_MS = 5 * 60_000;
const TIMEOUT_MS = 10_000;

/** Mirrors the headline in alertmanager/templates/lookout.tmpl, so the user knows what to look for. */
const HEADLINE: Record<Severity, string> = {
  critical: '🔴 CRITICAL',
  warning: '🟡 WARNING',
};

export interface AlertTestOptions {
  alertmanager?: string;
  severity?: string;
}

/** The body of POST /api/v2/alerts (a list of postable alerts). */
export function syntheticAlert(severity: Severity, instance: string, now: Date) {
  const summary = `Test alert from lookout alert-test on ${instance}`;
  return {
    labels: { alertname: ALERT_NAME, severity, instance },
    annotations: {
      summary,
      description: `A synthetic ${severity} alert sent by \`lookout alert-test\` at ${now.toISOString()}; nothing is wrong. It resolves by itself.`,
      runbook_url: RUNBOOK_URL,
      dashboard: DASHBOARD_URL,
    },
    startsAt: now.toISOString(),
    endsAt: new Date(now.getTime() + LIFETIME_MS).toISOString(),
    generatorURL: `lookout://alert-test/${VERSION}`,
  };
}

export async function alertTest(
  opts: AlertTestOptions,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const severity = opts.severity ?? 'warning';
  if (!(SEVERITIES as readonly string[]).includes(severity)) {
    err.write(
      `lookout alert-test: --severity must be one of ${SEVERITIES.join(', ')}, got "${severity}"\n`,
    );
    return 1;
  }
  const base = opts.alertmanager ?? 'http://127.0.0.1:9093';
  // Relative to the base so a path prefix (--web.route-prefix, a reverse proxy) is kept.
  const endpoint = URL.canParse(base) ? new URL('api/v2/alerts', base.replace(/\/*$/, '/')) : null;
  if (endpoint === null || (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')) {
    err.write(
      `lookout alert-test: --alertmanager must be an http(s) URL like http://127.0.0.1:9093, got "${base}"\n`,
    );
    return 1;
  }

  const instance = hostname();
  const alert = syntheticAlert(severity as Severity, instance, new Date());
  // The collectors' client: one HTTP client in lookout, and one POST needs nothing more.
  const client = new HttpClient();
  let status: number;
  let text: string;
  try {
    const res = await client.request(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([alert]),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    status = res.status;
    text = res.body.toString();
  } catch (e) {
    err.write(`lookout alert-test: cannot reach Alertmanager at ${endpoint}: ${errorText(e)}\n`);
    return 2;
  } finally {
    // Its kept-alive socket would otherwise hold the command open.
    await client.close(0);
  }
  if (status < 200 || status > 299) {
    err.write(
      `lookout alert-test: Alertmanager at ${endpoint} answered ${status}: ${text.trim().slice(0, 300)}\n`,
    );
    return 2;
  }

  const headline = `${HEADLINE[severity as Severity]}: ${ALERT_NAME} — ${alert.annotations.summary}`;
  out.write(
    [
      `sent to ${endpoint}:`,
      `  alertname=${ALERT_NAME} severity=${severity} instance=${instance}`,
      `  summary: ${alert.annotations.summary}`,
      `  ends at ${alert.endsAt} (then a resolved notice follows)`,
      ``,
      `expect, after Alertmanager's group_wait (30s in lookout's alertmanager.yml):`,
      severity === 'critical'
        ? `  email:  [LOOKOUT] ${headline}`
        : `  email:  none (warnings go to Slack only)`,
      `  Slack:  ${headline}  (${severity === 'critical' ? 'red' : 'amber'})`,
      ``,
      `Nothing arrives? Check the Alertmanager log and the secret files under`,
      `/etc/alertmanager/secrets/. If a ${ALERT_NAME} from ${instance} is still active, the`,
      `change is sent at the next group_interval (5m) instead.`,
      ``,
    ].join('\n'),
  );
  return 0;
}
