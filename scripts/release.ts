/**
 * `npm run release`: lookout-<version>-linux-<arch>.tar.gz, everything a host needs to run
 * lookout and nothing it has to fetch: the Node binary this build was made and tested
 * with, dist/ compiled afresh, production dependencies only, the launcher, the runbooks
 * (the /runbooks page), the AI price table, the systemd unit and its Docker drop-in, the example config, and
 * MANIFEST (sha256sum format), which `lookout install` checks the unpacked tree against.
 *
 *   npm run release [-- --out DIR] [-- --version X.Y.Z]
 *
 * --version stamps another version into the archive's package.json (what `lookout
 * --version` and lookout_build_info say) without touching the checkout.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  copyFile,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));

/** Go's names, as node_exporter's archives use them (linux-amd64). */
const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'armv7' };

/** What the archive takes from the checkout besides dist/, node_modules and the runtime. */
const FILES = [
  'bin/lookout',
  'package.json',
  'package-lock.json',
  'docs/runbooks.md',
  'pricing/ai-prices.yml',
  'deploy/systemd/lookout.service',
  'deploy/systemd/lookout.service.d/docker.conf',
  'lookout.example.yml',
];

/** native/timex as scripts/build-native.mjs leaves it; src/collectors/timex.ts loads it there. */
const TIMEX_ADDON = 'native/timex/build/Release/timex.node';

/** better-sqlite3's addon, compiled by `npm ci` for this Node; the rest of its build/ (objects,
 *  sqlite3.a, a test extension) and its C sources (deps/, src/) are not needed to run it. */
const SQLITE_ADDON = 'build/Release/better_sqlite3.node';

/** Where the installed layout keeps state (the unit's StateDirectory=lookout). */
const STATE_DIRECTORY = '/var/lib/lookout';

export interface Release {
  archive: string;
  version: string;
  bytes: number;
  unpackedBytes: number;
  files: number;
  /** From the start of the build to this archive written. */
  seconds: number;
}

async function walk(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path, base)));
    else out.push(relative(base, path));
  }
  return out;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}

/**
 * The example config shows the defaults of a checkout, where state lives in `data` under
 * the working directory. Installed, the working directory is /opt/lookout: read-only under
 * the unit and replaced by every upgrade, so an installed example that sets storage.path
 * points it at the state directory the unit provides (one that does not set it gets that
 * directory from STATE_DIRECTORY already).
 */
function installedExample(text: string): string {
  return text.replace(
    /^(storage:\n(?:[ \t]*#.*\n)*[ \t]+path:)[ \t]*\S+/m,
    `$1 ${STATE_DIRECTORY}`,
  );
}

/** Drops prebuilt native addons for other platforms (bcrypt ships Windows and macOS ones). */
async function pruneForeignPrebuilds(dir: string, keep: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(dir, entry.name);
    if (entry.name === 'prebuilds') {
      for (const platform of await readdir(path))
        if (platform !== keep) await rm(join(path, platform), { recursive: true, force: true });
    } else await pruneForeignPrebuilds(path, keep);
  }
}

/** Keeps only better-sqlite3's compiled addon of its build tree and sources. */
async function pruneSqliteBuild(pkgDir: string): Promise<void> {
  const addon = join(pkgDir, SQLITE_ADDON);
  if (
    !(await stat(addon).then(
      (s) => s.isFile(),
      () => false,
    ))
  )
    throw new Error(
      `${addon} is missing: npm ci builds it (a C++ compiler, make and python3 are needed)`,
    );
  const kept = await readFile(addon);
  for (const dir of ['build', 'deps', 'src'])
    await rm(join(pkgDir, dir), { recursive: true, force: true });
  await rm(join(pkgDir, 'binding.gyp'), { force: true });
  await mkdir(join(addon, '..'), { recursive: true });
  await writeFile(addon, kept, { mode: 0o755 });
}

/**
 * Builds one archive per version from one staging tree (the versions differ only in the
 * package.json they carry); the first is the checkout's version unless given.
 */
export async function release(opts: { out: string; versions?: string[] }): Promise<Release[]> {
  const t0 = Date.now();
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
    version: string;
  };
  const versions = opts.versions ?? [pkg.version];
  const arch = ARCH[process.arch] ?? process.arch;
  const staging = await mkdtemp(join(tmpdir(), 'lookout-release-'));
  const top = join(staging, 'lookout');
  try {
    await mkdir(top, { mode: 0o755 });
    // A clean compile: a dist/ left over from an older tree may hold files src/ no longer has.
    await run(join(REPO, 'node_modules/.bin/tsc'), [
      '-p',
      join(REPO, 'tsconfig.json'),
      '--outDir',
      join(top, 'dist'),
    ]);
    for (const file of FILES) {
      await mkdir(join(top, file, '..'), { recursive: true });
      await copyFile(join(REPO, file), join(top, file));
      await chmod(join(top, file), (await stat(join(REPO, file))).mode & 0o777);
    }
    // The timex collector's adjtimex addon, built by this checkout's `npm install` for this
    // Node and platform; without it the installed collector reports nothing to collect.
    if (
      await stat(join(REPO, TIMEX_ADDON)).then(
        (st) => st.isFile(),
        () => false,
      )
    ) {
      await mkdir(join(top, TIMEX_ADDON, '..'), { recursive: true });
      await copyFile(join(REPO, TIMEX_ADDON), join(top, TIMEX_ADDON));
    }
    await writeFile(
      join(top, 'lookout.example.yml'),
      installedExample(await readFile(join(top, 'lookout.example.yml'), 'utf8')),
    );

    // Production dependencies: the checkout's installed tree (native addons already built
    // for this Node), pruned offline, so the archive holds what the tests ran against.
    await cp(join(REPO, 'node_modules'), join(top, 'node_modules'), {
      recursive: true,
      verbatimSymlinks: true,
    });
    await run(
      'npm',
      ['prune', '--omit=dev', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'],
      { cwd: top, maxBuffer: 16 * 1024 * 1024 },
    );
    // Command links for a shell, not for lookout; the archive holds no symlinks.
    await rm(join(top, 'node_modules/.bin'), { recursive: true, force: true });
    await pruneForeignPrebuilds(join(top, 'node_modules'), `linux-${process.arch}`);
    await pruneSqliteBuild(join(top, 'node_modules/better-sqlite3'));

    // The Node that runs this build is the one the tests ran with.
    await mkdir(join(top, 'runtime'));
    await copyFile(process.execPath, join(top, 'runtime/node'));
    await chmod(join(top, 'runtime/node'), 0o755);
    for (const license of [
      '/usr/share/doc/nodejs/LICENSE',
      resolve(process.execPath, '../../share/doc/node/LICENSE'),
    ])
      if (
        await stat(license).then(
          (s) => s.isFile(),
          () => false,
        )
      ) {
        await copyFile(license, join(top, 'runtime/LICENSE'));
        break;
      }

    const files = (await walk(top)).sort();
    const hashes = new Map<string, string>();
    const sizes = new Map<string, number>();
    for (const file of files) {
      const st = await lstat(join(top, file));
      if (!st.isFile())
        throw new Error(`${file}: not a regular file; the archive holds files only`);
      sizes.set(file, st.size);
      hashes.set(file, await sha256File(join(top, file)));
    }
    await mkdir(opts.out, { recursive: true });

    const out: Release[] = [];
    const pkgText = await readFile(join(top, 'package.json'), 'utf8');
    for (const version of versions) {
      const staged = JSON.parse(pkgText) as Record<string, unknown>;
      staged.version = version;
      const text = version === pkg.version ? pkgText : JSON.stringify(staged, null, 2) + '\n';
      await writeFile(join(top, 'package.json'), text);
      hashes.set('package.json', await sha256File(join(top, 'package.json')));
      sizes.set('package.json', Buffer.byteLength(text));
      await writeFile(join(top, 'MANIFEST'), files.map((f) => `${hashes.get(f)}  ${f}\n`).join(''));
      const archive = join(opts.out, `lookout-${version}-linux-${arch}.tar.gz`);
      const tmp = `${archive}.${process.pid}.tmp`;
      // Owned by root in the archive, whoever builds it; gzip -n keeps no name or time.
      await run('tar', [
        '--sort=name',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '--use-compress-program=gzip -n',
        '-C',
        staging,
        '-cf',
        tmp,
        'lookout',
      ]);
      await rename(tmp, archive);
      out.push({
        archive,
        version,
        bytes: (await stat(archive)).size,
        unpackedBytes:
          [...sizes.values()].reduce((a, b) => a + b, 0) + (await stat(join(top, 'MANIFEST'))).size,
        files: files.length + 1,
        seconds: (Date.now() - t0) / 1000,
      });
    }
    return out;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, version: { type: 'string' } },
    strict: true,
  });
  for (const r of await release({
    out: resolve(values.out ?? '.'),
    versions: values.version === undefined ? undefined : [values.version],
  }))
    process.stdout.write(
      `${r.archive}\n  lookout ${r.version}, Node ${process.version}\n  archive ${MB(r.bytes)}, unpacked ${MB(r.unpackedBytes)} in ${r.files} files (${r.seconds.toFixed(1)} s)\n`,
    );
}
