/**
 * The promtool tests of rules/tests/*.test.yml pin every alert down, whole and condition
 * by condition.
 *
 * Whole: forced always true (its expression replaced by `vector(1)`) and forced never
 * true (`vector(1) < 0`), each alerting rule in turn makes some promtool test fail. Fast
 * by construction: for each rule and mutation, one small test file holds the one test
 * group (of all rules/tests/*.test.yml that load the rule's file) whose case that
 * mutation must fail comes earliest, cut to that case (promtool evaluates a group up to
 * its last case), over a rule file with only the recording rules and the alert's own
 * rules (all its severities; the mutated one in place). The same small test also runs
 * unmutated and must pass, so its failure under mutation is the mutation's doing.
 *
 * Each condition: every operand of `or` forced false (dropped), every operand after
 * `and` forced true (dropped), every operand after `unless` forced false (dropped), and
 * every comparison with a number forced true (the threshold dropped), one at a time,
 * makes some case of that alert fail. A condition no case notices is a side nobody
 * checks, or a condition that changes nothing. All the forced copies of one alert run in
 * one promtool test per test file, each under its own name.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
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
  expr: string;
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
      rules.push({
        file,
        group: gi,
        index: ri,
        alert: r.alert,
        severity,
        labels,
        forMs,
        expr: String(r.expr),
      });
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

/**
 * Runs promtool on each file, `workers` at a time; each file's output (promtool writes
 * what failed to stderr, apart from the file's name on stdout, so one file a run).
 */
async function promtoolOutputs(files: string[], cwd: string): Promise<Map<string, string>> {
  const workers = Math.max(1, Math.min(4, availableParallelism()));
  const results = new Map<string, string>();
  // The biggest first, so that the long runs do not come last.
  const size = new Map(
    await Promise.all(files.map(async (f) => [f, (await readFile(f)).length] as const)),
  );
  const queue = [...files].sort((a, b) => size.get(b)! - size.get(a)!);
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
        try {
          const { stdout, stderr } = await run('promtool', ['test', 'rules', file], {
            cwd,
            maxBuffer: 256 << 20,
          });
          results.set(file, stdout + stderr);
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string; code?: unknown };
          // Exit 1 is "a test failed": the output says which. Anything else is no result.
          if (e.code !== 1) throw err;
          results.set(file, (e.stdout ?? '') + (e.stderr ?? ''));
        }
      }
    }),
  );
  return results;
}

/**
 * Runs promtool over the files, a share of them in each of `workers` processes; which
 * files passed ("Unit Testing: <file>" then "SUCCESS" on stdout).
 */
async function promtoolResults(files: string[], cwd: string): Promise<Map<string, boolean>> {
  const workers = Math.max(1, Math.min(4, availableParallelism()));
  const chunks: string[][] = Array.from({ length: workers }, () => []);
  files.forEach((f, i) => chunks[i % workers]!.push(f));
  const outputs = await Promise.all(
    chunks
      .filter((c) => c.length > 0)
      .map(async (chunk) => {
        try {
          return (await run('promtool', ['test', 'rules', ...chunk], { cwd, maxBuffer: 256 << 20 }))
            .stdout;
        } catch (err) {
          const e = err as { stdout?: string; code?: unknown };
          // Exit 1 is "a test failed": the output says which. Anything else is no result.
          if (e.code !== 1) throw err;
          return e.stdout ?? '';
        }
      }),
  );
  const results = new Map<string, boolean>();
  for (const out of outputs) {
    for (const part of out.split(/^Unit Testing:\s+/m).slice(1)) {
      const file = part.slice(0, part.indexOf('\n')).trim();
      results.set(join(cwd, basename(file)), /^\s+SUCCESS\s*$/m.test(part));
    }
  }
  return results;
}

describe('every alert fails some promtool test when forced true or false', () => {
  it('each small test passes as shipped, and fails with the rule forced either way', async (t) => {
    const dir = await tempDir('lookout-rule-mutation-');
    t.after(() => rm(dir, { recursive: true, force: true }));
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

// ------------------------------------------------------------ each condition

/**
 * A PromQL expression cut at its top level (outside parentheses, braces, brackets and
 * strings) at the places `at` finds: each piece's text and the operator text before it.
 */
function splitTop(
  text: string,
  at: (s: string, i: number) => number,
): { parts: string[]; ops: string[] } {
  const parts: string[] = [];
  const ops: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0) {
      const len = at(text, i);
      if (len > 0) {
        parts.push(text.slice(start, i));
        ops.push(text.slice(i, i + len));
        start = i + len;
        i += len - 1;
      }
    }
  }
  parts.push(text.slice(start));
  return { parts, ops };
}

/** Length of a set operator (`or`, or `and`/`unless` with its on/ignoring list) at i. */
function setOp(words: string[]): (s: string, i: number) => number {
  return (s, i) => {
    if (i > 0 && /[\w:]/.test(s[i - 1]!)) return 0;
    const m = new RegExp(
      `^(?:${words.join('|')})(?![\\w:])(\\s*(?:on|ignoring)\\s*\\([^)]*\\))?`,
    ).exec(s.slice(i));
    return m ? m[0].length : 0;
  };
}

/**
 * A comparison at i. One with `bool` or a vector-matching list (two vectors compared)
 * is no threshold: `seen.other` says there was one.
 */
function comparison(seen: { other: boolean }): (s: string, i: number) => number {
  return (s, i) => {
    const m = /^(==|!=|>=|<=|>|<)/.exec(s.slice(i));
    if (!m) return 0;
    const rest = s.slice(i + m[1]!.length);
    if (/^\s*(bool|on|ignoring|group_left|group_right)\b/.test(rest)) {
      seen.other = true;
      return 0;
    }
    return m[1]!.length;
  };
}

const NUMBER = /^[\s\d.eE+\-*/^()]+$/;

interface Variant {
  /** What was forced, for the failure messages. */
  what: string;
  expr: string;
}

/**
 * The expression with each of its conditions forced in turn: an operand of `or` dropped
 * (forced false), an operand after `and` dropped (forced true), an operand after `unless`
 * dropped (forced false), a comparison with a number dropped (forced true: the series
 * passes whatever its value). Down through parentheses.
 */
function variants(expr: string): Variant[] {
  const out: Variant[] = [];
  const ors = splitTop(expr, setOp(['or']));
  if (ors.parts.length > 1) {
    ors.parts.forEach((p, i) => {
      const rest = ors.parts.filter((_, j) => j !== i);
      const restOps = ors.ops.filter((_, j) => j !== (i === 0 ? 0 : i - 1));
      out.push({ what: `"${squash(p)}" false`, expr: joinTop(rest, restOps) });
      for (const v of variants(p)) {
        out.push({
          what: v.what,
          expr: joinTop(
            ors.parts.map((q, j) => (j === i ? ` (${v.expr}) ` : q)),
            ors.ops,
          ),
        });
      }
    });
    return out;
  }
  const ands = splitTop(expr, setOp(['and', 'unless']));
  if (ands.parts.length > 1) {
    ands.parts.forEach((p, i) => {
      const and = i > 0 && ands.ops[i - 1]!.trim().startsWith('and');
      if (i > 0) {
        const rest = ands.parts.filter((_, j) => j !== i);
        const restOps = ands.ops.filter((_, j) => j !== i - 1);
        out.push({
          what: `"${squash(p)}" ${and ? 'true' : 'false'}`,
          expr: joinTop(rest, restOps),
        });
      }
      // An operand after `and` that is one comparison: dropping it (above) is the same as
      // dropping its threshold.
      if (and && !p.trim().startsWith('(')) return;
      for (const v of variants(p)) {
        out.push({
          what: v.what,
          expr: joinTop(
            ands.parts.map((q, j) => (j === i ? ` (${v.expr}) ` : q)),
            ands.ops,
          ),
        });
      }
    });
    return out;
  }
  const t = expr.trim();
  if (t.startsWith('(') && closing(t) === t.length - 1) return variants(t.slice(1, -1));
  const seen = { other: false };
  const cmp = splitTop(t, comparison(seen));
  if (seen.other) return out;
  const n = cmp.ops.length;
  if (n === 0) return out;
  const [first, last] = [cmp.parts[0]!, cmp.parts[n]!];
  if (NUMBER.test(first)) {
    out.push({
      what: `"${squash(first + cmp.ops[0]!)}" true`,
      expr: joinTop(cmp.parts.slice(1), cmp.ops.slice(1)),
    });
  }
  if (NUMBER.test(last)) {
    out.push({
      what: `"${squash(cmp.ops[n - 1]! + last)}" true`,
      expr: joinTop(cmp.parts.slice(0, n), cmp.ops.slice(0, n - 1)),
    });
  }
  return out;
}

function joinTop(parts: string[], ops: string[]): string {
  return parts.map((p, i) => (i === 0 ? p : ` ${ops[i - 1]} ${p}`)).join('');
}
function squash(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}
/** The index of the parenthesis that closes the one at 0. */
function closing(s: string): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

/** Each test group (of the test files that load `file`) with a case for `alert`, cut to those cases. */
function groupsFor(file: string, alert: string): Map<string, YamlMap[]> {
  const out = new Map<string, YamlMap[]>();
  for (const [testName, test] of testFiles) {
    if (!loadedBy(test).includes(file)) continue;
    for (const g of list(test.tests)) {
      if (!isMap(g)) continue;
      const cases = list(g.alert_rule_test).filter((c) => isMap(c) && c.alertname === alert);
      if (cases.length === 0) continue;
      const { promql_expr_test: _dropped, ...rest } = g;
      out.set(testName, [...(out.get(testName) ?? []), { ...rest, alert_rule_test: cases }]);
    }
  }
  return out;
}

/** The alert's name in its own ALERTS selectors, renamed. */
function renamed(expr: string, alert: string, name: string): string {
  return expr.replaceAll(`alertname="${alert}"`, `alertname="${name}"`);
}

/**
 * For one alert and one test file: a rule file with the recording rules, the alert as
 * shipped and, for each forced condition k, a copy of all the alert's rules named
 * `<alert>__k` with that one condition forced; and a test file whose groups hold the
 * alert's cases once for each name. One promtool run reads every variant; a case that
 * fails names the variant that failed it.
 */
async function writeVariants(
  dir: string,
  base: string,
  testName: string,
  alert: string,
  forced: Array<{ rule: Rule; expr: string }>,
): Promise<string> {
  const test = testFiles.get(testName)!;
  const files = loadedBy(test);
  const { doc, order } = ruleSubset(files, alert);
  const groups = list(doc.groups).filter(isMap);
  const own = groups.at(-1)!;
  const shipped = list(own.rules).filter(isMap);
  const ownRules: Yaml[] = [...shipped];
  forced.forEach((f, k) => {
    const name = `${alert}__${k}`;
    let index = 0;
    for (const file of files) {
      list(ruleFiles.get(file)?.groups).forEach((g, gi) => {
        if (!isMap(g)) return;
        list(g.rules).forEach((r, ri) => {
          if (!isMap(r) || r.alert !== alert) return;
          const hit = f.rule.file === file && f.rule.group === gi && f.rule.index === ri;
          const expr = hit ? f.expr : String(r.expr);
          ownRules.push({ ...r, alert: name, expr: renamed(expr, alert, name) });
          index++;
        });
      });
    }
    if (index !== shipped.length)
      throw new Error(`${alert}: ${index} rules, ${shipped.length} shipped`);
  });
  groups[groups.length - 1] = { ...own, rules: ownRules };
  await writeFile(join(dir, `${base}.rules.yml`), JSON.stringify({ groups }));
  const tests = (groupsFor(forced[0]!.rule.file, alert).get(testName) ?? []).map((g) => {
    const cases = list(g.alert_rule_test).filter(isMap);
    return {
      ...g,
      alert_rule_test: [
        ...cases,
        ...forced.flatMap((_, k) => cases.map((c) => ({ ...c, alertname: `${alert}__${k}` }))),
      ],
    };
  });
  await writeFile(
    join(dir, `${base}.test.yml`),
    JSON.stringify({
      rule_files: [`${base}.rules.yml`],
      evaluation_interval: test.evaluation_interval ?? '1m',
      group_eval_order: order,
      tests,
    }),
  );
  return join(dir, `${base}.test.yml`);
}

describe('every condition of every alert is pinned down by some promtool test', () => {
  it("each alert's cases pass as shipped, and fail with any one condition forced", async (t) => {
    const dir = await tempDir('lookout-rule-conditions-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const alerts = [...new Set(rules.map((r) => r.alert))];
    const written: Array<{ alert: string; file: string }> = [];
    const labels = new Map<string, string[]>();
    let n = 0;
    for (const alert of alerts) {
      const forced: Array<{ rule: Rule; expr: string }> = [];
      const what: string[] = [];
      for (const rule of rules.filter((r) => r.alert === alert)) {
        const seen = new Set<string>();
        for (const v of variants(rule.expr)) {
          if (seen.has(squash(v.expr))) continue;
          seen.add(squash(v.expr));
          forced.push({ rule, expr: v.expr });
          what.push(
            `${alert} (${rule.severity}, ${rule.file} group ${rule.group} rule ${rule.index}) with ${v.what}`,
          );
        }
      }
      if (forced.length === 0) continue;
      labels.set(alert, what);
      const rule = rules.find((r) => r.alert === alert)!;
      for (const testName of groupsFor(rule.file, alert).keys()) {
        written.push({ alert, file: await writeVariants(dir, `c${n++}`, testName, alert, forced) });
      }
    }
    const started = Date.now();
    const outputs = await promtoolOutputs(
      written.map((w) => w.file),
      dir,
    );
    const conditions = [...labels.values()].reduce((a, b) => a + b.length, 0);
    t.diagnostic(
      `${conditions} conditions forced in ${written.length} promtool tests, ${Date.now() - started} ms`,
    );
    const failedNames = (file: string): Set<string> =>
      new Set(
        [...(outputs.get(file) ?? '').matchAll(/^\s+alertname: (\S+), time:/gm)].map((m) => m[1]!),
      );
    const missing = written.filter((w) => !outputs.has(w.file)).map((w) => w.file);
    assert.deepEqual(missing, [], 'promtool reported no result for these');
    // As shipped, every case passes; a file that failed otherwise (no case named) is broken.
    const broken = written
      .filter((w) => {
        const part = outputs.get(w.file)!;
        const failed = failedNames(w.file);
        return failed.has(w.alert) || (!/^\s+SUCCESS\s*$/m.test(part) && failed.size === 0);
      })
      .map((w) => `${w.alert}: ${outputs.get(w.file)!.slice(0, 500)}`);
    assert.deepEqual(broken, [], 'cut-down tests that fail as shipped');
    const uncaught: string[] = [];
    for (const [alert, what] of labels) {
      const failed = new Set(
        written.filter((w) => w.alert === alert).flatMap((w) => [...failedNames(w.file)]),
      );
      what.forEach((label, k) => {
        if (!failed.has(`${alert}__${k}`)) uncaught.push(label);
      });
    }
    assert.deepEqual(uncaught, [], 'conditions no promtool test notices when forced');
  });
});
