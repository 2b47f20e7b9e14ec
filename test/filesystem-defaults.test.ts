/**
 * What the filesystem collector's default excludes leave in and out, as rules/host.yml's
 * header and docs/configuration.md say: tmpfs is watched except under /dev (so /dev/shm
 * is not), network filesystems are watched by their kernel type names, and autofs (the
 * automounter's placeholder) is not.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_FS_TYPES_EXCLUDE,
  DEFAULT_MOUNT_POINTS_EXCLUDE,
} from '../src/collectors/filesystem.js';

const types = new RegExp(DEFAULT_FS_TYPES_EXCLUDE);
const mounts = new RegExp(DEFAULT_MOUNT_POINTS_EXCLUDE);

describe('the filesystem defaults', () => {
  test('watch tmpfs at /run and /tmp, not /dev/shm or anything else under /dev', () => {
    assert.equal(types.test('tmpfs'), false, 'tmpfs is a watched type');
    for (const m of ['/run', '/run/user/1000', '/tmp', '/', '/var', '/mnt/nfs']) {
      assert.equal(mounts.test(m), false, `${m} is watched`);
    }
    for (const m of ['/dev', '/dev/shm', '/dev/hugepages', '/proc', '/sys/fs/cgroup']) {
      assert.equal(mounts.test(m), true, `${m} is left out`);
    }
  });

  test('watch the network filesystems by their kernel type names, not autofs', () => {
    // CephFS mounts as "ceph" (kernel) or "fuse.ceph-fuse"; GlusterFS as "fuse.glusterfs".
    for (const t of ['nfs', 'nfs4', 'cifs', 'smb3', 'fuse.sshfs', 'fuse.glusterfs', 'ceph']) {
      assert.equal(types.test(t), false, `${t} is watched`);
    }
    for (const t of ['autofs', 'overlay', 'squashfs', 'proc', 'cgroup2']) {
      assert.equal(types.test(t), true, `${t} is left out`);
    }
  });
});
