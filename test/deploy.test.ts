/**
 * The ways to run lookout: Dockerfile, docker-compose.yml and the systemd unit.
 * No image can be pulled or built and there is no systemd here, so the files are
 * checked as data, cross-checked against each other and against the configs they
 * mount, and every command they run that can run here (the health check, the
 * unit's ExecStart and ExecStartPre, `lookout check`) is run for real.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { parseDuration } from '../src/config/duration.js';
import { parseConfig } from '../src/collectors/config.js';
import {
  REPO,
  freePort,
  startLookout,
  startProcess,
  tempDir,
  type Running,
} from './helpers/procs.js';

const run = promisify(execFile);
const read = (rel: string) => readFileSync(join(REPO, rel), 'utf8');
/**
 * Node flags live in bin/lookout alone; `npm start`, the image and the unit run lookout
 * through it, so none of them may name node itself.
 */
const NPM_START = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts
  .start;

describe('bin/lookout, the one place the Node flags live', () => {
  it('npm start runs lookout serve through it', () => {
    assert.equal(NPM_START, 'bin/lookout serve');
  });
  it('execs node with its flags on dist/cli.js, keeping the arguments', () => {
    const script = read('bin/lookout');
    assert.match(
      script,
      /^exec node( --[\w-]+(=\S+)?)* "\$\(dirname .*\)\/\.\.\/dist\/cli\.js" "\$@"$/m,
    );
    assert.doesNotMatch(script, /--no-opt/, 'the optimizing compiler stays on');
  });
});

/** What a stop of lookout may take with default settings: drain, then flush. */
const SHUTDOWN_MS = (() => {
  const { drain_timeout, flush_timeout } = parseConfig({}).shutdown;
  return drain_timeout + flush_timeout;
})();

// ---------------------------------------------------------------- docker-compose.yml

interface Service {
  build?: string | { context: string };
  image?: string;
  volumes?: string[];
  secrets?: string[];
  command?: string[];
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file: string }>;
}
const compose = load(read('docker-compose.yml')) as Compose;

interface Mount {
  service: string;
  source: string;
  target: string;
  mode: string;
}
const mounts: Mount[] = Object.entries(compose.services).flatMap(([service, s]) =>
  (s.volumes ?? []).map((v) => {
    const [source = '', target = '', mode = 'rw'] = v.split(':');
    return { service, source, target, mode };
  }),
);
/** Host paths outside the repo that the stack mounts on purpose. */
const HOST_PATHS = new Set(['/proc', '/sys', '/', '/var/run/docker.sock']);
/** Created by the user (docs/deployment.md, docker-compose.yml header); .gitignore keeps it out of git. */
const USER_CREATED = './secrets';

/** The repo path a container path comes from, through the service's bind mounts. */
function hostPathOf(service: string, containerPath: string): string | undefined {
  const m = mounts
    .filter((m) => m.service === service && m.source.startsWith('.'))
    .find((m) => containerPath === m.target || containerPath.startsWith(m.target + '/'));
  return m && join(REPO, m.source, containerPath.slice(m.target.length));
}

/** Files matching a path whose last segment may hold `*` (what Prometheus and Alertmanager glob). */
function globFiles(path: string): string[] {
  const dir = posix.dirname(path);
  const base = posix.basename(path);
  if (!existsSync(dir)) return [];
  const re = new RegExp(`^${base.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);
  return readdirSync(dir).filter((f) => re.test(f));
}

describe('docker-compose.yml', () => {
  it('is valid for docker-compose (config -q)', async () => {
    // Missing bind sources and secret files are not errors for `config`; nothing to fake.
    const res = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: REPO,
    }).catch((err: { code?: number; stderr?: string }) => err);
    assert.equal((res as { code?: number }).code ?? 0, 0, res.stderr);
  });

  it('runs lookout, Prometheus, Alertmanager and Grafana, with pinned images and restart policies', () => {
    // Services behind a compose profile (the auto-restart proxy) start only when asked for.
    const always = Object.entries(compose.services).filter(
      ([, s]) => !(s as { profiles?: string[] }).profiles,
    );
    assert.deepEqual(always.map(([name]) => name).sort(), [
      'alertmanager',
      'grafana',
      'lookout',
      'prometheus',
    ]);
    assert.equal(compose.services.lookout?.build, '.');
    for (const [name, s] of Object.entries(compose.services)) {
      assert.ok(
        (s as { restart?: string }).restart === 'unless-stopped',
        `${name}: restart policy`,
      );
      if (name !== 'lookout')
        assert.match(s.image ?? '', /:v?\d+\.\d+\.\d+$/, `${name}: image pinned to a version`);
    }
  });

  it('gives lookout the time its shutdown takes before SIGKILL (stop_grace_period)', () => {
    const grace = parseDuration(compose.services.lookout?.stop_grace_period ?? '10s');
    assert.ok(grace !== undefined && grace > SHUTDOWN_MS, `${grace} ms ≤ ${SHUTDOWN_MS} ms`);
  });

  it('mounts only paths that exist in the repo, the host paths lookout reads, and named volumes', () => {
    assert.ok(mounts.length > 0);
    for (const m of mounts) {
      const where = `${m.service}: ${m.source}:${m.target}`;
      if (m.source.startsWith('./')) {
        if (m.source === USER_CREATED || m.source.startsWith(USER_CREATED + '/')) continue;
        const p = join(REPO, m.source);
        assert.ok(existsSync(p), `${where}: ${m.source} does not exist in the repo`);
        // Docker creates a missing or mistyped file source as an empty directory.
        if (/\.(ya?ml|json)$/.test(m.target))
          assert.ok(statSync(p).isFile(), `${where}: expected a file`);
      } else if (m.source.startsWith('/')) {
        assert.ok(HOST_PATHS.has(m.source), `${where}: unexpected host path`);
        assert.match(m.mode, /^ro\b/, `${where}: host paths are mounted read-only`);
      } else {
        assert.ok(m.source in (compose.volumes ?? {}), `${where}: undeclared named volume`);
      }
    }
    for (const [name, s] of Object.entries(compose.secrets ?? {}))
      assert.ok(s.file.startsWith(USER_CREATED + '/'), `secret ${name} outside ${USER_CREATED}`);
  });

  it('git ignores every secret file the stack reads', async () => {
    const secrets = [
      ...Object.values(compose.secrets ?? {}).map((s) => s.file),
      './secrets/smtp_password',
      './secrets/slack_webhook_url',
    ];
    // check-ignore exits 0 only when every path given is ignored.
    const res = await run('git', ['check-ignore', '--no-index', ...secrets], { cwd: REPO }).catch(
      (err: { stdout?: string }) => err,
    );
    const ignored = (res.stdout ?? '').split('\n').filter(Boolean);
    assert.deepEqual(ignored.sort(), secrets.sort(), 'secret files git would commit');
  });

  it('lookout sees the host under the paths deploy/compose/lookout.yml names', () => {
    const config = load(read('deploy/compose/lookout.yml')) as {
      paths: { procfs: string; sysfs: string; rootfs: string };
      web: { listen_address: string };
    };
    const target = (source: string) =>
      mounts.find((m) => m.service === 'lookout' && m.source === source)?.target;
    assert.equal(target('/proc'), config.paths.procfs);
    assert.equal(target('/sys'), config.paths.sysfs);
    assert.equal(target('/'), config.paths.rootfs);
    assert.equal(target('./deploy/compose/lookout.yml'), '/etc/lookout/lookout.yml');
    assert.equal(config.web.listen_address, ':10142');
  });

  it('Prometheus loads the rules, scrapes lookout:10142 and sends to alertmanager:9093', () => {
    const prom = load(read('prometheus.yml')) as {
      rule_files?: string[];
      alerting?: { alertmanagers?: Array<{ static_configs?: Array<{ targets: string[] }> }> };
      scrape_configs?: Array<{
        job_name: string;
        static_configs?: Array<{ targets: string[] }>;
        file_sd_configs?: Array<{ files: string[] }>;
      }>;
    };
    // Relative paths in prometheus.yml are relative to the file, /etc/prometheus in the container.
    const inContainer = (p: string) => posix.resolve('/etc/prometheus', p);
    const rules = (prom.rule_files ?? []).flatMap((p) => {
      const host = hostPathOf('prometheus', inContainer(p));
      assert.ok(host, `rule_files ${p} is not under a mounted directory`);
      return globFiles(host);
    });
    assert.ok(rules.length > 0, 'rule_files match no file in the repo');

    const job = prom.scrape_configs?.find((j) => j.job_name === 'lookout');
    assert.ok(job, 'a scrape job named lookout');
    const targets = (job.static_configs ?? []).flatMap((c) => c.targets);
    for (const f of (job.file_sd_configs ?? []).flatMap((c) => c.files)) {
      const host = hostPathOf('prometheus', inContainer(f));
      assert.ok(host, `file_sd ${f} is not under a mounted directory`);
      const dir = posix.dirname(host);
      const found = globFiles(host);
      assert.ok(found.length > 0, `file_sd ${f} matches no file in the repo`);
      for (const file of found) {
        const groups = load(readFileSync(join(dir, file), 'utf8')) as Array<{ targets: string[] }>;
        targets.push(...(groups ?? []).flatMap((g) => g.targets));
      }
    }
    assert.ok(
      targets.includes('lookout:10142'),
      `in the compose network lookout is lookout:10142; the lookout job scrapes ${targets}`,
    );
    const ams = (prom.alerting?.alertmanagers ?? []).flatMap((a) =>
      (a.static_configs ?? []).flatMap((c) => c.targets),
    );
    assert.ok(ams.includes('alertmanager:9093'), `alertmanagers: ${ams}`);
  });

  it('Alertmanager reads its secrets from the mounted secrets directory and its templates from the repo', () => {
    const am = load(read('alertmanager.yml')) as { templates?: string[] };
    const files: string[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) {
          if (k.endsWith('_file') && typeof x === 'string') files.push(x);
          else walk(x);
        }
    };
    walk(am);
    assert.ok(files.length >= 2, `expected the SMTP password and Slack URL files, got ${files}`);
    const secrets = mounts.find((m) => m.service === 'alertmanager' && m.source === USER_CREATED);
    assert.ok(secrets, `alertmanager mounts ${USER_CREATED}`);
    assert.equal(secrets.mode, 'ro');
    for (const f of files)
      assert.ok(f.startsWith(secrets.target + '/'), `${f} is not under ${secrets.target}`);
    for (const t of am.templates ?? []) {
      const host = hostPathOf('alertmanager', posix.resolve('/etc/alertmanager', t));
      assert.ok(host && globFiles(host).length > 0, `templates ${t} match no file in the repo`);
    }
  });

  it('Grafana reads its admin password from a secret file', () => {
    const g = compose.services.grafana as Service & { environment?: Record<string, string> };
    const file = g.environment?.GF_SECURITY_ADMIN_PASSWORD__FILE ?? '';
    const name = posix.basename(file);
    assert.equal(file, `/run/secrets/${name}`);
    assert.ok(g.secrets?.includes(name) && compose.secrets?.[name], `secret ${name} declared`);
  });
});

// ---------------------------------------------------------------- Dockerfile

interface Instruction {
  op: string;
  args: string;
}
function dockerfile(): Instruction[] {
  // Join continuation lines, drop comments and blanks.
  const text = read('Dockerfile').replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

describe('Dockerfile', () => {
  const all = dockerfile();
  const froms = all.map((ins, i) => ({ ins, i })).filter(({ ins }) => ins.op === 'FROM');
  const final = all.slice(froms.at(-1)?.i ?? 0);
  const one = (op: string) => final.filter((i) => i.op === op).at(-1)?.args;

  it('is multi-stage, and the runtime stage copies only the build outputs', () => {
    assert.ok(froms.length >= 2, `${froms.length} FROM`);
    const copies = final.filter((i) => i.op === 'COPY').map((i) => i.args);
    assert.ok(
      copies.some((c) => /^--from=\S+ \S*dist\b/.test(c)),
      'dist/ comes from the build stage',
    );
    assert.ok(
      copies.some((c) => /^--from=\S+ \S*node_modules\b/.test(c)),
      'node_modules from a stage',
    );
    const fromContext = copies.filter((c) => !c.startsWith('--from')).flatMap((c) => c.split(' '));
    assert.ok(!fromContext.some((c) => /^(\.\/)?src\b/.test(c)), 'no sources in the runtime stage');
    assert.ok(
      all.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args)),
      'production dependencies installed with npm ci --omit=dev',
    );
    assert.ok(
      !all.some((i) => i.op === 'RUN' && /npm install\b/.test(i.args)),
      'npm ci, not install',
    );
  });

  it('runs as a non-root user, exposes 10142 and runs lookout serve', () => {
    const user = one('USER');
    assert.ok(user, 'USER in the runtime stage');
    assert.ok(!/^(root|0)(:|$)/.test(user), `USER ${user} is root`);
    assert.equal(one('EXPOSE'), '10142');
    assert.deepEqual(JSON.parse(one('CMD') ?? 'null'), [
      'serve',
      '--config',
      '/etc/lookout/lookout.yml',
    ]);
  });

  it('runs lookout through bin/lookout, the launcher that holds the node flags', async () => {
    const workdir = one('WORKDIR');
    assert.equal(workdir, '/app');
    assert.deepEqual(JSON.parse(one('ENTRYPOINT') ?? 'null'), [`${workdir}/bin/lookout`]);
    const copies = final.filter((i) => i.op === 'COPY').map((i) => i.args);
    assert.ok(copies.includes('bin ./bin'), `COPY bin ./bin in the runtime stage: ${copies}`);
    // The launcher, run here as the image runs it: node takes its flags, the CLI its arguments.
    const { stdout } = await run(join(REPO, 'bin/lookout'), [
      'check',
      '--config',
      join(REPO, 'deploy/compose/lookout.yml'),
    ]);
    assert.match(stdout, /: OK$/m);
  });

  it('has a state directory owned by the runtime user, on a named volume in compose, and the runbooks page', () => {
    const env = final.filter((i) => i.op === 'ENV').map((i) => i.args);
    assert.ok(env.includes('STATE_DIRECTORY=/var/lib/lookout'), `ENV: ${env}`);
    const user = one('USER');
    assert.ok(
      final.some(
        (i) =>
          i.op === 'RUN' &&
          /mkdir -p \/var\/lib\/lookout\b/.test(i.args) &&
          new RegExp(`chown ${user}(:${user})? /var/lib/lookout\\b`).test(i.args),
      ),
      `RUN mkdir -p /var/lib/lookout && chown ${user} ...`,
    );
    const state = mounts.find((m) => m.service === 'lookout' && m.target === '/var/lib/lookout');
    assert.equal(state?.source, 'lookout-data');
    assert.ok('lookout-data' in (compose.volumes ?? {}), 'lookout-data declared');
    const copies = final.filter((i) => i.op === 'COPY').map((i) => i.args);
    assert.ok(copies.includes('docs/runbooks.md ./docs/runbooks.md'), `COPY: ${copies}`);
  });

  it('.dockerignore keeps secrets and build leftovers out, but not what COPY needs', () => {
    const patterns = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const must of ['.git', 'node_modules', 'dist', 'secrets'])
      assert.ok(patterns.includes(must), `.dockerignore lists ${must}`);
    // Docker's rule: the last pattern that matches decides; `!` makes an exception.
    const ignored = (path: string) =>
      patterns.reduce((out, p) => {
        const exception = p.startsWith('!');
        const glob = exception ? p.slice(1) : p;
        const re = new RegExp(
          `^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}(/|$)`,
        );
        return re.test(path) ? !exception : out;
      }, false);
    const sources = all
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    assert.ok(sources.length > 0);
    for (const s of sources) {
      assert.ok(existsSync(join(REPO, s)), `COPY ${s}: not in the repo`);
      assert.ok(!ignored(s), `COPY ${s}: excluded by .dockerignore`);
    }
  });

  describe('HEALTHCHECK', () => {
    let lookout: Running;
    let probe: string[];
    before(async () => {
      lookout = await startLookout();
      const hc = one('HEALTHCHECK') ?? '';
      const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(hc)?.[1];
      assert.ok(cmd, `HEALTHCHECK ... CMD [exec form], got "${hc}"`);
      probe = JSON.parse(cmd) as string[];
    });
    after(async () => {
      await lookout?.stop();
    });

    const exitCode = async (argv: string[]) => {
      const [cmd, ...args] = argv;
      // `node` in the image; this test's own node here.
      const bin = cmd === 'node' ? process.execPath : (cmd ?? '');
      return run(bin, args, { timeout: 15_000 }).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      );
    };

    it('uses node (slim images have no curl) and probes /healthz on 10142', () => {
      assert.equal(probe[0], 'node');
      assert.match(probe.join(' '), /http:\/\/127\.0\.0\.1:10142\/healthz/);
    });

    it('exits 0 against a running lookout and non-zero when nothing listens', async () => {
      const on = (port: number) =>
        probe.map((a) => a.replace('127.0.0.1:10142', `127.0.0.1:${port}`));
      assert.equal(await exitCode(on(lookout.port)), 0);
      assert.notEqual(await exitCode(on(await freePort())), 0);
    });
  });
});

// ---------------------------------------------------------------- systemd unit

type Unit = Map<string, Map<string, string[]>>;
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    assert.ok(!line.endsWith('\\'), `line ${n + 1}: keep each directive on one line`);
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `line ${n + 1}: "${line}" is not Key=value in a section`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** systemd directives this unit may use; a misspelt one is ignored by systemd with only a log line. */
const KNOWN: Record<string, string[]> = {
  Unit: ['Description', 'Documentation', 'After', 'Wants', 'Requires', 'Before'],
  Service: [
    'Type',
    'ExecStart',
    'ExecStartPre',
    'ExecReload',
    'WorkingDirectory',
    'Environment',
    'EnvironmentFile',
    'Restart',
    'RestartSec',
    'TimeoutStopSec',
    'MemoryMax',
    'MemoryHigh',
    'CPUQuota',
    'TasksMax',
    'LimitNOFILE',
    'User',
    'Group',
    'DynamicUser',
    'SupplementaryGroups',
    'StateDirectory',
    'UMask',
    'NoNewPrivileges',
    'CapabilityBoundingSet',
    'AmbientCapabilities',
    'ProtectSystem',
    'ProtectHome',
    'ReadOnlyPaths',
    'ReadWritePaths',
    'PrivateTmp',
    'PrivateDevices',
    'ProtectKernelTunables',
    'ProtectKernelModules',
    'ProtectKernelLogs',
    'ProtectControlGroups',
    'ProtectClock',
    'PrivateMounts',
    'RestrictAddressFamilies',
    'RestrictNamespaces',
    'RestrictRealtime',
    'RestrictSUIDSGID',
    'LockPersonality',
    'RemoveIPC',
    'SystemCallArchitectures',
    'SystemCallFilter',
    'SystemCallErrorNumber',
  ],
  Install: ['WantedBy'],
};

/**
 * What lookout needs beside V8's old generation, in MiB: the node binary's and libraries'
 * resident pages (about 44 MiB with every collector on, bench:soak) and native memory
 * (malloc, thread stacks, the young generation, code space: about 12 MiB).
 */
const BESIDE_HEAP_MIB = 56;

describe('one memory budget: the unit, compose and the launcher agree', () => {
  const mib = (v: string, units: Record<string, number>) => {
    const m = /^(\d+)([a-zA-Z]*)$/.exec(v);
    assert.ok(m && m[2]! in units, `a memory size: ${v}`);
    return (Number(m[1]) * units[m[2]!]!) / 1048576;
  };
  const unitMax = parseUnit(read('deploy/systemd/lookout.service'))
    .get('Service')
    ?.get('MemoryMax');
  const composeLimit = (compose.services.lookout as Service & { mem_limit?: string }).mem_limit;
  const cap = /--max-old-space-size=(\d+)\b/.exec(read('bin/lookout'))?.[1];

  it("the unit's MemoryMax and compose's mem_limit are the same budget", () => {
    assert.equal(unitMax?.length, 1, 'MemoryMax= once in the unit');
    assert.ok(composeLimit, 'mem_limit on the lookout service');
    const budget = mib(unitMax[0]!, { K: 1024, M: 1048576, G: 1073741824 });
    assert.equal(mib(composeLimit, { k: 1024, m: 1048576, g: 1073741824 }), budget);
  });

  it("the launcher's heap cap fits inside that budget with room for the node binary's pages and native memory", () => {
    assert.ok(cap, 'bin/lookout sets --max-old-space-size');
    const budget = mib(unitMax![0]!, { K: 1024, M: 1048576, G: 1073741824 });
    assert.ok(
      Number(cap) + BESIDE_HEAP_MIB <= budget,
      `--max-old-space-size=${cap} + ${BESIDE_HEAP_MIB} MiB beside the heap > the ${budget} MiB budget`,
    );
    // A cap far below the budget would stop lookout with memory to spare.
    assert.ok(
      Number(cap) >= budget / 4,
      `--max-old-space-size=${cap} wastes the ${budget} MiB budget`,
    );
  });
});

describe('deploy/systemd/lookout.service', () => {
  const unit = parseUnit(read('deploy/systemd/lookout.service'));
  const get = (section: string, key: string) => unit.get(section)?.get(key);
  const one = (section: string, key: string) => {
    const v = get(section, key);
    assert.ok(v, `[${section}] ${key}= missing`);
    assert.equal(v.length, 1, `[${section}] ${key}= set more than once`);
    return v[0]!;
  };

  it("passes systemd-analyze verify, systemd's own parser", async () => {
    // verify also checks that ExecStart's program exists: check a copy whose
    // /opt/lookout/ is this checkout, as the install steps lay it out.
    const dir = await tempDir('lookout-unit-');
    const copy = join(dir, 'lookout.service');
    await writeFile(copy, read('deploy/systemd/lookout.service').replaceAll('/opt/lookout/', REPO));
    // Prints warnings for unknown or misplaced directives and still exits 0, so the
    // output must be empty as well.
    const { stdout, stderr } = await run('systemd-analyze', ['verify', copy]);
    assert.equal(stdout + stderr, '');
  });

  it('has only known directives, in their sections', () => {
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
    for (const [section, keys] of unit)
      for (const key of keys.keys())
        assert.ok(KNOWN[section]?.includes(key), `[${section}] ${key}= is not a directive we know`);
  });

  it('caps memory at 128M and CPU at 25 %, restarts on failure, starts at boot', () => {
    assert.equal(one('Service', 'MemoryMax'), '128M');
    assert.equal(one('Service', 'CPUQuota'), '25%');
    assert.equal(one('Service', 'Restart'), 'on-failure');
    assert.equal(one('Install', 'WantedBy'), 'multi-user.target');
    // systemd writes TimeoutStopSec in its own units; the unit writes plain seconds.
    const stop = /^(\d+)s$/.exec(one('Service', 'TimeoutStopSec'));
    assert.ok(stop && Number(stop[1]) * 1000 > SHUTDOWN_MS, 'TimeoutStopSec covers drain + flush');
    assert.equal(
      one('Service', 'ExecStart'),
      '/opt/lookout/bin/lookout serve --config /etc/lookout/lookout.yml',
    );
  });

  it('runs unprivileged and hardened, without hiding the host lookout watches', () => {
    const dynamic = get('Service', 'DynamicUser')?.[0] === 'yes';
    const user = get('Service', 'User')?.[0];
    assert.ok(dynamic || (user && user !== 'root' && user !== '0'), 'DynamicUser=yes or User=');
    const want: Record<string, string> = {
      NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '',
      ProtectSystem: 'strict',
      ProtectHome: 'read-only',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectControlGroups: 'yes',
      RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
      RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes',
    };
    for (const [k, v] of Object.entries(want)) assert.equal(one('Service', k), v, k);
    // These would blind or kill lookout: other users' processes and /proc/meminfo hidden,
    // no JIT for V8.
    assert.notEqual(get('Service', 'ProtectProc')?.[0], 'invisible');
    assert.notEqual(get('Service', 'ProcSubset')?.[0], 'pid');
    assert.notEqual(get('Service', 'MemoryDenyWriteExecute')?.[0], 'yes');
  });

  /** The unit's command with /opt/lookout → this checkout and the config → a test file. */
  const localize = (cmd: string, config: string) =>
    cmd
      .split(/\s+/)
      .map((a) =>
        a === '/usr/bin/node'
          ? process.execPath
          : a.replace('/opt/lookout/', REPO).replace('/etc/lookout/lookout.yml', config),
      );

  it('ExecStartPre validates the config the way the install steps lay it out', async () => {
    const [bin, ...args] = localize(
      one('Service', 'ExecStartPre'),
      join(REPO, 'lookout.example.yml'),
    );
    const { stdout } = await run(bin!, args);
    assert.match(stdout, /OK/);
  });

  it('ExecStart serves /healthz (node accepts the flags, the CLI the arguments)', async () => {
    const dir = await tempDir('lookout-unit-');
    const port = await freePort();
    const [bin, ...args] = localize(one('Service', 'ExecStart'), join(REPO, 'lookout.example.yml'));
    const running = await startProcess(
      bin!,
      [...args, '--web.listen-address', `127.0.0.1:${port}`],
      { readyPath: '/healthz', port, dir },
    );
    assert.equal(await running.stop(), 0, running.output());
  });
});

describe('deploy/compose/lookout.yml', () => {
  it('passes lookout check', async () => {
    const { stdout } = await run(process.execPath, [
      join(REPO, 'dist/cli.js'),
      'check',
      '--config',
      join(REPO, 'deploy/compose/lookout.yml'),
    ]);
    assert.match(stdout, /: OK$/m);
  });
});
