/**
 * The alerting chain on real parts, for end-to-end fault tests:
 *
 *   lookout (dist/, the test's config) → Prometheus (1 s scrape and evaluation, a copy of
 *   rules/*.yml with only `for:` and `keep_firing_for:` scaled down) → Alertmanager
 *   (alertmanager.yml with only addresses, paths and group timings changed) → a real SMTP
 *   server and a Slack sink.
 *
 * A test makes a real fault, then `criticalCycle` waits for the critical email and Slack
 * message with the exact subject, runs the fix, and waits for both resolved notices,
 * recording each fault → message time.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  amAlerts,
  copyRulesWithShortFor,
  expandLabels,
  renderAlertmanagerConfig,
  shippedLinkBases,
  type AmTestConfig,
  type RuleTiming,
} from './alerting.js';
import {
  REPO,
  eventually,
  freePort,
  promQuery,
  startAlertmanager,
  startProcess,
  startPrometheus,
  tempDir,
  type Running,
} from './procs.js';
import {
  startSlackSink,
  startSmtpSink,
  startWebhookSink,
  type SlackMessage,
  type SlackSink,
  type SmtpSink,
  type WebhookSink,
} from './sinks.js';

/** Fault → message budget: `for` (a few seconds scaled) + collect + scrape + evaluate + group_wait. */
export const DELIVERY_MS = 45_000;
/** How long to keep watching for something that must not arrive (≥ 3 group_intervals). */
export const QUIET_MS = 8_000;

/** Which message a measurement is about; the columns of the summary table. */
export const KINDS = ['email', 'slack', 'resolved email', 'resolved slack'] as const;
export type Kind = (typeof KINDS)[number];

export interface Measured {
  fault: string;
  kind: Kind;
  /** From the fault (or, for resolved notices, the fix) to the message's arrival. */
  ms: number;
}

export const title = (m: SlackMessage) => m.body.attachments?.[0]?.title ?? '';
export const color = (m: SlackMessage) => m.body.attachments?.[0]?.color ?? '';

export interface AlertChainOptions {
  /** lookout's config file, YAML. */
  lookoutConfig: string;
  /** `for:` in the rule copy is multiplied by this (1/60: a minute becomes a second). */
  forScale: number;
  /** Alertmanager group timings of the copy; repeat_interval stays the shipped 1h. */
  amTimings?: { group_wait: string; group_interval: string };
  /** A name for the temp dirs and the times file. */
  name: string;
  /** Set up the heartbeat receiver to a local sink, as its comment in alertmanager.yml
   *  says (default). false: the receiver stays as shipped, sending nothing. */
  heartbeat?: boolean;
  /**
   * Changes the rule copy before Prometheus first loads it (a per-instance override, as
   * rules/host.yml's header shows): gets the copy's directory and this chain's instance.
   * It may change expressions, not add or remove alert rules.
   */
  editRules?: (rulesDir: string, instance: string) => Promise<void>;
}

export interface CycleOptions {
  /** The fault's name in the times table. */
  name: string;
  alertname: string;
  /** The labels besides instance and job that the alert's summary names. */
  labels?: Record<string, string>;
  /** When the fault was made (Date.now()). */
  faultAt: number;
  /** Checks made while the alert fires, before the fix. */
  whileFiring?: () => Promise<void>;
  fix: () => Promise<void>;
}

export class AlertChain {
  readonly measured: Measured[] = [];
  readonly links = shippedLinkBases();
  lookout: Running | undefined;
  timings: RuleTiming[] = [];
  promStartedAt = 0;
  private readonly toStop: Running[] = [];

  private constructor(
    readonly opts: AlertChainOptions,
    readonly smtp: SmtpSink,
    readonly slack: SlackSink,
    readonly heartbeat: WebhookSink,
    readonly amConfig: AmTestConfig,
    readonly am: Running,
    readonly lookoutDir: string,
    readonly lookoutPort: number,
    public prom: Running | undefined,
  ) {
    this.toStop.push(am);
  }

  get instance(): string {
    return `127.0.0.1:${this.lookoutPort}`;
  }

  get promUrl(): string {
    assert.ok(this.prom, 'Prometheus is running');
    return this.prom.url;
  }

  static async start(opts: AlertChainOptions): Promise<AlertChain> {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    const smtp = await startSmtpSink();
    const slack = await startSlackSink();
    // A heartbeat sink, not a dead address: Prometheus scrapes Alertmanager here, and a
    // heartbeat that cannot be delivered is itself AlertmanagerHeartbeatFailing.
    const heartbeat = await startWebhookSink();
    const amConfig = await renderAlertmanagerConfig({
      dir: await tempDir(`lookout-${opts.name}-am-`),
      smarthost: smtp.smarthost,
      slackUrl: slack.url,
      heartbeatUrl: opts.heartbeat === false ? undefined : heartbeat.url,
      timings: opts.amTimings ?? { group_wait: '1s', group_interval: '2s' },
    });
    const am = await startAlertmanager(amConfig.text);
    const lookoutDir = await tempDir(`lookout-${opts.name}-exporter-`);
    await writeFile(join(lookoutDir, 'lookout.yml'), opts.lookoutConfig);
    const chain = new AlertChain(
      opts,
      smtp,
      slack,
      heartbeat,
      amConfig,
      am,
      lookoutDir,
      await freePort(),
      undefined,
    );
    try {
      chain.lookout = await chain.startLookout();
      const rulesDir = join(await tempDir(`lookout-${opts.name}-rules-`), 'rules');
      chain.timings = await copyRulesWithShortFor(rulesDir, (ms) => ms * opts.forScale);
      await opts.editRules?.(rulesDir, chain.instance);
      chain.promStartedAt = Date.now();
      // The jobs of the shipped prometheus.yml: the alert-path rules read Alertmanager's
      // and Prometheus's own counters, and watch that both jobs exist.
      const promConfig = (self: string[]) =>
        JSON.stringify({
          global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
          rule_files: [join(rulesDir, '*.yml')],
          alerting: {
            alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${am.port}`] }] }],
          },
          scrape_configs: [
            { job_name: 'lookout', static_configs: [{ targets: [chain.instance] }] },
            { job_name: 'prometheus', static_configs: [{ targets: self }] },
            { job_name: 'alertmanager', static_configs: [{ targets: [`127.0.0.1:${am.port}`] }] },
          ],
        });
      chain.prom = await startPrometheus(promConfig([]));
      chain.toStop.push(chain.prom);
      // Its port is known once it runs: the same file with itself as the target, reread
      // on SIGHUP as prometheus.yml's header says.
      await writeFile(
        join(chain.prom.dir, 'prometheus.yml'),
        promConfig([`127.0.0.1:${chain.prom.port}`]),
      );
      chain.prom.child.kill('SIGHUP');
      await eventually(
        async () => (await promQuery(chain.promUrl, `up{job="prometheus"} == 1`)).length === 1,
        20_000,
        'Prometheus to scrape itself',
      );
      await eventually(
        async () => (await promQuery(chain.promUrl, `up{job="lookout"} == 1`)).length === 1,
        20_000,
        'Prometheus to scrape lookout',
      );
      const loaded = await fetch(`${chain.promUrl}/api/v1/rules?type=alert`).then(
        (r) => r.json() as Promise<{ data: { groups: Array<{ rules: unknown[] }> } }>,
      );
      assert.equal(
        loaded.data.groups.reduce((n, g) => n + g.rules.length, 0),
        chain.timings.length,
        'Prometheus loaded every alert rule of the copy',
      );
    } catch (err) {
      await chain.stop();
      throw err;
    }
    return chain;
  }

  /** lookout on the same port every time: LookoutDown needs the same target back. */
  async startLookout(): Promise<Running> {
    return startProcess(
      process.execPath,
      [
        join(REPO, 'dist/cli.js'),
        'serve',
        '--config',
        join(this.lookoutDir, 'lookout.yml'),
        '--web.listen-address',
        this.instance,
      ],
      { readyPath: '/healthz', port: this.lookoutPort, dir: this.lookoutDir },
    );
  }

  /** The summary the rule renders for these labels, as the email subject carries it. */
  summaryOf(alertname: string, severity: string, labels: Record<string, string>): string {
    const rule = this.timings.find((t) => t.alert === alertname && t.severity === severity);
    assert.ok(rule, `rules/*.yml has no ${alertname} with severity ${severity}`);
    return expandLabels(rule.summary, {
      alertname,
      severity,
      instance: this.instance,
      job: 'lookout',
      ...labels,
    });
  }

  record(t: TestContext, fault: string, kind: Kind, from: number, msg: { receivedAt: number }) {
    const ms = msg.receivedAt - from;
    this.measured.push({ fault, kind, ms });
    const line = `${fault}: ${kind.startsWith('resolved') ? 'fix' : 'fault'} → ${kind}: ${(ms / 1000).toFixed(1)} s`;
    console.log(line);
    t.diagnostic(line);
  }

  /**
   * Waits for the critical email + Slack message with the exact subject, each linking the
   * runbook and naming the instance; returns the alert's summary.
   */
  async expectCritical(
    t: TestContext,
    c: Pick<CycleOptions, 'name' | 'alertname' | 'labels' | 'faultAt'>,
  ): Promise<string> {
    const { smtp, slack } = this;
    const links = await this.links;
    const summary = this.summaryOf(c.alertname, 'critical', c.labels ?? {});
    const subject = `[LOOKOUT] 🔴 CRITICAL: ${c.alertname} — ${summary}`;
    const mail = await smtp.waitFor((m) => m.subject === subject, DELIVERY_MS, subject);
    this.record(t, c.name, 'email', c.faultAt, mail);
    assert.deepEqual(mail.to, ['oncall@example.com']);
    const runbook = `${links.lookout}/runbooks#${c.alertname.toLowerCase()}`;
    for (const body of [mail.text, mail.html]) {
      assert.ok(body.includes(runbook), `${c.name}: email body has the runbook link ${runbook}`);
      assert.ok(body.includes(this.instance), `${c.name}: email body names the instance`);
    }
    const red = await slack.waitFor(
      (m) => title(m) === subject.replace('[LOOKOUT] ', ''),
      DELIVERY_MS,
      `the ${c.alertname} Slack message`,
    );
    this.record(t, c.name, 'slack', c.faultAt, red);
    assert.equal(color(red), 'danger');
    assert.ok(
      JSON.stringify(red.body).includes(runbook),
      `${c.name}: Slack message links the runbook`,
    );
    return summary;
  }

  /** Waits for the critical email + Slack message, runs fix(), waits for the resolved ones. */
  async criticalCycle(t: TestContext, c: CycleOptions): Promise<void> {
    const { smtp, slack } = this;
    const summary = await this.expectCritical(t, c);

    await c.whileFiring?.();

    const fixedAt = Date.now();
    await c.fix();
    const resolvedTitle = `✅ RESOLVED: ${c.alertname} — ${summary}`;
    const resolvedMail = await smtp.waitFor(
      (m) => m.subject === `[LOOKOUT] ${resolvedTitle}`,
      DELIVERY_MS,
      `the resolved ${c.alertname} email`,
    );
    this.record(t, c.name, 'resolved email', fixedAt, resolvedMail);
    // Resolved is not "fixed": the notice says so and names the alerts that tell.
    assert.match(resolvedMail.text, /^RESOLVED: no longer firing: /m);
    assert.ok(
      resolvedMail.text.includes(`LookoutCollectorFailing is firing for ${this.instance},`),
      `${c.name}: the resolved email points at LookoutDown/LookoutCollectorFailing for ${this.instance}`,
    );
    // A warning that was inhibited resolves in the same evaluation and is then no longer
    // muted (its critical is gone), so the Slack notice may count it: "(+1 more)".
    const green = await slack.waitFor(
      (m) => title(m).startsWith(resolvedTitle),
      DELIVERY_MS,
      `the resolved ${c.alertname} Slack message`,
    );
    this.record(t, c.name, 'resolved slack', fixedAt, green);
    assert.equal(color(green), 'good');
    assert.match(green.body.attachments?.[0]?.text ?? '', /no longer firing/);
  }

  /** The warning of the same alert fired in Prometheus, reached Alertmanager, was held back. */
  async expectWarningInhibited(alertname: string, labels: Record<string, string>): Promise<void> {
    const sel = Object.entries({ alertname, severity: 'warning', ...labels })
      .map(([k, v]) => `${k}="${v}"`)
      .join(',');
    await eventually(
      async () => (await promQuery(this.promUrl, `ALERTS{${sel},alertstate="firing"}`)).length > 0,
      DELIVERY_MS,
      `the ${alertname} warning to fire in Prometheus`,
    );
    const inAm = await eventually(
      async () => {
        const list = await amAlerts(this.am.url, sel.split(','));
        return list.length > 0 && list.every((a) => a.status.state === 'suppressed')
          ? list
          : undefined;
      },
      15_000,
      `Alertmanager to hold the ${alertname} warning as suppressed`,
    );
    assert.ok(
      inAm.every((a) => a.status.inhibitedBy.length > 0),
      'suppressed by inhibition',
    );
    await new Promise((r) => setTimeout(r, QUIET_MS));
    const leaked = this.slack.received.filter((m) =>
      title(m).startsWith(`🟡 WARNING: ${alertname} `),
    );
    assert.equal(leaked.length, 0, `the inhibited ${alertname} warning reached Slack`);
    const counted = this.slack.received.filter(
      (m) => title(m).startsWith(`🔴 CRITICAL: ${alertname} `) && title(m).includes('(+'),
    );
    assert.equal(counted.length, 0, `the ${alertname} critical message counts the warning`);
  }

  /** Stops everything it started and prints the times table (and writes it as JSON). */
  async stop(): Promise<void> {
    await this.lookout?.stop();
    for (const r of this.toStop.reverse()) await r.stop();
    await this.smtp.stop();
    await this.slack.stop();
    await this.heartbeat.stop();
    if (this.measured.length === 0) return;
    const setup = {
      for_scale: this.opts.forScale,
      scrape_interval: '1s',
      evaluation_interval: '1s',
      ...(this.opts.amTimings ?? { group_wait: '1s', group_interval: '2s' }),
      repeat_interval: 'shipped (1h)',
    };
    const file = join(
      tmpdir(),
      `lookout-${this.opts.name}-alert-times-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    );
    await writeFile(
      file,
      JSON.stringify(
        {
          finishedAt: new Date().toISOString(),
          setup,
          note: 'ms from the fault to the firing message, and from the fix to the resolved one',
          measured: this.measured,
        },
        null,
        2,
      ) + '\n',
    );
    console.log(
      `\nfault → message times (for: ×${this.opts.forScale.toFixed(4)}, scrape/eval 1s; resolved = fix → resolved notice):\n` +
        timesTable(this.measured) +
        `\n(JSON: ${file})`,
    );
  }
}

/** One row per fault: fault, email s, slack s, resolved email s, resolved slack s. */
export function timesTable(measured: Measured[]): string {
  const faults = [...new Set(measured.map((m) => m.fault))];
  const head = ['fault', ...KINDS.map((k) => `${k} s`)];
  const rows = faults.map((fault) => [
    fault,
    ...KINDS.map((kind) => {
      const m = measured.find((x) => x.fault === fault && x.kind === kind);
      return m ? (m.ms / 1000).toFixed(1) : '-';
    }),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
