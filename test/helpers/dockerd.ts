/**
 * A private Docker engine for a test: its own socket, data root, exec root and pid file,
 * so it never meets another dockerd on the machine, optionally inside a network namespace
 * the test made (`ip netns add`). Stopped by pid; what it leaves mounted under its
 * directories is unmounted.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Dockerd {
  /** unix:///... — the DOCKER_HOST for docker, docker-compose and the test. */
  host: string;
  socket: string;
  pid: number;
  netns?: string;
  log: () => string;
  stop: () => Promise<void>;
}

/** GET on the engine's unix socket; resolves with the status and body. */
export function engineGet(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Mount points at or under dir, deepest first (the order they can be unmounted in). */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(dir + '/'));
  return points.sort((a, b) => b.length - a.length);
}

/** Unmounts (lazily) everything at or under each dir; returns what it unmounted. */
export async function unmountUnder(...dirs: string[]): Promise<string[]> {
  const done: string[] = [];
  for (const dir of dirs)
    for (const p of mountsUnder(dir)) {
      await run('umount', ['-l', p]).then(
        () => done.push(p),
        // Already gone (a parent's lazy unmount took it along): nothing left to do.
        (err: { stderr?: string }) => {
          if (!/not mounted|no mount point/.test(err.stderr ?? '')) throw err;
        },
      );
    }
  return done;
}

export async function startDockerd(opts: {
  /** Holds the socket, exec root, pid file and log; short, for the socket path limit. */
  dir: string;
  dataRoot: string;
  /** Run inside /run/netns/<netns> (made with `ip netns add`). */
  netns?: string;
  /** --bridge=none: no docker0 (the host namespace, where only host-network builds run). */
  noBridge?: boolean;
  timeoutMs?: number;
}): Promise<Dockerd> {
  const socket = join(opts.dir, 'docker.sock');
  const args = [
    `--host=unix://${socket}`,
    `--data-root=${opts.dataRoot}`,
    `--exec-root=${join(opts.dir, 'exec')}`,
    `--pidfile=${join(opts.dir, 'docker.pid')}`,
    // No rules in anyone's iptables; inside a namespace there is nothing to NAT to anyway.
    '--iptables=false',
    '--ip6tables=false',
    ...(opts.noBridge ? ['--bridge=none'] : []),
  ];
  // nsenter, not `ip netns exec`: the latter remounts /sys, and dockerd then fails on cgroups.
  const [cmd, argv] = opts.netns
    ? ['nsenter', [`--net=/run/netns/${opts.netns}`, '/usr/sbin/dockerd', ...args]]
    : ['/usr/sbin/dockerd', args];
  const child: ChildProcess = spawn(cmd, argv as string[], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C on the test does not reach it before cleanup does.
    detached: true,
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`spawn ${cmd}: no pid`);

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      // dockerd stops its containers first (10 s each at most), then containerd.
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      await exited;
      clearTimeout(timer);
    }
    await unmountUnder(join(opts.dir, 'exec'), opts.dataRoot);
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`dockerd exited (${child.exitCode ?? child.signalCode}):\n${out}`);
    const ok = await engineGet(socket, '/_ping').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`dockerd not answering on ${socket}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host: `unix://${socket}`, socket, pid, netns: opts.netns, log: () => out, stop };
}

export interface CmdResult {
  stdout: string;
  stderr: string;
}

/** Runs a command with DOCKER_HOST set; throws with its output when it fails. */
export async function withDocker(
  dockerHost: string,
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<CmdResult> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env, DOCKER_HOST: dockerHost },
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
      encoding: 'utf8',
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')}: ${e.message}\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-4000)}`,
      { cause: err },
    );
  }
}

/** A network namespace of the test's own; removing it removes every device in it. */
export async function addNetns(
  name: string,
): Promise<{ name: string; remove: () => Promise<void> }> {
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    remove: async () => {
      await run('ip', ['netns', 'delete', name]);
    },
  };
}

/** curl inside the namespace (the only place published ports and container addresses exist). */
export async function nsCurl(
  netns: string,
  url: string,
  timeoutMs = 5000,
  /** More curl arguments (headers, --data-binary for a POST). */
  curlArgs: string[] = [],
): Promise<string> {
  const { stdout } = await run(
    'nsenter',
    [
      `--net=/run/netns/${netns}`,
      'curl',
      '-sS',
      '--fail-with-body',
      '--max-time',
      String(timeoutMs / 1000),
      ...curlArgs,
      url,
    ],
    { timeout: timeoutMs + 2000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
  ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(
      `${curlArgs.includes('--data-binary') ? 'POST' : 'GET'} ${url} in netns ${netns}: ${err.stderr || err.message} ${err.stdout ?? ''}`,
      {
        cause: err,
      },
    );
  });
  return stdout;
}
