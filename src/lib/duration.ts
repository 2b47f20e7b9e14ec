/**
 * Prometheus's duration grammar (model.ParseDuration): whole numbers of units from the
 * largest to the smallest, each at most once — "90s", "1h30m", "1d", "1w", "500ms", "0".
 * A year is 365 days and a day 24 hours, as Prometheus counts them. One parser for the
 * config, the rules' tests and the bench, so "1h30m" means the same everywhere.
 */
const UNITS = [
  ['y', 365 * 86_400_000],
  ['w', 7 * 86_400_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
] as const;
const GRAMMAR = new RegExp(`^${UNITS.map(([u]) => `(?:(\\d+)${u})?`).join('')}$`);

/** Milliseconds, or undefined when `text` is not a Prometheus duration. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const m = GRAMMAR.exec(text);
  if (!m || text === '') return undefined;
  let ms = 0;
  UNITS.forEach(([, unitMs], i) => {
    if (m[i + 1] !== undefined) ms += Number(m[i + 1]) * unitMs;
  });
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** Milliseconds as Prometheus writes them: "1h30m", "1d", "1500ms" ("1s500ms"), "0s". */
export function formatDuration(ms: number): string {
  let rest = Math.max(0, Math.round(ms));
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, unitMs] of UNITS) {
    const n = Math.floor(rest / unitMs);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * unitMs;
  }
  return out;
}
