/**
 * Where lookout keeps state that must survive a restart (a ledger, a read position), and
 * how each command opens it: `serve` read-write (made, checked writable), every report
 * (`status`, `check`, the commands to come) read-only (nothing made; no directory means
 * no state yet). Every command resolves the location the same way: --storage.path, else
 * the config's storage.path, else $STATE_DIRECTORY, else `data` under the package.
 */
import { access, constants, mkdir, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isAbsolute, join, resolve } from 'node:path';

/** How a command opens the state directory. */
export type StorageMode = 'read-write' | 'read-only';

/** The state directory cannot be made, written or read; the message names the setting and the fix. */
export class StorageError extends Error {
  readonly code = 'LOOKOUT_STORAGE_UNUSABLE';
}

/**
 * The package's root: this file is src/lib/storage.ts or dist/lib/storage.js, two levels
 * below it either way.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Where state lives when neither the flag nor the config says: systemd's StateDirectory=
 * (which sets STATE_DIRECTORY; the image sets it too), else `data` under the package.
 * Not under the working directory: `npm start` runs in the checkout, but an operator
 * runs `lookout status` from wherever their shell is, and must find the same state.
 */
export function defaultStoragePath(env: NodeJS.ProcessEnv = process.env): string {
  // systemd lists one path per StateDirectory= entry, separated by colons.
  const fromSystemd = env.STATE_DIRECTORY?.split(':')[0];
  return fromSystemd || join(PACKAGE_ROOT, 'data');
}

/**
 * The state directory's absolute path: --storage.path (relative to the working
 * directory, as a shell user means it) over the config's storage.path (relative to the
 * config file's directory, so it means one place whoever starts lookout, from wherever).
 * The config's value already holds $STATE_DIRECTORY or the default when the file sets none.
 */
export function resolveStoragePath(
  fromConfig: string,
  opts: { flag?: string; configFile?: string },
): string {
  if (opts.flag !== undefined) return resolve(opts.flag);
  if (isAbsolute(fromConfig) || opts.configFile === undefined) return resolve(fromConfig);
  return resolve(join(opts.configFile, '..'), fromConfig);
}

function why(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM'
    ? 'permission denied'
    : code === 'EROFS'
      ? 'read-only filesystem'
      : code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a file is in the way'
        : (code ?? String(err));
}

function unusable(
  dir: string,
  mode: StorageMode,
  cause: unknown,
  reason = why(cause),
): StorageError {
  const can = mode === 'read-write' ? 'write' : 'read';
  return new StorageError(
    `storage.path: cannot ${mode === 'read-write' ? 'use' : 'read'} ${dir} (${reason}); set storage.path in the config or --storage.path (or STATE_DIRECTORY) to a directory the lookout user can ${can}`,
    { cause },
  );
}

/**
 * `<root>/<name>` (or root itself without a name) opened for `mode`:
 * - read-write: created (with parents) and checked writable;
 * - read-only: nothing is created. Resolves to the path whether or not it exists — a
 *   missing directory is no state yet, and a reader's ENOENT says so — and rejects when
 *   something is there that cannot be read.
 * Either way a StorageError names the setting and the fix.
 */
export async function openStateDirectory(
  root: string,
  name: string | undefined,
  mode: StorageMode,
): Promise<string> {
  const dir = resolve(name === undefined ? root : join(root, name));
  if (mode === 'read-write') {
    try {
      await mkdir(dir, { recursive: true, mode: 0o750 });
      await access(dir, constants.W_OK);
    } catch (err) {
      throw unusable(dir, mode, err);
    }
    return dir;
  }
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return dir;
    throw unusable(dir, mode, err);
  }
  if (!st.isDirectory()) throw unusable(dir, mode, undefined, 'not a directory');
  try {
    await access(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw unusable(dir, mode, err);
  }
  return dir;
}

/**
 * A collector that keeps state says, for `lookout status`, what it finds there: one
 * line per thing kept (a log's read position), read without changing anything.
 */
export interface StateReporter {
  describeState(): Promise<string[]>;
}

export function isStateReporter(c: object): c is StateReporter {
  return typeof (c as Partial<StateReporter>).describeState === 'function';
}
