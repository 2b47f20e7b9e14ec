/**
 * Where Alertmanager delivers in tests: a real SMTP server (smtp-server + mailparser) and
 * a Slack incoming-webhook stand-in (node:http), both on 127.0.0.1 free ports. Each records
 * what arrived, in order, with the arrival time, so tests can assert on the exact subject
 * and text and measure fault → message latency.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface Sink<T> {
  /** Everything received so far, oldest first. */
  readonly received: T[];
  /** Resolves with the first message (already received or arriving) that matches, or
   *  rejects after timeoutMs listing what did arrive. */
  waitFor(predicate: (m: T) => boolean, timeoutMs: number, what?: string): Promise<T>;
  stop(): Promise<void>;
}

export interface Email {
  subject: string;
  text: string;
  html: string;
  to: string[];
  from: string;
  /** Credentials the client logged in with, when it did (checks the password file is read). */
  auth: { username: string; password: string } | null;
  receivedAt: number;
}

export interface SmtpSink extends Sink<Email> {
  host: string;
  port: number;
  /** host:port, as smtp_smarthost wants it. */
  smarthost: string;
  /** From now on, refuse a login with another password (535), as a real server does;
   *  undefined accepts any login again. */
  requirePassword(password: string | undefined): void;
}

export interface SlackAttachment {
  color?: string;
  title?: string;
  title_link?: string;
  text?: string;
  fallback?: string;
}

export interface SlackMessage {
  path: string;
  body: { channel?: string; username?: string; text?: string; attachments?: SlackAttachment[] };
  receivedAt: number;
}

export interface SlackSink extends Sink<SlackMessage> {
  /** The webhook URL to put in Alertmanager's api_url(_file). */
  url: string;
}

/** Polling keeps this simple and bounded; 50 ms is far below any latency we measure. */
function waiter<T>(received: T[], describe: (m: T) => string) {
  return async (predicate: (m: T) => boolean, timeoutMs: number, what = 'a message') => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = received.find(predicate);
      if (hit !== undefined) return hit;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seen = received.map((m) => '  ' + describe(m)).join('\n') || '  (nothing)';
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received:\n${seen}`);
  };
}

function addresses(a: AddressObject | AddressObject[] | undefined): string[] {
  const list = a === undefined ? [] : Array.isArray(a) ? a : [a];
  return list.flatMap((o) => o.value.map((v) => v.address ?? ''));
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const received: Email[] = [];
  let required: string | undefined;
  const server = new SMTPServer({
    // Alertmanager logs in when the server offers AUTH; accept anything and record it.
    authOptional: true,
    allowInsecureAuth: true,
    // No TLS: alertmanager.yml's smtp_require_tls is switched off for this sink.
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 1000,
    onAuth(auth, _session, cb) {
      if (required !== undefined && auth.password !== required) {
        cb(new Error('Invalid username or password'));
        return;
      }
      cb(null, { user: { username: auth.username ?? '', password: auth.password ?? '' } });
    },
    onMailFrom(_address, session, cb) {
      // A server that requires a login refuses mail from a client that did not log in.
      if (required !== undefined && session.user === undefined) {
        cb(Object.assign(new Error('Authentication required'), { responseCode: 530 }));
        return;
      }
      cb();
    },
    onData(stream, session, cb) {
      simpleParser(stream).then(
        (mail) => {
          const user = session.user as { username: string; password: string } | undefined;
          received.push({
            subject: mail.subject ?? '',
            text: mail.text ?? '',
            html: typeof mail.html === 'string' ? mail.html : '',
            to: addresses(mail.to),
            from: addresses(mail.from).join(','),
            auth: user ?? null,
            receivedAt: Date.now(),
          });
          cb();
        },
        (err: Error) => cb(err),
      );
    },
  });
  const host = '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    host,
    port,
    smarthost: `${host}:${port}`,
    requirePassword: (password) => {
      required = password;
    },
    received,
    waitFor: waiter(
      received,
      (m) => `email to=${m.to.join(',')} subject=${JSON.stringify(m.subject)}`,
    ),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Alertmanager's webhook payload (the heartbeat receiver), the fields tests read. */
export interface WebhookMessage {
  path: string;
  body: {
    receiver?: string;
    status?: string;
    alerts?: Array<{ status?: string; labels?: Record<string, string>; generatorURL?: string }>;
  };
  receivedAt: number;
}

export interface WebhookSink extends Sink<WebhookMessage> {
  url: string;
}

/** An HTTP server on 127.0.0.1 that records JSON POSTs, answering a malformed one 400. */
async function startJsonSink<M extends { path: string; body: unknown; receivedAt: number }>(
  path: string,
  describe: (m: M) => string,
): Promise<Sink<M> & { url: string }> {
  const received: M[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: M['body'];
      try {
        body = JSON.parse(raw) as M['body'];
      } catch (err) {
        // Slack answers a malformed payload with 400 invalid_payload; so do we.
        res.writeHead(400).end(`invalid_payload: ${(err as Error).message}`);
        return;
      }
      received.push({ path: req.url ?? '', body, receivedAt: Date.now() } as M);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    received,
    waitFor: waiter(received, describe),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function startSlackSink(): Promise<SlackSink> {
  return startJsonSink<SlackMessage>('/services/T000/B000/lookout-test', (m) => {
    const a = m.body.attachments?.[0];
    return `slack color=${a?.color} title=${JSON.stringify(a?.title)}`;
  });
}

/** Stands in for a dead-man's switch: what Alertmanager's webhook receiver posts. */
export function startWebhookSink(): Promise<WebhookSink> {
  return startJsonSink<WebhookMessage>('/ping/lookout', (m) => {
    const names = (m.body.alerts ?? []).map((a) => a.labels?.alertname).join(',');
    return `webhook receiver=${m.body.receiver} status=${m.body.status} alerts=${names}`;
  });
}
