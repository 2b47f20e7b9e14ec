/**
 * src/lib/prom.ts: prom-client's parts without its index (which loads node:https and
 * node:tls for its Pushgateway, and Summary's t-digest).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as index from 'prom-client';
import { collectDefaultMetrics, Counter, Gauge, Registry } from '../src/lib/prom.js';
import { REPO } from './helpers/procs.js';

const run = promisify(execFile);

describe('prom-client without its index', () => {
  it("gives the index's own classes: metrics made either way register and render together", async () => {
    assert.equal(Registry, index.Registry);
    assert.equal(Counter, index.Counter);
    assert.equal(Gauge, index.Gauge);
    assert.equal(collectDefaultMetrics, index.collectDefaultMetrics);
    const registry = new Registry();
    new Counter({ name: 'a_total', help: 'a', registers: [registry] }).inc(2);
    new index.Gauge({ name: 'b', help: 'b', registers: [registry] }).set(3);
    const text = await registry.metrics();
    assert.match(text, /^a_total 2$/m);
    assert.match(text, /^b 3$/m);
  });

  it('loads neither node:https, node:tls nor the Pushgateway and Summary code', async () => {
    const script = [
      "const p = await import('./src/lib/prom.ts');",
      "const r = new p.Registry(); new p.Gauge({ name: 'g', help: 'g', registers: [r] }).set(1);",
      'p.collectDefaultMetrics({ register: r }); await r.metrics();',
      "const { createRequire } = await import('node:module');",
      'const files = Object.keys(createRequire(import.meta.url).cache);',
      'console.log(JSON.stringify({ builtins: process.moduleLoadList, files }));',
      'process.exit(0);',
    ].join('\n');
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: REPO },
    );
    const { builtins, files } = JSON.parse(stdout) as { builtins: string[]; files: string[] };
    assert.ok(builtins.includes('NativeModule fs'), 'the list is the real one');
    for (const mod of ['https', 'tls', '_tls_wrap'])
      assert.ok(!builtins.includes(`NativeModule ${mod}`), `${mod} was loaded`);
    assert.ok(
      files.some((f) => f.endsWith('prom-client/lib/registry.js')),
      files.join(' '),
    );
    for (const f of ['pushgateway.js', 'summary.js', 'prom-client/index.js'])
      assert.ok(!files.some((g) => g.endsWith(f)), `${f} was loaded`);
  });

  it("no file under src/ but src/lib/prom.ts takes a value from 'prom-client' (one would load the index again)", async () => {
    const files = (await readdir(join(REPO, 'src'), { recursive: true }))
      .filter((f) => f.endsWith('.ts') && f !== join('lib', 'prom.ts'))
      .map((f) => join(REPO, 'src', f));
    assert.ok(files.length > 20, `read ${files.length} files`);
    const offenders: string[] = [];
    for (const file of files)
      for (const m of (await readFile(file, 'utf8')).matchAll(
        /^(import|export)\b[^;]*?from 'prom-client'/gm,
      ))
        if (!/^import type\b/.test(m[0])) offenders.push(`${file}: ${m[0]}`);
    assert.deepEqual(offenders, []);
  });
});
