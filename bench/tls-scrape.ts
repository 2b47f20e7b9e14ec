/**
 * TLS scrape latency, lookout against node_exporter, side by side in one run with the
 * SAME web-config file (TLS with a server certificate made by openssl, and bcrypt basic
 * auth): the target is lookout's p99 ≤ node_exporter's p50. curl is the client for both
 * (--cacert and -u; one process per round of 250 sequential scrapes, so each round has one
 * handshake and 249 requests on its kept-alive connection: Prometheus keeps its connection
 * to a target open across scrapes — lookout's keep_alive_timeout, 65 s, outlasts any
 * scrape interval up to a minute — so a handshake is a rare event in its scrape loop).
 * Scrapes that each pay a handshake are measured apart, below.
 * lookout runs as `npm start` runs it (bin/lookout).
 *
 *   npm run bench:tls                    # 1000 scrapes each
 *   BENCH_SCRAPES=200 npm run bench:tls  # a quick look
 */
import { makeTlsFiles, startLookoutWeb, writeTlsAuthWebConfig } from '../test/helpers/tls-files.js';
import {
  curlTimes,
  latency,
  mb,
  quantile,
  rssBytes,
  setting,
  startedAll,
  startNodeExporterWeb,
  type Target,
} from './lib.js';

const SCRAPES = setting('BENCH_SCRAPES', 1000, 20);
const HANDSHAKES = setting('BENCH_HANDSHAKES', 200, 20);
/** Scrapes per connection in the main figures. */
const ROUND = 250;
const USER = 'prometheus';
const PASSWORD = 'bench-password';

async function main(): Promise<void> {
  const files = await makeTlsFiles();
  const webConfig = await writeTlsAuthWebConfig(files, USER, PASSWORD);
  const curlArgs = ['--cacert', files.ca, '-u', `${USER}:${PASSWORD}`];
  const lookout = await startLookoutWeb(webConfig, { ca: files.ca });
  const nodeExporter = await startNodeExporterWeb(webConfig, curlArgs);
  const targets: Target[] = [
    { name: 'lookout', proc: lookout },
    { name: 'node_exporter', proc: nodeExporter },
  ];
  try {
    await startedAll();
    console.log(
      `TLS + basic auth, same web-config file, ${SCRAPES} sequential scrapes each (curl, ${ROUND} per connection)`,
    );
    const figures = await latency(targets, SCRAPES, { curlArgs: () => curlArgs, round: ROUND });
    for (const [name, f] of Object.entries(figures)) {
      console.log(
        `  ${name.padEnd(14)} p50 ${f.p50.toFixed(2)} ms  p90 ${f.p90.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms  max ${f.max.toFixed(2)} ms`,
      );
    }
    const l = figures.lookout!;
    const n = figures.node_exporter!;
    const ratio = l.p99 / n.p50;
    console.log(
      `  lookout p99 / node_exporter p50 = ${ratio.toFixed(2)}  (target ≤ 1: ${ratio <= 1 ? 'met' : 'MISSED'})`,
    );
    // Each round of the figures above opens one connection: its first scrape carries the
    // TLS handshake (0.4 % of the samples). Shown apart: scrapes that each open a new
    // connection (Connection: close), interleaved.
    console.log(`Scrapes on a new connection each (TLS handshake included), ${HANDSHAKES} each`);
    const fresh = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let done = 0; done < HANDSHAKES; done += 20) {
      for (const t of targets) {
        fresh
          .get(t.name)!
          .push(
            ...(await curlTimes(`${t.proc.url}/metrics`, 20, [
              ...curlArgs,
              '-H',
              'Connection: close',
            ])),
          );
      }
    }
    for (const [name, xs] of fresh) {
      xs.sort((a, b) => a - b);
      console.log(
        `  ${name.padEnd(14)} p50 ${quantile(xs, 0.5).toFixed(2)} ms  p99 ${quantile(xs, 0.99).toFixed(2)} ms`,
      );
    }
    for (const t of targets) {
      console.log(`  ${t.name.padEnd(14)} RSS ${mb(await rssBytes(t.proc.child.pid!))} MB`);
    }
  } finally {
    await lookout.stop();
    await nodeExporter.stop();
  }
}

await main();
