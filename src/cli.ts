#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './collectors/config.js';
import { createLogger, errorText, type Logger } from './lib/log.js';
import { VERSION } from './version.js';
import { hungCalls } from './lib/fanout.js';
import { resolveStoragePath, StorageError } from './lib/storage.js';
import { helpText, USAGE } from './help.js';
import { UsageError } from './usage.js';

/** Exit codes, as the seed systems use them: 0 good, 1 bad input, 2 could not run. */
export const EXIT = { ok: 0, invalid: 1, failed: 2 } as const;

/**
 * process.exit() joins libuv's I/O threads, and one stuck in a hung mount (an NFS statfs)
 * never returns, so exit() would hang too. Only calls the fan-out saw outlive their
 * deadline count as stuck — lookout's own writes were awaited before this point — and
 * only then does lookout end as an unhandled SIGTERM does (status 143, a clean stop for
 * systemd and docker), saying so.
 */
function exitNow(code: number, log: Logger): never {
  const stuck = hungCalls();
  if (stuck.length > 0) {
    log.warn('exiting by signal: calls stuck in the kernel cannot return', {
      calls: stuck.join(', '),
    });
    process.removeAllListeners('SIGTERM');
    process.kill(process.pid, 'SIGTERM');
  }
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'install' || argv[0] === 'uninstall')
    return (await import('./install.js')).installCli(argv);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      'web.listen-address': { type: 'string' },
      'web.config.file': { type: 'string' },
      'storage.path': { type: 'string' },
      alertmanager: { type: 'string' },
      severity: { type: 'string' },
      window: { type: 'string' },
      by: { type: 'string' },
      json: { type: 'boolean' },
      since: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(helpText(positionals[0]));
    return EXIT.ok;
  }
  if (values.version) {
    process.stdout.write(`lookout ${VERSION}\n`);
    return EXIT.ok;
  }
  const command = positionals[0] ?? 'serve';
  // `lookout cost reprice` is the one command with a subcommand.
  const allowed = command === 'cost' ? 2 : 1;
  if (positionals.length > allowed)
    throw new UsageError(`unexpected argument "${positionals[allowed]}"`);
  for (const flag of ['window', 'by', 'json', 'since'] as const)
    if (values[flag] !== undefined && command !== 'cost')
      throw new UsageError(`--${flag} is a flag of lookout cost`);
  /** The config file with what every command's flags override, applied the same way for all. */
  const load = async () => {
    const config = await loadConfig(values.config);
    const flag = values['storage.path'];
    if (flag === '') throw new UsageError('--storage.path: expected a directory, got ""');
    if (flag !== undefined) config.storage.path = resolveStoragePath(config.storage.path, { flag });
    return config;
  };

  switch (command) {
    case 'check': {
      const config = await load();
      process.stdout.write(`${values.config ?? 'embedded defaults'}: OK\n`);
      const webFile = values['web.config.file'] ?? config.web.config_file;
      if (webFile !== undefined) {
        const { checkWebConfigFile } = await import('./exporter/webconfig.js');
        for (const w of await checkWebConfigFile(webFile)) process.stderr.write(`warning: ${w}\n`);
        process.stdout.write(`${webFile}: OK\n`);
      }
      // Then whether each configured target answers now; the exit code stays the config's.
      const { checkTargets, formatChecks } = await import('./check.js');
      const { checkSection } = await import('./cost.js');
      // The price table first: a wrong one fails the check as a wrong config does.
      const ai = await checkSection(config);
      process.stdout.write(formatChecks(await checkTargets(config)) + ai);
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      return exitNow(EXIT.ok, createLogger(config.log.level));
    }
    case 'serve': {
      const config = await load();
      if (values['web.listen-address'] !== undefined) {
        const { parseConfig } = await import('./collectors/config.js');
        // Only the address: the file's other web settings (limits) stay.
        config.web.listen_address = parseConfig(
          { web: { listen_address: values['web.listen-address'] } },
          '--web.listen-address',
        ).web.listen_address;
      }
      if (values['web.config.file'] !== undefined)
        config.web.config_file = values['web.config.file'];
      const { serve } = await import('./exporter/serve.js');
      const log = createLogger(config.log.level);
      return exitNow(await serve(config, log), log);
    }
    case 'status': {
      const config = await load();
      const { status } = await import('./status.js');
      const code = await status(config, process.stdout);
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      return exitNow(code, createLogger(config.log.level));
    }
    case 'cost': {
      const config = await load();
      const { costCommand } = await import('./cost.js');
      const code = await costCommand(
        config,
        positionals[1],
        { window: values.window, by: values.by, json: values.json, since: values.since },
        process.stdout,
      );
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      return code;
    }
    case 'alert-test': {
      const { alertTest } = await import('./alerttest.js');
      return alertTest({ alertmanager: values.alertmanager, severity: values.severity });
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      process.exitCode = EXIT.invalid;
    } else if (err instanceof StorageError) {
      // Its message already says why (permission denied, not a directory) and what to set.
      process.stderr.write(`lookout: ${err.message}\n`);
      process.exitCode = EXIT.failed;
    } else if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`lookout: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = EXIT.invalid;
    } else {
      process.stderr.write(`lookout: ${errorText(err)}\n`);
      process.exitCode = EXIT.failed;
    }
  },
);
