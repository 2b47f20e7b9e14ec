/**
 * Fuzzing the exposition of label values that come from outside lookout: process names
 * (any bytes but NUL: quotes, backslashes, newlines, invalid UTF-8), watched names from
 * the config, mount points and devices from the mount table, network device names,
 * hostname, kernel release and os-release. Each collector reads a temporary /proc and
 * root filesystem; what it rendered, encoded as /metrics sends it (UTF-8) in both formats,
 * must parse with test/helpers/exposition.ts back to exactly what the collector read.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Registry } from 'prom-client';
import { createFilesystemCollector, filesystemSchema } from '../../src/collectors/filesystem.js';
import { createHostCollector, hostSchema } from '../../src/collectors/host.js';
import { createProcessesCollector, processesSchema } from '../../src/collectors/processes.js';
import { render } from '../../src/exporter/openmetrics.js';
import { createLogger } from '../../src/lib/log.js';
import { findSamples, parseExposition } from '../helpers/exposition.js';
import { fuzzAsync, polled } from '../helpers/fuzz.js';
import { REPO, tempDir } from '../helpers/procs.js';

const quiet = createLogger('error', {}, () => {});
const refresh = { signal: new AbortController().signal, deadline: Infinity, log: quiet };

/** Both formats as a scraper receives them: UTF-8 bytes, decoded. Each must parse. */
async function scraped(registry: Registry): Promise<string[]> {
  const r = await render(registry);
  const wire = (s: string) => Buffer.from(s).toString('utf8');
  const both = [wire(r.prometheus), wire(r.openmetrics + '# EOF\n')];
  for (const t of both) parseExposition(t); // throws naming the line it cannot read
  return both;
}

/** The values of one label on the named samples, in exposition order. */
function labelValues(text: string, sample: string, label: string): (string | undefined)[] {
  return findSamples(text, sample).map((s) => s.labels[label]);
}

/** Bytes the kernel may hold in a name: anything but NUL, invalid UTF-8 included. */
const nameBytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max, min: 1, max: 255 }).map((b) => Buffer.from(b));

/** Text the collectors are configured with: any well-formed string (YAML cannot carry a lone surrogate... see the report). */
const wellFormed = (max: number) =>
  fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: max })
    .filter((s) => Buffer.byteLength(s) <= 64);

async function procCopy(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await tempDir('lookout-fuzz-expo-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('fuzz: label values from /proc and the config render and parse back unchanged', () => {
  test('processes: any command name and any watched name', async (t) => {
    const dir = await procCopy(t);
    const procfs = join(dir, 'proc');
    await mkdir(procfs);
    const pids = ['11', '12', '13'];
    for (const pid of pids) await mkdir(join(procfs, pid));
    await fuzzAsync(
      t,
      150,
      fc.array(nameBytes(1, 64), { minLength: 3, maxLength: 3 }),
      fc.array(wellFormed(20), { minLength: 1, maxLength: 3 }),
      async (comms, watch) => {
        for (const [i, pid] of pids.entries()) {
          const tail = `S 1 ${pid} ${pid} 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 100 1000000 ${(i + 1) * 100} 0`;
          await writeFile(
            join(procfs, pid, 'stat'),
            Buffer.concat([Buffer.from(`${pid} (`), comms[i]!, Buffer.from(`) ${tail}\n`)]),
          );
        }
        const collector = createProcessesCollector(
          processesSchema.parse({ watch, top: 3 }),
          { procfs, sysfs: '/x', rootfs: '/' },
          4096,
        );
        try {
          const registry = await polled(collector).collect(refresh);
          const seen = collector.lastSeen()!;
          // Biggest first: pid 13 has the most pages. A name is the file's text as UTF-8.
          const expected = [...comms].reverse().map((c) => c.toString('utf8'));
          assert.deepEqual(
            seen.top.map((p) => p.name),
            expected,
          );
          for (const text of await scraped(registry)) {
            assert.deepEqual(
              labelValues(text, 'lookout_top_process_resident_memory_bytes', 'name'),
              expected,
            );
            assert.deepEqual(
              new Set(labelValues(text, 'lookout_watched_processes', 'name')),
              new Set(watch),
            );
          }
        } finally {
          polled(collector).close?.();
        }
      },
    );
  });

  test('filesystem: any mount point and device, escaped as the kernel escapes them', async (t) => {
    const dir = await procCopy(t);
    const procfs = join(dir, 'proc');
    await mkdir(join(procfs, '1'), { recursive: true });
    const escape = (b: Buffer) =>
      b
        .toString('latin1')
        .replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
    const stats = { bsize: 4096, blocks: 10, bfree: 5, bavail: 4, files: 3, ffree: 2 };
    const collector = createFilesystemCollector(
      filesystemSchema.parse({ mount_points_exclude: '^$', fs_types_exclude: '^$' }),
      { procfs, sysfs: '/x', rootfs: '/' },
      quiet,
      async () => stats, // statfs itself is test/collectors.test.ts's; here only the names matter
    );
    const mount = fc.record({ device: nameBytes(1, 40), path: nameBytes(0, 60) });
    await fuzzAsync(t, 150, fc.array(mount, { minLength: 1, maxLength: 4 }), async (mounts) => {
      const lines = mounts.map(
        (m) => `${escape(m.device)} /${escape(m.path)} ext4 rw,relatime 0 0`,
      );
      await writeFile(join(procfs, '1/mounts'), Buffer.from(lines.join('\n') + '\n', 'latin1'));
      const registry = await polled(collector).collect(refresh);
      const seen = collector.lastSeen()!;
      for (const text of await scraped(registry)) {
        const samples = findSamples(text, 'lookout_filesystem_readonly');
        assert.deepEqual(
          samples.map((s) => [s.labels.mountpoint, s.labels.device]),
          seen.map((m) => [m.mount.mountpoint, m.mount.device]),
        );
      }
    });
  });

  test('host: any hostname, kernel release, os-release name and network device name', async (t) => {
    const dir = await procCopy(t);
    const procfs = join(dir, 'proc');
    const rootfs = join(dir, 'rootfs');
    await cp(join(REPO, 'test/fixtures/proc'), procfs, { recursive: true });
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    const collector = createHostCollector(hostSchema.parse({}), { procfs, sysfs: '/x', rootfs }, 0);
    // A device name is at most 15 bytes, with no "/", ":", whitespace or NUL (dev_valid_name).
    const device = fc
      .uint8Array({ minLength: 1, maxLength: 15, min: 33, max: 255 })
      .map((b) => Buffer.from(b.filter((x) => x !== 0x2f && x !== 0x3a)))
      .filter((b) => b.length > 0 && b.toString('latin1') !== 'lo');
    const devLine = (name: Buffer) =>
      Buffer.concat([Buffer.from('  '), name, Buffer.from(`: ${' 1'.repeat(16)}\n`)]);
    await fuzzAsync(
      t,
      150,
      nameBytes(1, 64),
      nameBytes(1, 64),
      nameBytes(0, 80),
      fc.uniqueArray(device, { minLength: 1, maxLength: 3, selector: (b) => b.toString('utf8') }),
      async (hostname, kernel, prettyName, devices) => {
        await writeFile(join(rootfs, 'etc/hostname'), hostname);
        await writeFile(join(procfs, 'sys/kernel/osrelease'), kernel);
        await writeFile(
          join(rootfs, 'etc/os-release'),
          Buffer.concat([Buffer.from('PRETTY_NAME='), prettyName, Buffer.from('\n')]),
        );
        await writeFile(
          join(procfs, '1/net/dev'),
          Buffer.concat([Buffer.from('Inter-|\n face |\n'), ...devices.map(devLine)]),
        );
        const registry = await polled(collector).collect(refresh);
        const { info } = collector.lastSeen()!;
        for (const text of await scraped(registry)) {
          const [sample] = findSamples(text, 'lookout_host_info');
          assert.deepEqual(sample?.labels, { ...info });
          assert.deepEqual(
            new Set(labelValues(text, 'lookout_network_receive_bytes_total', 'device')),
            new Set(devices.map((d) => d.toString('utf8'))),
          );
        }
      },
    );
  });
});
