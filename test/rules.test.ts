/**
 * The rules bundle as a whole: rules/*.yml load and their promtool tests pass (real
 * promtool), every alert is tested firing and silent, carries the labels and annotations
 * Alertmanager's templates and the runbooks rely on, and prometheus.yml is valid as the
 * compose file mounts it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { z } from 'zod';
import { REPO, tempDir } from './helpers/procs.js';
import { durationMs } from './helpers/alerting.js';
import { ALERT_NAME, syntheticAlert } from '../src/alerttest.js';

const run = promisify(execFile);

/** runbook_url and dashboard are paths; alertmanager/templates/links.tmpl makes them links. */
const RUNBOOK_BASE = '/runbooks#';
const GRAFANA_BASE = '/d/';
/**
 * Labels that name the object an alert is about (a mount, a process or container, a
 * collector, a probe target, a log); a summary must name each one its alerts carry.
 */
const OBJECT_LABELS = ['mountpoint', 'name', 'collector', 'target', 'log'];

// ------------------------------------------------------------------ file shapes

const stringMap = z.record(z.string(), z.string());

const RuleSchema = z.object({
  alert: z.string().optional(),
  record: z.string().optional(),
  expr: z.string(),
  for: z.string().optional(),
  labels: stringMap.optional(),
  annotations: stringMap.optional(),
});
const RuleFileSchema = z.object({
  groups: z.array(z.object({ name: z.string(), rules: z.array(RuleSchema) })),
});

// Label values in tests may be written unquoted (code: 500), so they are not all strings.
const ExpAlertSchema = z.object({
  exp_labels: z.record(z.string(), z.unknown()).optional(),
  exp_annotations: z.record(z.string(), z.unknown()).optional(),
});
const TestFileSchema = z.object({
  rule_files: z.array(z.string()),
  group_eval_order: z.array(z.string()).optional(),
  tests: z.array(
    z.object({
      name: z.string().optional(),
      // Prometheus 2.42 needs it on every group.
      interval: z.string(),
      input_series: z.array(z.object({ series: z.string() })).optional(),
      alert_rule_test: z
        .array(
          z.object({
            eval_time: z.string(),
            alertname: z.string(),
            exp_alerts: z.array(ExpAlertSchema).nullish(),
          }),
        )
        .optional(),
    }),
  ),
});

interface Alert {
  file: string;
  name: string;
  severity: string | undefined;
  forMs: number;
  annotations: Record<string, string>;
}

async function yamlFiles(dir: string, suffix: string): Promise<string[]> {
  const names = (await readdir(join(REPO, dir))).filter((n) => n.endsWith(suffix)).sort();
  return names.map((n) => join(dir, n));
}

async function parseYaml<T>(file: string, schema: z.ZodType<T>): Promise<T> {
  const parsed = schema.safeParse(load(await readFile(join(REPO, file), 'utf8')));
  assert.ok(parsed.success, `${file}: ${parsed.success ? '' : z.prettifyError(parsed.error)}`);
  return parsed.data;
}

const ruleFiles = await yamlFiles('rules', '.yml');
const testFiles = await yamlFiles('rules/tests', '.test.yml');
const rules = await Promise.all(
  ruleFiles.map(async (file) => ({ file, ...(await parseYaml(file, RuleFileSchema)) })),
);
const tests = await Promise.all(
  testFiles.map(async (file) => ({ file, ...(await parseYaml(file, TestFileSchema)) })),
);

const alerts: Alert[] = rules.flatMap(({ file, groups }) =>
  groups.flatMap((g) =>
    g.rules.flatMap((r) =>
      r.alert === undefined
        ? []
        : [
            {
              file,
              name: r.alert,
              severity: r.labels?.severity,
              forMs: durationMs(r.for ?? '0s'),
              annotations: r.annotations ?? {},
            },
          ],
    ),
  ),
);
const alertNames = [...new Set(alerts.map((a) => a.name))];

/** Every alert_rule_test case, with the test file it is in and its group's series. */
const cases = tests.flatMap(({ file, tests: groups }) =>
  groups.flatMap((g) =>
    (g.alert_rule_test ?? []).map((c) => ({
      file,
      series: (g.input_series ?? []).map((s) => s.series),
      ...c,
    })),
  ),
);

// ------------------------------------------------------------------ helpers

interface RunResult {
  code: number;
  output: string;
}

function isExecFailure(
  err: unknown,
): err is Error & { code: number | string; stdout: string; stderr: string } {
  return err instanceof Error && 'code' in err && 'stdout' in err && 'stderr' in err;
}

/** Runs promtool; a non-zero exit is a result to assert on, a missing binary a thrown error. */
async function promtool(args: string[], cwd = REPO): Promise<RunResult> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd, maxBuffer: 16 << 20 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    if (isExecFailure(err) && typeof err.code === 'number') {
      return { code: err.code, output: err.stdout + err.stderr };
    }
    throw new Error('promtool did not run (is the prometheus package installed?)', {
      cause: err,
    });
  }
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens. */
function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Markdown headings outside fenced code blocks (where `# comment` lines are not headings). */
function headings(markdown: string): { level: number; text: string }[] {
  const found: { level: number; text: string }[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f?.[1]) {
      if (fence === undefined) fence = f[1][0];
      else if (f[1][0] === fence) fence = undefined;
      continue;
    }
    const h = fence === undefined ? /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line) : null;
    if (h?.[1] && h[2]) found.push({ level: h[1].length, text: h[2] });
  }
  return found;
}

/** All anchors of a document, with GitHub's -1, -2 suffixes for repeated headings. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of headings(markdown)) {
    const slug = githubSlug(text);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

// ------------------------------------------------------------------ tests

describe('rules/*.yml with real promtool', () => {
  it('finds the rule and test files', () => {
    assert.ok(ruleFiles.length > 0, 'rules/*.yml');
    assert.ok(testFiles.length > 0, 'rules/tests/*.test.yml');
    assert.ok(alerts.length > 0, 'at least one alert');
  });

  it('promtool check rules passes', async () => {
    const r = await promtool(['check', 'rules', ...ruleFiles]);
    assert.equal(r.code, 0, r.output);
  });

  it('promtool test rules passes', async () => {
    const r = await promtool(['test', 'rules', ...testFiles]);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /FAILED/, r.output);
  });

  it('every rules file is loaded by a test file, which orders its groups', () => {
    for (const { file, groups } of rules) {
      const loading = tests.filter((t) =>
        t.rule_files.some((rf) => join('rules/tests', rf) === file),
      );
      assert.ok(loading.length > 0, `${file}: no rules/tests/*.test.yml loads it`);
      // Without group_eval_order promtool evaluates groups in random order, and an
      // alert built on a recording rule then fires one step late on some runs.
      if (groups.length > 1) {
        for (const t of loading) {
          // A test file may load several rule files: it lists every group of each.
          const missing = groups
            .map((g) => g.name)
            .filter((n) => !(t.group_eval_order ?? []).includes(n));
          assert.deepEqual(
            missing,
            [],
            `${t.file}: group_eval_order must list every group of ${file}, recording rules first`,
          );
        }
      }
    }
  });
});

describe('every alert', () => {
  // Two rules may share a name and severity: that is how a per-instance override looks.
  // The tiers of docs/alerts.md#severity-policy; `none` is Watchdog's alone (routed to the heartbeat).
  it('has severity critical, warning or info (none only for Watchdog)', () => {
    for (const a of alerts) {
      const ok =
        a.severity === 'critical' ||
        a.severity === 'warning' ||
        a.severity === 'info' ||
        (a.name === 'Watchdog' && a.severity === 'none');
      assert.ok(ok, `${a.file}: ${a.name} has severity ${String(a.severity)}`);
    }
  });

  it('has summary, description, runbook_url and dashboard annotations', () => {
    for (const a of alerts) {
      for (const key of ['summary', 'description', 'runbook_url', 'dashboard']) {
        assert.ok(a.annotations[key]?.trim(), `${a.file}: ${a.name} (${a.severity}) has no ${key}`);
      }
      assert.equal(
        a.annotations.runbook_url,
        RUNBOOK_BASE + a.name.toLowerCase(),
        `${a.name}: runbook_url`,
      );
      assert.match(a.annotations.summary ?? '', /\$labels\.instance\b/, `${a.name}: summary`);
      // A raw {{ $value }} prints 0.8712345 or 1.2e+10; the value goes through a humanizer.
      // (Compared, as in {{ if gt $value 0.95 }}, it is not printed.)
      for (const m of (a.annotations.description ?? '').matchAll(
        /(?<!\b(?:gt|ge|lt|le|eq|ne)\s+)\$value\b\s*(\|\s*(\w+))?/g,
      )) {
        assert.match(m[2] ?? '', /^(humanize\w*|printf)$/, `${a.name}: bare $value`);
      }
    }
  });

  it('is tested firing, for each severity, and tested silent', () => {
    for (const a of alerts) {
      const firing = cases.some(
        (c) =>
          c.alertname === a.name &&
          (c.exp_alerts ?? []).some((e) => String(e.exp_labels?.severity) === a.severity),
      );
      assert.ok(firing, `${a.name} (${a.severity}): no promtool test expects it firing`);
    }
    // Watchdog is vector(1): always firing is its whole test.
    for (const name of alertNames.filter((n) => n !== 'Watchdog')) {
      const silent = cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length === 0);
      assert.ok(silent, `${name}: no promtool test asserts it silent`);
    }
  });

  // "Silent" only counts once `for` has elapsed: a case made while the alert is still
  // pending passes whatever the threshold. The object just below the threshold is named by
  // convention (rules/tests/*.test.yml headers): a label value `below` just under the
  // lowest tier of an alert (or its only one), `between` just under a higher tier (past
  // the tier below it).
  it('is tested just below its threshold after its `for` has elapsed', () => {
    const rank = (sev: string | undefined) => ['info', 'warning', 'critical'].indexOf(sev ?? '');
    const gaps: string[] = [];
    for (const a of alerts) {
      if (a.name === 'Watchdog') continue; // vector(1): there is no below
      const lowest = Math.min(
        ...alerts.filter((x) => x.name === a.name).map((x) => rank(x.severity)),
      );
      const near = rank(a.severity) > lowest ? 'between' : 'below';
      const nearSel = new RegExp(`="${near}"`);
      const ok = cases.some(
        (c) =>
          c.alertname === a.name &&
          durationMs(c.eval_time) >= a.forMs &&
          c.series.some((sr) => nearSel.test(sr)) &&
          !(c.exp_alerts ?? []).some(
            (e) =>
              String(e.exp_labels?.severity) === a.severity &&
              Object.values(e.exp_labels ?? {}).some((v) => String(v) === near),
          ),
      );
      if (!ok) gaps.push(`${a.name} ${a.severity ?? ''} ${near}`);
    }
    assert.deepEqual(
      gaps,
      [],
      'alerts without a case just below the threshold evaluated after `for`',
    );
  });

  it('is one that a test names (a misspelt alertname would pass silently)', () => {
    for (const c of cases) {
      assert.ok(alertNames.includes(c.alertname), `${c.file}: unknown alertname ${c.alertname}`);
    }
  });

  it('names in its summary the object its alerts are about', () => {
    for (const name of alertNames) {
      const keys = new Set(
        cases
          .filter((c) => c.alertname === name)
          .flatMap((c) => (c.exp_alerts ?? []).flatMap((e) => Object.keys(e.exp_labels ?? {}))),
      );
      for (const a of alerts.filter((x) => x.name === name)) {
        for (const key of OBJECT_LABELS.filter((k) => keys.has(k))) {
          assert.match(
            a.annotations.summary ?? '',
            new RegExp(`\\$labels\\.${key}\\b`),
            `${name} (${a.severity}): its alerts carry ${key}; the summary should name it`,
          );
        }
      }
    }
  });

  it('links a dashboard that exists, with a variable it has', async () => {
    const dashboards = new Map<string, Set<string>>();
    const Dashboard = z.object({
      uid: z.string(),
      templating: z.object({ list: z.array(z.object({ name: z.string() })) }).optional(),
    });
    for (const f of await readdir(join(REPO, 'grafana/dashboards'))) {
      if (!f.endsWith('.json')) continue;
      const d = Dashboard.parse(
        JSON.parse(await readFile(join(REPO, 'grafana/dashboards', f), 'utf8')),
      );
      dashboards.set(d.uid, new Set((d.templating?.list ?? []).map((v) => v.name)));
    }
    for (const a of alerts) {
      const url = a.annotations.dashboard ?? '';
      assert.ok(url.startsWith(GRAFANA_BASE), `${a.name}: dashboard ${url}`);
      const [uid = '', query = ''] = url.slice(GRAFANA_BASE.length).split('?');
      const vars = dashboards.get(uid);
      assert.ok(vars, `${a.name}: no dashboard with uid ${uid} in grafana/dashboards/`);
      for (const m of query.matchAll(/(?:^|&)var-([^=&]+)=/g)) {
        assert.ok(vars.has(m[1] ?? ''), `${a.name}: dashboard ${uid} has no variable ${m[1]}`);
      }
    }
  });
});

describe('docs/runbooks.md', () => {
  it('has the heading every runbook_url points at, and no heading without an alert', async () => {
    const md = await readFile(join(REPO, 'docs/runbooks.md'), 'utf8');
    const all = anchors(md);
    for (const a of alerts) {
      const anchor = (a.annotations.runbook_url ?? '').split('#')[1] ?? '';
      assert.ok(all.has(anchor), `${a.name}: docs/runbooks.md has no heading #${anchor}`);
    }
    // Alerts lookout sends itself, with no rule behind them; their runbook_url is in code.
    // The alert-test code itself says where its runbook is.
    const synthetic = [ALERT_NAME];
    const sent = syntheticAlert('warning', 'h', new Date(0));
    const anchor = sent.annotations.runbook_url.split('#')[1] ?? '';
    assert.equal(sent.annotations.runbook_url, RUNBOOK_BASE + ALERT_NAME.toLowerCase());
    assert.ok(all.has(anchor), `${ALERT_NAME}: docs/runbooks.md has no heading #${anchor}`);
    const known = [...alertNames, ...synthetic];
    // Alert sections sit under one `## <area>` heading per rules file.
    const sections = headings(md).filter((h) => h.level === 3);
    for (const h of sections) {
      assert.ok(known.includes(h.text), `docs/runbooks.md: "### ${h.text}" is not an alert`);
    }
    assert.deepEqual(
      sections.map((h) => h.text).sort(),
      [...known].sort(),
      'one "### <AlertName>" section per alert',
    );
  });

  it('computes GitHub anchors like GitHub', () => {
    assert.equal(githubSlug('HostCpuHigh'), 'hostcpuhigh');
    assert.equal(githubSlug('What to do: restart it!'), 'what-to-do-restart-it');
    assert.deepEqual(
      [...anchors('# A\n```sh\n# not a heading\n```\n## A\n')],
      ['a', 'a-1'],
      'a repeated heading gets -1; a comment in a code block is no heading',
    );
  });
});

describe('prometheus.yml', () => {
  const ScrapeConfig = z.object({
    job_name: z.string(),
    file_sd_configs: z.array(z.object({ files: z.array(z.string()) })).optional(),
    static_configs: z.array(z.object({ targets: z.array(z.string()) })).optional(),
  });
  const Config = z.object({
    global: z.object({ scrape_interval: z.string(), evaluation_interval: z.string() }),
    rule_files: z.array(z.string()),
    alerting: z.object({
      alertmanagers: z.array(
        z.object({ static_configs: z.array(z.object({ targets: z.array(z.string()) })) }),
      ),
    }),
    scrape_configs: z.array(ScrapeConfig),
  });

  it('passes promtool check config where docker-compose.yml mounts it', async () => {
    // Only what compose mounts under /etc/prometheus: prometheus.yml, rules/, targets/.
    const dir = await tempDir('lookout-etc-prometheus-');
    try {
      await cp(join(REPO, 'prometheus.yml'), join(dir, 'prometheus.yml'));
      await cp(join(REPO, 'rules'), join(dir, 'rules'), { recursive: true });
      await cp(join(REPO, 'targets'), join(dir, 'targets'), { recursive: true });
      const r = await promtool(['check', 'config', 'prometheus.yml'], dir);
      assert.equal(r.code, 0, r.output);
      // A missing file_sd file is only a warning to promtool; here it is a broken mount.
      assert.doesNotMatch(r.output, /WARNING/, r.output);
      assert.match(r.output, new RegExp(`SUCCESS: ${ruleFiles.length} rule files found`), r.output);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('scrapes lookout from targets/lookout.yml, itself and Alertmanager, and alerts', async () => {
    const cfg = await parseYaml('prometheus.yml', Config);
    assert.equal(cfg.global.scrape_interval, '15s');
    assert.equal(cfg.global.evaluation_interval, '15s');
    assert.deepEqual(cfg.rule_files, ['rules/*.yml']);
    assert.deepEqual(
      cfg.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets)),
      ['alertmanager:9093'],
    );
    const job = (name: string) => cfg.scrape_configs.find((s) => s.job_name === name);
    assert.deepEqual(job('lookout')?.file_sd_configs, [{ files: ['targets/lookout.yml'] }]);
    assert.ok(job('prometheus')?.static_configs?.[0]?.targets.length, 'job prometheus');
    assert.deepEqual(job('alertmanager')?.static_configs?.[0]?.targets, ['alertmanager:9093']);

    const targets = await parseYaml(
      'targets/lookout.yml',
      z.array(z.object({ targets: z.array(z.string()) })),
    );
    assert.deepEqual(
      targets.flatMap((t) => t.targets),
      ['lookout:10142'],
      'the compose service, on lookout’s port',
    );
  });
});
