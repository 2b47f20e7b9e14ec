import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
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
