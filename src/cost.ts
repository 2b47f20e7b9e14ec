/**
 * `lookout cost` and `lookout cost reprice`: the command side of src/aicost/report.ts,
 * and the AI lines `lookout status` and `lookout check` add when the aicost collector is
 * enabled.
 */
import type { Config } from './config/schema.js';
import { UsageError } from './usage.js';
import { loadPricing } from './aicost/pricing.js';
import {
  costReport,
  formatReport,
  GROUPS,
  openStoreReadOnly,
  openStoreReadWrite,
  reprice,
  spendSummary,
  storeFile,
  StoreMissingError,
  unpricedModels,
  usd,
  WINDOWS,
  type GroupBy,
  type WindowKind,
} from './aicost/report.js';

/** Bad flags for `lookout cost`; cli.ts prints it with the usage, exit 1. */
export class CostUsageError extends UsageError {}

/** The aicost collector's settings, when the config has them (enabled, pricing_file). */
export function aicostSettings(config: Config): { enabled: boolean; pricing_file?: string } {
  const c = (config.collectors as Record<string, unknown>)['aicost'] as
    { enabled?: boolean; pricing_file?: string } | undefined;
  return { enabled: c?.enabled === true, pricing_file: c?.pricing_file };
}

function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
  dflt: T,
): T {
  if (value === undefined) return dflt;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new CostUsageError(`--${flag}: expected one of ${allowed.join(', ')}, got "${value}"`);
}

/** A date (local midnight) or a full ISO time. */
export function parseSince(value: string): number {
  const dateOnly = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const ms = dateOnly
    ? new Date(Number(dateOnly[1]), Number(dateOnly[2]) - 1, Number(dateOnly[3])).getTime()
    : Date.parse(value);
  if (!Number.isFinite(ms) || (dateOnly && new Date(ms).getDate() !== Number(dateOnly[3])))
    throw new CostUsageError(
      `--since: expected a date like 2026-11-01 or a time like 2026-11-01T12:00:00Z, got "${value}"`,
    );
  return ms;
}

export interface CostFlags {
  window?: string;
  by?: string;
  json?: boolean;
  since?: string;
}

/** `lookout cost [reprice]`; resolves to the exit code. */
export async function costCommand(
  config: Config,
  sub: string | undefined,
  flags: CostFlags,
  out: NodeJS.WritableStream,
  nowMs = Date.now(),
): Promise<number> {
  if (sub === 'reprice') {
    if (flags.window !== undefined || flags.by !== undefined)
      throw new CostUsageError('--window and --by are for lookout cost, not reprice');
    const sinceMs = flags.since === undefined ? 0 : parseSince(flags.since);
    const table = await loadPricing({ userFile: aicostSettings(config).pricing_file });
    const db = await openStoreReadWrite(config.storage.path);
    try {
      const r = reprice(db, table, { sinceMs });
      if (flags.json)
        out.write(JSON.stringify({ store: storeFile(config.storage.path), ...r }) + '\n');
      else {
        out.write(
          `priced ${r.priced} of ${r.examined} unpriced event(s)${flags.since ? ` since ${flags.since}` : ''}: ${usd(r.costUsd)}\n`,
        );
        if (r.stillUnpriced.length > 0)
          out.write(
            `still unpriced (no price in the table): ${r.stillUnpriced.map((s) => `${s.model} (${s.events})`).join(', ')}\n` +
              'add them to collectors.aicost.pricing_file and run lookout cost reprice again\n',
          );
      }
      return 0;
    } finally {
      db.close();
    }
  }
  if (sub !== undefined) throw new CostUsageError(`unknown cost command "${sub}"`);
  if (flags.since !== undefined) throw new CostUsageError('--since is for lookout cost reprice');
  const window = oneOf<WindowKind>('window', flags.window, WINDOWS, 'day');
  const by = oneOf<GroupBy>('by', flags.by, GROUPS, 'service');
  const db = await openStoreReadOnly(config.storage.path);
  try {
    const report = costReport(db, { window, by, nowMs, store: storeFile(config.storage.path) });
    out.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
    return 0;
  } finally {
    db.close();
  }
}

/** `lookout status`'s AI spend lines: empty when the collector is off. */
export async function statusSection(config: Config, nowMs = Date.now()): Promise<string> {
  if (!aicostSettings(config).enabled) return '';
  let db;
  try {
    db = await openStoreReadOnly(config.storage.path);
  } catch (err) {
    if (err instanceof StoreMissingError)
      return `\nAI spend  no usage stored yet (${storeFile(config.storage.path)})\n`;
    return `\nAI spend  cannot read the store: ${(err as Error).message}\n`;
  }
  try {
    const s = spendSummary(db, nowMs);
    const unpriced = s.find((x) => x.label === 'this month')?.unpricedRequests ?? 0;
    return (
      `\nAI spend  ${s.map((x) => `${x.label} ${usd(x.costUsd)}`).join(', ')}` +
      (unpriced > 0 ? ` (+ ${unpriced} unpriced request(s) this month; see lookout check)` : '') +
      '\n'
    );
  } catch (err) {
    return `\nAI spend  cannot read the store: ${(err as Error).message}\n`;
  } finally {
    db.close();
  }
}

/**
 * `lookout check`'s AI lines: the user's price table is loaded (a wrong one is a
 * ConfigError, exit 1, as a wrong config is), then the models the store saw unpriced.
 */
export async function checkSection(config: Config): Promise<string> {
  const settings = aicostSettings(config);
  if (!settings.enabled) return '';
  await loadPricing({ userFile: settings.pricing_file });
  let text = settings.pricing_file === undefined ? '' : `${settings.pricing_file}: OK\n`;
  let db;
  try {
    db = await openStoreReadOnly(config.storage.path);
  } catch (err) {
    if (err instanceof StoreMissingError) return text;
    return text + `\nAI usage store: cannot read it: ${(err as Error).message}\n`;
  }
  try {
    const models = unpricedModels(db);
    if (models.length === 0) return text + '\nAI models: every stored request is priced.\n';
    text += '\nAI models seen without a price (their requests are not in the spend):\n';
    for (const m of models)
      text += `  ${m.model}: ${m.requests} request(s), ${m.tokens} tokens, ${new Date(m.firstMs).toISOString()} to ${new Date(m.lastMs).toISOString()}\n`;
    text +=
      'add them to collectors.aicost.pricing_file, then run lookout cost reprice --since DATE\n';
    return text;
  } finally {
    db.close();
  }
}
