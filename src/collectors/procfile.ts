import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CollectorError } from './collector.js';

/**
 * Reads a /proc file synchronously, naming it in the error. The kernel writes these from
 * memory, so a read never waits on a disk or a network; through the thread pool each
 * file is four hand-offs (open, fstat, read, close), and each hand-off wakes the event
 * loop, which measured as most of an idle refresh's CPU. Files on real filesystems
 * (under rootfs) are never read this way.
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
 * inside one; `fellBack` says why, so the caller can say so. `read` reads the fallback.
 */
function hostProcFile<T extends string | undefined>(
  procfs: string,
  rel: string,
  read: (path: string) => T,
): { text: string; fellBack?: string } | Exclude<T, string> {
  const host = join(procfs, '1', rel);
  try {
    return { text: readFileSync(host, 'utf8') };
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

export function readHostProcFile(procfs: string, rel: string): { text: string; fellBack?: string } {
  return hostProcFile(procfs, rel, readProcFile);
}

/**
 * readProcFile for a file that may legitimately not exist (nf_conntrack_max without the
 * conntrack module loaded): undefined on ENOENT, any other failure still names the file.
 */
export function readOptionalProcFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CollectorError(`read ${path}`, { cause: err });
  }
}

/**
 * readHostProcFile for a file that may legitimately not exist (net/stat/nf_conntrack
 * without the conntrack module): undefined when neither PID 1's nor our own exists.
 */
export function readOptionalHostProcFile(
  procfs: string,
  rel: string,
): { text: string; fellBack?: string } | undefined {
  return hostProcFile(procfs, rel, readOptionalProcFile);
}
