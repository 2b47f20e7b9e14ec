import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Paced } from '../lib/paced.js';

/** The longest delay a Node timer takes; Node's own timeout check is pushed out to it. */
export const NEVER_MS = 2 ** 31 - 1;

export interface DeadlineLimits {
  header_timeout: number;
  request_timeout: number;
  keep_alive_timeout: number;
}

/** What Node's HTTP server emits when its own check finds a request too slow. */
function timedOut(): NodeJS.ErrnoException {
  return Object.assign(new Error('the client took too long to send its request'), {
    code: 'ERR_HTTP_REQUEST_TIMEOUT',
  });
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The header, request and kept-alive deadlines as one timer per connection, armed only
 * while the connection owes lookout something, as Go's server does with read deadlines.
 * Node enforces header and request timeouts by checking every connection on an interval
 * instead: an idle lookout woke for it on every check (bench/wakeups.ts: about a
 * millisecond of CPU each), when Prometheus scrapes once every 15 s.
 *
 * - A new connection (on TLS: once its handshake, bounded by handshakeTimeout, is done)
 *   has header_timeout to send its request headers.
 * - A request with a body has request_timeout, from the end of its headers, to send it.
 * - After each answer, a kept-alive connection has keep_alive_timeout + header_timeout
 *   to send its next request whole. Node closes one that stays silent for
 *   keep_alive_timeout; this catches one that sends its next headers a byte at a time,
 *   which keeps Node's inactivity timer from ever firing.
 *
 * A connection past its deadline gets the server's `clientError` with Node's own
 * ERR_HTTP_REQUEST_TIMEOUT, so it is answered 408 and logged exactly as Node's check did.
 * The server's own check is to be pushed out to NEVER_MS (connectionsCheckingInterval).
 */
export function enforceDeadlines(
  server: HttpServer | HttpsServer,
  limits: DeadlineLimits,
  paced: Paced,
): void {
  const timers = new WeakMap<Socket, NodeJS.Timeout>();
  /**
   * Per connection, a count of arms and disarms: an expiry waiting in the paced queue
   * while its connection moved on (a request or its body came in) is dropped.
   */
  const generation = new WeakMap<Socket, number>();
  const bump = (socket: Socket) => {
    const g = (generation.get(socket) ?? 0) + 1;
    generation.set(socket, g);
    return g;
  };
  const disarm = (socket: Socket) => {
    clearTimeout(timers.get(socket));
    timers.delete(socket);
    bump(socket);
  };
  // Answered 408 and logged by the server's clientError handler, as Node's own check does.
  const tooSlow = (socket: Socket) => {
    server.emit('clientError', timedOut(), socket);
  };
  /**
   * At `ms` from now, unless disarmed: `expire`, by default a 408. Connections opened
   * together expire together, so the expiries are answered a batch per turn (Paced); one
   * whose connection moved on meanwhile is left alone.
   */
  const arm = (socket: Socket, ms: number, expire = () => tooSlow(socket)) => {
    clearTimeout(timers.get(socket));
    if (socket.destroyed) return;
    const armed = bump(socket);
    // Node turns a delay past NEVER_MS into 1 ms.
    const timer = setTimeout(
      () => {
        timers.delete(socket);
        paced.run(() => {
          if (!socket.destroyed && generation.get(socket) === armed) expire();
        });
      },
      Math.min(ms, NEVER_MS),
    );
    // A deadline never keeps lookout running on its own (shutdown closes connections).
    timer.unref();
    timers.set(socket, timer);
  };

  const accepted = (socket: Socket) => {
    arm(socket, limits.header_timeout);
    socket.once('close', () => disarm(socket));
  };
  // Plain HTTP sees the connection at once; TLS once its handshake is done.
  if ('setSecureContext' in server) server.on('secureConnection', accepted);
  else server.on('connection', accepted);

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    disarm(socket);
    if (hasBody(req)) {
      arm(socket, limits.request_timeout);
      req.once('end', () => disarm(socket));
    }
    res.once('finish', () => {
      // The next request on this connection, if it stays open. One that sent nothing at
      // all is normally closed by Node's keep-alive timeout first (keep_alive_timeout plus
      // a second of its own); should this fire first (header_timeout under a second), it
      // is closed as quietly. Only one caught sending slowly is answered 408.
      const read = socket.bytesRead;
      arm(socket, limits.keep_alive_timeout + limits.header_timeout, () => {
        if (socket.bytesRead === read) socket.destroy();
        else tooSlow(socket);
      });
    });
  });
}
