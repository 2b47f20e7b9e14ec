import { access, constants, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** The state directory cannot be made or written; the message names the setting and the fix. */
export class StorageError extends Error {
  readonly code = 'LOOKOUT_STORAGE_UNUSABLE';
}

/**
 * Where state lives when the config does not say: systemd's StateDirectory= (which sets
 * STATE_DIRECTORY; the image sets it too), else `data` under the working directory, so
 * `npm start` keeps its state inside the checkout.
 */
export function defaultStoragePath(env: NodeJS.ProcessEnv = process.env): string {
  // systemd lists one path per StateDirectory= entry, separated by colons.
  const fromSystemd = env.STATE_DIRECTORY?.split(':')[0];
  return fromSystemd || 'data';
}

/** `<root>/<name>`, created (with parents) and checked writable. */
export async function ensureStateDirectory(root: string, name: string): Promise<string> {
  const dir = resolve(join(root, name));
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'read-only filesystem'
          : code === 'ENOTDIR' || code === 'EEXIST'
            ? 'a file is in the way'
            : (code ?? String(err));
    throw new StorageError(
      `storage.path: cannot use ${dir} (${why}); set storage.path in the config (or STATE_DIRECTORY) to a directory the lookout user can write`,
      { cause: err },
    );
  }
  return dir;
}
