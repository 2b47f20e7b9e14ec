/**
 * The access-log parsers on literal lines: each format's edge cases (quotes and spaces in
 * URLs and user agents, "-" fields, IPv6 clients, truncated lines), and the collector's
 * counting on top of them (methods and routes bounded, malformed lines counted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkPattern,
  emptyRequest,
  parseCombined,
  parseCombinedTiming,
  parseJson,
  patternParser,
  type Parser,
  type Request,
} from '../src/collectors/accesslog/parse.js';
import {
  accesslogRegistry,
  accesslogSchema,
  DEFAULT_BUCKETS,
  LogCounts,
} from '../src/collectors/accesslog.js';
import { createLogger } from '../src/lib/log.js';
import { parseExposition, sampleValue } from './helpers/exposition.js';

function parse(p: Parser, line: string): Request | string {
  const out = emptyRequest();
  const reason = p(line, out);
  return reason ?? out;
}

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0';

describe('combined', () => {
  it('parses a plain line', () => {
    assert.deepEqual(
      parse(
        parseCombined,
        `203.0.113.9 - - [01/Dec/2026:23:01:02 +0000] "GET /index.html?x=1 HTTP/1.1" 200 612 "-" "${UA}"`,
      ),
      { method: 'GET', status: 200, path: '/index.html', bytes: 612, seconds: NaN },
    );
  });
  it('takes an IPv6 client, a user with a space, and "-" bytes', () => {
    assert.deepEqual(
      parse(
        parseCombined,
        `2001:db8::1 - john doe [01/Dec/2026:23:01:02 +0000] "POST /api HTTP/2.0" 301 - "https://e.example/?a=\\"b\\"" "curl/8"`,
      ),
      { method: 'POST', status: 301, path: '/api', bytes: 0, seconds: NaN },
    );
    assert.equal(
      (parse(parseCombined, `::1 - - [x] "GET / HTTP/1.1" 404 0 "-" "-"`) as Request).status,
      404,
    );
  });
  it('keeps nginx-escaped quotes and spaces inside the URL and user agent', () => {
    const r = parse(
      parseCombined,
      `10.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "GET /a\\x22b c/d HTTP/1.1" 400 150 "-" "evil \\x22agent\\x22 with spaces"`,
    ) as Request;
    assert.equal(r.status, 400);
    assert.equal(r.method, 'GET');
    assert.equal(r.path, '/a\\x22b');
  });
  it('takes a junk request line (TLS on a plain port) with its real status', () => {
    const r = parse(
      parseCombined,
      `10.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "\\x16\\x03\\x01\\x00\\xF1\\x01" 400 157 "-" "-"`,
    ) as Request;
    assert.equal(r.status, 400);
    assert.equal(r.method, '\\x16\\x03\\x01\\x00\\xF1\\x01');
    assert.equal(r.path, '');
    assert.equal(
      (parse(parseCombined, `1.2.3.4 - - [t] "-" 408 0 "-" "-"`) as Request).status,
      408,
    );
  });
  it('calls a truncated line, a bad status and an empty line malformed, with the reason', () => {
    assert.match(
      parse(
        parseCombined,
        `10.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "GET / HTTP/1.1" 200 612 "-" "Mozil`,
      ) as string,
      /truncated/,
    );
    assert.match(
      parse(
        parseCombined,
        `10.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "GET / HTTP/1.1" 2x0 612 "-" "-"`,
      ) as string,
      /status is not a 3-digit code: "2x0"/,
    );
    assert.match(
      parse(
        parseCombined,
        `10.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "GET / HTTP/1.1" 999 612 "-" "-"`,
      ) as string,
      /outside 100-599/,
    );
    assert.equal(parse(parseCombined, ''), 'empty line');
    assert.match(parse(parseCombined, 'hello world') as string, /at the start/);
  });
});

describe('combined_timing (the shipped log_format)', () => {
  const line = (tail: string) =>
    `127.0.0.1 - - [01/Dec/2026:23:01:02 +0000] "GET /slow HTTP/1.1" 200 5 "-" "${UA}" ${tail}`;
  it('reads $request_time, whatever $upstream_response_time holds', () => {
    for (const up of ['0.250', '-', '0.001, 0.249', '0.1 : 0.2']) {
      assert.equal((parse(parseCombinedTiming, line(`0.251 ${up}`)) as Request).seconds, 0.251);
    }
    assert.equal((parse(parseCombinedTiming, line('0.000')) as Request).seconds, 0);
    assert.ok(Number.isNaN((parse(parseCombinedTiming, line('- -')) as Request).seconds));
  });
  it('calls a line without the timings malformed and says why', () => {
    assert.match(parse(parseCombinedTiming, line('').trimEnd()) as string, /request_time/);
    assert.match(parse(parseCombinedTiming, line('0.2').slice(0, -8)) as string, /truncated/);
  });
});

describe('json (escape=json)', () => {
  it('reads the shipped lookout_json keys', () => {
    assert.deepEqual(
      parse(
        parseJson,
        '{"time":"2026-12-01T23:01:02+00:00","remote_addr":"::1","request_method":"DELETE","request_uri":"/a \\"b\\"?q=1","status":204,"body_bytes_sent":0,"request_time":0.012,"upstream_response_time":"","http_user_agent":"x \\"y\\""}',
      ),
      { method: 'DELETE', status: 204, path: '/a "b"', bytes: 0, seconds: 0.012 },
    );
  });
  it('takes a whole request line and string numbers', () => {
    assert.deepEqual(
      parse(
        parseJson,
        '{"request":"PUT /x HTTP/1.1","status":"500","bytes_sent":"12","request_time":"-"}',
      ),
      { method: 'PUT', status: 500, path: '/x', bytes: 12, seconds: NaN },
    );
  });
  it('calls truncated JSON, a non-object and a bad status malformed', () => {
    assert.match(parse(parseJson, '{"status":200,"request_me') as string, /truncated/);
    assert.equal(parse(parseJson, '[1,2]'), 'not a JSON object');
    assert.match(parse(parseJson, '{"status":"abc"}') as string, /status is not a 3-digit code/);
    assert.match(parse(parseJson, '{"status":2000}') as string, /status/);
  });
});

describe('a user pattern', () => {
  const p = patternParser(
    '^(?<method>\\S+) (?<path>\\S+) (?<status>\\S+) (?<bytes>\\S+) (?<milliseconds>\\S+)$',
  );
  it('reads the named groups', () => {
    assert.deepEqual(parse(p, 'GET /x?y 503 10 250'), {
      method: 'GET',
      status: 503,
      path: '/x',
      bytes: 10,
      seconds: 0.25,
    });
    assert.deepEqual(parse(p, 'GET /x 200 - -'), {
      method: 'GET',
      status: 200,
      path: '/x',
      bytes: 0,
      seconds: NaN,
    });
  });
  it('calls a line that does not match, or has a garbage status, malformed', () => {
    assert.equal(parse(p, 'GET /x 200'), 'does not match the configured pattern');
    assert.match(parse(p, 'GET /x abc 1 1') as string, /status is not a 3-digit code: "abc"/);
  });
  it('is checked at config time', () => {
    assert.match(checkPattern('(?<code>\\d+)')!, /needs a named group \(\?<status>/);
    assert.match(checkPattern('(?<status>\\d+) (?<foo>x)')!, /unknown named group \(\?<foo>\)/);
    assert.match(checkPattern('(?<status>')!, /not a regular expression/);
    assert.equal(checkPattern('(?<status>\\d{3}) (?<request>[^"]*)'), undefined);
  });
});

describe('counting (LogCounts) and the exposition', () => {
  const silent = createLogger('error');
  const cfg = (over: object) =>
    accesslogSchema.parse({ logs: [{ name: 'web', path: '/x/access.log', ...over }] }).logs[0]!;
  const line = (method: string, path: string, code: number, t: string) =>
    `::1 - - [01/Dec/2026:23:01:02 +0000] "${method} ${path} HTTP/1.1" ${code} 100 "-" "-" ${t} -\n`;

  it('bounds methods and routes, keeps codes, fills the histogram', async () => {
    const counts = new LogCounts(
      cfg({
        routes: [
          { name: 'api', match: '^/api/' },
          { name: 'static', match: '\\.css$' },
        ],
      }),
      DEFAULT_BUCKETS,
      silent,
    );
    // As the collector does: the registry (its metric objects) first, then the lines.
    const registry = accesslogRegistry([counts], DEFAULT_BUCKETS);
    counts.onLines(
      line('GET', '/api/users/1?x', 200, '0.004') +
        line('GET', '/api/users/2', 200, '0.5') +
        line('PROPFIND', '/site.css', 207, '0.6') +
        line('POST', '/home', 500, '3.0') +
        'garbage line\n' +
        line('GET', '/x', 200, '0.1').replace('200', '20x'),
    );
    const text = await registry.metrics();
    const e = parseExposition(text);
    const v = (name: string, labels: Record<string, string>) => sampleValue(e, name, labels);
    assert.equal(
      v('lookout_http_requests_total', { log: 'web', code: '200', method: 'GET', route: 'api' }),
      2,
    );
    assert.equal(
      v('lookout_http_requests_total', {
        log: 'web',
        code: '207',
        method: 'other',
        route: 'static',
      }),
      1,
    );
    assert.equal(
      v('lookout_http_requests_total', { log: 'web', code: '500', method: 'POST', route: 'other' }),
      1,
    );
    assert.equal(v('lookout_accesslog_lines_total', { log: 'web', result: 'parsed' }), 4);
    assert.equal(v('lookout_accesslog_lines_total', { log: 'web', result: 'malformed' }), 2);
    assert.equal(v('lookout_http_response_bytes_total', { log: 'web' }), 400);
    assert.equal(v('lookout_http_request_duration_seconds_count', { log: 'web' }), 4);
    assert.ok(
      Math.abs(v('lookout_http_request_duration_seconds_sum', { log: 'web' })! - 4.104) < 1e-9,
    );
    assert.equal(v('lookout_http_request_duration_seconds_bucket', { log: 'web', le: '0.005' }), 1);
    assert.equal(v('lookout_http_request_duration_seconds_bucket', { log: 'web', le: '0.5' }), 2);
    assert.equal(v('lookout_http_request_duration_seconds_bucket', { log: 'web', le: '1' }), 3);
    assert.equal(v('lookout_http_request_duration_seconds_bucket', { log: 'web', le: '2' }), 3);
    assert.equal(v('lookout_http_request_duration_seconds_bucket', { log: 'web', le: '+Inf' }), 4);
  });

  it('has no route label without routes, and no histogram for plain combined', async () => {
    const counts = new LogCounts(cfg({ format: 'combined' }), DEFAULT_BUCKETS, silent);
    const registry = accesslogRegistry([counts], DEFAULT_BUCKETS);
    counts.onLines(line('GET', '/', 200, '0.1'));
    const text = await registry.metrics();
    assert.match(text, /^lookout_http_requests_total\{log="web",code="200",method="GET"\} 1$/m);
    assert.doesNotMatch(text, /lookout_http_request_duration_seconds_(bucket|count)\{/);
  });

  it('its metric objects live: counts add up across renders, never go back, and no series is rebuilt', async () => {
    const counts = new LogCounts(cfg({}), DEFAULT_BUCKETS, silent);
    const registry = accesslogRegistry([counts], DEFAULT_BUCKETS);
    const objects = registry.getMetricsAsArray();
    const requests = (text: string) =>
      sampleValue(parseExposition(text), 'lookout_http_requests_total', {
        log: 'web',
        code: '200',
        method: 'GET',
      });
    const first = await registry.metrics();
    assert.equal(requests(first), undefined, 'no request series before a request');
    assert.match(first, /^lookout_accesslog_lines_total\{log="web",result="parsed"\} 0$/m);
    assert.match(first, /^lookout_http_request_duration_seconds_count\{log="web"\} 0$/m);
    counts.onLines(line('GET', '/', 200, '0.1').repeat(3));
    assert.equal(requests(await registry.metrics()), 3);
    assert.equal(requests(await registry.metrics()), 3, 'a render with nothing new adds nothing');
    counts.onLines(line('GET', '/', 200, '0.1').repeat(2));
    const text = await registry.metrics();
    assert.equal(requests(text), 5);
    assert.equal(
      sampleValue(parseExposition(text), 'lookout_http_request_duration_seconds_count', {
        log: 'web',
      }),
      5,
    );
    assert.deepEqual(registry.getMetricsAsArray(), objects, 'the same metric objects');
  });

  it('a duration too long for a double is counted without a duration, and the next lines still count', async () => {
    const counts = new LogCounts(cfg({}), DEFAULT_BUCKETS, silent);
    const registry = accesslogRegistry([counts], DEFAULT_BUCKETS);
    counts.onLines(line('GET', '/', 200, '9'.repeat(400)) + line('GET', '/', 200, '0.1'));
    const e = parseExposition(await registry.metrics());
    assert.equal(
      sampleValue(e, 'lookout_accesslog_lines_total', { log: 'web', result: 'parsed' }),
      2,
    );
    assert.equal(sampleValue(e, 'lookout_http_request_duration_seconds_count', { log: 'web' }), 1);
  });

  it('exports no families at all when no log is configured', async () => {
    assert.equal((await accesslogRegistry([], DEFAULT_BUCKETS).metrics()).trim(), '');
  });

  it('logs the first malformed lines with their reason, then at most one summary a minute', () => {
    const lines: string[] = [];
    const log = createLogger('warn', {}, (l) => lines.push(l));
    const counts = new LogCounts(cfg({}), DEFAULT_BUCKETS, log);
    counts.onLines('bad\n'.repeat(1000));
    assert.equal(counts.malformed, 1000);
    assert.equal(lines.length, 5);
    assert.match(lines[0]!, /msg="malformed access log line" log=web reason=.*line=bad/);
  });
});

describe('accesslog config', () => {
  const problems = (logs: unknown[]) => {
    const r = accesslogSchema.safeParse({ logs });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  it('names the wrong field and the fix', () => {
    assert.deepEqual(problems([{ name: 'web', path: 'access.log' }]), [
      'logs.0.path: expected an absolute path, e.g. /var/log/nginx/access.log',
    ]);
    assert.deepEqual(problems([{ name: 'web', path: '/a', format: 'pattern' }]), [
      'logs.0.pattern: required when format is pattern',
    ]);
    assert.deepEqual(problems([{ name: 'web', path: '/a', pattern: '(?<status>x)' }]), [
      'logs.0.pattern: only used with format: pattern (format is combined_timing); remove it or set format: pattern',
    ]);
    assert.deepEqual(
      problems([
        { name: 'web', path: '/a' },
        { name: 'web', path: '/b' },
      ]),
      ['logs.1.name: "web" names two logs; each log needs its own name'],
    );
    assert.deepEqual(
      problems([{ name: 'web', path: '/a', routes: [{ name: 'other', match: '^/' }] }]),
      [
        'logs.0.routes.0.name: "other" is used twice or is the reserved "other"; give each route its own name',
      ],
    );
    assert.equal(accesslogSchema.safeParse({ buckets: [1, 0.5] }).success, false);
  });
});
