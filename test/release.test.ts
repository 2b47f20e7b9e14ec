/**
 * The release archive, installed as a user would on a host that has no Node: a minimal
 * Debian root made with debootstrap (the compose test's cached tree), entered with chroot
 * in a network namespace of its own (only a loopback: no network), with the host's /proc
 * and /sys mounted read-only in a private mount namespace. systemd is not PID 1 here,
 * so the unit is checked with `systemd-analyze verify` and its command lines are run as
 * systemd would run them: as an unprivileged user, with its environment and directory.
 *
 * Two archives from one build: the checkout's version and a bumped one for the upgrade.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFile,
  chown,
  copyFile,
  lstat,
  readFile,
  readlink,
  rm,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig, parseConfig } from '../src/collectors/config.js';
import { release, type Release } from '../scripts/release.js';
import { debianMirror, debootstrapTarball } from './helpers/images.js';
import { tempDir } from './helpers/procs.js';

const run = promisify(execFile);
/** sudo's secure_path and nothing else from this process (no NODE_EXTRA_CA_CERTS, no HOME). */
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
const NOBODY = '65534:65534';
const PORT = 10142;

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (chroot, mount and network namespaces); CI runs as root';

/**
 * Runs argv inside ROOT: a new network namespace (loopback up, nothing else) and a new
 * mount namespace where ROOT is a mount point of its own (so lookout sees `/` as one) with
 * the host's /proc and /sys on it, read-only. All of it goes when the process ends.
 */
function inRootArgs(rootDir: string, argv: string[], user?: string, env: string[] = []) {
  const script =
    'root=$1; shift; ' +
    'mount --bind "$root" "$root" && mount -t proc -o ro,nosuid,nodev,noexec proc "$root/proc" ' +
    '&& mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" && ip link set lo up && exec chroot "$@"';
  const chrootArgs = user
    ? [`--userspec=${user}`, rootDir, '/usr/bin/env', '-i', ...env, ...argv]
    : [rootDir, ...argv];
  return ['--net', '--mount', '--', 'sh', '-c', script, 'sh', rootDir, ...chrootArgs];
}

interface Result {
  code: number;
  out: string;
}

async function inRoot(rootDir: string, argv: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run('unshare', inRootArgs(rootDir, argv), {
      env: ENV,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 120_000,
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

/** One entry per path under ROOT (but the skipped ones): what it is, and for files, what is in it. */
interface Entry {
  kind: 'file' | 'dir' | 'link' | 'other';
  mode: number;
  uid: number;
  size: number;
  mtimeMs: number;
  link?: string;
}
/** One find(1) over the tree: thousands of awaited lstat calls take seconds on a loaded host. */
async function snapshot(rootDir: string, skipPaths: string[]): Promise<Map<string, Entry>> {
  const prune = skipPaths.flatMap((p, i) => [...(i ? ['-o'] : []), '-path', join(rootDir, p)]);
  const { stdout } = await run(
    'find',
    [
      rootDir,
      '(',
      ...prune,
      ')',
      '-prune',
      '-o',
      '-printf',
      '%y\\t%m\\t%U\\t%s\\t%T@\\t%l\\t%P\\0',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const kinds: Record<string, Entry['kind']> = { f: 'file', d: 'dir', l: 'link' };
  const out = new Map<string, Entry>();
  for (const record of stdout.split('\0')) {
    if (record === '') continue;
    const [type = '', mode = '', uid = '', size = '', mtime = '', link = '', path = ''] =
      record.split('\t');
    const kind = kinds[type] ?? 'other';
    out.set(`/${path}`, {
      kind,
      mode: parseInt(mode, 8),
      uid: Number(uid),
      size: kind === 'file' ? Number(size) : 0,
      mtimeMs: Number(mtime) * 1000,
      link: kind === 'link' ? link : undefined,
    });
  }
  return out;
}

/** Paths added, removed, or changed (a file's content, any mode, owner or link target). */
function diff(before: Map<string, Entry>, after: Map<string, Entry>, withTimes: boolean) {
  const added = [...after.keys()].filter((p) => !before.has(p)).sort();
  const removed = [...before.keys()].filter((p) => !after.has(p)).sort();
  const changed: string[] = [];
  for (const [path, a] of after) {
    const b = before.get(path);
    if (!b) continue;
    const same =
      a.kind === b.kind &&
      a.mode === b.mode &&
      a.uid === b.uid &&
      a.size === b.size &&
      a.link === b.link &&
      (!withTimes || a.mtimeMs === b.mtimeMs);
    if (!same) changed.push(path);
  }
  return { added, removed, changed: changed.sort() };
}

/** The unit's key=value lines of [Service] (the parts a run of it needs). */
function serviceKeys(unit: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const line of unit.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) section = header[1]!;
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (section === 'Service' && m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  return keys;
}

interface Served {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<number | null>;
}

describe(
  'the release archive, installed on a Debian root without Node or network',
  { skip },
  () => {
    let work: string;
    let ROOT: string;
    let first: Release;
    let next: Release;
    /** The root as debootstrap made it, before anything of lookout's was put there. */
    let pristine: Map<string, Entry>;
    let unit: Map<string, string[]>;
    /** Unpacking, installing and the first good /metrics, in seconds. */
    const timing = { unpack: 0, install: 0, serve: 0 };
    const skipped = ['/proc', '/sys', '/dev', '/lookout', '/upgrade', '/archives'];
    const defaults = Object.entries(
      parseConfig({}).collectors as Record<string, { enabled: boolean }>,
    )
      .filter(([, c]) => c.enabled)
      .map(([name]) => name);

    before(async () => {
      work = await tempDir('lookout-release-');
      ROOT = join(work, 'root');
      const version = (JSON.parse(await readFile('package.json', 'utf8')) as { version: string })
        .version;
      const bumped = version.replace(/(\d+)$/, (n) => String(Number(n) + 1));
      const [tarball, built] = await Promise.all([
        debianMirror().then((mirror) => debootstrapTarball('bookworm', mirror, console.log)),
        release({ out: join(work, 'out'), versions: [version, bumped] }),
      ]);
      [first, next] = built as [Release, Release];
      await run('mkdir', ['-m', '0755', ROOT]);
      await run('tar', ['-C', ROOT, '-xf', tarball]);
      await run('mkdir', ['-p', join(ROOT, 'archives')]);
      for (const r of built)
        await copyFile(r.archive, join(ROOT, 'archives', r.archive.split('/').pop()!));
      pristine = await snapshot(ROOT, skipped);
      const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
      console.log(
        `archive ${first.archive.split('/').pop()}: ${mb(first.bytes)}, unpacked ${mb(first.unpackedBytes)}, ${first.files} files; both archives built in ${next.seconds.toFixed(0)} s`,
      );
    });

    after(async () => {
      if (work) await rm(work, { recursive: true, force: true });
    });

    const archiveIn = (r: Release) => `/archives/${r.archive.split('/').pop()}`;

    it('carries its Node, dist, production dependencies only, the runbooks, the unit, the example config', async () => {
      const { stdout } = await run('tar', ['-tzf', first.archive], { maxBuffer: 16 * 1024 * 1024 });
      const names = new Set(stdout.split('\n').filter(Boolean));
      for (const want of [
        'lookout/bin/lookout',
        'lookout/runtime/node',
        'lookout/dist/cli.js',
        'lookout/dist/install.js',
        'lookout/docs/runbooks.md',
        'lookout/pricing/ai-prices.yml',
        'lookout/deploy/systemd/lookout.service',
        'lookout/deploy/systemd/lookout.service.d/docker.conf',
        'lookout/lookout.example.yml',
        'lookout/package.json',
        'lookout/MANIFEST',
        'lookout/node_modules/bcrypt/package.json',
        'lookout/node_modules/prom-client/package.json',
        // The two addons this checkout's `npm ci` compiled: the aicost store's, the timex
        // collector's.
        'lookout/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
        'lookout/native/timex/build/Release/timex.node',
      ])
        assert.ok(names.has(want), `${want} is in the archive`);
      const pkg = JSON.parse(await readFile('package.json', 'utf8')) as {
        dependencies: Record<string, string>;
        devDependencies: Record<string, string>;
      };
      for (const dev of Object.keys(pkg.devDependencies))
        assert.ok(
          !names.has(`lookout/node_modules/${dev}/package.json`),
          `${dev} (dev) is not in it`,
        );
      for (const name of names)
        assert.doesNotMatch(name, /^lookout\/(src|test|bench|node_modules\/\.bin)\//, name);
      // Of better-sqlite3's build, only the addon: no objects, no sqlite3 sources.
      assert.deepEqual(
        [...names].filter(
          (n) =>
            n.startsWith('lookout/node_modules/better-sqlite3/') && /\.(node|[ach]|o|a)$/.test(n),
        ),
        ['lookout/node_modules/better-sqlite3/build/Release/better_sqlite3.node'],
      );
      // The one native addon, for this platform only.
      const prebuilds = [...names].filter((n) => /\/prebuilds\/[^/]+\/$/.test(n));
      assert.deepEqual(prebuilds, [`lookout/node_modules/bcrypt/prebuilds/linux-${process.arch}/`]);
    });

    it('unpacks in a root that has no Node, and install --dry-run says what it would do and does nothing', async () => {
      const none = await inRoot(ROOT, [
        'sh',
        '-c',
        'command -v node nodejs; ls /usr/lib/*/libnode* /usr/share/nodejs 2>/dev/null',
      ]);
      assert.equal(none.out, '', 'no node in the root');
      assert.notEqual(none.code, 0);
      // The network namespace has a loopback and nothing else.
      const dev = await inRoot(ROOT, ['cat', '/proc/net/dev']);
      assert.deepEqual(
        dev.out
          .split('\n')
          .slice(2)
          .filter(Boolean)
          .map((l) => l.trim().split(':')[0]),
        ['lo'],
      );

      const t0 = Date.now();
      const unpack = await inRoot(ROOT, ['tar', '-C', '/', '-xzf', archiveIn(first)]);
      timing.unpack = (Date.now() - t0) / 1000;
      assert.equal(unpack.code, 0, unpack.out);
      const node = await inRoot(ROOT, ['/lookout/runtime/node', '--version']);
      assert.equal(node.out.trim(), process.version, 'the Node that built and tested it');

      const before = await snapshot(ROOT, skipped);
      const dry = await inRoot(ROOT, ['/lookout/bin/lookout', 'install', '--dry-run']);
      assert.equal(dry.code, 0, dry.out);
      assert.match(dry.out, /Dry run; install would:/);
      for (const step of [
        `install lookout ${first.version} into /opt/lookout`,
        'write /etc/lookout/lookout.yml',
        'make the state directory /var/lib/lookout',
        'write the unit /etc/systemd/system/lookout.service',
        'enable lookout.service (multi-user.target)',
        'link /usr/local/bin/lookout → /opt/lookout/bin/lookout',
      ])
        assert.ok(dry.out.includes(`  - ${step}`), `${step}\n${dry.out}`);
      assert.deepEqual(diff(before, await snapshot(ROOT, skipped), true), {
        added: [],
        removed: [],
        changed: [],
      });
    });

    it('install refuses to run as a user other than root, and says how', async () => {
      const before = await snapshot(ROOT, skipped);
      const refused = await run(
        'unshare',
        inRootArgs(ROOT, ['/lookout/bin/lookout', 'install'], NOBODY, ['PATH=/usr/bin:/bin']),
        { env: ENV },
      ).then(
        () => assert.fail('install ran as nobody'),
        (err: { code: number; stderr: string }) => err,
      );
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /run it as root \(sudo \.\/lookout\/bin\/lookout install\)/);
      assert.deepEqual(diff(before, await snapshot(ROOT, skipped), true), {
        added: [],
        removed: [],
        changed: [],
      });
    });

    /** Runs the installed unit's ExecStartPre and ExecStart as systemd would, and waits until
     *  /metrics shows every default collector successful. */
    async function serveAsTheUnit(): Promise<Served & { metrics: string }> {
      unit = serviceKeys(await readFile(join(ROOT, 'etc/systemd/system/lookout.service'), 'utf8'));
      const one = (k: string) => {
        const v = unit.get(k);
        assert.equal(v?.length, 1, `one ${k}=`);
        return v[0]!;
      };
      // What StateDirectory= and DynamicUser= provide: the directory, owned by the service's user.
      assert.equal(one('StateDirectory'), 'lookout');
      assert.equal(one('DynamicUser'), 'yes');
      await chown(join(ROOT, 'var/lib/lookout'), 65534, 65534);
      const envArgs = [
        `--chdir=${one('WorkingDirectory')}`,
        ...(unit.get('Environment') ?? []),
        'STATE_DIRECTORY=/var/lib/lookout',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ];
      const pre = await run(
        'unshare',
        inRootArgs(ROOT, one('ExecStartPre').split(/\s+/), NOBODY, envArgs),
        {
          env: ENV,
        },
      ).catch((err: { stdout?: string; stderr?: string }) => {
        throw new Error(`ExecStartPre failed: ${err.stdout}${err.stderr}`);
      });
      assert.match(pre.stdout, /lookout\.yml: OK/);

      let output = '';
      const child = spawn(
        'unshare',
        inRootArgs(ROOT, one('ExecStart').split(/\s+/), NOBODY, envArgs),
        {
          env: ENV,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const stop = () =>
        new Promise<number | null>((resolve) => {
          if (child.exitCode !== null) return resolve(child.exitCode);
          child.once('exit', (code) => resolve(code));
          child.kill('SIGTERM');
        });
      // unshare execs into the shell, chroot, env, the launcher and node: one pid, whose
      // network namespace is the one to scrape in.
      const deadline = Date.now() + 45_000;
      let metrics = '';
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`lookout exited ${child.exitCode}\n${output}`);
        metrics = await run(
          'nsenter',
          [
            `--net=/proc/${child.pid}/ns/net`,
            'curl',
            '-sf',
            '--max-time',
            '2',
            `http://127.0.0.1:${PORT}/metrics`,
          ],
          { env: ENV, maxBuffer: 16 * 1024 * 1024 },
        ).then(
          (r) => r.stdout,
          () => '',
        );
        if (
          defaults.every((c) => metrics.includes(`lookout_collector_success{collector="${c}"} 1\n`))
        )
          return { child, output: () => output, stop, metrics };
        await new Promise((r) => setTimeout(r, 200));
      }
      await stop();
      throw new Error(
        `/metrics never showed every default collector successful\n${metrics}\n${output}`,
      );
    }

    const value = (metrics: string, series: string) => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `${series} is served`);
      return Number(line.slice(series.length + 1));
    };

    it('install lays it out, and the unit’s command line serves /metrics: every default collector successful, the host’s /proc read, both native addons load', async () => {
      const t0 = Date.now();
      const inst = await inRoot(ROOT, ['/lookout/bin/lookout', 'install']);
      timing.install = (Date.now() - t0) / 1000;
      assert.equal(inst.code, 0, inst.out);
      assert.match(inst.out, /systemd is not running here .*: lookout is not started/);
      assert.match(inst.out, /systemctl daemon-reload && systemctl restart lookout\.service/);
      assert.ok(
        inst.out.includes(`targets/lookout.yml`) &&
          inst.out.includes(`    - ${hostname()}:${PORT}\n`),
        inst.out,
      );

      const added = diff(pristine, await snapshot(ROOT, skipped), true).added;
      const top = (p: string) => !/^\/opt\/lookout\/./.test(p);
      assert.deepEqual(added.filter(top), [
        '/etc/lookout',
        '/etc/lookout/lookout.yml',
        '/etc/systemd/system/lookout.service',
        '/etc/systemd/system/multi-user.target.wants/lookout.service',
        '/opt/lookout',
        '/usr/local/bin/lookout',
        '/var/lib/lookout',
      ]);
      assert.equal(await readlink(join(ROOT, 'usr/local/bin/lookout')), '/opt/lookout/bin/lookout');
      assert.equal(
        await readlink(join(ROOT, 'etc/systemd/system/multi-user.target.wants/lookout.service')),
        '/etc/systemd/system/lookout.service',
      );
      const config = await readFile(join(ROOT, 'etc/lookout/lookout.yml'), 'utf8');
      assert.equal(config, await readFile(join(ROOT, 'lookout/lookout.example.yml'), 'utf8'));
      // State where the unit gives lookout a writable directory, not under /opt/lookout.
      const stateDirectory = process.env.STATE_DIRECTORY;
      process.env.STATE_DIRECTORY = '/var/lib/lookout'; // as the unit's StateDirectory= sets it
      try {
        const { storage } = await loadConfig(join(ROOT, 'etc/lookout/lookout.yml'));
        assert.equal(storage.path, '/var/lib/lookout');
      } finally {
        if (stateDirectory === undefined) delete process.env.STATE_DIRECTORY;
        else process.env.STATE_DIRECTORY = stateDirectory;
      }
      assert.equal(
        await readFile(join(ROOT, 'etc/systemd/system/lookout.service'), 'utf8'),
        await readFile('deploy/systemd/lookout.service', 'utf8'),
      );
      // No docker group in this root: no drop-in, which would stop the unit from starting.
      await assert.rejects(lstat(join(ROOT, 'etc/systemd/system/lookout.service.d')));

      const t1 = Date.now();
      const served = await serveAsTheUnit();
      timing.serve = (Date.now() - t1) / 1000;
      try {
        const { metrics } = served;
        for (const c of defaults)
          assert.ok(metrics.includes(`lookout_collector_success{collector="${c}"} 1\n`), c);
        assert.doesNotMatch(metrics, /^lookout_collector_success\{.*\} 0$/m);
        assert.ok(
          metrics.includes(
            `lookout_build_info{version="${first.version}",nodejs_version="${process.version}"} 1`,
          ),
        );
        // The host's /proc: its memory, and processes that are not in this root.
        const memTotal =
          Number(/^MemTotal:\s+(\d+) kB/m.exec(await readFile('/proc/meminfo', 'utf8'))![1]) * 1024;
        assert.equal(value(metrics, 'lookout_memory_total_bytes'), memTotal);
        const processes = metrics
          .split('\n')
          .filter((l) => l.startsWith('lookout_processes{'))
          .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
        assert.ok(processes > 10, `${processes} processes seen`);
        assert.match(metrics, /^lookout_filesystem_size_bytes\{mountpoint="\/",/m);
        // The timex addon loaded: the collector reports the clock, not "nothing to collect".
        assert.match(metrics, /^lookout_timex_sync_status [01]$/m);
      } finally {
        assert.equal(await served.stop(), 0, served.output());
      }
      // better-sqlite3's addon (the aicost store, `lookout cost`) in the installed layout, with
      // the archive's Node, on a root with no compiler or Node headers.
      const sqlite = await inRoot(ROOT, [
        '/opt/lookout/runtime/node',
        '-e',
        "const D = require('/opt/lookout/node_modules/better-sqlite3'); " +
          "console.log(new D(':memory:').prepare('select sqlite_version() v').get().v)",
      ]);
      assert.equal(sqlite.code, 0, sqlite.out);
      assert.match(sqlite.out.trim(), /^3\.\d+\.\d+$/);
      console.log(
        `unpack ${timing.unpack.toFixed(1)} s + install ${timing.install.toFixed(1)} s + start to a served /metrics with every collector successful ${timing.serve.toFixed(1)} s = ${(timing.unpack + timing.install + timing.serve).toFixed(1)} s`,
      );
    });

    it('the installed unit passes systemd-analyze verify, its ExecStart in the installed layout', async () => {
      // verify checks that ExecStart's program exists: the root's /opt takes the host's place
      // in a private mount namespace.
      const { stdout, stderr } = await run(
        'unshare',
        [
          '--mount',
          '--',
          'sh',
          '-c',
          'mount --bind "$1/opt" /opt && exec systemd-analyze verify "$1/etc/systemd/system/lookout.service"',
          'sh',
          ROOT,
        ],
        { env: ENV },
      );
      assert.equal(stdout + stderr, '');
    });

    it('a second install changes nothing and says so', async () => {
      const before = await snapshot(ROOT, skipped);
      const again = await inRoot(ROOT, ['/lookout/bin/lookout', 'install']);
      assert.equal(again.code, 0, again.out);
      assert.match(
        again.out,
        new RegExp(
          `lookout ${first.version} is installed and matches this archive: nothing changed`,
        ),
      );
      assert.doesNotMatch(again.out, /^ {2}- /m);
      assert.deepEqual(diff(before, await snapshot(ROOT, skipped), true), {
        added: [],
        removed: [],
        changed: [],
      });
    });

    it('--root lays the Docker drop-in down only while a docker group exists', async () => {
      // From outside the root, through --root: the same paths, prefixed.
      const group = join(ROOT, 'etc/group');
      const groups = await readFile(group, 'utf8');
      const dropIn = join(ROOT, 'etc/systemd/system/lookout.service.d/docker.conf');
      const installRooted = async () => {
        const { stdout } = await run(
          'unshare',
          ['--net', '--', join(ROOT, 'lookout/bin/lookout'), 'install', '--root', ROOT],
          { env: ENV },
        );
        return stdout;
      };
      try {
        await appendFile(group, 'docker:x:998:\n');
        const out = await installRooted();
        assert.ok(
          out.includes(`  - write the Docker drop-in ${dropIn} (the docker group exists)\n`),
          out,
        );
        assert.match(out, new RegExp(`Under ${ROOT}, lookout is not started`));
        assert.equal(
          await readFile(dropIn, 'utf8'),
          await readFile('deploy/systemd/lookout.service.d/docker.conf', 'utf8'),
        );
      } finally {
        await writeFile(group, groups);
      }
      const out = await installRooted();
      assert.ok(
        out.includes(`  - remove the Docker drop-in ${dropIn} (no docker group any more)\n`),
        out,
      );
      await assert.rejects(lstat(join(ROOT, 'etc/systemd/system/lookout.service.d')));
    });

    it('an upgrade whose new version rejects the config stops before anything is replaced', async () => {
      const configPath = join(ROOT, 'etc/lookout/lookout.yml');
      const good = await readFile(configPath, 'utf8');
      // As if the new version had renamed a key the installed config still uses.
      assert.match(good, /^ {2}max_connections: /m);
      await writeFile(configPath, good.replace(/^ {2}max_connections: /m, '  connection_limit: '));
      try {
        const unpack = await inRoot(ROOT, [
          'sh',
          '-c',
          `mkdir -p /upgrade && tar -C /upgrade -xzf ${archiveIn(next)}`,
        ]);
        assert.equal(unpack.code, 0, unpack.out);
        const before = await snapshot(ROOT, skipped);
        const up = await inRoot(ROOT, ['/upgrade/lookout/bin/lookout', 'install']);
        assert.equal(up.code, 1, up.out);
        assert.match(up.out, /connection_limit/);
        assert.match(
          up.out,
          new RegExp(
            `lookout ${next.version} rejects /etc/lookout/lookout.yml .*nothing was changed`,
          ),
        );
        assert.deepEqual(diff(before, await snapshot(ROOT, skipped), true), {
          added: [],
          removed: [],
          changed: [],
        });
      } finally {
        await writeFile(configPath, good);
      }
    });

    it('an upgrade keeps the config and the state directory, restarts the unit once, and the new version serves', async () => {
      await writeFile(join(ROOT, 'var/lib/lookout/kept'), 'state from the first version\n');
      await chown(join(ROOT, 'var/lib/lookout/kept'), 65534, 65534);
      const before = await snapshot(ROOT, skipped);
      const up = await inRoot(ROOT, ['/upgrade/lookout/bin/lookout', 'install']);
      assert.equal(up.code, 0, up.out);
      assert.ok(
        up.out.includes(`  - replace /opt/lookout: lookout ${first.version} → ${next.version}\n`),
        up.out,
      );
      assert.equal(up.out.match(/^ {2}- /gm)?.length, 1, `one step: the tree\n${up.out}`);
      assert.equal(up.out.match(/systemctl (re)?start lookout\.service/g)?.length, 1, up.out);

      const changes = diff(before, await snapshot(ROOT, skipped), true);
      const outside = (p: string) => !p.startsWith('/opt/lookout/');
      assert.deepEqual(changes.added.filter(outside), []);
      assert.deepEqual(changes.removed.filter(outside), []);
      // /opt/lookout itself is a new directory (swapped in whole); nothing else outside it moved.
      assert.deepEqual(changes.changed.filter(outside), ['/opt', '/opt/lookout']);
      assert.equal(
        (
          JSON.parse(await readFile(join(ROOT, 'opt/lookout/package.json'), 'utf8')) as {
            version: string;
          }
        ).version,
        next.version,
      );

      const served = await serveAsTheUnit();
      try {
        assert.ok(served.metrics.includes(`lookout_build_info{version="${next.version}",`));
      } finally {
        assert.equal(await served.stop(), 0, served.output());
      }
      assert.equal(
        await readFile(join(ROOT, 'var/lib/lookout/kept'), 'utf8'),
        'state from the first version\n',
      );
    });

    it('uninstall (lookout from the PATH) leaves nothing but the state directory; --purge takes that too', async () => {
      const un = await inRoot(ROOT, ['lookout', 'uninstall']);
      assert.equal(un.code, 0, un.out);
      assert.match(un.out, /kept the state directory \/var\/lib\/lookout \(--purge removes it\)/);
      // Without times: directories whose entries came and went are otherwise as they were.
      let left = diff(pristine, await snapshot(ROOT, skipped), false);
      assert.deepEqual(left, {
        added: ['/var/lib/lookout', '/var/lib/lookout/kept'],
        removed: [],
        changed: [],
      });

      const purge = await inRoot(ROOT, ['/lookout/bin/lookout', 'uninstall', '--purge']);
      assert.equal(purge.code, 0, purge.out);
      left = diff(pristine, await snapshot(ROOT, skipped), false);
      assert.deepEqual(left, { added: [], removed: [], changed: [] });
      const again = await inRoot(ROOT, ['/lookout/bin/lookout', 'uninstall']);
      assert.equal(again.code, 0, again.out);
      assert.match(again.out, /lookout is not installed here: nothing to remove/);
    });
  },
);
