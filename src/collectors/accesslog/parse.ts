/**
 * Access-log line parsers: pure functions from one line (without its newline) to the few
 * fields lookout counts. Each fills a reused `Request` and returns undefined, or returns
 * why the line is malformed — no allocation per line beyond what the regex match makes.
 */

export interface Request {
  /** As written in the log: bounded into a label later. */
  method: string;
  /** 100–599. */
  status: number;
  /** The path without its query string; "" when the log has none. */
  path: string;
  /** Response body bytes; 0 for "-". */
  bytes: number;
  /** Request duration in seconds; NaN when the line has none ("-" or no such field). */
  seconds: number;
}

export type Parser = (line: string, out: Request) => string | undefined;

export function emptyRequest(): Request {
  return { method: '', status: 0, path: '', bytes: 0, seconds: NaN };
}

/** The formats lookout knows; `pattern` takes a user-defined regular expression. */
export const FORMATS = ['combined', 'combined_timing', 'json', 'pattern'] as const;
export type Format = (typeof FORMATS)[number];

/** Whether lines in this format carry a request duration (feeding the histogram). */
export function hasTiming(format: Format, pattern?: string): boolean {
  if (format === 'combined_timing' || format === 'json') return true;
  if (format === 'pattern') return /\(\?<(seconds|milliseconds)>/.test(pattern ?? '');
  return false;
}

// A quoted field as nginx writes it: `"` and `\` inside are escaped (\x22, \x5C), but
// other servers write \" — both are accepted. Written as an unrolled loop (runs of plain
// characters between escapes), which V8 matches several times faster than an alternation
// tried at every character.
const Q = '"([^"\\\\]*(?:\\\\.[^"\\\\]*)*)"';
const QSKIP = '"[^"\\\\]*(?:\\\\.[^"\\\\]*)*"';
// $remote_addr (IPv4, IPv6, or a name) - $remote_user (may hold spaces) [$time_local]
const HEAD = '^\\S+ \\S+ [^"[]*\\[[^\\]]*\\] ';
const COMBINED = new RegExp(`${HEAD}${Q} (\\d{3}) (\\d+|-) ${QSKIP} ${QSKIP}(?: |$)`);
const COMBINED_TIMING = new RegExp(
  `${HEAD}${Q} (\\d{3}) (\\d+|-) ${QSKIP} ${QSKIP} (\\d+(?:\\.\\d*)?|-)(?: |$)`,
);

/** Why a line that did not match a combined regex is malformed: the first field that is wrong. */
function diagnoseCombined(line: string, timing: boolean): string {
  if (line.length === 0) return 'empty line';
  if (!new RegExp(`${HEAD}`).test(line)) return 'no "client - user [time]" at the start';
  if (!new RegExp(`${HEAD}${Q} `).test(line)) return 'no quoted request after [time]';
  const status = new RegExp(`${HEAD}${QSKIP} (\\S*)`).exec(line)?.[1] ?? '';
  if (!/^\d{3}$/.test(status)) return `status is not a 3-digit code: ${JSON.stringify(status)}`;
  if (!new RegExp(`${HEAD}${QSKIP} \\d{3} (\\d+|-) `).test(line)) return 'bytes is not a number';
  if (!new RegExp(`${HEAD}${QSKIP} \\d{3} \\S+ ${QSKIP} ${QSKIP}`).test(line)) {
    return 'referer and user agent are not two quoted fields (a truncated line?)';
  }
  if (timing) return 'no $request_time after the user agent (is the log_format the shipped one?)';
  return 'does not match the combined format';
}

/** Splits "GET /path?q HTTP/1.1" into method and path (no query string). */
function splitRequest(request: string, out: Request): void {
  const sp = request.indexOf(' ');
  if (sp < 0) {
    out.method = request;
    out.path = '';
    return;
  }
  out.method = request.slice(0, sp);
  let end = request.indexOf(' ', sp + 1);
  if (end < 0) end = request.length;
  const q = request.indexOf('?', sp + 1);
  if (q >= 0 && q < end) end = q;
  out.path = request.slice(sp + 1, end);
}

function statusValid(status: number): boolean {
  return status >= 100 && status <= 599;
}

function makeCombined(timing: boolean): Parser {
  const re = timing ? COMBINED_TIMING : COMBINED;
  return (line, out) => {
    const m = re.exec(line);
    if (m === null) return diagnoseCombined(line, timing);
    const status = +m[2]!;
    if (!statusValid(status)) return `status ${status} is outside 100-599`;
    splitRequest(m[1]!, out);
    out.status = status;
    const bytes = m[3]!;
    out.bytes = bytes === '-' ? 0 : +bytes;
    if (timing) {
      const t = m[4]!;
      out.seconds = t === '-' ? NaN : +t;
    } else out.seconds = NaN;
    return undefined;
  };
}

export const parseCombined: Parser = makeCombined(false);
export const parseCombinedTiming: Parser = makeCombined(true);

function pick(o: Record<string, unknown>, keys: readonly string[]): unknown {
  for (const k of keys) if (o[k] !== undefined) return o[k];
  return undefined;
}

function numberField(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v !== '' && v !== '-') return +v;
  return NaN;
}

/**
 * JSON lines: the keys of the shipped lookout_json format, or the common alternatives
 * (`method`, `uri`/`path`, `request` as a whole request line, `bytes_sent`, `duration`).
 */
export const parseJson: Parser = (line, out) => {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return line.trim() === '' ? 'empty line' : 'not valid JSON (a truncated line?)';
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const rec = o as Record<string, unknown>;
  const status = numberField(pick(rec, ['status', 'status_code']));
  if (!Number.isInteger(status) || !statusValid(status)) {
    return `status is not a 3-digit code: ${JSON.stringify(pick(rec, ['status', 'status_code']) ?? null)}`;
  }
  out.status = status;
  const method = pick(rec, ['request_method', 'method']);
  const uri = pick(rec, ['request_uri', 'uri', 'path']);
  if (typeof method === 'string') {
    out.method = method;
    out.path = typeof uri === 'string' ? stripQuery(uri) : '';
  } else {
    const request = pick(rec, ['request']);
    splitRequest(typeof request === 'string' ? request : '', out);
  }
  const bytes = numberField(pick(rec, ['body_bytes_sent', 'bytes_sent', 'bytes']));
  out.bytes = Number.isFinite(bytes) && bytes >= 0 ? bytes : 0;
  const seconds = numberField(pick(rec, ['request_time', 'duration']));
  out.seconds = Number.isFinite(seconds) && seconds >= 0 ? seconds : NaN;
  return undefined;
};

function stripQuery(uri: string): string {
  const q = uri.indexOf('?');
  return q < 0 ? uri : uri.slice(0, q);
}

/** Named groups a user pattern may have; `status` is required. */
export const PATTERN_GROUPS = [
  'status',
  'method',
  'path',
  'request',
  'bytes',
  'seconds',
  'milliseconds',
] as const;

/** Why a user pattern cannot be used, or undefined when it can. */
export function checkPattern(source: string): string | undefined {
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (err) {
    return `not a regular expression: ${(err as Error).message}`;
  }
  const groups = [...source.matchAll(/\(\?<([A-Za-z_]\w*)>/g)].map((m) => m[1]!);
  if (!groups.includes('status')) return 'needs a named group (?<status>...) for the status code';
  const unknown = groups.filter((g) => !(PATTERN_GROUPS as readonly string[]).includes(g));
  if (unknown.length > 0) {
    return `unknown named group ${unknown.map((g) => `(?<${g}>)`).join(', ')}; use ${PATTERN_GROUPS.join(', ')}`;
  }
  void re;
  return undefined;
}

/**
 * A user-defined pattern: a regular expression with named groups `status` (required),
 * `method`, `path` or `request` (a whole "GET /x HTTP/1.1"), `bytes`, and `seconds` or
 * `milliseconds`.
 */
export function patternParser(source: string): Parser {
  const re = new RegExp(source);
  return (line, out) => {
    const g = re.exec(line)?.groups;
    if (g === undefined) return 'does not match the configured pattern';
    const statusText = g.status ?? '';
    const status = /^\d{3}$/.test(statusText) ? +statusText : NaN;
    if (!statusValid(status)) return `status is not a 3-digit code: ${JSON.stringify(statusText)}`;
    out.status = status;
    if (g.method !== undefined) {
      out.method = g.method;
      out.path = stripQuery(g.path ?? '');
    } else if (g.request !== undefined) splitRequest(g.request, out);
    else {
      out.method = '';
      out.path = stripQuery(g.path ?? '');
    }
    const bytes = g.bytes === undefined || g.bytes === '-' ? 0 : +g.bytes;
    out.bytes = Number.isFinite(bytes) && bytes >= 0 ? bytes : 0;
    const seconds =
      g.seconds !== undefined
        ? numberField(g.seconds)
        : g.milliseconds !== undefined
          ? numberField(g.milliseconds) / 1000
          : NaN;
    out.seconds = Number.isFinite(seconds) && seconds >= 0 ? seconds : NaN;
    return undefined;
  };
}

export function parserFor(format: Format, pattern?: string): Parser {
  switch (format) {
    case 'combined':
      return parseCombined;
    case 'combined_timing':
      return parseCombinedTiming;
    case 'json':
      return parseJson;
    case 'pattern':
      return patternParser(pattern ?? '');
  }
}
