/**
 * `lookout install` and `lookout uninstall`: lay an unpacked release archive out on a host
 * (npm run release makes the archive) and take it away again.
 *
 * Every change is planned first, as a list of steps, and nothing is changed until the
 * plan is whole and the config has passed this archive's own `lookout check`: so
 * `--dry-run` prints exactly what a run would do, a second run finds nothing to do, and an
 * upgrade whose new version rejects the existing config stops before anything is
 * replaced. `--root DIR` puts every path under DIR (an image being built, a test).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readFile,
  readlink,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { loadConfig } from './collectors/config.js';
import { errorText } from './lib/log.js';

const exec = promisify(execFile);

/** Where things go, as seen from the host's `/` (--root is put in front of each). */
export const LAYOUT = {
  opt: '/opt/lookout',
  configDir: '/etc/lookout',
  config: '/etc/lookout/lookout.yml',
  state: '/var/lib/lookout',
  /** Where systemd keeps a DynamicUser= service's state; /var/lib/lookout links to it. */
  privateState: '/var/lib/private/lookout',
  unitDir: '/etc/systemd/system',
  unit: '/etc/systemd/system/lookout.service',
  dropIn: '/etc/systemd/system/lookout.service.d/docker.conf',
  bin: '/usr/local/bin/lookout',
} as const;
const UNIT = 'lookout.service';

/** The unpacked archive this code runs from: dist/install.js → its top directory. */
const SOURCE = fileURLToPath(new URL('..', import.meta.url));
const SRC = {
  unit: 'deploy/systemd/lookout.service',
  dropIn: 'deploy/systemd/lookout.service.d/docker.conf',
  example: 'lookout.example.yml',
  launcher: 'bin/lookout',
};

const EXIT = { ok: 0, invalid: 1, failed: 2 } as const;

const USAGE = `Usage:
  lookout install   [--dry-run] [--root DIR]
      from an unpacked release archive, as root: lays lookout out in ${LAYOUT.opt},
      ${LAYOUT.config} (unless one exists), ${LAYOUT.state}, the systemd unit and
      ${LAYOUT.bin}; checks the config; enables and (re)starts the unit
  lookout uninstall [--dry-run] [--root DIR] [--purge]
      undoes it; keeps the state directory, and the config if edited, unless --purge
`;

interface Step {
  /** What it does, as an imperative: printed before it runs, or alone on --dry-run. */
  say: string;
  apply: () => Promise<void>;
}

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );
const readText = (p: string) => readFile(p, 'utf8').catch(() => undefined);
const linkTarget = (p: string) => readlink(p).catch(() => undefined);

// Synchronous on purpose: a one-off command reading ~2,000 files, where an await per
// file costs more than the read (seconds on a loaded host).
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Every non-directory under dir, relative to it; none when dir does not exist. */
function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** MANIFEST: `sha256  path` per file, as sha256sum writes and checks it. */
async function readManifest(dir: string): Promise<Map<string, string> | undefined> {
  const text = await readText(join(dir, 'MANIFEST'));
  if (text === undefined) return undefined;
  const files = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) files.set(m[2]!, m[1]!);
  }
  return files;
}

/** Files of `dir` that differ from the manifest (missing, changed, mode, or not in it). */
async function differences(
  dir: string,
  manifest: Map<string, string>,
  modesOf?: string,
): Promise<string[]> {
  const found = new Set(walk(dir));
  const out: string[] = [];
  for (const file of found) if (file !== 'MANIFEST' && !manifest.has(file)) out.push(file);
  for (const [file, hash] of manifest) {
    const path = join(dir, file);
    if (!found.has(file) || !lstatSync(path).isFile() || sha256(path) !== hash) out.push(file);
    else if (
      modesOf !== undefined &&
      (statSync(path).mode & 0o777) !== (statSync(join(modesOf, file)).mode & 0o777)
    )
      out.push(file);
  }
  if (modesOf !== undefined && (await readText(join(dir, 'MANIFEST'))) === undefined)
    out.push('MANIFEST');
  return out;
}

async function versionIn(dir: string): Promise<string | undefined> {
  const text = await readText(join(dir, 'package.json'));
  return text === undefined ? undefined : (JSON.parse(text) as { version?: string }).version;
}

/** The targets of the unit's WantedBy= (what `systemctl enable` links it into). */
function wantedBy(unitText: string): string[] {
  const out: string[] = [];
  let section = '';
  for (const line of unitText.split('\n')) {
    const header = /^\[(.+)\]\s*$/.exec(line);
    if (header) section = header[1]!;
    const m = /^WantedBy=(.*)$/.exec(line);
    if (section === 'Install' && m) out.push(...m[1]!.trim().split(/\s+/).filter(Boolean));
  }
  return out;
}

async function hasGroup(root: string, group: string): Promise<boolean> {
  const text = (await readText(join(root, 'etc/group'))) ?? '';
  return text.split('\n').some((line) => line.startsWith(`${group}:`));
}

/** systemd manages services here: the test sd_booted() makes, on the real root only. */
function systemdRuns(root: string): boolean {
  return root === '/' && existsSync('/run/systemd/system');
}

async function systemctl(...args: string[]): Promise<void> {
  await exec('systemctl', args).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`systemctl ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  });
}
const isActive = () =>
  exec('systemctl', ['is-active', '--quiet', UNIT]).then(
    () => true,
    () => false,
  );

/** Copies the manifest's files into a fresh directory beside target, then swaps it in. */
async function replaceTree(source: string, manifest: Map<string, string>, target: string) {
  const fresh = `${target}.new-${process.pid}`;
  const old = `${target}.old-${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  const files = [...manifest.keys(), 'MANIFEST'];
  const dirs = new Set<string>();
  for (const file of files)
    for (let d = dirname(join(fresh, file)); d.length >= fresh.length; d = dirname(d)) dirs.add(d);
  for (const dir of [...dirs].sort()) {
    await mkdir(dir, { recursive: true });
    // As the archive has them, whatever the umask of the shell sudo came from.
    await chmod(dir, 0o755);
  }
  for (const file of files) {
    await copyFile(join(source, file), join(fresh, file));
    await chmod(join(fresh, file), (await stat(join(source, file))).mode & 0o777);
  }
  if (await exists(target)) {
    await rename(target, old);
    await rename(fresh, target);
    await rm(old, { recursive: true, force: true });
  } else await rename(fresh, target);
}

/** Runs the unpacked archive's own `lookout check`, its output shown as it comes. */
function check(config: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(SOURCE, SRC.launcher), ['check', '--config', config], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? EXIT.failed : EXIT.ok)));
  });
}

async function targetLine(config: string): Promise<string> {
  const cfg = await loadConfig(config);
  const address = cfg.web.listen_address;
  const port = address.slice(address.lastIndexOf(':') + 1);
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  let text = `On the monitoring host, add this host to targets/lookout.yml (under "targets:"):\n    - ${hostname()}:${port}\n`;
  if (/^(127\.|::1$|localhost$)/.test(host))
    text += `  (lookout listens on ${address} only: set web.listen_address so Prometheus can reach it)\n`;
  if (cfg.web.config_file !== undefined)
    text += `  (web.config_file is set: the lookout job needs its TLS and basic-auth settings; docs/security.md)\n`;
  return text;
}

async function runSteps(steps: Step[], dryRun: boolean, out: NodeJS.WritableStream) {
  for (const step of steps) {
    out.write(`  - ${step.say}\n`);
    if (!dryRun) await step.apply();
  }
}

async function install(root: string, dryRun: boolean, out: NodeJS.WritableStream) {
  const at = (p: string) => join(root, p);
  const manifest = await readManifest(SOURCE);
  if (manifest === undefined || !(await exists(join(SOURCE, 'runtime/node')))) {
    out.write(
      `lookout install: ${SOURCE} is not an unpacked release archive (no MANIFEST or runtime/node).\n` +
        `Make one with \`npm run release\`, unpack it, and run its bin/lookout install.\n`,
    );
    return EXIT.invalid;
  }
  const damaged = await differences(SOURCE, manifest);
  const missingOrChanged = damaged.filter((f) => manifest.has(f));
  if (missingOrChanged.length > 0) {
    out.write(
      `lookout install: the unpacked archive in ${SOURCE} does not match its MANIFEST ` +
        `(${missingOrChanged.slice(0, 5).join(', ')}${missingOrChanged.length > 5 ? ', ...' : ''}); unpack it again.\n`,
    );
    return EXIT.failed;
  }
  const version = (await versionIn(SOURCE)) ?? '?';
  const installed = await versionIn(at(LAYOUT.opt));
  const configExists = await exists(at(LAYOUT.config));

  // The new version must accept the config before anything is replaced.
  const config = configExists ? at(LAYOUT.config) : join(SOURCE, SRC.example);
  out.write(`Checking ${config} with lookout ${version}:\n`);
  const checked = await check(config);
  if (checked !== EXIT.ok) {
    out.write(
      configExists
        ? `lookout install: lookout ${version} rejects ${config} (above); nothing was changed. ` +
            `Fix the config for ${version} (see its lookout.example.yml), then run install again.\n`
        : `lookout install: the archive's example config does not pass its own check; nothing was changed.\n`,
    );
    return checked === EXIT.invalid ? EXIT.invalid : EXIT.failed;
  }

  const steps: Step[] = [];
  let unitChanged = false;
  const treeDiff = await differences(at(LAYOUT.opt), manifest, SOURCE);
  if (treeDiff.length > 0)
    steps.push({
      say:
        installed === undefined
          ? `install lookout ${version} into ${at(LAYOUT.opt)}`
          : installed !== version
            ? `replace ${at(LAYOUT.opt)}: lookout ${installed} → ${version}`
            : `repair ${at(LAYOUT.opt)} (${treeDiff.length} files differ from the archive)`,
      apply: () => replaceTree(SOURCE, manifest, at(LAYOUT.opt)),
    });
  if (!configExists)
    steps.push({
      say: `write ${at(LAYOUT.config)} from the example config (edit it, then: lookout check)`,
      apply: async () => {
        await mkdir(at(LAYOUT.configDir), { recursive: true, mode: 0o755 });
        await copyFile(join(SOURCE, SRC.example), at(LAYOUT.config));
        await chmod(at(LAYOUT.config), 0o644);
      },
    });
  // On a systemd host that ran lookout, it is a link into /var/lib/private (DynamicUser=).
  if (!(await exists(at(LAYOUT.state))))
    steps.push({
      say: `make the state directory ${at(LAYOUT.state)}`,
      apply: () => mkdir(at(LAYOUT.state), { recursive: true, mode: 0o755 }).then(() => {}),
    });
  const unitText = await readFile(join(SOURCE, SRC.unit), 'utf8');
  if ((await readText(at(LAYOUT.unit))) !== unitText) {
    unitChanged = true;
    steps.push({
      say: `write the unit ${at(LAYOUT.unit)}`,
      apply: async () => {
        await mkdir(at(LAYOUT.unitDir), { recursive: true });
        await writeFile(at(LAYOUT.unit), unitText, { mode: 0o644 });
        await chmod(at(LAYOUT.unit), 0o644);
      },
    });
  }
  // Enabling is these links, as `systemctl enable` makes them: they work under --root too.
  for (const target of wantedBy(unitText)) {
    const link = at(join(LAYOUT.unitDir, `${target}.wants`, UNIT));
    if ((await linkTarget(link)) !== LAYOUT.unit)
      steps.push({
        say: `enable ${UNIT} (${target})`,
        apply: async () => {
          await mkdir(dirname(link), { recursive: true });
          await rm(link, { force: true });
          await symlink(LAYOUT.unit, link);
        },
      });
  }
  // The drop-in adds the docker group; where there is none it would stop the unit starting.
  const dropInText = await readFile(join(SOURCE, SRC.dropIn), 'utf8');
  const dropIn = await readText(at(LAYOUT.dropIn));
  if (await hasGroup(root, 'docker')) {
    if (dropIn !== dropInText) {
      unitChanged = true;
      steps.push({
        say: `write the Docker drop-in ${at(LAYOUT.dropIn)} (the docker group exists)`,
        apply: async () => {
          await mkdir(dirname(at(LAYOUT.dropIn)), { recursive: true, mode: 0o755 });
          await writeFile(at(LAYOUT.dropIn), dropInText, { mode: 0o644 });
        },
      });
    }
  } else if (dropIn === dropInText) {
    unitChanged = true;
    steps.push({
      say: `remove the Docker drop-in ${at(LAYOUT.dropIn)} (no docker group any more)`,
      apply: () => removeDropIn(root),
    });
  }
  const launcher = join(LAYOUT.opt, SRC.launcher);
  const onPath = await linkTarget(at(LAYOUT.bin));
  if (onPath !== launcher) {
    if (onPath === undefined && (await exists(at(LAYOUT.bin))))
      out.write(`  ! ${at(LAYOUT.bin)} is a file, not lookout's link: left alone\n`);
    else
      steps.push({
        say: `link ${at(LAYOUT.bin)} → ${launcher}`,
        apply: async () => {
          await mkdir(dirname(at(LAYOUT.bin)), { recursive: true });
          await rm(at(LAYOUT.bin), { force: true });
          await symlink(launcher, at(LAYOUT.bin));
        },
      });
  }

  const systemd = systemdRuns(root);
  const active = systemd && (await isActive());
  if (systemd && (steps.length > 0 || !active)) {
    if (unitChanged)
      steps.push({ say: 'systemctl daemon-reload', apply: () => systemctl('daemon-reload') });
    // Once, after everything is in place: a changed tree, unit or drop-in takes effect.
    const verb = active ? 'restart' : 'start';
    steps.push({ say: `systemctl ${verb} ${UNIT}`, apply: () => systemctl(verb, UNIT) });
  }

  if (steps.length === 0) {
    out.write(
      `lookout ${version} is installed${root === '/' ? '' : ` under ${root}`} and matches this archive: nothing changed.\n`,
    );
  } else {
    out.write(dryRun ? `Dry run; install would:\n` : `Installing lookout ${version}:\n`);
    await runSteps(steps, dryRun, out);
    if (!systemd)
      out.write(
        (root !== '/'
          ? `Under ${root}, lookout is not started (systemd is not asked about another root).`
          : `systemd is not running here (no /run/systemd/system): lookout is not started.`) +
          ` Where systemd runs:\n    systemctl daemon-reload && systemctl restart ${UNIT}\n`,
      );
  }
  out.write(await targetLine(dryRun ? config : at(LAYOUT.config)));
  return EXIT.ok;
}

async function removeDropIn(root: string) {
  await rm(join(root, LAYOUT.dropIn), { force: true });
  await rmdir(dirname(join(root, LAYOUT.dropIn))).catch(() => {});
}

async function uninstall(
  root: string,
  dryRun: boolean,
  purge: boolean,
  out: NodeJS.WritableStream,
) {
  const at = (p: string) => join(root, p);
  const steps: Step[] = [];
  const systemd = systemdRuns(root);
  if (systemd && (await isActive()))
    steps.push({ say: `systemctl stop ${UNIT}`, apply: () => systemctl('stop', UNIT) });

  const unitText = await readText(at(LAYOUT.unit));
  const wants = new Set(wantedBy(unitText ?? ''));
  // The unit may be gone already; its links are looked for under every target it named.
  wants.add('multi-user.target');
  for (const target of wants) {
    const link = at(join(LAYOUT.unitDir, `${target}.wants`, UNIT));
    if ((await linkTarget(link)) !== undefined)
      steps.push({
        say: `disable ${UNIT} (${target})`,
        apply: async () => {
          await unlink(link);
          await rmdir(dirname(link)).catch(() => {});
        },
      });
  }
  if (await exists(at(LAYOUT.dropIn)))
    steps.push({ say: `remove ${at(LAYOUT.dropIn)}`, apply: () => removeDropIn(root) });
  if (unitText !== undefined)
    steps.push({ say: `remove ${at(LAYOUT.unit)}`, apply: () => rm(at(LAYOUT.unit)) });
  if ((await linkTarget(at(LAYOUT.bin))) === join(LAYOUT.opt, SRC.launcher))
    steps.push({ say: `remove the link ${at(LAYOUT.bin)}`, apply: () => unlink(at(LAYOUT.bin)) });

  // The config goes only as the archive wrote it: an edited one is the user's.
  const config = await readText(at(LAYOUT.config));
  const example = await readText(at(join(LAYOUT.opt, SRC.example)));
  const kept: string[] = [];
  if (config !== undefined) {
    if (purge || config === example)
      steps.push({
        say: `remove ${at(LAYOUT.config)}${config === example ? '' : ' (edited; --purge)'}`,
        apply: async () => {
          await rm(at(LAYOUT.config));
          await rmdir(at(LAYOUT.configDir)).catch(() => {});
        },
      });
    else kept.push(`${at(LAYOUT.config)} (edited; --purge removes it)`);
  }
  if (await exists(at(LAYOUT.opt)))
    steps.push({
      say: `remove ${at(LAYOUT.opt)}`,
      apply: () => rm(at(LAYOUT.opt), { recursive: true, force: true }),
    });
  for (const dir of [LAYOUT.state, LAYOUT.privateState])
    if (await exists(at(dir))) {
      if (purge)
        steps.push({
          say: `remove the state directory ${at(dir)}`,
          apply: () => rm(at(dir), { recursive: true, force: true }),
        });
      else kept.push(`the state directory ${at(dir)} (--purge removes it)`);
    }
  if (systemd && unitText !== undefined)
    steps.push({ say: 'systemctl daemon-reload', apply: () => systemctl('daemon-reload') });

  if (steps.length === 0) out.write(`lookout is not installed here: nothing to remove.\n`);
  else {
    out.write(dryRun ? `Dry run; uninstall would:\n` : `Uninstalling lookout:\n`);
    await runSteps(steps, dryRun, out);
  }
  for (const k of kept) out.write(`  kept ${k}\n`);
  return EXIT.ok;
}

/** `lookout install|uninstall ...` (argv starts with the command). */
export async function installCli(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const command = argv[0];
  let values: { 'dry-run'?: boolean; root?: string; purge?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv.slice(1),
      strict: true,
      options: {
        'dry-run': { type: 'boolean' },
        root: { type: 'string' },
        purge: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`lookout ${command}: ${errorText(err)}\n\n${USAGE}`);
    return EXIT.invalid;
  }
  if (values.help) {
    out.write(USAGE);
    return EXIT.ok;
  }
  if (values.purge && command !== 'uninstall') {
    process.stderr.write(`lookout ${command}: --purge is for uninstall\n\n${USAGE}`);
    return EXIT.invalid;
  }
  const root = values.root ?? '/';
  const dryRun = values['dry-run'] ?? false;
  if (!dryRun && root === '/' && process.getuid?.() !== 0) {
    process.stderr.write(
      `lookout ${command}: run it as root (sudo ./lookout/bin/lookout ${command}), or try --dry-run\n`,
    );
    return EXIT.failed;
  }
  try {
    return command === 'install'
      ? await install(root, dryRun, out)
      : await uninstall(root, dryRun, values.purge ?? false, out);
  } catch (err) {
    process.stderr.write(`lookout ${command}: ${errorText(err)}\n`);
    return EXIT.failed;
  }
}
