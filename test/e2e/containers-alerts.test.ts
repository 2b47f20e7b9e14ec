/**
 * Container faults through the whole alerting chain on real parts:
 *
 *   a private dockerd (busybox image) → lookout (dist/, the containers collector every
 *   3 seconds) → Prometheus (1 s scrape and evaluation, a copy of rules/*.yml with only `for:`
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
 * 3. A container whose health check tests a file on the host, watched by auto-restart
 *    (one restart an hour): the file is removed, lookout restarts it once, it stays
 *    unhealthy, auto-restart pauses: ContainerAutoRestartPaused critical by email and
 *    Slack; the file is written again, it turns healthy, the pause ends, resolved.
 * The time from each fault (and fix) to each message is printed as a table at the end.
 *
 * Needs root (dockerd) and `npm run build`. Takes about 2 minutes.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { amAlerts } from '../helpers/alerting.js';
import { AlertChain, QUIET_MS, color, title } from '../helpers/alertchain.js';
import {
  BUSYBOX_IMAGE,
  memoryHogArgs,
  startBusyboxEngine,
  type BusyboxEngine,
} from '../helpers/busybox.js';
import { eventually, promQuery, tempDir } from '../helpers/procs.js';

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
        // Auto-restart keeps its budget on disk: this run's own, not the checkout's data/.
        storage: { path: join(engine.dir, 'lookout-state') },
        collectors: {
          containers: {
            // 3 s: a restart's call (stop timeout: the collector's timeout less 2 s) must
            // end inside the action's deadline to count as restarted.
            interval: '3s',
            timeout: '3s',
            endpoint: engine.dockerd.host,
            // Auto-restart for containers labelled lookout.autorestart=true: one restart an
            // hour, after two failed checks in a row.
            actions: { enabled: true },
            autorestart: {
              failures: 2,
              max_restarts_per_hour: 1,
              backoff: '1s',
              stop_timeout: '1s',
            },
          },
        },
      }),
    });
    for (const name of ['ContainerOomKilled', 'ContainerUnhealthy', 'ContainerAutoRestartPaused']) {
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
    // The kill came from the event stream; the refresh that sees the container stopped
    // and Prometheus's next scrape of it may still be on their way.
    await eventually(
      async () =>
        (
          await promQuery(
            chain.promUrl,
            'lookout_container_running{name="hog"} == 0 and lookout_container_should_run{name="hog"} == 0',
          )
        ).length === 1,
      15_000,
      'lookout reports hog stopped and not expected to run',
    );
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
  test('a container auto-restart cannot fix: restarted once, then ContainerAutoRestartPaused critical by email and Slack, resolved when it is healthy again', async (t) => {
    // Its health check tests a file on the host: a restart does not bring it back.
    const data = await tempDir('lookout-e2e-stuck-');
    await writeFile(join(data, 'ok'), '');
    await engine.docker(
      'run',
      '-d',
      '--name',
      'stuck',
      '--network',
      'none',
      '--label',
      'lookout.autorestart=true',
      '-v',
      `${data}:/data`,
      '--health-cmd',
      'test -f /data/ok',
      '--health-interval',
      '1s',
      '--health-retries',
      '1',
      BUSYBOX_IMAGE,
      'sleep',
      '3600',
    );
    await eventually(
      async () =>
        (
          await promQuery(
            chain.promUrl,
            'lookout_container_health_status{name="stuck", status="healthy"} == 1' +
              ' and on (name) lookout_container_remediation_enabled{name="stuck"} == 1',
          )
        ).length === 1,
      30_000,
      'Prometheus to see the container healthy and watched by auto-restart',
    );
    const startedBefore = (
      await engine.docker('inspect', '--format', '{{.State.StartedAt}}', 'stuck')
    ).stdout.trim();
    const faultAt = Date.now();
    await rm(join(data, 'ok'));
    await chain.criticalCycle(t, {
      name: 'auto-restart paused',
      alertname: 'ContainerAutoRestartPaused',
      labels: { name: 'stuck' },
      faultAt,
      whileFiring: async () => {
        // The engine's own word that lookout restarted it, and lookout's counters.
        const startedAfter = (
          await engine.docker('inspect', '--format', '{{.State.StartedAt}}', 'stuck')
        ).stdout.trim();
        assert.notEqual(startedAfter, startedBefore, 'docker inspect: started again');
        const attempts = await promQuery(
          chain.promUrl,
          'lookout_container_remediation_restarts_total{name="stuck"}',
        );
        for (const a of attempts)
          t.diagnostic(`remediation_restarts_total{result="${a.metric.result}"} ${a.value[1]}`);
        const count = (result: string) =>
          attempts.find((a) => a.metric.result === result)?.value[1];
        assert.equal(count('restarted'), '1', 'one restart: the budget');
        assert.equal(count('failed'), '0', 'no failed restart');
        const notRecovered = await promQuery(
          chain.promUrl,
          'lookout_container_remediation_outcomes_total{name="stuck", outcome="not_recovered"}',
        );
        assert.equal(notRecovered[0]?.value[1], '1', 'the restart did not help');
      },
      fix: () => writeFile(join(data, 'ok'), ''),
    });
  });
});
