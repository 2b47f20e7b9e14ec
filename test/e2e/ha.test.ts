/**
 * Past one Prometheus, on real binaries (deploy/ha/):
 *
 *   four lookout hosts (dist/, each in a network namespace of its own with its own address,
 *   found through file_sd) → two Prometheus replicas running ONE config, the test's copy of
 *   deploy/ha/prometheus.yml (`replica` from the environment, a `site` label) → an
 *   Alertmanager cluster of two peers (the shipped alertmanager.yml) → a real SMTP server
 *   and a Slack sink; both replicas remote-write to VictoriaMetrics
 *   (-dedup.minScrapeInterval = the scrape interval); vmalert evaluates the same rule files
 *   against VictoriaMetrics.
 *
 * The fault is a crashed lookout (SIGKILL): LookoutDown, a shipped rule. The test's copies
 * change only addresses and timings: scrape and evaluation 1 s, the rules' `for:` ×1/60
 * (LookoutDown's 2m → 2s), group_wait 1s / group_interval 10s, resend-delay 10s,
 * --cluster.peer-timeout 3s, VictoriaMetrics' -search.latencyOffset 1s.
 *
 * 1. All four hosts are in the store once: 4 `up` series, not 8, one sample per second.
 * 2. Everything up: a host fault ends as one email and one Slack message (two replicas ×
 *    two peers); vmalert fires the same alert, with the same labels, from the store.
 * 3. One replica killed: the same; it comes back while the alert fires: nothing repeated;
 *    the store has no gap over its outage.
 * 4. One Alertmanager peer killed: the same; it comes back while the alert fires: nothing
 *    repeated.
 * 5. Over the whole run, each fault made exactly one firing and one resolved email and
 *    Slack message; vmalert evaluated every shipped rule without error; every dashboard
 *    query that returns series from a replica returns series from the store.
 * The fault → message times, and the memory, disk and series figures of the stack, are
 * printed and written as JSON to the OS temp dir.
 *
 * Needs root (ip netns) and `npm run build`. About 2.5 minutes.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import { load } from 'js-yaml';
import {
  amAlerts,
  copyRulesWithShortFor,
  renderAlertmanagerConfig,
  runCommand,
  type AmAlert,
  type RuleTiming,
} from '../helpers/alerting.js';
import {
  addHostNetns,
  diskBytes,
  getJson,
  longestGapMs,
  rssBytes,
  startProc,
  vmExport,
  type HostNetns,
  type Proc,
} from '../helpers/ha.js';
import {
  REPO,
  eventually,
  freePort,
  promQuery,
  startAlertmanager,
  tempDir,
  type Running,
} from '../helpers/procs.js';
import {
  startSlackSink,
  startSmtpSink,
  startWebhookSink,
  type Email,
  type SlackMessage,
  type SlackSink,
  type SmtpSink,
  type WebhookSink,
} from '../helpers/sinks.js';

const HOSTS = 4;
const SITE = 'lab';
const FOR_SCALE = 1 / 60;
const LOOKOUT_PORT = 10142;
/** Fault → message: scrape 1 s + `for` 2 s + evaluation 1 s + group_wait 1 s, with room
 *  for peer-timeout (3 s) and a busy machine. */
const DELIVERY_MS = 40_000;
/** Watched for messages that must not come: more than one group_interval and a resend. */
const QUIET_MS = 12_000;
const ALERT = 'LookoutDown';
/** How long replica b stays down (at least). */
const REPLICA_OUTAGE_MS = 20_000;

interface Host {
  i: number;
  ns: HostNetns;
  instance: string;
  dir: string;
  proc?: Proc;
}
interface Fixed {
  name: string;
  port: number;
  dir: string;
  proc?: Proc;
  start: () => Promise<Proc>;
}
interface Measured {
  phase: string;
  kind: string;
  ms: number;
}

const title = (m: SlackMessage) => m.body.attachments?.[0]?.title ?? '';
const aboutHost = (text: string, h: Host) => text.includes(ALERT) && text.includes(h.instance);
const isResolved = (text: string) => /RESOLVED/.test(text);

describe('HA: two Prometheus replicas, an Alertmanager cluster, VictoriaMetrics and vmalert', () => {
  const cleanups: Array<[string, () => Promise<void>]> = [];
  const hosts: Host[] = [];
  const measured: Measured[] = [];
  let smtp: SmtpSink;
  let slack: SlackSink;
  let heartbeat: WebhookSink;
  let smtp2: SmtpSink;
  let slack2: SlackSink;
  let heartbeat2: WebhookSink;
  let promA: Fixed;
  let promB: Fixed;
  let amA: Fixed;
  let amB: Fixed;
  let vm: Fixed;
  let vmalert: Fixed;
  let vmAm: Running;
  let rulesDir: string;
  let vmalertRulesDir: string;
  let timings: RuleTiming[] = [];
  let vmalertBad: string[] = [];

  const url = (f: Fixed) => `http://127.0.0.1:${f.port}`;
  const cleanup = (what: string, fn: () => Promise<void>) => cleanups.push([what, fn]);

  async function startFixed(
    f: Omit<Fixed, 'start' | 'proc'>,
    cmd: string,
    args: string[],
    ready: string,
    env?: NodeJS.ProcessEnv,
  ): Promise<Fixed> {
    const fixed: Fixed = {
      ...f,
      start: async () => {
        fixed.proc = await startProc(cmd, args, {
          cwd: f.dir,
          readyUrl: `http://127.0.0.1:${f.port}${ready}`,
          env,
        });
        return fixed.proc;
      },
    };
    cleanup(`stop ${f.name}`, async () => fixed.proc?.stop());
    await fixed.start();
    return fixed;
  }

  async function startLookout(h: Host): Promise<void> {
    h.proc = await startProc(
      process.execPath,
      [
        join(REPO, 'dist/cli.js'),
        'serve',
        '--config',
        join(h.dir, 'lookout.yml'),
        '--web.listen-address',
        h.instance,
      ],
      // 60 s: a fresh-clone run at load 12 on two cores saw a restart print nothing for 30.
      { cwd: h.dir, netns: h.ns.name, readyUrl: `http://${h.instance}/healthz`, timeoutMs: 60_000 },
    );
  }

  function record(
    t: TestContext,
    phase: string,
    kind: string,
    from: number,
    msg: { receivedAt: number },
  ) {
    const ms = msg.receivedAt - from;
    measured.push({ phase, kind, ms });
    t.diagnostic(`${phase}: ${kind} after ${(ms / 1000).toFixed(1)} s`);
  }

  const emailsAbout = (h: Host, resolved: boolean, sink: SmtpSink = smtp): Email[] =>
    sink.received.filter((m) => aboutHost(m.subject, h) && isResolved(m.subject) === resolved);
  const slacksAbout = (h: Host, resolved: boolean, sink: SlackSink = slack): SlackMessage[] =>
    sink.received.filter((m) => aboutHost(title(m), h) && isResolved(title(m)) === resolved);

  /** What arrived about h, with times from `since`, for a failure message. */
  const received = (h: Host, since: number) =>
    [
      ...smtp.received
        .filter((m) => aboutHost(m.subject, h))
        .map((m) => ({ at: m.receivedAt, what: `email ${m.subject}` })),
      ...slack.received
        .filter((m) => aboutHost(title(m), h))
        .map((m) => ({ at: m.receivedAt, what: `slack ${title(m)}` })),
    ]
      .sort((a, b) => a.at - b.at)
      .map((m) => `  +${((m.at - since) / 1000).toFixed(1)} s ${m.what}`)
      .join('\n');

  /** The alert as each peer holds it: exactly one per peer (not one per replica). */
  async function heldByPeers(h: Host, peers: Fixed[]): Promise<AmAlert> {
    let held: AmAlert | undefined;
    for (const p of peers) {
      const list = await eventually(
        async () => {
          const l = await amAlerts(url(p), [`alertname="${ALERT}"`, `instance="${h.instance}"`]);
          return l.length > 0 ? l : undefined;
        },
        15_000,
        `peer ${p.name} to hold ${ALERT} for ${h.instance}`,
      );
      assert.equal(
        list.length,
        1,
        `peer ${p.name} holds ${ALERT} for ${h.instance} once: ${JSON.stringify(list.map((a) => a.labels))}`,
      );
      const [alert] = list;
      assert.ok(alert);
      assert.equal(alert.labels.replica, undefined, 'the replica label is dropped from alerts');
      assert.equal(alert.labels.site, SITE, 'the site label reaches the alert');
      held = alert;
    }
    assert.ok(held);
    return held;
  }

  /**
   * Crashes h's lookout, waits for the firing email and Slack message, runs whileFiring,
   * starts lookout again, waits for the resolved ones, and checks that each came once.
   */
  async function faultCycle(
    t: TestContext,
    phase: string,
    h: Host,
    whileFiring: () => Promise<void>,
  ): Promise<void> {
    const faultAt = Date.now();
    await h.proc?.kill();
    const mail = await smtp.waitFor(
      (m) => aboutHost(m.subject, h) && !isResolved(m.subject),
      DELIVERY_MS,
      `the ${ALERT} email for ${h.instance}`,
    );
    record(t, phase, 'email', faultAt, mail);
    const msg = await slack.waitFor(
      (m) => aboutHost(title(m), h) && !isResolved(title(m)),
      DELIVERY_MS,
      `the ${ALERT} Slack message for ${h.instance}`,
    );
    record(t, phase, 'slack', faultAt, msg);
    await whileFiring();
    const fixedAt = Date.now();
    await startLookout(h);
    const resolvedMail = await smtp.waitFor(
      (m) => aboutHost(m.subject, h) && isResolved(m.subject),
      DELIVERY_MS,
      `the resolved email for ${h.instance}`,
    );
    record(t, phase, 'resolved email', fixedAt, resolvedMail);
    const resolvedMsg = await slack.waitFor(
      (m) => aboutHost(title(m), h) && isResolved(title(m)),
      DELIVERY_MS,
      `the resolved Slack message for ${h.instance}`,
    );
    record(t, phase, 'resolved slack', fixedAt, resolvedMsg);
    await sleep(QUIET_MS);
    const seen = `\n${received(h, faultAt)}`;
    assert.equal(emailsAbout(h, false).length, 1, `${phase}: one firing email${seen}`);
    assert.equal(slacksAbout(h, false).length, 1, `${phase}: one firing Slack message${seen}`);
    assert.equal(emailsAbout(h, true).length, 1, `${phase}: one resolved email${seen}`);
    assert.equal(slacksAbout(h, true).length, 1, `${phase}: one resolved Slack message${seen}`);
  }

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test makes network namespaces and needs root');
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    try {
      // Where the cluster delivers, and where vmalert's own Alertmanager delivers.
      [smtp, slack, heartbeat, smtp2, slack2, heartbeat2] = await Promise.all([
        startSmtpSink(),
        startSlackSink(),
        startWebhookSink(),
        startSmtpSink(),
        startSlackSink(),
        startWebhookSink(),
      ] as const);
      for (const s of [smtp, slack, heartbeat, smtp2, slack2, heartbeat2])
        cleanup('stop a sink', () => s.stop());
      const timingsAm = { group_wait: '1s', group_interval: '10s' };

      // The Alertmanager cluster: two peers, each naming the other.
      const amConfig = await renderAlertmanagerConfig({
        dir: await tempDir('lookout-ha-am-'),
        smarthost: smtp.smarthost,
        slackUrl: slack.url,
        heartbeatUrl: heartbeat.url,
        timings: timingsAm,
      });
      const amFile = join(await tempDir('lookout-ha-amconf-'), 'alertmanager.yml');
      await writeFile(amFile, amConfig.text);
      const [pa, pb, ca, cb] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
      const peerArgs = (port: number, dir: string, own: number, other: number) => [
        `--config.file=${amFile}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--cluster.listen-address=127.0.0.1:${own}`,
        `--cluster.peer=127.0.0.1:${other}`,
        '--cluster.peer-timeout=3s',
      ];
      const amDirA = await tempDir('lookout-ha-am-a-');
      const amDirB = await tempDir('lookout-ha-am-b-');
      [amA, amB] = await Promise.all([
        startFixed(
          { name: 'alertmanager-a', port: pa, dir: amDirA },
          'prometheus-alertmanager',
          peerArgs(pa, amDirA, ca, cb),
          '/-/ready',
        ),
        startFixed(
          { name: 'alertmanager-b', port: pb, dir: amDirB },
          'prometheus-alertmanager',
          peerArgs(pb, amDirB, cb, ca),
          '/-/ready',
        ),
      ]);

      // The central store.
      const vmDir = await tempDir('lookout-ha-vm-');
      const vmPort = await freePort();
      vm = await startFixed(
        { name: 'victoria-metrics', port: vmPort, dir: vmDir },
        'victoria-metrics',
        [
          `-storageDataPath=${join(vmDir, 'data')}`,
          `-httpListenAddr=127.0.0.1:${vmPort}`,
          '-dedup.minScrapeInterval=1s',
          '-search.latencyOffset=1s',
        ],
        '/health',
      );

      // Four hosts, each in its own namespace.
      for (let i = 0; i < HOSTS; i++) {
        const ns = await addHostNetns(i);
        cleanup(`delete netns ${ns.name}`, () => ns.remove());
        const dir = await tempDir(`lookout-ha-host${i}-`);
        await writeFile(join(dir, 'lookout.yml'), '');
        const h: Host = { i, ns, instance: `${ns.address}:${LOOKOUT_PORT}`, dir };
        hosts.push(h);
        cleanup(`stop lookout ${h.instance}`, async () => h.proc?.stop());
      }
      await Promise.all(hosts.map((h) => startLookout(h)));

      // Rules: the shipped files with only `for:` shortened.
      const work = await tempDir('lookout-ha-');
      rulesDir = join(work, 'rules');
      timings = await copyRulesWithShortFor(rulesDir, (ms) => ms * FOR_SCALE);
      // vmalert gets them without keep_firing_for, as deploy/ha/vmalert-rules.sh writes
      // the shipped ones for it (checked on those below).
      vmalertRulesDir = join(work, 'vmalert-rules');
      await copyRulesWithShortFor(vmalertRulesDir, (ms) => ms * FOR_SCALE, false);
      const targetsFile = join(work, 'lookout-targets.json');
      await writeFile(targetsFile, JSON.stringify([{ targets: hosts.map((h) => h.instance) }]));

      // The replicas: one config file for both, the shipped one with addresses and timings.
      const [ppa, ppb] = [await freePort(), await freePort()];
      const promFile = join(work, 'prometheus.yml');
      await writeFile(
        promFile,
        JSON.stringify(
          testPrometheusConfig({
            rules: join(rulesDir, '*.yml'),
            alertmanagers: [pa, pb].map((p) => `127.0.0.1:${p}`),
            remoteWrite: `http://127.0.0.1:${vmPort}/api/v1/write`,
            targetsFile,
            prometheus: [ppa, ppb].map((p) => `127.0.0.1:${p}`),
          }),
          null,
          2,
        ),
      );
      const promArgs = (port: number, dir: string) => [
        `--config.file=${promFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--enable-feature=expand-external-labels',
        // Both replicas resend a firing alert this often. A replica that sees the fix a
        // scrape later can resend "firing" after the other sent "resolved"; a peer that
        // flushes in between sends the alert again. Resend and group_interval both well
        // above scrape + evaluation (here 2 s; shipped 1m and 5m against 30 s) keep that
        // window small.
        '--rules.alert.resend-delay=10s',
      ];
      const promDirA = await tempDir('lookout-ha-prom-a-');
      const promDirB = await tempDir('lookout-ha-prom-b-');
      [promA, promB] = await Promise.all([
        startFixed(
          { name: 'prometheus-a', port: ppa, dir: promDirA },
          'prometheus',
          promArgs(ppa, promDirA),
          '/-/ready',
          { REPLICA: 'a' },
        ),
        startFixed(
          { name: 'prometheus-b', port: ppb, dir: promDirB },
          'prometheus',
          promArgs(ppb, promDirB),
          '/-/ready',
          { REPLICA: 'b' },
        ),
      ]);

      // vmalert, with its own Alertmanager (the shipped config, one peer) and sinks: the
      // cluster's messages stay the replicas' alone, so their count means what it says.
      const amConfig2 = await renderAlertmanagerConfig({
        dir: await tempDir('lookout-ha-am2-'),
        smarthost: smtp2.smarthost,
        slackUrl: slack2.url,
        heartbeatUrl: heartbeat2.url,
        timings: timingsAm,
      });
      vmAm = await startAlertmanager(amConfig2.text);
      cleanup('stop vmalert’s alertmanager', async () => void (await vmAm.stop()));
      const vmaPort = await freePort();
      vmalert = await startFixed(
        { name: 'vmalert', port: vmaPort, dir: work },
        'vmalert',
        [
          `-rule=${join(vmalertRulesDir, '*.yml')}`,
          `-datasource.url=http://127.0.0.1:${vmPort}`,
          `-remoteWrite.url=http://127.0.0.1:${vmPort}`,
          `-remoteRead.url=http://127.0.0.1:${vmPort}`,
          `-notifier.url=${vmAm.url}`,
          '-evaluationInterval=1s',
          '-disableAlertgroupLabel',
          `-httpListenAddr=127.0.0.1:${vmaPort}`,
        ],
        '/health',
      );

      await eventually(
        async () => {
          for (const p of [amA, amB]) {
            const s = await getJson<{ cluster: { status: string; peers: unknown[] } }>(
              `${url(p)}/api/v2/status`,
            );
            if (s.cluster.status !== 'ready' || s.cluster.peers.length !== 2) return false;
          }
          return true;
        },
        20_000,
        'both Alertmanager peers to see each other',
      );
    } catch (err) {
      await runCleanups();
      throw err;
    }
  });

  async function runCleanups(): Promise<void> {
    for (const [what, fn] of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${what}:`, err);
      }
    }
    cleanups.length = 0;
  }

  after(async () => {
    await runCleanups();
    if (measured.length > 0)
      console.log(
        '\nfault → message (ms):\n' +
          measured.map((m) => `  ${m.phase.padEnd(28)} ${m.kind.padEnd(15)} ${m.ms}`).join('\n'),
      );
  });

  test('deploy/ha checks: compose file, both Prometheus configs, the vmalert unit', async () => {
    const compose = join(REPO, 'deploy/ha/docker-compose.yml');
    for (const args of [
      ['-f', compose, 'config', '-q'],
      ['-f', compose, '--profile', 'central-rules', 'config', '-q'],
    ]) {
      const r = await runCommand('docker-compose', args);
      assert.equal(r.code, 0, `docker-compose ${args.join(' ')}: ${r.stderr}`);
    }
    for (const file of ['prometheus.yml', 'prometheus-site.yml']) {
      const r = await runCommand('promtool', ['check', 'config', join(REPO, 'deploy/ha', file)]);
      assert.equal(r.code, 0, `promtool check config ${file}: ${r.stdout}${r.stderr}`);
    }
    const unit = await runCommand('systemd-analyze', [
      'verify',
      join(REPO, 'deploy/ha/systemd/vmalert.service'),
    ]);
    assert.equal(unit.stderr.trim(), '', 'systemd-analyze verify vmalert.service');
  });

  test('both replicas scrape the four hosts; the store holds each once, one sample a second', async (t) => {
    for (const p of [promA, promB]) {
      await eventually(
        async () => {
          const r = await promQuery(url(p), 'count(up{job="lookout"} == 1)');
          return r[0]?.value[1] === String(HOSTS);
        },
        30_000,
        `${p.name} to scrape ${HOSTS} lookout hosts`,
      );
    }
    const series = await eventually(
      async () => {
        const body = await getJson<{ data: Array<Record<string, string>> }>(
          `${url(vm)}/api/v1/series?match[]=${encodeURIComponent('up{job="lookout"}')}`,
        );
        return body.data.length >= HOSTS ? body.data : undefined;
      },
      30_000,
      'the store to hold up{job="lookout"}',
    );
    assert.equal(
      series.length,
      HOSTS,
      `${HOSTS} series in the store, not one per replica: ${JSON.stringify(series)}`,
    );
    assert.deepEqual(series.map((s) => s.instance).sort(), hosts.map((h) => h.instance).sort());
    for (const s of series) {
      assert.equal(s.replica, undefined, 'no replica label in the store');
      assert.equal(s.site, SITE, 'the site label is in the store');
    }
    // Both replicas do write (the 4 are 8 streams merged), and the store keeps one sample
    // per -dedup.minScrapeInterval: about 10 in 10 s, not about 20.
    for (const p of [promA, promB]) {
      const sent = await eventually(
        async () => {
          const text = await (await fetch(`${url(p)}/metrics`)).text();
          const m = /^prometheus_remote_storage_samples_total\{[^}]*\} (\S+)$/m.exec(text);
          return m && Number(m[1]) > 0 ? Number(m[1]) : undefined;
        },
        20_000,
        `${p.name} to remote-write`,
      );
      t.diagnostic(`${p.name} has remote-written ${sent} samples`);
    }
    // A full 10 s window with both replicas writing, 2 s back (the newest are still on
    // their way).
    const one = `up{job="lookout",instance="${hosts[0]!.instance}"}`;
    const n = await eventually(
      async () => {
        const end = Math.floor(Date.now() / 1000) - 2;
        const [s] = await vmExport(url(vm), one, end - 60, end);
        const ts = s?.timestamps ?? [];
        if (ts.length === 0 || ts[0]! > (end - 12) * 1000) return undefined;
        return ts.filter((x) => x > (end - 10) * 1000 && x <= end * 1000).length;
      },
      30_000,
      'ten seconds of samples in the store',
    );
    t.diagnostic(`samples of one host's up in the store over 10 s: ${n}`);
    assert.ok(n >= 7 && n <= 11, `one sample a second after dedup, got ${n} in 10 s`);
  });

  test('everything up: a host fault ends as one email and one Slack message; vmalert fires the same alert from the store', async (t) => {
    const h = hosts[0]!;
    await faultCycle(t, 'all up', h, async () => {
      const held = await heldByPeers(h, [amA, amB]);
      // vmalert, from the store: the same alert, label for label.
      const fromStore = await eventually(
        async () => {
          const body = await getJson<{
            data: { alerts: Array<{ labels: Record<string, string>; state: string }> };
          }>(`${url(vmalert)}/api/v1/alerts`);
          return body.data.alerts.find(
            (a) =>
              a.labels.alertname === ALERT &&
              a.labels.instance === h.instance &&
              a.state === 'firing',
          );
        },
        DELIVERY_MS,
        `vmalert to fire ${ALERT} for ${h.instance}`,
      );
      assert.deepEqual(
        fromStore.labels,
        held.labels,
        'vmalert and the replicas send the same labels',
      );
      // ...and through the shipped Alertmanager config it is the same message.
      const viaVmalert = await smtp2.waitFor(
        (m) => aboutHost(m.subject, h) && !isResolved(m.subject),
        DELIVERY_MS,
        `vmalert's ${ALERT} email`,
      );
      assert.equal(
        viaVmalert.subject,
        emailsAbout(h, false)[0]?.subject,
        'vmalert’s email has the replicas’ subject',
      );
      await slack2.waitFor(
        (m) => aboutHost(title(m), h) && !isResolved(title(m)),
        DELIVERY_MS,
        `vmalert's ${ALERT} Slack message`,
      );
    });
  });

  test('one replica killed: one email and one Slack message; back while firing: nothing repeated; no gap in the store', async (t) => {
    const h = hosts[1]!;
    const steady = hosts[3]!;
    const killedAt = Date.now();
    await promB.proc?.kill();
    let backAt = 0;
    await faultCycle(t, 'replica b down', h, async () => {
      await heldByPeers(h, [amA, amB]);
      // Long enough down for a gap to show, had the store one.
      await sleep(Math.max(0, killedAt + REPLICA_OUTAGE_MS - Date.now()));
      backAt = Date.now();
      await promB.start();
      // Back, it evaluates the same fault and sends it to both peers: they already sent it.
      await eventually(
        async () => {
          const r = await promQuery(
            url(promB),
            `ALERTS{alertname="${ALERT}",instance="${h.instance}",alertstate="firing"}`,
          );
          return r.length === 1;
        },
        DELIVERY_MS,
        'replica b to fire the alert again',
      );
      await sleep(QUIET_MS);
      assert.equal(emailsAbout(h, false).length, 1, 'replica b back: no second email');
      assert.equal(slacksAbout(h, false).length, 1, 'replica b back: no second Slack message');
    });
    // A host that stayed up: its samples in the store over b's outage (a is scraping).
    await sleep(3000);
    const from = Math.floor(killedAt / 1000);
    const to = Math.ceil(backAt / 1000);
    const exported = await vmExport(
      url(vm),
      `up{job="lookout",instance="${steady.instance}"}`,
      from - 5,
      to + 5,
    );
    const ts = exported[0]?.timestamps ?? [];
    const gap = longestGapMs(ts, from * 1000, to * 1000);
    const inB = await promQuery(
      url(promB),
      `count_over_time(up{instance="${steady.instance}"}[${to - from}s] @ ${to})`,
    );
    t.diagnostic(
      `replica b down ${to - from} s: the store has ${ts.filter((x) => x >= from * 1000 && x <= to * 1000).length} samples of ${steady.instance}, longest gap ${gap} ms; replica b's own TSDB ${inB[0]?.value[1] ?? 0}`,
    );
    assert.ok(gap <= 3000, `no gap in the store over replica b's outage (longest ${gap} ms)`);
  });

  test('one Alertmanager peer killed: one email and one Slack message; back while firing: nothing repeated', async (t) => {
    const h = hosts[2]!;
    await amB.proc?.kill();
    await faultCycle(t, 'alertmanager b down', h, async () => {
      await heldByPeers(h, [amA]);
      await amB.start();
      await eventually(
        async () => {
          const s = await getJson<{ cluster: { status: string; peers: unknown[] } }>(
            `${url(amB)}/api/v2/status`,
          );
          return s.cluster.status === 'ready' && s.cluster.peers.length === 2;
        },
        20_000,
        'peer b to rejoin',
      );
      // The replicas resend the firing alert every 10 s: b holds it again...
      await heldByPeers(h, [amB]);
      // ...and, knowing from a what was sent, sends nothing.
      await sleep(QUIET_MS);
      assert.equal(emailsAbout(h, false).length, 1, 'peer b back: no second email');
      assert.equal(slacksAbout(h, false).length, 1, 'peer b back: no second Slack message');
    });
  });

  test('over the run: one firing and one resolved message per fault; vmalert ran every shipped rule; dashboards answer from the store', async (t) => {
    const faulted = hosts.slice(0, 3);
    for (const h of faulted) {
      assert.equal(emailsAbout(h, false).length, 1, `${h.instance}: firing emails`);
      assert.equal(emailsAbout(h, true).length, 1, `${h.instance}: resolved emails`);
      assert.equal(slacksAbout(h, false).length, 1, `${h.instance}: firing Slack messages`);
      assert.equal(slacksAbout(h, true).length, 1, `${h.instance}: resolved Slack messages`);
    }
    const untouched = hosts[3]!;
    assert.equal(emailsAbout(untouched, false).length + slacksAbout(untouched, false).length, 0);
    // vmalert alone in front of its Alertmanager: the same, one of each per fault.
    for (const h of faulted) {
      assert.equal(
        emailsAbout(h, false, smtp2).length,
        1,
        `${h.instance}: vmalert's firing emails`,
      );
      assert.equal(
        emailsAbout(h, true, smtp2).length,
        1,
        `${h.instance}: vmalert's resolved emails`,
      );
      assert.equal(
        slacksAbout(h, false, slack2).length,
        1,
        `${h.instance}: vmalert's firing Slack messages`,
      );
      assert.equal(
        slacksAbout(h, true, slack2).length,
        1,
        `${h.instance}: vmalert's resolved Slack messages`,
      );
    }

    // The shipped files load in vmalert as deploy/ha/vmalert-rules.sh writes them.
    const shipped = join(await tempDir('lookout-ha-vmalert-rules-'), 'rules');
    const made = await runCommand('sh', [
      join(REPO, 'deploy/ha/vmalert-rules.sh'),
      join(REPO, 'rules'),
      shipped,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const dry = await runCommand('vmalert', [
      '-dryRun',
      `-rule=${join(shipped, '*.yml')}`,
      '-rule.validateTemplates',
      '-rule.validateExpressions',
      '-disableAlertgroupLabel',
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    // Every rule evaluated against the store, none with an error.
    const groups = await getJson<{
      data: {
        groups: Array<{
          name: string;
          rules: Array<{ name: string; type: string; lastError?: string }>;
        }>;
      };
    }>(`${url(vmalert)}/api/v1/rules`);
    const rules = groups.data.groups.flatMap((g) => g.rules.map((r) => ({ ...r, group: g.name })));
    const alerting = rules.filter((r) => r.type === 'alerting');
    assert.equal(alerting.length, timings.length, 'vmalert loaded every alerting rule');
    vmalertBad = rules
      .filter((r) => r.lastError)
      .map((r) => `${r.group}/${r.name}: ${r.lastError}`);
    assert.deepEqual(vmalertBad, [], 'vmalert evaluates every rule against the store');
    t.diagnostic(
      `vmalert: ${rules.length} rules (${alerting.length} alerting), no evaluation error`,
    );

    // Every dashboard panel query: where a replica returns series, so does the store.
    const queries = dashboardQueries(hosts[3]!.instance);
    const missing: string[] = [];
    let answered = 0;
    for (const q of queries) {
      const fromProm = await promQuery(url(promA), q.expr).catch(() => []);
      const fromVm = await promQuery(url(vm), q.expr);
      if (fromProm.length > 0) {
        answered++;
        if (fromVm.length === 0) missing.push(`${q.where}: ${q.expr}`);
      }
    }
    t.diagnostic(`dashboard queries: ${queries.length}, ${answered} with series on the replica`);
    assert.deepEqual(missing, [], 'dashboard queries the store does not answer');
  });

  test('figures: series per host, memory and disk of each part', async (t) => {
    const perHost = await promQuery(url(promA), 'scrape_samples_scraped{job="lookout"}');
    const series = perHost.map((r) => Number(r.value[1]));
    const parts: Array<[string, number | undefined, string]> = [
      ['prometheus-a', promA.proc?.pid, promA.dir],
      ['prometheus-b', promB.proc?.pid, promB.dir],
      ['alertmanager-a', amA.proc?.pid, amA.dir],
      ['alertmanager-b', amB.proc?.pid, amB.dir],
      ['victoria-metrics', vm.proc?.pid, vm.dir],
      ['vmalert', vmalert.proc?.pid, ''],
      ...hosts.map((h): [string, number | undefined, string] => [
        `lookout ${h.instance}`,
        h.proc?.pid,
        '',
      ]),
    ];
    const figures: Record<string, { rssMiB: number; diskMiB?: number }> = {};
    for (const [name, pid, dir] of parts) {
      if (!pid) continue;
      const rss = await rssBytes(pid);
      figures[name] = {
        rssMiB: +(rss / 2 ** 20).toFixed(1),
        ...(dir ? { diskMiB: +((await diskBytes(dir)) / 2 ** 20).toFixed(2) } : {}),
      };
    }
    const out = {
      finishedAt: new Date().toISOString(),
      setup:
        'four lookout hosts (default config), scrape and evaluation 1 s, both replicas and vmalert running every shipped rule',
      seriesPerHost: series,
      samplesPerSecondPerHostAt15s: series.map((s) => +(s / 15).toFixed(1)),
      parts: figures,
      faultToMessageMs: measured,
    };
    const file = join(
      tmpdir(),
      `lookout-ha-figures-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
    );
    await writeFile(file, JSON.stringify(out, null, 2) + '\n');
    t.diagnostic(`series per host: ${series.join(', ')}`);
    for (const [name, f] of Object.entries(figures))
      t.diagnostic(
        `${name}: RSS ${f.rssMiB} MiB${f.diskMiB !== undefined ? `, disk ${f.diskMiB} MiB` : ''}`,
      );
    t.diagnostic(`figures: ${file}`);
    for (const p of [amA, amB]) {
      const text = await (await fetch(`${url(p)}/metrics`)).text();
      const sent = [
        ...text.matchAll(
          /^alertmanager_notifications_total\{integration="(email|slack)"\} (\S+)$/gm,
        ),
      ];
      t.diagnostic(
        `${p.name} sent (since its last start): ${sent.map((m) => `${m[1]} ${m[2]}`).join(', ')}`,
      );
    }
    assert.equal(series.length, HOSTS);
  });
});

/** deploy/ha/prometheus.yml with only addresses, paths and intervals changed, and a site. */
function testPrometheusConfig(o: {
  rules: string;
  alertmanagers: string[];
  remoteWrite: string;
  targetsFile: string;
  prometheus: string[];
}): Record<string, unknown> {
  type Cfg = {
    global: { external_labels: Record<string, string> } & Record<string, unknown>;
    rule_files: string[];
    alerting: {
      alert_relabel_configs: unknown[];
      alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    remote_write: Array<
      { url: string; write_relabel_configs: unknown[] } & Record<string, unknown>
    >;
    scrape_configs: Array<{
      job_name: string;
      file_sd_configs?: Array<{ files: string[] }>;
      static_configs?: Array<{ targets: string[] }>;
    }>;
  };
  const cfg = load(readFileSync(join(REPO, 'deploy/ha/prometheus.yml'), 'utf8')) as Cfg;
  assert.equal(
    cfg.global.external_labels.replica,
    '${REPLICA}',
    'the replica label comes from the environment',
  );
  assert.ok(cfg.alerting.alert_relabel_configs.length > 0, 'alerts drop the replica label');
  assert.ok(
    cfg.remote_write[0]?.write_relabel_configs.length,
    'remote write drops the replica label',
  );
  Object.assign(cfg.global, {
    scrape_interval: '1s',
    evaluation_interval: '1s',
    scrape_timeout: '1s',
  });
  cfg.global.external_labels.site = SITE;
  cfg.rule_files = [o.rules];
  cfg.alerting.alertmanagers[0]!.static_configs[0]!.targets = o.alertmanagers;
  cfg.remote_write[0]!.url = o.remoteWrite;
  cfg.remote_write[0]!.queue_config = { batch_send_deadline: '1s' };
  for (const sc of cfg.scrape_configs) {
    if (sc.job_name === 'lookout') sc.file_sd_configs = [{ files: [o.targetsFile] }];
    else if (sc.job_name === 'prometheus') sc.static_configs = [{ targets: o.prometheus }];
    else if (sc.job_name === 'alertmanager') sc.static_configs = [{ targets: o.alertmanagers }];
    else throw new Error(`deploy/ha/prometheus.yml: a job the test does not know: ${sc.job_name}`);
  }
  return cfg;
}

/** Every panel query of grafana/dashboards/*.json with Grafana's variables filled in;
 *  a query with a variable this cannot fill is left out. */
function dashboardQueries(instance: string): Array<{ where: string; expr: string }> {
  type Panel = { title?: string; panels?: Panel[]; targets?: Array<{ expr?: string }> };
  const dir = join(REPO, 'grafana/dashboards');
  const out: Array<{ where: string; expr: string }> = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { panels?: Panel[] };
    const walk = (ps: Panel[] | undefined) => {
      for (const p of ps ?? []) {
        for (const target of p.targets ?? []) {
          if (!target.expr) continue;
          const expr = target.expr
            .replaceAll(/\$\{?__rate_interval\}?/g, '30s')
            .replaceAll(/\$\{?__interval\}?/g, '5s')
            .replaceAll(/\$\{?__range\}?/g, '5m')
            .replaceAll(/\$\{?instance(:\w+)?\}?/g, instance);
          if (!expr.includes('$')) out.push({ where: `${file} ${p.title ?? ''}`, expr });
        }
        walk(p.panels);
      }
    };
    walk(doc.panels);
  }
  return out;
}
