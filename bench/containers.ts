/**
 * The containers collector against `docker stats --no-stream`, side by side in one run,
 * on a private dockerd with BENCH_CONTAINERS (20) running busybox containers:
 *
 * - one collection's wall time: lookout's collector (list, then inspect and a one-shot
 *   stats per container through the fan-out) in this process, and lookout serve's own
 *   refresh duration, against `docker stats --no-stream` for the same containers;
 * - the CPU each costs: the client's (this process for lookout's collector, the docker CLI
 *   by /usr/bin/time) and dockerd's, read from its threads' schedstat;
 * - lookout serve's RSS at idle with the containers collector on, and after
 *   BENCH_REFRESHES refreshes.
 *
 * `npm run bench:containers`; BENCH_SMOKE=1 runs 3 containers, one round.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { containersSchema, createContainersCollector } from '../src/collectors/containers.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { BUSYBOX_IMAGE, startBusyboxEngine } from '../test/helpers/busybox.js';
import { findSamples } from '../test/helpers/exposition.js';
import {
  cpuSeconds,
  mb,
  quantile,
  rssBytes,
  setting,
  sleep,
  startedAll,
  startLookoutAsNpmStart,
} from './lib.js';

const run = promisify(execFile);
const N = setting('BENCH_CONTAINERS', 20, 3);
const ROUNDS = setting('BENCH_ROUNDS', 7, 1);
const REFRESHES = setting('BENCH_REFRESHES', 20, 2);
const IDLE_MS = setting('BENCH_IDLE_MS', 10_000, 1000);

const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

const engine = await startBusyboxEngine('lkbench-');
const log = createLogger('error');
const http = new HttpClient({ connectionsPerOrigin: 32 });
let lookout: Awaited<ReturnType<typeof startLookoutAsNpmStart>> | undefined;
try {
  const names = Array.from({ length: N }, (_, i) => `c${String(i + 1).padStart(2, '0')}`);
  // Five docker CLIs at a time: the engine starts containers one by one anyway.
  for (let i = 0; i < names.length; i += 5)
    await Promise.all(
      names
        .slice(i, i + 5)
        .map((n) =>
          engine.docker(
            'run',
            '-d',
            '--network',
            'none',
            '--stop-timeout',
            '1',
            '-m',
            '64m',
            '--name',
            n,
            BUSYBOX_IMAGE,
            'sh',
            '-c',
            'while true; do sleep 1; done',
          ),
        ),
    );

  lookout = await startLookoutAsNpmStart(
    `collectors:\n  containers:\n    endpoint: ${engine.dockerd.host}\n    interval: 2s\n    timeout: 2s\n`,
  );
  await startedAll();
  await sleep(IDLE_MS);
  const rssIdle = await rssBytes(lookout.child.pid!);

  const collector = createContainersCollector(
    containersSchema.parse({ endpoint: engine.dockerd.host }),
    http,
    log,
  );
  const viaApi = createContainersCollector(
    containersSchema.parse({ endpoint: engine.dockerd.host, stats_source: 'api' }),
    http,
    log,
  );
  const dockerdPid = engine.dockerd.pid;
  const ours = { wall: [] as number[], cpu: [] as number[], daemon: [] as number[] };
  const theirs = { wall: [] as number[], cpu: [] as number[], daemon: [] as number[] };
  const api = { wall: [] as number[], cpu: [] as number[], daemon: [] as number[] };
  // One warm-up each: the first connection, the CLI's first read of its config.
  await collector.collect({
    signal: AbortSignal.timeout(30_000),
    deadline: performance.now() + 30_000,
    log,
  });
  await engine.docker('stats', '--no-stream', ...names);
  /** One collection by a collector in this process: its wall time, this process's CPU, dockerd's. */
  async function timedCollect(
    c: typeof collector,
    into: typeof ours,
    source: 'cgroup' | 'api',
  ): Promise<void> {
    const d0 = await cpuSeconds(dockerdPid);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await c.collect({ signal: AbortSignal.timeout(30_000), deadline: t0 + 30_000, log });
    into.wall.push(performance.now() - t0);
    const used = process.cpuUsage(c0);
    into.cpu.push((used.user + used.system) / 1000);
    into.daemon.push((await cpuSeconds(dockerdPid)) - d0);
    const read = c.lastSeen()!.containers.filter((x) => x.statsSource === source && !x.error);
    if (read.length !== N) throw new Error(`${read.length} of ${N} containers read (${source})`);
  }

  for (let r = 0; r < ROUNDS; r++) {
    // The same collection with stats_source api: the engine's one-shot stats. After a
    // pause, as lookout serve refreshes: the engine's stats collector is idle then.
    await sleep(1500);
    await timedCollect(viaApi, api, 'api');
    await timedCollect(collector, ours, 'cgroup');
    {
      const d0 = await cpuSeconds(dockerdPid);
      const t0 = performance.now();
      const { stderr, stdout } = await run(
        '/usr/bin/time',
        ['-f', 'time: %U %S', 'docker', 'stats', '--no-stream', ...names],
        { env: { ...process.env, DOCKER_HOST: engine.dockerd.host }, encoding: 'utf8' },
      );
      theirs.wall.push(performance.now() - t0);
      const [, u, s] = /time: ([\d.]+) ([\d.]+)/.exec(stderr) ?? [];
      theirs.cpu.push((Number(u) + Number(s)) * 1000);
      theirs.daemon.push((await cpuSeconds(dockerdPid)) - d0);
      const rows = stdout.trim().split('\n').length - 1;
      if (rows !== N) throw new Error(`docker stats showed ${rows} of ${N} containers`);
    }
  }

  // lookout serve refreshes every 2 s, right after a scrape: scrape as Prometheus would.
  const durations: number[] = [];
  for (let i = 0; i < REFRESHES; i++) {
    await sleep(2000);
    const text = await (await fetch(`${lookout.url}/metrics`)).text();
    const d = findSamples(text, 'lookout_collector_duration_seconds', {
      collector: 'containers',
    })[0];
    const ok = findSamples(text, 'lookout_collector_success', { collector: 'containers' })[0];
    if (ok?.value !== 1) throw new Error(`lookout serve: containers collector not succeeding`);
    if (d) durations.push(d.value * 1000);
  }
  const rssAfter = await rssBytes(lookout.child.pid!);

  const ms = (x: number) => `${x.toFixed(1)} ms`;
  console.log(`containers: ${N} running busybox containers, ${ROUNDS} rounds, medians`);
  console.log(
    `  one collection, wall   lookout ${ms(median(ours.wall))}   docker stats --no-stream ${ms(median(theirs.wall))}   ratio ${(median(ours.wall) / median(theirs.wall)).toFixed(3)} (target <= 0.35)`,
  );
  console.log(
    `  the same through the engine's one-shot stats (stats_source api) ${ms(median(api.wall))}   ratio ${(median(api.wall) / median(theirs.wall)).toFixed(3)}; client CPU ${ms(median(api.cpu))}, dockerd CPU ${ms(median(api.daemon) * 1000)}`,
  );
  console.log(
    `  lookout serve's own refresh (lookout_collector_duration_seconds, ${durations.length} refreshes): median ${ms(median(durations))}`,
  );
  console.log(
    `  client CPU              lookout ${ms(median(ours.cpu))}   docker CLI ${ms(median(theirs.cpu))}   ratio ${(median(ours.cpu) / median(theirs.cpu)).toFixed(3)}`,
  );
  console.log(
    `  dockerd CPU             for lookout ${ms(median(ours.daemon) * 1000)}   for docker stats ${ms(median(theirs.daemon) * 1000)}`,
  );
  console.log(
    `  lookout serve RSS       idle ${mb(rssIdle)} MB   after ${durations.length} refreshes of ${N} containers ${mb(rssAfter)} MB`,
  );
} finally {
  await lookout?.stop();
  await http.close();
  await engine.stop();
}
