/**
 * The exporter toolkit's web configuration file (`--web.config.file`), the one
 * node_exporter, blackbox_exporter and Prometheus take: TLS (and mTLS) and bcrypt basic
 * auth. A file written for node_exporter works unchanged; a field lookout cannot honour
 * is an error naming it, never ignored. Parsing is a pure function of the text; reading
 * the certificate files is `loadTlsMaterial`, apart, so the parser is easy to fuzz.
 */
import { notAfterSeconds } from '../lib/certificate.js';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { dirname, resolve } from 'node:path';
import { load as parseYaml, YAMLException } from 'js-yaml';
import { z } from 'zod';
import { ConfigError, formatPath } from '../config/load.js';
import { errorText } from '../lib/log.js';

export const CLIENT_AUTH_TYPES = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

/**
 * Go's names (crypto/tls CipherSuites(), what the toolkit accepts) → OpenSSL's. The
 * TLS 1.3 suites have the same names in both.
 */
const CIPHERS: Record<string, string> = {
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // In CipherSuites() of the Go releases node_exporter 1.x was built with.
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
};
const TLS13_DEFAULT = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

/** The toolkit's curve names → OpenSSL's (Node's `ecdhCurve`). */
const CURVES = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

const VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
type NodeTlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** The toolkit lets these response headers be set, some only to the listed values. */
const HEADERS: Record<string, readonly string[] | undefined> = {
  'Strict-Transport-Security': undefined,
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': undefined,
  'Content-Security-Policy': undefined,
};

/** `$2a$`, `$2b$` or `$2y$` (htpasswd), a two-digit cost 04–31, 22 salt + 31 hash characters. */
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
const HASH_HOWTO = `make one with: htpasswd -nBC 10 "" | tr -d ':\\n'`;

/** Text or a file, as the toolkit has both for the certificate, key and client CA. */
export interface Pem {
  file?: string;
  inline?: string;
}

export interface TlsServerConfig {
  cert: Pem;
  key: Pem;
  clientCa?: Pem;
  clientAuth: ClientAuthType;
  /** A client certificate must carry one of these SANs (DNS, IP, e-mail or URI). */
  clientAllowedSans?: string[];
  minVersion: NodeTlsVersion;
  maxVersion: NodeTlsVersion;
  /** OpenSSL cipher list (TLS 1.2 suites named, TLS 1.3 suites as named or OpenSSL's). */
  ciphers?: string;
  honorCipherOrder: boolean;
  /** OpenSSL curve list for ECDHE, in preference order. */
  ecdhCurve?: string;
}

export interface WebConfig {
  /** The file it came from; relative certificate paths were resolved against its directory. */
  source: string;
  /** Undefined: plain HTTP. */
  tls?: TlsServerConfig;
  /** Set on every response (the toolkit's http_server_config.headers). */
  headers: Record<string, string>;
  /** User → bcrypt hash; empty: no basic auth. */
  users: Map<string, string>;
  /** The toolkit's token bucket; undefined: off. */
  rateLimit?: { intervalMs: number; burst: number };
}

const optionalText = z
  .string()
  .optional()
  .transform((s) => (s === '' ? undefined : s));

const tlsSchema = z.strictObject({
  cert: optionalText,
  key: optionalText,
  client_ca: optionalText,
  cert_file: optionalText,
  key_file: optionalText,
  client_auth_type: z.enum([...CLIENT_AUTH_TYPES, 'RequireClientCert', '']).optional(),
  client_ca_file: optionalText,
  client_allowed_sans: z.array(z.string()).nullish(),
  min_version: z.enum(['TLS10', 'TLS11', 'TLS12', 'TLS13']).optional(),
  max_version: z.enum(['TLS10', 'TLS11', 'TLS12', 'TLS13']).optional(),
  cipher_suites: z.array(z.string()).nullish(),
  prefer_server_cipher_suites: z.boolean().optional(),
  curve_preferences: z.array(z.enum(Object.keys(CURVES) as [keyof typeof CURVES])).nullish(),
});

const httpSchema = z.strictObject({
  http2: z.boolean().optional(),
  // YAML reads `X-XSS-Protection: 1` as a number; Go's decoder into strings takes it as "1".
  headers: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String))
    .nullish(),
});

const fileSchema = z.strictObject({
  tls_server_config: tlsSchema.nullish(),
  http_server_config: httpSchema.nullish(),
  basic_auth_users: z.record(z.string(), z.string()).nullish(),
  rate_limit: z
    .strictObject({
      interval: z.union([z.string(), z.literal(0)]).optional(),
      burst: z.number().int().min(0).optional(),
    })
    .nullish(),
});

/** Go's time.ParseDuration for what a config holds ("1s", "250ms", "1m30s"); ms, or undefined. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  if (text.length === 0) return undefined;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * unit[m[2]!]!;
    at = re.lastIndex;
  }
  return Number.isFinite(total) ? total : undefined;
}

function issueText(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map(
        (k) =>
          `${formatPath([...issue.path, k])}: unknown key (the exporter toolkit has no such field)`,
      )
      .join('\n');
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  // Never echo a value: a wrong hash may be someone's plaintext password.
  if (issue.code === 'invalid_type') return `${where}: expected ${issue.expected}`;
  return `${where}: ${issue.message}`;
}

function pem(inline: string | undefined, file: string | undefined, dir: string): Pem | undefined {
  if (file !== undefined) return { file: resolve(dir, file) };
  if (inline !== undefined) return { inline };
  return undefined;
}

/**
 * Parses and validates a web-config file's text. Relative paths resolve against the
 * directory of `sourcePath`, as in the toolkit. Throws only ConfigError, with one line
 * per problem naming the field and the fix.
 */
export function parseWebConfig(text: string, sourcePath: string): WebConfig {
  const fail = (problems: string[]): never => {
    throw new ConfigError(sourcePath, problems);
  };
  let doc: unknown;
  try {
    // An empty file is a valid web config in the toolkit: plain HTTP, no auth.
    // js-yaml 5 refuses a document of comments only; for the toolkit it is an empty file.
    const hasContent = text.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    doc = hasContent ? parseYaml(text, { filename: sourcePath }) : {};
  } catch (err) {
    // A YAML error, or a RangeError from absurd nesting: either way the text is unusable.
    const at =
      err instanceof YAMLException && err.mark
        ? `line ${err.mark.line + 1}, column ${err.mark.column + 1}: `
        : '';
    const reason = err instanceof YAMLException ? err.reason : 'the document is too deeply nested';
    return fail([`${at}invalid YAML: ${reason}`]);
  }
  const parsed = fileSchema.safeParse(doc ?? {});
  if (!parsed.success) {
    return fail(parsed.error.issues.flatMap((i) => issueText(i).split('\n')));
  }
  const f = parsed.data;
  const problems: string[] = [];
  const dir = dirname(sourcePath);

  // ---- tls_server_config
  let tls: TlsServerConfig | undefined;
  const t = f.tls_server_config;
  const where = (k: string) => `tls_server_config.${k}`;
  const enabled =
    t != null &&
    (t.cert_file ?? t.cert ?? t.key_file ?? t.key ?? t.client_ca_file ?? t.client_ca) !== undefined;
  if (t != null && (enabled || (t.client_auth_type ?? '') !== '')) {
    const both = (a: string, b: string) =>
      problems.push(`${where(a)} and ${where(b)}: set one of them, not both`);
    if (t.cert !== undefined && t.cert_file !== undefined) both('cert', 'cert_file');
    if (t.key !== undefined && t.key_file !== undefined) both('key', 'key_file');
    if (t.client_ca !== undefined && t.client_ca_file !== undefined)
      both('client_ca', 'client_ca_file');
    const cert = pem(t.cert, t.cert_file, dir);
    const key = pem(t.key, t.key_file, dir);
    if (!cert) problems.push(`${where('cert_file')}: missing; TLS needs one of cert or cert_file`);
    if (!key) problems.push(`${where('key_file')}: missing; TLS needs one of key or key_file`);
    const clientCa = pem(t.client_ca, t.client_ca_file, dir);
    const authType: ClientAuthType =
      t.client_auth_type === undefined || t.client_auth_type === ''
        ? 'NoClientCert'
        : t.client_auth_type === 'RequireClientCert'
          ? 'RequireAnyClientCert'
          : t.client_auth_type;
    if (clientCa && authType === 'NoClientCert') {
      problems.push(
        `${where('client_auth_type')}: a client CA is set but no client auth type; set client_auth_type: RequireAndVerifyClientCert`,
      );
    }
    const sans = t.client_allowed_sans ?? undefined;
    if (sans && authType === 'NoClientCert') {
      problems.push(
        `${where('client_allowed_sans')}: needs a client certificate; set client_auth_type: RequireAndVerifyClientCert`,
      );
    }
    const version = (k: 'min_version' | 'max_version', dflt: NodeTlsVersion): NodeTlsVersion => {
      const v = t[k];
      if (v === 'TLS10' || v === 'TLS11') {
        problems.push(
          `${where(k)}: ${v} cannot be honoured: Node's OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level; use TLS12 or TLS13`,
        );
        return dflt;
      }
      return v === undefined ? dflt : VERSIONS[v];
    };
    const minVersion = version('min_version', 'TLSv1.2');
    const maxVersion = version('max_version', 'TLSv1.3');
    if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
      problems.push(`${where('min_version')}: TLS13 is above max_version TLS12`);
    }
    let ciphers: string | undefined;
    const suites = t.cipher_suites ?? [];
    if (suites.length > 0) {
      const unknown = suites.filter((s) => !Object.hasOwn(CIPHERS, s));
      if (unknown.length > 0) {
        problems.push(
          `${where('cipher_suites')}: unknown cipher ${unknown.join(', ')}; the toolkit (Go) names are ${Object.keys(CIPHERS).join(', ')}`,
        );
      }
      const names = suites.filter((s) => Object.hasOwn(CIPHERS, s)).map((s) => CIPHERS[s]!);
      // As in Go, the list governs TLS 1.2; TLS 1.3 keeps its suites unless some are named.
      const tls13 = names.filter((n) => n.startsWith('TLS_'));
      const tls12 = names.filter((n) => !n.startsWith('TLS_'));
      ciphers = [...(tls13.length > 0 ? tls13 : [TLS13_DEFAULT]), ...tls12].join(':');
    }
    const curves = t.curve_preferences ?? [];
    tls = {
      cert: cert ?? {},
      key: key ?? {},
      clientCa,
      clientAuth: authType,
      clientAllowedSans: sans,
      minVersion,
      maxVersion,
      ciphers,
      honorCipherOrder: t.prefer_server_cipher_suites ?? true,
      ecdhCurve: curves.length > 0 ? curves.map((c) => CURVES[c]).join(':') : undefined,
    };
  }

  // ---- http_server_config
  const h = f.http_server_config;
  if (h?.http2 === true) {
    problems.push(
      'http_server_config.http2: true cannot be honoured: lookout serves HTTP/1.1 only (its header, timeout and connection limits are HTTP/1.1 limits; Prometheus falls back to HTTP/1.1 by itself); remove the line or set it false',
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(h?.headers ?? {})) {
    // Own keys only: `constructor` or `toString` is no header either.
    if (!Object.hasOwn(HEADERS, name)) {
      problems.push(
        `http_server_config.headers.${name}: this header cannot be configured; the toolkit allows ${Object.keys(HEADERS).join(', ')}`,
      );
      continue;
    }
    const allowed = HEADERS[name];
    if (allowed && !allowed.includes(value)) {
      problems.push(
        `http_server_config.headers.${name}: expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
      );
      continue;
    }
    if (/[\r\n\0]/.test(value)) {
      problems.push(`http_server_config.headers.${name}: a header value cannot hold a line break`);
      continue;
    }
    if (value !== '') headers[name] = value;
  }

  // ---- basic_auth_users
  const users = new Map<string, string>();
  for (const [user, hash] of Object.entries(f.basic_auth_users ?? {})) {
    const at = `basic_auth_users.${JSON.stringify(user)}`;
    if (user.includes(':')) problems.push(`${at}: a basic-auth user name cannot contain ":"`);
    else if (!BCRYPT.test(hash)) problems.push(`${at}: not a bcrypt hash; ${HASH_HOWTO}`);
    else users.set(user, hash);
  }

  // ---- rate_limit
  let rateLimit: WebConfig['rateLimit'];
  const r = f.rate_limit;
  if (r != null) {
    const interval = r.interval === undefined ? 0 : parseGoDuration(String(r.interval));
    if (interval === undefined) {
      problems.push('rate_limit.interval: expected a Go duration like "1s" or "100ms"');
    } else if (interval > 0) {
      if ((r.burst ?? 0) < 1) {
        problems.push('rate_limit.burst: must be at least 1 when an interval is set');
      }
      rateLimit = { intervalMs: interval, burst: r.burst ?? 0 };
    }
  }

  if (problems.length > 0) fail(problems);
  return { source: sourcePath, tls, headers, users, rateLimit };
}

/** Reads and validates a web-config file; throws ConfigError naming the file. */
export async function loadWebConfig(file: string): Promise<WebConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      code === 'ENOENT'
        ? 'no such file; check the --web.config.file path'
        : `cannot be read (${code ?? String(err)}); make it readable by the lookout user`,
    ]);
  }
  return parseWebConfig(text, file);
}

/** The PEM text of the certificate, key and client CA, read from their files now. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string;
}

/** Reads each PEM (file or inline); a file that cannot be read is a ConfigError naming its field. */
export async function readTlsMaterial(tls: TlsServerConfig, source: string): Promise<TlsMaterial> {
  const read = async (p: Pem, field: string): Promise<string> => {
    if (p.file === undefined) return p.inline ?? '';
    try {
      return await readFile(p.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(source, [
        `tls_server_config.${field}: ${p.file}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(err)})`}`,
      ]);
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(tls.cert, 'cert_file'),
    read(tls.key, 'key_file'),
    tls.clientCa ? read(tls.clientCa, 'client_ca_file') : Promise.resolve(undefined),
  ]);
  return { cert, key, ca };
}

/** The secure-context options for a TLS config and its PEM text. */
function secureOptions(tls: TlsServerConfig, m: TlsMaterial): SecureContextOptions {
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    ciphers: tls.ciphers,
    honorCipherOrder: tls.honorCipherOrder,
    ecdhCurve: tls.ecdhCurve,
  };
}

/** When the served certificate stops being valid (ms since the epoch), or undefined if unreadable. */
function notAfter(certPem: string): number | undefined {
  try {
    return notAfterSeconds(new X509Certificate(certPem)) * 1000;
  } catch {
    // Only the warning below depends on it; createSecureContext reports a bad certificate.
    return undefined;
  }
}

/**
 * Reads the certificate, key and client CA and builds a secure context from them, as
 * start-up and `lookout check` do: a file that cannot be read, a key that does not match
 * its certificate or PEM that does not parse is a ConfigError naming the field.
 */
export async function loadTls(
  tls: TlsServerConfig,
  source: string,
): Promise<{ options: SecureContextOptions; notAfter?: number }> {
  const m = await readTlsMaterial(tls, source);
  const options = secureOptions(tls, m);
  try {
    createSecureContext(options);
  } catch (err) {
    const why = errorText(err);
    const field =
      /ca|certificate authorit/i.test(why) && m.ca !== undefined
        ? 'client_ca_file'
        : /key/i.test(why)
          ? 'key_file'
          : 'cert_file';
    throw new ConfigError(source, [
      `tls_server_config.${field}: cannot be used (${why}); check that cert_file and key_file are PEM and belong together`,
    ]);
  }
  return { options, notAfter: notAfter(m.cert) };
}

/**
 * What `lookout check --web.config.file` does: the file parses and validates, and its
 * certificate, key and client CA load. Returns warnings (an expired certificate).
 */
export async function checkWebConfigFile(file: string): Promise<string[]> {
  const web = await loadWebConfig(file);
  if (!web.tls) return [];
  const { notAfter: until } = await loadTls(web.tls, web.source);
  return until !== undefined && until < Date.now()
    ? [`${file}: the certificate expired ${new Date(until).toISOString()}; clients will refuse it`]
    : [];
}
