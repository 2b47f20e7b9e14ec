/**
 * A throwaway PKI made by the real openssl: a root CA, an intermediate, and server
 * certificates with chosen validity and names — valid, expiring soon, expired,
 * self-signed, the wrong host name, a chain through an intermediate that expires before
 * its leaf. For the TLS collector's, the probes' and the end-to-end tests; nginx serves
 * them (`ssl_certificate` = `fullchain`, `ssl_certificate_key` = `key`).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startNginx, type Nginx } from './nginx.js';
import { freePort, tempDir } from './procs.js';

const run = promisify(execFile);

export interface CertFiles {
  /** The certificate alone (PEM). */
  cert: string;
  /** Its private key (PEM). */
  key: string;
  /** The certificate followed by the intermediates that lead to the root: a fullchain.pem. */
  fullchain: string;
}

export interface IssueOptions {
  /** File name stem and subject CN. */
  name: string;
  /** DNS names and IP addresses for subjectAltName; default localhost and 127.0.0.1. */
  hosts?: string[];
  notBefore?: Date;
  notAfter: Date;
  /** Who signs it: the root, the intermediate, or the certificate itself. Default root. */
  issuer?: 'root' | 'intermediate' | 'self';
}

export interface TestPki {
  dir: string;
  /** The root CA certificate: what `ca_file` trusts. */
  caFile: string;
  root: CertFiles;
  intermediate: CertFiles;
  issue(opts: IssueOptions): Promise<CertFiles>;
}

/** The standard set every TLS test wants, each for localhost and 127.0.0.1. */
export interface StandardCerts {
  /** Signed by the root, 90 days left. */
  valid: CertFiles;
  /** Signed by the root, 10 days left. */
  expiring: CertFiles;
  /** Signed by the root, expired a day ago. */
  expired: CertFiles;
  /** Signs itself, 30 days left. */
  selfSigned: CertFiles;
  /** Signed by the root for wrong.example only. */
  wrongHost: CertFiles;
  /** Signed by the intermediate (30 days left) with 60 days left: the intermediate expires first. */
  chained: CertFiles;
}

const DAY = 86_400_000;

/** openssl ca's date form, YYYYMMDDHHMMSSZ. */
function asn1(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

async function openssl(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run('openssl', args, { cwd });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')}: ${e.stderr ?? e.message}`);
  }
}

function caConfig(dir: string): string {
  return `[ ca ]
default_ca = ca_default
[ ca_default ]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
commonName = supplied
`;
}

const CA_EXT = `[ ext ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

function leafExt(hosts: string[]): string {
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  return `[ ext ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${san}
`;
}

async function newKey(dir: string, name: string): Promise<string> {
  const key = join(dir, `${name}.key`);
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key],
    dir,
  );
  return key;
}

/** Makes a root CA (10 years) and an intermediate (30 days) in a new directory. */
export async function makeTestPki(dir?: string): Promise<TestPki> {
  const base = dir ?? (await tempDir('lookout-pki-'));
  // One openssl-ca database per signer; calls are made one at a time (see `queue`).
  const signers: Record<'root' | 'intermediate', string> = {
    root: join(base, 'ca-root'),
    intermediate: join(base, 'ca-intermediate'),
  };
  for (const d of Object.values(signers)) {
    await mkdir(join(d, 'newcerts'), { recursive: true });
    await writeFile(join(d, 'index.txt'), '');
    await writeFile(join(d, 'serial'), `1${Date.now().toString(16)}\n`);
    await writeFile(join(d, 'ca.cnf'), caConfig(d));
  }

  const rootKey = await newKey(base, 'root');
  const rootCert = join(base, 'root.crt');
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      rootKey,
      '-subj',
      '/CN=lookout test root CA',
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      rootCert,
    ],
    base,
  );
  const root: CertFiles = { cert: rootCert, key: rootKey, fullchain: rootCert };

  const sign = async (
    signer: 'root' | 'intermediate',
    issuer: CertFiles,
    name: string,
    ext: string,
    notBefore: Date,
    notAfter: Date,
  ): Promise<{ cert: string; key: string }> => {
    const key = await newKey(base, name);
    const csr = join(base, `${name}.csr`);
    const extFile = join(base, `${name}.ext`);
    const cert = join(base, `${name}.crt`);
    await writeFile(extFile, ext);
    await openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr], base);
    const ca = signers[signer];
    await openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-config',
        join(ca, 'ca.cnf'),
        '-cert',
        issuer.cert,
        '-keyfile',
        issuer.key,
        '-startdate',
        asn1(notBefore),
        '-enddate',
        asn1(notAfter),
        '-extfile',
        extFile,
        '-extensions',
        'ext',
        '-in',
        csr,
        '-out',
        cert,
      ],
      base,
    );
    return { cert, key };
  };

  const now = Date.now();
  const i = await sign(
    'root',
    root,
    'intermediate',
    CA_EXT,
    new Date(now - DAY),
    new Date(now + 30 * DAY),
  );
  const intermediate: CertFiles = { ...i, fullchain: i.cert };

  let queue: Promise<unknown> = Promise.resolve();
  const issueOne = async (opts: IssueOptions): Promise<CertFiles> => {
    const hosts = opts.hosts ?? ['localhost', '127.0.0.1'];
    const notBefore = opts.notBefore ?? new Date(Date.now() - 3_600_000);
    const fullchain = join(base, `${opts.name}.fullchain.pem`);
    if (opts.issuer === 'self') {
      const key = await newKey(base, opts.name);
      const cert = join(base, `${opts.name}.crt`);
      const days = Math.max(1, Math.round((opts.notAfter.getTime() - Date.now()) / DAY));
      await openssl(
        [
          'req',
          '-x509',
          '-new',
          '-key',
          key,
          '-subj',
          `/CN=${opts.name}`,
          '-days',
          String(days),
          '-addext',
          `subjectAltName=${hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',')}`,
          '-out',
          cert,
        ],
        base,
      );
      await writeFile(fullchain, await readFile(cert));
      return { cert, key, fullchain };
    }
    const signer = opts.issuer ?? 'root';
    const issuer = signer === 'root' ? root : intermediate;
    const c = await sign(signer, issuer, opts.name, leafExt(hosts), notBefore, opts.notAfter);
    const parts = [await readFile(c.cert, 'utf8')];
    if (signer === 'intermediate') parts.push(await readFile(intermediate.cert, 'utf8'));
    await writeFile(fullchain, parts.join(''));
    return { ...c, fullchain };
  };

  return {
    dir: base,
    caFile: rootCert,
    root,
    intermediate,
    // openssl ca appends to its database: one issue at a time.
    issue(opts) {
      const next = queue.then(() => issueOne(opts));
      queue = next.catch(() => undefined);
      return next;
    },
  };
}

/** The standard set of server certificates (see StandardCerts), issued on `pki`. */
export async function standardCerts(pki: TestPki): Promise<StandardCerts> {
  const now = Date.now();
  const inDays = (d: number) => new Date(now + d * DAY);
  return {
    valid: await pki.issue({ name: 'valid', notAfter: inDays(90) }),
    expiring: await pki.issue({ name: 'expiring', notAfter: inDays(10) }),
    expired: await pki.issue({
      name: 'expired',
      notBefore: inDays(-60),
      notAfter: inDays(-1),
    }),
    selfSigned: await pki.issue({ name: 'self-signed', notAfter: inDays(30), issuer: 'self' }),
    wrongHost: await pki.issue({
      name: 'wrong-host',
      hosts: ['wrong.example'],
      notAfter: inDays(90),
    }),
    chained: await pki.issue({ name: 'chained', notAfter: inDays(60), issuer: 'intermediate' }),
  };
}

/** `openssl x509 -enddate -noout` of a PEM file's first certificate, as Unix seconds. */
export async function opensslEndDate(certFile: string): Promise<number> {
  const out = await openssl(['x509', '-enddate', '-noout', '-in', certFile], '/');
  const m = /^notAfter=(.+)$/m.exec(out);
  if (!m) throw new Error(`openssl x509 -enddate: unexpected output ${out}`);
  const t = Date.parse(m[1]!.replace(/ +/g, ' '));
  if (Number.isNaN(t)) throw new Error(`openssl x509 -enddate: unreadable date ${m[1]}`);
  return t / 1000;
}

/** `openssl x509 -serial -noout`: the serial in hex, lower case, without leading zeros. */
export async function opensslSerial(certFile: string): Promise<string> {
  const out = await openssl(['x509', '-serial', '-noout', '-in', certFile], '/');
  return /^serial=([0-9A-Fa-f]+)$/m
    .exec(out)![1]!
    .toLowerCase()
    .replace(/^0+(?=.)/, '');
}

/**
 * An nginx `server` block serving `files` over TLS on 127.0.0.1:`port`, for
 * startNginx({ http }).
 */
export function tlsServerBlock(port: number, files: CertFiles): string {
  return `server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${files.fullchain};
    ssl_certificate_key ${files.key};
    access_log off;
    location / { return 200 "ok\\n"; }
  }
`;
}

/**
 * One real nginx serving each of `files` over TLS on its own 127.0.0.1 port (plus its
 * plain /stub_status port): `ports.expired` serves `files.expired`, and so on.
 */
export async function serveCerts<K extends string>(
  files: Record<K, CertFiles>,
): Promise<{ nginx: Nginx; ports: Record<K, number> }> {
  const ports = {} as Record<K, number>;
  for (const k of Object.keys(files) as K[]) ports[k] = await freePort();
  const http = (Object.keys(files) as K[]).map((k) => tlsServerBlock(ports[k], files[k])).join('');
  return { nginx: await startNginx({ http }), ports };
}
