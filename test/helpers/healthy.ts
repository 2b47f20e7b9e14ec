/**
 * Is this machine healthy, and is an alert that arrived from it true? The soaks of the
 * end-to-end tests run on a machine shared with other tests, so an alert about shared
 * state (CPU, load, a fresh boot) may be true; this measures that state independently of
 * lookout and says so. Anything else arriving from a healthy machine is a bug.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { TestContext } from 'node:test';
import { title } from './alertchain.js';
import { promQuery } from './procs.js';
import type { SlackSink, SmtpSink } from './sinks.js';

/** "[LOOKOUT] 🟡 WARNING: HostCpuHigh — ..." → { severity: 'WARNING', alertname: 'HostCpuHigh' } */
export function parseHeadline(text: string): { severity: string; alertname: string } | undefined {
  const m = /^(?:\[LOOKOUT\] )?\S+ ([A-Z]+): (\w+) — /u.exec(text);
  return m ? { severity: m[1]!, alertname: m[2]! } : undefined;
}

interface MachineSample {
  at: number;
  busy: number;
  total: number;
  load15: number;
  /** Processes in state Z (other tests make zombies on purpose). */
  zombies: number;
  /** /proc/vmstat's oom_kill: other tests OOM-kill containers under a memory limit on purpose. */
  oomKills: number;
}

export interface MachineSampler {
  samples: MachineSample[];
  stop(): void;
}

/**
 * /proc/stat, /proc/loadavg and each process's state read by the test itself once a
 * second, from when Prometheus starts: the independent measure of whether a CPU, load or
 * zombie alert is true.
 */
export async function startMachineSampler(): Promise<MachineSampler> {
  const samples: MachineSample[] = [];
  const read = async () => {
    const stat = await readFile('/proc/stat', 'utf8');
    // cpu user nice system idle iowait irq softirq steal (guest and guest_nice are already
    // inside user and nice); idle + iowait is idle — as rules/host.yml counts it.
    const f = stat.split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const busy = total - f[3]! - f[4]!;
    const load15 = Number((await readFile('/proc/loadavg', 'utf8')).split(' ')[2]);
    const oomKills = Number(
      /^oom_kill (\d+)$/m.exec(await readFile('/proc/vmstat', 'utf8'))?.[1] ?? 0,
    );
    samples.push({ at: Date.now(), busy, total, load15, zombies: await countZombies(), oomKills });
  };
  await read();
  const timer = setInterval(() => {
    read().catch((err: unknown) => console.error('machine sampler:', err));
  }, 1000);
  return { samples, stop: () => clearInterval(timer) };
}

async function countZombies(): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    // "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ')'.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') n++;
  }
  return n;
}

/** Slack for sampling at other instants than lookout and Prometheus do. */
const MARGIN = 0.05;

/**
 * Why an alert fired at `at` is true on this machine, or undefined when it is not. Only
 * alerts about shared state qualify: CPU and load (other programs on this machine use
 * them), OOM kills (other tests OOM-kill containers under a memory limit), HostRebooted (a machine that booted minutes ago) and HostClockNotSynchronising
 * (a machine whose clock no NTP daemon disciplines). Anything else firing on a
 * healthy machine is a bug in a collector or a rule.
 */
export function justification(
  alertname: string,
  severity: string,
  at: number,
  machine: MachineSampler | undefined,
  promStartedAt: number,
): string | undefined {
  if (alertname === 'HostRebooted') {
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const age = (at - (Date.now() - uptime * 1000)) / 1000;
    return age < 15 * 60 + 5 ? `booted ${Math.round(age)} s before the alert` : undefined;
  }
  if (alertname === 'HostClockNotSynchronising') {
    // The kernel's clock state is the machine's (no NTP daemon runs on these machines):
    // read here with busybox's adjtimex, not through lookout's addon.
    const out = execFileSync('busybox', ['adjtimex'], { encoding: 'utf8' });
    const state = Number(/return value:\s*(-?\d+)/.exec(out)?.[1]);
    const maxerror = Number(/maxerror:\s*(\d+)/.exec(out)?.[1]);
    return state === 5 && maxerror >= 16_000_000
      ? `busybox adjtimex: clock not synchronised (return value 5), maxerror ${maxerror / 1e6} s`
      : undefined;
  }
  if (!machine) return undefined;
  if (alertname === 'HostCpuHigh') {
    // rate(...[5m]) as Prometheus evaluated it: the window back 5 minutes (or to
    // Prometheus's start) from an evaluation before the message, which comes after the
    // shortened `for` (15 s), the scrape and rule lag and group_wait. A window ending at
    // the message itself takes in the seconds after a burst and can read lower; any
    // evaluation in the half minute before it counts.
    const threshold = severity === 'warning' ? 0.9 : 0.7;
    let best = 0;
    for (const end of machine.samples.filter((s) => s.at <= at && s.at >= at - 30_000)) {
      const from = Math.max(promStartedAt, end.at - 5 * 60_000);
      const first = machine.samples.find((s) => s.at >= from - 1000);
      if (!first || end.total === first.total) continue;
      best = Math.max(best, (end.busy - first.busy) / (end.total - first.total));
    }
    // The tiers of rules/host.yml: info over 70 % (never sent), warning over 90 %.
    return best > threshold - MARGIN
      ? `CPU ${(best * 100).toFixed(0)} % busy over a rate window in the half minute before the alert (threshold ${threshold * 100} %)`
      : undefined;
  }
  if (alertname === 'HostZombieProcesses') {
    // Zombies are host-wide: other tests on this machine make them on purpose. True when
    // the test saw some during the rule's longest look-back (scaled), up to the alert.
    const seen = machine.samples.filter((s) => s.at <= at && s.at >= promStartedAt);
    const most = Math.max(0, ...seen.map((s) => s.zombies));
    return most > 0 ? `up to ${most} zombie processes on this machine before the alert` : undefined;
  }
  if (alertname === 'HostOomKill') {
    // The kernel's oom_kill counts a container killed at its own memory limit too, and
    // the containers tests do that on purpose while this soak runs beside them.
    const seen = machine.samples.filter((s) => s.at <= at && s.at >= promStartedAt);
    const kills = seen.length > 1 ? seen.at(-1)!.oomKills - seen[0]!.oomKills : 0;
    return kills > 0
      ? `${kills} OOM kill(s) on this machine (/proc/vmstat) before the alert`
      : undefined;
  }
  if (alertname === 'HostLoadHigh') {
    const recent = machine.samples.filter((s) => s.at <= at).at(-1);
    const perCore = recent ? recent.load15 / availableParallelism() : 0;
    // info over 1.5 per core (never sent), warning over 3.
    const threshold = severity === 'warning' ? 3 : 1.5;
    return perCore > threshold * (1 - MARGIN)
      ? `load15 ${perCore.toFixed(2)} per core (threshold ${threshold})`
      : undefined;
  }
  return undefined;
}

/**
 * Watches the sinks for ms: every message that arrives must be justified by the
 * machine's measured state (a resolved notice by its firing one), and at the end no
 * unjustified alert but Watchdog may fire in Prometheus. Returns the justified ones.
 */
export async function assertQuiet(
  t: TestContext,
  o: {
    smtp: SmtpSink;
    slack: SlackSink;
    promUrl: string;
    promStartedAt: number;
    machine: MachineSampler | undefined;
    ms: number;
  },
): Promise<Map<string, string>> {
  const justified = new Map<string, string>();
  const judge = (text: string, at: number): boolean => {
    const parsed = parseHeadline(text);
    if (!parsed) return false;
    const { severity, alertname } = parsed;
    if (severity === 'RESOLVED') return justified.has(alertname);
    const why = justification(alertname, severity.toLowerCase(), at, o.machine, o.promStartedAt);
    if (why && !justified.has(alertname)) {
      justified.set(alertname, why);
      t.diagnostic(`${alertname} ${severity} is true on this machine: ${why}`);
    }
    return why !== undefined;
  };
  const started = Date.now();
  const deadline = started + o.ms;
  while (Date.now() < deadline) {
    const unexpected = [
      ...o.smtp.received.map((m) => ({ text: m.subject, at: m.receivedAt })),
      ...o.slack.received.map((m) => ({ text: title(m), at: m.receivedAt })),
    ].filter((m) => !judge(m.text, m.at));
    assert.deepEqual(
      unexpected.map((m) => m.text),
      [],
      `alert messages on a healthy machine after ${Date.now() - started} ms`,
    );
    await new Promise((r) => setTimeout(r, 1000));
  }
  const now = Date.now();
  // Watchdog fires always, by design.
  const firing = (await promQuery(o.promUrl, 'ALERTS{alertstate="firing",alertname!="Watchdog"}'))
    .map((s) => `🔴 ${String(s.metric.severity).toUpperCase()}: ${s.metric.alertname} — `)
    .filter((text) => !judge(text, now));
  assert.deepEqual(firing, [], 'alerts firing in Prometheus at the end of the soak');
  return justified;
}

/**
 * A regular expression matching every string that does not start with `prefix`, without
 * lookarounds (lookout takes RE2 syntax, as node_exporter does): shorter than it and a
 * piece of it, or differing from it at some character.
 */
export function notStartingWith(prefix: string): string {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alternatives: string[] = [];
  for (let i = 0; i < prefix.length; i++) {
    alternatives.push(`${esc(prefix.slice(0, i))}$`);
    alternatives.push(`${esc(prefix.slice(0, i))}[^${esc(prefix[i]!)}]`);
  }
  return `^(?:${alternatives.join('|')})`;
}
