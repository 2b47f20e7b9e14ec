/**
 * `lookout --help` and `lookout <command> --help`, run for real: each says what the
 * command does, its flags, its exit codes and where the docs are, and every flag the CLI
 * accepts is explained in some command's help.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { COMMAND_HELP, helpText, USAGE } from '../src/help.js';
import { REPO } from './helpers/procs.js';

const run = promisify(execFile);
/** The built CLI (test:unit and npm test build first): tsx would compile src/ each run. */
const lookout = (...args: string[]) =>
  run(process.execPath, [join(REPO, 'dist/cli.js'), ...args], { cwd: REPO });

/** The long flags cli.ts's parseArgs accepts (`help` and `version` excepted). */
async function acceptedFlags(): Promise<string[]> {
  const src = await readFile(join(REPO, 'src/cli.ts'), 'utf8');
  const block = /options:\s*\{([\s\S]*?)\n\s*\},\n/.exec(src)?.[1] ?? '';
  return [...block.matchAll(/^\s*'?([a-z][a-z.-]*)'?:\s*\{\s*type:/gm)]
    .map((m) => m[1]!)
    .filter((f) => f !== 'help' && f !== 'version');
}

describe('lookout --help', { concurrency: true }, () => {
  test('lists every command and says where the docs are', async () => {
    const { stdout } = await lookout('--help');
    assert.equal(stdout, USAGE);
    for (const command of Object.keys(COMMAND_HELP))
      assert.match(stdout, new RegExp(`lookout (\\[)?${command}`));
    assert.match(stdout, /lookout <command> --help/);
    assert.match(stdout, /docs\//);
  });

  for (const command of Object.keys(COMMAND_HELP) as Array<keyof typeof COMMAND_HELP>) {
    test(`lookout ${command} --help says what it does, its usage, flags, exit codes and docs, exit 0`, async () => {
      const { stdout } = await lookout(command, '--help');
      assert.equal(stdout, helpText(command));
      assert.match(stdout, new RegExp(`^lookout ${command} — `));
      assert.match(stdout, /\nUsage:\n {2}lookout /);
      assert.match(stdout, /\nExit: 0/);
      assert.match(stdout, /\nDocs: /);
      // Every flag its usage line shows is explained under Flags.
      const usage = /\nUsage:\n(.*)\n/.exec(stdout)![1]!;
      const flags = stdout.slice(stdout.indexOf('\nFlags:\n'));
      for (const m of usage.matchAll(/--([a-z][a-z.-]*)/g))
        assert.match(
          flags,
          new RegExp(`\\n {2}(-\\w, )?--${m[1]!.replace(/\./g, '\\.')} `),
          `--${m[1]}`,
        );
    });
  }

  test("every flag cli.ts accepts is explained in some command's help", async () => {
    const flags = await acceptedFlags();
    assert.ok(flags.includes('config') && flags.length >= 5, `read ${flags.join(', ')}`);
    const all = Object.values(COMMAND_HELP).join('\n');
    for (const flag of flags) assert.ok(all.includes(`--${flag} `), `--${flag} has no help`);
  });
});
