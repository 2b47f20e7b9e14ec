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
import {
  findSamples,
  parseExposition,
  sampleValue,
  type Family,
  type Sample,
} from './helpers/exposition.js';
import {
  eventually,
  startLookout,
  startNodeExporter,
  tempDir,
  type Running,
} from './helpers/procs.js';

const run = promisify(execFile);

const isRoot = process.getuid?.() === 0;

function bySeries(families: Family[], name: string): Map<string | undefined, Sample> {
  return new Map(findSamples(families, name).map((s) => [s.labels.mountpoint, s]));
}

function single(families: Family[], name: string): number {
  const found = findSamples(families, name);
  assert.equal(found.length, 1, `${name}: expected one sample, got ${found.length}`);
  return found[0]!.value;
}

async function scrape(url: string): Promise<Family[]> {
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
    if (isRoot) {
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

  test('exact: memory total, CPU count, boot time, filesystem size and inodes', async () => {
    const [l, n] = await Promise.all([scrape(lookout!.url), scrape(node!.url)]);

    assert.equal(
      single(l, 'lookout_memory_total_bytes'),
      single(n, 'node_memory_MemTotal_bytes'),
      'memory total',
    );
    const nodeCpus = new Set(findSamples(n, 'node_cpu_seconds_total').map((s) => s.labels.cpu));
    assert.ok(nodeCpus.size > 0);
    assert.equal(single(l, 'lookout_cpus'), nodeCpus.size, 'CPU count');
    assert.equal(
      single(l, 'lookout_boot_time_seconds'),
      single(n, 'node_boot_time_seconds'),
      'boot time',
    );

    const lSize = bySeries(l, 'lookout_filesystem_size_bytes');
    const nSize = bySeries(n, 'node_filesystem_size_bytes');
    const shared = [...lSize.keys()].filter((mp) => nSize.has(mp));
    assert.ok(shared.includes('/'), `shared mountpoints: ${shared.join(', ')}`);
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
  });

  test(
    'exact: a tmpfs of known size, seen by both at the same size and free space',
    { skip: !isRoot && 'needs root to mount a tmpfs' },
    async () => {
      const [l, n] = await Promise.all([scrape(lookout!.url), scrape(node!.url)]);
      const lSize = bySeries(l, 'lookout_filesystem_size_bytes').get(tmpfs);
      assert.ok(lSize, `lookout has no size for ${tmpfs}`);
      assert.equal(lSize.value, 8 * 1024 * 1024);
      assert.equal(lSize.labels.fstype, 'tmpfs');
      assert.equal(bySeries(n, 'node_filesystem_size_bytes').get(tmpfs)?.value, 8 * 1024 * 1024);
      assert.equal(
        bySeries(l, 'lookout_filesystem_avail_bytes').get(tmpfs)?.value,
        bySeries(n, 'node_filesystem_avail_bytes').get(tmpfs)?.value,
      );
    },
  );

  /**
   * Values that move between two reads: compare scrapes taken together, a few times, and
   * accept the first close match; report the last miss otherwise. Each try waits for
   * lookout's next refresh (node_exporter reads on every scrape), so each compares a new
   * reading rather than the same one again. `compare` returns what disagreed.
   */
  async function closeAgreement(compare: (l: Family[], n: Family[]) => string[]): Promise<void> {
    const misses: string[] = [];
    let refreshed = -1;
    for (let attempt = 0; attempt < 8; attempt++) {
      const previous = refreshed;
      refreshed = await eventually(
        async () => {
          const t = sampleValue(
            await scrape(lookout!.url),
            'lookout_collector_last_success_timestamp_seconds',
            { collector: 'host' },
          );
          return t !== undefined && t > previous ? t : undefined;
        },
        10_000,
        'a new refresh of the host collector',
      );
      const [l, n] = await Promise.all([scrape(lookout!.url), scrape(node!.url)]);
      const problems = compare(l, n);
      if (problems.length === 0) return;
      misses.push(problems.join('; '));
    }
    assert.fail(`no close agreement in 8 tries; last: ${misses.at(-1)}`);
  }

  test('close: load, available memory, CPU seconds by mode', async () => {
    await closeAgreement((l, n) => {
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
      for (const s of findSamples(l, 'lookout_cpu_seconds_total')) {
        const mode = s.labels.mode!;
        const perCpu = findSamples(n, 'node_cpu_seconds_total').filter(
          (x) => x.labels.mode === mode,
        );
        assert.equal(perCpu.length, cpuCount, `node_exporter has mode ${mode} for every CPU`);
        const nodeSum = perCpu.reduce((acc, x) => acc + x.value, 0);
        // lookout's reading is up to 1 s older: at most 1 s per CPU, plus rounding.
        const tolerance = 1.5 * cpuCount + 0.001 * nodeSum;
        if (Math.abs(s.value - nodeSum) > tolerance)
          problems.push(`cpu ${mode}: lookout ${s.value}, node sum ${nodeSum.toFixed(2)}`);
      }
      return problems;
    });
  });

  test('close: OOM kills, swap in/out, major faults, network errors and drops, conntrack, file descriptors', async () => {
    // [lookout, node_exporter, how far apart two reads a moment apart may be]. Limits and
    // OOM kills stand still; the rest move with the host's work.
    const pairs: Array<[string, string, number]> = [
      ['lookout_oom_kills_total', 'node_vmstat_oom_kill', 0],
      ['lookout_swap_in_pages_total', 'node_vmstat_pswpin', 4096],
      ['lookout_swap_out_pages_total', 'node_vmstat_pswpout', 4096],
      ['lookout_major_page_faults_total', 'node_vmstat_pgmajfault', 1000],
      ['lookout_file_descriptors', 'node_filefd_allocated', 500],
      ['lookout_file_descriptors_limit', 'node_filefd_maximum', 0],
    ];
    // Without the nf_conntrack module neither exports these: nothing to compare.
    const conntrack = findSamples(await scrape(node!.url), 'node_nf_conntrack_entries').length;
    if (conntrack > 0)
      pairs.push(
        ['lookout_conntrack_entries', 'node_nf_conntrack_entries', 200],
        ['lookout_conntrack_entries_limit', 'node_nf_conntrack_entries_limit', 0],
      );
    const perDevice: Array<[string, string]> = [
      ['lookout_network_receive_errors_total', 'node_network_receive_errs_total'],
      ['lookout_network_transmit_errors_total', 'node_network_transmit_errs_total'],
      ['lookout_network_receive_drops_total', 'node_network_receive_drop_total'],
      ['lookout_network_transmit_drops_total', 'node_network_transmit_drop_total'],
    ];
    await closeAgreement((l, n) => {
      const problems: string[] = [];
      for (const [ours, theirs, tolerance] of pairs) {
        const a = single(l, ours);
        const b = single(n, theirs);
        if (Math.abs(a - b) > tolerance) problems.push(`${ours} ${a}, ${theirs} ${b}`);
      }
      for (const [ours, theirs] of perDevice) {
        const node = new Map(findSamples(n, theirs).map((s) => [s.labels.device, s.value]));
        const shared = findSamples(l, ours).filter((s) => node.has(s.labels.device));
        if (shared.length === 0) problems.push(`${ours}: no device both export`);
        for (const s of shared)
          if (Math.abs(s.value - node.get(s.labels.device)!) > 10)
            problems.push(
              `${ours}{device="${s.labels.device}"} ${s.value}, node ${node.get(s.labels.device)}`,
            );
      }
      return problems;
    });
  });
});
