import type { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { DetailedPeerCertificate } from 'node:tls';
import { Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import { duration } from '../config/duration.js';
import {
  earliestNotAfter,
  leafNames,
  parsePemChain,
  peerChain,
  TrustAnchors,
  verifyChain,
} from '../lib/certificate.js';
import { Fanout, whyNot, type TargetResult } from '../lib/fanout.js';
import type { Logger } from '../lib/log.js';
import {
  CollectorError,
  collectorSchema,
  NothingToCollect,
  registerCollector,
  type Observer,
  type PolledCollector,
  type TargetCheck,
} from './collector.js';

/** Longest `target` label value (a user-supplied name or address). */
export const TARGET_LABEL_MAX = 128;

const ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+))(?::(\d{1,5}))?$/;

/** `host:port`, `[v6]:port`, or a bare host (port 443) as host and port. */
export function parseAddress(address: string): { host: string; port: number } | undefined {
  const m = ADDRESS.exec(address);
  if (!m) return undefined;
  const port = m[3] === undefined ? 443 : Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

const targetSchema = z
  .strictObject({
    address: z
      .string()
      .refine((s) => parseAddress(s) !== undefined, {
        message: 'expected host:port like "example.org:443" or "[::1]:443"',
      })
      .optional()
      .describe('A TLS server to connect to, host:port (port 443 when left out).'),
    server_name: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The name sent as SNI and checked against the certificate; default the address's host.",
      ),
    file: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A PEM certificate file on disk instead of an address (a fullchain.pem: leaf first).',
      ),
    name: z
      .string()
      .min(1)
      .max(TARGET_LABEL_MAX)
      .optional()
      .describe('The `target` label value; default the address or the file path.'),
  })
  .superRefine((t, ctx) => {
    if ((t.address === undefined) === (t.file === undefined))
      ctx.addIssue({ code: 'custom', message: 'set exactly one of address or file' });
    if (t.file !== undefined && t.server_name !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['server_name'],
        message: 'server_name goes with address, not file',
      });
  });

/**
 * One target: a server (`address`, optional SNI `server_name`) or a PEM file. A plain
 * object, so https probe targets can be added to the list as they are.
 */
export type TlsTarget =
  { address: string; server_name?: string; name?: string } | { file: string; name?: string };

/** A target's `target` label value. */
export function targetLabel(t: TlsTarget): string {
  const label = t.name ?? ('address' in t ? t.address : t.file);
  return label.slice(0, TARGET_LABEL_MAX);
}

export const tlsSchema = collectorSchema(
  { enabled: true, interval: '1m', timeout: '30s' },
  {
    targets: z
      .array(targetSchema)
      .max(1000)
      .default([])
      .superRefine((targets, ctx) => {
        const seen = new Set<string>();
        targets.forEach((t, i) => {
          // A target with neither address nor file has its own issue already: no label.
          if (t.address === undefined && t.file === undefined) return;
          const label = targetLabel(t as TlsTarget);
          if (seen.has(label))
            ctx.addIssue({
              code: 'custom',
              path: [i],
              message: `a second target named "${label}"; give one of them a different name`,
            });
          seen.add(label);
        });
      })
      .describe(
        'Certificates to watch: servers ({address, server_name?, name?}) and PEM files ({file, name?}). None by default.',
      ),
    ca_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        "A PEM file of CA certificates trusted in addition to Node's (a private CA); without it, Node's list alone.",
      ),
    target_timeout: duration
      .prefault('5s')
      .describe(
        'How long one target may take (connect and handshake, or reading the file); one that does not answer in time has lookout_tls_probe_success 0.',
      ),
    concurrency: z.number().int().min(1).max(64).default(8).describe('Targets probed at once.'),
  },
);

export type TlsConfig = z.output<typeof tlsSchema>;

/** What one target yielded: its chain (leaf first) and whether it verified, and why not. */
export interface CertReport {
  chain: X509Certificate[];
  verified: boolean;
  /** Why it did not verify: the OpenSSL verify code, a host-name mismatch, a broken chain. */
  problem?: string;
}

export type TlsSeen = { target: string; result: TargetResult<CertReport> }[];

/**
 * Connects without rejecting (so an expired, self-signed or misnamed certificate is
 * still read), then judges it: OpenSSL's verdict on the chain against the CA list
 * (socket.authorized) and the name against the certificate (checkServerIdentity).
 */
export async function probeServer(
  target: { address: string; server_name?: string },
  anchors: TrustAnchors,
  signal: AbortSignal,
): Promise<CertReport> {
  const { host, port } = parseAddress(target.address)!;
  const name = target.server_name ?? host;
  // Imported with the first server to probe: with none, lookout never loads node:tls.
  const { checkServerIdentity, connect } = await import('node:tls');
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const socket = connect({
      host,
      port,
      // SNI carries names only; an IP address is not sent (RFC 6066).
      servername: isIP(name) ? undefined : name,
      rejectUnauthorized: false,
      secureContext: anchors.secureContext,
    });
    const abort = () => socket.destroy(signal.reason as Error);
    signal.addEventListener('abort', abort, { once: true });
    const done = () => signal.removeEventListener('abort', abort);
    socket.once('error', (err) => {
      done();
      reject(err);
    });
    socket.once('secureConnect', () => {
      done();
      try {
        const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate;
        const chain = peerChain(peer);
        const trust = socket.authorizationError;
        const nameError = checkServerIdentity(name, peer);
        const problem = trust
          ? `not trusted: ${String((trust as unknown as { code?: string }).code ?? trust)}`
          : nameError
            ? `name mismatch: ${nameError.message}`
            : undefined;
        resolve({ chain, verified: problem === undefined, problem });
      } catch (err) {
        reject(err);
      } finally {
        socket.destroy();
      }
    });
  });
}

/** Reads a PEM file (a fullchain.pem) and checks its chain against the anchors. */
export async function probeFile(
  file: string,
  anchors: TrustAnchors,
  signal: AbortSignal,
): Promise<CertReport> {
  const chain = parsePemChain(await readFile(file, { encoding: 'utf8', signal }), file);
  const problem = verifyChain(chain, anchors, Date.now() / 1000);
  return { chain, verified: problem === undefined, problem };
}

const DAY_SECONDS = 86_400;

/**
 * When a certificate expires, as a person reads it: whole days rounded to the nearest
 * (4.99 days is "in 5 days", not 4), "today" within a day either side, and a past date
 * said as past ("expired 9 days ago", not "-10 days").
 */
export function expiryText(notAfterSeconds: number, nowSeconds: number): string {
  const date = new Date(notAfterSeconds * 1000).toISOString().slice(0, 10);
  const left = (notAfterSeconds - nowSeconds) / DAY_SECONDS;
  const days = (n: number) => `${n} ${n === 1 ? 'day' : 'days'}`;
  if (left >= 1) return `expires ${date} (in ${days(Math.round(left))})`;
  if (left >= 0) return `expires today (${date})`;
  if (left > -1) return `expired today (${date})`;
  return `expired ${days(Math.round(-left))} ago (${date})`;
}

function failureText(result: TargetResult<CertReport>, timeoutMs: number): string {
  return result.status === 'ok' ? (result.value.problem ?? 'verified') : whyNot(result, timeoutMs);
}

export function createTlsCollector(
  config: TlsConfig,
  log: Logger,
): PolledCollector & Observer<TlsSeen> {
  const targets = config.targets as TlsTarget[];
  let seen: TlsSeen | undefined;
  let anchors: TrustAnchors | undefined;
  const fanout = new Fanout({
    name: 'tls',
    concurrency: config.concurrency,
    timeoutMs: config.target_timeout,
    onHung: (target, hung) =>
      hung ? log.debug('tls probe outlived its deadline', { target }) : undefined,
  });

  /** Read once: a ca_file that cannot be read fails the refresh, naming the setting. */
  async function trustAnchors(): Promise<TrustAnchors> {
    if (anchors) return anchors;
    let pem: string | undefined;
    if (config.ca_file !== undefined) {
      try {
        pem = await readFile(config.ca_file, 'utf8');
      } catch (cause) {
        throw new CollectorError(`collectors.tls.ca_file: cannot read ${config.ca_file}`, {
          cause,
          code: 'LOOKOUT_TLS_CA_FILE',
        });
      }
    }
    anchors = TrustAnchors.from(pem, `collectors.tls.ca_file ${config.ca_file}`);
    return anchors;
  }

  const registry = new Registry();
  const registers = [registry];
  const success = new Gauge({
    name: 'lookout_tls_probe_success',
    help: 'Whether the certificate was read (1): the TLS handshake completed, or the file parsed. 0: refused, timed out, no TLS, unreadable file.',
    labelNames: ['target'] as const,
    registers,
  });
  const expiry = new Gauge({
    name: 'lookout_tls_cert_expiry_timestamp_seconds',
    help: 'Earliest notAfter in the certificate chain (Unix time), read even when it has expired or is not trusted.',
    labelNames: ['target'] as const,
    registers,
  });
  const verified = new Gauge({
    name: 'lookout_tls_cert_verified',
    help: 'Whether the chain verifies against the trusted CAs and, for a server, matches its name (1); 0 when expired, self-signed, untrusted or misnamed.',
    labelNames: ['target'] as const,
    registers,
  });
  const info = new Gauge({
    name: 'lookout_tls_cert_info',
    help: "The leaf certificate's subject, issuer and serial number; always 1.",
    labelNames: ['target', 'subject', 'issuer', 'serial'] as const,
    registers,
  });
  const all = [success, expiry, verified, info];

  /** File targets whose file was missing at the last refresh: logged once per absence. */
  const missing = new Set<string>();
  function noteFile(
    t: TlsTarget,
    target: string,
    result: TargetResult<CertReport>,
    log: Logger,
  ): void {
    if (!('file' in t)) return;
    const gone =
      result.status === 'failed' &&
      (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (gone && !missing.has(target)) {
      missing.add(target);
      log.warn('certificate file missing', {
        target,
        path: t.file,
        err: failureText(result, config.target_timeout),
      });
    } else if (!gone && missing.delete(target)) {
      log.info('certificate file there again', { target, path: t.file });
    }
  }

  async function runAll(signal: AbortSignal, deadline: number) {
    const trusted = await trustAnchors();
    return fanout.run(
      targets,
      targetLabel,
      (t, s) => ('address' in t ? probeServer(t, trusted, s) : probeFile(t.file, trusted, s)),
      { signal, deadline },
    );
  }

  return {
    lastSeen: () => seen,

    async collect({ signal, deadline, log: ctxLog }) {
      // On by default with no targets: a quiet "nothing here", not an empty success.
      if (targets.length === 0) throw new NothingToCollect('no targets in collectors.tls.targets');
      const results = await runAll(signal, deadline);
      // A refresh the runner gave up on (timed out) must not overwrite a later one's values.
      signal.throwIfAborted();
      seen = targets.map((t, i) => ({ target: targetLabel(t), result: results[i]! }));
      // Every label set is written anew: a target that stopped answering loses its
      // expiry, and a renewed certificate's old subject and serial go.
      for (const g of all) g.reset();
      for (let i = 0; i < seen.length; i++) {
        const { target, result } = seen[i]!;
        success.set({ target }, result.status === 'ok' ? 1 : 0);
        noteFile(targets[i]!, target, result, ctxLog);
        if (result.status !== 'ok') {
          ctxLog.debug('tls probe failed', {
            target,
            err: failureText(result, config.target_timeout),
          });
          continue;
        }
        const { chain, verified: ok } = result.value;
        expiry.set({ target }, earliestNotAfter(chain));
        verified.set({ target }, ok ? 1 : 0);
        info.set({ target, ...leafNames(chain[0]!) }, 1);
      }
      return registry;
    },

    async checkTargets({ signal, deadline }): Promise<TargetCheck[]> {
      const results = await runAll(signal, deadline);
      return targets.map((t, i) => {
        const result = results[i]!;
        const target = targetLabel(t);
        if (result.status !== 'ok')
          return { target, ok: false, detail: failureText(result, config.target_timeout) };
        const when = expiryText(earliestNotAfter(result.value.chain), Date.now() / 1000);
        return result.value.verified
          ? { target, ok: true, detail: `verified, ${when}` }
          : { target, ok: false, detail: `${result.value.problem}; ${when}` };
      });
    },
  };
}

registerCollector({
  name: 'tls',
  description:
    'Certificate expiry and trust of TLS servers and certificate files (lookout_tls_*), read even when expired or untrusted',
  metrics: [
    'lookout_tls_probe_success',
    'lookout_tls_cert_expiry_timestamp_seconds',
    'lookout_tls_cert_verified',
    'lookout_tls_cert_info',
  ],
  schema: tlsSchema,
  create: ({ config, log }) => createTlsCollector(config, log),
});
