import {
  STATUS_CODES,
  createServer as createHttpServer,
  type Server as HttpServer,
} from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import {
  createServer as createNetServer,
  isIP,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { stat } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { RequestListener } from 'node:http';
import { errorText, type Logger } from '../lib/log.js';
import { enforceDeadlines, NEVER_MS } from './deadlines.js';
import { Paced } from '../lib/paced.js';
import { RateLimitedLog } from '../lib/ratelog.js';
// Types only: the web-config code (its YAML and certificate parsing) is loaded where a
// web-config file is, never by a plain-HTTP lookout (webConfigCode()).
import type { TlsServerConfig, WebConfig } from './webconfig.js';

/** The web-config module, imported on first use. */
const webConfigCode = () => import('./webconfig.js');

/** Splits ":10142", "127.0.0.1:10142" or "[::1]:10142"; an empty host means every address. */
export function splitListenAddress(address: string): { host: string | undefined; port: number } {
  const i = address.lastIndexOf(':');
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? undefined : host, port: Number(address.slice(i + 1)) };
}

/** The `web:` limits (config/schema.ts), in bytes and milliseconds. */
export interface Limits {
  max_connections: number;
  max_header_bytes: number;
  header_timeout: number;
  request_timeout: number;
  keep_alive_timeout: number;
}

/**
 * Keeps lookout in step with its web-config file and the certificate files it names (a
 * Let's Encrypt renewal, a user added to basic_auth_users), as the toolkit does by
 * reading the file on every request: each new connection starts a stat() of the files
 * (unless one is running; then one more follows it), and a change is read, validated and
 * put in place — the TLS context with setSecureContext, the auth and headers through
 * `prepare` — for the connections after it, within a stat round of the change. The
 * connection itself does not wait: on a busy machine a hop through the thread pool has a
 * long tail, and a scrape should not pay it. Anything that does not validate (a
 * half-written renewal: a new certificate beside the old key) keeps what runs and is
 * retried when the files change again.
 */
class WebConfigWatcher {
  private signature = '';
  private failed = '';
  private running?: Promise<void>;
  private again = false;

  constructor(
    public current: WebConfig,
    private readonly server: HttpsServer | undefined,
    private readonly prepare: (next: WebConfig) => Promise<() => void>,
    private readonly log: Logger,
    private readonly warn: RateLimitedLog,
  ) {}

  private static files(web: WebConfig): string[] {
    const t = web.tls;
    return [web.source, t?.cert.file, t?.key.file, t?.clientCa?.file].filter(
      (f): f is string => f !== undefined,
    );
  }

  private static async sign(web: WebConfig): Promise<string> {
    const stats = await Promise.all(
      WebConfigWatcher.files(web).map((f) =>
        stat(f).then(
          (s) => `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`,
          (err: NodeJS.ErrnoException) => `error:${err.code ?? ''}`,
        ),
      ),
    );
    return stats.join('|');
  }

  /** Records the files' state as served now (at start). */
  async start(): Promise<void> {
    this.signature = await WebConfigWatcher.sign(this.current);
  }

  /** A new connection arrived: look at the files, or again after the look under way. */
  poke(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.again = false;
    this.running = this.check().finally(() => {
      this.running = undefined;
      if (this.again) this.poke();
    });
  }

  private async check(): Promise<void> {
    const sig = await WebConfigWatcher.sign(this.current);
    if (sig === this.signature || sig === this.failed) return;
    try {
      const { loadTls, loadWebConfig } = await webConfigCode();
      const next = await loadWebConfig(this.current.source);
      if ((next.tls === undefined) !== (this.current.tls === undefined)) {
        throw new Error('switching between TLS and plain HTTP needs a restart');
      }
      // An edit caught half-written (truncated, then written) reads as no users at all:
      // never open the door on a reload; turning auth off takes a restart.
      if (this.current.users.size > 0 && next.users.size === 0) {
        throw new Error('removing every basic_auth_users entry needs a restart');
      }
      // The state each file had before it was read, so a write landing while it was read
      // shows on the next look: the config file's from before loadWebConfig (files()
      // lists it first), the certificates' from now, before loadTls reads them.
      const certSig = (await WebConfigWatcher.sign(next)).split('|').slice(1);
      const nextSig = [sig.split('|')[0], ...certSig].join('|');
      const tls = next.tls ? await loadTls(next.tls, next.source) : undefined;
      const commit = await this.prepare(next);
      if (tls && this.server) {
        this.server.setSecureContext(tls.options);
        // tls.Server reads requestCert for each new connection; a changed
        // client_auth_type takes effect from the next one.
        (this.server as unknown as { requestCert: boolean }).requestCert =
          next.tls?.clientAuth !== 'NoClientCert';
      }
      commit();
      this.current = next;
      this.signature = nextSig;
      this.failed = '';
      this.log.info('web config reloaded', {
        file: next.source,
        tls: next.tls !== undefined,
        basic_auth: next.users.size > 0,
        not_after: tls?.notAfter === undefined ? undefined : new Date(tls.notAfter).toISOString(),
      });
      warnIfExpired(tls?.notAfter, this.log);
    } catch (err) {
      this.failed = sig;
      this.warn.warn(
        'web-reload',
        'web config or TLS files changed but cannot be used; keeping the running ones',
        { err: errorText(err) },
      );
    }
  }
}

function warnIfExpired(until: number | undefined, log: Logger): void {
  if (until !== undefined && until < Date.now()) {
    log.warn('the TLS certificate lookout serves has expired; clients will refuse it', {
      not_after: new Date(until).toISOString(),
    });
  }
}

/** The SANs of a client certificate, checked as the toolkit's client_allowed_sans. */
function hasAllowedSan(socket: TLSSocket, allowed: readonly string[]): boolean {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return false;
  const uris = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return allowed.some(
    (s) =>
      (isIP(s) ? cert.checkIP(s) !== undefined : false) ||
      cert.checkHost(s, { subject: 'never', wildcards: false }) !== undefined ||
      cert.checkEmail(s, { subject: 'never' }) !== undefined ||
      uris.includes(s),
  );
}

/**
 * Why a TLS client's certificate does not pass its client_auth_type (and
 * client_allowed_sans), or undefined when it does. Runs before the HTTP server sees the
 * connection, so a refused client never gets an HTTP answer.
 */
function clientCertificateProblem(socket: TLSSocket, tls: TlsServerConfig): string | undefined {
  const given = socket.getPeerX509Certificate() !== undefined;
  const untrusted = `untrusted client certificate (${String(socket.authorizationError)})`;
  switch (tls.clientAuth) {
    case 'RequireAnyClientCert':
      if (!given) return 'no client certificate';
      break;
    case 'VerifyClientCertIfGiven':
      if (given && !socket.authorized) return untrusted;
      break;
    case 'RequireAndVerifyClientCert':
      if (!given) return 'no client certificate';
      if (!socket.authorized) return untrusted;
      break;
    default:
      break;
  }
  if (given && tls.clientAllowedSans && !hasAllowedSan(socket, tls.clientAllowedSans)) {
    return 'no allowed SAN in the client certificate (client_allowed_sans)';
  }
  return undefined;
}

/** Timed-out connections answered per turn of the event loop (about 1 ms of work). */
const TIMEOUTS_PER_TURN = 16;
/**
 * New connections handed to the HTTP(S) server per turn of the event loop. On TLS each
 * becomes a TLSSocket with its handshake state at once; 1,000 connections opened
 * together made a kept-alive scraper wait 6.3 ms behind them (bench/abuse.ts).
 */
const ACCEPTS_PER_TURN = 16;

export interface DoorEvents {
  /** A TLS client turned away for its certificate (mTLS). */
  onClientCertificateFailure(): void;
  /**
   * The web-config file changed and validated: build what the requests need from it
   * (may throw to keep the running one); the returned function puts it in place.
   */
  prepare(next: WebConfig): Promise<() => void>;
}

/**
 * lookout's listening socket: plain HTTP, or TLS from a web-config file, with limits on
 * header size, header/request/keep-alive time and concurrent connections. A plain TCP
 * server accepts and counts connections, refuses those over the cap (503 where the
 * protocol still allows an answer), waits for the certificate check and hands the rest
 * to the HTTP(S) server, which never listens itself.
 */
export class Door {
  private active = 0;
  private closing = false;

  private constructor(
    private readonly outer: NetServer,
    readonly inner: HttpServer | HttpsServer,
  ) {}

  static async open(
    handler: RequestListener,
    address: string,
    limits: Limits,
    web: WebConfig | undefined,
    log: Logger,
    events: DoorEvents,
  ): Promise<Door> {
    const warn = new RateLimitedLog(log);
    // Timeouts, answered a batch per turn (Paced).
    const paced = new Paced(TIMEOUTS_PER_TURN);
    const httpOptions = {
      maxHeaderSize: limits.max_header_bytes,
      headersTimeout: limits.header_timeout,
      requestTimeout: limits.request_timeout,
      keepAliveTimeout: limits.keep_alive_timeout,
      // Enforced by a timer per connection instead (deadlines.ts): Node's check of every
      // connection on an interval woke an idle lookout each time.
      connectionsCheckingInterval: NEVER_MS,
    };
    const tls = web?.tls;
    let inner: HttpServer | HttpsServer;
    let watcher: WebConfigWatcher | undefined;
    if (tls) {
      const { loadTls } = await webConfigCode();
      const { options, notAfter: until } = await loadTls(tls, web.source);
      // Only behind TLS: a plain-HTTP lookout never loads node:https and node:tls.
      const { createServer: createHttpsServer } = await import('node:https');
      const s = createHttpsServer(
        {
          ...httpOptions,
          ...options,
          requestCert: tls.clientAuth !== 'NoClientCert',
          // Verified here, in clientCertificateProblem: Node's own rejection of an
          // untrusted certificate closes the connection without any event to count.
          rejectUnauthorized: false,
          // A client that connects and never finishes its handshake is dropped as one
          // that never finishes its headers.
          handshakeTimeout: limits.header_timeout,
          ALPNProtocols: ['http/1.1'],
        },
        handler,
      );
      s.prependListener('secureConnection', (socket: TLSSocket) => {
        const now = watcher?.current.tls ?? tls;
        const why = clientCertificateProblem(socket, now);
        if (why === undefined) return;
        events.onClientCertificateFailure();
        warn.warn('client-cert', 'TLS client refused', {
          remote: socket.remoteAddress,
          client_auth_type: now.clientAuth,
          reason: why,
        });
        socket.destroy();
      });
      s.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        // Handshake timeouts come together for connections opened together: paced as
        // the other timeouts (clientError below).
        if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') paced.run(() => tlsFailure(err, socket));
        else tlsFailure(err, socket);
      });
      inner = s;
      warnIfExpired(until, log);
    } else {
      inner = createHttpServer(httpOptions, handler);
    }
    enforceDeadlines(inner, limits, paced);
    if (web) {
      const server = tls ? (inner as HttpsServer) : undefined;
      watcher = new WebConfigWatcher(web, server, events.prepare, log, warn);
      await watcher.start();
    }
    // A TLS failure can come after the handshake (TLS 1.3 verifies the client's
    // certificate once the server has finished), through the HTTP server's clientError:
    // one place counts and logs it either way, once per connection.
    const failedTls = new WeakSet<Socket>();
    const tlsFailure = (err: NodeJS.ErrnoException, socket: Socket) => {
      if (failedTls.has(socket)) return;
      failedTls.add(socket);
      if (
        tls &&
        (watcher?.current.tls ?? tls).clientAuth !== 'NoClientCert' &&
        /certificate/i.test(`${err.code} ${err.message}`)
      ) {
        events.onClientCertificateFailure();
      }
      warn.warn('tls-handshake', 'TLS handshake failed', {
        remote: socket.remoteAddress,
        err: err.code ?? err.message,
      });
      socket.destroy();
    };
    const clientError = (err: NodeJS.ErrnoException, socket: Socket) => {
      if (tls && err.code?.startsWith('ERR_SSL')) {
        tlsFailure(err, socket);
        return;
      }
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? 431
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 408
            : err.code === 'ECONNRESET' || err.code === 'EPIPE'
              ? 0
              : 400;
      if (status !== 0) {
        warn.warn(`client-${status}`, 'request refused', {
          status,
          remote: socket.remoteAddress,
          err: err.code ?? err.message,
        });
      }
      // Node's HTTP server keeps the response in progress on the socket; once its head is
      // out, a status line of ours would land inside it.
      const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })
        ._httpMessage?.headersSent;
      if (status !== 0 && socket.writable && !inProgress) {
        socket.end(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
        );
      }
      socket.destroySoon();
    };
    // Timeouts come paced from enforceDeadlines; other errors one by one, as the
    // client's bytes arrive.
    inner.on('clientError', clientError);

    const { host, port } = splitListenAddress(address);
    let door: Door | undefined;
    const accepts = new Paced(ACCEPTS_PER_TURN);
    const outer = createNetServer(
      // noDelay as Node's HTTP server sets it on its own sockets: without it Nagle holds
      // back the small TLS handshake and response writes (a 40 ms stall per new connection).
      { pauseOnConnect: true, noDelay: true },
      (socket) => {
        if (!door || door.closing) {
          socket.destroy();
          return;
        }
        if (door.active >= limits.max_connections) {
          warn.warn('max-connections', 'connection refused: web.max_connections reached', {
            max_connections: limits.max_connections,
            remote: socket.remoteAddress,
          });
          refuse(socket, tls !== undefined);
          return;
        }
        door.active++;
        socket.once('close', () => door!.active--);
        const serve = () => {
          if (socket.destroyed) return;
          inner.emit('connection', socket);
          // Accepted paused (pauseOnConnect) so nothing is read before the HTTP server
          // has it; a TLS socket reads through its own wrap.
          if (!tls) socket.resume();
        };
        watcher?.poke();
        accepts.run(serve);
      },
    );
    await new Promise<void>((resolve, reject) => {
      outer.once('error', reject);
      outer.listen({ host, port }, () => {
        outer.removeListener('error', reject);
        resolve();
      });
    });
    // Node sets up an HTTP server's connection list (closeIdleConnections walks it at
    // shutdown) when it listens; this one never listens (the TCP server above hands it
    // connections), so tell it.
    inner.emit('listening');
    door = new Door(outer, inner);
    log.info('web config', {
      tls: tls !== undefined,
      client_auth_type: tls?.clientAuth,
      basic_auth: (web?.users.size ?? 0) > 0,
      http2: false,
    });
    return door;
  }

  /** Stops accepting; resolves when every connection has closed. */
  close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.outer.close(() => resolve()));
    return closed;
  }

  closeIdleConnections(): void {
    this.inner.closeIdleConnections();
  }

  closeAllConnections(): void {
    this.inner.closeAllConnections();
  }
}

/**
 * Over the connection cap. Plain HTTP still gets an answer (503 and Retry-After); on a
 * TLS port nothing can be said before a handshake, which is what the cap saves, so the
 * connection is closed.
 */
function refuse(socket: Socket, tls: boolean): void {
  if (tls) {
    socket.destroy();
    return;
  }
  // Read and drop what the client sent, so closing does not reset the connection
  // before it reads the answer.
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  socket.resume();
  socket.end(
    'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}
