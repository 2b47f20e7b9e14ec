/** HTTP(S): a status from the expected set, optionally a body matching a pattern. */
import { z } from 'zod';
import { regexSource } from '../../config/regex.js';
import { probeHttp, type HttpOutcome, type HttpProbe } from '../../lib/probe-http.js';
import { defineProber } from './prober.js';

const EXAMPLE = '"http://127.0.0.1:8080/healthz"';

/**
 * What is wrong with `text` as a probe URL, in words that say how to write it, or
 * undefined when it is a usable http(s) URL.
 */
export function urlProblem(text: string): string | undefined {
  if (!URL.canParse(text) || !/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    // Without "://", "localhost:8080/x" parses with "localhost:" as its scheme and
    // "127.0.0.1:8080/x" not at all; either way the scheme is what is missing.
    if (!text.includes('://'))
      return `${JSON.stringify(text)} has no scheme; write ${JSON.stringify(`http://${text}`)} (or https://)`;
    const authority =
      /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?(\[[^\]]*\]|[^/?#:]*)(?::([^/?#]*))?/i.exec(text);
    if (authority?.[1] === '')
      return `${JSON.stringify(text)} has no host; write the server's name or address after the scheme, e.g. ${EXAMPLE}`;
    if (authority?.[2] !== undefined && /^\d+$/.test(authority[2]) && Number(authority[2]) > 65535)
      return `port ${authority[2]} is out of range; give a port from 1 to 65535`;
    return `${JSON.stringify(text)} is not a URL; expected one like ${EXAMPLE}`;
  }
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return 'expected an http:// or https:// URL';
  if (url.port === '0') return 'port 0 is out of range; give a port from 1 to 65535';
  if (url.username !== '' || url.password !== '')
    return 'a user or password in the URL would be shown in the target label and logs; put it in headers (Authorization) instead';
  return undefined;
}

const url = z.string().superRefine((text, ctx) => {
  const problem = urlProblem(text);
  // `continue: false`: nothing after this (the label, the TLS targets derived from
  // https URLs) may read a URL that does not parse.
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, continue: false });
});

/** One expected status: a code (200) or a class ("2xx"). */
const statusPattern = z.union([
  z.number().int().min(100).max(599),
  z
    .string()
    .regex(/^[1-5]xx$/, { message: 'expected a status code like 200 or a class like "2xx"' }),
]);

function expectedStatus(patterns: readonly (number | string)[]): number[] {
  return patterns.flatMap((p) => {
    if (typeof p === 'number') return [p];
    const base = Number(p[0]) * 100;
    return Array.from({ length: 100 }, (_, i) => base + i);
  });
}

/** Each target's request and checks, built on its first probe rather than on every one. */
const requests = new WeakMap<object, HttpProbe>();

export const prober = defineProber({
  kind: 'http',
  title: 'HTTP(S)',
  fields: {
    url: url.describe('The URL to request.'),
    method: z
      .enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'])
      .default('GET')
      .describe('HTTP method.'),
    headers: z.record(z.string(), z.string()).default({}).describe('Request headers.'),
    body: z.string().optional().describe('Request body (for POST/PUT/PATCH).'),
    expected_status: z
      .array(statusPattern)
      .min(1)
      .default(['2xx'])
      .describe(
        'Status codes that count as success: codes (200, 301) and classes ("2xx"); default any 2xx, as blackbox_exporter.',
      ),
    body_regex: regexSource('the response body')
      .optional()
      .describe('When set, the body (its first MiB) must match this regular expression.'),
    follow_redirects: z
      .boolean()
      .default(true)
      .describe(
        'Follow redirects (at most 10) and judge the final response, as blackbox_exporter does by default; false judges the first response itself (a 301 you expect).',
      ),
  },
  label(t) {
    // Without the query string: it may carry a token, and the label is public.
    const u = new URL(t.url);
    return u.origin + u.pathname;
  },
  check(t, { http, signal }) {
    let request = requests.get(t);
    if (request === undefined) {
      request = {
        url: t.url,
        method: t.method,
        headers: t.headers,
        body: t.body,
        expectedStatus: expectedStatus(t.expected_status),
        expectedText: t.expected_status.join(', '),
        bodyRegex: t.body_regex === undefined ? undefined : new RegExp(t.body_regex),
        followRedirects: t.follow_redirects,
      };
      requests.set(t, request);
    }
    return probeHttp(http, request, signal);
  },
  metrics: [
    {
      name: 'lookout_probe_http_status_code',
      help: 'Status code of the final HTTP response; 0 when there was none.',
      labelNames: [],
      samples: (outcome: HttpOutcome | undefined) => [[{}, outcome?.httpStatus ?? 0]],
    },
  ],
});
