/**
 * The anchor: lookout and prometheus-node-exporter on the same host must agree.
 * Exact where both read the same constant (memory total, filesystem sizes, CPU count,
 * boot time); within a small tolerance where the value moves between two reads (load,
 * available memory, CPU seconds).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startLookout, startNodeExporter, tempDir, type Running } from './helpers/procs.js';

const run = promisify(execFile);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser for the Prometheus text format: enough for comparing samples. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`cannot parse exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (const l of (m[2] ?? '').matchAll(labelRe)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[3]!;
    out.push({
      name: m[1]!,
      labels,
      value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v),
    });
  }
  return out;
}

function values(samples: Sample[], name: string): Sample[] {
  return samples.filter((s) => s.name === name);
}

function single(samples: Sample[], name: string): number {
  const found = values(samples, name);
  assert.equal(found.length, 1, `${name}: expected one sample, got ${found.length}`);
  return found[0]!.value;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

describe('lookout agrees with node_exporter on this host', () => {
  let lookout: Running | undefined;
  let node: Running | undefined;
  let dir = '';
  let tmpfs = '';

  before(async () => {
    dir = await tempDir('lookout-agree-');
    // A filesystem of known size that both exporters include by default (when we can mount).
    if (process.getuid?.() === 0) {
      tmpfs = join(dir, 'shared tmpfs');
      await mkdir(tmpfs);
      await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'lookout-agree', tmpfs]);
    }
    // The host collector refreshes every second so its values are as fresh as node_exporter's.
    // One after the other, so a failure to start the second leaves the first for after().
    lookout = await startLookout('collectors:\n  host: { interval: 1s, timeout: 1s }\n');
    node = await startNodeExporter();
  });
  after(async () => {
    await Promise.all([lookout?.stop(), node?.stop()]);
    if (tmpfs) await run('umount', [tmpfs]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  test('test parser reads labels with escapes and special values', () => {
    const [a, b] = parseExposition('x{a="q\\"uote",b="back\\\\slash"} 1.5e+09\ny +Inf\n');
    assert.deepEqual(a, { name: 'x', labels: { a: 'q"uote', b: 'back\\slash' }, value: 1.5e9 });
    assert.equal(b?.value, Infinity);
  });

  test('exact: memory total, CPU count, boot time, filesystem size and inodes', async () => {
    const [l, n] = await Promise.all([scrape(lookout!.url), scrape(node!.url)]);

    assert.equal(
      single(l, 'lookout_memory_total_bytes'),
      single(n, 'node_memory_MemTotal_bytes'),
      'memory total',
    );
    const nodeCpus = new Set(values(n, 'node_cpu_seconds_total').map((s) => s.labels.cpu));
    assert.ok(nodeCpus.size > 0);
    assert.equal(single(l, 'lookout_cpus'), nodeCpus.size, 'CPU count');
    assert.equal(
      single(l, 'lookout_boot_time_seconds'),
      single(n, 'node_boot_time_seconds'),
      'boot time',
    );

    const bySeries = (samples: Sample[], name: string) =>
      new Map(values(samples, name).map((s) => [s.labels.mountpoint, s]));
    const lSize = bySeries(l, 'lookout_filesystem_size_bytes');
    const nSize = bySeries(n, 'node_filesystem_size_bytes');
    const shared = [...lSize.keys()].filter((mp) => nSize.has(mp));
    assert.ok(shared.includes('/'), `shared mountpoints: ${shared.join(', ')}`);
    if (tmpfs) assert.ok(shared.includes(tmpfs), `the test tmpfs in ${shared.join(', ')}`);
    const lFiles = bySeries(l, 'lookout_filesystem_files');
    const nFiles = bySeries(n, 'node_filesystem_files');
    for (const mp of shared) {
      const ls = lSize.get(mp)!;
      const ns = nSize.get(mp)!;
      assert.equal(ls.value, ns.value, `size of ${mp}`);
      assert.equal(ls.labels.device, ns.labels.device, `device of ${mp}`);
      assert.equal(ls.labels.fstype, ns.labels.fstype, `fstype of ${mp}`);
      assert.equal(lFiles.get(mp)?.value, nFiles.get(mp)?.value, `inodes of ${mp}`);
    }
    if (tmpfs) {
      assert.equal(lSize.get(tmpfs)?.value, 8 * 1024 * 1024);
      assert.equal(
        bySeries(l, 'lookout_filesystem_avail_bytes').get(tmpfs)?.value,
        bySeries(n, 'node_filesystem_avail_bytes').get(tmpfs)?.value,
      );
    }
  });

  test('close: load, available memory, CPU seconds by mode', async () => {
    // Load moves every 5 s and memory all the time: compare scrapes taken together, a few
    // times, and accept the first close match; report the last miss otherwise.
    const misses: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 1100));
      const [l, n] = await Promise.all([scrape(lookout!.url), scrape(node!.url)]);
      const problems: string[] = [];
      for (const name of ['load1', 'load5', 'load15']) {
        const a = single(l, `lookout_${name}`);
        const b = single(n, `node_${name}`);
        if (Math.abs(a - b) > 0.05) problems.push(`${name}: lookout ${a}, node ${b}`);
      }
      const availL = single(l, 'lookout_memory_available_bytes');
      const availN = single(n, 'node_memory_MemAvailable_bytes');
      if (Math.abs(availL - availN) > 64 * 1024 * 1024)
        problems.push(`MemAvailable: lookout ${availL}, node ${availN}`);

      const cpuCount = single(l, 'lookout_cpus');
      for (const s of values(l, 'lookout_cpu_seconds_total')) {
        const mode = s.labels.mode!;
        const perCpu = values(n, 'node_cpu_seconds_total').filter((x) => x.labels.mode === mode);
        assert.equal(perCpu.length, cpuCount, `node_exporter has mode ${mode} for every CPU`);
        const nodeSum = perCpu.reduce((acc, x) => acc + x.value, 0);
        // lookout's reading is up to 1 s older: at most 1 s per CPU, plus rounding.
        const tolerance = 1.5 * cpuCount + 0.001 * nodeSum;
        if (Math.abs(s.value - nodeSum) > tolerance)
          problems.push(`cpu ${mode}: lookout ${s.value}, node sum ${nodeSum.toFixed(2)}`);
      }
      if (problems.length === 0) return;
      misses.push(problems.join('; '));
    }
    assert.fail(`no close agreement in 8 tries; last: ${misses.at(-1)}`);
  });
});
