/**
 * The containers collector on a real Podman (4.3 here): its Docker-compatible socket
 * (`podman system service`), containers made by `podman run`. Values against Podman's
 * compat inspect and stats; the event stream as Podman sends it (what it sends for a
 * policy restart, an API restart, an OOM kill, a removal), each counted once, across a
 * cut stream; removed containers' series going; `lookout status`; one auto-restart through
 * the compat API; and the event stream's re-open against a socket that accepts and never
 * answers. Where Podman differs from Docker the test says so (docs/containers.md#podman).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  containersSchema,
  createContainersCollector,
  type ContainersCollector,
} from '../src/collectors/containers.js';
import { EVENT_ACTIONS } from '../src/collectors/containers/events.js';
import { statsEmpty } from '../src/collectors/containers/read.js';
import {
  DockerClient,
  DockerTimeoutError,
  type ContainerInspect,
  type ContainerStats,
  type EngineEvent,
  type EventStream,
} from '../src/lib/docker.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { engineGet } from './helpers/dockerd.js';
import { engineProxy } from './helpers/engine-proxy.js';
import { restartsAcrossCut } from './helpers/events-cut.js';
import { findSamples, sampleValue, seriesValue, stateSet } from './helpers/exposition.js';
import { PODMAN_IMAGE, startPodman, type PodmanEngine } from './helpers/podman.js';
import { REPO, eventually, tempDir } from './helpers/procs.js';

const run = promisify(execFile);
const log = createLogger('error', {}, () => {});

function collectCtx(ms = 10_000) {
  return { signal: AbortSignal.timeout(ms), deadline: performance.now() + ms, log };
}

function serviceCtx(
  on: { fault?: (err: unknown) => void; healthy?: () => void } = {},
): Parameters<ContainersCollector['service']['start']>[0] {
  return {
    log,
    signal: AbortSignal.timeout(10_000),
    fault: on.fault ?? (() => undefined),
    healthy: on.healthy ?? (() => undefined),
  };
}

describe('containers collector on a real Podman', { timeout: 180_000 }, () => {
  let engine: PodmanEngine;
  const http = new HttpClient({ connectionsPerOrigin: 32 });
  let collector: ContainersCollector;
  /** Every event Podman sent since before the containers started, through lookout's own filter. */
  const seen: EngineEvent[] = [];
  let raw: EventStream | undefined;
  let reading: Promise<void> | undefined;
  const podman = (...args: string[]) => engine.podman(...args);
  const compat = async <T>(path: string): Promise<T> => {
    const r = await engineGet(engine.socket, path);
    assert.equal(r.status, 200, `GET ${path}: ${r.body}`);
    return JSON.parse(r.body) as T;
  };
  const inspect = (name: string) => compat<ContainerInspect>(`/containers/${name}/json`);
  const stats = (name: string) =>
    compat<ContainerStats>(`/containers/${name}/stats?stream=false&one-shot=true`);
  const text = async (c: ContainersCollector) => await (await c.collect(collectCtx())).metrics();
  const counts = (name: string) =>
    collector.events.countsByName().get(name) ?? { oomKills: 0, restarts: 0 };
  const actions = (name: string) =>
    seen.filter((e) => e.Actor.Attributes?.name === name).map((e) => e.Action);

  before(async () => {
    engine = await startPodman();
    // What Podman sends, read as lookout asks for it (its filter), from before any container.
    raw = await new DockerClient(http, engine.host).events(
      { sinceNano: BigInt(Date.now()) * 1_000_000n, actions: EVENT_ACTIONS },
      AbortSignal.timeout(170_000),
    );
    reading = (async () => {
      for await (const e of raw!) seen.push(e);
    })().catch(() => undefined);
    await Promise.all([
      engine.run(
        'web',
        [
          '--restart=unless-stopped',
          '-m=64m',
          '--cpus=0.5',
          '--label=com.docker.compose.project=shop',
          '--label=com.docker.compose.service=web',
          '--label=secret.token=hunter2',
        ],
        ['sleep', '600'],
      ),
      engine.run('job', [], ['sh', '-c', 'exit 3']),
      engine.run('bounced', ['--label=lookout.expect=running'], ['sleep', '600']),
      // Podman runs health checks from systemd timers; with no systemd (here) they run
      // only when asked (`podman healthcheck run`), which the test does below.
      engine.run('healthy', ['--health-cmd=true', '--health-interval=1s'], ['sleep', '600']),
      engine.run(
        'sick',
        ['--health-cmd=false', '--health-interval=1s', '--health-retries=1'],
        ['sleep', '600'],
      ),
      engine.run('vanish', [], ['sleep', '600']),
    ]);
    collector = createContainersCollector(
      containersSchema.parse({ endpoint: engine.host }),
      http,
      log,
    );
    await collector.service.start(serviceCtx());
    // After the service started, so its stream sees them: restarted twice by its policy
    // (then exited 1 for good); killed by the kernel at its memory limit.
    await Promise.all([
      engine.run('twice', ['--restart=on-failure:2'], ['sh', '-c', 'sleep 0.5; exit 1']),
      engine.run('oom', ['-m=16m', '--memory-swap=16m'], ['sh', '-c', 'tail /dev/zero']),
    ]);
    await podman('healthcheck', 'run', 'healthy');
    await podman('healthcheck', 'run', 'sick').catch(() => undefined); // exits 1: unhealthy
    await eventually(
      async () => {
        const [t, o] = await Promise.all([inspect('twice'), inspect('oom')]);
        return t.State.Status === 'exited' && t.RestartCount === 2 && o.State.Status === 'exited';
      },
      30_000,
      'twice restarted twice and exited, oom killed',
    );
  });

  after(async () => {
    raw?.close();
    await reading;
    await collector?.service.stop();
    await http.close();
    await engine?.stop();
  });

  for (const source of ['auto', 'api'] as const) {
    it(`reports each container as Podman's compat inspect and stats show it (stats_source ${source})`, async () => {
      const c = createContainersCollector(
        containersSchema.parse({ endpoint: engine.host, stats_source: source }),
        http,
        log,
      );
      const before = await stats('web');
      const exposition = await text(c);
      const after = await stats('web');
      assert.equal(
        c.lastSeen()!.containers.find((x) => x.labels.name === 'web')!.statsSource,
        source === 'auto' ? 'cgroup' : 'api',
        'auto reads the libpod-<id> cgroup',
      );
      const v = (metric: string, name: string) => sampleValue(exposition, metric, { name });
      const names = ['web', 'job', 'bounced', 'healthy', 'sick', 'twice', 'oom'];
      const inspected = Object.fromEntries(
        await Promise.all(names.map(async (n) => [n, await inspect(n)] as const)),
      );

      assert.deepEqual(
        findSamples(exposition, 'lookout_container_running', { name: 'web' })[0]!.labels,
        { name: 'web', image: PODMAN_IMAGE, compose_project: 'shop', compose_service: 'web' },
      );
      assert.doesNotMatch(exposition, /hunter2|secret/);
      for (const [name, i] of Object.entries(inspected)) {
        assert.equal(v('lookout_container_running', name), i.State.Running ? 1 : 0, name);
        assert.equal(v('lookout_container_restart_count', name), i.RestartCount, name);
        assert.equal(v('lookout_container_oom_killed', name), i.State.OOMKilled ? 1 : 0, name);
        assert.equal(v('lookout_container_collect_success', name), 1, name);
        assert.ok(
          Math.abs(
            v('lookout_container_start_time_seconds', name)! - Date.parse(i.State.StartedAt) / 1000,
          ) < 0.001,
          `${name} start time`,
        );
      }
      assert.equal(v('lookout_container_should_run', 'web'), 1, 'unless-stopped');
      assert.equal(v('lookout_container_should_run', 'bounced'), 1, 'the label');
      assert.equal(v('lookout_container_should_run', 'twice'), 0, 'on-failure: a job');
      assert.equal(v('lookout_container_last_exit_code', 'job'), 3);
      assert.equal(v('lookout_container_last_exit_code', 'twice'), 1);
      assert.equal(v('lookout_container_restart_count', 'twice'), 2, "Podman's RestartCount");
      assert.equal(v('lookout_container_last_exit_code', 'web'), undefined, 'running');
      // Killed by the kernel (SIGKILL: 137). Podman 4.3 here leaves OOMKilled false.
      assert.equal(inspected.oom!.State.ExitCode, 137);
      assert.equal(v('lookout_container_last_exit_code', 'oom'), 137);

      // Health: Podman's compat inspect has Docker's Health and Healthcheck.
      const states = (name: string) =>
        stateSet(exposition, 'lookout_container_health_status', { name }, 'status');
      assert.deepEqual(states('healthy'), { healthy: 1, unhealthy: 0, starting: 0, none: 0 });
      assert.deepEqual(states('sick'), { healthy: 0, unhealthy: 1, starting: 0, none: 0 });
      // Podman says Health {Status: ""} for a container without a check: none.
      assert.equal(inspected.web!.State.Health?.Status ?? '', '');
      assert.deepEqual(states('web'), { healthy: 0, unhealthy: 0, starting: 0, none: 1 });

      assert.equal(v('lookout_container_memory_limit_bytes', 'web'), 64 * 1024 * 1024);
      assert.equal(v('lookout_container_cpu_limit_cores', 'web'), 0.5);
      assert.equal(v('lookout_container_memory_limit_bytes', 'healthy'), undefined);
      assert.equal(v('lookout_container_cpu_limit_cores', 'healthy'), undefined);

      const cpu = v('lookout_container_cpu_seconds_total', 'web')!;
      assert.ok(cpu >= before.cpu_stats!.cpu_usage!.total_usage! / 1e9, `cpu ${cpu}`);
      assert.ok(cpu <= after.cpu_stats!.cpu_usage!.total_usage! / 1e9, `cpu ${cpu}`);
      // Podman's memory_stats: usage and limit, no stats map (no inactive_file) at all.
      assert.equal(after.memory_stats!.stats, undefined);
      assert.equal(after.memory_stats!.limit, 64 * 1024 * 1024);
      const ws = v('lookout_container_memory_working_set_bytes', 'web')!;
      // api: the usage itself; auto: the cgroup's usage less its inactive file pages,
      // which an idle sleep barely has.
      assert.ok(
        Math.abs(ws - after.memory_stats!.usage!) <= 256 * 1024,
        `working set ${ws} vs usage ${after.memory_stats!.usage}`,
      );
      assert.equal(v('lookout_container_memory_working_set_bytes', 'job'), undefined, 'stopped');
      // --network none: Podman's stats still list a zeroed "network"; lookout shows none.
      assert.deepEqual(Object.keys(after.networks ?? {}), ['network']);
      assert.equal(inspected.web!.HostConfig.NetworkMode, 'none');
      assert.equal(v('lookout_container_network_receive_bytes_total', 'web'), undefined);
      assert.equal(v('lookout_container_network_transmit_bytes_total', 'web'), undefined);
    });
  }

  it("a stopped container's stats: Podman answers 200 with no body, read as nothing to read", async () => {
    const r = await engineGet(engine.socket, '/containers/job/stats?stream=false&one-shot=true');
    assert.deepEqual([r.status, r.body], [200, '']);
    const s = await collector.docker.stats('job', AbortSignal.timeout(10_000));
    assert.ok(statsEmpty(s));
  });

  it('events as Podman sends them: policy and API restarts counted once each, no oom event, removal seen', async () => {
    const id = (await inspect('bounced')).Id;
    await collector.docker.restart(id, { timeoutSeconds: 0 }, AbortSignal.timeout(20_000));
    await eventually(async () => counts('bounced').restarts >= 1, 20_000, 'the API restart');
    await podman('restart', '--time', '0', 'bounced');
    await eventually(async () => counts('bounced').restarts >= 2, 20_000, 'the CLI restart');
    await new Promise((r) => setTimeout(r, 500));
    // Podman sends restart, stop, die, init and start for one restart; lookout's filter
    // lets through start only (and Podman's own names: "died", not "die", passes its filter).
    // The first start is its `podman run`, before the service started.
    assert.deepEqual(actions('bounced'), ['start', 'start', 'start']);
    assert.deepEqual(actions('twice'), ['start', 'start', 'start']);
    assert.deepEqual(counts('bounced'), { oomKills: 0, restarts: 2 });
    assert.deepEqual(counts('twice'), { oomKills: 0, restarts: 2 }, 'as its RestartCount');
    // The kernel killed oom at its limit; Podman sends no oom event (it has none).
    assert.deepEqual(actions('oom'), ['start']);
    const service = await collector.service.registry.metrics();
    assert.equal(seriesValue(service, 'lookout_container_oom_kills_total{name="oom"}'), 0);
    assert.equal(seriesValue(service, 'lookout_container_restarts_total{name="bounced"}'), 2);
    assert.equal(seriesValue(service, 'lookout_container_restarts_total{name="twice"}'), 2);
    // RestartCount counts policy restarts only, as Docker's does.
    assert.equal((await inspect('bounced')).RestartCount, 0);
  });

  it("a removed container's series go: the polled ones at once, the event ones after Podman's remove event", async () => {
    await podman('restart', '--time', '0', 'vanish');
    await eventually(async () => counts('vanish').restarts === 1, 20_000, 'vanish restarted');
    const before = await text(collector);
    assert.equal(sampleValue(before, 'lookout_container_running', { name: 'vanish' }), 1);
    await podman('rm', '--force', '--time', '0', 'vanish');
    await eventually(
      async () => actions('vanish').includes('remove'),
      20_000,
      "Podman's remove event (Docker's destroy)",
    );
    await new Promise((r) => setTimeout(r, 200));
    // Without a refresh in between (which would also see it gone): the event alone starts
    // the 15 minutes its event series are kept.
    collector.events.sweep(Date.now() + 16 * 60_000);
    const service = await collector.service.registry.metrics();
    assert.equal(
      seriesValue(service, 'lookout_container_restarts_total{name="vanish"}'),
      undefined,
    );
    assert.equal(seriesValue(service, 'lookout_container_restarts_total{name="bounced"}'), 2);
    const later = await text(collector);
    assert.equal(findSamples(later, /^lookout_container_/, { name: 'vanish' }).length, 0);
  });

  it('the event stream cut and opened again: what Podman replays is counted once', async () => {
    const id = (await inspect('bounced')).Id;
    const restarts = await restartsAcrossCut({
      socket: engine.socket,
      name: 'bounced',
      id,
      http,
      log,
      // Podman's replay, read until the event comes or 10 s pass (it answers nothing with
      // `until`, and under load its file backend takes more than a second to replay). The
      // last event is whichever the collector saw last, of any container.
      replayed: async (since, last) => {
        const seen: string[] = [];
        const stream = await collector.docker.events(
          { sinceNano: since, actions: EVENT_ACTIONS },
          AbortSignal.timeout(10_000),
        );
        const timer = setTimeout(() => stream.close(), 10_000);
        try {
          for await (const e of stream) {
            seen.push(`${e.timeNano} ${e.Action} ${e.Actor.Attributes?.name}`);
            if (e.timeNano === last) return true;
          }
        } catch {
          // Closed by the timer.
        } finally {
          clearTimeout(timer);
          stream.close();
        }
        console.log(`last event ${last}; Podman sent from ${since}: ${seen.join(', ')}`);
        return false;
      },
    });
    assert.equal(restarts, 2);
  });

  it('the event stream re-opened against a socket that accepts and never answers: each open times out, it is retried, a fault, then healthy again', async () => {
    const dir = await tempDir('lkpmh-');
    const proxy = await engineProxy(engine.socket, join(dir, 'h.sock'));
    const c = createContainersCollector(
      containersSchema.parse({ endpoint: `unix://${proxy.path}`, timeout: '1s' }),
      http,
      log,
    );
    const faults: unknown[] = [];
    let healthy = 0;
    try {
      await c.service.start(
        serviceCtx({ fault: (err) => faults.push(err), healthy: () => healthy++ }),
      );
      proxy.hang(true);
      proxy.cut();
      await eventually(async () => faults.length >= 1, 30_000, 'a fault reported');
      const fault = faults[0];
      assert.ok(fault instanceof DockerTimeoutError, String(fault));
      assert.match(fault.message, /GET \/events: no answer within 1000 ms/);
      const held = proxy.held();
      // Four failures in a row make the fault: the cut stream, then three opens that timed
      // out, each giving its connection up.
      assert.ok(held.accepted >= 3, `opens tried: ${held.accepted}`);
      assert.ok(held.open <= 1, `connections still held: ${held.open}`);
      assert.equal(c.events.streamState().connected, false);
      assert.equal(healthy, 0);
      proxy.hang(false);
      await eventually(
        async () => c.events.streamState().connected && healthy >= 1,
        30_000,
        'opened again and healthy',
      );
      const id = (await inspect('bounced')).Id;
      await c.docker.restart(id, { timeoutSeconds: 0 }, AbortSignal.timeout(20_000));
      await eventually(
        async () => (c.events.countsByName().get('bounced')?.restarts ?? 0) === 1,
        20_000,
        'a restart counted on the reopened stream',
      );
    } finally {
      await c.service.stop();
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("auto-restart restarts an unhealthy opted-in container through the compat API, and leaves one with Podman's --health-on-failure to Podman (read from Podman's own inspect; behind a proxy that refuses it, the container is still read)", async () => {
    const failing = ['--health-cmd=false', '--health-interval=1s', '--health-retries=1'];
    await Promise.all([
      engine.run('mend', ['--label=lookout.autorestart=true', ...failing], ['sleep', '600']),
      engine.run(
        'selfheal',
        ['--label=lookout.autorestart=true', '--health-on-failure=restart', ...failing],
        ['sleep', '600'],
      ),
    ]);
    await podman('healthcheck', 'run', 'mend').catch(() => undefined); // exits 1: unhealthy
    // Podman's compat inspect leaves --health-on-failure out; its own inspect has it.
    const selfheal = await inspect('selfheal');
    assert.equal('HealthcheckOnFailureAction' in selfheal.Config, false);
    const libpod = await compat<{ Config: { HealthcheckOnFailureAction?: string } }>(
      '/v4.0.0/libpod/containers/selfheal/json',
    );
    assert.equal(libpod.Config.HealthcheckOnFailureAction, 'restart');
    const startedBefore = (await inspect('mend')).State.StartedAt;
    const c = createContainersCollector(
      containersSchema.parse({
        endpoint: engine.host,
        actions: { enabled: true },
        autorestart: { failures: 1, stop_timeout: '1s' },
      }),
      http,
      log,
    );
    const first = await text(c);
    const plans = c.autorestart.action.plan();
    assert.deepEqual(
      plans.map((p) => [p.target, p.what, p.held ?? false]).sort(),
      [
        ['mend', 'restart mend', false],
        ['selfheal', 'leave selfheal to Podman', true],
      ],
      JSON.stringify(plans),
    );
    const enabled = (name: string) =>
      sampleValue(first, 'lookout_container_remediation_enabled', { name });
    assert.equal(enabled('mend'), 1);
    assert.equal(enabled('selfheal'), 0);
    const mend = plans.find((p) => p.target === 'mend')!;
    await c.autorestart.action.run(mend, { signal: AbortSignal.timeout(30_000), log });
    const after = await inspect('mend');
    assert.equal(after.State.Running, true);
    assert.ok(after.State.StartedAt > startedBefore, `${after.State.StartedAt} > ${startedBefore}`);
    const exposition = await text(c);
    assert.equal(
      sampleValue(exposition, 'lookout_container_remediation_restarts_total', {
        name: 'mend',
        result: 'restarted',
      }),
      1,
    );

    // Behind a socket proxy that lets through Docker's paths only (as docker-socket-proxy
    // does): every container still read; auto-restart cannot see the setting then.
    const dir = await tempDir('lkpmd-');
    const denying = createServer((req, res) => {
      if (req.url?.includes('/libpod/')) {
        res.writeHead(403).end('forbidden');
        return;
      }
      const up = request(
        { socketPath: engine.socket, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => denying.listen(join(dir, 'd.sock'), r));
    try {
      const behind = createContainersCollector(
        containersSchema.parse({
          endpoint: `unix://${join(dir, 'd.sock')}`,
          actions: { enabled: true },
          autorestart: { failures: 1, stop_timeout: '1s' },
        }),
        http,
        log,
      );
      const seenBehind = await text(behind);
      assert.equal(
        sampleValue(seenBehind, 'lookout_container_collect_success', { name: 'selfheal' }),
        1,
      );
      assert.equal(
        behind.autorestart.action.plan().some((p) => p.target === 'selfheal' && p.held),
        false,
      );
    } finally {
      denying.closeAllConnections();
      await new Promise((r) => denying.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lookout status shows the containers table; the collector's target check names Podman", async () => {
    const [check] = await collector.checkTargets!(collectCtx());
    assert.ok(check?.ok, JSON.stringify(check));
    assert.match(check.detail, /^Podman 4\.\d+\.\d+ \(API 1\.\d+\) in \d+ ms: \d+ containers$/);
    const dir = await tempDir('lkpms-');
    const config = join(dir, 'lookout.yml');
    await writeFile(
      config,
      `collectors:\n  containers:\n    endpoint: ${engine.host}\n  processes:\n    enabled: false\n`,
    );
    const out = await run(
      process.execPath,
      [join(REPO, 'dist/cli.js'), 'status', '--config', config],
      { encoding: 'utf8', timeout: 60_000 },
    ).then(
      (r) => r.stdout,
      (err: { stdout?: string }) => err.stdout ?? '',
    );
    await rm(dir, { recursive: true, force: true });
    const section = out.slice(out.indexOf('Containers '));
    assert.match(section, /NAME\s+STATE\s+CPU %\s+MEM\s+LIMIT\s+MEM %\s+HEALTH\s+RESTARTS/);
    assert.match(
      section,
      /^web\s+running\s+\d+\.\d %\s+[\d.]+ (B|KiB|MiB)\s+64\.0 MiB\s+\d+\.\d %\s+none\s+\d+$/m,
    );
    assert.match(section, /^job\s+exited \(3\)\s+-\s+-\s+-\s+-\s+none\s+0$/m);
    assert.match(section, /^sick\s+running\s.*unhealthy\s+0$/m);
  });
});
