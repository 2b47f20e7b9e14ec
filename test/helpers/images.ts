/**
 * The images docker-compose.yml pins, built here because no registry can be reached:
 * Debian bases made with debootstrap, and on them stand-ins for prom/prometheus,
 * prom/alertmanager and the Node base (test/e2e/standins/*.Dockerfile).
 *
 * Built once per machine: the debootstrap trees (as tarballs) and the finished stand-in
 * images (as one `docker save` archive) are kept under CACHE_DIR, named by a hash of
 * everything that goes into them, so a changed Dockerfile, mirror or CA bundle builds
 * afresh and an unchanged one costs a `docker load`.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import {
  chmod,
  copyFile,
  cp,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  stat,
} from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { withDocker } from './dockerd.js';
import { REPO } from './procs.js';

const run = promisify(execFile);

export const CACHE_DIR = process.env.LOOKOUT_TEST_CACHE ?? '/var/cache/lookout-test';
const STANDINS = join(REPO, 'test/e2e/standins');
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The image a service of docker-compose.yml pins: the stand-ins take those names, so the
 *  file runs unchanged (and a bumped pin is a different cache entry). */
function pinned(service: string): string {
  const compose = load(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { image?: string }>;
  };
  const image = compose.services[service]?.image;
  if (!image) throw new Error(`docker-compose.yml: no image for service ${service}`);
  return image;
}
export const PROMETHEUS_IMAGE = pinned('prometheus');
export const ALERTMANAGER_IMAGE = pinned('alertmanager');
/** Passed to the project's Dockerfile as NODE_IMAGE. */
export const NODE_IMAGE = 'lookout-test/node:20-trixie';
/** Debian 12 has the pinned Prometheus and Alertmanager; Debian 13 has Node 20. */
const PROM_SUITE = 'bookworm';
const NODE_SUITE = 'trixie';

/**
 * The Debian mirror this machine's apt uses (never written into the repo): the first
 * URIs/deb line in /etc/apt/sources.list.d or /etc/apt/sources.list for a plain suite
 * (not -security or -updates).
 */
export async function debianMirror(): Promise<string> {
  const files: string[] = [];
  const dir = '/etc/apt/sources.list.d';
  for (const f of (await readdir(dir).catch(() => [] as string[])).sort())
    if (/\.(sources|list)$/.test(f)) files.push(join(dir, f));
  files.push('/etc/apt/sources.list');
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    // deb822: stanzas separated by blank lines.
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri && /^Types:.*\bdeb\b/m.test(stanza) && suites.some((s) => /^[a-z]+$/.test(s)))
        return uri;
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+([a-z]+)\s/.exec(line);
      if (m) return m[1]!;
    }
  }
  throw new Error('no Debian mirror found in /etc/apt/sources.list.d or /etc/apt/sources.list');
}

/** The npm bundled with this machine's Node (what the official node image ships with its Node). */
async function hostNpm(): Promise<{ dir: string; version: string }> {
  const { stdout } = await run('npm', ['root', '-g'], { encoding: 'utf8' });
  const dir = join(stdout.trim(), 'npm');
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version: string };
  return { dir, version: pkg.version };
}

const sha = (...parts: Array<string | Buffer>) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
};

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Writes via a temp name and rename, so a run killed half-way leaves no broken cache entry. */
async function cacheFile(path: string, make: (tmp: string) => Promise<void>): Promise<boolean> {
  if (await exists(path)) return false;
  await mkdir(CACHE_DIR, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await make(tmp);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return true;
}

/** Removes cache entries with this prefix other than keep (older inputs). */
async function prune(prefix: string, keep: string): Promise<void> {
  for (const f of await readdir(CACHE_DIR).catch(() => [] as string[]))
    if (f.startsWith(prefix) && join(CACHE_DIR, f) !== keep && !f.endsWith('.tmp'))
      await rm(join(CACHE_DIR, f), { force: true });
}

/** A minbase Debian tree as a tarball (about 50 s the first time). */
export async function debootstrapTarball(suite: string, mirror: string, log: (s: string) => void) {
  const path = join(CACHE_DIR, `debootstrap-${suite}-${sha('minbase', suite, mirror)}.tar`);
  const made = await cacheFile(path, async (tmp) => {
    const root = await mkdtemp(join(CACHE_DIR, `rootfs-${suite}-`));
    try {
      // mkdtemp makes it 0700, and it becomes the image's `/`: users other than root
      // (nobody, node) could not reach anything.
      await chmod(root, 0o755);
      const t0 = Date.now();
      await run('debootstrap', ['--variant=minbase', suite, root, mirror], {
        timeout: 600_000,
        maxBuffer: 64 * 1024 * 1024,
      }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(
          `debootstrap ${suite}: ${err.message}\n${(err.stdout ?? '').slice(-3000)}`,
          {
            cause: err,
          },
        );
      });
      await run('tar', ['-C', root, '-cf', tmp, '.'], { timeout: 300_000 });
      log(`debootstrap ${suite}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
  if (made) await prune(`debootstrap-${suite}-`, path);
  return path;
}

export interface BaseImages {
  /** true when they came from the cache. */
  cached: boolean;
  seconds: number;
}

/**
 * Makes PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE and NODE_IMAGE exist in the engine at
 * dockerHost (which must be able to build with --network host: the host's namespace).
 */
export async function ensureBaseImages(
  dockerHost: string,
  log: (s: string) => void,
): Promise<BaseImages> {
  const t0 = Date.now();
  const mirror = await debianMirror();
  const inputs = await Promise.all(
    ['prometheus.Dockerfile', 'node.Dockerfile'].map((f) => readFile(join(STANDINS, f))),
  );
  const ca = await readFile(CA_BUNDLE);
  const npm = await hostNpm();
  const key = sha(
    mirror,
    PROM_SUITE,
    NODE_SUITE,
    PROMETHEUS_IMAGE,
    ALERTMANAGER_IMAGE,
    NODE_IMAGE,
    ca,
    npm.version,
    ...inputs,
  );
  const archive = join(CACHE_DIR, `images-${key}.tar`);
  const docker = (args: string[], timeoutMs = 600_000) =>
    withDocker(dockerHost, 'docker', args, { timeoutMs });

  if (await exists(archive)) {
    await docker(['load', '-q', '-i', archive]);
    return { cached: true, seconds: (Date.now() - t0) / 1000 };
  }

  const build = async (
    dockerfile: string,
    context: string,
    base: string,
    tag: string,
    target?: string,
  ) => {
    const t = Date.now();
    await docker([
      'build',
      // The host's network: apt reaches the Debian mirror as the host does.
      '--network=host',
      '-q',
      '-f',
      join(STANDINS, dockerfile),
      '--build-arg',
      `BASE=${base}`,
      ...(target ? ['--target', target] : []),
      '-t',
      tag,
      context,
    ]);
    log(`built ${tag}: ${((Date.now() - t) / 1000).toFixed(0)} s`);
  };
  const imported = async (suite: string) => {
    const tag = `lookout-test/debian:${suite}`;
    await docker(['import', await debootstrapTarball(suite, mirror, log), tag]);
    return tag;
  };

  // Two chains side by side: most of their time is spent waiting on the mirror.
  const node = async () => {
    const base = await imported(NODE_SUITE);
    // The Node stand-in's context holds only what it copies: npm and the CA bundle.
    const context = await mkdtemp(join(CACHE_DIR, 'node-context-'));
    try {
      await copyFile(CA_BUNDLE, join(context, 'ca-certificates.crt'));
      await cp(npm.dir, join(context, 'npm'), { recursive: true });
      await build('node.Dockerfile', context, base, NODE_IMAGE);
    } finally {
      await rm(context, { recursive: true, force: true });
    }
  };
  const prometheus = async () => {
    const base = await imported(PROM_SUITE);
    await build('prometheus.Dockerfile', STANDINS, base, PROMETHEUS_IMAGE, 'prometheus');
    await build('prometheus.Dockerfile', STANDINS, base, ALERTMANAGER_IMAGE, 'alertmanager');
  };
  await Promise.all([node(), prometheus()]);

  const made = await cacheFile(archive, async (tmp) => {
    await docker(['save', '-o', tmp, PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE, NODE_IMAGE]);
  });
  if (made) await prune('images-', archive);
  return { cached: false, seconds: (Date.now() - t0) / 1000 };
}
