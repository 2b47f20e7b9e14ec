/**
 * alertmanager.yml and alertmanager/templates/lookout.tmpl, checked three ways:
 *  1. amtool: the config is valid, every route sends where the docs say;
 *  2. amtool template render: the headline, colours and bodies for each case;
 *  3. a real Alertmanager, configured from alertmanager.yml (only addresses, paths and
 *     timings changed), fed by `lookout alert-test`, delivering to a real SMTP server and
 *     a Slack webhook sink: subject, body, colour, inhibition, resolved notices, cooldown.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  amAlerts,
  amPost,
  loadAlertmanagerYml,
  durationMs,
  renderAlertmanagerConfig,
  runCommand,
  shippedLinkBases,
  runLookout,
  type AmTestConfig,
  shippedAlertRules,
  withHeartbeat,
} from './helpers/alerting.js';
import { REPO, eventually, startAlertmanager, tempDir, type Running } from './helpers/procs.js';
import {
  startSlackSink,
  startSmtpSink,
  startWebhookSink,
  type SlackSink,
  type SmtpSink,
  type WebhookSink,
} from './helpers/sinks.js';

const TEMPLATE = join(REPO, 'alertmanager/templates/lookout.tmpl');
/** lookout.tmpl uses the link templates of links.tmpl: amtool must load both. */
const TEMPLATES_GLOB = join(REPO, 'alertmanager/templates/*.tmpl');
/** The public addresses links.tmpl ships with, which rules' paths are joined to. */
const LINKS = await shippedLinkBases();
const HOST = hostname();
const TEST_SUMMARY = `Test alert from lookout alert-test on ${HOST}`;

// ------------------------------------------------------------------ amtool

describe('alertmanager.yml (amtool)', () => {
  let dir: string;
  let configFile: string;
  before(async () => {
    dir = await tempDir('lookout-amtool-');
    // amtool does not open the secret files (Alertmanager reads them when it sends), but
    // it does parse the templates its glob matches — and a glob matching nothing passes
    // silently. So the copy points the glob at the repo's templates.
    const rendered = await renderAlertmanagerConfig({
      dir,
      smarthost: 'smtp.example.com:587',
      slackUrl: 'https://hooks.slack.com/services/T000/B000/XXXX',
    });
    configFile = join(dir, 'alertmanager.yml');
    await writeFile(configFile, rendered.text);
  });

  test('amtool check-config passes on the shipped file and on the test copy', async () => {
    for (const file of [join(REPO, 'alertmanager.yml'), configFile]) {
      const r = await runCommand('amtool', ['check-config', file]);
      assert.equal(r.code, 0, `${file}:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /5 receivers/);
      assert.match(r.stdout, /1 inhibit rules/);
    }
  });

  test('amtool check-config reads the templates: a broken copy fails', async () => {
    const badDir = join(dir, 'bad-templates');
    await mkdir(badDir, { recursive: true });
    const text = await readFile(TEMPLATE, 'utf8');
    await writeFile(join(badDir, 'lookout.tmpl'), text.replace('{{- end }}', '{{- if }}'));
    const config = (await readFile(configFile, 'utf8')).replace(
      join(REPO, 'alertmanager/templates'),
      badDir,
    );
    const badConfig = join(dir, 'bad.yml');
    await writeFile(badConfig, config);
    const r = await runCommand('amtool', ['check-config', badConfig]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stdout + r.stderr, /lookout\.tmpl/);
  });

  const routes: Array<{
    labels: string[];
    alertname?: string;
    receivers: string;
    path: RegExp;
    why: string;
  }> = [
    {
      labels: ['severity=critical'],
      receivers: 'email,slack',
      path: /\{severity="critical"\}\s+receiver: email\n.*\{severity=~"critical\|warning"\}\s+receiver: slack/,
      why: 'critical → email and Slack',
    },
    {
      labels: ['severity=warning'],
      receivers: 'slack',
      path: /severity=~"critical\|warning"\}\s+receiver: slack/,
      why: 'warning → Slack only',
    },
    {
      labels: ['severity=info'],
      receivers: 'dashboard-only',
      path: /\{severity="info"\}\s+receiver: dashboard-only\s*$/,
      why: 'info → no receiver that sends (dashboard only)',
    },
    {
      labels: ['severity=none'],
      alertname: 'Watchdog',
      receivers: 'heartbeat',
      path: /\{alertname="Watchdog"\}\s+receiver: heartbeat\s*$/,
      why: 'Watchdog → the heartbeat webhook only',
    },
    {
      labels: ['severity=warning', 'area=aicost'],
      alertname: 'AiSpendOverBudget',
      receivers: 'aicost',
      path: /\{area="aicost"\}\s+receiver: aicost\s*$/,
      why: 'AI spend warning → the cost channel (its email and Slack) only',
    },
    {
      labels: ['severity=critical', 'area=aicost'],
      alertname: 'AiBudgetBurnRateHigh',
      receivers: 'aicost',
      path: /\{area="aicost"\}\s+receiver: aicost\s*$/,
      why: 'AI spend critical → the cost channel only, not on-call',
    },
    {
      labels: ['severity=info', 'area=aicost'],
      receivers: 'dashboard-only',
      path: /\{severity="info"\}\s+receiver: dashboard-only\s*$/,
      why: 'AI spend info → no receiver that sends, like every info',
    },
    {
      labels: ['severity=page'],
      receivers: 'slack',
      path: /default-route\s+receiver: slack\s*$/,
      why: 'unknown severity → the default route (Slack)',
    },
    {
      labels: [],
      receivers: 'slack',
      path: /default-route\s+receiver: slack\s*$/,
      why: 'no severity → the default route (Slack)',
    },
  ];
  for (const r of routes) {
    test(`amtool config routes test: ${r.why}`, async () => {
      const args = [
        'config',
        'routes',
        'test',
        `--config.file=${join(REPO, 'alertmanager.yml')}`,
        `--verify.receivers=${r.receivers}`,
        '--tree',
        `alertname=${r.alertname ?? 'HostFilesystemAlmostFull'}`,
        'instance=web1:10142',
        ...r.labels,
      ];
      const res = await runCommand('amtool', args);
      assert.equal(res.code, 0, `${res.stdout}${res.stderr}`);
      assert.equal(res.stdout.trim().split('\n').at(-1), r.receivers);
      assert.match(res.stdout.split('\n\n')[0]!, r.path);
    });
  }

  test('the shipped values: grouping, cooldown, resolved notices, inhibition, secrets in files', async () => {
    const c = await loadAlertmanagerYml();
    const route = c.route as Record<string, unknown>;
    assert.deepEqual(route.group_by, ['alertname', 'instance']);
    assert.equal(route.group_wait, '30s');
    assert.equal(route.group_interval, '5m');
    assert.equal(route.repeat_interval, '1h');
    assert.deepEqual(c.inhibit_rules, [
      {
        source_matchers: ['severity="critical"'],
        target_matchers: ['severity="warning"'],
        equal: ['alertname', 'instance', 'mountpoint', 'name', 'target', 'log', 'site', 'service'],
      },
    ]);
    const global = c.global as Record<string, unknown>;
    assert.equal(global.smtp_auth_password_file, '/etc/alertmanager/secrets/smtp_password');
    assert.equal(global.smtp_auth_password, undefined);
    const receivers = c.receivers as Array<Record<string, Array<Record<string, unknown>>>>;
    const configs = receivers.flatMap((r) => [
      ...(r.email_configs ?? []),
      ...(r.slack_configs ?? []),
    ]);
    // email and slack, and the cost channel's email and Slack.
    assert.equal(configs.length, 4);
    for (const rc of configs) assert.equal(rc.send_resolved, true);
    const slack = receivers.flatMap((r) => r.slack_configs ?? []);
    for (const sc of slack) {
      assert.equal(sc.api_url_file, '/etc/alertmanager/secrets/slack_webhook_url');
      assert.equal(sc.api_url, undefined);
    }
    assert.deepEqual(c.templates, ['/etc/alertmanager/templates/*.tmpl']);
    for (const f of ['smtp_password.example', 'slack_webhook_url.example']) {
      assert.match(await readFile(join(REPO, 'secrets', f), 'utf8'), /printf '%s'/);
    }
  });

  test('the heartbeat sends nothing as shipped; uncommenting its three lines sets it up', async () => {
    const heartbeatOf = (c: Record<string, unknown>) =>
      (c.receivers as Array<Record<string, unknown>>).find((r) => r.name === 'heartbeat');
    assert.deepEqual(heartbeatOf(await loadAlertmanagerYml()), { name: 'heartbeat' });
    const url = 'https://hc-ping.com/0f1e2d3c';
    assert.deepEqual(heartbeatOf(await loadAlertmanagerYml(url)), {
      name: 'heartbeat',
      webhook_configs: [{ url, send_resolved: false }],
    });
    const file = join(dir, 'with-heartbeat.yml');
    await writeFile(
      file,
      withHeartbeat(await readFile(join(REPO, 'alertmanager.yml'), 'utf8'), url),
    );
    const r = await runCommand('amtool', ['check-config', file]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  });
});

// ------------------------------------------------------------------ templates

/** A string matched literally inside a RegExp. */
function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

interface TAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL?: string;
}

function fsAlert(
  mountpoint: string,
  severity: string,
  status: TAlert['status'] = 'firing',
): TAlert {
  return {
    status,
    labels: {
      alertname: 'HostFilesystemAlmostFull',
      instance: 'web1:10142',
      mountpoint,
      severity,
    },
    annotations: {
      summary: `Filesystem ${mountpoint} on web1:10142 is almost full`,
      description: `${mountpoint} on web1:10142 is 93.5% full, 120MiB left`,
      runbook_url: '/runbooks#hostfilesystemalmostfull',
      dashboard: '/d/lookout-host?var-instance=web1:10142',
    },
    startsAt: '2025-03-01T10:00:00Z',
    endsAt: status === 'resolved' ? '2025-03-01T10:12:30Z' : '0001-01-01T00:00:00Z',
  };
}

function groupData(alerts: TAlert[]) {
  const status = alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved';
  const common = { alertname: 'HostFilesystemAlmostFull', instance: 'web1:10142' };
  return {
    receiver: 'slack',
    status,
    alerts,
    groupLabels: common,
    commonLabels: common,
    commonAnnotations: {},
    externalURL: 'http://alertmanager.example:9093',
  };
}

describe('alertmanager/templates/lookout.tmpl (amtool template render)', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await tempDir('lookout-tmpl-');
  });
  async function render(name: string, data: object, type: 'text' | 'html' = 'text') {
    const file = join(dir, `data-${n++}.json`);
    await writeFile(file, JSON.stringify(data));
    const r = await runCommand('amtool', [
      'template',
      'render',
      `--template.glob=${TEMPLATES_GLOB}`,
      `--template.data=${file}`,
      `--template.type=${type}`,
      `--template.text={{ template "${name}" . }}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  }

  const S = 'Filesystem /data on web1:10142 is almost full';
  const cases: Array<{ why: string; alerts: TAlert[]; subject: string; color: string }> = [
    {
      why: 'one critical',
      alerts: [fsAlert('/data', 'critical')],
      subject: `[LOOKOUT] 🔴 CRITICAL: HostFilesystemAlmostFull — ${S}`,
      color: 'danger',
    },
    {
      why: 'one warning',
      alerts: [fsAlert('/data', 'warning')],
      subject: `[LOOKOUT] 🟡 WARNING: HostFilesystemAlmostFull — ${S}`,
      color: 'warning',
    },
    {
      why: 'resolved',
      alerts: [fsAlert('/data', 'critical', 'resolved')],
      subject: `[LOOKOUT] ✅ RESOLVED: HostFilesystemAlmostFull — ${S}`,
      color: 'good',
    },
    {
      why: 'three alerts: the first critical leads, the others are counted',
      alerts: [fsAlert('/a', 'warning'), fsAlert('/data', 'critical'), fsAlert('/z', 'critical')],
      subject: `[LOOKOUT] 🔴 CRITICAL: HostFilesystemAlmostFull — ${S} (+2 more)`,
      color: 'danger',
    },
    {
      why: 'firing and resolved: the headline counts the firing ones',
      alerts: [fsAlert('/data', 'warning'), fsAlert('/old', 'critical', 'resolved')],
      subject: `[LOOKOUT] 🟡 WARNING: HostFilesystemAlmostFull — ${S}`,
      color: 'warning',
    },
    {
      why: 'an unknown severity',
      alerts: [fsAlert('/data', 'info')],
      subject: `[LOOKOUT] ⚪ INFO: HostFilesystemAlmostFull — ${S}`,
      color: '#9e9e9e',
    },
  ];
  for (const c of cases) {
    test(`subject and Slack colour: ${c.why}`, async () => {
      const data = groupData(c.alerts);
      assert.equal(await render('lookout.email.subject', data), c.subject);
      assert.equal(await render('lookout.slack.title', data), c.subject.replace('[LOOKOUT] ', ''));
      assert.equal(await render('lookout.slack.color', data), c.color);
    });
  }

  test('email text and HTML: value, instance, start time, runbook and dashboard links', async () => {
    const data = groupData([fsAlert('/data', 'critical')]);
    const a = fsAlert('/data', 'critical');
    for (const type of ['text', 'html'] as const) {
      const body = await render(
        type === 'text' ? 'lookout.email.text' : 'lookout.email.html',
        data,
        type,
      );
      assert.ok(body.includes(a.annotations.description!), `${type}: value`);
      assert.ok(body.includes('web1:10142'), `${type}: instance`);
      assert.ok(body.includes('2025-03-01 10:00:00 UTC'), `${type}: start time`);
      // Paths in the rules, made links by the one setting in links.tmpl.
      const url = `${LINKS.lookout}/runbooks#hostfilesystemalmostfull`;
      const runbook = type === 'html' ? `href="${url}"` : url;
      assert.ok(body.includes(runbook), `${type}: runbook link ${runbook}`);
      // html/template escapes '=' in query strings inside href as-is; the link must survive.
      assert.ok(
        body.includes(`${LINKS.grafana}/d/lookout-host?var-instance=web1:10142`),
        `${type}: dashboard`,
      );
      assert.doesNotMatch(body, /localhost|127\.0\.0\.1/, `${type}: no link to localhost`);
      assert.ok(!body.includes('RESOLVED'), `${type}: a firing notice does not say RESOLVED`);
    }
  });

  test('a runbook_url or dashboard that is already a URL (a rule of your own) is kept as it is', async () => {
    const own = fsAlert('/data', 'warning');
    own.annotations.runbook_url = 'https://wiki.example.org/ops/disk-full';
    own.annotations.dashboard = 'https://grafana.example.org/d/mine';
    const text = await render('lookout.slack.text', groupData([own]));
    assert.ok(text.includes('<https://wiki.example.org/ops/disk-full|runbook>'), text);
    assert.ok(text.includes('<https://grafana.example.org/d/mine|dashboard>'), text);
  });

  test("the source link is the alert's generatorURL when it is http(s), else none", async () => {
    const a = fsAlert('/data', 'critical');
    const withSource = {
      ...a,
      generatorURL: 'http://prometheus.example.net:9090/graph?g0.expr=up',
    };
    const text = await render('lookout.email.text', groupData([withSource]));
    assert.match(
      text,
      /^  Source: {4}http:\/\/prometheus\.example\.net:9090\/graph\?g0\.expr=up$/m,
    );
    const synthetic = { ...a, generatorURL: 'lookout://alert-test/0.1.0' };
    for (const name of ['lookout.email.text', 'lookout.slack.text']) {
      const body = await render(name, groupData([synthetic]));
      assert.doesNotMatch(body, /lookout:\/\/|Source:|\|source>/, `${name}: ${body}`);
    }
  });

  test('resolved notices say RESOLVED, in the email and in Slack', async () => {
    const data = groupData([fsAlert('/data', 'critical', 'resolved')]);
    const text = await render('lookout.email.text', data);
    assert.match(text, /^RESOLVED: /m);
    assert.match(text, /lasted 12m30s/);
    assert.match(await render('lookout.email.html', data, 'html'), /<strong>RESOLVED<\/strong>/);
    assert.match(await render('lookout.slack.text', data), /\*RESOLVED\*/);
  });

  // An alert also resolves when its series vanish (lookout died, a collector fails), so a
  // resolved notice must not claim the problem is fixed, and must say how to tell.
  test('resolved notices say "no longer firing", not "fixed", and name the alerts to check', async () => {
    const data = groupData([fsAlert('/data', 'critical', 'resolved')]);
    const bodies = {
      text: await render('lookout.email.text', data),
      html: await render('lookout.email.html', data, 'html'),
      slack: await render('lookout.slack.text', data),
    };
    for (const [kind, body] of Object.entries(bodies)) {
      assert.match(body, /no longer firing/, `${kind}: says no longer firing`);
      assert.match(body, /data stopped arriving/, `${kind}: names the vanished-data case`);
      assert.match(
        body,
        /LookoutDown or LookoutCollectorFailing (is firing|fires) for web1:10142/,
        `${kind}: names the alerts to check on this instance`,
      );
      assert.match(body, /may not be fixed/i, `${kind}: does not claim it is fixed`);
      assert.doesNotMatch(body, /no action|problem is over/, `${kind}: no all-clear`);
    }
    assert.match(bodies.text, /^RESOLVED: no longer firing: /m);
    // Slack stays short: the note on one line, then one line per resolved alert.
    const lines = bodies.slack.trim().split('\n');
    assert.equal(lines.length, 2, bodies.slack);
    assert.ok(lines[0]!.length <= 160, `Slack note is ${lines[0]!.length} characters`);
    assert.match(lines[1]!, /^✅ \*RESOLVED\* Filesystem \/data .* \(lasted 12m30s\)$/);
  });

  test('Slack text is short: one line per alert plus its links', async () => {
    const data = groupData([fsAlert('/data', 'critical'), fsAlert('/var', 'warning')]);
    const text = await render('lookout.slack.text', data);
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 4, text);
    assert.match(
      lines[0]!,
      /^🔴 \*CRITICAL\* Filesystem \/data .* — \/data on web1:10142 is 93\.5% full/,
    );
    assert.match(
      lines[1]!,
      new RegExp(
        `^<${esc(LINKS.lookout)}/runbooks#hostfilesystemalmostfull\\|runbook> · <${esc(LINKS.grafana)}/d/lookout-host\\?var-instance=web1:10142\\|dashboard> · since `,
      ),
    );
    assert.match(lines[2]!, /^🟡 \*WARNING\* /);
  });
});

// ------------------------------------------------------------------ a real Alertmanager

/** Timings for the test copy. repeat_interval stays the shipped 1h, so within these tests
 *  an unchanged group is sent once; the cooldown test below shortens it to see it work. */
const TIMINGS = { group_wait: '1s', group_interval: '2s' };
/** How long we watch for a duplicate that must NOT arrive: three group_interval ticks, at
 *  each of which Alertmanager re-evaluates the group and must decide not to send. */
const QUIET_MS = 7_000;
/** The cooldown test's copy: only repeat_interval differs from TIMINGS. */
const COOLDOWN_TIMINGS = { ...TIMINGS, repeat_interval: '15s' };

describe('a real Alertmanager from alertmanager.yml, fed by `lookout alert-test`', () => {
  let smtp: SmtpSink;
  let slack: SlackSink;
  let heartbeat: WebhookSink;
  const running: Running[] = [];

  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    smtp = await startSmtpSink();
    slack = await startSlackSink();
    heartbeat = await startWebhookSink();
  });
  after(async () => {
    for (const r of running) await r.stop();
    await smtp?.stop();
    await slack?.stop();
    await heartbeat?.stop();
  });

  async function freshAlertmanager(
    timings: Record<string, string> = TIMINGS,
    heartbeatTimings?: Record<string, string>,
  ): Promise<{ am: Running; cfg: AmTestConfig }> {
    smtp.received.length = 0;
    slack.received.length = 0;
    heartbeat.received.length = 0;
    const dir = await tempDir('lookout-am-config-');
    const cfg = await renderAlertmanagerConfig({
      dir,
      smarthost: smtp.smarthost,
      slackUrl: slack.url,
      heartbeatUrl: heartbeat.url,
      timings,
      heartbeatTimings,
    });
    const am = await startAlertmanager(cfg.text);
    running.push(am);
    return { am, cfg };
  }

  function resolveNow(amUrl: string, severities: string[]) {
    const now = new Date().toISOString();
    return amPost(
      amUrl,
      severities.map((severity) => ({
        labels: { alertname: 'LookoutAlertTest', severity, instance: HOST },
        annotations: { summary: TEST_SUMMARY },
        startsAt: new Date(Date.now() - 60_000).toISOString(),
        endsAt: now,
      })),
    );
  }

  test('alert-test rejects a bad severity (exit 1) and an unreachable Alertmanager (exit 2)', async () => {
    const bad = await runLookout(['alert-test', '--severity', 'page']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--severity must be one of warning, critical, got "page"/);
    const down = await runLookout(['alert-test', '--alertmanager', 'http://127.0.0.1:1']);
    assert.equal(down.code, 2);
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr);
    assert.match(
      down.stderr,
      /cannot reach Alertmanager at http:\/\/127\.0\.0\.1:1\/api\/v2\/alerts: .*ECONNREFUSED/,
    );
  });

  test('warning: Slack only, amber; resolved notice in Slack; no email', async () => {
    const { am } = await freshAlertmanager();
    const sent = await runLookout([
      'alert-test',
      '--alertmanager',
      am.url,
      '--severity',
      'warning',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    const title = `🟡 WARNING: LookoutAlertTest — ${TEST_SUMMARY}`;
    assert.ok(sent.stdout.includes(`Slack:  ${title}`), sent.stdout);
    assert.match(sent.stdout, /email:\s+none/);

    const msg = await slack.waitFor((m) => m.body.attachments?.[0]?.title === title, 15_000, title);
    const att = msg.body.attachments![0]!;
    assert.equal(att.color, 'warning');
    assert.ok((att.text ?? '').includes(`<${LINKS.lookout}/runbooks#lookoutalerttest|runbook>`));
    assert.equal(att.title_link, `${LINKS.lookout}/runbooks#lookoutalerttest`);

    await new Promise((r) => setTimeout(r, QUIET_MS));
    assert.equal(
      slack.received.length,
      1,
      `the same warning was sent again within ${QUIET_MS} ms (group_interval ticks resent it)`,
    );
    assert.equal(smtp.received.length, 0, 'a warning must not send email');

    await resolveNow(am.url, ['warning']);
    const resolved = await slack.waitFor(
      (m) =>
        m.body.attachments?.[0]?.title?.startsWith('✅ RESOLVED: LookoutAlertTest — ') === true,
      15_000,
      'the resolved Slack notice',
    );
    assert.equal(resolved.body.attachments![0]!.color, 'good');
    assert.match(resolved.body.attachments![0]!.text ?? '', /RESOLVED/);
    assert.equal(smtp.received.length, 0, 'a resolved warning must not send email');
  });

  test('critical: email (exact subject, body) + Slack red; the warning is inhibited; resolved notices; no duplicates', async () => {
    const { am, cfg } = await freshAlertmanager();
    const sent = await runLookout([
      'alert-test',
      '--alertmanager',
      am.url,
      '--severity',
      'critical',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    const subject = `[LOOKOUT] 🔴 CRITICAL: LookoutAlertTest — ${TEST_SUMMARY}`;
    // What the CLI tells the user to look for is what arrives.
    assert.ok(sent.stdout.includes(`email:  ${subject}`), sent.stdout);

    const mail = await smtp.waitFor((m) => m.subject === subject, 15_000, subject);
    assert.deepEqual(mail.to, ['oncall@example.com']);
    assert.deepEqual(mail.auth, { username: 'lookout@example.com', password: cfg.smtpPassword });
    for (const body of [mail.text, mail.html]) {
      assert.ok(body.includes(`${LINKS.lookout}/runbooks#lookoutalerttest`), 'runbook link');
      assert.ok(body.includes(HOST), 'instance');
      assert.ok(body.includes(`${LINKS.grafana}/d/lookout-overview`), 'dashboard link');
      assert.match(body, /nothing is wrong/, 'the description (value)');
    }
    assert.ok(mail.html.includes(`<a href="${LINKS.lookout}/runbooks#lookoutalerttest">`));
    const red = await slack.waitFor(
      (m) => m.body.attachments?.[0]?.title === subject.replace('[LOOKOUT] ', ''),
      15_000,
      'the critical Slack message',
    );
    assert.equal(red.body.attachments![0]!.color, 'danger');

    // The warning of the same alert on the same instance arrives and is held back.
    const warn = await runLookout([
      'alert-test',
      '--alertmanager',
      am.url,
      '--severity',
      'warning',
    ]);
    assert.equal(warn.code, 0, warn.stderr);
    const suppressed = await eventually(
      async () => {
        const [a] = await amAlerts(am.url, ['alertname="LookoutAlertTest"', 'severity="warning"']);
        return a?.status.state === 'suppressed' && a.status.inhibitedBy.length > 0 ? a : undefined;
      },
      10_000,
      'the warning to be inhibited',
    );
    assert.equal(suppressed.labels.instance, HOST);

    await new Promise((r) => setTimeout(r, QUIET_MS));
    const firingSlack = slack.received.filter(
      (m) => !m.body.attachments?.[0]?.title?.startsWith('✅'),
    );
    assert.equal(
      firingSlack.length,
      1,
      `expected only the critical in Slack, got ${firingSlack.length}`,
    );
    assert.ok(
      !slack.received.some((m) => /WARNING/.test(JSON.stringify(m.body))),
      'the warning reached Slack',
    );
    assert.equal(
      smtp.received.length,
      1,
      `the critical email was sent again within ${QUIET_MS} ms (group_interval ticks resent it)`,
    );

    // Resolve the warning first (as it would clear first on a draining disk), then the critical.
    await resolveNow(am.url, ['warning']);
    await new Promise((r) => setTimeout(r, 3_000));
    await resolveNow(am.url, ['critical']);
    const resolvedSubject = `[LOOKOUT] ✅ RESOLVED: LookoutAlertTest — ${TEST_SUMMARY}`;
    const resolvedMail = await smtp.waitFor(
      (m) => m.subject === resolvedSubject,
      15_000,
      resolvedSubject,
    );
    assert.match(resolvedMail.text, /^RESOLVED: no longer firing: /m);
    assert.ok(resolvedMail.text.includes(`LookoutCollectorFailing is firing for ${HOST},`));
    assert.match(resolvedMail.html, /<strong>RESOLVED<\/strong>/);
    const green = await slack.waitFor(
      (m) => m.body.attachments?.[0]?.title === resolvedSubject.replace('[LOOKOUT] ', ''),
      15_000,
      'the resolved Slack notice',
    );
    assert.equal(green.body.attachments![0]!.color, 'good');
    assert.match(green.body.attachments![0]!.text ?? '', /RESOLVED/);

    await new Promise((r) => setTimeout(r, QUIET_MS));
    assert.equal(smtp.received.length, 2, smtp.received.map((m) => m.subject).join('\n'));
    assert.equal(
      slack.received.length,
      2,
      JSON.stringify(slack.received.map((m) => m.body.attachments?.[0]?.title)),
    );
  });

  test('cooldown: an unchanged firing group is re-sent once repeat_interval has passed, not before', async (t) => {
    // The shipped cooldown is repeat_interval 1h. The copy differs from the shipped route
    // only in its timings, with repeat_interval 15 s, so one whole cooldown and the repeat
    // after it fit in the test: a wrong repeat_interval (or a cooldown taken from anywhere
    // else) moves the repeat out of [repeat_interval, repeat_interval + group_interval].
    const shippedRoute = (await loadAlertmanagerYml()).route as Record<string, unknown>;
    assert.equal(
      durationMs(String(shippedRoute.repeat_interval)),
      3_600_000,
      'the shipped repeat_interval (the cooldown) is 1h',
    );
    const { am, cfg } = await freshAlertmanager(COOLDOWN_TIMINGS);
    assert.deepEqual(cfg.config.route, { ...shippedRoute, ...COOLDOWN_TIMINGS });
    const repeatMs = durationMs(COOLDOWN_TIMINGS.repeat_interval);
    const tickMs = durationMs(COOLDOWN_TIMINGS.group_interval);
    // Date.now() in the sink vs. Alertmanager's own clock at send time.
    const CLOCK_SLACK_MS = 500;
    try {
      const sent = await runLookout([
        'alert-test',
        '--alertmanager',
        am.url,
        '--severity',
        'critical',
      ]);
      assert.equal(sent.code, 0, sent.stderr);
      const subject = `[LOOKOUT] 🔴 CRITICAL: LookoutAlertTest — ${TEST_SUMMARY}`;
      const slackTitle = subject.replace('[LOOKOUT] ', '');
      const isMail = (m: { subject: string }) => m.subject === subject;
      const isSlack = (m: { body: { attachments?: Array<{ title?: string }> } }) =>
        m.body.attachments?.[0]?.title === slackTitle;

      const firstMail = await smtp.waitFor(isMail, 15_000, subject);
      const firstSlack = await slack.waitFor(isSlack, 15_000, 'the critical Slack message');
      // Alertmanager re-checks the group at every group_interval tick and re-sends once
      // repeat_interval has passed since the last send: the repeat lands at the first tick
      // after it. Wait a little beyond that for delivery.
      const budget = repeatMs + tickMs + 5_000;
      const repeatMail = await smtp.waitFor(
        (m) => m !== firstMail && isMail(m),
        budget,
        'the repeated critical email',
      );
      const repeatSlack = await slack.waitFor(
        (m) => m !== firstSlack && isSlack(m),
        budget,
        'the repeated critical Slack message',
      );
      for (const [what, first, repeat] of [
        ['email', firstMail, repeatMail],
        ['Slack', firstSlack, repeatSlack],
      ] as const) {
        const gap = repeat.receivedAt - first.receivedAt;
        t.diagnostic(`${what} repeated after ${gap} ms (repeat_interval ${repeatMs} ms)`);
        assert.ok(
          gap >= repeatMs - CLOCK_SLACK_MS,
          `the ${what} was repeated after ${gap} ms, before repeat_interval (${repeatMs} ms)`,
        );
        assert.ok(
          gap <= repeatMs + tickMs + 3_000,
          `the ${what} was repeated after ${gap} ms, well after repeat_interval + group_interval`,
        );
      }
      // Exactly one repeat: nothing else until just before a second cooldown has passed.
      const quietUntil = firstMail.receivedAt + 2 * repeatMs - CLOCK_SLACK_MS;
      await new Promise((r) => setTimeout(r, Math.max(0, quietUntil - Date.now())));
      assert.deepEqual(
        smtp.received.map((m) => m.subject),
        [subject, subject],
        'one email, then exactly one repeat with the same subject',
      );
      assert.deepEqual(
        slack.received.map((m) => m.body.attachments?.[0]?.title),
        [slackTitle, slackTitle],
        'one Slack message, then exactly one repeat with the same title',
      );
    } finally {
      // It would keep repeating every 15 s into the shared sinks.
      await am.stop();
    }
  });

  test('Watchdog: sent to the heartbeat webhook, repeated every repeat_interval, never to email or Slack', async (t) => {
    // The shipped heartbeat route: at once, then every minute. The copy keeps the route and
    // receiver and shortens only its timings, so the repeats fit in the test.
    const shipped = (await loadAlertmanagerYml()).route as {
      routes: Array<Record<string, unknown>>;
    };
    const hbRoute = shipped.routes.find((r) => r.receiver === 'heartbeat');
    assert.deepEqual(hbRoute?.matchers, ['alertname="Watchdog"']);
    assert.equal(hbRoute?.group_wait, '0s');
    assert.equal(durationMs(String(hbRoute?.repeat_interval)), 60_000);
    const HB = { group_wait: '0s', group_interval: '1s', repeat_interval: '4s' };
    const { am } = await freshAlertmanager(TIMINGS, HB);
    try {
      // Watchdog as rules/lookout.yml labels it, plus a warning in the same Alertmanager:
      // its Slack message shows Slack works here, so Watchdog's absence there means something.
      const rule = await watchdogRule();
      const now = Date.now();
      const endsAt = new Date(now + 120_000).toISOString();
      await amPost(am.url, [
        {
          labels: { alertname: 'Watchdog', ...rule.labels },
          annotations: rule.annotations,
          startsAt: new Date(now).toISOString(),
          endsAt,
        },
        {
          labels: { alertname: 'LookoutAlertTest', severity: 'warning', instance: HOST },
          annotations: { summary: TEST_SUMMARY },
          startsAt: new Date(now).toISOString(),
          endsAt,
        },
      ]);
      const isWatchdog = (m: { body: { alerts?: Array<{ labels?: Record<string, string> }> } }) =>
        m.body.alerts?.some((a) => a.labels?.alertname === 'Watchdog') === true;
      const first = await heartbeat.waitFor(isWatchdog, 10_000, 'the first heartbeat');
      assert.equal(first.body.receiver, 'heartbeat');
      assert.equal(first.body.status, 'firing');
      assert.equal(first.path, '/ping/lookout');
      const repeatMs = durationMs(HB.repeat_interval);
      const second = await heartbeat.waitFor(
        (m) => m !== first && isWatchdog(m),
        repeatMs + 5_000,
        'the repeated heartbeat',
      );
      const third = await heartbeat.waitFor(
        (m) => m !== first && m !== second && isWatchdog(m),
        repeatMs + 5_000,
        'the second repeat',
      );
      const gaps = [second.receivedAt - first.receivedAt, third.receivedAt - second.receivedAt];
      t.diagnostic(`heartbeat gaps ${gaps.join(', ')} ms (repeat_interval ${repeatMs} ms)`);
      for (const gap of gaps) {
        assert.ok(gap >= repeatMs - 500, `a heartbeat came ${gap} ms after the last`);
        assert.ok(gap <= repeatMs + 3_000, `a heartbeat came ${gap} ms after the last`);
      }
      await slack.waitFor(
        (m) => /LookoutAlertTest/.test(JSON.stringify(m.body)),
        10_000,
        'the warning in Slack',
      );
      const leaked = [
        ...slack.received.map((m) => JSON.stringify(m.body)),
        ...smtp.received.map((m) => m.subject + m.text),
      ].filter((x) => x.includes('Watchdog'));
      assert.deepEqual(leaked, [], 'Watchdog reached email or Slack');
      assert.equal(smtp.received.length, 0, 'no email at all (the other alert is a warning)');
      assert.ok(
        heartbeat.received.every((m) => !/LookoutAlertTest/.test(JSON.stringify(m.body))),
        'only Watchdog reaches the heartbeat',
      );
    } finally {
      // It would keep pinging into the shared sink.
      await am.stop();
    }
  });
});

describe('a real Alertmanager from alertmanager.yml as shipped, email and Slack filled in', () => {
  test('Watchdog goes nowhere: no message, no webhook tried, no notification failed', async () => {
    const smtp = await startSmtpSink();
    const slack = await startSlackSink();
    const dir = await tempDir('lookout-am-noheartbeat-');
    const cfg = await renderAlertmanagerConfig({
      dir,
      smarthost: smtp.smarthost,
      slackUrl: slack.url,
      timings: TIMINGS,
      heartbeatTimings: { group_wait: '0s', group_interval: '1s', repeat_interval: '2s' },
    });
    const am = await startAlertmanager(cfg.text);
    try {
      const rule = await watchdogRule();
      const now = Date.now();
      await amPost(am.url, [
        {
          labels: { alertname: 'Watchdog', ...rule.labels },
          annotations: rule.annotations,
          startsAt: new Date(now).toISOString(),
          endsAt: new Date(now + 120_000).toISOString(),
        },
      ]);
      const [active] = await eventually(
        async () => {
          const list = await amAlerts(am.url, ['alertname="Watchdog"']);
          return list.length === 1 ? list : undefined;
        },
        10_000,
        'Alertmanager to hold Watchdog',
      );
      assert.equal(active?.status.state, 'active');
      // Several heartbeat repeats (2 s) long.
      await new Promise((r) => setTimeout(r, QUIET_MS));
      const metrics = await fetch(`${am.url}/metrics`).then((r) => r.text());
      const value = (name: string, integration: string) =>
        Number(
          new RegExp(`^${name}\\{integration="${integration}"\\} (\\S+)$`, 'm').exec(metrics)?.[1],
        );
      for (const integration of ['webhook', 'email', 'slack']) {
        assert.equal(value('alertmanager_notifications_total', integration), 0, integration);
        assert.equal(value('alertmanager_notifications_failed_total', integration), 0, integration);
      }
      assert.equal(smtp.received.length, 0, 'no email');
      assert.equal(slack.received.length, 0, 'no Slack message');
    } finally {
      await am.stop();
      await smtp.stop();
      await slack.stop();
    }
  });
});

/** Watchdog's labels and annotations as rules/lookout.yml writes them. */
async function watchdogRule(): Promise<{
  labels: Record<string, string>;
  annotations: Record<string, string>;
}> {
  const rule = (await shippedAlertRules()).find((r) => r.alert === 'Watchdog');
  assert.ok(rule, 'rules/*.yml has a Watchdog alert');
  return { labels: rule.labels, annotations: rule.annotations };
}
