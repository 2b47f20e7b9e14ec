/**
 * A private dockerd with a busybox image and nothing else (no registry is reachable):
 * the rootfs is /bin/busybox (Debian's busybox-static) with its applets linked, imported
 * as `lookout-bb:1`. Containers run with `--network none` (the engine has no bridge),
 * unless the engine runs inside a network namespace the test made: there it has its
 * default bridge, and containers on it have network counters.
 */
import { mkdir, mkdtemp, rm, symlink, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerd, withDocker, type CmdResult, type Dockerd } from './dockerd.js';

export const BUSYBOX_IMAGE = 'lookout-bb:1';
const APPLETS = [
  'sh',
  'sleep',
  'dd',
  'tail',
  'head',
  'cat',
  'true',
  'false',
  'yes',
  'echo',
  'test',
  'ls',
  'wget',
];

/**
 * A root filesystem of /bin/busybox and its applets' links, and an empty /tmp, at `rootfs`
 * (made here): what `docker import` and `podman import` take as a tar. Returns `rootfs`.
 */
export async function writeBusyboxRootfs(rootfs: string): Promise<string> {
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
  for (const a of APPLETS) await symlink('busybox', join(rootfs, 'bin', a));
  return rootfs;
}

export interface BusyboxEngine {
  dockerd: Dockerd;
  /** Its directory (socket, exec root, data root): short, for the socket path limit. */
  dir: string;
  /** `docker ARGS` against this engine; throws with its output on failure. */
  docker(...args: string[]): Promise<CmdResult>;
  /** Stops the engine by pid and removes its directories (what it mounted unmounted first). */
  stop(): Promise<void>;
  /** Stops and starts dockerd again on the same data root (containers with a policy come back). */
  restart(): Promise<void>;
}

export async function startBusyboxEngine(
  prefix = 'lkbb-',
  /** Run dockerd inside /run/netns/<netns> (made with `ip netns add`), with its bridge. */
  netns?: string,
): Promise<BusyboxEngine> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const dataRoot = join(dir, 'data');
  const opts = { dir, dataRoot, netns, noBridge: netns === undefined };
  let dockerd = await startDockerd(opts);
  const docker = (...args: string[]) => withDocker(dockerd.host, 'docker', args);
  const engine: BusyboxEngine = {
    get dockerd() {
      return dockerd;
    },
    dir,
    docker,
    async stop() {
      await dockerd.stop();
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await dockerd.stop();
      dockerd = await startDockerd(opts);
    },
  };
  try {
    const rootfs = await writeBusyboxRootfs(join(dir, 'rootfs'));
    await withDocker(dockerd.host, 'sh', [
      '-c',
      `tar -C ${rootfs} -c . | docker import - ${BUSYBOX_IMAGE} >/dev/null`,
    ]);
    await rm(rootfs, { recursive: true, force: true });
  } catch (err) {
    await engine.stop();
    throw err;
  }
  return engine;
}

/**
 * `docker run` arguments for a container the kernel OOM-kills at its 16 MiB memory limit
 * (`tail` keeps the endless line of /dev/zero in memory), after `delaySeconds`.
 */
export function memoryHogArgs(name: string, delaySeconds = 0): string[] {
  const wait = delaySeconds > 0 ? `sleep ${delaySeconds}; ` : '';
  return [
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'none',
    '-m',
    '16m',
    '--memory-swap',
    '16m',
    BUSYBOX_IMAGE,
    'sh',
    '-c',
    `${wait}tail /dev/zero`,
  ];
}
