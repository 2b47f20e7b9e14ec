import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { BusyTiering } from '../src/lib/compiler.js';
import { REPO } from './helpers/procs.js';

const run = promisify(execFile);

test("warmOptimizingCompiler has V8's optimizing compiler compile a function, under bin/lookout's Node flags", async () => {
  // The flags bin/lookout execs node with, read from it, so this follows the launcher.
  const launcher = await readFile(join(REPO, 'bin/lookout'), 'utf8');
  const flags = /^exec node ((?:--\S+ )+)/m.exec(launcher)?.[1]?.trim().split(' ');
  assert.ok(flags && flags.length > 0, 'node flags found in bin/lookout');
  const script = `import { warmOptimizingCompiler } from ${JSON.stringify(join(REPO, 'src/lib/compiler.ts'))}; warmOptimizingCompiler();`;
  const { stdout } = await run(process.execPath, [
    ...flags,
    '--trace-opt',
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    script,
  ]);
  assert.match(stdout, /completed optimizing .*<JSFunction spin .*\(target TURBOFAN\)/);
});

test("BusyTiering restores V8's interrupt budget under bin/lookout's flags: code first run after the switch is optimized, as without it it is not", async () => {
  const launcher = await readFile(join(REPO, 'bin/lookout'), 'utf8');
  const flags = /^exec node ((?:--\S+ )+)/m.exec(launcher)?.[1]?.trim().split(' ');
  assert.ok(
    flags?.some((f) => f.startsWith('--interrupt-budget=')),
    'bin/lookout sets a budget',
  );
  // `hot` runs 30,000 times, each call from its own turn (no loop to replace on the
  // stack): enough for V8's own budget, a tenth of what 64 times it needs.
  const script = (switched: boolean) => `
    import { BusyTiering } from ${JSON.stringify(join(REPO, 'src/lib/compiler.ts'))};
    const tiering = new BusyTiering(3, () => console.log('switched'));
    tiering.add(${switched ? 3 : 2});
    const o = { a: 1, b: 2 };
    let s = 0;
    function hot(i) { s = (s * 31 + i + o.a + o.b) % 1000003; }
    let k = 0;
    const step = () => { hot(k); if (++k < 30000) setImmediate(step); };
    step();`;
  const out = async (switched: boolean) =>
    (
      await run(process.execPath, [
        ...flags!,
        '--trace-opt',
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        script(switched),
      ])
    ).stdout;
  const before = await out(false);
  assert.doesNotMatch(before, /switched/);
  assert.doesNotMatch(before, /completed optimizing .*<JSFunction hot /);
  const after = await out(true);
  assert.match(after, /switched/);
  assert.match(after, /completed optimizing .*<JSFunction hot .*\(target TURBOFAN\)/);
});

test('BusyTiering changes nothing when node runs without the launcher’s budget', () => {
  let calls = 0;
  const t = new BusyTiering(1, () => calls++, ['--max-old-space-size=64']);
  t.add(5);
  assert.equal(calls, 0);
  const u = new BusyTiering(2, () => calls++, ['--interrupt-budget=4325376']);
  u.add(1);
  assert.equal(calls, 0);
  u.add(1);
  u.add(1);
  assert.equal(calls, 1);
});
