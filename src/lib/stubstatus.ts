/**
 * nginx's stub_status page (ngx_http_stub_status_module), which has had one shape since
 * nginx 0.1:
 *
 *   Active connections: 291
 *   server accepts handled requests
 *    16630948 16630948 31070465
 *   Reading: 6 Writing: 179 Waiting: 106
 */
export interface StubStatus {
  active: number;
  accepted: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

export class StubStatusParseError extends Error {
  readonly code = 'LOOKOUT_NOT_STUB_STATUS';
}

const SHAPE =
  /^Active connections:\s*(\d+)\s*\n\s*server accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n\s*Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)\s*$/;

/** Parses the page; throws StubStatusParseError for anything else (an HTML page, a 404 body). */
export function parseStubStatus(text: string): StubStatus {
  const m = SHAPE.exec(text.replace(/\r\n/g, '\n').trim());
  if (!m) {
    const start = JSON.stringify(text.slice(0, 40));
    throw new StubStatusParseError(`not an nginx stub_status page (starts ${start})`);
  }
  const [active, accepted, handled, requests, reading, writing, waiting] = m
    .slice(1)
    .map(Number) as [number, number, number, number, number, number, number];
  return { active, accepted, handled, requests, reading, writing, waiting };
}
