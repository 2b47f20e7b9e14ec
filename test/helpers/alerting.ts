/**
 * Test copies of the shipped alerting config: alertmanager.yml with only addresses,
 * paths and timings substituted, and rules/*.yml with only `for:` and `keep_firing_for:`
 * shortened. Everything else — routes, receivers, inhibit rules, templates, thresholds,
 * annotations — is the file a user deploys.
 */
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { REPO } from './procs.js';
import { formatDuration, parseDuration } from '../../src/config/duration.js';

const run = promisify(execFile);

/** Where alertmanager.yml expects things inside the Alertmanager container. */
export const AM_SECRETS_DIR = '/etc/alertmanager/secrets/';
export const AM_TEMPLATES_DIR = '/etc/alertmanager/templates/';

type Yaml = null | boolean | number | string | Yaml[] | { [k: string]: Yaml };
export type YamlMap = { [k: string]: Yaml };

function isMap(v: Yaml | undefined): v is YamlMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep copy with every string passed through fn (used to rewrite path prefixes). */
function mapStrings(v: Yaml, fn: (s: string) => string): Yaml {
  if (typeof v === 'string') return fn(v);
  if (Array.isArray(v)) return v.map((x) => mapStrings(x, fn));
  if (isMap(v))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapStrings(x, fn)]));
  return v;
}

/**
 * alertmanager.yml, as shipped or with the heartbeat set up the way its comment tells a
 * user to: the three commented lines under `- name: heartbeat` uncommented, with the
 * switch's URL in place of the placeholder.
 */
export async function loadAlertmanagerYml(heartbeatUrl?: string): Promise<YamlMap> {
  let text = await readFile(join(REPO, 'alertmanager.yml'), 'utf8');
  if (heartbeatUrl !== undefined) text = withHeartbeat(text, heartbeatUrl);
  const doc = load(text) as Yaml;
  if (!isMap(doc)) throw new Error('alertmanager.yml: not a mapping');
  return doc;
}

const HEARTBEAT_BLOCK =
  /^( {2}- name: heartbeat\n)( {4})# (webhook_configs:\n)\2# ( {2}- url: )\S+\n\2# ( {4}send_resolved: false)$/m;

/** The shipped text with the heartbeat's commented webhook uncommented and pointed at url. */
export function withHeartbeat(text: string, url: string): string {
  if (!HEARTBEAT_BLOCK.test(text))
    throw new Error('alertmanager.yml: no commented webhook under `- name: heartbeat`');
  return text.replace(
    HEARTBEAT_BLOCK,
    (_, name: string, indent: string, hooks: string, urlKey: string, resolved: string) =>
      `${name}${indent}${hooks}${indent}${urlKey}${url}\n${indent}${resolved}`,
  );
}

export interface AmTestConfig {
  /** The config text (JSON, which Alertmanager reads as YAML). */
  text: string;
  config: YamlMap;
  smtpPassword: string;
  secretsDir: string;
}

/**
 * alertmanager.yml for a test: SMTP to the local sink (no TLS — the sink has none), the
 * Slack webhook URL and SMTP password in secret files under dir (written the way the
 * docs say, without a trailing newline), the repo's templates, and the given timings.
 */
export async function renderAlertmanagerConfig(opts: {
  dir: string;
  smarthost: string;
  slackUrl: string;
  /** Set up the heartbeat (Watchdog) webhook, as its comment says, to this local sink.
   *  Without it the heartbeat receiver stays as shipped: it sends nothing. */
  heartbeatUrl?: string;
  timings?: Timings;
  /** Timings of the heartbeat (Watchdog) route, which has its own. */
  heartbeatTimings?: Timings;
  /** The two public addresses of links.tmpl, for a test that follows the links; the
   *  templates are then a copy in dir with only those two lines changed. */
  links?: LinkBases;
}): Promise<AmTestConfig> {
  const secretsDir = join(opts.dir, 'secrets');
  await mkdir(secretsDir, { recursive: true });
  const smtpPassword = `pw-${process.pid}-${Date.now()}`;
  await writeFile(join(secretsDir, 'smtp_password'), smtpPassword, { mode: 0o600 });
  await writeFile(join(secretsDir, 'slack_webhook_url'), opts.slackUrl, { mode: 0o600 });

  let templatesDir = join(REPO, 'alertmanager/templates');
  if (opts.links) {
    const copy = join(opts.dir, 'templates');
    await cp(templatesDir, copy, { recursive: true });
    const file = join(copy, 'links.tmpl');
    await writeFile(file, withLinkBases(await readFile(file, 'utf8'), opts.links));
    templatesDir = copy;
  }

  const shipped = await loadAlertmanagerYml(opts.heartbeatUrl);
  const config = mapStrings(shipped, (s) =>
    s.startsWith(AM_SECRETS_DIR)
      ? join(secretsDir, s.slice(AM_SECRETS_DIR.length))
      : s.startsWith(AM_TEMPLATES_DIR)
        ? join(templatesDir, s.slice(AM_TEMPLATES_DIR.length))
        : s,
  ) as YamlMap;
  const global = config.global;
  const route = config.route;
  if (!isMap(global) || !isMap(route)) throw new Error('alertmanager.yml: no global or route');
  global.smtp_smarthost = opts.smarthost;
  global.smtp_require_tls = false;
  Object.assign(route, opts.timings ?? {});
  if (opts.heartbeatTimings) {
    const hb = Array.isArray(route.routes)
      ? route.routes.find((r) => isMap(r) && r.receiver === 'heartbeat')
      : undefined;
    if (!isMap(hb)) throw new Error('alertmanager.yml: no route to the heartbeat receiver');
    Object.assign(hb, opts.heartbeatTimings);
  }
  return { text: JSON.stringify(config, null, 2), config, smtpPassword, secretsDir };
}

export interface Timings {
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
}

// ---------------------------------------------------------------- links

/** The public addresses alertmanager/templates/links.tmpl puts in front of rules' paths. */
export interface LinkBases {
  lookout: string;
  grafana: string;
}

const LINK_DEFINE = (name: keyof LinkBases) =>
  new RegExp(`(\\{\\{ define "lookout\\.link\\.${name}" \\}\\})([^{]*)(\\{\\{ end \\}\\})`);

/** The two addresses as shipped in links.tmpl. */
export async function shippedLinkBases(): Promise<LinkBases> {
  const text = await readFile(join(REPO, 'alertmanager/templates/links.tmpl'), 'utf8');
  const get = (name: keyof LinkBases) => {
    const m = LINK_DEFINE(name).exec(text);
    if (!m?.[2]) throw new Error(`links.tmpl: no define "lookout.link.${name}"`);
    return m[2];
  };
  return { lookout: get('lookout'), grafana: get('grafana') };
}

/** links.tmpl with the two addresses replaced and nothing else. */
function withLinkBases(text: string, links: LinkBases): string {
  let out = text;
  for (const name of ['lookout', 'grafana'] as const) {
    if (!LINK_DEFINE(name).test(out))
      throw new Error(`links.tmpl: no define "lookout.link.${name}"`);
    out = out.replace(
      LINK_DEFINE(name),
      (_, open: string, _old: string, end: string) => open + links[name] + end,
    );
  }
  return out;
}

// ---------------------------------------------------------------- durations

/**
 * A Prometheus duration in milliseconds, through the one parser lookout has
 * (src/config/duration.ts); here the text comes from a shipped file or a test, so text
 * that is not a duration is a bug to stop at, not a value to report.
 */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`not a Prometheus duration: "${text}"`);
  return ms;
}

// ---------------------------------------------------------------- rules

export interface RuleTiming {
  file: string;
  alert: string;
  severity: string;
  forOriginal: string;
  forShortened: string;
  /** The summary annotation as written (a Prometheus template). */
  summary: string;
}

/**
 * Copies rules/*.yml to dir with every alert's `for:` and `keep_firing_for:` passed through
 * shorten; nothing else changes (thresholds, labels, annotations, recording rules stay as shipped). Returns the
 * timings, so a test can print them.
 */
export async function copyRulesWithShortFor(
  dir: string,
  shorten: (ms: number) => number,
  /** false: leave keep_firing_for out, as deploy/ha/vmalert-rules.sh does for vmalert 1.79. */
  keepFiringFor = true,
): Promise<RuleTiming[]> {
  const src = join(REPO, 'rules');
  const files = (await readdir(src)).filter((f) => /\.ya?ml$/.test(f)).sort();
  if (files.length === 0) throw new Error(`no rule files in ${src}`);
  await mkdir(dir, { recursive: true });
  const timings: RuleTiming[] = [];
  for (const file of files) {
    const doc = load(await readFile(join(src, file), 'utf8')) as Yaml;
    const groups = isMap(doc) ? doc.groups : undefined;
    if (!Array.isArray(groups)) throw new Error(`${file}: no groups`);
    for (const group of groups) {
      const rules = isMap(group) ? group.rules : undefined;
      if (!Array.isArray(rules)) continue;
      for (const rule of rules) {
        if (!isMap(rule) || typeof rule.alert !== 'string') continue;
        const original = typeof rule.for === 'string' ? rule.for : '0s';
        const shortened = formatDuration(shorten(durationMs(original)));
        rule.for = shortened;
        // keep_firing_for is a time too: shipped (minutes) it would hold every resolved
        // notice of the copy that long.
        if (!keepFiringFor) delete rule.keep_firing_for;
        else if (typeof rule.keep_firing_for === 'string')
          rule.keep_firing_for = formatDuration(shorten(durationMs(rule.keep_firing_for)));
        const labels = rule.labels;
        const annotations = rule.annotations;
        timings.push({
          file,
          alert: rule.alert,
          severity: isMap(labels) && typeof labels.severity === 'string' ? labels.severity : '',
          forOriginal: original,
          forShortened: shortened,
          summary:
            isMap(annotations) && typeof annotations.summary === 'string'
              ? annotations.summary
              : '',
        });
      }
    }
    // JSON is YAML: no re-serialisation quirks in the expressions and templates.
    await writeFile(join(dir, file), JSON.stringify(doc, null, 2));
  }
  return timings;
}

/**
 * Expands a summary that uses only {{ $labels.x }} (what lookout's summaries use), so a
 * test can compute the exact subject from the rule file instead of copying its wording.
 */
export function expandLabels(template: string, labels: Record<string, string>): string {
  const out = template.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, name: string) => {
    const v = labels[name];
    if (v === undefined)
      throw new Error(`summary uses $labels.${name}, not among ${Object.keys(labels)}`);
    return v;
  });
  if (out.includes('{{')) throw new Error(`summary needs more than $labels to expand: ${template}`);
  return out;
}

// ---------------------------------------------------------------- Alertmanager API

export interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: {
    state: 'active' | 'suppressed' | 'unprocessed';
    inhibitedBy: string[];
    silencedBy: string[];
  };
}

/** GET /api/v2/alerts, optionally filtered by label matchers like 'severity="warning"'. */
export async function amAlerts(amUrl: string, filters: string[] = []): Promise<AmAlert[]> {
  const qs = filters.map((f) => `filter=${encodeURIComponent(f)}`).join('&');
  const res = await fetch(`${amUrl}/api/v2/alerts${qs ? '?' + qs : ''}`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`GET ${amUrl}/api/v2/alerts: ${res.status} ${await res.text()}`);
  return (await res.json()) as AmAlert[];
}

/** POST /api/v2/alerts (what Prometheus and `lookout alert-test` do). */
export async function amPost(
  amUrl: string,
  alerts: Array<Pick<AmAlert, 'labels' | 'annotations' | 'startsAt' | 'endsAt'>>,
): Promise<void> {
  const res = await fetch(`${amUrl}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(alerts),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`POST ${amUrl}/api/v2/alerts: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

// ---------------------------------------------------------------- commands

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit is a result, not a throw. */
export async function runCommand(
  cmd: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: timeoutMs, encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The built CLI, as a user runs it. */
export function runLookout(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return runCommand(process.execPath, [join(REPO, 'dist/cli.js'), ...args], timeoutMs);
}

/** An alerting rule as rules/*.yml ships it. */
export interface ShippedAlertRule {
  /** The rule file's name under rules/, and the group's name in it. */
  file: string;
  group: string;
  alert: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Every alerting rule of rules/*.yml, file by file in name order, in file order. */
export async function shippedAlertRules(): Promise<ShippedAlertRule[]> {
  const dir = join(REPO, 'rules');
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const rules: ShippedAlertRule[] = [];
  for (const file of files) {
    const doc = load(await readFile(join(dir, file), 'utf8')) as {
      groups: Array<{ name: string; rules: Array<Partial<ShippedAlertRule>> }>;
    };
    for (const group of doc.groups) {
      for (const r of group.rules) {
        if (!r.alert) continue;
        const { alert, labels = {}, annotations = {} } = r;
        rules.push({ file, group: group.name, alert, labels, annotations });
      }
    }
  }
  return rules;
}
