/**
 * X.509 chains as the TLS collector reads them: PEM files split into certificates, the
 * chain a server sent, the earliest notAfter, the leaf's names, and a signature-and-date
 * check of a chain against a set of trust anchors (for certificate files, which have no
 * handshake to let OpenSSL verify them).
 */
import { X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type { DetailedPeerCertificate, SecureContext } from 'node:tls';

/**
 * node:tls, loaded when a CA list is first needed (a certificate file to check, a
 * ca_file): the TLS collector with no targets, and a plain-HTTP lookout, never load it.
 */
const nodeTls = () => createRequire(import.meta.url)('node:tls') as typeof import('node:tls');

/** Longest subject or issuer label value: they come from the certificate, not from us. */
export const NAME_LABEL_MAX = 256;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export class CertificateError extends Error {
  readonly code: string;
  constructor(
    message: string,
    code = 'LOOKOUT_CERTIFICATE_INVALID',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
  }
}

/** Every CERTIFICATE block of a PEM text, in file order (a fullchain.pem: leaf first). */
export function parsePemChain(text: string, what = 'PEM'): X509Certificate[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0)
    throw new CertificateError(`${what}: no "BEGIN CERTIFICATE" block`, 'LOOKOUT_NO_CERTIFICATE');
  return blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (cause) {
      throw new CertificateError(`${what}: certificate ${i + 1} does not parse`, undefined, {
        cause,
      });
    }
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * OpenSSL's printed time (`Mar  1 00:00:00 2027 GMT`, as X509Certificate.validTo gives it)
 * as Unix seconds. Parsed here rather than by Date.parse, whose handling of this
 * non-standard form is the engine's choice.
 */
export function opensslTimeSeconds(text: string): number {
  const m = /^(\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(text.trim());
  const month = m ? MONTHS.indexOf(m[1]!) : -1;
  if (!m || month < 0) throw new CertificateError(`unreadable certificate time "${text}"`);
  return (
    Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])) / 1000
  );
}

export function notAfterSeconds(cert: X509Certificate): number {
  return opensslTimeSeconds(cert.validTo);
}

export function notBeforeSeconds(cert: X509Certificate): number {
  return opensslTimeSeconds(cert.validFrom);
}

/** The earliest notAfter of the chain: the moment the chain stops working as a whole. */
export function earliestNotAfter(chain: readonly X509Certificate[]): number {
  if (chain.length === 0) throw new CertificateError('empty chain');
  return Math.min(...chain.map(notAfterSeconds));
}

function oneLine(dn: string): string {
  const s = dn.split('\n').filter(Boolean).join(',');
  return s.length > NAME_LABEL_MAX ? `${s.slice(0, NAME_LABEL_MAX - 1)}…` : s;
}

export interface LeafNames {
  /** `CN=example.org,O=Example` in the certificate's order. */
  subject: string;
  issuer: string;
  /** Lower-case hex, as blackbox_exporter's serialnumber label writes it. */
  serial: string;
}

export function leafNames(cert: X509Certificate): LeafNames {
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    serial: cert.serialNumber.toLowerCase(),
  };
}

/**
 * The chain from getPeerCertificate(true), leaf first. Node appends the trust anchor
 * that completes the chain when it finds one in the connection's CA store, so a root
 * that expires before the leaf counts too — as it should: the chain stops verifying
 * then. It ends at a self-signed certificate (which links to itself) or a repeat.
 */
export function peerChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = peer;
  while (c?.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  if (chain.length === 0) throw new CertificateError('the server sent no certificate');
  return chain;
}

/** Certificates trusted as chain ends: Node's CA list, plus a ca_file's. */
export class TrustAnchors {
  private constructor(
    private readonly extra: readonly X509Certificate[],
    /**
     * For tls.connect: Node's CAs plus the extra ones, made once (undefined: Node's
     * default context). Passing `ca` to each connect instead would parse every CA again
     * for every connection.
     */
    readonly secureContext: SecureContext | undefined,
  ) {}

  /** Node's list, parsed on first use (about 140 certificates): only file targets need it. */
  private static defaults?: X509Certificate[];

  /** Every trusted certificate, for checking a chain read from a file. */
  get certs(): readonly X509Certificate[] {
    TrustAnchors.defaults ??= nodeTls().rootCertificates.map((pem) => new X509Certificate(pem));
    return [...TrustAnchors.defaults, ...this.extra];
  }

  static from(extraPem?: string, what = 'ca_file'): TrustAnchors {
    if (extraPem === undefined) return new TrustAnchors([], undefined);
    const extra = parsePemChain(extraPem, what);
    return new TrustAnchors(
      extra,
      nodeTls().createSecureContext({
        ca: [...nodeTls().rootCertificates, ...extra.map((c) => c.toString())],
      }),
    );
  }
}

/**
 * Checks a chain read from a file, leaf first: each certificate is within its validity
 * at `nowSeconds`, is signed by the next (itself a CA), and the last is a trust anchor or
 * signed by one. Returns why it does not verify, or undefined when it does. What this
 * does not check, unlike a handshake's OpenSSL verification: revocation, name
 * constraints, key usage and path length.
 */
export function verifyChain(
  chain: readonly X509Certificate[],
  anchors: TrustAnchors,
  nowSeconds: number,
): string | undefined {
  for (const [i, cert] of chain.entries()) {
    const which = i === 0 ? 'the certificate' : `chain certificate ${i + 1}`;
    if (nowSeconds > notAfterSeconds(cert)) return `${which} has expired`;
    if (nowSeconds < notBeforeSeconds(cert)) return `${which} is not yet valid`;
  }
  const signs = (issuer: X509Certificate, cert: X509Certificate) =>
    cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  for (let i = 0; i + 1 < chain.length; i++) {
    const [cert, issuer] = [chain[i]!, chain[i + 1]!];
    if (!signs(issuer, cert)) return `certificate ${i + 2} did not issue certificate ${i + 1}`;
    if (!issuer.ca) return `certificate ${i + 2} is not a CA`;
  }
  const last = chain.at(-1)!;
  const trusted = anchors.certs;
  const isAnchor = trusted.some((a) => a.fingerprint256 === last.fingerprint256);
  if (isAnchor) return undefined;
  const anchor = trusted.find((a) => signs(a, last));
  if (anchor === undefined) {
    return last.checkIssued(last)
      ? 'self-signed certificate'
      : `no trusted CA issued "${oneLine(last.issuer)}"`;
  }
  if (nowSeconds > notAfterSeconds(anchor)) return 'the trusted CA has expired';
  return undefined;
}
