/**
 * Fuzzing the JSON body reading of collectors' routes (src/exporter/routes.ts) through a
 * real koa app on 127.0.0.1, the way lookout mounts them (errorHandler, mountRoutes), over
 * raw TCP so the client can lie: random and mutated bodies, content types and encodings,
 * Content-Length too short, too long or garbage, chunked framing right and wrong, the
 * route's bearer token or none or another. Every request is answered with the route's
 * 2xx (only with its token) or a 4xx: the app's own carry JSON with a
 * reason; Node's HTTP parser refusing the framing itself answers a bare 400, and the
 * router a wrong method with 405 and Allow. Never a 500, never an unanswered
 * connection, never a hang.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import Router from '@koa/router';
import fc from 'fast-check';
import { z } from 'zod';
import type { CollectorRoute } from '../../src/collectors/collector.js';
import { errorHandler, mountRoutes } from '../../src/exporter/routes.js';
import { createLogger } from '../../src/lib/log.js';
import { HANG_MS, fuzzAsync, mutated, soup } from '../helpers/fuzz.js';
import { TEST_ROUTE_TOKEN, testRouteToken } from '../helpers/routetoken.js';

const LIMIT = 2048;
const GOOD = { id: 'req-1', model: 'claude', tokens: 1234, tags: ['a', 'b'] };

const routes: CollectorRoute[] = [
  {
    method: 'POST',
    path: '/fuzz/strict',
    token: testRouteToken,
    bodyLimitBytes: LIMIT,
    body: z.strictObject({
      id: z.string().min(1).max(64),
      model: z.string().max(64),
      tokens: z.number().int().nonnegative(),
      tags: z.array(z.string().max(32)).max(8),
    }),
    handle: ({ body }) => ({ status: 202, body: { accepted: (body as { id: string }).id } }),
  },
  {
    // Any JSON at all reaches the handler: deep nesting and odd values get past validation.
    method: 'PUT',
    path: '/fuzz/any',
    token: testRouteToken,
    bodyLimitBytes: LIMIT,
    body: z.unknown(),
    handle: ({ body }) => ({ status: 200, body: { type: typeof body } }),
  },
];

let server: Server;
let port: number;
const logged: string[] = [];

before(async () => {
  const app = new Koa();
  const router = new Router();
  mountRoutes(router, 'fuzz', routes, { closed: () => undefined }, new Map());
  app.use(errorHandler(createLogger('debug', {}, (line) => logged.push(line))));
  app.use(router.routes());
  app.use(router.allowedMethods()); // as src/exporter/app.ts mounts it
  app.silent = true;
  server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Writes `request` as raw bytes, half-closes, and reads until the server closes. */
async function exchange(request: Buffer): Promise<Answer | 'no answer' | 'hung'> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {}); // a reset after the answer is the server closing: judged below
  socket.end(request);
  let timer: NodeJS.Timeout | undefined;
  const closed = once(socket, 'close').then(() => 'closed' as const);
  const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), HANG_MS * 2)));
  const outcome = await Promise.race([closed, hung]);
  clearTimeout(timer);
  socket.destroy();
  if (outcome === 'hung') return 'hung';
  const text = Buffer.concat(chunks).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
  if (!m) return 'no answer';
  const headers = new Map<string, string>();
  for (const line of m[2]!.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers, body: Buffer.from(m[3]!, 'latin1').toString('utf8') };
}

type Framing =
  | 'length'
  | 'length-short'
  | 'length-long'
  | 'length-garbage'
  | 'length-twice'
  | 'chunked'
  | 'chunked-bad'
  | 'chunked-and-length'
  | 'none';

interface Request {
  /** undefined: the route's own method. */
  method: string | undefined;
  /** Mostly the route's token; else none, another, or another scheme. */
  authorization: string | undefined;
  path: string;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  framing: Framing;
  garbage: string;
  chunkSizes: number[];
  body: Buffer;
}

function render(r: Request): Buffer {
  const method = r.method ?? (r.path.endsWith('any') ? 'PUT' : 'POST');
  const head = [`${method} ${r.path} HTTP/1.1`, 'Host: 127.0.0.1'];
  if (r.authorization !== undefined) head.push(`Authorization: ${r.authorization}`);
  if (r.contentType !== undefined) head.push(`Content-Type: ${r.contentType}`);
  if (r.contentEncoding !== undefined) head.push(`Content-Encoding: ${r.contentEncoding}`);
  head.push('Connection: close');
  let body = r.body;
  const n = body.length;
  switch (r.framing) {
    case 'length':
      head.push(`Content-Length: ${n}`);
      break;
    case 'length-short':
      head.push(`Content-Length: ${Math.max(0, n - 1 - (r.chunkSizes[0] ?? 0))}`);
      break;
    case 'length-long':
      head.push(`Content-Length: ${n + 1 + (r.chunkSizes[0] ?? 0)}`);
      break;
    case 'length-garbage':
      head.push(`Content-Length: ${r.garbage}`);
      break;
    case 'length-twice':
      head.push(`Content-Length: ${n}`, `Content-Length: ${n + 1}`);
      break;
    case 'chunked':
    case 'chunked-bad':
    case 'chunked-and-length': {
      head.push('Transfer-Encoding: chunked');
      if (r.framing === 'chunked-and-length') head.push(`Content-Length: ${n}`);
      const parts: Buffer[] = [];
      let at = 0;
      for (const size of [...r.chunkSizes, n]) {
        const piece = body.subarray(at, at + Math.max(1, size));
        if (piece.length === 0) break;
        at += piece.length;
        const sizeLine = r.framing === 'chunked-bad' ? r.garbage : piece.length.toString(16);
        parts.push(Buffer.from(`${sizeLine}\r\n`), piece, Buffer.from('\r\n'));
      }
      if (r.framing === 'chunked') parts.push(Buffer.from('0\r\n\r\n'));
      body = Buffer.concat(parts);
      break;
    }
    case 'none':
      break;
  }
  return Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

const jsonText = fc.oneof(
  fc.constant(JSON.stringify(GOOD)),
  fc.json({ maxDepth: 4 }),
  fc
    .record({
      id: fc.oneof(fc.string({ maxLength: 70 }), fc.integer()),
      model: fc.string({ unit: 'binary', maxLength: 10 }),
      tokens: fc.oneof(fc.integer(), fc.double(), fc.constant(null)),
      tags: fc.array(fc.string({ maxLength: 40 }), { maxLength: 10 }),
    })
    .map((o) => JSON.stringify(o)),
);

const bodyBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: jsonText.map((s) => Buffer.from(s)) },
  { weight: 4, arbitrary: mutated(jsonText).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: soup(40).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc.nat(4000).map((d) => Buffer.from('['.repeat(d) + ']'.repeat(d))),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: LIMIT - 8, max: 3 * LIMIT })
      .map((n) => Buffer.from(`"${'x'.repeat(n)}"`)),
  },
);

const request: fc.Arbitrary<Request> = fc.record({
  method: fc.oneof(
    { weight: 9, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('GET', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'PUT', 'POST'),
    },
  ),
  authorization: fc.oneof(
    { weight: 12, arbitrary: fc.constant(`Bearer ${TEST_ROUTE_TOKEN}`) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        undefined,
        `Bearer ${TEST_ROUTE_TOKEN}x`,
        `Bearer ${TEST_ROUTE_TOKEN.slice(0, -1)}`,
        `bearer ${TEST_ROUTE_TOKEN}`,
        `Basic ${Buffer.from(`u:${TEST_ROUTE_TOKEN}`).toString('base64')}`,
        `Bearer`,
        `Bearer ${TEST_ROUTE_TOKEN} extra`,
        '',
      ),
    },
  ),
  path: fc.constantFrom('/fuzz/strict', '/fuzz/any'),
  contentType: fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        undefined,
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=utf-16le',
        'application/json; charset="',
        'application/json;;',
        'application/vnd.api+json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        '',
        '*/*',
      ),
    },
  ),
  contentEncoding: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('identity', 'gzip', 'br', 'deflate', 'IDENTITY', 'x-unknown', ''),
    },
  ),
  framing: fc.constantFrom<Framing>(
    'length',
    'length',
    'length',
    'length-short',
    'length-long',
    'length-garbage',
    'length-twice',
    'chunked',
    'chunked',
    'chunked-bad',
    'chunked-and-length',
    'none',
  ),
  garbage: fc.constantFrom(
    '-1',
    'abc',
    '1e3',
    ' 5',
    '0x10',
    '99999999999999999999',
    '',
    'zz',
    '5;ext=1',
    '+3',
  ),
  chunkSizes: fc.array(fc.nat(600), { maxLength: 4 }),
  body: bodyBytes,
});

describe('fuzz: JSON bodies of collector routes over real HTTP', () => {
  test('every request gets a 2xx or a 4xx with a reason, never a 500, no answer or a hang', async (t) => {
    const tally = new Map<string, number>();
    await fuzzAsync(t, 400, request, async (r) => {
      const answer = await exchange(render(r));
      const what = {
        ...r,
        body: r.body.toString('latin1').slice(0, 200),
        bodyBytes: r.body.length,
      };
      assert.notEqual(
        answer,
        'hung',
        `no answer within ${HANG_MS * 2} ms: ${JSON.stringify(what)}`,
      );
      assert.notEqual(answer, 'no answer', `connection closed unanswered: ${JSON.stringify(what)}`);
      if (typeof answer === 'string') return;
      const key = `${r.framing}:${answer.status}${answer.headers.has('content-type') ? '' : 'p'}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
      assert.ok(answer.status < 500, `${answer.status} ${answer.body} for ${JSON.stringify(what)}`);
      const rightToken =
        /^bearer /i.test(r.authorization ?? '') && r.authorization!.slice(7) === TEST_ROUTE_TOKEN;
      if (answer.status < 300 && r.method === 'OPTIONS') {
        // The router's own answer (allowedMethods): the methods the path takes, no route run.
        assert.ok(answer.headers.get('allow'), `OPTIONS without Allow: ${JSON.stringify(what)}`);
        return;
      }
      if (answer.status < 300) {
        assert.ok(
          rightToken,
          `${answer.status} without the route's token: ${JSON.stringify(what)}`,
        );
        return;
      }
      assert.ok(answer.status >= 400, `${answer.status} for ${JSON.stringify(what)}`);
      if (answer.status === 405) {
        // The router's answer to a method the path does not take (app.ts mounts
        // allowedMethods): plain text, with the methods it does take.
        assert.ok(answer.headers.get('allow'), `405 without Allow for ${JSON.stringify(what)}`);
        assert.ok(
          r.method !== undefined,
          `405 for the route's own method: ${JSON.stringify(what)}`,
        );
      } else if (answer.headers.has('content-type')) {
        // The app's own refusal: JSON saying why.
        assert.match(answer.headers.get('content-type')!, /^application\/json/);
        const parsed = JSON.parse(answer.body) as { error?: unknown };
        assert.ok(typeof parsed.error === 'string' && parsed.error.length > 0, answer.body);
      } else {
        // Node's HTTP parser refused the framing before the app saw the request.
        assert.equal(
          answer.status,
          400,
          `${answer.status} from the parser for ${JSON.stringify(what)}`,
        );
      }
    });
    t.diagnostic(
      `answers: ${[...tally]
        .sort()
        .map(([k, n]) => `${k}=${n}`)
        .join(' ')}`,
    );
    assert.deepEqual(
      logged.filter((l) => l.includes('request failed')),
      [],
      'no request failed inside the app',
    );
  });
});
