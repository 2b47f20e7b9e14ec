/**
 * Certificates for the web-config tests and the TLS bench, made by the real openssl:
 * a server CA and a client CA, server certificates for 127.0.0.1 (one expired), and
 * client certificates from the trusted CA and from a stranger.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, eventually, freePort, tempDir, type Running } from './procs.js';

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

/** A bcrypt hash of `password` as users make it: htpasswd, as the toolkit's docs say. */
export async function bcryptHash(password: string): Promise<string> {
  const { stdout } = await run('htpasswd', ['-nbBC', '10', '', password]);
  return stdout.trim().replace(/^:/, '');
}

/**
 * A web-config file in `files.dir` serving the server certificate over TLS with one
 * basic-auth user: what the abuse test and the TLS and abuse benches give lookout and
 * node_exporter alike. Returns its path.
 */
export async function writeTlsAuthWebConfig(
  files: TlsFiles,
  user: string,
  password: string,
): Promise<string> {
  const path = join(files.dir, 'web.yml');
  await writeFile(
    path,
    `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  ${user}: ${await bcryptHash(password)}\n`,
  );
  return path;
}

/**
 * lookout serving with a web-config file (bin/lookout, as `npm start` runs it); `ca`
 * says it serves TLS (the url is https).
 */
export async function startLookoutWeb(
  webConfig: string,
  opts: { ca?: string; configYaml?: string } = {},
): Promise<Running & { webConfig: string }> {
  const dir = await tempDir('lookout-web-');
  const port = await freePort();
  const config = join(dir, 'lookout.yml');
  await writeFile(config, opts.configYaml ?? '');
  const child = spawn(
    join(REPO, 'bin/lookout'),
    [
      'serve',
      '--config',
      config,
      '--web.config.file',
      webConfig,
      '--web.listen-address',
      `127.0.0.1:${port}`,
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const url = `${opts.ca ? 'https' : 'http'}://127.0.0.1:${port}`;
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return exited;
  };
  try {
    // Ready when it says it listens: a check through the door would need credentials
    // some configurations give no client.
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${out}`);
        return /msg=listening/.test(out);
      },
      20_000,
      `lookout with ${webConfig} listening\n${out}`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, port, dir, output: () => out, stop, webConfig };
}
