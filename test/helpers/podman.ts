/**
 * A private Podman for a test: its own storage root, run root and temp dir (where its
 * events log is: the file backend, as there is no journald here), the cgroupfs manager
 * (no systemd), the busybox image the dockerd tests use, and `podman system service`
 * answering the Docker-compatible API on a socket of its own. Stopped by pid; its
 * containers removed, what it left mounted unmounted, its directory removed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeBusyboxRootfs } from './busybox.js';
import { engineGet, unmountUnder, type CmdResult } from './dockerd.js';

const run = promisify(execFile);

export const PODMAN_IMAGE = 'localhost/lookout-bb:1';

/**
 * What every `podman run` here needs besides its own options. The rlimits: Podman's
 * defaults (nofile 1048576, nproc 4194304) are above this sandbox's hard limits, and runc
 * then fails with "error setting rlimit type 7: operation not permitted" (6 for nproc);
 * Docker keeps the daemon's own limits, so the dockerd tests do not meet this. No network:
 * the engine has none set up, as the dockerd tests' has no bridge.
 */
export const PODMAN_RUN_DEFAULTS = [
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=1024:1024',
  '--network',
  'none',
  '--stop-timeout',
  '1',
];

/** Pids of the processes whose command line names `dir` (this engine's conmon and podman). */
function processesUsing(dir: string, except?: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === except || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) pids.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

async function untilGone(dir: string, except: number | undefined, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (processesUsing(dir, except).length > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
}

export interface PodmanEngine {
  dir: string;
  /** The compat API's socket, and the same as an endpoint (unix://...). */
  socket: string;
  host: string;
  /** `podman ARGS` on this engine's storage; throws with its output on failure. */
  podman(...args: string[]): Promise<CmdResult>;
  /** `podman run -d` with PODMAN_RUN_DEFAULTS, then `options`, the image and `command`. */
  run(name: string, options: string[], command: string[]): Promise<string>;
  /** The service's output so far (for a failing test's message). */
  log(): string;
  stop(): Promise<void>;
}

export async function startPodman(prefix = 'lkpm-'): Promise<PodmanEngine> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const socket = join(dir, 'p.sock');
  const global = [
    '--root',
    join(dir, 'root'),
    '--runroot',
    join(dir, 'run'),
    '--tmpdir',
    join(dir, 'tmp'),
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
  ];
  const podman = async (...args: string[]): Promise<CmdResult> => {
    try {
      return await run('podman', [...global, ...args], {
        // conmon writes its OOM marker (a file named oom) into the working directory of
        // the podman that started the container: keep it in the engine's directory.
        cwd: dir,
        timeout: 60_000,
        maxBuffer: 16 << 20,
        encoding: 'utf8',
      });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(
        `podman ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
        {
          cause: err,
        },
      );
    }
  };
  let service: ChildProcess | undefined;
  let out = '';
  const stop = async () => {
    // Containers first, while the storage is whole (conmon and the container processes go).
    await podman('rm', '--all', '--force', '--time', '0').catch(() => undefined);
    // conmon runs `podman container cleanup` after each container's exit, which mounts and
    // writes the storage again: wait for every process of this engine but the service.
    await untilGone(dir, service?.pid, 15_000);
    if (service && service.exitCode === null && service.signalCode === null) {
      const exited = new Promise((r) => service!.once('exit', r));
      service.kill('SIGTERM');
      const timer = setTimeout(() => service!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const rootfs = await writeBusyboxRootfs(join(dir, 'rootfs'));
    await run(
      'sh',
      [
        '-c',
        `r=$1; shift; tar -C "$r" -c . | podman "$@" >/dev/null`,
        'sh',
        rootfs,
        ...global,
        'import',
        '-',
        PODMAN_IMAGE,
      ],
      { cwd: dir, timeout: 60_000 },
    );
    await rm(rootfs, { recursive: true, force: true });
    service = spawn('podman', [...global, 'system', 'service', '--time=0', `unix://${socket}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
      // Its own process group: a Ctrl-C on the test does not reach it before cleanup does.
      detached: true,
    });
    const keep = (b: Buffer) => {
      out = (out + b.toString()).slice(-200_000);
    };
    service.stdout?.on('data', keep);
    service.stderr?.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (service.exitCode !== null || service.signalCode !== null)
        throw new Error(`podman system service exited:\n${out}`);
      const ok = await engineGet(socket, '/_ping').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`podman system service not answering:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir,
    socket,
    host: `unix://${socket}`,
    podman,
    async run(name, options, command) {
      const r = await podman(
        'run',
        '-d',
        ...PODMAN_RUN_DEFAULTS,
        '--name',
        name,
        ...options,
        PODMAN_IMAGE,
        ...command,
      );
      return r.stdout.trim();
    },
    log: () => out,
    stop,
  };
}
