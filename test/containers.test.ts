/**
 * The containers collector on a real dockerd (a private one, busybox containers with no
 * network): values against `docker inspect` and the stats endpoint, a container removed
 * mid-collection, OOM kills and restarts from the event stream counted once (across a
 * cut stream and a daemon restart), a hung and a missing socket, and `lookout status`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  containersSchema,
  createContainersCollector,
  type ContainersCollector,
} from '../src/collectors/containers.js';
import { workingSetBytes } from '../src/collectors/containers/read.js';
import { CollectorError, NothingToCollect } from '../src/collectors/collector.js';
import { nanoTimestamp, type ContainerInspect, type ContainerStats } from '../src/lib/docker.js';
import { HttpClient, type Endpoint, type HttpRequest, type HttpResponse } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { startBusyboxEngine, BUSYBOX_IMAGE, type BusyboxEngine } from './helpers/busybox.js';
import { engineGet } from './helpers/dockerd.js';
import { restartsAcrossCut } from './helpers/events-cut.js';
import { findSamples, sampleValue, seriesValue, stateSet } from './helpers/exposition.js';
import { REPO, eventually, startLookout, tempDir } from './helpers/procs.js';

const run = promisify(execFile);
const log = createLogger('error');
const NONE = ['--network', 'none', '--stop-timeout', '1'];

function collectCtx(ms = 10_000) {
  return { signal: AbortSignal.timeout(ms), deadline: performance.now() + ms, log };
}

async function text(c: ContainersCollector): Promise<string> {
  return await (await c.collect(collectCtx())).metrics();
}

function serviceCtx() {
  return {
    log,
    signal: AbortSignal.timeout(10_000),
    fault: () => undefined,
    healthy: () => undefined,
  };
}

describe('containers collector on a real dockerd', { timeout: 300_000 }, () => {
  let engine: BusyboxEngine;
  const http = new HttpClient({ connectionsPerOrigin: 32 });
  let collector: ContainersCollector;
  const docker = (...args: string[]) => engine.docker(...args);
  const inspect = async (name: string) =>
    (JSON.parse((await docker('inspect', name)).stdout) as ContainerInspect[])[0]!;
  const stats = async (name: string) =>
    JSON.parse(
      (
        await engineGet(
          engine.dockerd.socket,
          `/containers/${name}/stats?stream=false&one-shot=true`,
        )
      ).body,
    ) as ContainerStats;
  /** docker run -d, no network, a short stop timeout; options and command split on spaces, script whole. */
  const start = (name: string, options: string, command: string, script?: string) =>
    docker(
      'run',
      '-d',
      ...NONE,
      '--name',
      name,
      ...options.split(' ').filter(Boolean),
      BUSYBOX_IMAGE,
      ...command.split(' '),
      ...(script === undefined ? [] : [script]),
    );
  const counts = (name: string) =>
    collector.events.countsByName().get(name) ?? { oomKills: 0, restarts: 0 };

  before(async () => {
    engine = await startBusyboxEngine('lkct-');
    await Promise.all([
      start(
        'web',
        '--restart unless-stopped -m 64m --cpus 0.5 --label com.docker.compose.project=shop' +
          ' --label com.docker.compose.service=web --label secret.token=hunter2',
        'sleep 600',
      ),
      start('job', '', 'sh -c', 'exit 3'),
      start('flappy', '--restart always', 'sh -c', 'sleep 1; exit 1'),
      start('bounced', '--label lookout.expect=running', 'sleep 600'),
      start('healthy', '--health-cmd true --health-interval 1s', 'sleep 600'),
      start('sick', '--health-cmd false --health-interval 1s --health-retries 1', 'sleep 600'),
      start('vanish', '', 'sleep 600'),
    ]);
    collector = createContainersCollector(
      containersSchema.parse({ endpoint: engine.dockerd.host }),
      http,
      log,
    );
    await collector.service.start(serviceCtx());
    // After the service started, so its event stream sees the OOM kill. The sleep: dockerd
    // sets State.OOMKilled only when containerd's OOM event reaches it before the exit
    // event, and the two race when the container exits at once (the events count it either way).
    await start(
      'oom',
      '-m 16m --memory-swap 16m',
      'sh -c',
      'dd if=/dev/zero bs=64M count=1 | tail -c 1 >/dev/null; sleep 3; exit 0',
    );
    await docker('wait', 'job');
    await docker('wait', 'oom');
    await eventually(
      async () => {
        const [h, s, f] = await Promise.all([
          inspect('healthy'),
          inspect('sick'),
          inspect('flappy'),
        ]);
        return (
          h.State.Health?.Status === 'healthy' &&
          s.State.Health?.Status === 'unhealthy' &&
          f.RestartCount >= 1
        );
      },
      30_000,
      'healthy healthy, sick unhealthy, flappy restarted by its policy',
    );
  });

  after(async () => {
    await collector?.service.stop();
    await http.close();
    await engine?.stop();
  });

  for (const source of ['auto', 'api'] as const) {
    it(`reports each container as docker inspect and the stats endpoint show it (stats_source ${source}: ${source === 'auto' ? 'its cgroup files' : "the engine's one-shot stats"})`, async () => {
      const c = createContainersCollector(
        containersSchema.parse({ endpoint: engine.dockerd.host, stats_source: source }),
        http,
        log,
      );
      const before = await stats('web');
      const exposition = await text(c);
      assert.equal(
        c.lastSeen()!.containers.find((x) => x.labels.name === 'web')!.statsSource,
        source === 'auto' ? 'cgroup' : 'api',
      );
      const after = await stats('web');
      const [web, job, oom, healthy, sick, bounced] = (await Promise.all(
        ['web', 'job', 'oom', 'healthy', 'sick', 'bounced'].map(inspect),
      )) as [
        ContainerInspect,
        ContainerInspect,
        ContainerInspect,
        ContainerInspect,
        ContainerInspect,
        ContainerInspect,
      ];
      const v = (metric: string, name: string) => sampleValue(exposition, metric, { name });

      // Labels: name, image and the compose pair only; no other Docker label leaks out.
      const webLabels = findSamples(exposition, 'lookout_container_running', { name: 'web' })[0]!;
      assert.deepEqual(webLabels.labels, {
        name: 'web',
        image: BUSYBOX_IMAGE,
        compose_project: 'shop',
        compose_service: 'web',
      });
      assert.doesNotMatch(exposition, /hunter2|secret/);

      for (const [name, i] of Object.entries({ web, job, oom, healthy, sick, bounced })) {
        assert.equal(v('lookout_container_running', name), i!.State.Running ? 1 : 0, name);
        assert.equal(v('lookout_container_restart_count', name), i!.RestartCount, name);
        assert.equal(v('lookout_container_oom_killed', name), i!.State.OOMKilled ? 1 : 0, name);
        assert.equal(v('lookout_container_collect_success', name), 1, name);
        assert.ok(
          Math.abs(
            v('lookout_container_start_time_seconds', name)! -
              Date.parse(i!.State.StartedAt) / 1000,
          ) < 0.001,
          `${name} start time`,
        );
      }
      // Expected to run: a policy (web), the label (bounced); not a one-off job.
      assert.equal(v('lookout_container_should_run', 'web'), 1);
      assert.equal(v('lookout_container_should_run', 'bounced'), 1);
      assert.equal(v('lookout_container_should_run', 'flappy'), 1);
      assert.equal(v('lookout_container_should_run', 'job'), 0);
      assert.equal(v('lookout_container_last_exit_code', 'job'), 3);
      assert.equal(job.State.ExitCode, 3);
      assert.equal(
        v('lookout_container_last_exit_code', 'web'),
        undefined,
        'running: no exit code',
      );
      assert.equal(
        oom.State.OOMKilled,
        true,
        `the kernel killed in the oom container: ${JSON.stringify(oom.State)}`,
      );
      assert.equal(v('lookout_container_oom_killed', 'oom'), 1);

      // Limits: as configured, absent (never 0) when unlimited.
      assert.equal(v('lookout_container_memory_limit_bytes', 'web'), 64 * 1024 * 1024);
      assert.equal(web.HostConfig.Memory, 64 * 1024 * 1024);
      assert.equal(v('lookout_container_cpu_limit_cores', 'web'), 0.5);
      assert.equal(v('lookout_container_memory_limit_bytes', 'healthy'), undefined);
      assert.equal(v('lookout_container_cpu_limit_cores', 'healthy'), undefined);

      // Counters read between two stats reads of the engine's.
      const cpu = v('lookout_container_cpu_seconds_total', 'web')!;
      assert.ok(cpu >= before.cpu_stats!.cpu_usage!.total_usage! / 1e9, `cpu ${cpu}`);
      assert.ok(cpu <= after.cpu_stats!.cpu_usage!.total_usage! / 1e9, `cpu ${cpu}`);
      // Working set: usage less inactive_file (cgroup v2) or total_inactive_file (v1).
      const s = after.memory_stats!;
      const inactive = s.stats!.total_inactive_file ?? s.stats!.inactive_file!;
      assert.ok(inactive !== undefined, 'this engine reports inactive_file');
      const expected = Math.max(0, s.usage! - inactive);
      assert.equal(workingSetBytes(s), expected);
      const ws = v('lookout_container_memory_working_set_bytes', 'web')!;
      // An idle sleep's memory barely moves between the two reads.
      assert.ok(Math.abs(ws - expected) <= 256 * 1024, `working set ${ws} vs ${expected}`);
      assert.equal(v('lookout_container_memory_working_set_bytes', 'job'), undefined, 'stopped');
      // --network none: no network, no network series.
      assert.equal(v('lookout_container_network_receive_bytes_total', 'web'), undefined);
    });
  }

  it('health is a state set: healthy, unhealthy, none, exactly one of them 1', async () => {
    const exposition = await text(collector);
    const states = (name: string) =>
      stateSet(exposition, 'lookout_container_health_status', { name }, 'status');
    assert.deepEqual(states('healthy'), { healthy: 1, unhealthy: 0, starting: 0, none: 0 });
    assert.deepEqual(states('sick'), { healthy: 0, unhealthy: 1, starting: 0, none: 0 });
    assert.deepEqual(states('web'), { healthy: 0, unhealthy: 0, starting: 0, none: 1 });
  });

  it('a container removed during collection is left out; the refresh succeeds', async () => {
    const id = (await inspect('vanish')).Id;
    // Removes the container from the engine just before lookout asks about it (once: its
    // inspect and stats are asked for together).
    let removed: Promise<unknown> | undefined;
    class RemovingClient extends HttpClient {
      override async request(endpoint: Endpoint, req: HttpRequest): Promise<HttpResponse> {
        if (typeof endpoint === 'object' && 'path' in endpoint && endpoint.path.includes(id))
          await (removed ??= docker('rm', '-f', id));
        return await super.request(endpoint, req);
      }
    }
    const removing = new RemovingClient({ connectionsPerOrigin: 32 });
    try {
      const c = createContainersCollector(
        containersSchema.parse({ endpoint: engine.dockerd.host }),
        removing,
        log,
      );
      const exposition = await text(c);
      assert.equal(findSamples(exposition, /^lookout_container_/, { name: 'vanish' }).length, 0);
      assert.equal(
        sampleValue(exposition, 'lookout_container_collect_success', { name: 'web' }),
        1,
      );
      assert.ok(!c.lastSeen()!.containers.some((x) => x.labels.name === 'vanish'));
      await assert.rejects(inspect('vanish'), /No such object|no such container/i);
      // And the series of the shared collector go once the container is gone.
      const later = await text(collector);
      assert.equal(findSamples(later, /^lookout_container_/, { name: 'vanish' }).length, 0);
    } finally {
      await removing.close();
    }
  });

  it('OOM kills and API restarts counted from events exactly once', async () => {
    await eventually(async () => counts('oom').oomKills >= 1, 20_000, 'the oom event');
    const id = (await inspect('bounced')).Id;
    await collector.docker.restart(id, { timeoutSeconds: 0 }, AbortSignal.timeout(20_000));
    await eventually(async () => counts('bounced').restarts >= 1, 20_000, 'the restart');
    // Quiet the flapping one, and let anything late arrive, then count.
    await eventually(
      async () => {
        try {
          await docker('update', '--restart', 'no', 'flappy');
          return true;
        } catch {
          return false; // between two runs: docker cannot update a stopped container
        }
      },
      20_000,
      'flappy without its policy',
    );
    await docker('wait', 'flappy');
    await collector.docker.restart(id, { timeoutSeconds: 0 }, AbortSignal.timeout(20_000));
    await eventually(async () => counts('bounced').restarts >= 2, 20_000, 'the second restart');
    const service = await collector.service.registry.metrics();
    assert.equal(seriesValue(service, 'lookout_container_oom_kills_total{name="oom"}'), 1);
    assert.equal(seriesValue(service, 'lookout_container_restarts_total{name="bounced"}'), 2);
    assert.equal(seriesValue(service, 'lookout_container_oom_kills_total{name="bounced"}'), 0);
    assert.ok(seriesValue(service, 'lookout_container_restarts_total{name="flappy"}')! >= 1);
    // Docker's own RestartCount does not count API restarts: that is what the events add.
    assert.equal((await inspect('bounced')).RestartCount, 0);
    const exposition = await text(collector);
    assert.equal(
      sampleValue(exposition, 'lookout_container_restart_count', { name: 'bounced' }),
      0,
    );
  });

  it('the event stream cut and opened again: events the engine replays are counted once', async () => {
    const id = (await inspect('bounced')).Id;
    const restarts = await restartsAcrossCut({
      socket: engine.dockerd.socket,
      name: 'bounced',
      id,
      http,
      log,
      // The engine does send the last event again (the new `since` is 1 ms before it; the
      // event is whichever the collector saw last, of any container)...
      replayed: async (since, last) =>
        (
          await engineGet(
            engine.dockerd.socket,
            `/events?since=${nanoTimestamp(since)}&until=${Math.ceil(Date.now() / 1000)}&filters=${encodeURIComponent(JSON.stringify({ type: ['container'] }))}`,
          )
        ).body.includes(`"timeNano":${last}`),
    });
    // ...and it is not counted again; the next restart is.
    assert.equal(restarts, 2);
  });

  it('dockerd restarted: the stream is opened again and nothing is counted twice', async () => {
    const before = {
      web: counts('web').restarts,
      bounced: counts('bounced').restarts,
      healthy: counts('healthy').restarts,
      oom: counts('oom').oomKills,
    };
    const reopened = collector.events.streamState().reopened;
    await engine.restart();
    // The engine starts web again (unless-stopped); bounced (no policy) stays stopped.
    await eventually(
      async () => {
        const st = collector.events.streamState();
        return st.connected && st.reopened > reopened;
      },
      60_000,
      'the stream opened again after the daemon restart',
    );
    await eventually(async () => (await inspect('web')).State.Running, 30_000, 'web back');
    await docker('start', 'bounced');
    await eventually(async () => counts('bounced').restarts > before.bounced, 20_000, 'bounced');
    await eventually(async () => counts('web').restarts > before.web, 20_000, 'web');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(counts('web').restarts, before.web + 1, 'web started once by the new daemon');
    assert.equal(counts('bounced').restarts, before.bounced + 1);
    assert.equal(counts('healthy').restarts, before.healthy, 'no policy: not started again');
    assert.equal(counts('oom').oomKills, before.oom);
    // And the polled part reads the new daemon.
    const exposition = await text(collector);
    assert.equal(sampleValue(exposition, 'lookout_container_running', { name: 'web' }), 1);
  });

  it('lookout status shows the containers table', async () => {
    const dir = await tempDir('lkcts-');
    const config = join(dir, 'lookout.yml');
    await writeFile(
      config,
      `collectors:\n  containers:\n    endpoint: ${engine.dockerd.host}\n  processes:\n    enabled: false\n`,
    );
    const out = await run(
      process.execPath,
      [join(REPO, 'dist/cli.js'), 'status', '--config', config],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    ).then(
      (r) => r.stdout,
      (err: { stdout?: string }) => err.stdout ?? '',
    );
    const section = out.slice(out.indexOf('Containers '));
    assert.match(section, /NAME\s+STATE\s+CPU %\s+MEM\s+LIMIT\s+MEM %\s+HEALTH\s+RESTARTS/);
    assert.match(
      section,
      /^web\s+running\s+\d+\.\d %\s+[\d.]+ (B|KiB|MiB)\s+64\.0 MiB\s+\d+\.\d %\s+none\s+\d+$/m,
    );
    assert.match(section, /^job\s+exited \(3\)\s+-\s+-\s+-\s+-\s+none\s+0$/m);
  });
});

describe('containers collector without a Docker engine', () => {
  it('a missing socket: nothing to collect; a configured one missing: a failure', async () => {
    const http = new HttpClient();
    const dir = await tempDir('lkctm-');
    const missing = `unix://${join(dir, 'docker.sock')}`;
    try {
      const quiet = createContainersCollector(containersSchema.parse({}), http, log, {
        defaultEndpoint: missing,
      });
      await assert.rejects(quiet.collect(collectCtx()), NothingToCollect);
      await assert.rejects(Promise.resolve(quiet.service.start(serviceCtx())), NothingToCollect);
      assert.deepEqual(await quiet.checkTargets!(collectCtx()), []);
      const configured = createContainersCollector(
        containersSchema.parse({ endpoint: missing }),
        http,
        log,
      );
      await assert.rejects(
        configured.collect(collectCtx()),
        (err: unknown) =>
          err instanceof CollectorError &&
          err.code === 'LOOKOUT_DOCKER_UNREACHABLE' &&
          !(err instanceof NothingToCollect),
      );
    } finally {
      await http.close();
    }
  });

  it('a hung Docker socket: the collector times out, success 0, /metrics still answers', async () => {
    const dir = await tempDir('lkcth-');
    const path = join(dir, 'hung.sock');
    const held = new Set<Socket>();
    // Accepts and never answers.
    const hung = createServer((s) => {
      held.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => hung.listen(path, r));
    const lookout = await startLookout(
      `collectors:\n  containers:\n    endpoint: unix://${path}\n    interval: 2s\n    timeout: 1s\n`,
    );
    try {
      const metrics = async () => {
        const res = await fetch(`${lookout.url}/metrics`, { signal: AbortSignal.timeout(5000) });
        assert.equal(res.status, 200);
        return await res.text();
      };
      await eventually(
        async () =>
          seriesValue(await metrics(), 'lookout_collector_success{collector="containers"}') === 0,
        20_000,
        'containers success 0',
      );
      // Scrapes keep answering while refreshes hang on the socket.
      for (let i = 0; i < 5; i++) {
        const body = await metrics();
        assert.equal(seriesValue(body, 'lookout_collector_success{collector="containers"}'), 0);
        assert.ok(seriesValue(body, 'lookout_collector_success{collector="host"}') === 1);
      }
      assert.ok(held.size >= 1, 'lookout did connect to the hung socket');
    } finally {
      await lookout.stop();
      for (const s of held) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  });
});
