/**
 * Grafana is not installable here, so the dashboards are checked as data (the
 * provisioning format Grafana loads) and every panel query is run against a real
 * Prometheus that scrapes a real lookout and loads rules/*.yml.
 *
 * Variables are substituted the way Grafana would for one host:
 *   $instance          → the lookout target, e.g. 127.0.0.1:41234
 *   $__rate_interval   → 1m  (Grafana's floor is 4 × the datasource's 15s timeInterval)
 *   $__interval        → 15s
 *   $__range           → 1h
 *   $service, $model   → .*  (the AI-cost dashboard's "All", its allValue)
 * Queries are otherwise run exactly as written: a panel that shows nothing on a
 * healthy host (firing alerts) must be written to return a 0 series (`or vector(0)`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { makeTestPki, tlsServerBlock } from './helpers/certs.js';
import { startNginx, type Nginx } from './helpers/nginx.js';
import { startPostgres, type Postgres } from './helpers/postgres.js';
import { startRedis, type Redis } from './helpers/redis.js';
import { REPO, freePort, promQuery, startLookout, tempDir, type Running } from './helpers/procs.js';
import { answerAll, startRulesPrometheus, substitute } from './helpers/dashboards.js';

const run = promisify(execFile);

// ---------------------------------------------------------------- the files

interface Datasource {
  type: string;
  uid: string;
}
interface Target {
  refId?: string;
  expr?: string;
  datasource?: Datasource;
}
interface ThresholdSteps {
  steps: Array<{ color: string; value: number | null }>;
}
interface Panel {
  id?: number;
  type: string;
  title: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: Datasource;
  targets?: Target[];
  panels?: Panel[];
  links?: Array<{ url?: string }>;
  fieldConfig?: {
    defaults?: { unit?: string; thresholds?: ThresholdSteps };
    overrides?: Array<{ properties: Array<{ id: string; value: unknown }> }>;
  };
}
interface Variable {
  name: string;
  type: string;
  datasource?: Datasource;
  query?: string | { query?: string };
  definition?: string;
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Variable[] };
  links?: Array<{ url?: string }>;
}

const DASH_DIR = join(REPO, 'grafana/dashboards');
const PROVIDER_FILE = join(REPO, 'grafana/provisioning/dashboards/lookout.yml');
const DATASOURCE_FILE = join(REPO, 'grafana/provisioning/datasources/prometheus.yml');

const files = readdirSync(DASH_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

/** Parsed lazily per file so a broken file fails its own test, not the whole module. */
function parse(file: string): Dashboard {
  return JSON.parse(readFileSync(join(DASH_DIR, file), 'utf8')) as Dashboard;
}
function tryParse(file: string): Dashboard | undefined {
  try {
    return parse(file);
  } catch {
    return undefined; // the "valid JSON" test reports it
  }
}

/** Every panel, rows' nested panels included (collapsed rows keep theirs in `panels`). */
function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: Panel[] | undefined) => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}
const queryPanels = (d: Dashboard) => allPanels(d).filter((p) => p.type !== 'row');

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
}

const BUILTINS = new Set(['__rate_interval', '__interval', '__range', '__interval_ms']);

function stepValues(t: ThresholdSteps | undefined): number[] {
  return (t?.steps ?? []).flatMap((s) => (s.value === null ? [] : [s.value]));
}

/** Every threshold list a panel shows: the defaults and any per-field override. */
function panelThresholds(p: Panel): number[][] {
  const lists = [stepValues(p.fieldConfig?.defaults?.thresholds)];
  for (const o of p.fieldConfig?.overrides ?? [])
    for (const prop of o.properties)
      if (prop.id === 'thresholds') lists.push(stepValues(prop.value as ThresholdSteps));
  return lists;
}

interface RuleFile {
  groups?: Array<{ rules?: Array<{ record?: string; alert?: string; expr?: string | number }> }>;
}
function ruleFiles(): RuleFile[] {
  return readdirSync(join(REPO, 'rules'))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => load(readFileSync(join(REPO, 'rules', f), 'utf8')) as RuleFile);
}

/**
 * Thresholds straight from the alert rules: for `<recorded:metric:name> > 0.7`
 * style alerts, recorded name → sorted thresholds. Panels showing that recorded
 * series must draw exactly these lines, so a changed rule fails here until the
 * dashboard follows. A critical written with hysteresis (rules/host.yml: `X > 0.95 or
 * (X > 0.80 and ignoring (...) ALERTS{...})`) fires at its first number; the second is
 * its warning's, already counted from the warning rule. A further `and <condition>`
 * (HostFilesystemAlmostFull's "under 10 GiB left", after the whole of HttpErrorRateHigh's
 * critical: a minimum request rate) leaves the ratio's line where it is.
 */
function ruleThresholds(): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const f of ruleFiles())
    for (const g of f.groups ?? [])
      for (const r of g.rules ?? []) {
        if (!r.alert) continue;
        // `( X > a or (X > b and ALERTS...) ) and <guard>`: a guard with no parentheses
        // (HttpErrorRateHigh's minimum request rate) leaves X's line where it is.
        const expr = /^\s*\(([^]*)\)\s*and\s+[^()]*$/.exec(String(r.expr))?.[1] ?? String(r.expr);
        const m =
          /^\s*([a-zA-Z_]+:[a-zA-Z0-9_:]+)(\{[^}]*\})?\s*>=?\s*([0-9.]+)\s*(?:and\s[^()]*?)?(?:or\s*\([^]*\bALERTS\{[^}]*\}\s*\)\s*)?$/.exec(
            expr,
          );
        if (!m) continue;
        const list = out.get(m[1]!) ?? [];
        list.push(Number(m[3]));
        out.set(
          m[1]!,
          [...new Set(list)].sort((a, b) => a - b),
        );
      }
  return out;
}

/** Thresholds whose alert expressions are not a plain comparison of a recorded series. */
const FIXED_THRESHOLDS: Array<{ what: RegExp; steps: number[]; why: string }> = [
  {
    what: /lookout_processes\{[^}]*state="zombie"/,
    steps: [1, 20],
    why: 'HostZombieProcesses (>= 1 warning, >= 20 critical)',
  },
];

const ALLOWED_UNITS = new Set(['percentunit', 'bytes', 's', 'short', 'Bps', 'currencyUSD']);

// ---------------------------------------------------------------- static checks

describe('dashboards as provisioning data', () => {
  const datasource = load(readFileSync(DATASOURCE_FILE, 'utf8')) as {
    datasources: Array<{ uid: string; type: string; url: string; isDefault?: boolean }>;
  };
  const ds = datasource.datasources[0]!;
  const DS: Datasource = { type: 'prometheus', uid: 'lookout-prometheus' };

  it('the provisioned datasource is the default Prometheus with the fixed uid', () => {
    assert.equal(datasource.datasources.length, 1);
    assert.deepEqual(
      { uid: ds.uid, type: ds.type, url: ds.url, isDefault: ds.isDefault },
      { uid: DS.uid, type: 'prometheus', url: 'http://prometheus:9090', isDefault: true },
    );
  });

  it('the dashboard provider reads the directory docker-compose.yml fills from grafana/dashboards', () => {
    const provider = load(readFileSync(PROVIDER_FILE, 'utf8')) as {
      providers: Array<{ type: string; folder?: string; options: { path: string } }>;
    };
    assert.equal(provider.providers.length, 1);
    const p = provider.providers[0]!;
    assert.equal(p.type, 'file');
    assert.equal(p.folder, 'lookout');
    const compose = load(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { volumes?: string[] }>;
    };
    const mounts = (compose.services.grafana?.volumes ?? []).map((v) => v.split(':'));
    const source = mounts.find(([, target]) => target === p.options.path)?.[0];
    assert.equal(
      source,
      './grafana/dashboards',
      `docker-compose.yml must mount ./grafana/dashboards at ${p.options.path}`,
    );
    assert.ok(files.length >= 3, `expected the dashboards in ${DASH_DIR}, found ${files}`);
    for (const uid of ['lookout-overview', 'lookout-host', 'lookout-self', 'lookout-web'])
      assert.ok(
        files.some((f) => tryParse(f)?.uid === uid),
        `no dashboard with uid ${uid} in grafana/dashboards`,
      );
  });

  for (const file of files) {
    describe(file, () => {
      it('is valid JSON in the provisioning format (uid, title, schemaVersion 39, no __inputs)', () => {
        const text = readFileSync(join(DASH_DIR, file), 'utf8');
        const d = JSON.parse(text) as Dashboard;
        assert.match(d.uid ?? '', /^[A-Za-z0-9_-]{1,40}$/, 'uid: 1–40 of [A-Za-z0-9_-]');
        assert.ok(d.title, 'title');
        assert.equal(d.schemaVersion, 39);
        // Exported-for-sharing dashboards carry __inputs and ${DS_...} placeholders,
        // which file provisioning never fills in.
        assert.doesNotMatch(text, /"__inputs"/);
        assert.doesNotMatch(text, /\$\{DS_/);
      });

      it('every panel, rows included, queries the fixed datasource', () => {
        const d = parse(file);
        const panels = queryPanels(d);
        assert.ok(panels.length > 0, 'no panels');
        for (const p of panels) {
          assert.deepEqual(p.datasource, DS, `panel "${p.title}" datasource`);
          assert.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has no query`);
          for (const t of p.targets) {
            assert.deepEqual(t.datasource, DS, `panel "${p.title}" target ${t.refId} datasource`);
            assert.ok(t.expr?.trim(), `panel "${p.title}" target ${t.refId} has no expr`);
          }
          const refIds = p.targets.map((t) => t.refId);
          assert.equal(new Set(refIds).size, refIds.length, `panel "${p.title}" refIds unique`);
        }
        for (const v of d.templating?.list ?? [])
          if (v.type === 'query') assert.deepEqual(v.datasource, DS, `variable ${v.name}`);
      });

      it('panels have unique ids, a position and a unit', () => {
        const d = parse(file);
        const ids = allPanels(d).map((p) => p.id);
        assert.ok(
          ids.every((id) => typeof id === 'number'),
          'every panel has a numeric id',
        );
        assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
        for (const p of allPanels(d)) assert.ok(p.gridPos, `panel "${p.title}" gridPos`);
        for (const p of queryPanels(d)) {
          const unit = p.fieldConfig?.defaults?.unit;
          assert.ok(
            unit && ALLOWED_UNITS.has(unit),
            `panel "${p.title}" unit ${unit} not one of ${[...ALLOWED_UNITS]}`,
          );
        }
      });

      it('uses only variables it defines, and $instance comes from up{job="lookout"}', () => {
        const d = parse(file);
        const defined = new Set((d.templating?.list ?? []).map((v) => v.name));
        const instance = d.templating?.list?.find((v) => v.name === 'instance');
        assert.ok(instance, 'an instance variable');
        assert.equal(variableQuery(instance), 'label_values(up{job="lookout"}, instance)');
        for (const p of queryPanels(d))
          for (const t of p.targets ?? [])
            for (const m of (t.expr ?? '').matchAll(/\$\{?(\w+)\}?/g))
              assert.ok(
                defined.has(m[1]!) || BUILTINS.has(m[1]!),
                `panel "${p.title}" uses undefined variable $${m[1]}`,
              );
      });

      it('recording rules it reads exist in rules/*.yml, and thresholds match the alerts', () => {
        const d = parse(file);
        const recorded = new Set(
          ruleFiles().flatMap((f) =>
            (f.groups ?? []).flatMap((g) => (g.rules ?? []).flatMap((r) => r.record ?? [])),
          ),
        );
        const thresholds = ruleThresholds();
        // Guards against a silently vacuous check if the rule files change shape.
        assert.ok(thresholds.size >= 5, `found alert thresholds for ${[...thresholds.keys()]}`);
        for (const p of queryPanels(d)) {
          const exprs = (p.targets ?? []).map((t) => t.expr ?? '');
          for (const e of exprs)
            for (const m of e.matchAll(/\b([a-zA-Z_]+:[a-zA-Z0-9_:]+)(?=\s*[{)\s]|$)/g))
              assert.ok(
                recorded.has(m[1]!),
                `panel "${p.title}" reads ${m[1]}, which no rule in rules/*.yml records`,
              );
          const shown = panelThresholds(p);
          for (const [name, steps] of thresholds) {
            if (!exprs.some((e) => e.includes(name))) continue;
            assert.ok(
              shown.some((s) => JSON.stringify(s) === JSON.stringify(steps)),
              `panel "${p.title}" shows ${name}: thresholds ${JSON.stringify(shown)}, the alerts use ${JSON.stringify(steps)}`,
            );
          }
          for (const f of FIXED_THRESHOLDS) {
            if (!exprs.some((e) => f.what.test(e))) continue;
            assert.ok(
              shown.some((s) => JSON.stringify(s) === JSON.stringify(f.steps)),
              `panel "${p.title}" thresholds ${JSON.stringify(shown)}, expected ${JSON.stringify(f.steps)} for ${f.why}`,
            );
          }
        }
      });
    });
  }

  it('dashboard uids and titles are unique; links point at dashboards that exist', () => {
    const dashboards = files.map(parse);
    const uids = dashboards.map((d) => d.uid);
    const titles = dashboards.map((d) => d.title);
    assert.equal(new Set(uids).size, uids.length, `uids ${uids}`);
    assert.equal(new Set(titles).size, titles.length, `titles ${titles}`);
    for (const d of dashboards) {
      const urls = [
        ...(d.links ?? []).map((l) => l.url ?? ''),
        ...allPanels(d).flatMap((p) => (p.links ?? []).map((l) => l.url ?? '')),
      ];
      for (const url of urls) {
        const m = /\/d\/([^/?]+)/.exec(url);
        if (m) assert.ok(uids.includes(m[1]), `${d.uid}: link ${url} to a missing dashboard`);
      }
    }
  });

  it('every panel query is valid PromQL (promtool check rules)', async () => {
    // promtool has no "check query"; a rule file with one recording rule per query does it.
    const rules: Array<{ record: string; expr: string }> = [];
    for (const file of files)
      for (const p of queryPanels(parse(file)))
        for (const t of p.targets ?? [])
          rules.push({
            record: `dashboard_check_${rules.length}`,
            expr: substitute(t.expr ?? '', '127.0.0.1:10142'),
          });
    const dir = await tempDir('lookout-dash-');
    const file = join(dir, 'queries.yml');
    await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
    const res = await run('promtool', ['check', 'rules', file]).catch(
      (err: { stdout?: string; stderr?: string }) => err,
    );
    assert.match(res.stdout ?? '', new RegExp(`SUCCESS: ${rules.length} rules found`), res.stderr);
  });
});

// ---------------------------------------------------------------- live

interface Query {
  file: string;
  panel: string;
  refId: string;
  expr: string;
}

/**
 * Dashboards whose sources need parts this suite does not start; the named test runs
 * each of their panel queries against a live Prometheus with those parts.
 */
const LIVE_ELSEWHERE: Record<string, string> = {
  'containers.json': 'test/dashboards-containers.test.ts (a real dockerd with containers)',
  'aicost.json': 'test/dashboards-aicost.test.ts (usage events posted to lookout)',
};

const queries: Query[] = files.flatMap((file) => {
  if (file in LIVE_ELSEWHERE) return [];
  const d = tryParse(file);
  if (!d) return [];
  return queryPanels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      file,
      panel: p.title,
      refId: t.refId ?? '?',
      expr: t.expr ?? '',
    })),
  );
});

/** Up to this long for rate() windows and recording rules to have two samples. */
const WAIT_MS = 90_000;

/**
 * Series a healthy host may lack because its kernel does: lookout then exports nothing
 * rather than a made-up 0. A query reading one is skipped, saying why, only when this
 * host lacks the source; wherever the source exists the query must return series.
 */
const OPTIONAL_SOURCES: Array<{ reads: RegExp; why: string | undefined }> = [
  {
    reads: /lookout_conntrack_/,
    why:
      existsSync('/proc/net/stat/nf_conntrack') &&
      existsSync('/proc/sys/net/netfilter/nf_conntrack_max')
        ? undefined
        : 'the nf_conntrack module is not loaded on this host (no /proc/net/stat/nf_conntrack)',
  },
  {
    reads: /lookout_oom_kills_total/,
    why: /^oom_kill /m.test(readFileSync('/proc/vmstat', 'utf8'))
      ? undefined
      : 'this kernel has no oom_kill in /proc/vmstat (Linux before 4.13)',
  },
];

/** Why this host cannot answer the query, or undefined when it must. */
function unanswerable(q: Query): string | undefined {
  return OPTIONAL_SOURCES.find((o) => o.why !== undefined && o.reads.test(q.expr))?.why;
}

describe('every panel query returns series from a live Prometheus scraping lookout', () => {
  let lookout: Running;
  let prom: Running;
  let nginx: Nginx;
  let redis: Redis;
  let postgres: Postgres;
  let traffic: NodeJS.Timeout | undefined;
  let instance = '';
  let results = new Map<Query, number | Error>();

  before(async () => {
    const fast = { interval: '2s', timeout: '2s' };
    // The web dashboard's sources, real and on 127.0.0.1: nginx with stub_status, an
    // access log in the shipped format and a TLS listener; Redis with a queue; PostgreSQL.
    const pki = await makeTestPki();
    const cert = await pki.issue({ name: 'site', notAfter: new Date(Date.now() + 30 * 86400_000) });
    const tlsPort = await freePort();
    nginx = await startNginx({
      http: `include ${join(REPO, 'deploy/nginx/lookout-log-format.conf')};
  ${tlsServerBlock(tlsPort, cert)}`,
      accessLog: '{{dir}}/logs/access.log lookout',
      locations: `location = /ok { return 200 "ok\\n"; }
    location = /boom { return 500; }`,
    });
    redis = await startRedis();
    await redis.cli('RPUSH', 'jobs', 'a', 'b', 'c');
    postgres = await startPostgres();
    const pgPassword = join(nginx.dir, 'pg.password');
    await writeFile(pgPassword, postgres.password);
    lookout = await startLookout(
      JSON.stringify({
        collectors: {
          host: fast,
          filesystem: fast,
          processes: fast,
          runtime: fast,
          nginx: {
            ...fast,
            enabled: true,
            status_url: `${nginx.url}/stub_status`,
          },
          tls: {
            ...fast,
            ca_file: pki.caFile,
            targets: [{ address: `127.0.0.1:${tlsPort}`, server_name: 'localhost', name: 'site' }],
          },
          accesslog: {
            logs: [
              { name: 'site', path: join(nginx.dir, 'logs/access.log'), format: 'combined_timing' },
            ],
          },
          probes: {
            ...fast,
            targets: [
              { kind: 'http', url: `${nginx.url}/ok`, name: 'site' },
              { kind: 'http', url: `${nginx.url}/boom`, name: 'broken' },
              { kind: 'tcp', address: `127.0.0.1:${nginx.port}`, name: 'site-tcp' },
              { kind: 'redis', address: redis.address, name: 'queue', list_keys: ['jobs'] },
              {
                kind: 'postgres',
                connection_string: postgres.url,
                password_file: pgPassword,
                query: 'select 1',
                name: 'db',
              },
            ],
          },
        },
      }),
    );
    traffic = setInterval(() => {
      for (const path of ['/ok', '/ok', '/boom'])
        fetch(`${nginx.url}${path}`)
          .then((r) => r.arrayBuffer())
          .catch(() => {});
    }, 200);
    instance = `127.0.0.1:${lookout.port}`;
    prom = await startRulesPrometheus(instance);
    const asked = queries.filter((q) => unanswerable(q) === undefined);
    results = await answerAll(prom.url, asked, (q) => substitute(q.expr, instance), WAIT_MS);
  });

  after(async () => {
    clearInterval(traffic);
    await prom?.stop();
    await lookout?.stop();
    await nginx?.stop();
    await redis?.stop();
    await postgres?.stop();
  });

  it('the instance variable lists the lookout target', async () => {
    const rows = await promQuery(prom.url, 'up{job="lookout"}');
    assert.ok(
      rows.some((r) => r.metric.instance === instance),
      `label_values(up{job="lookout"}, instance) would not offer ${instance}`,
    );
  });

  for (const q of queries) {
    it(`${q.file} "${q.panel}" ${q.refId}`, { skip: unanswerable(q) ?? false }, () => {
      const r = results.get(q);
      if (r instanceof Error) throw r;
      assert.ok(
        Number(r) > 0,
        `no series after ${WAIT_MS / 1000}s for\n  ${substitute(q.expr, instance)}`,
      );
    });
  }
});
