/**
 * The host, filesystem and processes collectors against the captured /proc tree in
 * test/fixtures/proc (exact exposition lines), the filesystem collector against real
 * tmpfs mounts on this host, and hung-mount bookkeeping (test/hung-mount.test.ts has
 * the real hung mount).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { machine } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { type Collector, type HostPaths } from '../src/collectors/collector.js';
import {
  createFilesystemCollector,
  filesystemSchema,
  type StatFsResult,
} from '../src/collectors/filesystem.js';
import { createHostCollector, hostSchema } from '../src/collectors/host.js';
import { createProcessesCollector, processesSchema } from '../src/collectors/processes.js';
import { createLogger, type Logger } from '../src/lib/log.js';
import { findSamples, parseExposition, sampleLines, sampleValue } from './helpers/exposition.js';
import { REPO, tempDir } from './helpers/procs.js';

const run = promisify(execFile);
const FIXTURES = join(REPO, 'test/fixtures');
const fixturePaths: HostPaths = {
  procfs: join(FIXTURES, 'proc'),
  sysfs: '/nonexistent-sys',
  rootfs: join(FIXTURES, 'rootfs'),
};

function quietLog(lines: string[] = []): Logger {
  return createLogger('debug', {}, (line) => lines.push(line));
}

async function refreshWith(collector: Collector, log: Logger): Promise<string> {
  assert.ok(collector.collect, 'a polled collector');
  const registry = await collector.collect({
    signal: new AbortController().signal,
    deadline: Infinity,
    log,
  });
  return registry.metrics();
}

function collect(collector: Collector): Promise<string> {
  return refreshWith(collector, quietLog());
}

/** The mountpoints of the named samples, in exposition order. */
function mountpoints(text: string, name: string): Array<string | undefined> {
  return findSamples(text, name).map((s) => s.labels.mountpoint);
}

describe('host collector on the fixture /proc', () => {
  test('CPU by mode summed over CPUs, load, memory, swap, boot time, network, host info', async () => {
    const text = await collect(createHostCollector(hostSchema.parse({}), fixturePaths));
    assert.equal(
      sampleLines(
        text,
        'lookout_cpu_seconds_total',
        'lookout_cpus',
        'lookout_load1',
        'lookout_load5',
        'lookout_load15',
        'lookout_memory_total_bytes',
        'lookout_memory_available_bytes',
        'lookout_swap_total_bytes',
        'lookout_swap_free_bytes',
        'lookout_boot_time_seconds',
        'lookout_network_receive_bytes_total',
        'lookout_network_transmit_bytes_total',
        'lookout_host_info',
      ),
      `lookout_cpu_seconds_total{mode="user"} 74.82
lookout_cpu_seconds_total{mode="nice"} 0.12
lookout_cpu_seconds_total{mode="system"} 54.52
lookout_cpu_seconds_total{mode="idle"} 736.96
lookout_cpu_seconds_total{mode="iowait"} 3.95
lookout_cpu_seconds_total{mode="irq"} 0.07
lookout_cpu_seconds_total{mode="softirq"} 2.01
lookout_cpu_seconds_total{mode="steal"} 0.03
lookout_cpus 2
lookout_load1 0.73
lookout_load5 0.36
lookout_load15 0.16
lookout_memory_total_bytes 25276026880
lookout_memory_available_bytes 24928792576
lookout_swap_total_bytes 2147479552
lookout_swap_free_bytes 1073737728
lookout_boot_time_seconds 1795556358
lookout_network_receive_bytes_total{device="eth0"} 196802175
lookout_network_receive_bytes_total{device="docker0"} 1234
lookout_network_transmit_bytes_total{device="eth0"} 390121
lookout_network_transmit_bytes_total{device="docker0"} 5678
lookout_host_info{hostname="fixture-host",kernel="6.1.0-18-amd64",os="Debian GNU/Linux 12 (bookworm)",arch="${machine()}"} 1`,
    );
    const types = new Map(parseExposition(text).map((f) => [f.name, f.type]));
    assert.equal(types.get('lookout_cpu_seconds_total'), 'counter');
    assert.equal(types.get('lookout_network_receive_bytes_total'), 'counter');
  });

  test('memory pressure, OOM kills, network packets, errors and drops, conntrack, file descriptors', async () => {
    const text = await collect(createHostCollector(hostSchema.parse({}), fixturePaths));
    assert.equal(
      sampleLines(
        text,
        'lookout_oom_kills_total',
        'lookout_swap_in_pages_total',
        'lookout_swap_out_pages_total',
        'lookout_major_page_faults_total',
        'lookout_network_receive_packets_total',
        'lookout_network_transmit_packets_total',
        'lookout_network_receive_errors_total',
        'lookout_network_transmit_errors_total',
        'lookout_network_receive_drops_total',
        'lookout_network_transmit_drops_total',
        'lookout_conntrack_entries',
        'lookout_conntrack_entries_limit',
        'lookout_file_descriptors',
        'lookout_file_descriptors_limit',
      ),
      `lookout_oom_kills_total 3
lookout_swap_in_pages_total 1024
lookout_swap_out_pages_total 2048
lookout_major_page_faults_total 2655
lookout_file_descriptors 1331
lookout_file_descriptors_limit 2466112
lookout_conntrack_entries 420
lookout_conntrack_entries_limit 262144
lookout_network_receive_packets_total{device="eth0"} 6650
lookout_network_receive_packets_total{device="docker0"} 10
lookout_network_transmit_packets_total{device="eth0"} 3703
lookout_network_transmit_packets_total{device="docker0"} 20
lookout_network_receive_errors_total{device="eth0"} 3
lookout_network_receive_errors_total{device="docker0"} 0
lookout_network_transmit_errors_total{device="eth0"} 1
lookout_network_transmit_errors_total{device="docker0"} 4
lookout_network_receive_drops_total{device="eth0"} 7
lookout_network_receive_drops_total{device="docker0"} 5
lookout_network_transmit_drops_total{device="eth0"} 2
lookout_network_transmit_drops_total{device="docker0"} 0`,
    );
    const types = new Map(parseExposition(text).map((f) => [f.name, f.type]));
    for (const name of [
      'lookout_oom_kills_total',
      'lookout_swap_in_pages_total',
      'lookout_major_page_faults_total',
      'lookout_network_receive_packets_total',
      'lookout_network_transmit_packets_total',
      'lookout_network_receive_errors_total',
    ])
      assert.equal(types.get(name), 'counter', name);
    assert.equal(types.get('lookout_conntrack_entries'), 'gauge');
  });

  test('conntrack: absent without the module, no failure; the host namespace (PID 1) preferred', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      await rm(join(procfs, '1/net/stat'), { recursive: true });
      await rm(join(procfs, 'net/stat'), { recursive: true });
      await rm(join(procfs, 'sys/net'), { recursive: true });
      const without = await collect(
        createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs }),
      );
      assert.equal(sampleLines(without, 'lookout_conntrack_entries'), '');
      assert.equal(sampleLines(without, 'lookout_conntrack_entries_limit'), '');
      assert.equal(sampleValue(without, 'lookout_file_descriptors'), 1331, 'the rest is there');

      // lookout's own namespace has 1 entry, the host's (PID 1's) 0x10 = 16.
      await mkdir(join(procfs, 'net/stat'));
      await writeFile(join(procfs, 'net/stat/nf_conntrack'), 'entries found\n00000001 0\n');
      await mkdir(join(procfs, '1/net/stat'), { recursive: true });
      await writeFile(join(procfs, '1/net/stat/nf_conntrack'), 'entries found\n00000010 0\n');
      const host = await collect(
        createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs }),
      );
      assert.equal(sampleValue(host, 'lookout_conntrack_entries'), 16);
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test("network and conntrack from the host's namespace (/proc/1/net), not lookout's own; no warning", async () => {
    // The fixture's /proc/net (lookout's own namespace, as in a container) differs from
    // /proc/1/net (the host's): the golden values above are PID 1's.
    const lines: string[] = [];
    const c = createHostCollector(hostSchema.parse({}), fixturePaths);
    const text = await refreshWith(c, quietLog(lines));
    assert.equal(
      sampleValue(text, 'lookout_network_receive_bytes_total', { device: 'eth0' }),
      196802175,
    );
    assert.equal(sampleValue(text, 'lookout_conntrack_entries'), 420);
    assert.deepEqual(
      lines.filter((l) => l.includes('level=warn')),
      [],
    );
  });

  test("/proc/1/net missing: lookout's own namespace instead, and a warning once saying so", async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      await rm(join(procfs, '1/net'), { recursive: true });
      const lines: string[] = [];
      const c = createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs });
      const text = await refreshWith(c, quietLog(lines));
      assert.equal(
        sampleLines(
          text,
          'lookout_network_receive_bytes_total',
          'lookout_network_receive_drops_total',
        ),
        `lookout_network_receive_bytes_total{device="eth0"} 87654
lookout_network_receive_drops_total{device="eth0"} 1`,
      );
      assert.equal(sampleValue(text, 'lookout_conntrack_entries'), 5);
      await refreshWith(c, quietLog(lines));
      const warned = lines.filter((l) => l.includes("lookout's own network namespace"));
      assert.equal(warned.length, 1, lines.join('\n'));
      assert.ok(warned[0]!.includes(`${procfs}/1/net/dev: ENOENT`), warned[0]);
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('a network device removed between two refreshes: its series go, the others stay', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      const c = createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs });
      const devices = (text: string) =>
        findSamples(text, /^lookout_network_/).map((s) => `${s.name} ${s.labels.device}`);
      const before = await collect(c);
      assert.equal(devices(before).length, 16);
      const dev = await readFile(join(procfs, '1/net/dev'), 'utf8');
      await writeFile(join(procfs, '1/net/dev'), dev.replace(/^docker0:.*\n/m, ''));
      const after = await collect(c);
      assert.deepEqual(
        devices(after),
        devices(before).filter((d) => d.endsWith(' eth0')),
      );
      assert.equal(
        sampleValue(after, 'lookout_network_receive_bytes_total', { device: 'eth0' }),
        196802175,
      );
      // Everything else is as the first refresh left it, family by family.
      const rest = (text: string) =>
        parseExposition(text).filter((f) => !f.name.startsWith('lookout_network_'));
      assert.deepEqual(rest(after), rest(before));
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('a refresh that fails, or that the runner gave up on, writes nothing: the registry still holds the last good values', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      const c = createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs });
      assert.ok(c.collect);
      const ok = await c.collect!({
        signal: new AbortController().signal,
        deadline: Infinity,
        log: quietLog(),
      });
      const good = await ok.metrics();

      // Everything changes, and vmstat's last counter is broken: the check comes before
      // any value is set.
      const dev = await readFile(join(procfs, '1/net/dev'), 'utf8');
      await writeFile(join(procfs, '1/net/dev'), dev.replace(/^docker0:.*\n/m, ''));
      await writeFile(join(procfs, 'loadavg'), '9.99 9.99 9.99 1/100 12345\n');
      const vmstat = await readFile(join(procfs, 'vmstat'), 'utf8');
      await writeFile(join(procfs, 'vmstat'), vmstat.replace(/^pgmajfault \d+$/m, 'pgmajfault -1'));
      await assert.rejects(collect(c), /lookout_major_page_faults_total read -1/);
      assert.equal(await ok.metrics(), good);

      // Timed out: the runner has aborted the refresh's signal and no longer waits for it.
      await writeFile(join(procfs, 'vmstat'), vmstat);
      const abort = new AbortController();
      abort.abort(new Error('timed out'));
      await assert.rejects(
        c.collect!({ signal: abort.signal, deadline: Infinity, log: quietLog() }),
        /timed out/,
      );
      assert.equal(await ok.metrics(), good);

      const next = await collect(c);
      assert.equal(sampleValue(next, 'lookout_load1'), 9.99);
      assert.equal(findSamples(next, 'lookout_network_receive_bytes_total').length, 1);
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('the same collector refreshed again gives the same exposition: counters are set, not added up', async () => {
    const c = createHostCollector(hostSchema.parse({}), fixturePaths);
    const first = await collect(c);
    assert.equal(await collect(c), first);
    assert.equal(sampleValue(first, 'lookout_cpu_seconds_total', { mode: 'user' }), 74.82);
  });

  test('a kernel without oom_kill in /proc/vmstat: no OOM series, the rest still there', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      await writeFile(join(procfs, 'vmstat'), 'pswpin 1\npswpout 2\npgmajfault 3\n');
      const text = await collect(
        createHostCollector(hostSchema.parse({}), { ...fixturePaths, procfs }),
      );
      assert.equal(sampleLines(text, 'lookout_oom_kills_total'), '');
      assert.equal(sampleValue(text, 'lookout_major_page_faults_total'), 3);
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('network.devices_exclude drops matching devices', async () => {
    const config = hostSchema.parse({ network: { devices_exclude: '^(lo|docker.*)$' } });
    const text = await collect(createHostCollector(config, fixturePaths));
    assert.equal(
      sampleLines(text, 'lookout_network_receive_bytes_total'),
      'lookout_network_receive_bytes_total{device="eth0"} 196802175',
    );
  });

  test('no os-release under rootfs: os="Linux"', async () => {
    const text = await collect(
      createHostCollector(hostSchema.parse({}), { ...fixturePaths, rootfs: '/nonexistent' }),
    );
    assert.equal(findSamples(text, 'lookout_host_info')[0]?.labels.os, 'Linux');
  });

  test('hostname and OS under rootfs are read again only once they are older than the max age', async () => {
    const rootfs = await tempDir();
    try {
      await mkdir(join(rootfs, 'etc'));
      const write = (name: string, os: string) =>
        Promise.all([
          writeFile(join(rootfs, 'etc/hostname'), `${name}\n`),
          writeFile(join(rootfs, 'etc/os-release'), `PRETTY_NAME="${os}"\n`),
        ]);
      const info = async (c: Collector) => {
        const labels = findSamples(await collect(c), 'lookout_host_info')[0]?.labels;
        return [labels?.hostname, labels?.os];
      };
      await write('before', 'Debian 12');
      const cached = createHostCollector(hostSchema.parse({}), { ...fixturePaths, rootfs });
      const fresh = createHostCollector(hostSchema.parse({}), { ...fixturePaths, rootfs }, 0);
      assert.deepEqual(await info(cached), ['before', 'Debian 12']);
      assert.deepEqual(await info(fresh), ['before', 'Debian 12']);
      await write('after', 'Debian 13');
      assert.deepEqual(await info(cached), ['before', 'Debian 12']);
      assert.deepEqual(await info(fresh), ['after', 'Debian 13']);
    } finally {
      await rm(rootfs, { recursive: true, force: true });
    }
  });

  test('an unreadable /proc file fails the refresh and names the file', async () => {
    const c = createHostCollector(hostSchema.parse({}), {
      ...fixturePaths,
      procfs: '/nonexistent-proc',
    });
    await assert.rejects(collect(c), {
      code: 'LOOKOUT_COLLECTOR_FAILED',
      message: /\/nonexistent-proc\//,
    });
  });

  test('config: an invalid regular expression is refused', () => {
    const r = hostSchema.safeParse({ network: { devices_exclude: '(' } });
    assert.equal(r.success, false);
    assert.match(r.error?.issues[0]?.message ?? '', /regular expression/);
    assert.deepEqual(r.error?.issues[0]?.path, ['network', 'devices_exclude']);
  });

  test('config: defaults interval 15s, timeout 5s', () => {
    const c = hostSchema.parse({});
    assert.equal(c.interval, 15_000);
    assert.equal(c.timeout, 5_000);
    assert.equal(c.network.devices_exclude, '^lo$');
  });
});

describe('processes collector on the fixture /proc', () => {
  test('states (zeros included), watched names, top by RSS; a pid that vanished is skipped', async () => {
    const config = processesSchema.parse({
      watch: ['nginx', 'dockerd', 'prometheus-node-exporter', 'my (weird) proc'],
    });
    const text = await collect(createProcessesCollector(config, fixturePaths, 4096));
    assert.equal(
      sampleLines(
        text,
        'lookout_processes',
        'lookout_watched_processes',
        'lookout_top_process_resident_memory_bytes',
      ),
      `lookout_processes{state="running"} 1
lookout_processes{state="sleeping"} 5
lookout_processes{state="disk_sleep"} 1
lookout_processes{state="zombie"} 1
lookout_processes{state="stopped"} 1
lookout_processes{state="idle"} 1
lookout_watched_processes{name="nginx"} 2
lookout_watched_processes{name="dockerd"} 0
lookout_watched_processes{name="prometheus-node-exporter"} 1
lookout_watched_processes{name="my (weird) proc"} 1
lookout_top_process_resident_memory_bytes{rank="1",name="my (weird) proc"} 209715200
lookout_top_process_resident_memory_bytes{rank="2",name="postgres"} 104857600
lookout_top_process_resident_memory_bytes{rank="3",name="prometheus-node"} 20480000
lookout_top_process_resident_memory_bytes{rank="4",name="systemd"} 13107200
lookout_top_process_resident_memory_bytes{rank="5",name="nginx"} 10240000`,
    );
    // CPU use is a difference between two walks: none after the first.
    assert.equal(sampleLines(text, 'lookout_top_process_cpu_usage_ratio'), '');
  });

  test('top by CPU: CPU time since the last refresh per second of it; a reused or new pid counts all its time; a vanished pid is forgotten', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      /** Adds CPU ticks to a pid's utime (field 14) and stime (15), or sets its start (22). */
      const edit = async (pid: string, f: { utime?: number; stime?: number; start?: number }) => {
        const path = join(procfs, pid, 'stat');
        const text = await readFile(path, 'utf8');
        const close = text.lastIndexOf(')');
        const fields = text.slice(close + 2).split(' '); // fields[0] is field 3
        const add = (n: number, by = 0) => (fields[n - 3] = String(Number(fields[n - 3]) + by));
        add(14, f.utime);
        add(15, f.stime);
        if (f.start !== undefined) fields[22 - 3] = String(f.start);
        await writeFile(path, text.slice(0, close + 2) + fields.join(' '));
      };
      let clock = 1_000_000;
      const c = createProcessesCollector(
        processesSchema.parse({ top: 3 }),
        { ...fixturePaths, procfs },
        4096,
        () => clock,
      );
      await collect(c);

      // 10 s later: pid 42 used 15 s of CPU (1.5 CPUs), postgres (300) 1 s, nginx (201)
      // 0.2 s, systemd (1) 0.1 s. pid 301 is another process now (a later start) that has
      // used 3 s in all, all of it since the last refresh: 0.3 (not 2.2 s more than the old
      // one's 0.8 s). pid 400 has exited. Top 3 of them.
      await edit('42', { utime: 1400, stime: 100 });
      await edit('300', { stime: 100 });
      await edit('201', { utime: 20 });
      await edit('1', { utime: 10 });
      await edit('301', { utime: 220, start: 99999 });
      const stat400 = await readFile(join(procfs, '400/stat'), 'utf8');
      await rm(join(procfs, '400'), { recursive: true });
      clock += 10_000;
      assert.equal(
        sampleLines(await collect(c), 'lookout_top_process_cpu_usage_ratio'),
        `lookout_top_process_cpu_usage_ratio{rank="1",name="my (weird) proc"} 1.5
lookout_top_process_cpu_usage_ratio{rank="2",name="prometheus-node"} 0.3
lookout_top_process_cpu_usage_ratio{rank="3",name="postgres"} 0.1`,
      );

      // 5 s later: the new 301 used 0.5 s more, from its own reading; pid 400 is back (the
      // same start time, as a fixture can have it) with 1 s used: its old reading went
      // when it vanished, so it counts as new since the last refresh (1 s / 5 s, not
      // 1 s / 15 s). Idle processes fill the list, lowest pid first.
      await edit('301', { utime: 50 });
      await mkdir(join(procfs, '400'));
      await writeFile(join(procfs, '400/stat'), stat400);
      await edit('400', { utime: 100 });
      clock += 5_000;
      assert.equal(
        sampleLines(await collect(c), 'lookout_top_process_cpu_usage_ratio'),
        `lookout_top_process_cpu_usage_ratio{rank="1",name="sleep"} 0.2
lookout_top_process_cpu_usage_ratio{rank="2",name="prometheus-node"} 0.1
lookout_top_process_cpu_usage_ratio{rank="3",name="systemd"} 0`,
      );
      // Nothing ran.
      clock += 5_000;
      assert.equal(
        sampleLines(await collect(c), 'lookout_top_process_cpu_usage_ratio'),
        `lookout_top_process_cpu_usage_ratio{rank="1",name="systemd"} 0
lookout_top_process_cpu_usage_ratio{rank="2",name="kthreadd"} 0
lookout_top_process_cpu_usage_ratio{rank="3",name="kworker/0:1-events_freezable"} 0`,
      );
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('processes that exit between two refreshes: a state no one is in and a name that left the top list go', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      // pid 400 stopped by a tracer: a state outside the common ones, shown only while used.
      const stat400 = await readFile(join(procfs, '400/stat'), 'utf8');
      await writeFile(join(procfs, '400/stat'), stat400.replace(') T ', ') t '));
      const c = createProcessesCollector(
        processesSchema.parse({ top: 3 }),
        { ...fixturePaths, procfs },
        4096,
      );
      const before = await collect(c);
      assert.equal(sampleValue(before, 'lookout_processes', { state: 'tracing_stop' }), 1);
      assert.equal(
        sampleLines(before, 'lookout_top_process_resident_memory_bytes'),
        `lookout_top_process_resident_memory_bytes{rank="1",name="my (weird) proc"} 209715200
lookout_top_process_resident_memory_bytes{rank="2",name="postgres"} 104857600
lookout_top_process_resident_memory_bytes{rank="3",name="prometheus-node"} 20480000`,
      );

      await rm(join(procfs, '42'), { recursive: true });
      await rm(join(procfs, '400'), { recursive: true });
      const after = await collect(c);
      assert.equal(
        sampleLines(after, 'lookout_processes'),
        `lookout_processes{state="running"} 0
lookout_processes{state="sleeping"} 5
lookout_processes{state="disk_sleep"} 1
lookout_processes{state="zombie"} 1
lookout_processes{state="stopped"} 0
lookout_processes{state="idle"} 1`,
      );
      assert.equal(
        sampleLines(after, 'lookout_top_process_resident_memory_bytes'),
        `lookout_top_process_resident_memory_bytes{rank="1",name="postgres"} 104857600
lookout_top_process_resident_memory_bytes{rank="2",name="prometheus-node"} 20480000
lookout_top_process_resident_memory_bytes{rank="3",name="systemd"} 13107200`,
      );
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('top: 0 exports no top series; top: 2 exports two; page size is applied', async () => {
    const none = await collect(
      createProcessesCollector(processesSchema.parse({ top: 0 }), fixturePaths, 4096),
    );
    assert.doesNotMatch(none, /lookout_top_process_resident_memory_bytes/);
    assert.doesNotMatch(none, /lookout_top_process_cpu_usage_ratio/);
    const two = await collect(
      createProcessesCollector(processesSchema.parse({ top: 2 }), fixturePaths, 16384),
    );
    assert.equal(
      sampleLines(two, 'lookout_top_process_resident_memory_bytes'),
      `lookout_top_process_resident_memory_bytes{rank="1",name="my (weird) proc"} 838860800
lookout_top_process_resident_memory_bytes{rank="2",name="postgres"} 419430400`,
    );
  });

  test('defaults: watch nginx and dockerd, top 5, 15s/10s', () => {
    const c = processesSchema.parse({});
    assert.deepEqual(c.watch, ['nginx', 'dockerd']);
    assert.equal(c.top, 5);
    assert.equal(c.interval, 15_000);
    assert.equal(c.timeout, 10_000);
    assert.equal(processesSchema.safeParse({ top: -1 }).success, false);
    assert.equal(processesSchema.safeParse({ watch: [''] }).success, false);
  });

  test('an unreadable procfs fails the refresh', async () => {
    const c = createProcessesCollector(
      processesSchema.parse({}),
      { ...fixturePaths, procfs: '/nonexistent-proc' },
      4096,
    );
    await assert.rejects(collect(c), { code: 'LOOKOUT_COLLECTOR_FAILED' });
  });

  test('on this host: a process spinning on one CPU is among the busiest, at the share of a CPU its /proc/<pid>/stat shows, never over one', async () => {
    // A shell script's command name is its file name: a name no other process has.
    const dir = await tempDir();
    const script = join(dir, 'lookout-spin');
    await writeFile(script, '#!/bin/sh\nwhile :; do :; done\n', { mode: 0o755 });
    const spin = spawn(script, { stdio: 'ignore' });
    try {
      const c = createProcessesCollector(
        processesSchema.parse({ top: 50 }),
        { procfs: '/proc', sysfs: '/sys', rootfs: '/' },
        4096,
      );
      // utime + stime in clock ticks (100 a second), read around the collector's two walks.
      const cpuSeconds = async () => {
        const stat = await readFile(`/proc/${spin.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(f[11]) + Number(f[12])) / 100;
      };
      const [cpu0, t0] = [await cpuSeconds(), performance.now()];
      await collect(c);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const text = await collect(c);
      const [cpu1, t1] = [await cpuSeconds(), performance.now()];
      const share = (cpu1 - cpu0) / ((t1 - t0) / 1000);
      const spun = findSamples(text, 'lookout_top_process_cpu_usage_ratio').filter(
        (s) => s.labels.name === 'lookout-spin',
      );
      assert.equal(spun.length, 1, text);
      // How much of a CPU it gets depends on the machine's load; the collector must say what
      // the kernel counted (within 10 ms ticks and the walks' own timing), and over one would
      // be a wrong unit.
      const got = spun[0]!.value;
      const why = `collector ${got}, /proc/${spin.pid}/stat ${share}`;
      assert.ok(got > 0 && got <= 1.2, why);
      assert.ok(Math.abs(got - share) <= 0.03 + 0.2 * share, why);
    } finally {
      spin.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('on this host: counts itself and the sum of states is the number of pids', async () => {
    // Processes start and exit while the collector walks /proc, and a short-lived one can
    // come and go between any two readings. So the pids are listed just before and just
    // after a walk, and the sum is compared exactly on a walk the two listings agree on.
    // Other work on the host can spoil a few walks; a collector that miscounts (threads,
    // a state left out, a pid counted twice) misses on every one.
    const collector = createProcessesCollector(
      processesSchema.parse({ watch: ['node'] }),
      { procfs: '/proc', sysfs: '/sys', rootfs: '/' },
      4096,
    );
    const listPids = async () => new Set((await readdir('/proc')).filter((e) => /^\d+$/.test(e)));
    const sameSet = (a: Set<string>, b: Set<string>) =>
      a.size === b.size && [...a].every((pid) => b.has(pid));
    const attempts: string[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = await listPids();
      const text = await collect(collector);
      const after = await listPids();

      const node = sampleValue(text, 'lookout_watched_processes', { name: 'node' });
      assert.ok(node !== undefined && node >= 1, `node processes: ${node}`);
      const running = sampleValue(text, 'lookout_processes', { state: 'running' });
      assert.ok(running !== undefined && running >= 1, 'this test is running');

      const byState = findSamples(text, 'lookout_processes');
      const sum = byState.reduce((acc, s) => acc + s.value, 0);
      if (sameSet(before, after) && sum === before.size) return;
      attempts.push(
        `sum ${sum} (${byState.map((s) => `${s.labels.state}=${s.value}`).join(' ')}), ` +
          `pids before ${before.size}, after ${after.size}` +
          (sameSet(before, after) ? '' : ' (listings differ)'),
      );
    }
    assert.fail(`no walk matched its pid listing in 20 tries:\n${attempts.join('\n')}`);
  });
});

const fakeStats: StatFsResult = {
  bsize: 4096,
  blocks: 1000,
  bfree: 500,
  bavail: 400,
  files: 100,
  ffree: 50,
};

describe('filesystem collector on the fixture mount table', () => {
  test('dedup (last mount wins), default exclusions, escaped space, readonly, sizes', async () => {
    const asked: string[] = [];
    const c = createFilesystemCollector(
      filesystemSchema.parse({}),
      { ...fixturePaths, rootfs: '/host' },
      quietLog(),
      async (path) => {
        asked.push(path);
        return fakeStats;
      },
    );
    const text = await collect(c);
    assert.deepEqual(asked.sort(), [
      '/host/',
      '/host/mnt/my disk',
      '/host/run',
      '/host/srv/backup',
    ]);
    assert.equal(
      sampleLines(
        text,
        'lookout_filesystem_size_bytes',
        'lookout_filesystem_avail_bytes',
        'lookout_filesystem_readonly',
        'lookout_filesystem_device_error',
      ),
      `lookout_filesystem_size_bytes{mountpoint="/",device="/dev/vda",fstype="ext4"} 4096000
lookout_filesystem_size_bytes{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 4096000
lookout_filesystem_size_bytes{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 4096000
lookout_filesystem_size_bytes{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 4096000
lookout_filesystem_avail_bytes{mountpoint="/",device="/dev/vda",fstype="ext4"} 1638400
lookout_filesystem_avail_bytes{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 1638400
lookout_filesystem_avail_bytes{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 1638400
lookout_filesystem_avail_bytes{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 1638400
lookout_filesystem_readonly{mountpoint="/",device="/dev/vda",fstype="ext4"} 0
lookout_filesystem_readonly{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 0
lookout_filesystem_readonly{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 1
lookout_filesystem_readonly{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 1
lookout_filesystem_device_error{mountpoint="/",device="/dev/vda",fstype="ext4"} 0
lookout_filesystem_device_error{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 0
lookout_filesystem_device_error{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 0
lookout_filesystem_device_error{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 0`,
    );
    assert.equal(
      sampleLines(text, 'lookout_filesystem_files', 'lookout_filesystem_files_free'),
      `lookout_filesystem_files{mountpoint="/",device="/dev/vda",fstype="ext4"} 100
lookout_filesystem_files{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 100
lookout_filesystem_files{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 100
lookout_filesystem_files{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 100
lookout_filesystem_files_free{mountpoint="/",device="/dev/vda",fstype="ext4"} 50
lookout_filesystem_files_free{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 50
lookout_filesystem_files_free{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 50
lookout_filesystem_files_free{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 50`,
    );
  });

  test('a filesystem unmounted between two refreshes: its series go, the others stay in mount-table order', async () => {
    const procfs = await tempDir();
    try {
      await cp(fixturePaths.procfs, procfs, { recursive: true });
      const c = createFilesystemCollector(
        filesystemSchema.parse({}),
        { ...fixturePaths, procfs },
        quietLog(),
        async () => fakeStats,
      );
      const every = (text: string) =>
        findSamples(text, /^lookout_filesystem_/).map((s) => `${s.name} ${s.labels.mountpoint}`);
      const before = await collect(c);
      assert.deepEqual(mountpoints(before, 'lookout_filesystem_size_bytes'), [
        '/',
        '/mnt/my disk',
        '/srv/backup',
        '/run',
      ]);
      const mounts = await readFile(join(procfs, '1/mounts'), 'utf8');
      await writeFile(join(procfs, '1/mounts'), mounts.replace(/^\/dev\/vdc .*\n/m, ''));
      const after = await collect(c);
      assert.deepEqual(
        every(after),
        every(before).filter((s) => !s.endsWith(' /srv/backup')),
      );
      assert.equal(every(after).length, 7 * 3);
    } finally {
      await rm(procfs, { recursive: true, force: true });
    }
  });

  test('ext4, xfs and tmpfs are asked at once on the event loop, a network filesystem through the fan-out, in mount-table order', async () => {
    const dir = await tempDir();
    try {
      await writeFile(
        join(dir, 'mounts'),
        [
          '/dev/vda / ext4 rw 0 0',
          'srv:/export /mnt/nfs nfs4 rw 0 0',
          '/dev/vdc /srv/backup xfs ro 0 0',
          'tmpfs /run tmpfs rw 0 0',
          'fuse-thing /mnt/fuse fuse.sshfs rw 0 0',
          '',
        ].join('\n'),
      );
      const now: string[] = [];
      const later: string[] = [];
      const c = createFilesystemCollector(
        filesystemSchema.parse({}),
        { ...fixturePaths, procfs: dir, rootfs: '/' },
        quietLog(),
        async (path) => {
          later.push(path);
          return { ...fakeStats, blocks: 2000 };
        },
        (path) => {
          now.push(path);
          if (path === '/run') throw Object.assign(new Error('EIO'), { code: 'EIO' });
          return fakeStats;
        },
      );
      const text = await collect(c);
      assert.deepEqual(now, ['/', '/srv/backup', '/run']);
      assert.deepEqual(later.sort(), ['/mnt/fuse', '/mnt/nfs']);
      assert.equal(
        sampleLines(text, 'lookout_filesystem_size_bytes', 'lookout_filesystem_device_error'),
        `lookout_filesystem_size_bytes{mountpoint="/",device="/dev/vda",fstype="ext4"} 4096000
lookout_filesystem_size_bytes{mountpoint="/mnt/nfs",device="srv:/export",fstype="nfs4"} 8192000
lookout_filesystem_size_bytes{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 4096000
lookout_filesystem_size_bytes{mountpoint="/mnt/fuse",device="fuse-thing",fstype="fuse.sshfs"} 8192000
lookout_filesystem_device_error{mountpoint="/",device="/dev/vda",fstype="ext4"} 0
lookout_filesystem_device_error{mountpoint="/mnt/nfs",device="srv:/export",fstype="nfs4"} 0
lookout_filesystem_device_error{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 0
lookout_filesystem_device_error{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 1
lookout_filesystem_device_error{mountpoint="/mnt/fuse",device="fuse-thing",fstype="fuse.sshfs"} 0`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('custom exclusions: keep /dev/shm, drop ext4', async () => {
    const config = filesystemSchema.parse({
      mount_points_exclude: '^/(proc|sys|dev/pts)($|/)',
      fs_types_exclude: '^(ext4|proc|sysfs|devtmpfs|cgroup2|overlay|nsfs)$',
    });
    const c = createFilesystemCollector(config, fixturePaths, quietLog(), async () => fakeStats);
    const text = await collect(c);
    assert.deepEqual(mountpoints(text, 'lookout_filesystem_device_error'), [
      '/dev/shm',
      '/srv/backup',
      '/run',
    ]);
  });

  test('falls back to its own mount table (/proc/mounts) when 1/mounts is missing', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir, 'mounts'), '/dev/sda1 /data ext4 ro 0 0\n');
      const c = createFilesystemCollector(
        filesystemSchema.parse({}),
        { ...fixturePaths, procfs: dir },
        quietLog(),
        async () => fakeStats,
      );
      assert.equal(
        sampleLines(await collect(c), 'lookout_filesystem_readonly'),
        'lookout_filesystem_readonly{mountpoint="/data",device="/dev/sda1",fstype="ext4"} 1',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('no mount table at all fails the refresh, naming the file', async () => {
    const c = createFilesystemCollector(
      filesystemSchema.parse({}),
      { ...fixturePaths, procfs: '/nonexistent-proc' },
      quietLog(),
    );
    await assert.rejects(collect(c), { message: /nonexistent-proc\/mounts/ });
  });

  test('a hung statfs marks the mount stuck, is not repeated until it returns; a failing one is an error', async () => {
    const calls = new Map<string, number>();
    let release!: (s: StatFsResult) => void;
    const hung = new Promise<StatFsResult>((resolve) => (release = resolve));
    const statfs = async (path: string): Promise<StatFsResult> => {
      calls.set(path, (calls.get(path) ?? 0) + 1);
      if (path === '/srv/backup') return hung;
      if (path === '/mnt/my disk')
        throw Object.assign(new Error('EIO: i/o error, statfs'), { code: 'EIO' });
      return fakeStats;
    };
    const logLines: string[] = [];
    const c = createFilesystemCollector(
      filesystemSchema.parse({ statfs_timeout: '20ms' }),
      { ...fixturePaths, rootfs: '/' },
      quietLog(logLines),
      statfs,
    );
    const errors = (text: string) => sampleLines(text, 'lookout_filesystem_device_error');
    const sized = (text: string) => mountpoints(text, 'lookout_filesystem_size_bytes');
    const backupError = (text: string) =>
      sampleValue(text, 'lookout_filesystem_device_error', { mountpoint: '/srv/backup' });

    const first = await collect(c);
    assert.equal(
      errors(first),
      `lookout_filesystem_device_error{mountpoint="/",device="/dev/vda",fstype="ext4"} 0
lookout_filesystem_device_error{mountpoint="/mnt/my disk",device="/dev/vdb1",fstype="ext4"} 1
lookout_filesystem_device_error{mountpoint="/srv/backup",device="/dev/vdc",fstype="xfs"} 1
lookout_filesystem_device_error{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 0`,
    );
    assert.deepEqual(sized(first), ['/', '/run']);
    assert.deepEqual([...c.stuck()], ['/srv/backup']);
    assert.ok(
      logLines.some((l) => l.includes('statfs did not return') && l.includes('/srv/backup')),
    );

    // Still hung: not asked again, still an error; the failing mount is asked again.
    const second = await collect(c);
    assert.equal(calls.get('/srv/backup'), 1);
    assert.equal(calls.get('/mnt/my disk'), 2);
    assert.equal(backupError(second), 1);
    assert.deepEqual(sized(second), ['/', '/run']);

    // The hung call returns: the mount is asked again and reports sizes.
    release(fakeStats);
    await hung;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([...c.stuck()], []);
    const third = await collect(c);
    assert.equal(calls.get('/srv/backup'), 2);
    assert.deepEqual(sized(third), ['/', '/srv/backup', '/run']);
    assert.equal(backupError(third), 0);
  });

  test('defaults: node_exporter-like exclusions, statfs_timeout 2s, 15s/10s', () => {
    const c = filesystemSchema.parse({});
    assert.equal(c.statfs_timeout, 2000);
    assert.equal(c.interval, 15_000);
    assert.equal(c.timeout, 10_000);
    const mp = new RegExp(c.mount_points_exclude);
    const fs = new RegExp(c.fs_types_exclude);
    for (const p of ['/dev', '/dev/shm', '/proc', '/sys/fs/cgroup', '/var/lib/docker/overlay2/x'])
      assert.ok(mp.test(p), p);
    for (const p of ['/', '/home', '/devices', '/var/lib/docker', '/run', '/run/user/1000'])
      assert.ok(!mp.test(p), p);
    for (const t of ['overlay', 'cgroup', 'cgroup2', 'squashfs', 'nsfs']) assert.ok(fs.test(t), t);
    for (const t of ['ext4', 'xfs', 'tmpfs', 'nfs4', 'btrfs']) assert.ok(!fs.test(t), t);
    assert.equal(filesystemSchema.safeParse({ statfs_timeout: 2 }).success, false);
    assert.equal(filesystemSchema.safeParse({ fs_types_exclude: '[' }).success, false);
  });
});

const isRoot = process.getuid?.() === 0;

describe(
  'filesystem collector on this host (real tmpfs mounts)',
  { skip: !isRoot && 'needs root to mount tmpfs' },
  () => {
    let dir = '';
    let rw = '';
    let ro = '';
    before(async () => {
      dir = await tempDir();
      rw = join(dir, 'my disk');
      ro = join(dir, 'read only');
      await mkdir(rw);
      await mkdir(ro);
      await run('mount', ['-t', 'tmpfs', '-o', 'size=4m,nr_inodes=1000', 'lookout-test', rw]);
      await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'lookout-test-ro', ro]);
    });
    after(async () => {
      for (const m of [rw, ro]) await run('umount', [m]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    });

    test('a 4 MiB tmpfs at a path with a space: exact size, avail after writing 1 MiB, inodes, readonly', async () => {
      await writeFile(join(rw, 'one-mebibyte'), Buffer.alloc(1024 * 1024, 1));
      const c = createFilesystemCollector(
        filesystemSchema.parse({}),
        { procfs: '/proc', sysfs: '/sys', rootfs: '/' },
        quietLog(),
      );
      const text = await collect(c);
      const labels = { mountpoint: rw, device: 'lookout-test', fstype: 'tmpfs' };
      const roLabels = { mountpoint: ro, device: 'lookout-test-ro', fstype: 'tmpfs' };
      const want: Array<[string, Record<string, string>, number]> = [
        ['lookout_filesystem_size_bytes', labels, 4194304],
        ['lookout_filesystem_avail_bytes', labels, 3145728],
        ['lookout_filesystem_files', labels, 1000],
        // The root directory and the file.
        ['lookout_filesystem_files_free', labels, 998],
        ['lookout_filesystem_readonly', labels, 0],
        ['lookout_filesystem_device_error', labels, 0],
        ['lookout_filesystem_size_bytes', roLabels, 1048576],
        ['lookout_filesystem_readonly', roLabels, 1],
      ];
      for (const [name, l, value] of want) {
        assert.equal(
          sampleValue(text, name, l),
          value,
          `${name} ${l.mountpoint}\n${sampleLines(text, 'lookout_filesystem_size_bytes')}`,
        );
      }
      // The defaults exclude /proc, /sys, cgroups, /dev.
      const excluded = findSamples(text).filter((s) =>
        /^\/(proc|sys|dev)(\/|$)/.test(s.labels.mountpoint ?? ''),
      );
      assert.deepEqual(
        excluded.map((s) => s.line),
        [],
      );
    });

    test('a tmpfs mounted after the first refresh shows on the next, and goes once unmounted', async () => {
      const late = join(dir, 'late');
      await mkdir(late, { recursive: true });
      const c = createFilesystemCollector(
        filesystemSchema.parse({}),
        { procfs: '/proc', sysfs: '/sys', rootfs: '/' },
        quietLog(),
      );
      const labels = { mountpoint: late, device: 'lookout-test-late', fstype: 'tmpfs' };
      const size = async () =>
        sampleValue(await collect(c), 'lookout_filesystem_size_bytes', labels);
      assert.equal(await size(), undefined);
      await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'lookout-test-late', late]);
      try {
        assert.equal(await size(), 2097152);
      } finally {
        await run('umount', [late]);
      }
      assert.equal(await size(), undefined);
    });
  },
);

describe(
  'as an unprivileged user on a /proc mounted with hidepid (a child run as nobody)',
  {
    skip:
      !isRoot &&
      'needs root to mount a hidepid /proc in a private mount namespace and to run a child as nobody',
  },
  () => {
    // hidepid=1 ("noaccess"): every pid is listed, and another user's files refuse to be
    // read (EPERM), which is the branch the processes collector counts as unreadable and
    // the host collector answers by reading its own network namespace. The mount lives in
    // a private mount namespace (unshare -m) and goes with it; since Linux 5.8 its options
    // are its own, so the host's /proc is untouched.
    let out: { uid: number; listed: number; walks: string[]; host: string; log: string[] };
    before(async () => {
      const dir = await tempDir();
      try {
        await mkdir(join(dir, 'proc'));
        // nobody must be able to reach the mount point.
        await run('chmod', ['755', dir]);
        const { stdout } = await run(
          'unshare',
          [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            'mount -t proc -o hidepid=1 proc "$1" && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$2" --import tsx "$3" "$1"',
            'sh',
            join(dir, 'proc'),
            process.execPath,
            join(REPO, 'test/helpers/unprivileged-collect.ts'),
          ],
          { cwd: REPO, maxBuffer: 16 * 1024 * 1024 },
        );
        out = JSON.parse(stdout) as typeof out;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    test('processes: counts only what it may read, warns once with how many it may not', () => {
      assert.equal(out.uid, 65534);
      const hidden = out.log.filter((l) => l.includes('some processes cannot be read'));
      assert.equal(hidden.length, 1, out.log.join('\n'));
      assert.match(hidden[0]!, /level=warn/);
      const unreadable = Number(/unreadable=(\d+)/.exec(hidden[0]!)?.[1]);
      for (const text of out.walks) {
        const sum = findSamples(text, 'lookout_processes').reduce((a, s) => a + s.value, 0);
        // At least the child itself; PID 1 and root's processes are not nobody's.
        assert.ok(sum >= 1 && sum < out.listed, `${sum} counted of ${out.listed} listed`);
        assert.ok(
          (sampleValue(text, 'lookout_watched_processes', { name: 'node' }) ?? 0) >= 1,
          'the child counts itself',
        );
        const top = findSamples(text, 'lookout_top_process_resident_memory_bytes');
        assert.ok(top.some((s) => s.labels.name === 'node'));
      }
      const first = findSamples(out.walks[0]!, 'lookout_processes').reduce(
        (a, s) => a + s.value,
        0,
      );
      // Processes come and go between the listing and the walk; the two add up to about the listing.
      assert.ok(
        unreadable >= 1 && Math.abs(first + unreadable - out.listed) <= 5,
        `${first} + ${unreadable} vs ${out.listed}`,
      );
    });

    test("host: /proc/1/net refused (EPERM), so its own namespace's counters, with one warning naming why", async () => {
      const warned = out.log.filter((l) => l.includes("lookout's own network namespace"));
      assert.equal(warned.length, 1, out.log.join('\n'));
      assert.match(warned[0]!, /\/1\/net\/dev: (EPERM|EACCES)/);
      // The child shares this test's network namespace: the same devices, loopback excluded.
      const own = (await readFile('/proc/self/net/dev', 'utf8'))
        .split('\n')
        .slice(2)
        .map((l) => l.split(':')[0]!.trim())
        .filter((d) => d !== '' && d !== 'lo');
      assert.deepEqual(
        findSamples(out.host, 'lookout_network_receive_bytes_total').map((s) => s.labels.device),
        own,
      );
    });
  },
);
