/**
 * What the containers collector reads out of the engine's JSON, on literal answers:
 * Docker on cgroup v1 and v2, Podman's compat API (no inactive_file), endpoints written
 * as DOCKER_HOST is, and event lines with their nanosecond times kept exact.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import {
  cpuLimitCores,
  memoryLimitBytes,
  networkBytes,
  ownNetwork,
  shouldRun,
  unixSeconds,
  workingSetBytes,
} from '../src/collectors/containers/read.js';
import { readCgroupStats } from '../src/collectors/containers/cgroup.js';
import type { ContainerInspect } from '../src/lib/docker.js';
import { tempDir } from './helpers/procs.js';
import {
  DockerClient,
  nanoTimestamp,
  parseEngineEndpoint,
  parseEvent,
  type EngineEvent,
} from '../src/lib/docker.js';
import { ContainerEventService } from '../src/collectors/containers/events.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';

describe('containers: reading the engine answers', () => {
  it('working set: usage less inactive_file (v2), total_inactive_file (v1), usage alone (Podman), at least 0', () => {
    assert.equal(workingSetBytes({ usage: 1000, stats: { inactive_file: 300 } }), 700);
    // cgroup v1 has both; the hierarchical total is the one docker stats subtracts.
    assert.equal(
      workingSetBytes({ usage: 1000, stats: { inactive_file: 100, total_inactive_file: 400 } }),
      600,
    );
    assert.equal(workingSetBytes({ usage: 1000, stats: {} }), 1000);
    assert.equal(workingSetBytes({ usage: 1000 }), 1000);
    assert.equal(workingSetBytes({ usage: 100, stats: { inactive_file: 300 } }), 0);
    assert.equal(workingSetBytes({}), undefined, 'no usage: a container that stopped');
    assert.equal(workingSetBytes(undefined), undefined);
  });

  it('limits: --cpus, else quota/period; memory; absent (never 0) when unlimited', () => {
    assert.equal(cpuLimitCores({ NanoCpus: 1_500_000_000 }), 1.5);
    assert.equal(cpuLimitCores({ CpuQuota: 50_000, CpuPeriod: 100_000 }), 0.5);
    assert.equal(cpuLimitCores({ CpuQuota: 50_000, CpuPeriod: 0 }), 0.5, 'default period');
    assert.equal(cpuLimitCores({ NanoCpus: 0, CpuQuota: 0, CpuPeriod: 0 }), undefined);
    assert.equal(cpuLimitCores({ CpuQuota: -1 }), undefined);
    assert.equal(memoryLimitBytes({ Memory: 16 << 20 }), 16 << 20);
    assert.equal(memoryLimitBytes({ Memory: 0 }), undefined);
    assert.equal(memoryLimitBytes({}), undefined);
  });

  it('network bytes summed over networks; none without a network', () => {
    assert.deepEqual(
      networkBytes({
        read: 'x',
        networks: { eth0: { rx_bytes: 10, tx_bytes: 1 }, eth1: { rx_bytes: 5, tx_bytes: 2 } },
      }),
      { rx: 15, tx: 3 },
    );
    assert.equal(networkBytes({ read: 'x' }), undefined);
    assert.equal(networkBytes({ read: 'x', networks: {} }), undefined);
  });

  it("a network of the container's own: a bridge or named network, not none, host or another's", () => {
    for (const mode of ['bridge', 'default', 'shop_default', 'slirp4netns', '', undefined])
      assert.equal(ownNetwork(mode), true, String(mode));
    // Podman lists a zeroed "network" for --network none; host and container: are not its own.
    for (const mode of ['none', 'host', 'container:0123abcd'])
      assert.equal(ownNetwork(mode), false, mode);
  });

  it('should run: restart policy always or unless-stopped, the label, or the config list', () => {
    const withPolicy = (Name: string) =>
      ({ HostConfig: { RestartPolicy: { Name } } }) as unknown as ContainerInspect;
    const none = new Set<string>();
    assert.equal(shouldRun('a', withPolicy('always'), null, none), true);
    assert.equal(shouldRun('a', withPolicy('unless-stopped'), null, none), true);
    assert.equal(shouldRun('a', withPolicy('on-failure'), null, none), false);
    assert.equal(shouldRun('a', withPolicy('no'), null, none), false);
    assert.equal(shouldRun('a', withPolicy('no'), { 'lookout.expect': 'running' }, none), true);
    assert.equal(shouldRun('a', withPolicy('no'), null, new Set(['a'])), true);
  });

  it('times: RFC 3339 with nanoseconds; the zero time is never', () => {
    assert.equal(unixSeconds('2026-12-06T09:50:37.123456789Z'), 1796550637.1234567);
    assert.equal(unixSeconds('2026-12-06T09:50:37Z'), 1796550637);
    assert.equal(unixSeconds('0001-01-01T00:00:00Z'), undefined);
    assert.equal(unixSeconds(''), undefined);
  });

  it('endpoints as DOCKER_HOST writes them', () => {
    assert.deepEqual(parseEngineEndpoint('unix:///var/run/docker.sock'), {
      socketPath: '/var/run/docker.sock',
    });
    assert.deepEqual(parseEngineEndpoint('/run/podman/podman.sock'), {
      socketPath: '/run/podman/podman.sock',
    });
    assert.deepEqual(parseEngineEndpoint('tcp://proxy:2375'), { url: 'http://proxy:2375' });
    assert.deepEqual(parseEngineEndpoint('https://docker.example:2376/'), {
      url: 'https://docker.example:2376',
    });
    assert.throws(() => parseEngineEndpoint('ssh://host'), /ssh: endpoints are not supported/);
    assert.throws(() => parseEngineEndpoint('docker.sock'), /expected unix:/);
  });

  it('event lines: the nanosecond time kept exact, other lines ignored', () => {
    const line =
      '{"status":"oom","id":"abc","from":"bb:1","Type":"container","Action":"oom","Actor":{"ID":"abc","Attributes":{"image":"bb:1","name":"web"}},"scope":"local","time":1796550637,"timeNano":1796550637123456789}';
    const e = parseEvent(line)!;
    assert.equal(e.Action, 'oom');
    assert.equal(e.Actor.ID, 'abc');
    assert.equal(e.Actor.Attributes?.name, 'web');
    assert.equal(e.timeNano, 1796550637123456789n);
    assert.equal(nanoTimestamp(e.timeNano), '1796550637.123456789');
    assert.equal(nanoTimestamp(1796550637000000005n), '1796550637.000000005');
    assert.equal(parseEvent('not json'), undefined);
    assert.equal(parseEvent('{"Type":"container"}'), undefined);
  });
});

describe('containers: event series', () => {
  const event = (id: string, name: string, Action: string, timeNano: bigint): EngineEvent => ({
    Type: 'container',
    Action,
    Actor: { ID: id, Attributes: { name } },
    time: Number(timeNano / 1_000_000_000n),
    timeNano,
  });

  it('a name the engine no longer lists loses its series a while later, as a destroyed one does; a listed one keeps them', async () => {
    // No request is made: the events are handed in as the stream would.
    const svc = new ContainerEventService({
      docker: new DockerClient(new HttpClient(), 'unix:///nonexistent/docker.sock'),
      explicit: true,
      log: createLogger('error', {}, () => {}),
    });
    const t = 1_796_550_637_000_000_000n;
    for (const name of ['kept', 'missed']) {
      svc.handle(event(name, name, 'start', t));
      svc.handle(event(name, name, 'oom', t + 1n));
    }
    // missed was removed while the stream was down: its destroy event never came.
    const t0 = Date.parse('2026-12-06T10:00:00Z');
    svc.present(new Set(['kept']), t0);
    svc.sweep(t0 + 60_000);
    const before = await svc.registry.metrics();
    assert.equal(seriesValue(before, 'lookout_container_oom_kills_total{name="missed"}'), 1);
    svc.present(new Set(['kept']), t0 + 15_000);
    svc.sweep(t0 + 16 * 60_000);
    const after = await svc.registry.metrics();
    assert.equal(seriesValue(after, 'lookout_container_oom_kills_total{name="missed"}'), undefined);
    assert.equal(seriesValue(after, 'lookout_container_restarts_total{name="missed"}'), undefined);
    assert.equal(seriesValue(after, 'lookout_container_oom_kills_total{name="kept"}'), 1);
    assert.deepEqual([...svc.countsByName().keys()], ['kept']);
  });

  it('an event whose bytes arrive in two chunks split inside a character reads whole', async () => {
    const line = Buffer.from(
      '{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"web","maintainer":"José Núñez"}},"time":1796550637,"timeNano":1796550637123456789}\n',
    );
    const cut = line.indexOf(Buffer.from('é')) + 1;
    const dir = await tempDir('lookout-events-');
    const socket = join(dir, 'engine.sock');
    // An engine's /events answer, written as two chunks with a pause between them.
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line.subarray(0, cut));
      setTimeout(() => res.end(line.subarray(cut)), 50);
    });
    await new Promise<void>((r) => server.listen(socket, r));
    const http = new HttpClient();
    try {
      const docker = new DockerClient(http, `unix://${socket}`);
      const got: EngineEvent[] = [];
      for await (const e of await docker.events({}, AbortSignal.timeout(10_000))) got.push(e);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.Actor.Attributes?.maintainer, 'José Núñez');
      assert.equal(got[0]!.timeNano, 1796550637123456789n);
    } finally {
      await http.close();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('containers: counters from the cgroup files', () => {
  const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    2000      20    0    0    0     0          0         0      300       3    0    0    0     0       0          0
`;

  async function tree(files: Record<string, string>): Promise<string> {
    const root = await tempDir('lookout-cgroup-');
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    }
    return root;
  }

  it('cgroup v2: cpu.stat usage_usec, memory.current, memory.stat; network without lo', async () => {
    const scope = 'sys/fs/cgroup/system.slice/docker-abc123.scope';
    const root = await tree({
      'proc/42/cgroup': '0::/system.slice/docker-abc123.scope\n',
      'proc/42/net/dev': NET_DEV,
      [`${scope}/memory.current`]: '5000\n',
      [`${scope}/memory.stat`]: 'anon 1000\nfile 4000\ninactive_file 3000\n',
      [`${scope}/cpu.stat`]: 'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n',
    });
    const paths = { procfs: join(root, 'proc'), sysfs: join(root, 'sys'), rootfs: root };
    const s = await readCgroupStats('abc123', 42, paths, true);
    assert.equal(s.cpu_stats?.cpu_usage?.total_usage, 1_500_000_000);
    assert.equal(s.memory_stats?.usage, 5000);
    assert.equal(workingSetBytes(s.memory_stats), 2000);
    assert.deepEqual(s.networks, { eth0: { rx_bytes: 2000, tx_bytes: 300 } });
    const hostNet = await readCgroupStats('abc123', 42, paths, false);
    assert.equal(hostNet.networks, undefined, 'the host network is not the container’s');
    await assert.rejects(readCgroupStats('other', 42, paths, true), /not the container's/);
    await assert.rejects(readCgroupStats('abc123', 43, paths, true), /ENOENT/);
  });

  it('cgroup v1: cpuacct.usage, memory.usage_in_bytes, total_inactive_file', async () => {
    const root = await tree({
      'proc/7/cgroup':
        '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n',
      'proc/7/net/dev': NET_DEV.split('\n').slice(0, 3).join('\n') + '\n',
      'sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes': '9000\n',
      'sys/fs/cgroup/memory/docker/abc/memory.stat':
        'cache 100\ninactive_file 10\ntotal_inactive_file 4000\n',
      'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpuacct.usage': '123456789\n',
    });
    const paths = { procfs: join(root, 'proc'), sysfs: join(root, 'sys'), rootfs: root };
    const s = await readCgroupStats('abc', 7, paths, true);
    assert.equal(s.cpu_stats?.cpu_usage?.total_usage, 123456789);
    assert.equal(workingSetBytes(s.memory_stats), 5000);
    assert.equal(s.networks, undefined, 'only lo: no network');
  });
});
