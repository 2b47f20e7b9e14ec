/**
 * Builds the generated parts of docs/metrics.md and docs/alerts.md from what the repo
 * itself declares, so the reference cannot drift from the code:
 *
 * - families: each registered collector's `metrics` list (src/collectors), with HELP,
 *   TYPE and label names read from a real exposition — lookout (from src, through tsx,
 *   so a stale dist/ cannot mislead it) started on the fixture /proc with every
 *   collector on and local stand-ins for what they watch (a stub_status page, an HTTP
 *   and a Redis server, a certificate file, an access log);
 * - alerts and recording rules: rules/*.yml; routes: alertmanager.yml's route tree;
 * - panels: grafana/dashboards/*.json.
 *
 * Each document keeps its hand-written text; only what lies between
 * `<!-- BEGIN GENERATED ... -->` and `<!-- END GENERATED -->` is replaced.
 *
 *   npm run gen:reference            rewrite docs/metrics.md and docs/alerts.md
 *   npm run gen:reference -- --check exit 1 and name the stale files instead
 *   npm run gen:reference -- --annotations
 *                                    print each alert's dashboard annotation, opening its panel
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { headings } from './markdown.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const FIX_COMMAND = 'npm run gen:reference';

// ------------------------------------------------------------------ families

export interface Family {
  name: string;
  type: string;
  help: string;
  labels: string[];
  /** Whether any sample was seen: a family with none has label names nobody saw. */
  sampled: boolean;
  /** The collector that declares it; `lookout` for the runner's and the door's own. */
  collector: string;
}

/**
 * prom-client's defaults whose samples exist only while libuv has such requests or
 * handles in flight: their labels, so the reference does not depend on the moment.
 */
const COME_AND_GO: Record<string, readonly string[]> = {
  nodejs_active_requests: ['type'],
  nodejs_active_handles: ['type'],
  nodejs_active_resources: ['type'],
};

interface Declared {
  collector: string;
  /** A family name, or a prefix ending in `*`. */
  pattern: string;
}

/** Whether a declared name (`lookout_x`, or a prefix such as `process_*`) covers a family. */
function covers(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/** One exposition's families: HELP, TYPE, and the union of label names its samples carry. */
export function parseFamilies(text: string): Map<string, Omit<Family, 'collector'>> {
  const families = new Map<string, Omit<Family, 'collector'>>();
  const get = (name: string) => {
    let f = families.get(name);
    if (!f)
      families.set(name, (f = { name, type: 'untyped', help: '', labels: [], sampled: false }));
    return f;
  };
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = get(meta[2]!);
      if (meta[1] === 'HELP') f.help = meta[3]!.replace(/\\n/g, ' ').replace(/\\\\/g, '\\');
      else f.type = meta[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? /.exec(line);
    if (!sample) continue;
    let name = sample[1]!;
    if (!families.has(name)) {
      const base = name.replace(/_(bucket|sum|count|total|created)$/, '');
      if (families.has(base)) name = base;
    }
    const f = get(name);
    f.sampled = true;
    for (const m of (sample[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) {
      const label = m[1]!;
      if ((label === 'le' || label === 'quantile') && f.type !== 'gauge') continue;
      if (!f.labels.includes(label)) f.labels.push(label);
    }
  }
  return families;
}

/** Every collector's declared families, and its default `enabled`, from the code. */
async function declarations(): Promise<{
  declared: Declared[];
  collectors: Array<{ name: string; description: string; enabledByDefault: boolean }>;
  blocks: Record<string, unknown>;
}> {
  const { collectorDefinitions } = await import('../src/collectors/index.js');
  const declared: Declared[] = [];
  const collectors = [];
  const blocks: Record<string, unknown> = {};
  for (const [name, def] of collectorDefinitions()) {
    for (const pattern of def.metrics) declared.push({ collector: name, pattern });
    const defaults = def.schema.safeParse({});
    const enabledByDefault =
      defaults.success && (defaults.data as { enabled?: boolean }).enabled === true;
    collectors.push({ name, description: def.description, enabledByDefault });
    // On, refreshed often, so every family shows up within seconds. A collector whose
    // schema wants more than this (one this script does not know yet) keeps its defaults
    // and its families are listed as declared, without type or labels.
    for (const block of [
      { enabled: true, interval: '1s', timeout: '1s' },
      { enabled: true },
      undefined,
    ]) {
      if (block === undefined || def.schema.safeParse(block).success) {
        if (block) blocks[name] = block;
        break;
      }
    }
  }
  return { declared, collectors, blocks };
}

// ------------------------------------------------------------------ stand-ins

const STUB_STATUS =
  'Active connections: 3 \nserver accepts handled requests\n 10 10 20 \nReading: 0 Writing: 1 Waiting: 2 \n';

async function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Answers PING and LLEN as Redis does: enough for the redis probe's families. */
function redisStandIn() {
  return createTcpServer((socket) => {
    let buf = '';
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      // RESP arrays of bulk strings: *N\r\n($len\r\nvalue\r\n)*N
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(buf);
        if (!m) return;
        let at = m[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const len = /^\$(\d+)\r\n/.exec(buf.slice(at));
          if (!len) return;
          at += len[0].length;
          if (buf.length < at + Number(len[1]) + 2) return;
          args.push(buf.slice(at, at + Number(len[1])));
          at += Number(len[1]) + 2;
        }
        buf = buf.slice(at);
        const cmd = args[0]?.toUpperCase();
        socket.write(cmd === 'PING' ? '+PONG\r\n' : cmd === 'LLEN' ? ':3\r\n' : '+OK\r\n');
      }
    });
    socket.on('error', () => socket.destroy());
  });
}

const run = promisify(execFile);

// ------------------------------------------------------------------ the exposition

/**
 * What lookout exports with every collector on, on the fixture /proc and local
 * stand-ins: the exposition text once every declared `lookout_*` family has shown up (or
 * after 60 s, whatever is there then).
 */
async function liveExposition(
  declared: Declared[],
  blocks: Record<string, unknown>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lookout-gen-reference-'));
  const http = createServer((req, res) => {
    if (req.url === '/stub_status') res.end(STUB_STATUS);
    else res.end('ok\n');
  });
  const redis = redisStandIn();
  let child: ChildProcess | undefined;
  try {
    const [httpPort, redisPort, lookoutPort] = await Promise.all([
      listen(http),
      listen(redis),
      freePort(),
    ]);
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=reference.invalid',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const log = join(dir, 'access.log');
    const usage = join(dir, 'ai-usage.jsonl');
    await writeFile(
      usage,
      JSON.stringify({
        id: 'reference-1',
        service: 'web',
        model: 'model-without-a-price',
        provider: 'example',
        input_tokens: 10,
        output_tokens: 5,
      }) + '\n',
    );
    const fast = { interval: '1s', timeout: '1s' };
    const config = {
      paths: {
        procfs: join(REPO, 'test/fixtures/proc'),
        sysfs: join(dir, 'no-sys'),
        rootfs: join(REPO, 'test/fixtures/rootfs'),
      },
      storage: { path: join(dir, 'state') },
      collectors: {
        ...blocks,
        nginx: {
          enabled: true,
          ...fast,
          status_url: `http://127.0.0.1:${httpPort}/stub_status`,
        },
        tls: { enabled: true, ...fast, targets: [{ file: join(dir, 'cert.pem'), name: 'file' }] },
        accesslog: {
          enabled: true,
          logs: [{ name: 'web', path: log, routes: [{ name: 'api', match: '^/api/' }] }],
        },
        aicost: {
          enabled: true,
          jsonl: [usage],
          budgets: [{ period: 'day', usd: 10 }],
        },
        probes: {
          enabled: true,
          ...fast,
          targets: [
            { kind: 'http', name: 'http', url: `http://127.0.0.1:${httpPort}/` },
            { kind: 'tcp', name: 'tcp', address: `127.0.0.1:${httpPort}` },
            {
              kind: 'redis',
              name: 'redis',
              address: `127.0.0.1:${redisPort}`,
              list_keys: ['queue'],
            },
          ],
        },
      },
    };
    const configFile = join(dir, 'lookout.yml');
    await writeFile(configFile, JSON.stringify(config));
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO, 'src/cli.ts'),
        'serve',
        '--config',
        configFile,
        '--web.listen-address',
        `127.0.0.1:${lookoutPort}`,
      ],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    const exited = once(child, 'exit');
    // The containers collector needs a Docker engine, which the generator does not start:
    // its families are documented from the code as "not seen" without waiting for them.
    const want = declared.filter(
      (d) =>
        d.pattern.startsWith('lookout_') &&
        !d.pattern.endsWith('*') &&
        d.collector !== 'containers',
    );
    const until = Date.now() + 60_000;
    let text = '';
    let logged = false;
    while (Date.now() < until) {
      if (child.exitCode !== null) throw new Error(`lookout exited:\n${stderr}`);
      try {
        const res = await fetch(`http://127.0.0.1:${lookoutPort}/metrics`);
        text = await res.text();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (!logged) {
        // A file that did not exist at start is read from its beginning.
        const line = (path: string) =>
          `127.0.0.1 - - [06/Dec/2026:08:00:00 +0000] "GET ${path} HTTP/1.1" 200 12 "-" "curl" 0.004 0.003\n`;
        await appendFile(log, line('/api/x') + line('/'));
        logged = true;
      }
      const families = parseFamilies(text);
      const seen = (name: string) => families.get(name)?.sampled === true;
      if (want.every((d) => seen(d.pattern)) && seen('nodejs_gc_duration_seconds')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    return text;
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    http.close();
    redis.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  const s = createTcpServer();
  const port = await listen(s);
  s.close();
  return port;
}

// ------------------------------------------------------------------ rules and dashboards

export interface AlertRule {
  file: string;
  alert: string;
  expr: string;
  for: string;
  severity: string;
  /** The rule's labels (severity among them): what Alertmanager routes on. */
  labels: Record<string, string>;
  runbook: string;
  dashboard: string;
  summary: string;
}

interface Rules {
  alerts: AlertRule[];
  /** Recording rule name → its expression. */
  records: Map<string, string>;
}

interface YamlRule {
  alert?: string;
  record?: string;
  expr?: string | number;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function rulesOf(): Promise<Rules> {
  const alerts: AlertRule[] = [];
  const records = new Map<string, string>();
  const files = (await readdir(join(REPO, 'rules'))).filter((f) => f.endsWith('.yml')).sort();
  for (const file of files) {
    const doc = load(await readFile(join(REPO, 'rules', file), 'utf8')) as {
      groups?: Array<{ rules?: YamlRule[] }>;
    } | null;
    for (const group of doc?.groups ?? [])
      for (const r of group.rules ?? []) {
        const expr = String(r.expr ?? '');
        if (r.record) records.set(r.record, `${records.get(r.record) ?? ''}\n${expr}`);
        if (r.alert)
          alerts.push({
            file,
            alert: r.alert,
            expr,
            for: r.for ?? '0s',
            severity: r.labels?.severity ?? '',
            labels: r.labels ?? {},
            runbook: r.annotations?.runbook_url ?? '',
            dashboard: r.annotations?.dashboard ?? '',
            summary: r.annotations?.summary ?? '',
          });
      }
  }
  return { alerts, records };
}

export interface Panel {
  uid: string;
  dashboard: string;
  file: string;
  id: number;
  title: string;
  /** The visualisation: timeseries, stat, table, ... */
  type: string;
  exprs: string[];
  /** Layout order: top to bottom, left to right. */
  order: number;
}

interface GrafanaPanel {
  id?: number;
  title?: string;
  type?: string;
  gridPos?: { x?: number; y?: number };
  targets?: Array<{ expr?: string }>;
  panels?: GrafanaPanel[];
}

async function panelsOf(): Promise<Panel[]> {
  const panels: Panel[] = [];
  const dir = join(REPO, 'grafana/dashboards');
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()) {
    const d = JSON.parse(await readFile(join(dir, file), 'utf8')) as {
      uid: string;
      title: string;
      panels?: GrafanaPanel[];
    };
    const walk = (list: GrafanaPanel[] | undefined) => {
      for (const p of list ?? []) {
        const exprs = (p.targets ?? []).map((t) => t.expr ?? '').filter((e) => e !== '');
        if (p.type !== 'row' && p.id !== undefined && exprs.length > 0)
          panels.push({
            uid: d.uid,
            dashboard: d.title,
            file,
            id: p.id,
            title: p.title ?? '',
            type: p.type ?? '',
            exprs,
            order: (p.gridPos?.y ?? 0) * 100 + (p.gridPos?.x ?? 0),
          });
        walk(p.panels);
      }
    };
    walk(d.panels);
  }
  return panels;
}

/** The identifiers of a PromQL expression (metric names among them), label matchers dropped. */
function identifiers(expr: string): Set<string> {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  return new Set(bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []);
}

/**
 * The families an expression reads, following recording rules to the families they
 * read. `_bucket`, `_sum` and `_count` count for their histogram.
 */
function familiesIn(
  expr: string,
  families: Set<string>,
  records: Map<string, string>,
): Set<string> {
  const out = new Set<string>();
  const seen = new Set<string>();
  const visit = (e: string) => {
    for (const id of identifiers(e)) {
      const base = families.has(id) ? id : id.replace(/_(bucket|sum|count)$/, '');
      if (families.has(base)) out.add(base);
      else if (records.has(id) && !seen.has(id)) {
        seen.add(id);
        visit(records.get(id)!);
      }
    }
  };
  visit(expr);
  return out;
}

// ------------------------------------------------------------------ routing

interface Route {
  receiver?: string;
  matchers?: string[];
  match?: Record<string, string>;
  match_re?: Record<string, string>;
  continue?: boolean;
  routes?: Route[];
}

function matches(route: Route, labels: Record<string, string>): boolean {
  for (const m of route.matchers ?? []) {
    const p = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$/.exec(m);
    if (!p) return false;
    const value = labels[p[1]!] ?? '';
    const re = new RegExp(`^(?:${p[3]})$`);
    const ok =
      p[2] === '='
        ? value === p[3]
        : p[2] === '!='
          ? value !== p[3]
          : p[2] === '=~'
            ? re.test(value)
            : !re.test(value);
    if (!ok) return false;
  }
  for (const [k, v] of Object.entries(route.match ?? {})) if ((labels[k] ?? '') !== v) return false;
  for (const [k, v] of Object.entries(route.match_re ?? {}))
    if (!new RegExp(`^(?:${v})$`).test(labels[k] ?? '')) return false;
  return true;
}

/** The receivers an alert with these labels reaches, as Alertmanager walks its routes. */
export function receivers(route: Route, labels: Record<string, string>, inherited = ''): string[] {
  const receiver = route.receiver ?? inherited;
  const out: string[] = [];
  for (const child of route.routes ?? []) {
    if (!matches(child, labels)) continue;
    out.push(...receivers(child, labels, receiver));
    if (!child.continue) break;
  }
  return out.length > 0 ? out : [receiver];
}

// ------------------------------------------------------------------ rendering

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
const code = (s: string) => (s === '' ? '' : `\`${cell(s)}\``);

/** docs/runbooks.md's headings by anchor, to name a runbook section by its title. */
let runbookHeadings = new Map<string, string>();

/** A link to the runbook section a runbook_url (`/runbooks#hostcpuhigh`) points at. */
function runbookLink(url: string): string {
  const m = /^\/runbooks#(.+)$/.exec(url);
  if (!m) return url === '' ? '—' : code(url);
  return `[${cell(runbookHeadings.get(m[1]!) ?? m[1]!)}](runbooks.md#${m[1]})`;
}

/** An expression's series names, and those of the recording rules it reads, recursively. */
function expandedIds(expr: string, records: Map<string, string>): Set<string> {
  const out = new Set<string>();
  const visit = (e: string) => {
    for (const id of identifiers(e)) {
      if (out.has(id)) continue;
      out.add(id);
      const rec = records.get(id);
      if (rec !== undefined) visit(rec);
    }
  };
  visit(expr);
  return out;
}

/** Series-like names: what two expressions sharing means they show the same thing. */
const seriesName = (id: string) => id.includes('_') || id === 'up';

/**
 * The panel an alert's dashboard link should open: on the dashboard its annotation
 * names, the one whose queries share most series names (and recording rules) with the
 * alert's expression; then most of what those read underneath; then a time series over
 * a single stat (an alert wants the history); then the first in the layout.
 */
export function panelFor(
  rule: AlertRule,
  panels: Panel[],
  records: Map<string, string> = new Map(),
): Panel | undefined {
  const uid = /\/d\/([^/?]+)/.exec(rule.dashboard)?.[1];
  const direct = identifiers(rule.expr);
  const deep = expandedIds(rule.expr, records);
  let best: Panel | undefined;
  let bestScore = 0;
  for (const p of panels.filter((q) => q.uid === uid).sort((a, b) => a.order - b.order)) {
    const text = p.exprs.join('\n');
    let shared = 0;
    for (const id of identifiers(text)) if (direct.has(id) && seriesName(id)) shared++;
    let under = 0;
    for (const id of expandedIds(text, records)) if (deep.has(id) && seriesName(id)) under++;
    if (shared + under === 0) continue;
    const score = shared * 10_000 + under * 10 + (p.type === 'timeseries' ? 1 : 0);
    if (score > bestScore) [best, bestScore] = [p, score];
  }
  return best;
}

/** One panel per alert: its tiers' expressions read together, so every tier opens the same one. */
function panelOfAlert(rule: AlertRule, rules: Rules, panels: Panel[]): Panel | undefined {
  const tiers = rules.alerts.filter(
    (r) => r.alert === rule.alert && r.dashboard === rule.dashboard,
  );
  return panelFor({ ...rule, expr: tiers.map((r) => r.expr).join('\n') }, panels, rules.records);
}

/** The dashboard annotation that opens that panel for the alert's instance. */
export function panelLink(p: Panel): string {
  return `/d/${p.uid}?viewPanel=panel-${p.id}&var-instance={{ $labels.instance }}`;
}

const SEVERITY_ORDER = ['critical', 'warning', 'info', 'none'];

function alertsTable(rules: Rules, route: Route, panels: Panel[]): string {
  const lines: string[] = [];
  const byFile = new Map<string, AlertRule[]>();
  for (const a of rules.alerts) byFile.set(a.file, [...(byFile.get(a.file) ?? []), a]);
  for (const [file, alerts] of byFile) {
    lines.push(`### ${file.replace(/\.yml$/, '')}`, '');
    lines.push(`From [rules/${file}](../rules/${file}).`, '');
    lines.push(
      '| alert | tier | for | route | condition | runbook | panel |',
      '|---|---|---|---|---|---|---|',
    );
    const sorted = [...alerts].sort(
      (a, b) =>
        alerts.findIndex((x) => x.alert === a.alert) -
          alerts.findIndex((x) => x.alert === b.alert) ||
        SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity),
    );
    for (const a of sorted) {
      const to = receivers(route, { ...a.labels, alertname: a.alert });
      const p = panelOfAlert(a, rules, panels);
      lines.push(
        `| ${a.alert} | ${a.severity || '—'} | ${a.for} | ${to.join(', ')} | ${code(a.expr)} | ${runbookLink(a.runbook)} | ${p ? `[${cell(p.dashboard)} › ${cell(p.title)}](../grafana/dashboards/${p.file}) \`viewPanel=panel-${p.id}\`` : '—'} |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}

function metricsTable(fams: Family[], rules: Rules, panels: Panel[], collectors: string[]): string {
  const names = new Set(fams.map((f) => f.name));
  const alertsOf = new Map<string, AlertRule[]>();
  for (const a of rules.alerts)
    for (const f of familiesIn(a.expr, names, rules.records))
      alertsOf.set(f, [...(alertsOf.get(f) ?? []), a]);
  const panelsOf = new Map<string, Panel[]>();
  for (const p of panels)
    for (const f of familiesIn(p.exprs.join('\n'), names, rules.records))
      panelsOf.set(f, [...(panelsOf.get(f) ?? []), p]);
  const lines: string[] = [];
  for (const collector of [...collectors, 'lookout']) {
    const mine = fams.filter((f) => f.collector === collector);
    if (mine.length === 0) continue;
    lines.push(`### ${collector}`, '');
    if (collector === 'lookout')
      lines.push("The runner's and the door's own families: on whatever collectors run.", '');
    lines.push(
      '| metric | type | labels | meaning | alerts | runbooks | panels |',
      '|---|---|---|---|---|---|---|',
    );
    for (const f of mine) {
      const alerts = [...new Set((alertsOf.get(f.name) ?? []).map((a) => a.alert))];
      const runbooks = [
        ...new Set((alertsOf.get(f.name) ?? []).map((a) => a.runbook).filter((r) => r !== '')),
      ];
      const ps = [
        ...new Set(
          (panelsOf.get(f.name) ?? []).map((p) => `${cell(p.dashboard)} › ${cell(p.title)}`),
        ),
      ];
      const labels = f.sampled ? f.labels : COME_AND_GO[f.name];
      lines.push(
        `| \`${f.name}\` | ${f.type} | ${labels ? labels.map((l) => `\`${l}\``).join(', ') || '—' : 'no sample seen'} | ${cell(f.help) || '—'} | ${alerts.join(', ') || '—'} | ${runbooks.map(runbookLink).join(', ') || '—'} | ${ps.join('; ') || '—'} |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** Replaces what lies between the markers named `name`, keeping the rest of the file. */
export function splice(doc: string, name: string, body: string, file: string): string {
  const begin = `<!-- BEGIN GENERATED ${name}: ${FIX_COMMAND} rewrites this part -->`;
  const end = `<!-- END GENERATED ${name} -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${file}: no "${begin}" ... "${end}" markers`);
  return `${doc.slice(0, from + begin.length)}\n\n${body.trim()}\n\n${doc.slice(to)}`;
}

/** The generated documents, by path under the repo. */
export async function generate(): Promise<Map<string, string>> {
  const { declared, collectors, blocks } = await declarations();
  const text = await liveExposition(declared, blocks);
  const parsed = parseFamilies(text);
  const fams: Family[] = [];
  const listed = new Set<string>();
  for (const d of declared) {
    const matching = d.pattern.endsWith('*')
      ? [...parsed.keys()].filter((n) => covers(d.pattern, n)).sort()
      : [d.pattern];
    for (const name of matching) {
      if (listed.has(name)) continue;
      listed.add(name);
      const p = parsed.get(name);
      fams.push({
        name,
        collector: d.collector,
        type: p?.type ?? 'not seen',
        help: p?.help ?? '',
        labels: p?.labels ?? [],
        sampled: p?.sampled ?? false,
      });
    }
  }
  for (const [name, p] of [...parsed].sort(([a], [b]) => a.localeCompare(b)))
    if (!listed.has(name) && name.startsWith('lookout_')) fams.push({ ...p, collector: 'lookout' });

  const runbooks = await readFile(join(REPO, 'docs/runbooks.md'), 'utf8');
  runbookHeadings = headings(runbooks);
  const rules = await rulesOf();
  const panels = await panelsOf();
  const am = load(await readFile(join(REPO, 'alertmanager.yml'), 'utf8')) as { route: Route };

  const out = new Map<string, string>();
  const metricsPath = 'docs/metrics.md';
  const metricsDoc = await readFile(join(REPO, metricsPath), 'utf8');
  const summary = collectors
    .map(
      (c) =>
        `| [${c.name}](#${c.name}) | ${c.enabledByDefault ? 'on' : 'off'} | ${cell(c.description)} |`,
    )
    .join('\n');
  out.set(
    metricsPath,
    splice(
      splice(
        metricsDoc,
        'collectors',
        `| collector | default | what it exports |\n|---|---|---|\n${summary}`,
        metricsPath,
      ),
      'metrics',
      metricsTable(
        fams,
        rules,
        panels,
        collectors.map((c) => c.name),
      ),
      metricsPath,
    ),
  );
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const rows = collectors
    .map(
      (c) =>
        `| [${c.name}](docs/metrics.md#${c.name}) | ${c.enabledByDefault ? 'on' : 'off'} | ${cell(c.description)} |`,
    )
    .join('\n');
  out.set(
    'README.md',
    splice(
      readme,
      'collectors',
      `| collector | default | what it collects |\n|---|---|---|\n${rows}`,
      'README.md',
    ),
  );
  const alertsPath = 'docs/alerts.md';
  const alertsDoc = await readFile(join(REPO, alertsPath), 'utf8');
  out.set(
    alertsPath,
    splice(alertsDoc, 'alerts', alertsTable(rules, am.route, panels), alertsPath),
  );
  return out;
}

/**
 * Each alerting rule's dashboard annotation as it should read to open its panel for the
 * alert's instance, or why there is none: for whoever edits rules/*.yml.
 */
export async function suggestedAnnotations(): Promise<string> {
  const [rules, panels] = await Promise.all([rulesOf(), panelsOf()]);
  const lines: string[] = [];
  for (const a of rules.alerts) {
    const p = panelOfAlert(a, rules, panels);
    const now = a.dashboard === '' ? '(none)' : a.dashboard;
    lines.push(
      p
        ? `rules/${a.file} ${a.alert} ${a.severity}: dashboard: '${panelLink(p)}'`
        : `rules/${a.file} ${a.alert} ${a.severity}: no panel on its dashboard shares a series with the rule; keep ${now}`,
    );
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<number> {
  if (process.argv.includes('--annotations')) {
    process.stdout.write(await suggestedAnnotations());
    return 0;
  }
  const check = process.argv.includes('--check');
  const docs = await generate();
  const stale: string[] = [];
  for (const [path, text] of docs) {
    const now = await readFile(join(REPO, path), 'utf8');
    if (now === text) continue;
    stale.push(path);
    if (!check) await writeFile(join(REPO, path), text);
  }
  if (check && stale.length > 0) {
    process.stderr.write(`stale: ${stale.join(', ')}; run \`${FIX_COMMAND}\`\n`);
    return 1;
  }
  process.stdout.write(
    stale.length === 0 ? 'reference up to date\n' : `rewrote ${stale.join(', ')}\n`,
  );
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`gen-reference: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(2);
    },
  );
