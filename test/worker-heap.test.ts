/**
 * startWorker (src/lib/worker-heap.ts) under bin/lookout's Node flags: the worker gets the
 * young generation its resourceLimits ask for, and the main thread keeps the launcher's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { REPO } from './helpers/procs.js';

const run = promisify(execFile);

// Each side allocates well past its young generation, then says how big its new space grew.
const newSpace = (v8: string) =>
  `(() => { const keep = []; for (let i = 0; i < 300000; i++) keep.push({ i }); return ${v8}.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size; })()`;

test("startWorker gives the worker its resourceLimits' young generation under bin/lookout's flags, and leaves the main thread's as the launcher sets it", async () => {
  const launcher = await readFile(join(REPO, 'bin/lookout'), 'utf8');
  const flags = /^exec node ((?:--\S+ )+)/m.exec(launcher)?.[1]?.trim().split(' ');
  assert.ok(flags?.includes('--max-semi-space-size=1'), 'bin/lookout sets a 1 MB semi-space');
  const script = `
    import { startWorker } from ${JSON.stringify(join(REPO, 'src/lib/worker-heap.ts'))};
    import { Worker } from 'node:worker_threads';
    import { once } from 'node:events';
    import v8 from 'node:v8';
    // The worker's eval code runs as a module too (--input-type is inherited).
    const code = "const v8 = (await import('node:v8')).default; (await import('node:worker_threads')).parentPort.postMessage(" + ${JSON.stringify(newSpace('v8'))} + ")";
    const limits = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 12 };
    const plain = new Worker(code, { eval: true, resourceLimits: limits });
    const [without] = await once(plain, 'message');
    const started = await startWorker(code, { eval: true, resourceLimits: limits });
    const [with_] = await once(started, 'message');
    await plain.terminate();
    await started.terminate();
    const main = ${newSpace('v8')};
    console.log(JSON.stringify({ without, with: with_, main }));`;
  const { stdout } = await run(process.execPath, [
    ...flags!,
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    script,
  ]);
  const r = JSON.parse(stdout) as { without: number; with: number; main: number };
  const MB = 1 << 20;
  // A new space is two semi-spaces: 2 x 1 MB under the launcher's flag, 2 x 4 MB for 12 MB.
  assert.equal(r.without, 2 * MB, 'a worker made the plain way gets the launcher’s 1 MB');
  assert.equal(r.with, 8 * MB, 'startWorker’s worker gets 4 MB semi-spaces');
  assert.equal(r.main, 2 * MB, 'the main thread keeps the launcher’s 1 MB');
});
