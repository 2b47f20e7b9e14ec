/**
 * Certificates for the web-config tests and the TLS bench, made by the real openssl:
 * a server CA and a client CA, server certificates for 127.0.0.1 (one expired), and
 * client certificates from the trusted CA and from a stranger.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './procs.js';

const run = promisify(execFile);

export interface Pair {
  cert: string;
  key: string;
}

export interface TlsFiles {
  dir: string;
  /** The CA that signs the server certificates: what clients pass as --cacert. */
  ca: string;
  server: Pair;
  /** Same CA, same name, not valid since 2020. */
  expired: Pair;
  clientCa: string;
  client: Pair;
  /** Signed by a CA the server does not trust. */
  stranger: Pair;
}

async function ca(dir: string, name: string): Promise<Pair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    pair.key,
    '-out',
    pair.cert,
    '-days',
    '3650',
    '-subj',
    `/CN=${name}`,
  ]);
  return pair;
}

/**
 * A leaf signed by `issuer` through `openssl ca`, which (unlike `x509 -req` in OpenSSL
 * 3.0) takes explicit validity dates, so an expired certificate is one command too.
 */
export async function issue(
  dir: string,
  issuer: Pair,
  name: string,
  opts: { san?: string; client?: boolean; expired?: boolean } = {},
): Promise<Pair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const san = opts.san ?? 'IP:127.0.0.1,DNS:localhost';
  await run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    pair.key,
    '-out',
    csr,
    '-subj',
    `/CN=${name}`,
    '-addext',
    `subjectAltName=${san}`,
  ]);
  const db = join(dir, `${name}.db`);
  await writeFile(`${db}.index`, '');
  await writeFile(
    `${db}.cnf`,
    [
      '[ca]',
      'default_ca = d',
      '[d]',
      `database = ${db}.index`,
      `new_certs_dir = ${dir}`,
      `serial = ${db}.serial`,
      'default_md = sha256',
      'policy = p',
      'copy_extensions = copy',
      'unique_subject = no',
      `x509_extensions = ext`,
      '[p]',
      'commonName = supplied',
      '[ext]',
      'basicConstraints = CA:FALSE',
      `extendedKeyUsage = ${opts.client ? 'clientAuth' : 'serverAuth'}`,
    ].join('\n'),
  );
  await writeFile(`${db}.serial`, `${Date.now().toString(16).padStart(16, '0')}\n`);
  const dates = opts.expired
    ? ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z']
    : ['-days', '30'];
  await run('openssl', [
    'ca',
    '-batch',
    '-notext',
    '-config',
    `${db}.cnf`,
    '-cert',
    issuer.cert,
    '-keyfile',
    issuer.key,
    '-in',
    csr,
    '-out',
    pair.cert,
    ...dates,
  ]);
  return pair;
}

export async function makeTlsFiles(): Promise<TlsFiles> {
  const dir = await tempDir('lookout-tls-');
  const [serverCa, clientCa, strangerCa] = await Promise.all([
    ca(dir, 'server-ca'),
    ca(dir, 'client-ca'),
    ca(dir, 'stranger-ca'),
  ]);
  const [server, expired, client, stranger] = await Promise.all([
    issue(dir, serverCa, 'server'),
    issue(dir, serverCa, 'server-expired', { expired: true }),
    issue(dir, clientCa, 'prometheus', { client: true, san: 'DNS:prometheus' }),
    issue(dir, strangerCa, 'stranger', { client: true, san: 'DNS:prometheus' }),
  ]);
  return { dir, ca: serverCa.cert, server, expired, clientCa: clientCa.cert, client, stranger };
}
