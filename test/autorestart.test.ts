/**
 * Auto-restart against a real dockerd (its own socket and data root, busybox imported,
 * `--network none`), driven by the real containers collector (and the probes collector)
 * in lookout's runner, built from a config as `lookout serve` builds it: restarted after N
 * failed health checks in a row and not before, never inside the start period, at most M
 * times an hour with the budget kept across a restart of lookout, paused (and
 * not_recovered) when restarts do not help, escalated to kill + start when the engine
 * refuses the restart, and shown but never done by `lookout status` and `lookout check`.
 * The evidence is the engine's own: its event log (health-check execs, restarts) and
 * StartedAt, not lookout's counters alone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { collectorDefinitions } from '../src/collectors/index.js';
import { parseConfig } from '../src/collectors/config.js';
import { STATE_FILE } from '../src/collectors/containers/autorestart.js';
import { buildRunner } from '../src/exporter/build.js';
import { createLogger } from '../src/lib/log.js';
import type { StorageMode } from '../src/lib/storage.js';
import { BUSYBOX_IMAGE, startBusyboxEngine, type BusyboxEngine } from './helpers/busybox.js';
import { seriesValue } from './helpers/exposition.js';
import { eventually, freePort, REPO, tempDir } from './helpers/procs.js';

const quiet = process.env.AR_DEBUG ? createLogger('debug') : createLogger('error', {}, () => {});

let engine: BusyboxEngine;

async function docker(...args: string[]): Promise<string> {
  return (await engine.docker(...args)).stdout.trim();
}

interface Inspected {
  RestartCount: number;
  State: { StartedAt: string; Health?: { Status: string; FailingStreak: number } };
}

async function inspect(name: string): Promise<Inspected> {
  return JSON.parse(await docker('inspect', '--format', '{{json .}}', name)) as Inspected;
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

/** Unhealthy until its first restart, healthy after it (its writable layer keeps /restarted). */
const FIXED_BY_RESTART =
  'if test -f /restarted; then echo > /ok; else echo > /restarted; fi; sleep 300';

/** A container with a health check running `check` every second, 3 retries (a 3 s recovery window). */
async function healthChecked(
  name: string,
  opts: { check: string; cmd?: string; label?: boolean },
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
    // Long: a check that times out leaves no exec_die in the engine's event log, which the
    // first test counts checks by (Docker counts a timeout as a failure).
    '--health-timeout',
    '10s',
    '--health-retries',
    '3',
    BUSYBOX_IMAGE,
    '/bin/sh',
    '-c',
    opts.cmd ?? 'sleep 300',
  );
}

/** The config document: only the containers collector (and probes when given) enabled. */
function configDoc(opts: {
  storage: string;
  endpoint?: string;
  autorestart?: Record<string, unknown>;
  actions?: boolean;
  probes?: { name: string; address: string }[];
}) {
  const collectors: Record<string, unknown> = {};
  for (const name of collectorDefinitions().keys()) collectors[name] = { enabled: false };
  collectors.containers = {
    enabled: true,
    // A restart (inspect, restart with stop timeout 0, inspect) must fit in the timeout.
    interval: '5s',
    timeout: '5s',
    endpoint: opts.endpoint ?? engine.dockerd.host,
    stats: false,
    actions: { enabled: opts.actions ?? true },
    autorestart: { backoff: '1s', stop_timeout: '1s', ...opts.autorestart },
  };
  if (opts.probes)
    collectors.probes = {
      enabled: true,
      interval: '500ms',
      timeout: '400ms',
      targets: opts.probes.map((p) => ({ kind: 'tcp', name: p.name, address: p.address })),
    };
  return { storage: { path: opts.storage }, collectors };
}

/** lookout's runner as `serve` builds it (read-write storage, actions run), or as status does. */
async function lookout(doc: ReturnType<typeof configDoc>, mode: StorageMode = 'read-write') {
  const { runner, http } = await buildRunner(parseConfig(doc), quiet, { storage: mode });
  return {
    runner,
    start: () => runner.start({ actions: mode === 'read-write' }),
    metrics: async () => (await runner.exposition('prometheus')).toString(),
    /** The exposition, once `series` has `value` (within 60 s). */
    async when(series: string, value: number, what: string): Promise<string> {
      return eventually(
        async () => {
          const t = (await runner.exposition('prometheus')).toString();
          return seriesValue(t, series) === value && t;
        },
        60_000,
        what,
      );
    },
    stop: async () => {
      await runner.stop();
      await http.close();
    },
  };
}

/** The built CLI (`npm run build` first). */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(REPO, 'dist/cli.js'), ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

const v = (text: string, series: string) => seriesValue(text, series);

before(async () => {
  engine = await startBusyboxEngine('lkar-');
});

after(async () => {
  await engine?.stop();
});

describe('auto-restart on a real dockerd', () => {
  // Each test's containers go with it: a later test's lookout must not see them.
  afterEach(async () => {
    const ids = (await docker('ps', '-aq')).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
  });

  it('restarts a container after N failed health checks in a row, not before, and counts it recovered when healthy again', async () => {
    const storage = await tempDir();
    await healthChecked('fix-by-restart', { check: 'test -f /ok', cmd: FIXED_BY_RESTART });
    const since = Math.floor(Date.now() / 1000) - 1;
    const l = await lookout(configDoc({ storage, autorestart: { failures: 3 } }));
    try {
      await l.start();
      const text = await l.when(
        'lookout_container_remediation_outcomes_total{name="fix-by-restart",outcome="recovered"}',
        1,
        'the restart and its recovery',
      );
      const restarts = (result: string) =>
        v(
          text,
          `lookout_container_remediation_restarts_total{name="fix-by-restart",result="${result}"}`,
        );
      assert.equal(restarts('restarted'), 1);
      assert.equal(restarts('failed'), 0);
      assert.equal(v(text, 'lookout_container_remediation_enabled{name="fix-by-restart"}'), 1);
      assert.equal(v(text, 'lookout_container_remediation_paused{name="fix-by-restart"}'), 0);
      assert.equal((await inspect('fix-by-restart')).State.Health?.Status, 'healthy');

      // The engine's own timeline: the health checks that failed in a row before the restart.
      const timeline = await events('fix-by-restart', since);
      assert.ok(
        timeline.some((e) => e.action === 'restart'),
        'the engine logged a restart',
      );
      // The restart begins with its kill; a check cut short by it dies after that.
      const restartAt = timeline.findIndex((e) => ['kill', 'die', 'restart'].includes(e.action));
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
    // A port nothing listens on: the probe fails from its first round.
    const closed = `127.0.0.1:${await freePort()}`;
    await docker(
      'run',
      '-d',
      '--network',
      'none',
      '--name',
      'slow-start',
      BUSYBOX_IMAGE,
      'sleep',
      '300',
    );
    const started = Date.parse((await inspect('slow-start')).State.StartedAt);
    const since = Math.floor(started / 1000) - 1;
    const l = await lookout(
      configDoc({
        storage,
        autorestart: { failures: 2, start_period: '6s', probes: { 'slow-start': 'api' } },
        probes: [{ name: 'api', address: closed }],
      }),
    );
    try {
      await l.start();
      await eventually(
        async () => (await restartEvents('slow-start', since)) >= 1,
        60_000,
        'a restart',
      );
      const restarted = Date.parse((await inspect('slow-start')).State.StartedAt);
      assert.ok(
        restarted - started >= 6000,
        `restarted ${restarted - started} ms after its start, inside the 6 s start period`,
      );
      const text = await l.when(
        'lookout_container_remediation_restarts_total{name="slow-start",result="restarted"}',
        1,
        'the restart counted',
      );
      assert.equal(v(text, 'lookout_container_remediation_enabled{name="slow-start"}'), 1);
    } finally {
      await l.stop();
    }
  });

  it('restarts at most M times an hour, keeps that budget across a restart of lookout, then pauses with not_recovered; status shows the pause and restarts nothing', async () => {
    const storage = await tempDir();
    await healthChecked('always-bad', { check: 'false' });
    const since = Math.floor(Date.now() / 1000) - 1;
    const doc = configDoc({ storage, autorestart: { failures: 2, max_restarts_per_hour: 2 } });

    // The first lookout restarts it once and is stopped.
    const first = await lookout(doc);
    try {
      await first.start();
      await eventually(
        async () => (await restartEvents('always-bad', since)) === 1,
        60_000,
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
    const second = await lookout(doc);
    try {
      await second.start();
      const text = await second.when(
        'lookout_container_remediation_paused{name="always-bad"}',
        1,
        'the pause',
      );
      const count = (family: string, labels: string) =>
        v(text, `lookout_container_remediation_${family}_total{name="always-bad",${labels}}`);
      assert.equal(count('restarts', 'result="restarted"'), 1);
      assert.equal(count('restarts', 'result="skipped"'), 1);
      assert.ok((count('outcomes', 'outcome="not_recovered"') ?? 0) >= 1);
      assert.equal(count('outcomes', 'outcome="recovered"'), 0);
      // Well past the back-off, with many more failed checks: no third restart.
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

    // `lookout status` and `lookout check`: show the pause, restart nothing, write nothing.
    const file = join(await tempDir(), 'lookout.yml');
    await writeFile(file, JSON.stringify(doc));
    const before = await inspect('always-bad');
    const stateBefore = await readFile(join(storage, 'containers', STATE_FILE), 'utf8');
    for (const command of ['status', 'check']) {
      const r = await cli([command, '--config', file]);
      assert.match(
        r.stdout,
        /^ {4}leave always-bad alone: paused: 2 restarts this hour did not help/m,
        `${command}: ${r.stdout}${r.stderr}`,
      );
      assert.doesNotMatch(r.stdout, /would restart always-bad/);
    }
    const afterStatus = await inspect('always-bad');
    assert.equal(afterStatus.State.StartedAt, before.State.StartedAt);
    assert.equal(afterStatus.RestartCount, before.RestartCount);
    assert.equal(await readFile(join(storage, 'containers', STATE_FILE), 'utf8'), stateBefore);
  });

  it('lookout status and check say "would restart" and neither restart it nor make any state', async () => {
    const storage = join(await tempDir(), 'never-made');
    await healthChecked('due-now', { check: 'false' });
    await eventually(
      async () => ((await inspect('due-now')).State.Health?.FailingStreak ?? 0) >= 2,
      20_000,
      'two failed checks',
    );
    const before = await inspect('due-now');
    const file = join(await tempDir(), 'lookout.yml');
    await writeFile(file, JSON.stringify(configDoc({ storage, autorestart: { failures: 2 } })));
    for (const command of ['status', 'check']) {
      const r = await cli([command, '--config', file]);
      assert.match(
        r.stdout,
        /^ {2}containers restart: restart a container that failed its health check 2 times in a row/m,
        `${command}: ${r.stdout}${r.stderr}`,
      );
      assert.match(r.stdout, /^ {4}would restart due-now: unhealthy \d+ times in a row$/m);
    }
    const afterStatus = await inspect('due-now');
    assert.equal(afterStatus.State.StartedAt, before.State.StartedAt, 'not restarted');
    assert.equal(afterStatus.RestartCount, before.RestartCount);
    assert.equal(existsSync(storage), false, 'read-only made no state directory');
  });

  it('escalates to kill and start when the engine refuses the restart', async () => {
    const storage = await tempDir();
    await healthChecked('refused', { check: 'test -f /ok', cmd: FIXED_BY_RESTART });
    const since = Math.floor(Date.now() / 1000) - 1;
    // A socket proxy that refuses POST .../restart and passes everything else on.
    const proxySocket = join(engine.dir, 'refuse.sock');
    const proxy: Server = createServer((req, res) => {
      if (req.method === 'POST' && /\/restart/.test(req.url ?? '')) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('restart refused by policy');
        return;
      }
      const up = request(
        {
          socketPath: engine.dockerd.socket,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          // The event stream's headers now, as a real proxy sends them, not with its first event.
          res.flushHeaders();
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(proxySocket, r));
    const l = await lookout(
      configDoc({ storage, endpoint: `unix://${proxySocket}`, autorestart: { failures: 2 } }),
    );
    try {
      await l.start();
      const text = await l.when(
        'lookout_container_remediation_outcomes_total{name="refused",outcome="recovered"}',
        1,
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
