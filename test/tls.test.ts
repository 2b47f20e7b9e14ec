/**
 * The TLS collector against a real nginx serving certificates made by the real openssl
 * (valid, expiring in 10 days, expired, self-signed, wrong host name, a chain through an
 * intermediate that expires first), against the same certificates as files on disk, and
 * through a running lookout. Expiry is checked to the second against `openssl x509
 * -enddate`.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFile } from 'node:fs/promises';
import { createTlsCollector, tlsSchema, type TlsTarget } from '../src/collectors/tls.js';
import { parseConfig, ConfigError } from '../src/collectors/config.js';
import { createLogger } from '../src/lib/log.js';
import {
  makeTestPki,
  opensslEndDate,
  opensslSerial,
  standardCerts,
  serveCerts,
  type StandardCerts,
  type TestPki,
} from './helpers/certs.js';
import type { Nginx } from './helpers/nginx.js';
import { eventually, freePort, startLookout } from './helpers/procs.js';
import { seriesValue, findSamples, sampleValue } from './helpers/exposition.js';

const log = createLogger('error');

type Kind = keyof StandardCerts;
const KINDS: Kind[] = ['valid', 'expiring', 'expired', 'selfSigned', 'wrongHost', 'chained'];

let pki: TestPki;
let certs: StandardCerts;
let nginx: Nginx;
let ports: Record<Kind, number>;
let blackhole: Server;
let blackholePort: number;
const held: Socket[] = [];
let refusedPort: number;

/** Runs one refresh of a TLS collector with this config, as the runner would. */
async function refresh(config: Record<string, unknown>, timeoutMs = 20_000) {
  const collector = createTlsCollector(tlsSchema.parse(config), log);
  const registry = await collector.collect({
    signal: AbortSignal.timeout(timeoutMs),
    deadline: performance.now() + timeoutMs,
    log,
  });
  return { text: await registry.metrics(), collector };
}

const server = (kind: Kind, extra: Partial<{ server_name: string; name: string }> = {}) => ({
  address: `127.0.0.1:${ports[kind]}`,
  name: kind,
  server_name: 'localhost',
  ...extra,
});

before(async () => {
  pki = await makeTestPki();
  certs = await standardCerts(pki);
  ({ nginx, ports } = await serveCerts(certs));
  // Accepts TCP and never says a word: a TLS handshake to it never completes.
  blackhole = createServer((s) => held.push(s));
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  blackholePort = (blackhole.address() as { port: number }).port;
  refusedPort = await freePort();
});

after(async () => {
  for (const s of held) s.destroy();
  blackhole?.close();
  await nginx?.stop();
});

describe('TLS collector against nginx serving openssl-made certificates', () => {
  it('exports the earliest notAfter of each served chain, to the second, even expired or untrusted', async () => {
    const { text } = await refresh({
      ca_file: pki.caFile,
      targets: KINDS.map((k) => server(k)),
    });
    for (const k of KINDS) {
      const expected =
        k === 'chained'
          ? await opensslEndDate(pki.intermediate.cert)
          : await opensslEndDate(certs[k].cert);
      assert.equal(
        seriesValue(text, `lookout_tls_cert_expiry_timestamp_seconds{target="${k}"}`),
        expected,
        k,
      );
      assert.equal(seriesValue(text, `lookout_tls_probe_success{target="${k}"}`), 1, k);
    }
    // The intermediate expires before its leaf, and that earlier moment is what counts.
    assert.ok(
      (await opensslEndDate(pki.intermediate.cert)) < (await opensslEndDate(certs.chained.cert)),
    );
  });

  it('verifies trust against ca_file and the name against the certificate', async () => {
    const { text } = await refresh({
      ca_file: pki.caFile,
      targets: [
        ...KINDS.map((k) => server(k)),
        server('wrongHost', { name: 'wrong-host-by-its-name', server_name: 'wrong.example' }),
      ],
    });
    const verified = (t: string) => seriesValue(text, `lookout_tls_cert_verified{target="${t}"}`);
    assert.deepEqual(Object.fromEntries(KINDS.map((k) => [k, verified(k)])), {
      valid: 1,
      expiring: 1,
      expired: 0,
      selfSigned: 0,
      wrongHost: 0,
      chained: 1,
    });
    // The same certificate asked for by the name it carries verifies: the name was the fault.
    assert.equal(verified('wrong-host-by-its-name'), 1);
  });

  it('trusts nothing extra without ca_file: the test CA is unknown to Node', async () => {
    const { text } = await refresh({ targets: [server('valid')] });
    assert.equal(seriesValue(text, 'lookout_tls_cert_verified{target="valid"}'), 0);
    assert.equal(
      seriesValue(text, 'lookout_tls_cert_expiry_timestamp_seconds{target="valid"}'),
      await opensslEndDate(certs.valid.cert),
    );
  });

  it('names the leaf: subject, issuer and serial as openssl prints them', async () => {
    const { text } = await refresh({
      ca_file: pki.caFile,
      targets: [server('valid'), server('chained')],
    });
    assert.equal(
      sampleValue(text, 'lookout_tls_cert_info', {
        target: 'valid',
        subject: 'CN=valid',
        issuer: 'CN=lookout test root CA',
        serial: await opensslSerial(certs.valid.cert),
      }),
      1,
    );
    assert.equal(
      sampleValue(text, 'lookout_tls_cert_info', {
        target: 'chained',
        subject: 'CN=chained',
        issuer: 'CN=intermediate',
        serial: await opensslSerial(certs.chained.cert),
      }),
      1,
    );
    assert.equal(findSamples(text, 'lookout_tls_cert_info').length, 2);
  });

  it('the target label defaults to the address; the IP address is checked against the SAN', async () => {
    const address = `127.0.0.1:${ports.valid}`;
    const { text } = await refresh({ ca_file: pki.caFile, targets: [{ address }] });
    assert.equal(seriesValue(text, `lookout_tls_cert_verified{target="${address}"}`), 1);
  });

  it('a blackholed target costs only its own timeout; a refused one fails at once; the others stay', async () => {
    // One probe at a time and a refresh deadline of 6 s: had the blackhole cost more than
    // its own 1 s, the targets queued after it would be skipped for lack of time.
    const targets: TlsTarget[] = [
      { address: `127.0.0.1:${blackholePort}`, name: 'blackhole' },
      { address: `127.0.0.1:${refusedPort}`, name: 'refused' },
      ...KINDS.map((k) => server(k)),
    ];
    const { text, collector } = await refresh(
      { ca_file: pki.caFile, concurrency: 1, target_timeout: '1s', targets },
      6000,
    );
    assert.equal(seriesValue(text, 'lookout_tls_probe_success{target="blackhole"}'), 0);
    assert.equal(seriesValue(text, 'lookout_tls_probe_success{target="refused"}'), 0);
    for (const t of ['blackhole', 'refused']) {
      assert.equal(
        seriesValue(text, `lookout_tls_cert_expiry_timestamp_seconds{target="${t}"}`),
        undefined,
      );
      assert.equal(seriesValue(text, `lookout_tls_cert_verified{target="${t}"}`), undefined);
    }
    for (const k of KINDS) {
      assert.equal(seriesValue(text, `lookout_tls_probe_success{target="${k}"}`), 1, k);
      assert.ok(seriesValue(text, `lookout_tls_cert_expiry_timestamp_seconds{target="${k}"}`), k);
    }
    const seen = new Map(collector.lastSeen()!.map((s) => [s.target, s.result.status]));
    assert.equal(seen.get('blackhole'), 'timeout');
    assert.equal(seen.get('refused'), 'failed');
  });

  it('checkTargets says per target whether it answers and verifies', async () => {
    const collector = createTlsCollector(
      tlsSchema.parse({
        ca_file: pki.caFile,
        target_timeout: '1s',
        targets: [
          server('valid'),
          server('expired'),
          { address: `127.0.0.1:${refusedPort}`, name: 'refused' },
        ],
      }),
      log,
    );
    const checks = await collector.checkTargets!({
      signal: AbortSignal.timeout(10_000),
      deadline: performance.now() + 10_000,
      log,
    });
    const by = new Map(checks.map((c) => [c.target, c]));
    assert.equal(by.get('valid')?.ok, true);
    assert.match(by.get('valid')!.detail, /^verified, expires \d{4}-\d\d-\d\d \(in 90 days\)$/);
    assert.equal(by.get('expired')?.ok, false);
    assert.match(by.get('expired')!.detail, /CERT_HAS_EXPIRED/);
    assert.equal(by.get('refused')?.ok, false);
    assert.match(by.get('refused')!.detail, /ECONNREFUSED/);
  });
});

describe('TLS collector on certificate files', () => {
  it('reads a fullchain.pem: earliest notAfter, verified against ca_file', async () => {
    const leafOnly = join(pki.dir, 'chained-leaf-only.pem');
    await writeFile(leafOnly, await readFile(certs.chained.cert));
    const { text } = await refresh({
      ca_file: pki.caFile,
      targets: [
        { file: certs.chained.fullchain, name: 'fullchain' },
        { file: leafOnly, name: 'leaf-only' },
        { file: certs.valid.cert, name: 'valid' },
        { file: certs.expired.cert, name: 'expired' },
        { file: certs.selfSigned.cert, name: 'self-signed' },
        { file: join(pki.dir, 'missing.pem'), name: 'missing' },
      ],
    });
    const v = (m: string, t: string) => seriesValue(text, `${m}{target="${t}"}`);
    const expiry = 'lookout_tls_cert_expiry_timestamp_seconds';
    assert.equal(v(expiry, 'fullchain'), await opensslEndDate(pki.intermediate.cert));
    assert.equal(v(expiry, 'leaf-only'), await opensslEndDate(certs.chained.cert));
    assert.equal(v(expiry, 'valid'), await opensslEndDate(certs.valid.cert));
    assert.equal(v(expiry, 'expired'), await opensslEndDate(certs.expired.cert));
    assert.equal(v(expiry, 'self-signed'), await opensslEndDate(certs.selfSigned.cert));
    const verified = 'lookout_tls_cert_verified';
    assert.equal(v(verified, 'fullchain'), 1);
    assert.equal(v(verified, 'valid'), 1);
    assert.equal(v(verified, 'leaf-only'), 0, 'no intermediate: the chain does not reach the root');
    assert.equal(v(verified, 'expired'), 0);
    assert.equal(v(verified, 'self-signed'), 0);
    assert.equal(v('lookout_tls_probe_success', 'missing'), 0);
    assert.equal(v(expiry, 'missing'), undefined);
    assert.equal(v('lookout_tls_probe_success', 'fullchain'), 1);
  });

  it('a file that goes missing: its expiry, verified and info series go, and it is logged once per absence, naming target and path', async () => {
    const file = join(pki.dir, 'comes-and-goes.pem');
    await writeFile(file, await readFile(certs.valid.cert));
    const lines: string[] = [];
    const captured = createLogger('info', {}, (line) => lines.push(line));
    const collector = createTlsCollector(
      tlsSchema.parse({
        ca_file: pki.caFile,
        targets: [
          { file, name: 'comes-and-goes' },
          { file: certs.valid.cert, name: 'stays' },
        ],
      }),
      captured,
    );
    const refreshOnce = async () =>
      (
        await collector.collect!({
          signal: AbortSignal.timeout(20_000),
          deadline: performance.now() + 20_000,
          log: captured,
        })
      ).metrics();
    const series = (text: string, target: string) =>
      findSamples(text)
        .filter((s) => s.labels.target === target)
        .map((s) => `${s.name} ${s.value}`);
    const missingLines = () => lines.filter((l) => l.includes('certificate file missing'));
    const present = [
      'lookout_tls_probe_success 1',
      `lookout_tls_cert_expiry_timestamp_seconds ${await opensslEndDate(certs.valid.cert)}`,
      'lookout_tls_cert_verified 1',
      'lookout_tls_cert_info 1',
    ];

    assert.deepEqual(series(await refreshOnce(), 'comes-and-goes'), present);
    assert.deepEqual(missingLines(), []);

    await rm(file);
    const gone = await refreshOnce();
    assert.deepEqual(series(gone, 'comes-and-goes'), ['lookout_tls_probe_success 0']);
    assert.deepEqual(series(gone, 'stays'), present, 'the other target keeps its series');
    assert.equal(missingLines().length, 1);
    assert.match(missingLines()[0]!, /level=warn/);
    assert.match(missingLines()[0]!, /target=comes-and-goes/);
    assert.ok(missingLines()[0]!.includes(`path=${file}`), missingLines()[0]);
    assert.match(missingLines()[0]!, /ENOENT/);

    await refreshOnce();
    await refreshOnce();
    assert.equal(missingLines().length, 1, 'not again while it stays missing');

    await writeFile(file, await readFile(certs.valid.cert));
    assert.deepEqual(series(await refreshOnce(), 'comes-and-goes'), present);
    assert.ok(lines.some((l) => l.includes('certificate file there again')));

    await rm(file);
    await refreshOnce();
    assert.equal(missingLines().length, 2, 'once more after it came back and went again');
  });

  it("lookout check's day count: 4.99 days is in 5 days, 9 days past is expired 9 days ago, within a day is today", async () => {
    const DAY = 86_400_000;
    const now = Date.now();
    const issue = (name: string, notAfter: number) =>
      pki.issue({ name, notBefore: new Date(now - 60 * DAY), notAfter: new Date(notAfter) });
    const files = {
      soon: await issue('check-soon', now + 4.99 * DAY),
      past: await issue('check-past', now - 9.2 * DAY),
      laterToday: await issue('check-later-today', now + 3 * 3_600_000),
      earlierToday: await issue('check-earlier-today', now - 3 * 3_600_000),
    };
    const collector = createTlsCollector(
      tlsSchema.parse({
        ca_file: pki.caFile,
        targets: Object.entries(files).map(([name, f]) => ({ file: f.fullchain, name })),
      }),
      log,
    );
    const checks = await collector.checkTargets!({
      signal: AbortSignal.timeout(20_000),
      deadline: performance.now() + 20_000,
      log,
    });
    const detail = new Map(checks.map((c) => [c.target, c.detail]));
    const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    assert.equal(detail.get('soon'), `verified, expires ${date(now + 4.99 * DAY)} (in 5 days)`);
    assert.match(detail.get('past')!, /; expired 9 days ago \(\d{4}-\d\d-\d\d\)$/);
    assert.ok(detail.get('past')!.endsWith(`(${date(now - 9.2 * DAY)})`), detail.get('past'));
    assert.match(detail.get('laterToday')!, /^verified, expires today \(/);
    assert.match(detail.get('earlierToday')!, /; expired today \(/);
  });

  it('an unreadable ca_file fails the refresh, naming the setting', async () => {
    await assert.rejects(
      refresh({ ca_file: join(pki.dir, 'nope.pem'), targets: [server('valid')] }),
      /collectors\.tls\.ca_file: cannot read .*nope\.pem/,
    );
  });
});

describe('TLS config', () => {
  it('names the field and the fix for a wrong target', () => {
    const problems = (tls: unknown) => {
      try {
        parseConfig({ collectors: { tls } }, 'lookout.yml');
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems;
      }
    };
    assert.match(
      problems({ targets: [{ address: 'a:1', file: '/x' }] }).join('\n'),
      /collectors\.tls\.targets\[0\].*set exactly one of address or file/,
    );
    assert.match(
      problems({ targets: [{ address: 'example.org:99999' }] }).join('\n'),
      /collectors\.tls\.targets\[0\]\.address.*host:port/,
    );
    assert.match(
      problems({ targets: [{ address: 'a:443' }, { address: 'b:443', name: 'a:443' }] }).join('\n'),
      /collectors\.tls\.targets\[1\].*a second target named "a:443"/,
    );
  });
});

describe('TLS collector in a running lookout', () => {
  it('serves the certificate series on /metrics, the collector succeeding with a dead target', async () => {
    const lookout = await startLookout(
      `collectors:
  tls:
    interval: 2s
    timeout: 2s
    target_timeout: 1s
    ca_file: ${pki.caFile}
    targets:
      - { address: "127.0.0.1:${ports.expired}", server_name: localhost, name: expired }
      - { address: "127.0.0.1:${blackholePort}", name: blackhole }
      - { file: ${certs.chained.fullchain}, name: fullchain }
`,
    );
    try {
      const text = await eventually(
        async () => {
          const t = await (await fetch(`${lookout.url}/metrics`)).text();
          return seriesValue(t, 'lookout_tls_probe_success{target="blackhole"}') !== undefined && t;
        },
        15_000,
        'the tls collector to report',
      );
      assert.equal(seriesValue(text, 'lookout_collector_success{collector="tls"}'), 1);
      assert.equal(
        seriesValue(text, 'lookout_tls_cert_expiry_timestamp_seconds{target="expired"}'),
        await opensslEndDate(certs.expired.cert),
      );
      assert.equal(seriesValue(text, 'lookout_tls_cert_verified{target="expired"}'), 0);
      assert.equal(seriesValue(text, 'lookout_tls_cert_verified{target="fullchain"}'), 1);
      assert.equal(seriesValue(text, 'lookout_tls_probe_success{target="blackhole"}'), 0);
    } finally {
      await lookout.stop();
    }
  });
});

describe('https probe targets', () => {
  it("have their certificate watched by the TLS collector under the probe's target label", async () => {
    const url = `https://localhost:${ports.valid}/`;
    const lookout = await startLookout(
      `collectors:
  tls:
    interval: 2s
    timeout: 2s
    ca_file: ${pki.caFile}
  probes:
    interval: 2s
    timeout: 2s
    targets:
      - { kind: http, url: "${url}" }
      - { kind: http, url: "https://localhost:${ports.expired}/", name: shop }
`,
    );
    try {
      const text = await eventually(
        async () => {
          const t = await (await fetch(`${lookout.url}/metrics`)).text();
          return seriesValue(t, 'lookout_tls_cert_verified{target="shop"}') !== undefined && t;
        },
        15_000,
        'the tls collector to report the probes’ certificates',
      );
      assert.equal(
        seriesValue(text, `lookout_tls_cert_expiry_timestamp_seconds{target="${url}"}`),
        await opensslEndDate(certs.valid.cert),
      );
      assert.equal(seriesValue(text, `lookout_tls_cert_verified{target="${url}"}`), 1);
      assert.equal(
        seriesValue(text, 'lookout_tls_cert_expiry_timestamp_seconds{target="shop"}'),
        await opensslEndDate(certs.expired.cert),
      );
      assert.equal(seriesValue(text, 'lookout_tls_cert_verified{target="shop"}'), 0);
    } finally {
      await lookout.stop();
    }
  });

  it('are added once, not over a server or label the TLS targets already list, and not with TLS off', () => {
    const tlsTargets = (doc: unknown) =>
      (
        parseConfig(doc).collectors.tls as unknown as {
          targets: { address?: string; name?: string }[];
        }
      ).targets;
    const probes = {
      targets: [
        { kind: 'http', url: 'https://shop.example:8443/health' },
        { kind: 'http', url: 'https://api.example/', name: 'api' },
        { kind: 'http', url: 'http://plain.example/' },
        { kind: 'tcp', address: 'db.example:5432' },
      ],
    };
    assert.deepEqual(tlsTargets({ collectors: { probes } }), [
      { address: 'shop.example:8443', name: 'https://shop.example:8443/health' },
      { address: 'api.example:443', name: 'api' },
    ]);
    assert.deepEqual(
      tlsTargets({
        collectors: {
          probes,
          tls: {
            targets: [
              { address: 'api.example' },
              { file: '/etc/ssl/x.pem', name: 'https://shop.example:8443/health' },
            ],
          },
        },
      }),
      [
        { address: 'api.example' },
        { file: '/etc/ssl/x.pem', name: 'https://shop.example:8443/health' },
      ],
    );
    assert.deepEqual(tlsTargets({ collectors: { probes, tls: { enabled: false } } }), []);
  });
});
