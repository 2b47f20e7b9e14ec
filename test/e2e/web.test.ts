/**
 * The web faults end to end, on real parts (test/helpers/alertchain.ts): a real nginx
 * from Debian with stub_status, a TLS listener serving openssl-made certificates and an
 * access log in the shipped `lookout` log_format, watched by lookout (dist/) → Prometheus
 * → Alertmanager → SMTP + Slack sinks.
 *
 * 1. An expired certificate served (copied over the live one, nginx reloaded):
 *    TlsCertificateExpired critical, resolved when a valid one is back.
 * 2. 5xx traffic through nginx (real requests to a location answering 500, beside steady
 *    200s): HttpErrorRateHigh critical, resolved once good traffic brings the 5-minute
 *    share back under 2 %.
 * 3. nginx stopped: NginxDown critical, resolved after it starts again on the same ports.
 *
 * `for:` is scaled 1/60 (5m → 5 s); the rules' rate windows are not, so the 5xx share is
 * a real 5-minute share of what this test sent. Needs `npm run build`. About 3 minutes.
 */
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AlertChain } from '../helpers/alertchain.js';
import { makeTestPki, standardCerts, type StandardCerts } from '../helpers/certs.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { REPO, eventually, freePort, promQuery } from '../helpers/procs.js';

const LOG_FORMAT_FILE = join(REPO, 'deploy/nginx/lookout-log-format.conf');

/** Steady good traffic, requests per second: over the rules' 0.2/s floor. */
const GOOD_RPS = 5;
/** During the 5xx fault, one request in this many is a 500: a 5xx share far over 5 %. */
const BAD_SHARE = 3;
/** After the fix: good requests per second that bring the 5-minute share under 2 %. */
const FLUSH_RPS = 60;

describe('web faults end to end: nginx, certificates, access-log errors → email + Slack', () => {
  let chain: AlertChain;
  let nginx: Nginx;
  let certs: StandardCerts;
  let siteCert: string;
  let siteKey: string;
  let traffic: Traffic | undefined;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'nginx and the test PKI run as root here');
    const pki = await makeTestPki();
    certs = await standardCerts(pki);
    const tlsPort = await freePort();
    nginx = await startNginx({
      http: `include ${LOG_FORMAT_FILE};
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate {{dir}}/site.crt;
    ssl_certificate_key {{dir}}/site.key;
    access_log off;
    location / { return 200 "ok\\n"; }
  }`,
      accessLog: '{{dir}}/logs/access.log lookout',
      locations: `location = /ok { return 200 "ok\\n"; }
    location = /boom { return 500; }`,
      prepare: async (dir) => {
        await copyFile(certs.valid.fullchain, join(dir, 'site.crt'));
        await copyFile(certs.valid.key, join(dir, 'site.key'));
      },
    });
    siteCert = join(nginx.dir, 'site.crt');
    siteKey = join(nginx.dir, 'site.key');
    const fast = 'interval: 1s, timeout: 1s';
    chain = await AlertChain.start({
      name: 'web',
      forScale: 1 / 60,
      lookoutConfig: [
        'collectors:',
        // Only what these faults need: the machine is shared with other suites.
        '  host: { enabled: false }',
        '  filesystem: { enabled: false }',
        // nginx is not watched as a process here: other suites start and stop their own
        // nginx, and NginxDown stays quiet while HostWatchedProcessNotRunning covers a
        // watched nginx that is gone.
        `  processes: { ${fast}, watch: [prometheus] }`,
        `  nginx: { enabled: true, ${fast}, status_url: 'http://127.0.0.1:${nginx.port}/stub_status', status_timeout: 500ms }`,
        `  tls: { ${fast}, ca_file: '${pki.caFile}', targets: [{ address: '127.0.0.1:${tlsPort}', name: site }] }`,
        `  accesslog: { ${fast}, logs: [{ name: site, path: '${join(nginx.dir, 'logs/access.log')}', format: combined_timing }] }`,
        '',
      ].join('\n'),
    });
    traffic = startTraffic(nginx.url);
    await eventually(
      async () =>
        (await promQuery(chain.promUrl, 'log:lookout_http_requests:rate5m{log="site"} >= 0.2'))
          .length === 1,
      60_000,
      'Prometheus to see the steady traffic in the access log',
    );
  });

  after(async () => {
    await traffic?.stop();
    await chain?.stop();
    await nginx?.stop();
  });

  test(
    'an expired certificate served: TlsCertificateExpired critical, resolved',
    { timeout: 180_000 },
    async (t) => {
      await eventually(
        async () =>
          (await promQuery(chain.promUrl, 'lookout_tls_cert_verified{target="site"} == 1'))
            .length === 1,
        20_000,
        'lookout to verify the valid certificate first',
      );
      const faultAt = Date.now();
      await copyFile(certs.expired.fullchain, siteCert);
      await copyFile(certs.expired.key, siteKey);
      await nginx.reload();
      await chain.criticalCycle(t, {
        name: 'certificate expired',
        alertname: 'TlsCertificateExpired',
        labels: { target: 'site' },
        faultAt,
        whileFiring: async () => {
          const [s] = await promQuery(
            chain.promUrl,
            'lookout_tls_cert_expiry_timestamp_seconds{target="site"}',
          );
          assert.ok(s, 'the expired certificate still has its expiry series');
          assert.ok(Number(s.value[1]) < Date.now() / 1000, 'and it is in the past');
        },
        fix: async () => {
          await copyFile(certs.valid.fullchain, siteCert);
          await copyFile(certs.valid.key, siteKey);
          await nginx.reload();
        },
      });
    },
  );

  test(
    '5xx traffic through nginx: HttpErrorRateHigh critical, resolved',
    { timeout: 240_000 },
    async (t) => {
      const faultAt = Date.now();
      traffic!.badEvery = BAD_SHARE;
      await chain.criticalCycle(t, {
        name: '5xx traffic',
        alertname: 'HttpErrorRateHigh',
        labels: { log: 'site' },
        faultAt,
        whileFiring: async () => {
          const [s] = await promQuery(
            chain.promUrl,
            'sum(lookout_http_requests_total{log="site", code="500"})',
          );
          assert.ok(Number(s?.value[1]) > 0, 'lookout counted the 500s from the log');
          t.diagnostic(`500s counted while firing: ${s?.value[1]}`);
        },
        fix: async () => {
          traffic!.badEvery = 0;
          traffic!.rps = FLUSH_RPS;
        },
      });
      traffic!.rps = GOOD_RPS;
    },
  );

  test(
    'nginx stopped: NginxDown critical, resolved after it starts again',
    { timeout: 180_000 },
    async (t) => {
      const faultAt = Date.now();
      await nginx.stop();
      await chain.criticalCycle(t, {
        name: 'nginx stopped',
        alertname: 'NginxDown',
        faultAt,
        fix: () => nginx.restart(),
      });
    },
  );
});

interface Traffic {
  /** Requests per second. */
  rps: number;
  /** Every n-th request goes to /boom (a 500); 0: none. */
  badEvery: number;
  sent: { ok: number; boom: number; failed: number };
  stop(): Promise<void>;
}

/** Real requests to nginx at `rps`, until stop(); failures (nginx stopped) are counted, not thrown. */
function startTraffic(base: string): Traffic {
  let running = true;
  const traffic: Traffic = {
    rps: GOOD_RPS,
    badEvery: 0,
    sent: { ok: 0, boom: 0, failed: 0 },
    stop: async () => {
      running = false;
      await loop;
    },
  };
  const loop = (async () => {
    let n = 0;
    while (running) {
      const started = performance.now();
      const bad = traffic.badEvery > 0 && n++ % traffic.badEvery === 0;
      try {
        const res = await fetch(`${base}/${bad ? 'boom' : 'ok'}`, {
          signal: AbortSignal.timeout(2000),
        });
        await res.arrayBuffer();
        traffic.sent[bad ? 'boom' : 'ok']++;
      } catch {
        traffic.sent.failed++;
      }
      const wait = 1000 / traffic.rps - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return traffic;
}
