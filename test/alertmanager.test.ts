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
  renderAlertmanagerConfig,
  runCommand,
  runLookout,
  type AmTestConfig,
} from './helpers/alerting.js';
import { REPO, eventually, startAlertmanager, tempDir, type Running } from './helpers/procs.js';
import { startSlackSink, startSmtpSink, type SlackSink, type SmtpSink } from './helpers/sinks.js';

const TEMPLATE = join(REPO, 'alertmanager/templates/lookout.tmpl');
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
      assert.match(r.stdout, /2 receivers/);
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

  const routes: Array<{ labels: string[]; receivers: string; path: RegExp; why: string }> = [
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
        'alertname=HostFilesystemAlmostFull',
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
        equal: ['alertname', 'instance', 'mountpoint', 'name'],
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
    assert.equal(configs.length, 2);
    for (const rc of configs) assert.equal(rc.send_resolved, true);
    const slack = receivers.flatMap((r) => r.slack_configs ?? []);
    assert.equal(slack[0]?.api_url_file, '/etc/alertmanager/secrets/slack_webhook_url');
    assert.equal(slack[0]?.api_url, undefined);
    assert.deepEqual(c.templates, ['/etc/alertmanager/templates/*.tmpl']);
    for (const f of ['smtp_password.example', 'slack_webhook_url.example']) {
      assert.match(await readFile(join(REPO, 'secrets', f), 'utf8'), /printf '%s'/);
    }
  });
});

// ------------------------------------------------------------------ templates

interface TAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
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
      runbook_url:
        'https://github.com/lookout-monitoring/lookout/blob/main/docs/runbooks.md#hostfilesystemalmostfull',
      dashboard: 'http://localhost:3000/d/lookout-host?var-instance=web1:10142',
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
      `--template.glob=${TEMPLATE}`,
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
      const runbook =
        type === 'html' ? `href="${a.annotations.runbook_url}"` : a.annotations.runbook_url!;
      assert.ok(body.includes(runbook), `${type}: runbook link`);
      // html/template escapes '=' in query strings inside href as-is; the link must survive.
      assert.ok(
        body.includes('http://localhost:3000/d/lookout-host?var-instance=web1:10142'),
        `${type}: dashboard`,
      );
      assert.ok(!body.includes('RESOLVED'), `${type}: a firing notice does not say RESOLVED`);
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
      /<https:\/\/github\.com\/.*#hostfilesystemalmostfull\|runbook> · <http:\/\/localhost:3000\/d\/lookout-host.*\|dashboard>/,
    );
    assert.match(lines[2]!, /^🟡 \*WARNING\* /);
  });
});

// ------------------------------------------------------------------ a real Alertmanager

/** Timings for the test copy; repeat_interval stays the shipped 1h, which is what we check. */
const TIMINGS = { group_wait: '1s', group_interval: '2s' };
/** How long we watch for something that must NOT arrive: several group_interval ticks. */
const QUIET_MS = 7_000;

describe('a real Alertmanager from alertmanager.yml, fed by `lookout alert-test`', () => {
  let smtp: SmtpSink;
  let slack: SlackSink;
  const running: Running[] = [];

  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    smtp = await startSmtpSink();
    slack = await startSlackSink();
  });
  after(async () => {
    for (const r of running) await r.stop();
    await smtp?.stop();
    await slack?.stop();
  });

  async function freshAlertmanager(): Promise<{ am: Running; cfg: AmTestConfig }> {
    smtp.received.length = 0;
    slack.received.length = 0;
    const dir = await tempDir('lookout-am-config-');
    const cfg = await renderAlertmanagerConfig({
      dir,
      smarthost: smtp.smarthost,
      slackUrl: slack.url,
      timings: TIMINGS,
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
    assert.match(att.text ?? '', /#lookoutalerttest\|runbook>/);
    assert.match(att.title_link ?? '', /docs\/runbooks\.md#lookoutalerttest$/);

    await new Promise((r) => setTimeout(r, QUIET_MS));
    assert.equal(
      slack.received.length,
      1,
      'the same warning was sent again inside repeat_interval',
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

  test('critical: email (exact subject, body) + Slack red; the warning is inhibited; resolved notices; no repeats', async () => {
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
      assert.ok(body.includes('docs/runbooks.md#lookoutalerttest'), 'runbook link');
      assert.ok(body.includes(HOST), 'instance');
      assert.ok(body.includes('http://localhost:3000/d/lookout-overview'), 'dashboard link');
      assert.match(body, /nothing is wrong/, 'the description (value)');
    }
    assert.match(
      mail.html,
      /<a href="https:\/\/github\.com\/lookout-monitoring\/lookout\/blob\/main\/docs\/runbooks\.md#lookoutalerttest">/,
    );
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
      'the critical email was sent again inside repeat_interval',
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
    assert.match(resolvedMail.text, /^RESOLVED: /m);
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
});
