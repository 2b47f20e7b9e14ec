import fs, { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CollectorError } from './collector.js';

/** statfs(2)'s f_type of procfs. */
const PROC_SUPER_MAGIC = 0x9fa0;

/**
 * Reads /proc files synchronously. The kernel writes these from memory, so a read never
 * waits on a disk or a network; through the thread pool each file is four hand-offs
 * (open, fstat, read, close), and each hand-off wakes the event loop, which measured as
 * most of an idle refresh's CPU. Files on real filesystems (under rootfs) are never read
 * this way.
 *
 * On a real procfs the files stay open between refreshes: a read at offset 0 of an open
 * /proc file makes the kernel write it anew, so a refresh costs one pread per file
 * instead of a path lookup, open, fstat, read and close, and the text is decoded from one
 * reused buffer. Elsewhere (a test's fixture tree, whose files may be replaced) each read
 * opens the path as readFileSync does.
 */
export class ProcFiles {
  private readonly kept = new Map<string, number>();
  private buffer = Buffer.allocUnsafe(16 * 1024);
  private readonly keep: boolean;

  constructor(procfs: string) {
    let keep = false;
    try {
      keep = fs.statfsSync(procfs).type === PROC_SUPER_MAGIC;
    } catch {
      // not there (yet): read each file by path; the first read names the problem
    }
    this.keep = keep;
  }

  /** The file's text; throws a CollectorError naming it. */
  read(path: string): string {
    try {
      return this.raw(path);
    } catch (err) {
      throw new CollectorError(`read ${path}`, { cause: err });
    }
  }

  /** read() for a file that may legitimately not exist: undefined on ENOENT. */
  readOptional(path: string): string | undefined {
    try {
      return this.raw(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CollectorError(`read ${path}`, { cause: err });
    }
  }

  /** readHostProcFile through these descriptors. */
  readHost(procfs: string, rel: string): { text: string; fellBack?: string } {
    return hostProcFile(
      procfs,
      rel,
      (p) => this.raw(p),
      (p) => this.read(p),
    );
  }

  /**
   * readHost() for a file that may legitimately not exist (net/stat/nf_conntrack without
   * the conntrack module): undefined when neither PID 1's nor our own exists.
   */
  readOptionalHost(procfs: string, rel: string): { text: string; fellBack?: string } | undefined {
    return hostProcFile(
      procfs,
      rel,
      (p) => this.raw(p),
      (p) => this.readOptional(p),
    );
  }

  close(): void {
    for (const fd of this.kept.values()) fs.closeSync(fd);
    this.kept.clear();
  }

  /** Reads the whole file, throwing what fs throws. */
  private raw(path: string): string {
    if (!this.keep) return readFileSync(path, 'utf8');
    let fd = this.kept.get(path);
    if (fd !== undefined) {
      try {
        return this.readAll(fd);
      } catch {
        // The file went away under the descriptor (a process's); open the path anew.
        this.kept.delete(path);
        fs.closeSync(fd);
      }
    }
    fd = fs.openSync(path, 'r');
    try {
      const text = this.readAll(fd);
      this.kept.set(path, fd);
      return text;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private readAll(fd: number): string {
    for (;;) {
      // readvSync: fs.readSync runs five argument validators per call, this two.
      const n = fs.readvSync(fd, [this.buffer], 0);
      // A full buffer may mean more to read: grow it and read the file again from 0.
      if (n < this.buffer.length) return this.buffer.toString('utf8', 0, n);
      this.buffer = Buffer.allocUnsafe(this.buffer.length * 2);
    }
  }
}

/**
 * Reads a /proc file synchronously (see ProcFiles), naming it in the error, without
 * keeping it open.
 */
export function readProcFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CollectorError(`read ${path}`, { cause: err });
  }
}

/**
 * Reads /proc/1/<rel>: PID 1 sees the host's network namespace and mount table, even
 * when lookout runs in a container. Where PID 1's is not readable (hidepid) /proc/<rel>,
 * which is our own, is the fallback: the same outside a container, the container's
 * inside one; `fellBack` says why, so the caller can say so. `raw` reads PID 1's
 * (throwing what fs throws), `read` reads the fallback.
 */
function hostProcFile<T extends string | undefined>(
  procfs: string,
  rel: string,
  raw: (path: string) => string,
  read: (path: string) => T,
): { text: string; fellBack?: string } | Exclude<T, string> {
  const host = join(procfs, '1', rel);
  try {
    return { text: raw(host) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EACCES' && code !== 'EPERM') {
      throw new CollectorError(`read ${host}`, { cause: err });
    }
    const own = read(join(procfs, rel));
    return typeof own === 'string'
      ? { text: own, fellBack: `${host}: ${code}` }
      : (own as Exclude<T, string>);
  }
}

const readWhole = (path: string) => readFileSync(path, 'utf8');

export function readHostProcFile(procfs: string, rel: string): { text: string; fellBack?: string } {
  return hostProcFile(procfs, rel, readWhole, readProcFile);
}
