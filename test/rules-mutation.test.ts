/**
 * The promtool tests of rules/tests/*.test.yml pin every alert down: forced always true
 * (its expression replaced by `vector(1)`) and forced never true (`vector(1) < 0`), each
 * alerting rule in turn makes some promtool test fail. A rule that could be replaced by
 * either without a failing test has a side nobody checks.
 *
 * Fast by construction: for each rule and mutation, one small test file holds the one
 * test group (of all rules/tests/*.test.yml that load the rule's file) whose case that
 * mutation must fail comes earliest, cut to that case (promtool evaluates a group up to
 * its last case), over a rule file with only the recording rules and the alert's own
 * rules (all its severities; the mutated one in place). The same small test also runs
 * unmutated and must pass, so its failure under mutation is the mutation's doing. All run
 * in a few promtool processes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { REPO, tempDir } from './helpers/procs.js';

const run = promisify(execFile);

type Yaml = null | boolean | number | string | Yaml[] | { [k: string]: Yaml };
type YamlMap = { [k: string]: Yaml };

function isMap(v: Yaml | undefined): v is YamlMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function list(v: Yaml | undefined): Yaml[] {
  return Array.isArray(v) ? v : [];
}
async function loadYaml(file: string): Promise<YamlMap> {
  const doc = load(await readFile(file, 'utf8')) as Yaml;
  if (!isMap(doc)) throw new Error(`${file}: not a mapping`);
  return doc;
}

interface Rule {
  /** Where the rule is: rule file, group index, rule index. */
  file: string;
  group: number;
  index: number;
  alert: string;
  severity: string;
  /** Its own labels (severity among them): two rules of one alert may differ only there. */
  labels: Record<string, string>;
  forMs: number;
}

const MUTATIONS = { 'always true': 'vector(1)', 'never true': 'vector(1) < 0' } as const;
type Mutation = keyof typeof MUTATIONS;

const rulesDir = join(REPO, 'rules');
const ruleFiles = new Map<string, YamlMap>();
for (const f of (await readdir(rulesDir)).filter((n) => n.endsWith('.yml')).sort()) {
  ruleFiles.set(f, await loadYaml(join(rulesDir, f)));
}
const testsDir = join(rulesDir, 'tests');
const testFiles = new Map<string, YamlMap>();
for (const f of (await readdir(testsDir)).filter((n) => n.endsWith('.test.yml')).sort()) {
  testFiles.set(f, await loadYaml(join(testsDir, f)));
}

const rules: Rule[] = [];
for (const [file, doc] of ruleFiles) {
  list(doc.groups).forEach((g, gi) => {
    if (!isMap(g)) return;
    list(g.rules).forEach((r, ri) => {
      if (!isMap(r) || typeof r.alert !== 'string') return;
      const labels = Object.fromEntries(
        Object.entries(isMap(r.labels) ? r.labels : {}).map(([k, v]) => [k, String(v)]),
      );
      const severity = isMap(r.labels) ? String(r.labels.severity) : '';
      const forMs = ms(typeof r.for === 'string' ? r.for : '0s');
      rules.push({ file, group: gi, index: ri, alert: r.alert, severity, labels, forMs });
    });
  });
}

/** The rule files a test file loads, by name under rules/. */
function loadedBy(test: YamlMap): string[] {
  return list(test.rule_files).map((p) => basename(String(p)));
}

/**
 * The rules for one small test: every recording group of the loaded files, and one group
 * with the alert's own rules, the one at `mutate` with its expression replaced.
 */
function ruleSubset(
  files: string[],
  alert: string,
  mutate?: { rule: Rule; expr: string },
): { doc: YamlMap; order: string[] } {
  const groups: YamlMap[] = [];
  const own: Yaml[] = [];
  for (const file of files) {
    const doc = ruleFiles.get(file);
    if (!doc) throw new Error(`a test loads ${file}, not in rules/`);
    list(doc.groups).forEach((g, gi) => {
      if (!isMap(g)) return;
      const recording = list(g.rules).filter((r) => isMap(r) && typeof r.record === 'string');
      if (recording.length > 0) groups.push({ ...g, rules: recording });
      list(g.rules).forEach((r, ri) => {
        if (!isMap(r) || r.alert !== alert) return;
        const hit = mutate && mutate.rule.file === file && mutate.rule.group === gi;
        own.push(hit && mutate.rule.index === ri ? { ...r, expr: mutate.expr } : r);
      });
    });
  }
  const name = 'the-alert-under-test';
  groups.push({ name, rules: own });
  return { doc: { groups }, order: groups.map((g) => String(g.name)) };
}

/** A Prometheus duration ("1h30m", "90s") in milliseconds. */
function ms(text: string): number {
  const units: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
  let total = 0;
  for (const [, n, u] of text.matchAll(/(\d+)(ms|[dhms])/g)) {
    total += Number(n) * (u === 'ms' ? 1 : units[u!]!);
  }
  return total;
}

/**
 * The case of a test group that a mutation of `rule` must fail, the earliest one (promtool
 * evaluates a group up to its last case, so the earliest keeps the run short):
 *  - never true: a case that expects an alert with the rule's labels (its severity, and
 *    any other it sets, like the `period` of AiSpendOverBudget) firing;
 *  - always true (vector(1), firing from `for` on with no labels but the rule's): any case
 *    at or after `for`, which expects either nothing or alerts with the labels of a
 *    real series.
 */
function caseFor(cases: YamlMap[], rule: Rule, mutation: Mutation): YamlMap | undefined {
  const fits = cases.filter((c) =>
    mutation === 'never true'
      ? list(c.exp_alerts).some(
          (e) =>
            isMap(e) &&
            isMap(e.exp_labels) &&
            String(e.exp_labels.severity) === rule.severity &&
            Object.entries(rule.labels).every(
              ([k, v]) => isMap(e.exp_labels) && String(e.exp_labels[k]) === v,
            ),
        )
      : ms(String(c.eval_time)) >= rule.forMs,
  );
  return fits.sort((a, b) => ms(String(a.eval_time)) - ms(String(b.eval_time)))[0];
}

/**
 * Of all test groups (in every test file that loads the rule's file), the one whose case
 * for this mutation comes earliest, cut to that case: one failing case is enough, and the
 * earliest is the cheapest to reach.
 */
function cheapest(
  rule: Rule,
  mutation: Mutation,
): { testName: string; test: YamlMap; group: YamlMap } | undefined {
  let best: { testName: string; test: YamlMap; group: YamlMap; at: number } | undefined;
  for (const [testName, test] of testFiles) {
    if (!loadedBy(test).includes(rule.file)) continue;
    for (const g of list(test.tests)) {
      if (!isMap(g)) continue;
      const cases = list(g.alert_rule_test).filter(
        (c): c is YamlMap => isMap(c) && c.alertname === rule.alert,
      );
      const c = caseFor(cases, rule, mutation);
      if (!c) continue;
      const at = ms(String(c.eval_time));
      if (best && best.at <= at) continue;
      const { promql_expr_test: _dropped, ...rest } = g;
      best = { testName, test, group: { ...rest, alert_rule_test: [c] }, at };
    }
  }
  return best;
}

interface Small {
  /** What it checks, for the failure messages. */
  label: string;
  rule: Rule;
  mutation: Mutation | undefined;
  file: string;
}

/** Writes the small tests: for each rule and mutation, the mutated one and its twin as shipped. */
async function writeSmallTests(dir: string): Promise<Small[]> {
  const smalls: Small[] = [];
  let n = 0;
  for (const rule of rules) {
    for (const mutation of Object.keys(MUTATIONS) as Mutation[]) {
      // Watchdog is vector(1): "always true" is itself.
      if (mutation === 'always true' && rule.alert === 'Watchdog') continue;
      const found = cheapest(rule, mutation);
      if (!found) {
        smalls.push({ label: '', rule, mutation, file: '' });
        continue;
      }
      const files = loadedBy(found.test);
      for (const mutated of [false, true]) {
        const { doc, order } = ruleSubset(
          files,
          rule.alert,
          mutated ? { rule, expr: MUTATIONS[mutation] } : undefined,
        );
        const base = join(dir, `t${n++}`);
        await writeFile(`${base}.rules.yml`, JSON.stringify(doc));
        await writeFile(
          `${base}.test.yml`,
          JSON.stringify({
            rule_files: [`${basename(base)}.rules.yml`],
            evaluation_interval: found.test.evaluation_interval ?? '1m',
            group_eval_order: order,
            tests: [found.group],
          }),
        );
        smalls.push({
          label: `${rule.alert} (${rule.severity}, ${rule.file} group ${rule.group} rule ${rule.index}) ${mutated ? mutation : 'as shipped'}: ${found.testName} "${String(found.group.name)}" at ${String(list(found.group.alert_rule_test).map((c) => (isMap(c) ? c.eval_time : ''))[0])}`,
          rule,
          mutation: mutated ? mutation : undefined,
          file: `${base}.test.yml`,
        });
      }
    }
  }
  return smalls;
}

/** Runs promtool over the files in `workers` processes; which files passed. */
async function promtoolResults(files: string[], cwd: string): Promise<Map<string, boolean>> {
  const workers = Math.max(1, Math.min(4, availableParallelism()));
  const chunks: string[][] = Array.from({ length: workers }, () => []);
  files.forEach((f, i) => chunks[i % workers]!.push(f));
  const outputs = await Promise.all(
    chunks
      .filter((c) => c.length > 0)
      .map(async (chunk) => {
        try {
          const { stdout, stderr } = await run('promtool', ['test', 'rules', ...chunk], {
            cwd,
            maxBuffer: 256 << 20,
          });
          return stdout + stderr;
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string; code?: unknown };
          // Exit 1 is "a test failed": the output says which. Anything else is no result.
          if (e.code !== 1) throw err;
          return (e.stdout ?? '') + (e.stderr ?? '');
        }
      }),
  );
  // "Unit Testing:  <file>" then "  SUCCESS" or "  FAILED:".
  const results = new Map<string, boolean>();
  for (const out of outputs) {
    const parts = out.split(/^Unit Testing:\s+/m).slice(1);
    for (const part of parts) {
      const file = part.slice(0, part.indexOf('\n')).trim();
      results.set(join(cwd, basename(file)), /^\s+SUCCESS\s*$/m.test(part));
    }
  }
  return results;
}

describe('every alert fails some promtool test when forced true or false', () => {
  it('each small test passes as shipped, and fails with the rule forced either way', async (t) => {
    const dir = await tempDir('lookout-rule-mutation-');
    const all = await writeSmallTests(dir);
    const untested = all
      .filter((s) => s.file === '')
      .map((s) => `${s.rule.alert} (${s.rule.severity}, ${s.rule.file}) ${s.mutation ?? ''}`);
    assert.deepEqual(untested, [], 'no promtool case could notice these mutations');
    const smalls = all.filter((s) => s.file !== '');
    const started = Date.now();
    const results = await promtoolResults(
      smalls.map((s) => s.file),
      dir,
    );
    t.diagnostic(`${smalls.length} small promtool tests in ${Date.now() - started} ms`);
    const missing = smalls.filter((s) => !results.has(s.file)).map((s) => s.label);
    assert.deepEqual(missing, [], 'promtool reported no result for these');
    const brokenBaseline = smalls
      .filter((s) => s.mutation === undefined && !results.get(s.file))
      .map((s) => s.label);
    assert.deepEqual(brokenBaseline, [], 'cut-down tests that fail without any mutation');
    const uncaught = smalls
      .filter((s) => s.mutation !== undefined && results.get(s.file))
      .map((s) => s.label);
    assert.deepEqual(uncaught, [], 'rules whose mutation no promtool test notices');
  });
});
