/**
 * The door's per-connection deadlines (src/exporter/deadlines.ts) on a real listening
 * Door with short limits, driven by raw TCP clients: a client that sends its first
 * headers, its body or its next kept-alive request a byte at a time is answered 408 and
 * closed, and not before its limit (a lower bound, less a few milliseconds: libuv starts
 * timers from its cached loop time, and the client's clock starts after the server's; no
 * upper bound is asserted). A client that sends nothing on a kept-alive connection is
 * closed by keep_alive_timeout without an answer. Every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/lib/log.js';
import { Door } from '../src/exporter/listen.js';
import { eventually, freePort } from './helpers/procs.js';

const LIMITS = {
  max_connections: 64,
  max_header_bytes: 16 * 1024,
  header_timeout: 600,
  request_timeout: 900,
  keep_alive_timeout: 500,
};

interface Client {
  socket: Socket;
  received: () => string;
  /** Milliseconds from connect to close. */
  closed: Promise<number>;
}

function client(port: number): Client {
  const socket = connect(port, '127.0.0.1');
  const t0 = performance.now();
  let data = '';
  socket.on('data', (b: Buffer) => (data += b.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<number>((r) => socket.once('close', () => r(performance.now() - t0)));
  return { socket, received: () => data, closed };
}

/** Writes `text` a byte every `ms` until the socket closes. */
function dribble(socket: Socket, text: string, ms: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (socket.destroyed || i >= text.length) clearInterval(t);
    else socket.write(text[i++]!);
  }, ms);
  socket.once('close', () => clearInterval(t));
}

/** `p`, or a failure after `ms`: no test here waits for ever on a socket. */
function within<T>(p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Clock skew allowed on a lower bound (see the file comment). */
const SKEW_MS = 5;

const statusLines = (text: string) => text.match(/^HTTP\/1\.1 \d+ [^\r]*/gm) ?? [];

describe('per-connection deadlines', () => {
  let door: Door;
  let port: number;

  before(async () => {
    port = await freePort();
    door = await Door.open(
      (req, res) => {
        // Reads a body when there is one, as collectors' routes do.
        req.resume();
        req.on('end', () => res.end('ok\n'));
      },
      `127.0.0.1:${port}`,
      LIMITS,
      undefined,
      createLogger('error', {}, () => {}),
      { onClientCertificateFailure: () => undefined, prepare: async () => () => undefined },
    );
  });
  after(async () => {
    door.closeAllConnections();
    await door.close();
  });

  it('first request headers sent a byte at a time: 408 after header_timeout', async () => {
    const c = client(port);
    c.socket.once('connect', () =>
      dribble(c.socket, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa', 50),
    );
    const ms = await within(c.closed);
    assert.deepEqual(statusLines(c.received()), ['HTTP/1.1 408 Request Timeout']);
    assert.ok(ms >= LIMITS.header_timeout - SKEW_MS, `closed after ${ms.toFixed(0)} ms`);
  });

  it('a body sent a byte at a time: 408 after request_timeout', async () => {
    const c = client(port);
    c.socket.once('connect', () => {
      c.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
      dribble(c.socket, 'a'.repeat(1000), 50);
    });
    const ms = await within(c.closed);
    assert.deepEqual(statusLines(c.received()), ['HTTP/1.1 408 Request Timeout']);
    assert.ok(ms >= LIMITS.request_timeout - SKEW_MS, `closed after ${ms.toFixed(0)} ms`);
  });

  it('the next request on a kept-alive connection sent a byte at a time: 408 after keep_alive_timeout + header_timeout', async () => {
    const c = client(port);
    let answeredAt = 0;
    c.socket.once('connect', () => c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    c.socket.once('data', () => {
      answeredAt = performance.now();
      dribble(
        c.socket,
        'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
        50,
      );
    });
    await within(c.closed);
    const ms = performance.now() - answeredAt;
    assert.deepEqual(statusLines(c.received()), [
      'HTTP/1.1 200 OK',
      'HTTP/1.1 408 Request Timeout',
    ]);
    assert.ok(
      // Measured from the answer's arrival, a little after the server armed the deadline.
      ms >= LIMITS.keep_alive_timeout + LIMITS.header_timeout - 50,
      `closed ${ms.toFixed(0)} ms after the first answer`,
    );
  });

  it('a kept-alive connection that sends requests in time is served throughout, and one that goes silent is closed without an answer', async () => {
    const c = client(port);
    await within(new Promise((r) => c.socket.once('connect', r)));
    // Four requests, each well inside the limits, spanning more than any single limit.
    for (let i = 0; i < 4; i++) {
      const before = statusLines(c.received()).length;
      c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await eventually(
        async () => statusLines(c.received()).length > before,
        10_000,
        `answer ${i + 1}`,
      );
      await new Promise((r) => setTimeout(r, 300));
    }
    await within(c.closed);
    assert.deepEqual(statusLines(c.received()), Array(4).fill('HTTP/1.1 200 OK'));
  });
});
