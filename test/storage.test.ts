/**
 * One state location for every command (src/lib/storage.ts): the built CLI's `serve`
 * keeps state under --storage.path, `status` with the same flag reads it — run from
 * another directory — and creates nothing, there or where nothing was; a path that
 * cannot be used is an error naming the setting, exit 2. The permission-denied branch
 * runs for real: the commands run as an unprivileged user (setpriv), since CI is root.
 */
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { appendFile, chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { eventually, REPO, startLookout, tempDir, type Running } from './helpers/procs.js';
import { resolveStoragePath, defaultStoragePath, PACKAGE_ROOT } from '../src/lib/storage.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI, optionally as another user (argv before node: `setpriv ...`). */
function lookout(args: string[], opts: { cwd?: string; as?: string[] } = {}): Promise<Result> {
  const argv = [...(opts.as ?? []), process.execPath, join(REPO, 'dist/cli.js'), ...args];
  return new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: 30_000, cwd: opts.cwd ?? REPO, env: { ...process.env, STATE_DIRECTORY: '' } },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

/** Every path under dir with its type: what a command must not add to. */
async function tree(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    out.push(`${join(e.parentPath, e.name).slice(dir.length)} ${e.isDirectory() ? 'dir' : 'file'}`);
  }
  return out.sort();
}

const QUIET = `
collectors:
  host: { enabled: false }
  filesystem: { enabled: false }
  processes: { enabled: false }
`;

describe('storage.path: resolution', () => {
  it('the flag over the config (relative to the config file), the default under the package', () => {
    assert.equal(resolveStoragePath('/etc/x', { flag: 'rel' }), join(process.cwd(), 'rel'));
    assert.equal(
      resolveStoragePath('state', { configFile: '/etc/lookout/lookout.yml' }),
      '/etc/lookout/state',
    );
    assert.equal(resolveStoragePath('/abs', { configFile: '/etc/lookout/lookout.yml' }), '/abs');
    assert.equal(
      defaultStoragePath({ STATE_DIRECTORY: '/var/lib/lookout:/other' }),
      '/var/lib/lookout',
    );
    assert.equal(defaultStoragePath({}), join(PACKAGE_ROOT, 'data'));
    assert.ok(existsSync(join(PACKAGE_ROOT, 'package.json')), 'PACKAGE_ROOT is the package');
  });
});

describe('storage.path: serve keeps state, status reads it and creates nothing', () => {
  let dir = '';
  let state = '';
  let logFile = '';
  let config = '';
  let serve: Running | undefined;

  before(async () => {
    dir = await tempDir('lookout-storage-');
    state = join(dir, 'state');
    logFile = join(dir, 'access.log');
    await writeFile(logFile, '');
    config = join(dir, 'lookout.yml');
    const yaml = `${QUIET}  accesslog:
    interval: 1s
    timeout: 1s
    poll_interval: 100ms
    logs:
      - { name: web, path: ${logFile}, format: combined }
`;
    await writeFile(config, yaml);
    serve = await startLookout(yaml, ['--storage.path', state], { STATE_DIRECTORY: '' });
  });
  after(async () => {
    await serve?.stop();
  });

  it('status --storage.path from another directory shows the running service’s read position; the tree is unchanged', async () => {
    const line = '::1 - - [06/Dec/2026:07:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-"\n';
    await appendFile(logFile, line.repeat(3));
    const positions = join(state, 'accesslog', 'positions.json');
    await eventually(
      async () =>
        (await readFile(positions, 'utf8').catch(() => '')).includes('"offset":' + line.length * 3),
      10_000,
      'serve to save its read position',
    );
    const beforeTree = await tree(state);
    const r = await lookout(['status', '--config', config, '--storage.path', state], {
      cwd: tmpdir(),
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^State in ${state}$`, 'm'));
    const size = (await stat(logFile)).size;
    assert.match(
      r.stdout,
      new RegExp(
        `^  accesslog +web ${logFile}: read to byte ${size} of ${size} \\(0 behind\\), saved \\S+Z$`,
        'm',
      ),
    );
    assert.deepEqual(await tree(state), beforeTree, 'status made nothing in the state directory');
  });

  it('status with a storage.path that does not exist creates nothing and says there is no state yet', async () => {
    const missing = join(dir, 'not', 'there');
    const r = await lookout(['status', '--config', config, '--storage.path', missing]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^State in ${missing}\\n  none yet \\(no such directory\\)$`, 'm'),
    );
    assert.equal(existsSync(join(dir, 'not')), false, 'nothing created');
  });

  it('a storage.path that is a file: status and serve name the setting and exit 2', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    const listen = ['--web.listen-address', '127.0.0.1:0'];
    for (const command of ['status', 'serve']) {
      const args = [command, '--config', config, '--storage.path', file];
      const r = await lookout(command === 'serve' ? [...args, ...listen] : args);
      assert.equal(r.code, 2, `${command}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(
          `^lookout: storage\\.path: cannot (read|use) ${file}(/accesslog)? \\((not a directory|a file is in the way)\\); set storage\\.path in the config or --storage\\.path`,
          'm',
        ),
        command,
      );
    }
  });
});

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const canDrop = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;

describe('storage.path: permission denied, as an unprivileged user', () => {
  it(
    'serve and status on a root-owned 0700 directory: EACCES, named, exit 2',
    { skip: canDrop ? false : 'skipped: needs root and setpriv to run a command as nobody' },
    async () => {
      const dir = await tempDir('lookout-storage-eacces-');
      await chmod(dir, 0o755); // the config inside is for nobody to read
      const config = join(dir, 'lookout.yml');
      await writeFile(config, QUIET);
      const state = join(dir, 'state');
      await mkdir(state, { mode: 0o700 });
      await chmod(state, 0o700);
      const serve = await lookout(
        [
          'serve',
          '--config',
          config,
          '--storage.path',
          state,
          '--web.listen-address',
          '127.0.0.1:0',
        ],
        { as: NOBODY },
      );
      assert.equal(serve.code, 2, serve.stdout + serve.stderr);
      assert.match(
        serve.stderr,
        new RegExp(
          `^lookout: storage\\.path: cannot use ${state} \\(permission denied\\); set storage\\.path in the config or --storage\\.path .* a directory the lookout user can write$`,
          'm',
        ),
      );
      const status = await lookout(['status', '--config', config, '--storage.path', state], {
        as: NOBODY,
      });
      assert.equal(status.code, 2, status.stdout + status.stderr);
      assert.match(
        status.stderr,
        new RegExp(
          `^lookout: storage\\.path: cannot read ${state} \\(permission denied\\); .* can read$`,
          'm',
        ),
      );
      // And under it nothing was made by either.
      assert.deepEqual(await readdir(state), []);
    },
  );
});
