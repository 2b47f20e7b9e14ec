/**
 * A configured install pages for nothing: the shipped alertmanager.yml with only email and
 * Slack filled in (the SMTP server and the Slack webhook of the test's sinks; the
 * dead-man's switch left as shipped, not set up), a real Prometheus with the shipped
 * rules (`for:` shortened, one minute to one second) scraping a real lookout (dist/) and
 * Prometheus and Alertmanager themselves, on this healthy machine. For longer than every
 * `for:` and group interval of the copy, neither sink receives a message, and the
 * heartbeat that goes nowhere is not a delivery failure either.
 *
 * The machine is shared with other tests: a CPU, load or zombie alert that this machine's
 * own state, measured by the test, makes true is reported, not failed (helpers/healthy.ts).
 * lookout watches `/` only and the process `prometheus`: other tests mount and fill disks
 * and start and stop nginx and dockerd, the default watch list.
 *
 * Needs `npm run build`. Takes about 2 minutes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AlertChain } from '../helpers/alertchain.js';
import { durationMs } from '../helpers/alerting.js';
import { assertQuiet, startMachineSampler, type MachineSampler } from '../helpers/healthy.js';
import { promQuery } from '../helpers/procs.js';

/** One minute of `for:` becomes one second, as in alerting.test.ts. */
const FOR_SCALE = 1 / 60;
const AM_TIMINGS = { group_wait: '1s', group_interval: '2s' };
/** Past the longest shortened `for:` by this much: a scrape, an evaluation, a group_wait
 *  and several group_interval ticks. */
const BEYOND_MS = 30_000;

describe('a configured install, email and Slack only, on a healthy machine', () => {
  let chain: AlertChain;
  let machine: MachineSampler | undefined;

  before(async () => {
    machine = await startMachineSampler();
    chain = await AlertChain.start({
      name: 'quiet',
      forScale: FOR_SCALE,
      amTimings: AM_TIMINGS,
      heartbeat: false,
      lookoutConfig: [
        'collectors:',
        '  host: { interval: 1s, timeout: 1s }',
        "  filesystem: { interval: 1s, timeout: 1s, mount_points_exclude: '^/.+' }",
        '  processes: { interval: 1s, timeout: 1s, watch: [prometheus] }',
        '',
      ].join('\n'),
    });
  });

  after(async () => {
    machine?.stop();
    await chain?.stop();
  });

  test('the heartbeat receiver is as shipped: it has no webhook', () => {
    const receivers = chain.amConfig.config.receivers;
    assert.ok(Array.isArray(receivers));
    const hb = receivers.find(
      (r) => typeof r === 'object' && r !== null && !Array.isArray(r) && r.name === 'heartbeat',
    );
    assert.deepEqual(hb, { name: 'heartbeat' });
  });

  test('nothing reaches email or Slack for longer than every for: and group interval', async (t) => {
    const longestFor = Math.max(...chain.timings.map((r) => durationMs(r.forShortened)));
    const ms = longestFor + BEYOND_MS;
    assert.ok(ms > durationMs(AM_TIMINGS.group_interval) * 10);
    t.diagnostic(`watching for ${ms / 1000} s (longest shortened for: ${longestFor / 1000} s)`);
    // Counted from Prometheus's start: every rule has had its whole `for` by the end.
    const waited = Date.now() - chain.promStartedAt;
    const justified = await assertQuiet(t, {
      smtp: chain.smtp,
      slack: chain.slack,
      promUrl: chain.promUrl,
      promStartedAt: chain.promStartedAt,
      machine,
      ms: Math.max(0, ms - waited),
    });
    if (justified.size === 0) {
      assert.equal(chain.smtp.received.length, 0, 'no email');
      assert.equal(chain.slack.received.length, 0, 'no Slack message');
    }
    // Watchdog fired all along and reached Alertmanager, which sent it nowhere.
    const watchdog = await promQuery(
      chain.promUrl,
      'ALERTS{alertname="Watchdog",alertstate="firing"}',
    );
    assert.equal(watchdog.length, 1, 'Watchdog fires');
    const failed = await promQuery(
      chain.promUrl,
      'sum(alertmanager_notifications_failed_total{job="alertmanager"})',
    );
    assert.equal(failed[0]?.value[1], '0', 'Alertmanager failed no notification');
    const hooks = await promQuery(
      chain.promUrl,
      'sum(alertmanager_notifications_total{job="alertmanager", integration="webhook"})',
    );
    assert.equal(hooks[0]?.value[1], '0', 'Alertmanager tried no webhook');
    assert.equal(chain.heartbeat.received.length, 0, 'the heartbeat sink got nothing');
  });
});
