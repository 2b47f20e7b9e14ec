/**
 * The pure parts of the TLS collector on literal input: OpenSSL's printed times, PEM
 * splitting, addresses, labels. (Real certificates, chains and servers: tls.test.ts.)
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { rootCertificates } from 'node:tls';
import {
  CertificateError,
  earliestNotAfter,
  leafNames,
  opensslTimeSeconds,
  parsePemChain,
} from '../src/lib/certificate.js';
import { expiryText, parseAddress, targetLabel, TARGET_LABEL_MAX } from '../src/collectors/tls.js';

describe('opensslTimeSeconds', () => {
  it('reads the time as X509Certificate.validTo prints it, in UTC', () => {
    assert.equal(opensslTimeSeconds('Mar  1 00:00:00 2027 GMT'), Date.UTC(2027, 2, 1) / 1000);
    assert.equal(
      opensslTimeSeconds('Dec 31 23:59:59 2049 GMT'),
      Date.UTC(2049, 11, 31, 23, 59, 59) / 1000,
    );
  });

  it('rejects anything else', () => {
    for (const t of ['', '2027-03-01T00:00:00Z', 'Foo  1 00:00:00 2027 GMT', 'Mar 1 2027'])
      assert.throws(() => opensslTimeSeconds(t), CertificateError, t);
  });
});

describe('parsePemChain', () => {
  // Two of Node's bundled CA certificates, as a two-certificate PEM file with noise around.
  const [a, b] = rootCertificates as [string, string];
  it('reads every CERTIFICATE block in file order, skipping the text between', () => {
    const chain = parsePemChain(`# comment\n${a}\nsubject=whatever\n${b}\n`);
    assert.equal(chain.length, 2);
    assert.equal(chain[0]!.fingerprint256, new X509Certificate(a).fingerprint256);
    assert.equal(chain[1]!.fingerprint256, new X509Certificate(b).fingerprint256);
    assert.equal(
      earliestNotAfter(chain),
      Math.min(...chain.map((c) => opensslTimeSeconds(c.validTo))),
    );
  });

  it('names the file when there is no certificate, or one does not parse', () => {
    assert.throws(() => parsePemChain('-----BEGIN PRIVATE KEY-----\n', '/x.pem'), {
      code: 'LOOKOUT_NO_CERTIFICATE',
      message: '/x.pem: no "BEGIN CERTIFICATE" block',
    });
    assert.throws(
      () => parsePemChain('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'f'),
      /f: certificate 1 does not parse/,
    );
  });

  it('names the leaf on one line, the serial in lower-case hex', () => {
    const names = leafNames(parsePemChain(a)[0]!);
    assert.doesNotMatch(names.subject, /\n/);
    assert.match(names.subject, /CN=/);
    assert.match(names.serial, /^[0-9a-f]+$/);
  });
});

describe('parseAddress and targetLabel', () => {
  it('reads host:port, [v6]:port and a bare host (443)', () => {
    assert.deepEqual(parseAddress('example.org:8443'), { host: 'example.org', port: 8443 });
    assert.deepEqual(parseAddress('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseAddress('example.org'), { host: 'example.org', port: 443 });
    for (const bad of ['', 'a:0', 'a:65536', 'a b:1', '::1:443', 'https://a/'])
      assert.equal(parseAddress(bad), undefined, bad);
  });

  it('labels a target by its name, else its address or file, capped', () => {
    assert.equal(targetLabel({ address: 'a:1', name: 'web' }), 'web');
    assert.equal(targetLabel({ address: 'a:1' }), 'a:1');
    assert.equal(targetLabel({ file: '/etc/x.pem' }), '/etc/x.pem');
    assert.equal(targetLabel({ file: `/${'x'.repeat(300)}` }).length, TARGET_LABEL_MAX);
  });
});

describe('expiryText (the day count lookout check prints)', () => {
  const now = Date.UTC(2026, 11, 5, 12) / 1000;
  const DAY = 86_400;
  it('rounds whole days as a person reads them, and says a past expiry as past', () => {
    const cases: [number, string][] = [
      [4.99, 'expires 2026-12-10 (in 5 days)'],
      [4.4, 'expires 2026-12-09 (in 4 days)'],
      [1, 'expires 2026-12-06 (in 1 day)'],
      [0.99, 'expires today (2026-12-06)'],
      [0, 'expires today (2026-12-05)'],
      [-0.5, 'expired today (2026-12-05)'],
      [-1, 'expired 1 day ago (2026-12-04)'],
      [-9, 'expired 9 days ago (2026-11-26)'],
      [-9.4, 'expired 9 days ago (2026-11-26)'],
      [-9.6, 'expired 10 days ago (2026-11-25)'],
    ];
    for (const [days, text] of cases)
      assert.equal(expiryText(now + days * DAY, now), text, `${days}`);
  });
});
