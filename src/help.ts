/**
 * What `lookout --help` and `lookout <command> --help` print. Kept apart from the argument
 * parsing in cli.ts so the words can change without touching how flags are read; a flag
 * added there gets its line here (test/help.test.ts checks each command's help names the
 * flags it accepts).
 */
import { VERSION } from './version.js';

/** Where the reference lives: the source tree and an install both carry docs/. */
const DOCS = `Docs: README.md and docs/ beside bin/ (in a checkout, or /opt/lookout on an installed
host); the runbooks are also served at http://HOST:10142/runbooks.`;

const CONFIG_FLAG = `  -c, --config FILE              lookout.yml (default: the embedded defaults, which work
                                 on any Linux host; lookout.example.yml lists every key)`;
const STORAGE_FLAG = `  --storage.path DIR             the state directory (overrides storage.path; default
                                 $STATE_DIRECTORY, else data/ under lookout's package).
                                 Give every command the same one`;
const WEB_CONFIG_FLAG = `  --web.config.file FILE         the exporter toolkit's web-config file: TLS, mTLS, basic
                                 auth, headers, rate limit (overrides web.config_file)`;

/** Each command's help: what it does, its flags, its exit codes. */
export const COMMAND_HELP = {
  serve: `lookout serve — run the exporter (the default command)

Collectors refresh in the background, each on its own interval; /metrics serves what
their last good refresh saw. Also /healthz, /runbooks and a landing page at /.
SIGTERM or SIGINT drains requests, stops the collectors and waits for their flush.

Usage:
  lookout serve [--config FILE] [--web.listen-address HOST:PORT] [--web.config.file FILE]
                [--storage.path DIR]

Flags:
${CONFIG_FLAG}
  --web.listen-address HOST:PORT where to listen (overrides web.listen_address; default
                                 :10142, every address)
${WEB_CONFIG_FLAG}
${STORAGE_FLAG} (created if missing)

Exit: 0 after SIGTERM/SIGINT, 1 invalid config, 2 could not run (port in use, a
collector's flush overran).

More: docs/configuration.md, docs/security.md, docs/deployment.md.`,

  check: `lookout check — validate the config, then ask each target whether it answers

Names every wrong field of the config (and of the web-config file: TLS, basic auth),
then tries each configured target once (probes, nginx, TLS) and prints a table. With
the aicost collector on, it also loads the price table (collectors.aicost.pricing_file)
and lists the AI models seen without a price. The exit code is the config's alone: a target that does not answer does not fail it, so it
can run as the systemd unit's ExecStartPre.

Usage:
  lookout check [--config FILE] [--web.config.file FILE] [--storage.path DIR]

Flags:
${CONFIG_FLAG}
${WEB_CONFIG_FLAG}
${STORAGE_FLAG} (read, never created)

Exit: 0 valid, 1 invalid, 2 could not run.

More: docs/configuration.md.`,

  status: `lookout status — one collection, printed as a table

Runs every enabled collector once and prints what it sees: CPU, memory, swap, load per
core, filesystems, zombies, the biggest processes, and the actions a collector would
take (never run here), what the running service keeps in its state directory, and with
the aicost collector on, the AI spend today, this week and this month. For a terminal,
over ssh; it reads that directory and never changes it.

Usage:
  lookout status [--config FILE] [--storage.path DIR]

Flags:
${CONFIG_FLAG}
${STORAGE_FLAG} (read, never created)

Exit: 0, or 1 when a collector failed.

More: docs/metrics.md.`,

  cost: `lookout cost — AI spend per window, from the aicost store

Spend, requests and tokens for this hour, today, this week or this month, against the
whole previous one ("$5.20 today vs $0.45 yesterday"), broken down by service, model or
source, with the cache hit ratio and what caching saved. Windows are calendar windows in
local time. Reads the aicost collector's store under the state directory, read-only: no
Prometheus needed, nothing written. Requests of models the price table does not know are
counted apart, never as $0.

\`lookout cost reprice\` prices the events stored while their model had no price, once the
table (collectors.aicost.pricing_file) knows it, each at the price of its own time; the
one cost command that writes. Events already priced keep their price.

Usage:
  lookout cost [reprice] [--window hour|day|week|month] [--by service|model|source] [--json] [--since DATE] [--config FILE] [--storage.path DIR]

Flags:
  --window hour|day|week|month   the window (default day: today since local midnight)
  --by service|model|source      the breakdown (default service)
  --json                         the report as JSON, for scripts
  --since DATE                   reprice: events from this local date (2026-11-01) or ISO
                                 time on (default: every stored event)
${CONFIG_FLAG}
${STORAGE_FLAG} (read, never created)

Exit: 0, 1 bad flags or config (or price table), 2 no store or it cannot be read.

More: docs/aicost-report.md.`,

  'alert-test': `lookout alert-test — send a synthetic alert through Alertmanager

Posts one alert (LookoutAlertTest) to Alertmanager's API, so you see email and Slack
arrive through the shipped routing and templates. It resolves by itself.

Usage:
  lookout alert-test [--alertmanager URL] [--severity warning|critical]

Flags:
  --alertmanager URL             Alertmanager's address (default http://127.0.0.1:9093)
  --severity warning|critical    warning goes to Slack, critical to email and Slack
                                 (default warning)

Exit: 0 sent, 1 bad input, 2 Alertmanager unreachable.

More: docs/alerts.md.`,
} as const;

export type Command = keyof typeof COMMAND_HELP;

export function isCommand(name: string): name is Command {
  return Object.hasOwn(COMMAND_HELP, name);
}

/** `lookout --help`: every command in one line each, and where to read on. */
export const USAGE = `lookout ${VERSION} — a Prometheus exporter and monitoring bundle for a few Linux servers

Usage:
  lookout [serve]     run the exporter on :10142 (the default command)
  lookout check       validate the config, then say whether each target answers now
  lookout status      one collection, as a table, for a terminal
  lookout cost        AI spend per window from the aicost store; cost reprice prices history
  lookout alert-test  send a synthetic alert through Alertmanager
  lookout install     from an unpacked release archive, as root: lay lookout out and start it
  lookout uninstall   undo install (the state directory stays unless --purge)
  lookout --version

  lookout <command> --help   the command's flags and exit codes

${DOCS}
`;

/** The help for `lookout [command] --help`: the command's own, or the overview. */
export function helpText(command: string | undefined): string {
  if (command === undefined || !isCommand(command)) return USAGE;
  return `${COMMAND_HELP[command]}\n\n${DOCS}\n`;
}
