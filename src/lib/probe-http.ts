/**
 * HTTP(S) probe through the shared client (src/lib/http.ts): a status from the expected
 * set, optionally a body matching a regular expression, redirects followed or not.
 */
import type { HttpClient } from './http.js';
import type { ProbeOutcome } from './probe-tcp.js';

export interface HttpProbe {
  url: string;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS' | 'PATCH';
  headers: Record<string, string>;
  body?: string;
  /** Status codes that count as success; empty means any 2xx (blackbox_exporter's default). */
  expectedStatus: readonly number[];
  /** How the expected set was written ("200, 3xx"), for the failure message. */
  expectedText?: string;
  bodyRegex?: RegExp;
  followRedirects: boolean;
}

export interface HttpOutcome extends ProbeOutcome {
  /** The final response's status code. */
  httpStatus: number;
}

/** As Go's http.Client, which blackbox_exporter uses: at most 10 redirects. */
export const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Headers that carry who the client is; Go's client drops them on a redirect to another host. */
const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization', 'host']);

/** The configured headers for a request to `url`: credentials only to the probe's own origin. */
function headersFor(url: URL, origin: string, headers: Record<string, string>) {
  if (url.origin === origin) return headers;
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !CREDENTIALS.has(name.toLowerCase())),
  );
}

export function statusExpected(status: number, expected: readonly number[]): boolean {
  return expected.length === 0 ? status >= 200 && status <= 299 : expected.includes(status);
}

export async function probeHttp(
  http: HttpClient,
  p: HttpProbe,
  signal: AbortSignal,
): Promise<HttpOutcome> {
  let url = new URL(p.url);
  const origin = url.origin;
  let method = p.method;
  let body = p.body;
  let res = await http.request(url, { method, headers: p.headers, body, signal });
  for (let hops = 0; p.followRedirects && REDIRECTS.has(res.status); hops++) {
    const location = res.headers.location;
    if (typeof location !== 'string') break;
    if (hops === MAX_REDIRECTS)
      return { ok: false, detail: `more than ${MAX_REDIRECTS} redirects`, httpStatus: res.status };
    url = new URL(location, url);
    // As browsers and Go do: 303 always, and 301/302 after a POST, become a GET without body.
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
      method = method === 'HEAD' ? 'HEAD' : 'GET';
      body = undefined;
    }
    res = await http.request(url, {
      method,
      headers: headersFor(url, origin, p.headers),
      body,
      signal,
    });
  }
  const status = res.status;
  if (!statusExpected(status, p.expectedStatus)) {
    const want = p.expectedText ?? (p.expectedStatus.length ? p.expectedStatus.join(', ') : '2xx');
    return { ok: false, detail: `HTTP ${status}, expected ${want}`, httpStatus: status };
  }
  if (p.bodyRegex && !p.bodyRegex.test(res.body.toString('utf8'))) {
    return {
      ok: false,
      detail: `HTTP ${status}, body does not match /${p.bodyRegex.source}/`,
      httpStatus: status,
    };
  }
  return { ok: true, detail: `HTTP ${status}`, httpStatus: status };
}
