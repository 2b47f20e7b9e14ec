/**
 * `docker compose up` for real: docker-compose.yml as shipped (plus
 * test/e2e/compose.override.yml, one commented entry per place this sandbox differs from a
 * real host), on images built here, in a Docker engine inside a network namespace this
 * test makes. Grafana is left out: no image of it can be had here.
 *
 * 1. Images: stand-ins for the pinned prom/prometheus and prom/alertmanager and for the
 *    Node base (test/helpers/images.ts; cached under /var/cache/lookout-test), then the
 *    project's Dockerfile, unchanged, with NODE_IMAGE set to the Node stand-in (4 to 7
 *    minutes here: apt installs the compiler in its deps stage and better-sqlite3 compiles). These
 *    builds use an engine in the host's namespace (apt and npm need the network); it is
 *    stopped and the namespaced engine started on the same data root.
 * 2. `docker-compose up -d`, every healthcheck healthy (the time is printed).
 * 3. Prometheus's API: lookout is up, the rules are loaded, and lookout's figures from
 *    inside its container describe the host the test reads directly. The image's native
 *    addons at work: timex reports the host's clock, and an AI usage event posted to lookout
 *    is stored by better-sqlite3 and reported by the image's own `lookout cost --json`.
 * 4. A real fault on the host: a 4 MiB tmpfs filled past 90 %; the critical alert reaches
 *    Alertmanager and arrives as email and Slack message at sinks in the namespace.
 * 5. lookout's process killed from the host: the restart policy brings it back, with its
 *    memory and CPU limits set and in force in its cgroup.
 * 6. `docker-compose down` and `up` again: Prometheus still has the samples (named volume).
 *
 * Needs root (mount, ip netns, dockerd). About 8 minutes the first time on a machine
 * (debootstrap, apt and npm inside builds), 6.5 to 9.5 minutes with the image cache.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dump, load } from 'js-yaml';
import {
  copyRulesWithShortFor,
  expandLabels,
  loadAlertmanagerYml,
  type RuleTiming,
} from '../helpers/alerting.js';
import {
  addNetns,
  nsCurl,
  startDockerd,
  unmountUnder,
  withDocker,
  type Dockerd,
} from '../helpers/dockerd.js';
import {
  ALERTMANAGER_IMAGE,
  ensureBaseImages,
  NODE_IMAGE,
  PROMETHEUS_IMAGE,
} from '../helpers/images.js';
import { startNetnsSinks, type NetnsSinks } from '../helpers/netns-sinks.js';
import { REPO, eventually } from '../helpers/procs.js';

const PROJECT = 'lookoute2e';
/** The image docker-compose.yml names for the lookout service (built by the test). */
const LOOKOUT_IMAGE = 'lookout:local';
const SERVICES = ['lookout', 'prometheus', 'alertmanager'];
/** Compose healthchecks run every 30 s and the first one 30 s after start. */
const HEALTHY_MS = 150_000;
const DELIVERY_MS = 60_000;
const TMPFS_BYTES = 4 * 1024 * 1024;
const MiB = 1024 * 1024;
/** The aicost collector's ingest token in the test's copy of deploy/compose/lookout.yml. */
const AI_TOKEN = 'e2e-ai-ingest-token-0123456789';

const log = (s: string) => console.log(`# compose: ${s}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface Inspect {
  Id: string;
  RestartCount: number;
  State: { Running: boolean; Restarting: boolean; Pid: number; Health?: { Status: string } };
  Config: { User: string; Env: string[] };
  HostConfig: { Memory: number; NanoCpus: number; CpuQuota: number; CpuPeriod: number };
  Mounts: Array<{ Type: string; Name?: string; Source: string; Destination: string }>;
}

describe(
  'docker compose up: the shipped stack on images built here',
  { timeout: 1_200_000 },
  () => {
    const figures: Record<string, string> = {};
    const cleanups: Array<[string, () => Promise<unknown>]> = [];
    let dir: string;
    let faultDir: string;
    let netns: string;
    let dockerd: Dockerd;
    let sinks: NetnsSinks;
    let rules: RuleTiming[];
    const started = Date.now();

    const docker = (args: string[], timeoutMs?: number) =>
      withDocker(dockerd.host, 'docker', args, { timeoutMs });
    const compose = (args: string[], timeoutMs = 180_000) =>
      withDocker(
        dockerd.host,
        'docker-compose',
        ['-p', PROJECT, '-f', 'docker-compose.yml', '-f', 'test/e2e/compose.override.yml', ...args],
        {
          cwd: REPO,
          timeoutMs,
          env: {
            LOOKOUT_TEST_DIR: dir,
            LOOKOUT_TEST_FAULT_DIR: faultDir,
          },
        },
      );
    const containerOf = async (service: string) => {
      const id = (await compose(['ps', '-q', service])).stdout.trim();
      assert.ok(id, `no container for service ${service}`);
      return id;
    };
    const inspect = async (id: string) =>
      (JSON.parse((await docker(['inspect', id])).stdout) as Inspect[])[0]!;
    const prom = async <T>(path: string): Promise<T> => {
      const body = JSON.parse(await nsCurl(netns, `http://127.0.0.1:9090${path}`)) as {
        status: string;
        data: T;
      };
      assert.equal(body.status, 'success', path);
      return body.data;
    };
    const query = (q: string, time?: number) =>
      prom<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
        `/api/v1/query?query=${encodeURIComponent(q)}${time ? `&time=${time}` : ''}`,
      ).then((d) => d.result);
    const composeLogs = () =>
      compose(['logs', '--no-color', '--tail=30']).then(
        (r) => r.stdout + r.stderr,
        (e: Error) => e.message,
      );

    /** Every service's container reports healthy; resolves with the time it took. */
    async function waitHealthy(since: number): Promise<number> {
      const statuses: Record<string, string> = {};
      let ids: string[] | undefined;
      try {
        await eventually(
          async () => {
            // docker-compose is a Python program: ask it once, then only the engine.
            ids ??= await Promise.all(SERVICES.map(containerOf));
            const all = JSON.parse((await docker(['inspect', ...ids])).stdout) as Inspect[];
            all.forEach((c, i) => (statuses[SERVICES[i]!] = c.State.Health?.Status ?? 'none'));
            return Object.values(statuses).every((h) => h === 'healthy');
          },
          HEALTHY_MS,
          'every service healthy',
        );
      } catch (err) {
        throw new Error(`${JSON.stringify(statuses)}\n${await composeLogs()}`, { cause: err });
      }
      return Date.now() - since;
    }

    /** A file of the cgroup pid is in, for a controller: cgroup v1's name or v2's. */
    async function readCgroup(pid: number, controller: string, v1File: string, v2File: string) {
      const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
        .split('\n')
        .map((l) => l.split(':'));
      const v1 = lines.find((p) => p[1]?.split(',').includes(controller));
      if (v1 && v1[2] !== '/') {
        const mountDir = (await readdir('/sys/fs/cgroup')).find((d) =>
          d.split(',').includes(controller),
        );
        assert.ok(mountDir, `cgroup v1 ${controller} hierarchy under /sys/fs/cgroup`);
        return (await readFile(join('/sys/fs/cgroup', mountDir, v1[2]!, v1File), 'utf8')).trim();
      }
      const v2 = lines.find((p) => p[0] === '0')?.[2] ?? '/';
      return (await readFile(join('/sys/fs/cgroup', v2, v2File), 'utf8')).trim();
    }

    before(async () => {
      assert.equal(process.getuid?.(), 0, 'this test needs root: mount, ip netns, dockerd');
      // Short: dockerd's sockets live under it.
      dir = await mkdtemp(join(tmpdir(), 'lkc-'));
      // Containers' users (nobody, node) read the configs and reach the fault mount below it.
      await chmod(dir, 0o755);
      cleanups.push(['remove the test directory', () => rm(dir, { recursive: true, force: true })]);
      const dataRoot = join(dir, 'data');

      // ---- images, with an engine in the host's namespace (builds need the network)
      const buildDir = join(dir, 'b');
      await mkdir(buildDir);
      const builder = await startDockerd({ dir: buildDir, dataRoot, noBridge: true });
      dockerd = builder;
      cleanups.push(['stop the build dockerd', () => builder.stop()]);
      const base = await ensureBaseImages(dockerd.host, log);
      figures['stand-in images'] =
        `${seconds(base.seconds * 1000)} (${base.cached ? 'cache' : 'built'})`;
      const t0 = Date.now();
      await docker(
        [
          'build',
          '--network=host',
          '-q',
          '--build-arg',
          `NODE_IMAGE=${NODE_IMAGE}`,
          '-t',
          LOOKOUT_IMAGE,
          REPO,
        ],
        600_000,
      );
      figures['lookout image build'] = seconds(Date.now() - t0);
      await builder.stop();

      // ---- the namespace, its engine, the sinks in it
      netns = `lookout-e2e-${process.pid}`;
      const ns = await addNetns(netns);
      cleanups.push([`delete netns ${netns}`, () => ns.remove()]);
      const nsDir = join(dir, 'n');
      await mkdir(nsDir);
      dockerd = await startDockerd({ dir: nsDir, dataRoot, netns });
      cleanups.push(['stop the namespaced dockerd', () => dockerd.stop()]);
      sinks = await startNetnsSinks(netns);
      cleanups.push(['stop the sinks', () => sinks.stop()]);

      // ---- test copies of the configs (the override file says what differs and why)
      const promYml = load(await readFile(join(REPO, 'prometheus.yml'), 'utf8')) as {
        global: Record<string, string>;
      };
      Object.assign(promYml.global, {
        scrape_interval: '1s',
        evaluation_interval: '1s',
        scrape_timeout: '1s',
      });
      await writeFile(join(dir, 'prometheus.yml'), dump(promYml), { mode: 0o644 });
      rules = await copyRulesWithShortFor(join(dir, 'rules'), (ms) => ms / 60);
      await chmod(join(dir, 'rules'), 0o755);
      for (const f of await readdir(join(dir, 'rules'))) await chmod(join(dir, 'rules', f), 0o644);

      // deploy/compose/lookout.yml plus the aicost collector (off by default) with its token.
      const lookoutYml = load(
        await readFile(join(REPO, 'deploy/compose/lookout.yml'), 'utf8'),
      ) as Record<string, unknown>;
      lookoutYml.collectors = {
        ...(lookoutYml.collectors as Record<string, unknown> | undefined),
        aicost: { enabled: true, ingest_token_file: '/etc/lookout/ai-ingest.token' },
      };
      await writeFile(join(dir, 'lookout.yml'), dump(lookoutYml), { mode: 0o644 });
      await writeFile(join(dir, 'ai-ingest.token'), AI_TOKEN, { mode: 0o644 });

      const am = await loadAlertmanagerYml();
      const amGlobal = am.global as Record<string, unknown>;
      amGlobal.smtp_smarthost = `host.docker.internal:${sinks.smtpPort}`;
      amGlobal.smtp_require_tls = false;
      Object.assign(am.route as Record<string, unknown>, {
        group_wait: '1s',
        group_interval: '2s',
      });
      await writeFile(join(dir, 'alertmanager.yml'), dump(am), { mode: 0o644 });
      const secrets = join(dir, 'secrets');
      await mkdir(secrets, { mode: 0o755 });
      await writeFile(join(secrets, 'smtp_password'), 'e2e-smtp-password', { mode: 0o644 });
      await writeFile(
        join(secrets, 'slack_webhook_url'),
        `http://host.docker.internal:${sinks.slackPort}${sinks.slackPath}`,
        { mode: 0o644 },
      );

      // ---- the directory the fault tmpfs goes under: a shared mount point of its own
      faultDir = join(dir, 'fault');
      await mkdir(join(faultDir, 'disk'), { recursive: true, mode: 0o755 });
      await chmod(faultDir, 0o755);
      for (const args of [
        ['--bind', faultDir, faultDir],
        ['--make-shared', faultDir],
      ]) {
        const r = spawnSync('mount', args, { encoding: 'utf8' });
        assert.equal(r.status, 0, `mount ${args.join(' ')}: ${r.stderr}`);
      }
      cleanups.push([`unmount ${faultDir}`, () => unmountUnder(faultDir)]);
      cleanups.push([
        'docker-compose down -v',
        () => compose(['down', '-v', '--timeout', '5'], 120_000),
      ]);
    });

    /**
     * When the run is interrupted (Ctrl-C, a CI timeout's SIGTERM) `after` never runs: stop
     * what this test started, synchronously, by pid and by name of its own making.
     */
    const onSignal = (signal: NodeJS.Signals) => {
      const sh = (script: string) =>
        spawnSync('sh', ['-c', script], { stdio: 'ignore', timeout: 60_000 });
      if (sinks) sh(`kill ${sinks.pid}`);
      // dockerd stops its containers on SIGTERM; wait for it before unmounting under it.
      if (dockerd)
        // Until it is a zombie: blocked here, this process cannot reap it.
        sh(
          `kill ${dockerd.pid}; while [ -e /proc/${dockerd.pid} ] && ` +
            `[ "$(cut -d' ' -f3 /proc/${dockerd.pid}/stat)" != Z ]; do sleep 0.2; done`,
        );
      if (dir) sh(`grep -o ' ${dir}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`);
      if (netns) sh(`ip netns delete ${netns}`);
      if (dir) sh(`rm -rf ${dir}`);
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    after(async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // Last in, first out; every step runs even when an earlier one fails.
      const failed: string[] = [];
      for (const [what, fn] of cleanups.reverse())
        await fn().catch((err: Error) => failed.push(`${what}: ${err.message}`));
      figures['whole test'] = seconds(Date.now() - started);
      log(
        'figures:\n' +
          Object.entries(figures)
            .map(([k, v]) => `#   ${k}: ${v}`)
            .join('\n'),
      );
      if (failed.length > 0) throw new Error(`cleanup failed:\n${failed.join('\n')}`);
    });

    it("builds the project's Dockerfile into an image of Node, dist/, production dependencies with both native addons built, the launcher, and no compiler", async () => {
      const ls = async (path: string) =>
        (
          await docker([
            'run',
            '--rm',
            '--network=none',
            '--entrypoint=/bin/ls',
            LOOKOUT_IMAGE,
            '-A',
            path,
          ])
        ).stdout
          .split('\n')
          .filter(Boolean)
          .sort();
      assert.deepEqual(await ls('/app'), [
        'bin',
        'dist',
        'docs',
        'native',
        'node_modules',
        'package.json',
        'pricing',
      ]);
      /** A shell script run in the image (no network), its output's lines. */
      const sh = async (script: string, ...args: string[]) =>
        (
          await docker([
            'run',
            '--rm',
            '--network=none',
            '--entrypoint=/bin/sh',
            LOOKOUT_IMAGE,
            '-c',
            script,
            'sh',
            ...args,
          ])
        ).stdout
          .split('\n')
          .filter(Boolean);
      // Both native addons, built for the image's Node, load in it; of better-sqlite3's
      // build only its addon is kept; the compiler stayed in the build stage.
      const addons = await sh(
        'ls -A node_modules/better-sqlite3/build/Release && ' +
          `node -e "new (require('better-sqlite3'))(':memory:'); ` +
          `console.log(typeof require('./native/timex/build/Release/timex.node').read)" && ` +
          'for c in cc gcc g++ make python3; do command -v $c; done; true',
      );
      assert.deepEqual(addons, ['better_sqlite3.node', 'function']);
      // Every package the lockfile installs for production, and none it installs for
      // development only.
      const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean; devOptional?: boolean; optional?: boolean }>;
      };
      const entries = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/'));
      const dev = entries.filter(([, e]) => e.dev).map(([p]) => p);
      const prod = entries
        .filter(([, e]) => !e.dev && !e.devOptional && !e.optional)
        .map(([p]) => p);
      const present = await sh(
        'for p in "$@"; do [ -e "/app/$p/package.json" ] && echo "$p"; done; true',
        ...dev,
        ...prod,
      );
      assert.ok(prod.length > 0 && dev.length > 0, 'the lockfile has both kinds');
      assert.deepEqual(
        dev.filter((p) => present.includes(p)),
        [],
        'development-only packages in the runtime image',
      );
      assert.deepEqual(
        prod.filter((p) => !present.includes(p)),
        [],
        'production packages missing from the runtime image',
      );
      const sources = await docker([
        'run',
        '--rm',
        '--network=none',
        '--entrypoint=/usr/bin/find',
        LOOKOUT_IMAGE,
        '/app',
        '-path',
        '/app/node_modules',
        '-prune',
        '-o',
        '-name',
        '*.ts',
        '-print',
      ]);
      assert.equal(sources.stdout, '', 'TypeScript files in the runtime image');
      const size = Number(
        (await docker(['image', 'inspect', '-f', '{{.Size}}', LOOKOUT_IMAGE])).stdout,
      );
      const baseSize = Number(
        (await docker(['image', 'inspect', '-f', '{{.Size}}', NODE_IMAGE])).stdout,
      );
      figures['lookout image'] =
        `${(size / MiB).toFixed(0)} MiB: ${((size - baseSize) / MiB).toFixed(1)} MiB on the ` +
        `${(baseSize / MiB).toFixed(0)} MiB Node stand-in`;
    });

    it('the Prometheus and Alertmanager stand-ins are the versions docker-compose.yml pins', async () => {
      for (const image of [PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE]) {
        const tag = /:v(\d+\.\d+\.\d+)$/.exec(image)?.[1];
        assert.ok(tag, `${image}: pinned to vX.Y.Z`);
        const { stdout, stderr } = await docker([
          'run',
          '--rm',
          '--network=none',
          image,
          '--version',
        ]);
        const version = /version (\d+\.\d+\.\d+)/.exec(stdout + stderr)?.[1];
        assert.equal(version, tag, `${image} runs ${stdout + stderr}`);
      }
    });

    it('docker-compose up -d brings lookout, Prometheus and Alertmanager up healthy', async () => {
      const t0 = Date.now();
      const up = await compose(['up', '-d', ...SERVICES]);
      const ms = await waitHealthy(t0);
      const warnings = up.stderr.split('\n').filter((l) => /warn/i.test(l));
      assert.deepEqual(warnings, [], 'docker-compose up warns');
      figures['up -d → every service healthy'] = seconds(ms);
      const lookout = await inspect(await containerOf('lookout'));
      assert.equal(lookout.Config.User, 'node');
      const state = lookout.Mounts.find((m) => m.Destination === '/var/lib/lookout');
      assert.equal(state?.Type, 'volume', 'the state directory is a named volume');
      assert.ok(lookout.Config.Env.includes('STATE_DIRECTORY=/var/lib/lookout'));
      // The fresh volume took the image directory's owner, so lookout can write its state.
      await docker(['exec', lookout.Id, 'test', '-w', '/var/lib/lookout']);
    });

    it('Prometheus scrapes lookout, has every rule group and its Alertmanager', async () => {
      const targets = await eventually(
        async () => {
          const t = await prom<{
            activeTargets: Array<{
              labels: Record<string, string>;
              health: string;
              lastError: string;
            }>;
          }>('/api/v1/targets?state=active');
          const l = t.activeTargets.find((x) => x.labels.job === 'lookout');
          return l?.health === 'up' && t;
        },
        30_000,
        'the lookout target up',
      );
      assert.equal(
        targets.activeTargets.find((x) => x.labels.job === 'lookout')?.labels.instance,
        'lookout:10142',
      );
      const groups = (
        await prom<{ groups: Array<{ name: string; file: string }> }>('/api/v1/rules')
      ).groups;
      let expected = 0;
      for (const f of (await readdir(join(REPO, 'rules'))).filter((f) => f.endsWith('.yml'))) {
        const doc = load(await readFile(join(REPO, 'rules', f), 'utf8')) as { groups: unknown[] };
        expected += doc.groups.length;
      }
      assert.equal(groups.length, expected, 'rule groups loaded');
      const ams = await prom<{ activeAlertmanagers: Array<{ url: string }> }>(
        '/api/v1/alertmanagers',
      );
      assert.equal(ams.activeAlertmanagers.length, 1);
    });

    it("lookout in its container reports the host's processes, root filesystem and network devices", async () => {
      const lookoutId = await containerOf('lookout');
      // Processes: the host's /proc, counted around lookout's last refresh. Suites running
      // beside this one start and end processes, so the count is taken until it settles.
      const hostProcs = async () => (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).length;
      const containerProcs = (await docker(['exec', lookoutId, 'ls', '/proc'])).stdout
        .split('\n')
        .filter((e) => /^\d+$/.test(e)).length;
      let procs = NaN;
      let around: number[] = [];
      await eventually(
        async () => {
          const before = await hostProcs();
          procs = Number((await query('sum(lookout_processes{job="lookout"})'))[0]?.value[1]);
          around = [before, await hostProcs()];
          const slack = Math.max(10, Math.max(...around) * 0.2);
          return procs >= Math.min(...around) - slack && procs <= Math.max(...around) + slack;
        },
        30_000,
        "the host's process count",
      ).catch((err: Error) => {
        throw new Error(
          `lookout counts ${procs} processes, the host has ${around.join('..')} (the container ${containerProcs})`,
          { cause: err },
        );
      });
      assert.ok(containerProcs < procs / 2, `the container alone has ${containerProcs}`);

      const root = await statfs('/');
      const size = Number(
        (await query('lookout_filesystem_size_bytes{job="lookout",mountpoint="/"}'))[0]?.value[1],
      );
      assert.equal(
        size,
        root.blocks * root.bsize,
        "the host's / size, not the container's overlay",
      );

      // Network devices: the host namespace's (read through PID 1), not the container's.
      // A device of this test's own in the host namespace (a veth pair: the kernel here has
      // no dummy driver), which the container cannot have: the host's other devices may
      // carry the container's names (eth0), and suites beside this one add and remove veth
      // ends there.
      const ownDevice = `lkc${process.pid % 100_000}`;
      const ip = (...args: string[]) => {
        const r = spawnSync('ip', args, { encoding: 'utf8' });
        assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
      };
      ip('link', 'add', ownDevice, 'type', 'veth', 'peer', 'name', `${ownDevice}p`);
      try {
        ip('link', 'set', ownDevice, 'up');
        const devices = (text: string) =>
          text
            .split('\n')
            .slice(2)
            .map((l) => l.split(':')[0]!.trim())
            .filter((d) => d && d !== 'lo');
        const container = devices(
          (await docker(['exec', lookoutId, 'cat', '/proc/self/net/dev'])).stdout,
        );
        assert.ok(!container.includes(ownDevice), `the container has ${container}`);
        let seen: string[] = [];
        let host: string[] = [];
        await eventually(
          async () => {
            const before = devices(await readFile('/proc/self/net/dev', 'utf8'));
            seen = (await query('lookout_network_receive_bytes_total{job="lookout"}')).map(
              (r) => r.metric.device!,
            );
            host = devices(await readFile('/proc/self/net/dev', 'utf8'));
            // Every device there before and after the scrape is seen, and nothing that was
            // in neither listing.
            const steady = before.filter((d) => host.includes(d));
            return (
              seen.includes(ownDevice) &&
              steady.every((d) => seen.includes(d)) &&
              seen.every((d) => before.includes(d) || host.includes(d))
            );
          },
          30_000,
          'the same network devices as the host',
        ).catch((err: Error) => {
          throw new Error(`lookout: ${seen}, host: ${host}, container: ${container}`, {
            cause: err,
          });
        });
      } finally {
        ip('link', 'delete', ownDevice);
      }
    });

    it('lookout in its container: every collector succeeds, and nothing is logged above info', async () => {
      const collectors = await query('lookout_collector_success{job="lookout"}');
      assert.ok(collectors.length > 0, 'lookout_collector_success series');
      assert.deepEqual(
        collectors.filter((r) => r.value[1] !== '1').map((r) => r.metric.collector),
        [],
        'collectors failing',
      );
      // timex and containers among them: no Docker socket in the container is nothing to
      // collect (success 1, no container series), not a failure.
      const names = collectors.map((r) => r.metric.collector);
      for (const c of ['timex', 'containers', 'aicost'])
        assert.ok(names.includes(c), `${c} in ${names.join(', ')}`);
      assert.deepEqual(await query('lookout_container_running{job="lookout"}'), []);
      const id = await containerOf('lookout');
      const { stdout, stderr } = await docker(['logs', id]);
      const lines = (stdout + stderr).split('\n').filter(Boolean);
      // The log's own format (key=value, src/lib/log.ts): an unrecognised one fails here.
      assert.ok(
        lines.some((l) => l.startsWith('level=info')),
        `no level=info line:\n${lines.join('\n')}`,
      );
      assert.deepEqual(
        lines.filter((l) => !l.startsWith('level=info') && !l.startsWith('level=debug')),
        [],
      );
    });

    it("the image's native addons at work: timex reports, and an AI usage event is stored and reported by lookout cost", async () => {
      const sync = await query('lookout_timex_sync_status{job="lookout"}');
      assert.equal(sync.length, 1, 'lookout_timex_sync_status: the timex addon loaded');
      assert.match(sync[0]!.value[1], /^[01]$/);
      assert.equal(
        (await query('lookout_ai_store_up{job="lookout"}'))[0]?.value[1],
        '1',
        'the aicost store open (better-sqlite3)',
      );

      const event = {
        id: 'e2e-compose-1',
        service: 'e2e',
        model: 'gpt-4o',
        provider: 'openai',
        input_tokens: 1000,
        output_tokens: 100,
      };
      const posted = await nsCurl(netns, 'http://127.0.0.1:10142/api/v1/ai-usage', 10_000, [
        '-H',
        `Authorization: Bearer ${AI_TOKEN}`,
        '-H',
        'Content-Type: application/json',
        '--data-binary',
        JSON.stringify(event),
      ]);
      assert.equal((JSON.parse(posted) as { accepted: number }).accepted, 1, posted);

      const id = await containerOf('lookout');
      const cost = await docker([
        'exec',
        id,
        '/app/bin/lookout',
        'cost',
        '--json',
        '--config',
        '/etc/lookout/lookout.yml',
      ]);
      const report = JSON.parse(cost.stdout) as {
        store: string;
        current: { requests: number; inputTokens: number; outputTokens: number; costUsd: number };
        breakdown: Array<{ key: string; current: { requests: number } }>;
      };
      assert.equal(report.store, '/var/lib/lookout/aicost/ai-usage.sqlite');
      assert.equal(report.current.requests, 1);
      assert.equal(report.current.inputTokens, 1000);
      assert.equal(report.current.outputTokens, 100);
      assert.ok(report.current.costUsd > 0, `priced: ${cost.stdout}`);
      assert.deepEqual(
        report.breakdown.map((b) => [b.key, b.current.requests]),
        [['e2e', 1]],
      );
    });

    it('a tmpfs filled past 90 % on the host raises the critical alert in Alertmanager, by email and Slack', async () => {
      const disk = join(faultDir, 'disk');
      const mounted = spawnSync(
        'mount',
        ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'lookout-e2e', disk],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(mounted.status, 0, mounted.stderr);
      const faultAt = Date.now();
      try {
        await writeFile(join(disk, 'fill'), Buffer.alloc(Math.ceil(TMPFS_BYTES * 0.95)));
        const instance = 'lookout:10142';
        const rule = rules.find(
          (r) => r.alert === 'HostFilesystemAlmostFull' && r.severity === 'critical',
        );
        assert.ok(rule, 'rules have a critical HostFilesystemAlmostFull');
        const summary = expandLabels(rule.summary, { mountpoint: disk, instance });

        const inAm = await eventually(
          async () => {
            const alerts = JSON.parse(
              await nsCurl(
                netns,
                `http://127.0.0.1:9093/api/v2/alerts?filter=${encodeURIComponent('alertname="HostFilesystemAlmostFull"')}`,
              ),
            ) as Array<{ labels: Record<string, string>; status: { state: string } }>;
            return alerts.find(
              (a) => a.labels.mountpoint === disk && a.labels.severity === 'critical',
            );
          },
          DELIVERY_MS,
          `HostFilesystemAlmostFull critical for ${disk} in Alertmanager`,
        );
        assert.equal(inAm.labels.instance, instance);
        figures['fault → alert in Alertmanager'] = seconds(Date.now() - faultAt);

        const subject = `[LOOKOUT] 🔴 CRITICAL: HostFilesystemAlmostFull — ${summary}`;
        const mail = await sinks.email.waitFor((m) => m.subject === subject, DELIVERY_MS, subject);
        figures['fault → email'] = seconds(mail.receivedAt - faultAt);
        assert.deepEqual(mail.to, ['oncall@example.com']);
        assert.deepEqual(mail.auth, {
          username: 'lookout@example.com',
          password: 'e2e-smtp-password',
        });
        const msg = await sinks.slack.waitFor(
          (m) => m.body.attachments?.[0]?.title === subject.replace('[LOOKOUT] ', ''),
          DELIVERY_MS,
          'the Slack message',
        );
        figures['fault → Slack'] = seconds(msg.receivedAt - faultAt);
        assert.equal(msg.body.attachments?.[0]?.color, 'danger');
      } finally {
        spawnSync('umount', [disk]);
      }
    });

    it('restarts a crashed lookout (restart policy), under its memory and CPU limits', async () => {
      const id = await containerOf('lookout');
      const was = await eventually(
        async () => {
          const i = await inspect(id);
          return i.State.Running && i.State.Pid > 0 && i;
        },
        30_000,
        'lookout running',
      );
      assert.equal(was.HostConfig.Memory, 128 * MiB, 'mem_limit');
      assert.equal(was.HostConfig.NanoCpus, 0.25e9, 'cpus');

      // It has run since `up` with its healthchecks (a second node process in the same
      // cgroup every 30 s) and never met the OOM killer.
      const peak = Number(
        await readCgroup(was.State.Pid, 'memory', 'memory.max_usage_in_bytes', 'memory.peak'),
      );
      figures['lookout container peak memory (128 MiB limit)'] = `${(peak / MiB).toFixed(0)} MiB`;
      const oomKills = /^oom_kill (\d+)$/m.exec(
        await readCgroup(was.State.Pid, 'memory', 'memory.oom_control', 'memory.events'),
      )?.[1];
      assert.equal(oomKills, '0', 'OOM kills in the lookout container');

      // A crash: the process killed from the host, as the kernel's OOM killer would.
      process.kill(was.State.Pid, 'SIGKILL');
      const now = await eventually(
        async () => {
          const i = await inspect(id);
          return (
            // While Docker waits to restart it, Running is already true, Pid still 0.
            i.State.Running &&
            !i.State.Restarting &&
            i.State.Pid > 0 &&
            i.State.Pid !== was.State.Pid &&
            i.RestartCount > was.RestartCount &&
            i
          );
        },
        60_000,
        'lookout restarted',
      );
      await eventually(
        async () => (await nsCurl(netns, 'http://127.0.0.1:10142/healthz')).trim() === 'ok',
        30_000,
        'the restarted lookout answering /healthz',
      );

      // In force: the kernel's limits on the cgroup the new process is in.
      const cgroupFile = (c: string, v1: string, v2: string) =>
        readCgroup(now.State.Pid, c, v1, v2);
      assert.equal(
        await cgroupFile('memory', 'memory.limit_in_bytes', 'memory.max'),
        String(128 * MiB),
      );
      const quota = await cgroupFile('cpu', 'cpu.cfs_quota_us', 'cpu.max');
      const period = await cgroupFile('cpu', 'cpu.cfs_period_us', 'cpu.max');
      assert.deepEqual(
        quota.includes(' ') ? quota.split(' ') : [quota, period],
        ['25000', '100000'],
        'a quarter of one CPU',
      );
    });

    it('keeps Prometheus data across docker-compose down and up (named volumes)', async () => {
      const lookback = Math.ceil((Date.now() - started) / 1000);
      // Some seconds back: every sample up to then is stored (a scrape that started just
      // before now may land after the first count).
      const at = Date.now() / 1000 - 5;
      const count = async () =>
        Number(
          (await query(`count_over_time(up{job="lookout"}[${lookback}s])`, at))[0]?.value[1] ?? 0,
        );
      const before = await count();
      assert.ok(before > 10, `${before} samples of up{job="lookout"} before`);
      await compose(['down', '--timeout', '10']);
      const volumes = (await docker(['volume', 'ls', '-q'])).stdout.split('\n');
      assert.ok(volumes.includes(`${PROJECT}_prometheus-data`), `volumes: ${volumes}`);
      const t0 = Date.now();
      await compose(['up', '-d', ...SERVICES]);
      const after = await eventually(
        async () => {
          const n = await count();
          return n > 0 && n;
        },
        60_000,
        'Prometheus answering with the old samples',
      );
      assert.equal(after, before, 'samples before the restart');
      figures['down, up -d → old samples served'] = seconds(Date.now() - t0);
    });
  },
);
