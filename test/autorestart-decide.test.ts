/**
 * Auto-restart's reading of an inspect answer, and the decisions that need an engine
 * nobody here runs: Podman's --health-on-failure (Config.HealthcheckOnFailureAction, in
 * Podman's inspect; Docker has no such field) and a container with no health signal.
 * Parser-level: the engine is a stub that fails the test if it is ever called. The real
 * decisions on a real dockerd are in autorestart.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  Autorestart,
  STATE_FILE,
  autorestartSchema,
  fromInspect,
  type InspectLike,
  type RestartEngine,
} from '../src/collectors/containers/autorestart.js';
import { createLogger } from '../src/lib/log.js';
import { seriesValue } from './helpers/exposition.js';

const never = async (): Promise<never> => {
  throw new Error('the engine was called');
};
const engine: RestartEngine = { inspect: never, restart: never, kill: never, start: never };

/** Podman's inspect of a container with a failing health check and --health-on-failure=restart. */
const podman: InspectLike = {
  Id: 'c0ffee',
  Name: 'web-1',
  Config: {
    Labels: { 'lookout.autorestart': 'true' },
    Healthcheck: {
      Test: ['CMD-SHELL', 'curl -f http://localhost/'],
      Interval: 2_000_000_000,
      Timeout: 1_000_000_000,
      StartPeriod: 10_000_000_000,
      Retries: 2,
    },
    HealthcheckOnFailureAction: 'restart',
  },
  State: {
    Status: 'running',
    Running: true,
    Restarting: false,
    StartedAt: '2026-12-06T09:00:00.123456789Z',
    Health: { Status: 'unhealthy', FailingStreak: 7 },
  },
};

function autorestart(
  log = createLogger('error', {}, () => {}),
  stateDirectory?: () => Promise<string>,
) {
  const registry = new Registry();
  const a = new Autorestart({
    config: autorestartSchema.parse({}),
    actionsEnabled: true,
    registry,
    log,
    stateMode: 'read-only',
    ...(stateDirectory === undefined ? {} : { stateDirectory }),
    engine,
    intervalMs: 15_000,
    timeoutMs: 10_000,
    now: () => Date.parse('2026-12-06T10:00:00Z'),
  });
  return { a, metrics: async () => registry.metrics() };
}

/** web-1 as Docker shows it: unhealthy 7 times in a row, started an hour ago, no Podman action. */
const failing = fromInspect({
  ...podman,
  Config: { ...podman.Config, HealthcheckOnFailureAction: undefined },
});

/**
 * A state directory whose file says web-1 was restarted 3 times (the default budget) in the
 * last hour: the next refresh that sees it failing pauses it.
 */
async function budgetSpent(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lkard-'));
  const now = Date.parse('2026-12-06T10:00:00Z');
  const restarts = [30, 20, 10].map((min) => now - min * 60_000);
  await writeFile(
    join(dir, STATE_FILE),
    JSON.stringify({ version: 1, containers: { 'web-1': { restarts } } }),
  );
  return dir;
}

describe('auto-restart reads an inspect answer', () => {
  it('takes name, start, health, the health check (ns to ms) and Podman’s on-failure action', () => {
    const c = fromInspect(podman);
    assert.equal(c.name, 'web-1');
    assert.equal(c.startedAtMs, Date.parse('2026-12-06T09:00:00.123Z'));
    assert.deepEqual(c.health, { status: 'unhealthy', failingStreak: 7 });
    assert.deepEqual(c.healthcheck, { intervalMs: 2000, startPeriodMs: 10_000, retries: 2 });
    assert.equal(c.onFailure, 'restart');
  });

  it("fills in Docker's defaults, and reads no health check where Test is NONE", () => {
    const c = fromInspect({
      ...podman,
      Name: '/web-2',
      Config: { Labels: null, Healthcheck: { Test: ['CMD', 'true'] } },
      State: { ...podman.State, StartedAt: '0001-01-01T00:00:00Z' },
    });
    assert.equal(c.name, 'web-2');
    assert.equal(c.startedAtMs, undefined);
    assert.deepEqual(c.healthcheck, { intervalMs: 30_000, startPeriodMs: 0, retries: 3 });
    assert.equal(c.onFailure, undefined);
    const none = fromInspect({ ...podman, Config: { Healthcheck: { Test: ['NONE'] } } });
    assert.equal(none.health, undefined);
    assert.equal(none.healthcheck, undefined);
  });
});

describe('auto-restart decides', () => {
  it('leaves a container with Podman’s --health-on-failure to Podman, says why once, and is not enabled for it', async () => {
    const lines: string[] = [];
    const { a, metrics } = autorestart(createLogger('info', {}, (l) => lines.push(l)));
    await a.observe([fromInspect(podman)]);
    await a.observe([fromInspect(podman)]);
    assert.deepEqual(a.action.plan(), [
      {
        target: 'web-1',
        what: 'leave web-1 to Podman',
        why: "Podman's --health-on-failure=restart acts on it",
        held: true,
      },
    ]);
    assert.equal(lines.filter((l) => /leaves this container to Podman/.test(l)).length, 1);
    const text = await metrics();
    assert.equal(seriesValue(text, 'lookout_container_remediation_enabled{name="web-1"}'), 0);
    assert.equal(seriesValue(text, 'lookout_container_remediation_paused{name="web-1"}'), 0);
  });

  it('forgets a container gone from the list with what it said once about it, and says it again if it comes back', async () => {
    const lines: string[] = [];
    const { a } = autorestart(createLogger('info', {}, (l) => lines.push(l)));
    await a.observe([fromInspect(podman)]);
    await a.observe([]);
    await a.observe([fromInspect(podman)]);
    assert.equal(lines.filter((l) => /leaves this container to Podman/.test(l)).length, 2);
  });

  it('says it cannot watch an opted-in container with neither a health check nor a probe', async () => {
    const { a, metrics } = autorestart();
    const bare = fromInspect({ ...podman, Config: { Labels: { 'lookout.autorestart': 'true' } } });
    await a.observe([bare]);
    assert.deepEqual(a.action.plan(), [
      {
        target: 'web-1',
        what: 'cannot watch web-1',
        why: 'it has no health check and autorestart.probes names no probe for it',
        held: true,
      },
    ]);
    assert.equal(
      seriesValue(await metrics(), 'lookout_container_remediation_enabled{name="web-1"}'),
      0,
    );
  });

  it('ignores a container that did not opt in, and shows no families then', async () => {
    const { a } = autorestart();
    await a.observe([fromInspect({ ...podman, Config: { ...podman.Config, Labels: {} } })]);
    assert.deepEqual(a.action.plan(), []);
    assert.deepEqual(a.metrics(), []);
  });

  it('keeps a container’s counters through a refresh that could not read it, and drops them once it is no longer listed', async () => {
    const dir = await budgetSpent();
    try {
      const { a, metrics } = autorestart(undefined, async () => dir);
      const skipped = 'lookout_container_remediation_restarts_total{name="web-1",result="skipped"}';
      await a.observe([failing]);
      assert.equal(seriesValue(await metrics(), skipped), 1);
      assert.equal(
        seriesValue(await metrics(), 'lookout_container_remediation_paused{name="web-1"}'),
        1,
      );
      // Listed, but its inspect timed out: nothing new is known, nothing is reset.
      await a.observe([], new Set(['web-1']));
      assert.equal(seriesValue(await metrics(), skipped), 1);
      assert.equal(
        seriesValue(await metrics(), 'lookout_container_remediation_paused{name="web-1"}'),
        1,
      );
      assert.deepEqual(a.action.plan(), []);
      // Gone from the list: its series go.
      await a.observe([]);
      assert.equal(seriesValue(await metrics(), skipped), undefined);
      assert.deepEqual(a.metrics(), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a refresh and a status report that overlap share one read of the state file: a pause is neither lost nor counted twice', async () => {
    const dir = await budgetSpent();
    try {
      // A second look for the directory answers late: a second read would land after the pause.
      let asked = 0;
      const { a, metrics } = autorestart(undefined, async () => {
        if (asked++ > 0) await new Promise((r) => setTimeout(r, 50));
        return dir;
      });
      const [, lines] = await Promise.all([a.observe([failing]), a.describeState()]);
      assert.equal(asked, 1, 'the state file is read once');
      assert.match(lines.join('\n'), /auto-restart web-1: 3 restarts in the last hour/);
      await a.observe([failing]);
      const text = await metrics();
      assert.equal(
        seriesValue(
          text,
          'lookout_container_remediation_restarts_total{name="web-1",result="skipped"}',
        ),
        1,
      );
      assert.equal(seriesValue(text, 'lookout_container_remediation_paused{name="web-1"}'), 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
