/** `lookout status` as an operator runs it: the built CLI on this host. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { humanBytes, percent, table } from '../src/status.js';
import { REPO, tempDir } from './helpers/procs.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function lookoutStatus(configFile?: string): Promise<Result> {
  const args = [join(REPO, 'dist/cli.js'), 'status'];
  if (configFile) args.push('--config', configFile);
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? -1) : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

describe('lookout status', () => {
  let dir = '';
  before(async () => {
    dir = await tempDir('lookout-status-');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('prints every section with this host’s numbers and exits 0', async () => {
    const r = await lookoutStatus();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout;
    for (const heading of [
      /^CPU {6}\d+\.\d % busy over 0\.\d s on \d+ cores \(user /m,
      /^Load {5}\d+\.\d\d \d+\.\d\d \d+\.\d\d \(1m 5m 15m\); per core /m,
      /^Memory {3}/m,
      /^Swap {5}/m,
      /^Filesystems$/m,
      /^MOUNTPOINT +DEVICE +TYPE +SIZE +USED +AVAIL +USE% +INODES%$/m,
      /^Processes \d+: /m,
      /^Zombies {3}\d+$/m,
      /^Biggest processes by resident memory$/m,
      /^Collectors$/m,
    ]) {
      assert.match(out, heading);
    }

    assert.match(out, new RegExp(`on ${cpus().length} cores`));
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1]);
    assert.match(
      out,
      new RegExp(`used of ${humanBytes(kb('MemTotal') * 1024).replace('.', '\\.')} \\(`),
    );
    if (kb('SwapTotal') === 0) assert.match(out, /^Swap {5}none$/m);
    else assert.match(out, /^Swap {5}\S+ \S+ used of /m);

    // The root filesystem, with the size statfs gives (as df does).
    const root = await statfs('/');
    const rootRow = out.split('\n').find((l) => l.startsWith('/ '));
    assert.ok(rootRow, out);
    assert.match(
      rootRow,
      new RegExp(` ${humanBytes(root.blocks * root.bsize).replace('.', '\\.')} `),
    );
    assert.match(rootRow, /\d+\.\d % +\d+\.\d %/);

    // The biggest process has a real size.
    assert.match(out, /^ +1 {2}\S.* +\d+\.\d (KiB|MiB|GiB) +\d+\.\d %$/m);
    for (const name of ['host', 'filesystem', 'processes'])
      assert.match(out, new RegExp(`^${name} +ok +\\d+\\.\\d ms$`, 'm'));
  });

  test('a collector that cannot read /proc is shown as failed, with the reason, and exits 1', async () => {
    const config = join(dir, 'broken.yml');
    await writeFile(
      config,
      `paths:\n  procfs: /nonexistent-proc\ncollectors:\n  runtime: { enabled: false }\n`,
    );
    const r = await lookoutStatus(config);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^host +FAILED +\S+ ms +read \/nonexistent-proc\/\S+: ENOENT/m);
    assert.match(r.stdout, /^processes +FAILED /m);
    assert.match(r.stdout, /^filesystem +FAILED .*nonexistent-proc\/mounts/m);
    assert.match(r.stdout, /the host collector failed \(see Collectors\)/);
    assert.match(r.stdout, /^3 collector\(s\) failed\.$/m);
  });

  test('a disabled collector is said to be disabled, not failed', async () => {
    const config = join(dir, 'nofs.yml');
    await writeFile(config, `collectors:\n  filesystem: { enabled: false }\n`);
    const r = await lookoutStatus(config);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /the filesystem collector is disabled/);
    assert.doesNotMatch(r.stdout, /^filesystem /m);
  });
});

describe('status formatting', () => {
  test('binary units and percentages', () => {
    assert.equal(humanBytes(0), '0 B');
    assert.equal(humanBytes(1023), '1023 B');
    assert.equal(humanBytes(1536), '1.5 KiB');
    assert.equal(humanBytes(24683620 * 1024), '23.5 GiB');
    assert.equal(humanBytes(270553174016), '252.0 GiB');
    assert.equal(percent(0.2272), '22.7 %');
    assert.equal(percent(undefined), '-');
    assert.equal(percent(NaN), '-');
  });
  test('table pads columns and right-aligns numbers', () => {
    assert.equal(
      table(
        ['A', 'NUM'],
        [
          ['long name', '1'],
          ['x', '100'],
        ],
        [false, true],
      ),
      'A          NUM\nlong name    1\nx          100\n',
    );
  });
});
