// Builds the optional native addons under native/ (today: native/timex, adjtimex(2) for
// the timex collector) with node-gyp. Run by `npm ci` / `npm install` (the package's
// install script) and by `npm run build:native`. Never fails the install: on a machine
// without a C compiler, Node headers or Linux, it says why on stderr and exits 0, and the
// collector that needs the addon reports "nothing to collect" with the same reason.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'native', 'timex');

function nodeGyp() {
  // npm gives its bundled node-gyp to install scripts; outside npm, its copy beside npm.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  try {
    const npm = createRequire(
      join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'package.json'),
    );
    return npm.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return undefined;
  }
}

function skip(why) {
  process.stderr.write(
    `lookout: native/timex not built (${why}); the timex collector will report nothing to collect\n`,
  );
  process.exit(0);
}

if (process.platform !== 'linux') skip(`adjtimex(2) is Linux only, this is ${process.platform}`);
const gyp = nodeGyp();
if (!gyp) skip('node-gyp not found: npm ships it; run npm run build:native');
// The headers of the running Node where it has them (a distribution's node, Node's own
// tarball): else node-gyp would download them, and the machine may have no such network.
const prefix = join(dirname(process.execPath), '..');
const args = [gyp, 'rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const r = spawnSync(process.execPath, args, {
  cwd: addon,
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
  timeout: 300_000,
});
if (r.error) skip(`node-gyp: ${r.error.message}`);
if (r.status !== 0) {
  const noise = /gyp ERR! (node -v|node-gyp -v|cwd|command|System|not ok)|gyp info/;
  const last = r.stderr
    .split('\n')
    .filter((l) => /err/i.test(l) && !noise.test(l))
    .slice(0, 2)
    .join(' | ');
  skip(`node-gyp rebuild exited ${r.status ?? r.signal}: ${last}`);
}
