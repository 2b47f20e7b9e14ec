/**
 * The whole alerting chain on real parts, on this machine:
 *
 *   lookout (dist/, 1 s collectors) → Prometheus (1 s scrape and evaluation, a copy of
 *   rules/*.yml with only `for:` and `keep_firing_for:` shortened) → Alertmanager
 *   (alertmanager.yml with only addresses, paths and group timings changed;
 *   repeat_interval stays 1h) → a real SMTP server and a Slack webhook sink.
 *
 * 1. Soak: a healthy machine sends nothing for 3 minutes.
 * 2. Real faults, each undone again: a 4 MiB tmpfs filled past 90 %, lookout killed. For
 *    each: the critical email and Slack message arrive with the exact subject (the disk's
 *    says how fast it fills and when it will be full), the warning of the same alert is
 *    inhibited, the resolved notice arrives. 25 zombie processes: a warning in Slack and
 *    its resolved notice, no email.
 *    Then two faults left in place to the end: Alertmanager's SMTP login broken (the SMTP
 *    server requires a password, the password file gains a trailing newline) ends as a
 *    Slack message that notifications are failing; a watched process crash-looping (really
 *    started and killed, again and again) ends as HostWatchedProcessFlapping.
 * 3. No message is sent twice during the run. (That is no duplicate sends within the
 *    minutes watched, not the 1h cooldown itself: test/alertmanager.test.ts proves that
 *    repeat_interval is the cooldown, with a 15 s copy.)
 * 4. The CPU culprit, on a chain of its own started while a CPU hog of a known name (a shell
 *    loop under a name of its own) burns a CPU, with HostCpuHigh overridden for that
 *    instance as rules/host.yml's header shows, at a line the hog alone crosses on this
 *    2-CPU machine (50 %): the Slack warning names the hog among the busiest processes
 *    (Prometheus's template `query` on lookout_top_process_cpu_usage_ratio); no email, as
 *    for every warning. On the same chain, a memory hog of a known name holding 2 GiB,
 *    with HostMemoryHigh's warning overridden for that instance at any use: its Slack
 *    warning names the hog among the largest processes
 *    (lookout_top_process_resident_memory_bytes).
 * The time from each fault (and each fix) to each message is printed as it arrives, as one
 * table at the end, and written as JSON to a file in the OS temp dir (the path is printed).
 *
 * Needs root (mount) and `npm run build`. Takes about 5 minutes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir, statfs, symlink, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCommand, runLookout, shippedLinkBases } from '../helpers/alerting.js';
import { AlertChain, DELIVERY_MS, QUIET_MS, color, title } from '../helpers/alertchain.js';
import {
  assertQuiet,
  notStartingWith,
  startMachineSampler,
  type MachineSampler,
} from '../helpers/healthy.js';
import { eventually, promQuery, tempDir, type Running } from '../helpers/procs.js';
import type { Email, SlackSink, SmtpSink } from '../helpers/sinks.js';

/** `for:` in the rule copy: one minute becomes one second (15m → 15s, 5m → 5s, 2m → 2s).
 *  Proportional, so a critical with a shorter `for` than its warning still fires first. */
const FOR_SCALE = 1 / 60;
/** "A soak of a few minutes" (issue 4), bounded so the whole file stays under ~6 minutes. */
const SOAK_MS = 180_000;
const TMPFS_BYTES = 4 * 1024 * 1024;
/** Where the test mounts its tmpfs: the only mount points its lookout watches. */
const FILL_PREFIX = join(tmpdir(), 'lookout-e2e-fill-');
const ZOMBIES = 25;
/** The watched name the crash-loop fault starts and kills (a symlink to sleep: comm). */
const FLAPPER = 'lookoutflap';
/** The CPU hog's name (a symlink to sh: comm is the link's name). */
const HOG = 'lookoutcpuhog';
/** The hog's longest life: the chain's start, the alert's budget and a margin; spawn()
 *  kills it then. */
const HOG_MAX_MS = 240_000;
/** The override's line for the hog's instance: one CPU of two busy crosses it. */
const HOG_LINE = 0.5;
/** The memory hog's name (a symlink to perl) and the string it builds. */
const MEMHOG = 'lookoutmemhog';
const MEMHOG_BYTES = 1024 * 1024 * 1024;
/** The public addresses links.tmpl puts in front of the rules' paths. */
const LINKS = await shippedLinkBases();

describe('alerting end to end: lookout → Prometheus → Alertmanager → email + Slack', () => {
  let chain: AlertChain;
  let smtp: SmtpSink;
  let slack: SlackSink;
  let prom: Running;
  let flapper: ChildProcess | undefined;
  let flapping = false;
  let mountDir: string | undefined;
  let mounted = false;
  let zombieParent: ChildProcess | undefined;
  let machine: MachineSampler | undefined;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test mounts a tmpfs and needs root');
    machine = await startMachineSampler();
    // Fast collectors; the watched process is Prometheus, which lives as long as the test
    // (the default watch list, nginx and dockerd, is started and stopped by other tests).
    chain = await AlertChain.start({
      name: 'e2e',
      forScale: FOR_SCALE,
      lookoutConfig: [
        'collectors:',
        '  host: { interval: 1s, timeout: 1s }',
        // Only this test's tmpfs: the machine is shared with other tests that mount fault
        // disks and write to /, which the soak would take for this host's alerts (seen:
        // HostFilesystemAlmostFull on another test's disk, HostFilesystemFillingUp on / from
        // a few minutes of writes with `for` shortened to a minute). The filesystem rules
        // have their promtool tests; here the tmpfs fault below is their real fault.
        `  filesystem: { interval: 1s, timeout: 1s, mount_points_exclude: '${notStartingWith(FILL_PREFIX)}' }`,
        `  processes: { interval: 1s, timeout: 1s, watch: [prometheus, ${FLAPPER}] }`,
        '',
      ].join('\n'),
    });
    ({ smtp, slack } = chain);
    prom = chain.prom!;
    for (const name of ['HostFilesystemAlmostFull', 'LookoutDown']) {
      assert.ok(
        chain.timings.some((r) => r.alert === name && r.severity === 'critical'),
        `rules/*.yml: no critical ${name}`,
      );
    }
  });

  after(async () => {
    flapping = false;
    if (flapper && flapper.exitCode === null && flapper.signalCode === null)
      flapper.kill('SIGKILL');
    if (zombieParent && zombieParent.exitCode === null && zombieParent.signalCode === null) {
      zombieParent.kill('SIGKILL');
    }
    if (mountDir) {
      if (mounted) {
        const r = await runCommand('umount', [mountDir]);
        if (r.code !== 0) await runCommand('umount', ['-l', mountDir]);
      }
      await rmdir(mountDir).catch((err: unknown) => console.error(`rmdir ${mountDir}:`, err));
    }
    machine?.stop();
    await chain?.stop();
  });

  test('the rule copy only shortens for: and keep_firing_for:', (t) => {
    for (const r of chain.timings)
      t.diagnostic(`${r.alert} ${r.severity}: for ${r.forOriginal} → ${r.forShortened}`);
    const fs = chain.timings.find(
      (r) => r.alert === 'HostFilesystemAlmostFull' && r.severity === 'critical',
    );
    assert.equal(fs?.forShortened, '5s');
  });

  test('soak: a healthy machine sends nothing', { timeout: SOAK_MS + 60_000 }, async (t) => {
    // "Healthy" is checked, not assumed: an alert is a failure unless this machine's own
    // state, measured here without lookout, makes it true (see justification()).
    await assertQuiet(t, {
      smtp,
      slack,
      promUrl: prom.url,
      promStartedAt: chain.promStartedAt,
      machine,
      ms: SOAK_MS,
    });
    // The rule's Watchdog, through the shipped heartbeat route, the whole soak long.
    const pings = chain.heartbeat.received.filter((m) =>
      m.body.alerts?.some((a) => a.labels?.alertname === 'Watchdog'),
    );
    assert.ok(pings.length >= 2, `${pings.length} heartbeats during the soak`);
    const pending = await promQuery(prom.url, 'ALERTS{alertstate="pending"}');
    for (const p of pending)
      t.diagnostic(`pending at the end of the soak: ${JSON.stringify(p.metric)}`);
  });

  test(
    'a tmpfs filled past 90 %: HostFilesystemAlmostFull critical, warning inhibited, resolved',
    { timeout: 180_000 },
    async (t) => {
      mountDir = await mkdtemp(FILL_PREFIX);
      const m = await runCommand('mount', [
        '-t',
        'tmpfs',
        '-o',
        `size=${TMPFS_BYTES}`,
        'lookout-e2e',
        mountDir,
      ]);
      assert.equal(m.code, 0, m.stderr);
      mounted = true;
      const labels = { mountpoint: mountDir };
      await eventually(
        async () =>
          (await promQuery(prom.url, `lookout_filesystem_size_bytes{mountpoint="${mountDir}"}`))
            .length === 1,
        20_000,
        'lookout to report the new tmpfs',
      );
      const file = join(mountDir, 'fill');
      const faultAt = Date.now();
      // One write: the next collection sees > 90 % at once, so warning and critical start
      // their `for` in the same evaluation, as they would on a disk that filled overnight.
      await writeFile(file, Buffer.alloc(Math.floor(TMPFS_BYTES * 0.95), 0x6c));
      const st = await statfs(mountDir);
      const used = 1 - st.bavail / st.blocks;
      t.diagnostic(`tmpfs ${mountDir} is ${(used * 100).toFixed(1)} % used`);
      assert.ok(used > 0.9 && used < 1, `fill reached ${used}`);

      await chain.criticalCycle(t, {
        name: 'filesystem',
        alertname: 'HostFilesystemAlmostFull',
        labels,
        faultAt,
        whileFiring: async () => {
          // The message says how fast it fills and when it will be full (Prometheus's
          // template `query`, on this mount's own series).
          const mail = smtp.received.find((m) =>
            m.subject.startsWith('[LOOKOUT] 🔴 CRITICAL: HostFilesystemAlmostFull'),
          );
          assert.ok(mail, 'the critical email');
          assert.match(
            mail.text,
            /Filling at [\d.]+\S*B an hour over the last 6 hours, full in about /,
            mail.text,
          );
          await chain.expectWarningInhibited('HostFilesystemAlmostFull', labels);
        },
        fix: () => rm(file),
      });
    },
  );

  test(
    '25 zombie processes: HostZombieProcesses warning to Slack only, resolved',
    { timeout: 180_000 },
    async (t) => {
      // perl forks children that exit at once and never waits for them: they stay zombies
      // until the parent dies and PID 1 reaps them. A pile of zombies is a warning (Slack),
      // never a page: nothing breaks until the pid limit is near.
      const faultAt = Date.now();
      zombieParent = spawn(
        'perl',
        [
          '-e',
          `for (1..${ZOMBIES}) { my $p = fork(); die "fork: $!" unless defined $p; exit 0 if $p == 0 } sleep 600`,
        ],
        { stdio: 'ignore' },
      );
      const parent = zombieParent;
      const zombies = await eventually(
        async () => {
          const pids = await zombieChildren(parent.pid!);
          return pids.length >= ZOMBIES ? pids : undefined;
        },
        5_000,
        `${ZOMBIES} zombie children of perl`,
      );
      const summary = chain.summaryOf('HostZombieProcesses', 'warning', {});
      const mailsBefore = smtp.received.length;
      const yellow = await slack.waitFor(
        (m) => title(m) === `🟡 WARNING: HostZombieProcesses — ${summary}`,
        DELIVERY_MS,
        'the HostZombieProcesses Slack warning',
      );
      chain.record(t, 'zombies', 'slack', faultAt, yellow);
      assert.equal(color(yellow), 'warning');
      const text = JSON.stringify(yellow.body);
      assert.ok(text.includes(`${LINKS.lookout}/runbooks#hostzombieprocesses`), 'runbook link');
      assert.ok(/\d+ zombie processes on /.test(text) && text.includes(chain.instance), text);
      const fixedAt = Date.now();
      parent.kill('SIGKILL');
      await eventually(
        async () => zombies.every((pid) => !existsSync(`/proc/${pid}`)),
        10_000,
        'PID 1 to reap the orphaned zombies',
      );
      const green = await slack.waitFor(
        (m) => title(m).startsWith(`✅ RESOLVED: HostZombieProcesses — ${summary}`),
        DELIVERY_MS,
        'the resolved HostZombieProcesses Slack message',
      );
      chain.record(t, 'zombies', 'resolved slack', fixedAt, green);
      assert.equal(
        smtp.received.slice(mailsBefore).filter((m) => m.subject.includes('HostZombieProcesses'))
          .length,
        0,
        'no email for zombies',
      );
    },
  );

  test(
    'lookout killed: LookoutDown critical, resolved after restart',
    { timeout: 180_000 },
    async (t) => {
      const faultAt = Date.now();
      const lookout = chain.lookout!;
      lookout.child.kill('SIGKILL');
      await new Promise((r) => lookout.child.once('exit', r));
      await chain.criticalCycle(t, {
        name: 'lookout down',
        alertname: 'LookoutDown',
        faultAt,
        fix: async () => {
          chain.lookout = await chain.startLookout();
        },
      });
    },
  );

  test(
    'SMTP login broken: AlertmanagerNotificationsFailing reaches Slack',
    { timeout: 180_000 },
    async (t) => {
      // The SMTP server now insists on the right password, and the password file gets the
      // trap the runbook names: a trailing newline (Alertmanager 0.25 sends it as part of
      // the password). Alertmanager reads the file at each send.
      const { amConfig, am } = chain;
      smtp.requirePassword(amConfig.smtpPassword);
      await writeFile(join(amConfig.secretsDir, 'smtp_password'), amConfig.smtpPassword + '\n');
      const mailsBefore = smtp.received.length;
      // The fault shows at the first email Alertmanager tries: a critical through the path
      // a person would use to test it.
      const faultAt = Date.now();
      const sent = await runLookout([
        'alert-test',
        '--alertmanager',
        am.url,
        '--severity',
        'critical',
      ]);
      assert.equal(sent.code, 0, sent.stderr);
      const summary = chain.summaryOf('AlertmanagerNotificationsFailing', 'critical', {
        instance: `127.0.0.1:${am.port}`,
        job: 'alertmanager',
        integration: 'email',
      });
      const failing = await slack.waitFor(
        (m) => title(m) === `🔴 CRITICAL: AlertmanagerNotificationsFailing — ${summary}`,
        DELIVERY_MS + 30_000,
        'the AlertmanagerNotificationsFailing Slack message',
      );
      chain.record(t, 'SMTP login broken', 'slack', faultAt, failing);
      assert.equal(color(failing), 'danger');
      assert.ok(
        JSON.stringify(failing.body).includes(
          `${LINKS.lookout}/runbooks#alertmanagernotificationsfailing`,
        ),
        'the Slack message links the runbook',
      );
      assert.equal(smtp.received.length, mailsBefore, 'no email got through the broken login');
      // Put the password back; the email path is what the rest of the run checks. (The
      // alert stays until its 5-minute rate window has passed, after this file ends.)
      await writeFile(join(amConfig.secretsDir, 'smtp_password'), amConfig.smtpPassword);
    },
  );

  test(
    'a watched process crash-looping: HostWatchedProcessFlapping critical',
    { timeout: 180_000 },
    async (t) => {
      // A real process of the watched name (a symlink to sleep: comm is the link's name),
      // started and killed again and again, down each time for less than
      // HostWatchedProcessNotRunning's shortened `for` (2 s), as a supervisor restarting a
      // crashing service does. The loop goes on until the alert arrives or time runs out.
      const dir = await tempDir('lookout-e2e-flap-');
      const bin = join(dir, FLAPPER);
      await symlink('/bin/sleep', bin);
      const UP_MS = 2_500;
      const DOWN_MS = 1_100;
      const subject = `[LOOKOUT] 🔴 CRITICAL: HostWatchedProcessFlapping — ${chain.summaryOf('HostWatchedProcessFlapping', 'critical', { name: FLAPPER })}`;
      let restarts = 0;
      flapping = true;
      const start = () => {
        flapper = spawn(bin, ['600'], { stdio: 'ignore' });
        restarts++;
      };
      // The first start is the baseline (the name "ran within 24h"); the fault is the
      // first crash after lookout has seen it running.
      start();
      await eventually(
        async () =>
          (await promQuery(prom.url, `lookout_watched_processes{name="${FLAPPER}"} > 0`)).length ===
          1,
        20_000,
        `lookout to see ${FLAPPER} running`,
      );
      const faultAt = Date.now();
      const loop = (async () => {
        const deadline = faultAt + DELIVERY_MS + 60_000;
        while (flapping && Date.now() < deadline) {
          const p = flapper!;
          const exited = new Promise((r) => p.once('exit', r));
          p.kill('SIGKILL');
          await exited;
          await sleep(DOWN_MS);
          if (!flapping) break;
          start();
          await sleep(UP_MS);
        }
      })();
      try {
        const mail = await smtp.waitFor(
          (m) => m.subject === subject,
          DELIVERY_MS + 60_000,
          subject,
        );
        chain.record(t, 'crash loop', 'email', faultAt, mail);
        const red = await slack.waitFor(
          (m) => title(m) === subject.replace('[LOOKOUT] ', ''),
          DELIVERY_MS,
          'the HostWatchedProcessFlapping Slack message',
        );
        chain.record(t, 'crash loop', 'slack', faultAt, red);
        assert.equal(color(red), 'danger');
        t.diagnostic(`${restarts} starts of ${FLAPPER} until the alert`);
      } finally {
        // Leave the last one running: a dead watched process would page as NotRunning.
        flapping = false;
        await loop;
        if (flapper?.exitCode !== null || flapper.signalCode !== null) start();
      }
    },
  );

  // Not the cooldown (repeat_interval 1h is longer than this run; test/alertmanager.test.ts
  // proves the cooldown with a 15 s copy): this shows that no group_interval tick and no
  // re-evaluation during the run made Alertmanager send an unchanged message again.
  test('no message is sent twice during the run (no duplicate sends)', async (t) => {
    await new Promise((r) => setTimeout(r, QUIET_MS));
    const all = [...smtp.received, ...slack.received];
    const observedS = all.length
      ? Math.round((Date.now() - Math.min(...all.map((m) => m.receivedAt))) / 1000)
      : 0;
    const inOrder = [
      ...smtp.received.map((m: Email) => ({ text: `email ${m.subject}`, at: m.receivedAt })),
      ...slack.received.map((m) => ({ text: `slack ${title(m)}`, at: m.receivedAt })),
    ].sort((a, b) => a.at - b.at);
    const sent = inOrder.map((m) => m.text);
    for (const s of sent) t.diagnostic(s);
    t.diagnostic(`watched ${observedS} s since the first message`);
    // A duplicate is the same message again while nothing changed. An alert that resolved
    // and fired again (CPU or load on this shared machine crossing its line twice) sends
    // its firing message twice with a RESOLVED between: that is two events, not a repeat.
    const twice: string[] = [];
    const last = new Map<string, string>();
    for (const text of sent) {
      const m = /^(email|slack) (?:\[LOOKOUT\] )?\S+ [A-Z]+: (\w+) — /u.exec(text);
      const key = m ? `${m[1]} ${m[2]}` : text;
      if (last.get(key) === text) twice.push(text);
      last.set(key, text);
    }
    assert.deepEqual(twice, [], `messages sent again with no change within ${observedS} s`);
    // 2 critical faults × (firing + resolved) × (email + Slack), the zombie warning and its
    // resolved notice in Slack, plus HostRebooted on a fresh machine,
    // plus the notifications-failing and flapping messages.
    assert.ok(sent.filter((s) => !s.includes('HostRebooted')).length >= 10, sent.join('\n'));
  });
});

describe('the culprits: HostCpuHigh names a real CPU hog, HostMemoryHigh a memory hog', () => {
  let chain: AlertChain | undefined;
  let hog: ChildProcess | undefined;
  let memhog: ChildProcess | undefined;
  let faultAt = 0;
  let memFaultAt = 0;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'the hog runs at nice -10, which needs root');
    // The shipped tiers (70 % and 90 % of a 5-minute average) are far above what a hog
    // reaches in a test's minute on a quiet machine. The override rules/host.yml's header
    // describes, made in place: the generic rules exclude this instance, and for it the
    // same rule (name, severity, annotations) has its own line.
    chain = await AlertChain.start({
      name: 'e2e-cpu',
      forScale: FOR_SCALE,
      lookoutConfig: [
        'collectors:',
        '  host: { interval: 1s, timeout: 1s }',
        '  filesystem: { enabled: false }',
        '  processes: { interval: 1s, timeout: 1s, watch: [] }',
        '',
      ].join('\n'),
      editRules: async (rulesDir, instance) => {
        const file = join(rulesDir, 'host.yml');
        const doc = JSON.parse(await readFile(file, 'utf8')) as {
          groups: Array<{ rules: Array<Record<string, unknown>> }>;
        };
        const series = 'instance:lookout_cpu_utilisation:rate5m';
        let warning = 0;
        for (const r of doc.groups.flatMap((g) => g.rules)) {
          if (r.alert !== 'HostCpuHigh') continue;
          const expr = String(r.expr);
          assert.ok(expr.startsWith(`${series} >`), expr);
          const generic = expr.replace(series, `${series}{instance!="${instance}"}`);
          const severity = (r.labels as Record<string, string> | undefined)?.severity;
          r.expr =
            severity === 'warning'
              ? `${generic} or ${series}{instance="${instance}"} > ${HOG_LINE}`
              : generic;
          if (severity === 'warning') warning++;
        }
        assert.equal(warning, 1, 'rules/host.yml has one HostCpuHigh warning');
        // HostMemoryHigh's warning the same way, for that instance at any use: the hog
        // below is what the message must name, not a line the machine must cross.
        const memory = 'instance:lookout_memory_utilisation:ratio';
        let memWarning = 0;
        for (const r of doc.groups.flatMap((g) => g.rules)) {
          if (r.alert !== 'HostMemoryHigh') continue;
          if ((r.labels as Record<string, string> | undefined)?.severity !== 'warning') continue;
          const expr = String(r.expr);
          assert.ok(expr.startsWith(`${memory} >`), expr);
          r.expr = `${expr.replace(memory, `${memory}{instance!="${instance}"}`)} or ${memory}{instance="${instance}"} > 0`;
          memWarning++;
        }
        assert.equal(memWarning, 1, 'rules/host.yml has one HostMemoryHigh warning');
        await writeFile(file, JSON.stringify(doc, null, 2));
      },
    });
    // Started once the chain is up: at nice -10 on two cores it would slow the chain's start.
    const dir = await tempDir('lookout-e2e-hog-');
    const bin = join(dir, HOG);
    await symlink('/bin/sh', bin);
    faultAt = Date.now();
    // A shell loop that never forks: all its time is its own. On this shared machine it
    // must get a CPU's worth to rank among the busiest: at nice -10 (nice execs it, the
    // pid is the hog's), in a session of its own (detached: setsid) whose autogroup is
    // also at nice -10, or the scheduler shares the CPUs per session first. spawn() kills
    // it after HOG_MAX_MS whatever happens; the test and after() kill it sooner.
    hog = spawn('nice', ['-n', '-10', bin, '-c', 'while :; do :; done'], {
      stdio: 'ignore',
      detached: true,
      timeout: HOG_MAX_MS,
      killSignal: 'SIGKILL',
    });
    assert.ok(hog.pid, 'the hog started');
    // Without CONFIG_SCHED_AUTOGROUP (or with it off) there is no such file: nice alone.
    await writeFile(`/proc/${hog.pid}/autogroup`, '-10').catch((err: unknown) =>
      console.error(`autogroup nice not set: ${String(err)}`),
    );
    // A 1 GiB string written and held (perl keeps it twice: about 2 GiB resident), under
    // a name of its own (perl through a symlink: comm is the link's name); killed after
    // HOG_MAX_MS whatever happens.
    const membin = join(dir, MEMHOG);
    await symlink('/usr/bin/perl', membin);
    memFaultAt = Date.now();
    memhog = spawn(membin, ['-e', `my $x = "x" x ${MEMHOG_BYTES}; sleep 600`], {
      stdio: 'ignore',
      timeout: HOG_MAX_MS,
      killSignal: 'SIGKILL',
    });
    assert.ok(memhog.pid, 'the memory hog started');
  });

  after(async () => {
    for (const p of [hog, memhog]) {
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    await chain?.stop();
  });

  test(
    'the HostMemoryHigh Slack warning names the memory hog among the largest processes',
    { timeout: 180_000 },
    async (t) => {
      const c = chain!;
      const summary = c.summaryOf('HostMemoryHigh', 'warning', {});
      try {
        const yellow = await c.slack.waitFor(
          (m) => title(m) === `🟡 WARNING: HostMemoryHigh — ${summary}`,
          DELIVERY_MS + 60_000,
          'the HostMemoryHigh Slack warning',
        );
        c.record(t, 'memory hog', 'slack', memFaultAt, yellow);
        const text = JSON.stringify(yellow.body);
        t.diagnostic(text);
        assert.match(
          text,
          new RegExp(`Largest processes: [^"]*\\b${MEMHOG} \\d+(\\.\\d+)?[KMGT]iB`),
          'the message names the hog with its resident memory',
        );
        assert.ok(text.includes(`${LINKS.lookout}/runbooks#hostmemoryhigh`), 'runbook link');
      } finally {
        memhog?.kill('SIGKILL');
      }
    },
  );

  test(
    'the HostCpuHigh Slack warning names the hog among the busiest processes, no email',
    { timeout: 180_000 },
    async (t) => {
      const c = chain!;
      const summary = c.summaryOf('HostCpuHigh', 'warning', {});
      try {
        const yellow = await c.slack.waitFor(
          (m) => title(m) === `🟡 WARNING: HostCpuHigh — ${summary}`,
          DELIVERY_MS + 60_000,
          'the HostCpuHigh Slack warning',
        );
        c.record(t, 'CPU hog', 'slack', faultAt, yellow);
        const text = JSON.stringify(yellow.body);
        t.diagnostic(text);
        const named = new RegExp(
          `Busiest processes \\(100% is one CPU\\): [^"]*\\b${HOG} \\d+(\\.\\d+)?%`,
        );
        if (!named.test(text)) {
          // What the template's query read, and whether the processes collector kept up.
          for (const q of [
            'topk(5, lookout_top_process_cpu_usage_ratio)',
            'lookout_collector_success',
            'lookout_collector_duration_seconds',
          ])
            t.diagnostic(`${q}: ${JSON.stringify(await promQuery(c.promUrl, q))}`);
        }
        assert.match(text, named, 'the message names the hog with its share of a CPU');
        assert.ok(text.includes(`${LINKS.lookout}/runbooks#hostcpuhigh`), 'runbook link');
        // Warnings go to Slack only (alertmanager.yml): a mail would be a routing fault.
        await new Promise((r) => setTimeout(r, QUIET_MS));
        const mails = c.smtp.received.filter((m) => m.subject.includes('HostCpuHigh'));
        assert.deepEqual(
          mails.map((m) => m.subject),
          [],
          'no email for a warning',
        );
      } finally {
        hog?.kill('SIGKILL');
      }
    },
  );
});

/** Pids of the zombie children of ppid (ps exits 1 when there are none). */
async function zombieChildren(ppid: number): Promise<number[]> {
  const r = await runCommand('ps', ['-o', 'pid=,stat=', '--ppid', String(ppid)]);
  return r.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat]) => pid && stat?.startsWith('Z'))
    .map(([pid]) => Number(pid));
}
