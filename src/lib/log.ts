/** One line per event, key=value (logfmt), to stderr: what journald and `docker logs` keep. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return /^[\w.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

export function formatLine(level: Level, msg: string, fields: Fields): string {
  const parts = [`level=${level}`, `msg=${formatValue(msg)}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== null) parts.push(`${k}=${formatValue(v)}`);
  }
  return parts.join(' ');
}

export function createLogger(
  level: Level = 'info',
  base: Fields = {},
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const emit = (l: Level, msg: string, fields: Fields = {}) => {
    if (ORDER[l] >= ORDER[level]) write(formatLine(l, msg, { ...base, ...fields }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** The message of an error and of its causes, on one line. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  while (e !== undefined && parts.length < 4) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}
