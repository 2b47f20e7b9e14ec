/**
 * Every link in a delivered notification leads somewhere.
 *
 * Each warning and critical rule of every group in rules/*.yml is evaluated by a real
 * Prometheus — with its labels, annotations and severity as shipped; only `expr` is a
 * constant vector carrying realistic labels, so it fires at once — and sent through a
 * real Alertmanager running the shipped alertmanager.yml and templates. The test copy
 * changes only addresses: receivers at the test's SMTP and Slack sinks, and links.tmpl's
 * two bases at a running lookout and a Grafana stand-in that knows only the dashboards of
 * grafana/dashboards/*.json. Both servers' --web.external-url point at themselves.
 *
 * Then every link of every email (HTML and text parts) and Slack message is followed:
 * runbooks to an anchor on lookout's /runbooks page, dashboards to a uid, variables and panel
 * that exist, the Alertmanager link to the real Alertmanager, the source link to the real
 * Prometheus. Nothing may point anywhere else — not localhost, not a placeholder.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { receivers } from '../scripts/gen-reference.js';
import {
  amAlerts,
  loadAlertmanagerYml,
  renderAlertmanagerConfig,
  shippedAlertRules,
  shippedLinkBases,
} from './helpers/alerting.js';
import {
  baselessPaths,
  htmlIds,
  htmlLinks,
  shippedDashboards,
  slackLinks,
  startGrafanaStandIn,
  textLinks,
  type FoundLink,
  type GrafanaStandIn,
  type ShippedDashboard,
} from './helpers/links.js';
import {
  REPO,
  freePort,
  promQuery,
  startLookout,
  startProcess,
  tempDir,
  type Running,
} from './helpers/procs.js';
import {
  startSlackSink,
  startSmtpSink,
  type Email,
  type SlackMessage,
  type SlackSink,
  type SmtpSink,
} from './helpers/sinks.js';

// ------------------------------------------------------------------ the rules

/** One shipped alerting rule that sends (warning or critical), made to fire. */
interface Sample {
  file: string;
  group: string;
  alert: string;
  severity: 'warning' | 'critical';
  ruleLabels: Record<string, string>;
  annotations: Record<string, string>;
  instance: string;
  /** The label sets the constant expression returns: one per alert it fires. */
  series: Array<Record<string, string>>;
}

/** info goes nowhere and Watchdog (severity none) only to the heartbeat webhook. */
const NOTIFYING = new Set(['warning', 'critical']);

/** Whether alertmanager.yml's route tree sends the rule's alerts to a receiver that emails. */
async function emails(s: Sample): Promise<boolean> {
  const am = await loadAlertmanagerYml();
  const emailing = new Set(
    (am.receivers as Array<{ name: string; email_configs?: unknown[] }>)
      .filter((r) => (r.email_configs ?? []).length > 0)
      .map((r) => r.name),
  );
  const route = am.route as Parameters<typeof receivers>[0];
  return receivers(route, { ...s.ruleLabels, alertname: s.alert }).some((r) => emailing.has(r));
}

/**
 * Realistic values for the labels the annotations use, as the real expressions return
 * them. `alertmanager` is Prometheus's own label: the URL it posts alerts to.
 */
function labelValue(name: string, sample: { annotations: string }, amUrl: string): string {
  const fs = /\$labels\.mountpoint/.test(sample.annotations);
  const values: Record<string, string> = {
    device: fs ? '/dev/sda1' : 'eth0',
    fstype: 'ext4',
    collector: 'filesystem',
    job: 'prometheus',
    integration: 'email',
    rule_group: '/etc/prometheus/rules/host.yml;lookout-host.alerts',
    alertmanager: `${amUrl}/api/v2/alerts`,
    name: 'nginx',
    target: 'shop.internal:443',
    kind: 'http',
    log: 'web',
    service: 'chat-api',
    model: 'gpt-4o',
    file: '/var/log/app/ai-usage.jsonl',
    image: 'nginx:1.25',
  };
  const v = values[name];
  if (v === undefined)
    throw new Error(`an annotation uses $labels.${name}: give it a realistic value here`);
  return v;
}

async function notifyingRules(amUrl: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (const rule of await shippedAlertRules()) {
    const severity = rule.labels.severity ?? '';
    if (!NOTIFYING.has(severity)) continue;
    const { annotations } = rule;
    const text = Object.values(annotations).join('\n');
    // A unique instance per rule: a warning and a critical of one alert on one
    // instance would inhibit each other, and every message is one (alertname, instance).
    const n = samples.length + 1;
    const instance = rule.alert.startsWith('Prometheus')
      ? `prometheus-${n}:9090`
      : rule.alert.startsWith('Alertmanager')
        ? `alertmanager-${n}:9093`
        : `web-${n}:10142`;
    const used = new Set([...text.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!));
    used.delete('instance');
    used.delete('mountpoint');
    const base: Record<string, string> = { instance };
    for (const name of [...used].sort())
      base[name] = labelValue(name, { annotations: text }, amUrl);
    // Filesystem alerts on two mounts of one host: one message with two alerts.
    const series = /\$labels\.mountpoint/.test(text)
      ? [
          { ...base, mountpoint: '/', device: '/dev/sda1' },
          { ...base, mountpoint: '/data', device: '/dev/sdb1' },
        ]
      : [base];
    samples.push({
      file: rule.file,
      group: rule.group,
      alert: rule.alert,
      severity: severity as Sample['severity'],
      ruleLabels: rule.labels,
      annotations,
      instance,
      series,
    });
  }
  return samples;
}

/** A PromQL string literal. */
function promString(s: string): string {
  return JSON.stringify(s);
}

/** A constant expression returning exactly these label sets, value 0.93. */
function constantExpr(series: Array<Record<string, string>>): string {
  return series
    .map((labels) =>
      Object.entries(labels).reduce(
        (expr, [k, v]) => `label_replace(${expr}, ${promString(k)}, ${promString(v)}, "", "")`,
        'vector(0.93)',
      ),
    )
    .join(' or ');
}

/** The shipped rules with only expr replaced (and no `for:`), grouped as shipped. */
function firingRules(samples: Sample[]): string {
  const groups = new Map<string, object[]>();
  for (const s of samples) {
    const name = `${s.file}/${s.group}`;
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name)!.push({
      alert: s.alert,
      expr: constantExpr(s.series),
      labels: s.ruleLabels,
      annotations: s.annotations,
    });
  }
  const doc = {
    groups: [...groups].map(([name, rules]) => ({ name, interval: '1s', rules })),
  };
  return JSON.stringify(doc, null, 2);
}

// ------------------------------------------------------------------ real servers

/** A real server on a free port whose --web.external-url is its own address. */
async function startWithExternalUrl(
  cmd: string,
  configName: string,
  configText: string,
  args: (dir: string, url: string) => string[],
): Promise<Running> {
  const dir = await tempDir(`lookout-links-${cmd}-`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await writeFile(join(dir, configName), configText);
  return startProcess(
    cmd,
    [
      `--config.file=${join(dir, configName)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--web.external-url=${url}`,
      ...args(dir, url),
    ],
    { readyPath: '/-/ready', port, dir, timeoutMs: 30_000 },
  );
}

// ------------------------------------------------------------------ messages and links

type Kind = 'runbook' | 'dashboard' | 'alertmanager' | 'source';

interface Part {
  /** Which message and part, for failure messages. */
  name: string;
  links: FoundLink[];
  /** All the text of the part, for the no-placeholder and no-bare-path checks. */
  text: string;
}

/** A delivered email or Slack message, and the rule it is about. */
interface Message {
  sample: Sample;
  /** How many alerts it carries: 1 + the headline's "(+N more)". */
  alerts: number;
  parts: Part[];
}

/** The headline's "<emoji> <SEVERITY>: <alertname> — "; with n alerts, "(+n-1 more)" at the end. */
function headlineOf(s: Sample, n?: number): RegExp {
  const emoji = s.severity === 'critical' ? '🔴 CRITICAL' : '🟡 WARNING';
  const more = n === undefined ? '' : n > 1 ? ` \\(\\+${n - 1} more\\)$` : '(?<!more\\))$';
  return new RegExp(`^${emoji}: ${s.alert} — .*${more}`);
}

function alertCount(headline: string): number {
  const m = / \(\+(\d+) more\)$/.exec(headline);
  return m ? Number(m[1]) + 1 : 1;
}

const slackTitle = (m: SlackMessage) => m.body.attachments?.[0]?.title ?? '';
const emailTitle = (m: Email) => m.subject.replace(/^\[LOOKOUT\] /, '');

/** The sample a message is about: its headline names the alert, its body the instance. */
function sampleOf(samples: Sample[], headline: string, body: string): Sample | undefined {
  return samples.find((s) => headlineOf(s).test(headline) && body.includes(s.instance));
}

function slackMessage(sample: Sample, m: SlackMessage): Message {
  const key = `${sample.alert} on ${sample.instance}`;
  return {
    sample,
    alerts: alertCount(slackTitle(m)),
    parts: [
      { name: `Slack message of ${key}`, links: slackLinks(m.body), text: JSON.stringify(m.body) },
    ],
  };
}

function emailMessage(sample: Sample, m: Email): Message {
  const key = `${sample.alert} on ${sample.instance}`;
  return {
    sample,
    alerts: alertCount(emailTitle(m)),
    parts: [
      { name: `email (text part) of ${key}`, links: textLinks(m.text), text: m.text },
      { name: `email (HTML part) of ${key}`, links: htmlLinks(m.html), text: m.html },
    ],
  };
}

// ------------------------------------------------------------------ the test

describe('every link in a delivered notification leads somewhere', () => {
  let lookout: Running;
  let grafana: GrafanaStandIn;
  let smtp: SmtpSink;
  let slack: SlackSink;
  let am: Running;
  let prom: Running;
  let dashboards: Map<string, ShippedDashboard>;
  let samples: Sample[] = [];
  const messages: Message[] = [];
  /** Every link found, with every place it was found. */
  const found = new Map<string, string[]>();

  function kindOf(url: string): Kind | undefined {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      return undefined;
    }
    if (origin === lookout.url) return 'runbook';
    if (origin === grafana.url) return 'dashboard';
    if (origin === am.url) return 'alertmanager';
    if (origin === prom.url) return 'source';
    return undefined;
  }

  function linksOf(kind: Kind): Array<[string, string[]]> {
    return [...found].filter(([url]) => kindOf(url) === kind);
  }

  /** Fails with every bad link, where it came from and why. */
  function assertNoBroken(bad: Array<{ url: string; why: string }>, what: string) {
    const lines = bad.map(
      (b) => `  ${b.url}\n    ${b.why}\n    from: ${[...new Set(found.get(b.url))].join('; ')}`,
    );
    assert.equal(bad.length, 0, `${bad.length} ${what} do not resolve:\n${lines.join('\n')}`);
  }

  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    dashboards = await shippedDashboards();
    [lookout, grafana, smtp, slack] = await Promise.all([
      startLookout(),
      startGrafanaStandIn(dashboards),
      startSmtpSink(),
      startSlackSink(),
    ]);
    const dir = await tempDir('lookout-links-');
    const cfg = await renderAlertmanagerConfig({
      dir,
      smarthost: smtp.smarthost,
      slackUrl: slack.url,
      // group_wait: both alerts of a filesystem rule join its first message; then no update
      // or repeat while the test reads them. Prometheus sends at most 64 alerts a batch and
      // the rules fire more than that at once, so a rule's two alerts can come in two
      // batches: 10 s leaves room for the second on a loaded machine (3 s did not, in CI).
      timings: { group_wait: '10s', group_interval: '5m', repeat_interval: '1h' },
      links: { lookout: lookout.url, grafana: grafana.url },
    });
    am = await startWithExternalUrl(
      'prometheus-alertmanager',
      'alertmanager.yml',
      cfg.text,
      (d) => [`--storage.path=${join(d, 'data')}`, '--cluster.listen-address='],
    );
    samples = await notifyingRules(am.url);
    const rulesFile = join(dir, 'rules.json');
    await writeFile(rulesFile, firingRules(samples));
    const promConfig = {
      global: { evaluation_interval: '1s' },
      rule_files: [rulesFile],
      alerting: {
        alertmanagers: [{ static_configs: [{ targets: [new URL(am.url).host] }] }],
      },
    };
    prom = await startWithExternalUrl(
      'prometheus',
      'prometheus.yml',
      JSON.stringify(promConfig),
      // Alerts evaluated before Prometheus has discovered the Alertmanager are dropped;
      // the next send is one resend delay (1m by default) later.
      (d) => [`--storage.tsdb.path=${join(d, 'data')}`, '--rules.alert.resend-delay=1s'],
    );
  });

  after(async () => {
    await prom?.stop();
    await am?.stop();
    await Promise.all([lookout?.stop(), grafana?.stop(), smtp?.stop(), slack?.stop()]);
  });

  test('every warning and critical rule of every rule group arrives: in Slack, and by email when its route emails (critical; warnings of AI spend, to the cost channel)', async (t) => {
    const groups = new Set(samples.map((s) => `${s.file}/${s.group}`));
    t.diagnostic(`${samples.length} rules from ${groups.size} groups: ${[...groups].join(', ')}`);
    assert.ok(groups.size >= 4, `only ${groups.size} rule groups send anything`);
    // Each rule's message with all its alerts (both mounts of a filesystem alert).
    for (const s of samples) {
      const n = s.series.length;
      const hit = (title: string, body: string) =>
        headlineOf(s, n).test(title) && body.includes(s.instance);
      await slack.waitFor(
        (m) => hit(slackTitle(m), JSON.stringify(m.body)),
        30_000,
        `the Slack message of ${s.alert} (${s.severity}) on ${s.instance}`,
      );
      if (await emails(s))
        await smtp.waitFor(
          (m) => hit(emailTitle(m), m.text),
          30_000,
          `the email of ${s.alert} on ${s.instance}`,
        );
    }
    // Every message that arrived is read, and each is about one of the rules: no email
    // about a rule whose route does not email (a warning, outside the cost channel).
    const stray: string[] = [];
    for (const m of slack.received) {
      const s = sampleOf(samples, slackTitle(m), JSON.stringify(m.body));
      if (s) messages.push(slackMessage(s, m));
      else stray.push(`Slack: ${slackTitle(m)}`);
    }
    const emailed: Sample[] = [];
    for (const s of samples) if (await emails(s)) emailed.push(s);
    for (const m of smtp.received) {
      const s = sampleOf(emailed, emailTitle(m), m.text);
      if (s) messages.push(emailMessage(s, m));
      else stray.push(`email: ${m.subject}`);
    }
    assert.deepEqual(stray, [], 'messages about no critical (email) or warning (Slack) rule');
    for (const m of messages)
      for (const p of m.parts)
        for (const l of p.links)
          found.set(l.url, [...(found.get(l.url) ?? []), `${p.name}, ${l.where}`]);
    t.diagnostic(
      `${found.size} distinct links in ${slack.received.length} Slack messages and ${smtp.received.length} emails`,
    );
  });

  test('each message links, for each of its alerts, its runbook, dashboard and source; an email also Alertmanager', async (t) => {
    assert.ok(messages.length > 0, 'no message arrived');
    const alerts = await amAlerts(am.url);
    for (const msg of messages) {
      const k = msg.alerts;
      const mine = alerts.filter(
        (a) => a.labels.alertname === msg.sample.alert && a.labels.instance === msg.sample.instance,
      );
      // What the one setting and Prometheus's annotations make of this rule's links.
      const own = new Set(
        mine.flatMap((a) => [
          lookout.url + a.annotations.runbook_url,
          grafana.url + a.annotations.dashboard,
        ]),
      );
      for (const p of msg.parts) {
        // In the HTML part a link is an href: a URL only written in the text is not one.
        const urls = p.links
          .filter((l) => !p.name.includes('HTML') || l.where === 'email HTML href')
          .map((l) => l.url);
        const count = (kind: Kind) => urls.filter((u) => kindOf(u) === kind).length;
        const isSlack = p.name.startsWith('Slack');
        // Slack: the title links the (first) runbook too; the email: the Alertmanager link.
        const min: Record<Kind, number> = {
          runbook: isSlack ? k + 1 : k,
          dashboard: k,
          source: k,
          alertmanager: isSlack ? 0 : 1,
        };
        const total = Object.values(min).reduce((a, b) => a + b, 0);
        t.diagnostic(`${p.name}: ${urls.length} links (at least ${total})`);
        assert.ok(
          urls.length >= total,
          `${p.name}: ${urls.length} links, expected at least ${total}:\n${urls.join('\n')}`,
        );
        for (const kind of Object.keys(min) as Kind[])
          assert.ok(
            count(kind) >= min[kind],
            `${p.name}: ${count(kind)} ${kind} links, expected at least ${min[kind]}:\n${urls.join('\n')}`,
          );
        // The runbook and dashboard links are this rule's, built from the one setting.
        for (const u of urls)
          if (kindOf(u) === 'runbook' || kindOf(u) === 'dashboard')
            assert.ok(own.has(u), `${p.name}: ${u} is not one of its alerts' links: ${[...own]}`);
      }
    }
  });

  test("no link points at localhost, a placeholder, or anything but the test's lookout, Grafana, Alertmanager and Prometheus", async () => {
    assert.ok(found.size > 0, 'no links found');
    const shipped = await shippedLinkBases();
    for (const msg of messages) {
      for (const p of msg.parts) {
        for (const bad of [/localhost/i, /example\.(net|com|org)/i]) {
          assert.doesNotMatch(p.text, bad, `${p.name} mentions ${bad}`);
        }
        for (const base of [shipped.lookout, shipped.grafana])
          assert.ok(!p.text.includes(base), `${p.name} still has the shipped base ${base}`);
        const visible = p.name.includes('HTML') ? p.text.replace(/<[^>]*>/g, ' ') : p.text;
        assert.deepEqual(baselessPaths(visible), [], `${p.name}: a path with no address in front`);
      }
    }
    const elsewhere = [...found.keys()]
      .filter((url) => kindOf(url) === undefined)
      .map((url) => ({
        url,
        why: /^https?:\/\//.test(url)
          ? 'none of the servers the test set (lookout, Grafana, Alertmanager, Prometheus)'
          : 'not an absolute http(s) URL',
      }));
    assertNoBroken(elsewhere, 'links to elsewhere');
  });

  test('every runbook link opens /runbooks on lookout at an anchor that exists', async (t) => {
    const links = linksOf('runbook');
    assert.ok(links.length > 0, 'no runbook links');
    const res = await fetch(`${lookout.url}/runbooks`, { signal: AbortSignal.timeout(5000) });
    const ids = htmlIds(await res.text());
    const bad: Array<{ url: string; why: string }> = [];
    for (const [url] of links) {
      const u = new URL(url);
      const page = await fetch(u.origin + u.pathname + u.search, {
        signal: AbortSignal.timeout(5000),
      });
      const html = await page.text();
      const anchor = decodeURIComponent(u.hash.slice(1));
      if (page.status !== 200) bad.push({ url, why: `HTTP ${page.status}` });
      else if (!/^text\/html/.test(page.headers.get('content-type') ?? ''))
        bad.push({ url, why: `not an HTML page: ${page.headers.get('content-type')}` });
      else if (anchor === '') bad.push({ url, why: 'no #anchor: opens the top of the page' });
      else if (!htmlIds(html).has(anchor)) bad.push({ url, why: `no id="${anchor}" on the page` });
    }
    t.diagnostic(`${links.length} runbook links, ${ids.size} anchors on the page`);
    assertNoBroken(bad, 'runbook links');
  });

  test('every dashboard link opens a dashboard of grafana/dashboards with variables and panel it has', async (t) => {
    const links = linksOf('dashboard');
    assert.ok(links.length > 0, 'no dashboard links');
    const bad: Array<{ url: string; why: string }> = [];
    for (const [url] of links) {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (res.status !== 200) bad.push({ url, why: `HTTP ${res.status}: ${body.trim()}` });
    }
    const uids = new Set(links.map(([url]) => new URL(url).pathname));
    t.diagnostic(`${links.length} dashboard links to ${[...uids].join(', ')}`);
    assertNoBroken(bad, 'dashboard links');
  });

  test('every Alertmanager link answers on the real Alertmanager, every source link on the real Prometheus with a query that runs', async (t) => {
    const amLinks = linksOf('alertmanager');
    const sources = linksOf('source');
    assert.ok(amLinks.length > 0, 'no Alertmanager links');
    assert.ok(sources.length > 0, 'no source links');
    const bad: Array<{ url: string; why: string }> = [];
    for (const [url] of [...amLinks, ...sources]) {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (res.status !== 200) {
        bad.push({ url, why: `HTTP ${res.status}: ${body.slice(0, 200)}` });
        continue;
      }
      if (kindOf(url) === 'alertmanager') continue;
      // The source link opens Prometheus's graph page on the rule's expression.
      const u = new URL(url);
      const expr = u.searchParams.get('g0.expr');
      if (u.pathname !== '/graph' || !expr) {
        bad.push({ url, why: 'not /graph?g0.expr=...' });
        continue;
      }
      try {
        await promQuery(prom.url, expr);
      } catch (err) {
        bad.push({ url, why: `its query fails: ${(err as Error).message}` });
      }
    }
    t.diagnostic(`${amLinks.length} Alertmanager links, ${sources.length} source links`);
    assertNoBroken(bad, 'Alertmanager and source links');
  });
});

describe('the Grafana stand-in', () => {
  test('answers a shipped uid with its variables and panels, and refuses an unknown uid, variable, panel id or parameter, or an empty value', async () => {
    const dashboards = await shippedDashboards();
    const [uid, { vars, panels }] = [...dashboards].find(([, d]) => d.vars.size > 0)!;
    const grafana = await startGrafanaStandIn(dashboards);
    try {
      const status = async (path: string) => {
        const res = await fetch(grafana.url + path);
        await res.arrayBuffer();
        return res.status;
      };
      const v = [...vars][0]!;
      assert.equal(await status(`/d/${uid}?var-${v}=web1:10142`), 200);
      assert.equal(await status(`/d/${uid}/some-slug?orgId=1&var-${v}=web1:10142`), 200);
      assert.equal(await status(`/d/${uid}-nope?var-${v}=web1:10142`), 404);
      assert.equal(await status(`/d/${uid}?var-nope=web1:10142`), 404);
      assert.equal(await status(`/d/${uid}?var-${v}=`), 404);
      assert.equal(await status(`/d/${uid}?instance=web1:10142`), 404);
      assert.equal(await status(`/dashboards`), 404);
      // viewPanel opens a panel of that dashboard; a panel id it does not have is refused.
      const id = [...panels][0]!;
      const missing = Math.max(...panels) + 1;
      assert.equal(await status(`/d/${uid}?viewPanel=panel-${id}&var-${v}=web1:10142`), 200);
      assert.equal(await status(`/d/${uid}?viewPanel=${id}&var-${v}=web1:10142`), 200);
      assert.equal(await status(`/d/${uid}?viewPanel=panel-${missing}&var-${v}=web1:10142`), 404);
      assert.equal(await status(`/d/${uid}?viewPanel=panel-&var-${v}=web1:10142`), 404);
    } finally {
      await grafana.stop();
    }
  });
});
