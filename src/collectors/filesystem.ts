import { statfsSync } from 'node:fs';
import { statfs as fsStatfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import { parseMounts, type Mount } from '../lib/procfs.js';
import {
  collectorSchema,
  registerCollector,
  type Collector,
  type HostPaths,
  type Observer,
} from './collector.js';
import { regexSource } from '../config/regex.js';
import { readHostProcFile } from './procfile.js';
import { Fanout, type TargetResult } from '../lib/fanout.js';

/** node_exporter's defaults, so the two agree out of the box (tmpfs stays in). */
export const DEFAULT_MOUNT_POINTS_EXCLUDE =
  '^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)';
export const DEFAULT_FS_TYPES_EXCLUDE =
  '^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$';

/**
 * statfs calls in flight at once, hung ones included. Each holds a libuv pool thread, and
 * a hung one holds it until the server answers; bin/lookout starts 8 pool threads, so a
 * dead NFS server can take at most half of them and /proc reads keep the rest.
 */
export const STATFS_THREADS = 4;

export const filesystemSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '10s' },
  {
    mount_points_exclude: regexSource('mount points')
      .default(DEFAULT_MOUNT_POINTS_EXCLUDE)
      .describe('Mount points to leave out, a regular expression (node_exporter default).'),
    fs_types_exclude: regexSource('filesystem types')
      .default(DEFAULT_FS_TYPES_EXCLUDE)
      .describe(
        'Filesystem types to leave out, a regular expression; pseudo and container filesystems by default.',
      ),
    statfs_timeout: duration
      .prefault('2s')
      .describe(
        'How long one mount may take to answer statfs. A mount that does not answer is reported with lookout_filesystem_device_error 1 and is not asked again until the hung call returns, so a dead NFS server cannot use up the I/O threads.',
      ),
  },
);

export type FilesystemConfig = z.output<typeof filesystemSchema>;

/** The statfs(2) fields used here; fs.promises.statfs returns them. */
export interface StatFsResult {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}
export type StatFsFn = (path: string) => Promise<StatFsResult>;
export type StatFsSyncFn = (path: string) => StatFsResult;

/**
 * Filesystem types whose statfs(2) the kernel answers from memory (per-CPU counters in
 * the superblock; no I/O, no server): asked on the event loop, at once, instead of
 * through libuv's thread pool and the fan-out. On a host with only these, a refresh
 * wakes no pool thread and arms no per-mount deadline; at a 15 s cadence those wake-ups
 * were most of the collector's idle CPU (docs/performance.md). Every other type (NFS,
 * CIFS, FUSE, Ceph, ZFS, ...) may hang and goes through the fan-out as before.
 */
export const STATFS_FROM_MEMORY = /^(ext[234]|xfs|tmpfs|ramfs)$/;

/** A mount the collector reports, with what each refresh needs of it made once. */
interface WatchedMount {
  mount: Mount;
  labels: { mountpoint: string; device: string; fstype: string };
  /** Where statfs looks: the mount point under rootfs. */
  path: string;
  /** Asked on the event loop: its type's statfs never waits (STATFS_FROM_MEMORY). */
  now: boolean;
}

/** One mount as the last refresh saw it; `stats` missing when statfs failed or hung. */
export interface MountSeen {
  mount: Mount;
  stats?: StatFsResult;
}

export function createFilesystemCollector(
  config: FilesystemConfig,
  paths: HostPaths,
  log: Logger,
  statfs?: StatFsFn,
  /** For the types in STATFS_FROM_MEMORY; by default statfsSync, unless `statfs` is given (tests). */
  statfsNow: StatFsSyncFn | undefined = statfs === undefined
    ? (path) => statfsSync(path)
    : undefined,
): Collector & Observer<MountSeen[]> & { stuck: () => ReadonlySet<string> } {
  const statfsLater = statfs ?? ((path: string) => fsStatfs(path));
  let seen: MountSeen[] | undefined;
  const mountPointsExclude = new RegExp(config.mount_points_exclude);
  const fsTypesExclude = new RegExp(config.fs_types_exclude);
  // statfs takes no AbortSignal: a call on a dead server holds its thread until the
  // server answers, so the fan-out keeps it as hung and does not ask that mount again.
  const fanout = new Fanout({
    name: 'filesystem statfs',
    concurrency: STATFS_THREADS,
    timeoutMs: config.statfs_timeout,
    onHung: (mountpoint, hung) =>
      hung
        ? log.warn('statfs did not return; not asking this mount again until it does', {
            mountpoint,
            timeout_seconds: config.statfs_timeout / 1000,
          })
        : log.info('hung statfs returned', { mountpoint }),
  });

  const registry = new Registry();
  const labelNames = ['mountpoint', 'device', 'fstype'] as const;
  const registers = [registry];
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
  const size = gauge('lookout_filesystem_size_bytes', 'Size of the filesystem.');
  const free = gauge(
    'lookout_filesystem_free_bytes',
    'Free space, including blocks reserved for root.',
  );
  const avail = gauge('lookout_filesystem_avail_bytes', 'Space available to unprivileged users.');
  const files = gauge('lookout_filesystem_files', 'Inodes of the filesystem.');
  const filesFree = gauge('lookout_filesystem_files_free', 'Free inodes.');
  const readonly = gauge('lookout_filesystem_readonly', 'Whether the mount is read-only (1).');
  const deviceError = gauge(
    'lookout_filesystem_device_error',
    'Whether statfs failed or did not return in time for this mount (1); then no size series.',
  );
  const all = [size, free, avail, files, filesFree, readonly, deviceError];
  // What the mount table said last: it rarely changes, so a refresh that reads the same
  // text reuses the mounts, their labels and their paths instead of parsing and filtering
  // them anew. Read by path each time, not through a kept descriptor as ProcFiles does: a
  // read at offset 0 of a kept /proc/<pid>/mounts repeats the table as it was, without
  // mounts made since.
  let table: { text: string; mounts: WatchedMount[]; later: WatchedMount[] } | undefined;
  const watchedMounts = (text: string): { mounts: WatchedMount[]; later: WatchedMount[] } => {
    if (table?.text === text) return table;
    const byMountpoint = new Map<string, Mount>();
    for (const m of parseMounts(text)) {
      // The same mount point can be stacked (mounted twice); the last mount is the visible one.
      byMountpoint.delete(m.mountpoint);
      byMountpoint.set(m.mountpoint, m);
    }
    const mounts = [...byMountpoint.values()]
      .filter((m) => !mountPointsExclude.test(m.mountpoint) && !fsTypesExclude.test(m.fstype))
      .map((mount) => ({
        mount,
        labels: { mountpoint: mount.mountpoint, device: mount.device, fstype: mount.fstype },
        path: join(paths.rootfs, mount.mountpoint),
        now: statfsNow !== undefined && STATFS_FROM_MEMORY.test(mount.fstype),
      }));
    table = { text, mounts, later: mounts.filter((w) => !w.now) };
    return table;
  };

  return {
    stuck: () => fanout.hungKeys(),
    lastSeen: () => seen,
    async collect({ signal, deadline, log: ctxLog }) {
      // PID 1's mount table is the host's, even when lookout runs in a container.
      const { mounts: watched, later } = watchedMounts(
        readHostProcFile(paths.procfs, 'mounts').text,
      );
      const asked =
        later.length === 0
          ? []
          : await fanout.run(
              later,
              (w) => w.mount.mountpoint,
              (w) => statfsLater(w.path),
              {
                signal,
                deadline,
              },
            );
      let l = 0;
      const results = watched.map((w): TargetResult<StatFsResult> => {
        if (!w.now) return asked[l++]!;
        try {
          return { status: 'ok', value: statfsNow!(w.path), seconds: 0 };
        } catch (error) {
          return { status: 'failed', error, seconds: 0 };
        }
      });

      // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
      signal.throwIfAborted();
      // Every label set is written anew, so an unmounted filesystem's series go, and the
      // order is the mount table's.
      for (const g of all) g.reset();
      watched.forEach(({ mount, labels }, i) => {
        const result = results[i]!;
        readonly.set(labels, mount.readonly ? 1 : 0);
        deviceError.set(labels, result.status === 'ok' ? 0 : 1);
        if (result.status === 'failed' || result.status === 'skipped') {
          ctxLog.debug('statfs failed', {
            mountpoint: mount.mountpoint,
            err: result.status === 'failed' ? errorText(result.error) : result.reason,
          });
        }
        if (result.status !== 'ok') return;
        const s = result.value;
        size.set(labels, s.blocks * s.bsize);
        free.set(labels, s.bfree * s.bsize);
        avail.set(labels, s.bavail * s.bsize);
        files.set(labels, s.files);
        filesFree.set(labels, s.ffree);
      });
      seen = watched.map(({ mount }, i) => {
        const r = results[i]!;
        return r.status === 'ok' ? { mount, stats: r.value } : { mount };
      });
      return registry;
    },
  };
}

registerCollector({
  name: 'filesystem',
  description:
    'Size, free space, inodes and read-only state of each mounted filesystem (lookout_filesystem_*); a hung mount is marked, not waited on',
  metrics: [
    'lookout_filesystem_size_bytes',
    'lookout_filesystem_free_bytes',
    'lookout_filesystem_avail_bytes',
    'lookout_filesystem_files',
    'lookout_filesystem_files_free',
    'lookout_filesystem_readonly',
    'lookout_filesystem_device_error',
  ],
  schema: filesystemSchema,
  create: ({ config, paths, log }) => createFilesystemCollector(config, paths, log),
});
