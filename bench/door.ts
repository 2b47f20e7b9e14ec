/**
 * What basic auth costs a request, lookout against node_exporter with the same web-config
 * file (TLS, bcrypt cost 10, made by htpasswd): a wrong user, a wrong password, a right
 * password not yet verified (a user not seen before), and a right password verified
 * before (answered from the cache both keep). A wrong user is checked against a hash too,
 * so it should cost what a wrong password costs: timing must not tell a caller which
 * users exist. Each request is one curl on a new connection; its time is from the end of
 * the TLS handshake to the first byte of the answer (`time_starttransfer -
 * time_appconnect`), so the handshake is left out. BENCH_ROUNDS rounds, interleaved.
 *
 *   npm run bench:door
 *   BENCH_ROUNDS=50 npm run bench:door
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { bcryptHash, makeTlsFiles, startLookoutWeb } from '../test/helpers/tls-files.js';
import type { Running } from '../test/helpers/procs.js';
import { quantile, setting, startedAll, startNodeExporterWeb } from './lib.js';

const run = promisify(execFile);
const ROUNDS = setting('BENCH_ROUNDS', 20, 2);
const USER = 'prometheus';
const PASSWORD = 'bench-password';

const KINDS = [
  'wrong user',
  'wrong password',
  'right, not yet verified',
  'right, verified',
] as const;
type Kind = (typeof KINDS)[number];

/** ms from the end of the TLS handshake to the first byte; the HTTP status must be `want`. */
async function timed(url: string, ca: string, user: string, pw: string, want: number) {
  const { stdout } = await run('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{time_appconnect} %{time_starttransfer}',
    '--cacert',
    ca,
    '-u',
    `${user}:${pw}`,
    url,
  ]);
  const [code, tls, first] = stdout.split(' ').map(Number);
  if (code !== want) throw new Error(`${url} as ${user}: HTTP ${code}, expected ${want}`);
  return (first! - tls!) * 1000;
}

async function main(): Promise<void> {
  const files = await makeTlsFiles();
  // Every round's "not yet verified" user has a hash of its own, so no cache holds it.
  const fresh = Array.from({ length: ROUNDS * 2 }, (_, i) => `fresh-${i}`);
  const users = [USER, ...fresh];
  const hashes = await Promise.all(users.map(() => bcryptHash(PASSWORD)));
  const webConfig = join(files.dir, 'web-door.yml');
  await writeFile(
    webConfig,
    `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n${users
      .map((u, i) => `  ${u}: ${hashes[i]}\n`)
      .join('')}`,
  );
  const lookout = await startLookoutWeb(webConfig, { ca: files.ca });
  const nodeExporter = await startNodeExporterWeb(webConfig, [
    '--cacert',
    files.ca,
    '-u',
    `${USER}:${PASSWORD}`,
  ]);
  const targets: Array<[string, Running, string[]]> = [
    ['lookout', lookout, fresh.slice(0, ROUNDS)],
    ['node_exporter', nodeExporter, fresh.slice(ROUNDS)],
  ];
  try {
    await startedAll();
    const times = new Map<string, Map<Kind, number[]>>(
      targets.map(([name]) => [name, new Map(KINDS.map((k) => [k, []]))]),
    );
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, proc, own] of targets) {
        const url = `${proc.url}/metrics`;
        const t = times.get(name)!;
        t.get('wrong user')!.push(await timed(url, files.ca, `mallory-${i}`, PASSWORD, 401));
        t.get('wrong password')!.push(await timed(url, files.ca, USER, `wrong-${i}`, 401));
        t.get('right, not yet verified')!.push(await timed(url, files.ca, own[i]!, PASSWORD, 200));
        t.get('right, verified')!.push(await timed(url, files.ca, own[i]!, PASSWORD, 200));
      }
    }
    console.log(
      `basic auth over TLS, bcrypt cost 10, ${ROUNDS} rounds; ms from the TLS handshake's end to the first byte, one connection per request`,
    );
    console.log(`${''.padEnd(26)}${targets.map(([n]) => n.padEnd(30)).join('')}`);
    for (const k of KINDS) {
      const cells = targets.map(([name]) => {
        const xs = [...times.get(name)!.get(k)!].sort((a, b) => a - b);
        return `p50 ${quantile(xs, 0.5).toFixed(1)}  max ${xs.at(-1)!.toFixed(1)}`.padEnd(30);
      });
      console.log(`${k.padEnd(26)}${cells.join('')}`);
    }
    for (const [name] of targets) {
      const p50 = (k: Kind) =>
        quantile(
          [...times.get(name)!.get(k)!].sort((a, b) => a - b),
          0.5,
        );
      console.log(
        `${name}: wrong user / wrong password = ${(p50('wrong user') / p50('wrong password')).toFixed(2)}, ` +
          `not yet verified / wrong password = ${(p50('right, not yet verified') / p50('wrong password')).toFixed(2)} ` +
          `(the same bcrypt work each: near 1)`,
      );
    }
  } finally {
    await lookout.stop();
    await nodeExporter.stop();
  }
}

await main();
