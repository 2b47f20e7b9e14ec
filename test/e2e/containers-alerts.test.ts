/**
 * Container faults through the whole alerting chain on real parts:
 *
 *   a private dockerd (busybox image) → lookout (dist/, the containers collector every
 *   second) → Prometheus (1 s scrape and evaluation, a copy of rules/*.yml with only `for:`
 *   and `keep_firing_for:` shortened, a minute to a second) → Alertmanager (the shipped
 *   alertmanager.yml, addresses and group timings changed) → a real SMTP server and a
 *   Slack sink.
 *
 * 1. A container OOM-killed under its memory limit: ContainerOomKilled critical, email
 *    and Slack. It has no restart policy, so it stays stopped, and ContainerNotRunning
 *    (for containers expected to run) stays quiet. The OOM alert reads the last 30
 *    minutes of kills, so it does not resolve within the test.
 * 2. A container whose health check starts failing (the file it tests is removed) and
 *    does not recover: the ContainerUnhealthy warning (2m → 2 s) in Slack, then the
 *    critical (10m → 10 s) by email and Slack, the warning now held back by Alertmanager;
 *    the file is written again, it turns healthy, and both resolved notices arrive.
 * The time from each fault (and fix) to each message is printed as a table at the end.
 *
 * Needs root (dockerd) and `npm run build`. Takes about 2 minutes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { amAlerts } from '../helpers/alerting.js';
import { AlertChain, QUIET_MS, color, title } from '../helpers/alertchain.js';
import {
  BUSYBOX_IMAGE,
  memoryHogArgs,
  startBusyboxEngine,
  type BusyboxEngine,
} from '../helpers/busybox.js';
import { eventually, promQuery } from '../helpers/procs.js';

/** `for:` in the rule copy: one minute becomes one second (10m → 10 s, 2m → 2 s). */
const FOR_SCALE = 1 / 60;

describe('container alerts end to end: dockerd → lookout → Prometheus → Alertmanager → email + Slack', () => {
  let engine: BusyboxEngine;
  let chain: AlertChain;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test runs dockerd and needs root');
    engine = await startBusyboxEngine('lkcal-');
    chain = await AlertChain.start({
      name: 'containers',
      forScale: FOR_SCALE,
      lookoutConfig: JSON.stringify({
        collectors: {
          containers: { interval: '1s', timeout: '1s', endpoint: engine.dockerd.host },
        },
      }),
    });
    for (const name of ['ContainerOomKilled', 'ContainerUnhealthy']) {
      assert.ok(
        chain.timings.some((r) => r.alert === name && r.severity === 'critical'),
        `rules/*.yml: no critical ${name}`,
      );
    }
  });

  after(async () => {
    await chain?.stop();
    await engine?.stop();
  });

  test('a container OOM-killed under its memory limit: ContainerOomKilled critical by email and Slack; a stopped one-off container does not page', async (t) => {
    const faultAt = Date.now();
    await engine.docker(...memoryHogArgs('hog'));
    await chain.expectCritical(t, {
      name: 'OOM kill',
      alertname: 'ContainerOomKilled',
      labels: { name: 'hog' },
      faultAt,
    });
    const inspect = await engine.docker(
      'inspect',
      '--format',
      '{{.State.Running}} {{.State.OOMKilled}}',
      'hog',
    );
    assert.equal(inspect.stdout.trim(), 'false true', 'docker inspect: stopped, OOMKilled');
    const mail = chain.smtp.received.find((m) =>
      m.subject.startsWith('[LOOKOUT] 🔴 CRITICAL: ContainerOomKilled'),
    );
    assert.match(mail?.text ?? '', /killed a process of container hog on /);
    // No restart policy: a one-off container that stopped. Past ContainerNotRunning's
    // `for` (2 s here) and a few group intervals, nothing about it was sent.
    const stopped = await promQuery(
      chain.promUrl,
      'lookout_container_running{name="hog"} == 0 and lookout_container_should_run{name="hog"} == 0',
    );
    assert.equal(stopped.length, 1, 'lookout reports hog stopped and not expected to run');
    await new Promise((r) => setTimeout(r, QUIET_MS));
    const notRunning = [
      ...chain.smtp.received.map((m) => m.subject),
      ...chain.slack.received.map(title),
    ].filter((s) => s.includes('ContainerNotRunning'));
    assert.deepEqual(notRunning, [], 'ContainerNotRunning for a one-off container');
  });

  test('a container turning unhealthy and not recovering: ContainerUnhealthy critical, warning inhibited, resolved when healthy again', async (t) => {
    await engine.docker(
      'run',
      '-d',
      '--name',
      'sick',
      '--network',
      'none',
      '--restart',
      'always',
      '--health-cmd',
      'test -f /tmp/ok',
      '--health-interval',
      '1s',
      '--health-retries',
      '2',
      BUSYBOX_IMAGE,
      'sh',
      '-c',
      'touch /tmp/ok; exec sleep 3600',
    );
    await eventually(
      async () =>
        (
          await promQuery(
            chain.promUrl,
            'lookout_container_health_status{name="sick", status="healthy"} == 1',
          )
        ).length === 1,
      30_000,
      'Prometheus to see the container healthy',
    );
    const faultAt = Date.now();
    await engine.docker('exec', 'sick', 'sh', '-c', 'rm /tmp/ok');
    const labels = { name: 'sick' };
    await chain.criticalCycle(t, {
      name: 'unhealthy',
      alertname: 'ContainerUnhealthy',
      labels,
      faultAt,
      whileFiring: async () => {
        const health = await engine.docker(
          'inspect',
          '--format',
          '{{.State.Health.Status}}',
          'sick',
        );
        assert.equal(health.stdout.trim(), 'unhealthy', 'docker inspect: unhealthy');
        // The warning (2m → 2 s) went to Slack before the critical (10m → 10 s), as a user
        // sees it: unhealthy first, not recovering later. Once the critical fires,
        // Alertmanager holds the warning back.
        const summary = chain.summaryOf('ContainerUnhealthy', 'warning', labels);
        const yellow = chain.slack.received.find(
          (m) => title(m) === `🟡 WARNING: ContainerUnhealthy — ${summary}`,
        );
        assert.ok(yellow, 'the ContainerUnhealthy warning in Slack');
        chain.record(t, 'unhealthy (warning)', 'slack', faultAt, yellow);
        assert.equal(color(yellow), 'warning');
        const warning = await eventually(
          async () => {
            const list = await amAlerts(chain.am.url, [
              'alertname="ContainerUnhealthy"',
              'severity="warning"',
              'name="sick"',
            ]);
            return list.length === 1 && list[0]?.status.state === 'suppressed'
              ? list[0]
              : undefined;
          },
          15_000,
          'Alertmanager to hold the ContainerUnhealthy warning as suppressed',
        );
        assert.ok(warning.status.inhibitedBy.length > 0, 'suppressed by inhibition');
      },
      fix: async () => {
        await engine.docker('exec', 'sick', 'sh', '-c', 'touch /tmp/ok');
      },
    });
  });
});
