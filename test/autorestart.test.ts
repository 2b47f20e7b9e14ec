/**
 * Auto-restart against a real dockerd (its own socket and data root, busybox imported,
 * `--network none`): restarted after N failed health checks in a row and not before,
 * never inside the start period, at most M times an hour with the budget kept across a
 * restart of lookout, paused (and not_recovered) when restarts do not help, escalated to
 * kill + start when the engine refuses the restart, and shown but never done by what
 * `lookout status` and `lookout check` print. The evidence is the engine's own: its event
 * log (health-check execs, restarts) and StartedAt, not lookout's counters alone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, copyFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import type { Collector } from '../src/collectors/collector.js';
import {
  Autorestart,
  fromInspect,
  STATE_FILE,
  autorestartSchema,
  type AutorestartConfig,
  type InspectLike,
  type RestartEngine,
} from '../src/collectors/containers/autorestart.js';
import { createProbesCollector, probeMetricNames } from '../src/collectors/probes.js';
import { Runner, type RunnerEntry } from '../src/exporter/runner.js';
import { HttpClient } from '../src/lib/http.js';
import { createLogger } from '../src/lib/log.js';
import { openStateDirectory, type StorageMode } from '../src/lib/storage.js';
import { formatActions } from '../src/status.js';
import { startDockerd, withDocker, type Dockerd } from './helpers/dockerd.js';
import { seriesValue } from './helpers/exposition.js';
import { eventually, freePort, tempDir } from './helpers/procs.js';

const run = promisify(execFile);
const quiet = process.env.AR_DEBUG ? createLogger('debug') : createLogger('error', {}, () => {});
const IMAGE = 'lookout-test/bb:autorestart';

let dockerd: Dockerd;
let dir: string;

/** One HTTP call on a unix socket; JSON answers parsed, an error status thrown. */
function call(
  socket: string,
  method: string,
  path: string,
  signal?: AbortSignal,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status >= 400)
          reject(Object.assign(new Error(`${method} ${path}: ${status} ${body}`), { status }));
        else
          resolve(body && res.headers['content-type']?.includes('json') ? JSON.parse(body) : body);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The engine calls auto-restart makes, straight on a socket (the engine's or a proxy's). */
function engineOn(
  socket: string,
): RestartEngine & { list(signal: AbortSignal): Promise<InspectLike[]> } {
  const c = (id: string) => `/containers/${encodeURIComponent(id)}`;
  return {
    inspect: async (id, signal) =>
      (await call(socket, 'GET', `${c(id)}/json`, signal)) as InspectLike,
    restart: async (id, { timeoutSeconds }, signal) => {
      await call(socket, 'POST', `${c(id)}/restart?t=${timeoutSeconds ?? 10}`, signal);
    },
    kill: async (id, _opts, signal) => {
      await call(socket, 'POST', `${c(id)}/kill`, signal);
    },
    start: async (id, signal) => {
      await call(socket, 'POST', `${c(id)}/start`, signal);
    },
    async list(signal) {
      const all = (await call(socket, 'GET', '/containers/json?all=1', signal)) as { Id: string }[];
      const out: InspectLike[] = [];
      for (const s of all)
        out.push(await this.inspect(s.Id, signal).catch(() => undefined as unknown as InspectLike));
      return out.filter((x) => x !== undefined);
    },
  };
}

async function docker(...args: string[]): Promise<string> {
  return (await withDocker(dockerd.host, 'docker', args)).stdout.trim();
}

async function inspect(name: string): Promise<InspectLike & { RestartCount: number }> {
  return JSON.parse(await docker('inspect', '--format', '{{json .}}', name));
}

/** The engine's events for one container since `since` (unix seconds), oldest first. */
async function events(
  name: string,
  since: number,
): Promise<{ action: string; exitCode?: string; t: bigint }[]> {
  const out = await docker(
    'events',
    '--since',
    String(since),
    '--until',
    String(Math.ceil(Date.now() / 1000) + 1),
    '--filter',
    `container=${name}`,
    '--format',
    '{{json .}}',
  );
  return out
    .split('\n')
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          Action: string;
          timeNano: number;
          Actor: { Attributes: Record<string, string> };
        },
    )
    .map((e) => ({
      action: e.Action,
      exitCode: e.Actor.Attributes.exitCode,
      t: BigInt(e.timeNano),
    }))
    .sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
}

const restartEvents = async (name: string, since: number) =>
  (await events(name, since)).filter((e) => e.action === 'restart').length;

/** A container with a health check running `check` every second, 3 retries (a 3 s recovery window). */
async function healthChecked(
  name: string,
  opts: { check: string; cmd?: string; startPeriod?: string; label?: boolean },
): Promise<string> {
  return docker(
    'run',
    '-d',
    '--network',
    'none',
    '--name',
    name,
    ...(opts.label === false ? [] : ['--label', 'lookout.autorestart=true']),
    '--health-cmd',
    opts.check,
    '--health-interval',
    '1s',
    '--health-timeout',
    '1s',
    '--health-retries',
    '3',
    ...(opts.startPeriod ? ['--health-start-period', opts.startPeriod] : []),
    IMAGE,
    '/bin/sh',
    '-c',
    opts.cmd ?? 'sleep 300',
  );
}

function config(over: Partial<Record<keyof AutorestartConfig, unknown>> = {}): AutorestartConfig {
  return autorestartSchema.parse({ backoff: '1s', stop_timeout: '1s', ...over });
}

/**
 * lookout's runner with what the containers collector does for auto-restart: each
 * refresh inspects every container and hands them to auto-restart; its `restart` action
 * runs under "serve" (actions: true). Optionally the probes collector beside it.
 */
async function lookout(opts: {
  cfg: AutorestartConfig;
  storage: string;
  mode?: StorageMode;
  serve?: boolean;
  socket?: string;
  probes?: { name: string; address: string }[];
}) {
  const registry = new Registry();
  const mode = opts.mode ?? 'read-write';
  const serve = opts.serve ?? true;
  const engine = engineOn(opts.socket ?? dockerd.socket);
  const http = new HttpClient();
  const probes = opts.probes
    ? createProbesCollector(
        {
          timeout: 400,
          concurrency: 4,
          targets: opts.probes.map((p) => ({ kind: 'tcp', name: p.name, address: p.address })),
        },
        http,
        quiet,
      )
    : undefined;
  const autorestart = new Autorestart({
    config: opts.cfg,
    actionsEnabled: serve,
    registry,
    log: quiet,
    stateMode: mode,
    stateDirectory: () => openStateDirectory(opts.storage, 'containers', mode),
    engine,
    intervalMs: 500,
    timeoutMs: 5000,
    probeFailures: probes ? () => probes.failureCounts() : undefined,
  });
  const collector: Collector = {
    async collect(ctx) {
      await autorestart.observe((await engine.list(ctx.signal)).map(fromInspect));
      return registry;
    },
    actions: [autorestart.action],
  };
  const entries: RunnerEntry[] = [
    {
      name: 'containers',
      description: 'test',
      metrics: ['lookout_container_*'],
      collector,
      intervalMs: 500,
      timeoutMs: 5000,
      actions: { enabled: serve, max_per_hour: 60 },
    },
  ];
  if (probes)
    entries.unshift({
      name: 'probes',
      description: 'test',
      metrics: probeMetricNames(),
      collector: probes,
      intervalMs: 500,
      timeoutMs: 1000,
    });
  const runner = new Runner(entries, quiet, 'test');
  return {
    runner,
    autorestart,
    start: () => runner.start({ actions: serve }),
    metrics: async () => (await runner.exposition('prometheus')).toString(),
    stop: async () => {
      await runner.stop();
      await http.close();
    },
  };
}

const v = (text: string, series: string) => seriesValue(text, series);

before(async () => {
  dir = await tempDir('lookout-ar-');
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'));
  await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const tool of ['sh', 'sleep', 'test', '[', 'touch', 'rm', 'false', 'true'])
    await symlink('busybox', join(rootfs, 'bin', tool));
  await run('tar', ['-C', rootfs, '-cf', join(dir, 'bb.tar'), '.']);
  dockerd = await startDockerd({
    dir: join(dir, 'd'),
    dataRoot: join(dir, 'data'),
    noBridge: true,
  });
  await withDocker(dockerd.host, 'docker', ['import', join(dir, 'bb.tar'), IMAGE]);
});

after(async () => {
  await dockerd?.stop();
  await rm(dir, { recursive: true, force: true }).catch(() => {});
});

describe('auto-restart on a real dockerd', () => {
  // Each test's containers go with it: a later test's lookout must not see them.
  afterEach(async () => {
    const ids = (await docker('ps', '-aq')).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
  });

  it('restarts a container after N failed health checks in a row, not before, and counts it recovered when healthy again', async () => {
    const storage = await tempDir();
    // Unhealthy until its first restart, healthy after it.
    await healthChecked('fix-by-restart', {
      check: 'test -f /ok',
      cmd: 'if [ -f /restarted ]; then touch /ok; else touch /restarted; fi; sleep 300',
    });
    const since = Math.floor(Date.now() / 1000) - 1;
    const l = await lookout({ cfg: config({ failures: 3 }), storage });
    try {
      await l.start();
      const text = await eventually(
        async () => {
          const t = await l.metrics();
          return (
            v(
              t,
              'lookout_container_remediation_outcomes_total{name="fix-by-restart",outcome="recovered"}',
            ) === 1 && t
          );
        },
        30_000,
        'the restart and its recovery',
      );
      assert.equal(
        v(
          text,
          'lookout_container_remediation_restarts_total{name="fix-by-restart",result="restarted"}',
        ),
        1,
      );
      assert.equal(
        v(
          text,
          'lookout_container_remediation_restarts_total{name="fix-by-restart",result="failed"}',
        ),
        0,
      );
      assert.equal(v(text, 'lookout_container_remediation_enabled{name="fix-by-restart"}'), 1);
      assert.equal(v(text, 'lookout_container_remediation_paused{name="fix-by-restart"}'), 0);
      assert.equal((await inspect('fix-by-restart')).State.Health?.Status, 'healthy');

      // The engine's own timeline: the health checks that failed in a row before the restart.
      const timeline = await events('fix-by-restart', since);
      const restartAt = timeline.findIndex((e) => e.action === 'restart');
      assert.ok(restartAt > 0, 'the engine logged a restart');
      const checksBefore = timeline
        .slice(0, restartAt)
        .filter((e) => e.action === 'exec_die')
        .map((e) => e.exitCode);
      assert.ok(checksBefore.length >= 3, `only ${checksBefore.length} checks before the restart`);
      assert.ok(
        checksBefore.every((c) => c === '1'),
        'every check before it failed',
      );
      assert.equal(await restartEvents('fix-by-restart', since), 1, 'restarted once');
    } finally {
      await l.stop();
    }
  });

  it('does not restart inside the start period: a container watched through a failing probe waits it out', async () => {
    const storage = await tempDir();
    // A port nothing listens on: the probe fails from the first round.
    const closed = `127.0.0.1:${await freePort()}`;
    await docker(
      'run',
      '-d',
      '--network',
      'none',
      '--name',
      'slow-start',
      IMAGE,
      '/bin/sleep',
      '300',
    );
    const started = Date.parse((await inspect('slow-start')).State.StartedAt);
    const since = Math.floor(started / 1000) - 1;
    const l = await lookout({
      cfg: config({ failures: 2, start_period: '6s', probes: { 'slow-start': 'api' } }),
      storage,
      probes: [{ name: 'api', address: closed }],
    });
    try {
      await l.start();
      await eventually(
        async () => (await restartEvents('slow-start', since)) >= 1,
        30_000,
        'a restart',
      );
      const restarted = Date.parse((await inspect('slow-start')).State.StartedAt);
      assert.ok(
        restarted - started >= 6000,
        `restarted ${restarted - started} ms after its start, inside the 6 s start period`,
      );
      const text = await l.metrics();
      assert.equal(
        v(
          text,
          'lookout_container_remediation_restarts_total{name="slow-start",result="restarted"}',
        ),
        1,
      );
    } finally {
      await l.stop();
    }
  });

  it('restarts at most M times an hour, keeps that budget across a restart of lookout, then pauses with not_recovered; status shows the pause and restarts nothing', async () => {
    const storage = await tempDir();
    await healthChecked('always-bad', { check: 'false' });
    const since = Math.floor(Date.now() / 1000) - 1;
    const cfg = config({ failures: 2, max_restarts_per_hour: 2 });

    // The first lookout restarts it once and is stopped.
    const first = await lookout({ cfg, storage });
    try {
      await first.start();
      await eventually(
        async () => (await restartEvents('always-bad', since)) === 1,
        30_000,
        'the first restart',
      );
    } finally {
      await first.stop();
    }
    const kept = JSON.parse(await readFile(join(storage, 'containers', STATE_FILE), 'utf8'));
    assert.equal(
      kept.containers['always-bad'].restarts.length,
      1,
      'the restart is in the state file',
    );

    // A new lookout on the same storage: one restart left in this hour, then the pause.
    const second = await lookout({ cfg, storage });
    try {
      await second.start();
      const text = await eventually(
        async () => {
          const t = await second.metrics();
          return v(t, 'lookout_container_remediation_paused{name="always-bad"}') === 1 && t;
        },
        30_000,
        'the pause',
      );
      assert.equal(
        v(
          text,
          'lookout_container_remediation_restarts_total{name="always-bad",result="restarted"}',
        ),
        1,
      );
      assert.equal(
        v(text, 'lookout_container_remediation_restarts_total{name="always-bad",result="skipped"}'),
        1,
      );
      assert.ok(
        (v(
          text,
          'lookout_container_remediation_outcomes_total{name="always-bad",outcome="not_recovered"}',
        ) ?? 0) >= 1,
      );
      assert.equal(
        v(
          text,
          'lookout_container_remediation_outcomes_total{name="always-bad",outcome="recovered"}',
        ),
        0,
      );
      // Well past the back-off and many more failed checks: no third restart.
      await new Promise((r) => setTimeout(r, 5000));
      assert.equal(
        await restartEvents('always-bad', since),
        2,
        'two restarts in all, across both lookouts',
      );
      assert.equal(
        v(await second.metrics(), 'lookout_container_remediation_paused{name="always-bad"}'),
        1,
      );
    } finally {
      await second.stop();
    }

    // `lookout status` (read-only, no serve): shows the pause, touches nothing.
    const before = await inspect('always-bad');
    const status = await lookout({ cfg, storage, mode: 'read-only', serve: false });
    try {
      await status.runner.collectOnce();
      const printed = formatActions(status.runner.actionReports());
      assert.match(
        printed,
        /^ {4}leave always-bad alone: paused: 2 restarts this hour did not help/m,
      );
      assert.doesNotMatch(printed, /would restart always-bad/);
    } finally {
      await status.stop();
    }
    const afterStatus = await inspect('always-bad');
    assert.equal(afterStatus.State.StartedAt, before.State.StartedAt);
    assert.equal(afterStatus.RestartCount, before.RestartCount);
  });

  it('status and check show "would restart" from a read-only look, and neither restart nor write anything', async () => {
    const storage = join(await tempDir(), 'never-made');
    await healthChecked('due-now', { check: 'false' });
    await eventually(
      async () => ((await inspect('due-now')).State.Health?.FailingStreak ?? 0) >= 2,
      20_000,
      'two failed checks',
    );
    const before = await inspect('due-now');
    const l = await lookout({
      cfg: config({ failures: 2 }),
      storage,
      mode: 'read-only',
      serve: false,
    });
    try {
      await l.start();
      for (let i = 0; i < 3; i++) await l.runner.collectOnce();
      const [report] = l.runner.actionReports();
      const plan = report?.plans?.find((p) => p.target === 'due-now');
      assert.equal(plan?.what, 'restart due-now');
      assert.match(plan?.why ?? '', /^unhealthy \d+ times in a row$/);
      assert.match(
        formatActions(l.runner.actionReports()),
        /^ {4}would restart due-now: unhealthy \d+ times in a row$/m,
      );
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await l.stop();
    }
    const afterStatus = await inspect('due-now');
    assert.equal(afterStatus.State.StartedAt, before.State.StartedAt, 'not restarted');
    assert.equal(afterStatus.RestartCount, before.RestartCount);
    assert.equal(existsSync(storage), false, 'read-only made no state directory');
  });

  it('escalates to kill and start when the engine refuses the restart', async () => {
    const storage = await tempDir();
    await healthChecked('refused', {
      check: 'test -f /ok',
      cmd: 'if [ -f /restarted ]; then touch /ok; else touch /restarted; fi; sleep 300',
    });
    const since = Math.floor(Date.now() / 1000) - 1;
    // A socket proxy that refuses POST .../restart and passes everything else on.
    const proxySocket = join(dir, 'refuse-restart.sock');
    const proxy: Server = createServer((req, res) => {
      if (req.method === 'POST' && /\/restart/.test(req.url ?? '')) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('restart refused by policy');
        return;
      }
      const up = request(
        { socketPath: dockerd.socket, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(proxySocket, r));
    const l = await lookout({ cfg: config({ failures: 2 }), storage, socket: proxySocket });
    try {
      await l.start();
      const text = await eventually(
        async () => {
          const t = await l.metrics();
          return (
            v(
              t,
              'lookout_container_remediation_outcomes_total{name="refused",outcome="recovered"}',
            ) === 1 && t
          );
        },
        30_000,
        'kill, start and recovery',
      );
      assert.equal(
        v(text, 'lookout_container_remediation_restarts_total{name="refused",result="restarted"}'),
        1,
      );
      const actions = (await events('refused', since)).map((e) => e.action);
      assert.equal(actions.filter((a) => a === 'restart').length, 0, 'no restart got through');
      assert.ok(actions.includes('kill'), 'killed');
      assert.equal(actions.filter((a) => a === 'start').length, 2, 'started, then started again');
    } finally {
      await l.stop();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
