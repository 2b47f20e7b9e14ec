/**
 * A real mount whose statfs never returns: a FUSE filesystem whose server never answers
 * (we open /dev/fuse, mount it, and never reply to the kernel's INIT). This is what a
 * dead NFS server looks like to a reader. Needs root and /dev/fuse.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface HungMount {
  mountpoint: string;
  /** Aborts the FUSE connection: every hung call returns ENOTCONN. */
  release(): void;
  /** Releases, then detaches the mount. */
  remove(): void;
}

export function createHungMount(): HungMount {
  const mountpoint = mkdtempSync(join(tmpdir(), 'lookout-hung-'));
  const fd = openSync('/dev/fuse', 'r+');
  // mount(8) gets the /dev/fuse descriptor as its fd 3. `-i`: no /sbin/mount.fuse helper,
  // mount(2) directly; fuse3's helper (pulled in by the Debian packages the tests install)
  // takes the source for a command to run and fails with "lookout-hung: not found".
  const r = spawnSync(
    'mount',
    [
      '-i',
      '-t',
      'fuse',
      '-o',
      'fd=3,rootmode=40000,user_id=0,group_id=0',
      'lookout-hung',
      mountpoint,
    ],
    { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' },
  );
  if (r.status !== 0) {
    closeSync(fd);
    throw new Error(`mount -t fuse ${mountpoint}: ${r.stderr || r.error?.message}`);
  }
  let open = true;
  const release = () => {
    if (open) closeSync(fd);
    open = false;
  };
  return {
    mountpoint,
    release,
    remove() {
      release();
      spawnSync('umount', ['-l', mountpoint]);
    },
  };
}
