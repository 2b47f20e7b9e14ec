/**
 * What the containers collector reads out of the engine's JSON, on literal answers:
 * Docker on cgroup v1 and v2, Podman's compat API (no inactive_file), endpoints written
 * as DOCKER_HOST is, and event lines with their nanosecond times kept exact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cpuLimitCores,
  memoryLimitBytes,
  networkBytes,
  shouldRun,
  unixSeconds,
  workingSetBytes,
} from '../src/collectors/containers/read.js';
import type { ContainerInspect } from '../src/lib/docker.js';
import { nanoTimestamp, parseEngineEndpoint, parseEvent } from '../src/lib/docker.js';

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
