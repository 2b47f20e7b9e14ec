/**
 * The web-config parser on literal files — the exporter toolkit's own test files where
 * it has them — the Go → OpenSSL cipher names against this Node's OpenSSL, and the auth
 * parts (Basic parsing, the credential check with the real bcrypt addon, the token bucket,
 * the rate-limited log).
 */
import assert from 'node:assert/strict';
import { createSecureContext, getCiphers } from 'node:tls';
import { describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { ConfigError } from '../src/config/load.js';
import { BasicAuth, parseBasic, TokenBucket, type Bcrypt } from '../src/exporter/auth.js';
import { parseGoDuration, parseWebConfig } from '../src/exporter/webconfig.js';
import { createLogger } from '../src/lib/log.js';
import { RateLimitedLog } from '../src/lib/ratelog.js';

const FILE = '/etc/lookout/web.yml';
const HASH = '$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu';

/** The problems a text is refused with, one per line, without the file prefix. */
function problems(text: string): string[] {
  try {
    parseWebConfig(text, FILE);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
    return err.problems;
  }
  assert.fail('accepted');
}

describe('parseWebConfig: files written for node_exporter', () => {
  it('an empty file is plain HTTP without auth, as in the toolkit', () => {
    const c = parseWebConfig('', FILE);
    assert.equal(c.tls, undefined);
    assert.equal(c.users.size, 0);
    assert.deepEqual(parseWebConfig('# nothing\n', FILE).headers, {});
  });

  it('TLS files resolve against the web-config file directory; defaults are the toolkit’s', () => {
    const c = parseWebConfig(
      'tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n',
      FILE,
    );
    assert.deepEqual(c.tls?.cert, { file: '/etc/lookout/server.crt' });
    assert.deepEqual(c.tls?.key, { file: '/abs/server.key' });
    assert.equal(c.tls?.clientAuth, 'NoClientCert');
    assert.equal(c.tls?.minVersion, 'TLSv1.2');
    assert.equal(c.tls?.maxVersion, 'TLSv1.3');
    assert.equal(c.tls?.honorCipherOrder, true);
  });

  it('web_config_users.good.yml: basic_auth_users with $2y$ hashes', () => {
    const c = parseWebConfig(
      `tls_server_config:
  cert_file: "server.crt"
  key_file: "server.key"
basic_auth_users:
  alice: $2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby
  bob: $2y$18$4VeFDzXIoPHKnKTU3O3GH.N.vZu06CVqczYZ8WvfzrddFU6tGqjR.
  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu
`,
      FILE,
    );
    assert.deepEqual([...c.users.keys()], ['alice', 'bob', 'carol']);
  });

  it('web_config_headers.good.yml: the five headers the toolkit allows', () => {
    const c = parseWebConfig(
      `http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: "default-src 'self' *.test.example.net"
`,
      FILE,
    );
    assert.equal(Object.keys(c.headers).length, 5);
    assert.equal(c.headers['X-Frame-Options'], 'deny');
  });

  it('web_config_noAuth_allCiphers.good.yml: every Go cipher name maps to one this OpenSSL has', () => {
    const c = parseWebConfig(
      `tls_server_config:
  cert_file: "server.crt"
  key_file: "server.key"
  client_auth_type: "VerifyClientCertIfGiven"
  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
  - TLS_AES_128_GCM_SHA256
  - TLS_AES_256_GCM_SHA384
  - TLS_CHACHA20_POLY1305_SHA256
  - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
  - TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
  - TLS_RSA_WITH_AES_128_CBC_SHA
  - TLS_RSA_WITH_AES_256_CBC_SHA
  - TLS_RSA_WITH_AES_128_GCM_SHA256
  - TLS_RSA_WITH_AES_256_GCM_SHA384
`,
      FILE,
    );
    const known = new Set(getCiphers().map((n) => n.toLowerCase()));
    const names = c.tls?.ciphers?.split(':') ?? [];
    assert.equal(names.length, 17);
    for (const n of names) assert.ok(known.has(n.toLowerCase()), `${n} is not in this OpenSSL`);
    // And OpenSSL takes the list as a whole.
    createSecureContext({ ciphers: c.tls?.ciphers });
  });

  it('a TLS 1.2 cipher list keeps the TLS 1.3 suites, as Go does', () => {
    const c = parseWebConfig(
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n',
      FILE,
    );
    assert.match(c.tls?.ciphers ?? '', /^TLS_AES_256_GCM_SHA384:.*:ECDHE-RSA-AES128-GCM-SHA256$/);
  });

  it('curves, client CA, SANs, the legacy RequireClientCert, inline PEM, rate_limit', () => {
    const c = parseWebConfig(
      `tls_server_config:
  cert: "-----BEGIN CERTIFICATE-----"
  key: "-----BEGIN PRIVATE KEY-----"
  client_auth_type: RequireClientCert
  client_ca_file: ca.pem
  client_allowed_sans: [one, two]
  curve_preferences: [X25519, CurveP256]
  min_version: TLS13
rate_limit:
  interval: 250ms
  burst: 5
`,
      FILE,
    );
    assert.equal(c.tls?.clientAuth, 'RequireAnyClientCert');
    assert.deepEqual(c.tls?.cert, { inline: '-----BEGIN CERTIFICATE-----' });
    assert.deepEqual(c.tls?.clientCa, { file: '/etc/lookout/ca.pem' });
    assert.deepEqual(c.tls?.clientAllowedSans, ['one', 'two']);
    assert.equal(c.tls?.ecdhCurve, 'X25519:P-256');
    assert.equal(c.tls?.minVersion, 'TLSv1.3');
    assert.deepEqual(c.rateLimit, { intervalMs: 250, burst: 5 });
  });

  it('http2: false is honoured silently (lookout serves HTTP/1.1)', () => {
    assert.equal(parseWebConfig('http_server_config:\n  http2: false\n', FILE).tls, undefined);
  });
});

describe('parseWebConfig: refusals name the field and the fix', () => {
  const table: [string, string, RegExp][] = [
    [
      'unknown key (web_config_junk_key.yml)',
      'tls_server_config:\n  certfile: x\n',
      /^tls_server_config\.certfile: unknown key/,
    ],
    ['unknown top-level key', 'tls_config:\n  cert_file: x\n', /^tls_config: unknown key/],
    [
      'invented cipher',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_RSA_WITH_NULL_SHA]\n',
      /^tls_server_config\.cipher_suites: unknown cipher TLS_RSA_WITH_NULL_SHA/,
    ],
    [
      'invented curve',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [CurveP257]\n',
      /^tls_server_config\.curve_preferences\[0\]: expected one of "CurveP256"/,
    ],
    [
      'wrong TLS version',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS111\n',
      /^tls_server_config\.min_version: expected one of/,
    ],
    [
      'TLS 1.0 cannot be honoured',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n',
      /^tls_server_config\.min_version: TLS10 cannot be honoured.*use TLS12/,
    ],
    [
      'min above max',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n',
      /min_version: TLS13 is above max_version/,
    ],
    [
      'empty cert_file (certPath_empty.bad)',
      'tls_server_config:\n  cert_file: ""\n  key_file: b\n',
      /^tls_server_config\.cert_file: missing; TLS needs one of cert or cert_file/,
    ],
    [
      'key missing',
      'tls_server_config:\n  cert_file: a\n',
      /^tls_server_config\.key_file: missing/,
    ],
    [
      'cert and cert_file',
      'tls_server_config:\n  cert: x\n  cert_file: a\n  key_file: b\n',
      /cert and tls_server_config\.cert_file: set one of them/,
    ],
    [
      'client CA without an auth type',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n',
      /client_auth_type: a client CA is set but no client auth type; set client_auth_type: RequireAndVerifyClientCert/,
    ],
    [
      'unknown auth type',
      'tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n',
      /client_auth_type: expected one of "NoClientCert"/,
    ],
    [
      'http2: true',
      'http_server_config:\n  http2: true\n',
      /^http_server_config\.http2: true cannot be honoured: lookout serves HTTP\/1\.1 only/,
    ],
    [
      'extra header',
      'http_server_config:\n  headers:\n    Server: x\n',
      /^http_server_config\.headers\.Server: this header cannot be configured/,
    ],
    [
      'bad X-Frame-Options',
      'http_server_config:\n  headers:\n    X-Frame-Options: allow\n',
      /X-Frame-Options: expected one of "deny", "sameorigin"/,
    ],
    [
      'not a bcrypt hash',
      'basic_auth_users:\n  alice: hunter2\n',
      /^basic_auth_users\."alice": not a bcrypt hash; make one with: htpasswd -nBC 10/,
    ],
    [
      'a user with a colon',
      `basic_auth_users:\n  "a:b": '${HASH}'\n`,
      /"a:b": a basic-auth user name cannot contain ":"/,
    ],
    [
      'rate_limit without burst',
      'rate_limit:\n  interval: 1s\n',
      /^rate_limit\.burst: must be at least 1/,
    ],
    [
      'rate_limit bad interval',
      'rate_limit:\n  interval: soon\n  burst: 1\n',
      /^rate_limit\.interval: expected a Go duration/,
    ],
    ['a list for a mapping', 'tls_server_config: [a]\n', /^tls_server_config: expected object/],
    [
      'YAML error',
      'tls_server_config:\n  cert_file: a\n cert_file: b\n',
      /^line \d+, column \d+: invalid YAML/,
    ],
    [
      'duplicate key',
      'basic_auth_users:\n  a: x\n  a: y\n',
      /invalid YAML: duplicated mapping key/,
    ],
  ];
  for (const [what, text, want] of table) {
    it(what, () => {
      const got = problems(text);
      assert.ok(
        got.some((p) => want.test(p)),
        `${JSON.stringify(got)} has no line like ${want}`,
      );
    });
  }

  it('never echoes a rejected password or hash', () => {
    const got = problems('basic_auth_users:\n  alice: my-plaintext-password\n  bob: [x]\n').join(
      '\n',
    );
    assert.doesNotMatch(got, /my-plaintext-password/);
    assert.match(got, /basic_auth_users\.bob: expected string/);
  });

  it('names every problem at once', () => {
    const got = problems(
      'tls_server_config:\n  cert_file: a\n  min_version: TLS11\nbasic_auth_users:\n  x: y\n',
    );
    assert.equal(got.length, 3, JSON.stringify(got));
  });

  it('throws only ConfigError on junk: deep nesting, binary, aliases', () => {
    for (const junk of [
      '['.repeat(50_000),
      '\u0000\u0001\u0002',
      '&a [*a]',
      '- - - -',
      '{',
      '!!js/function "x"',
      'a: *b',
    ]) {
      assert.throws(
        () => parseWebConfig(junk, FILE),
        ConfigError,
        JSON.stringify(junk.slice(0, 20)),
      );
    }
  });

  it('names that are properties of every object are unknown like any other', () => {
    assert.match(
      problems('http_server_config:\n  headers:\n    constructor: x\n').join(),
      /headers\.constructor: this header cannot be configured/,
    );
    assert.match(
      problems(
        'tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [toString]\n',
      ).join(),
      /unknown cipher toString/,
    );
    const c = parseWebConfig(`basic_auth_users:\n  __proto__: '${HASH}'\n`, FILE);
    assert.equal(Object.getPrototypeOf(c.headers), Object.prototype);
  });

  it('parseGoDuration reads Go durations', () => {
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('250ms'), 250);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('1.5h'), 5_400_000);
    assert.equal(parseGoDuration('5'), undefined);
    assert.equal(parseGoDuration(''), undefined);
  });
});

/** The real addon, with its calls counted: which compares ran, and at what cost the dummy was made. */
function counted(): Bcrypt & { compares: string[]; hashCosts: number[] } {
  const c = {
    compares: [] as string[],
    hashCosts: [] as number[],
    compare: (p: string, h: string) => {
      c.compares.push(h);
      return bcrypt.compare(p, h);
    },
    hash: (p: string, cost: number) => {
      c.hashCosts.push(cost);
      return bcrypt.hash(p, cost);
    },
  };
  return c;
}
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('BasicAuth (real bcrypt)', () => {
  it('parses Basic headers, and nothing else', () => {
    assert.deepEqual(parseBasic(basic('a', 'b:c')), { user: 'a', password: 'b:c' });
    assert.equal(parseBasic('Bearer x'), undefined);
    assert.equal(parseBasic('Basic !!!'), undefined);
    assert.equal(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
    assert.equal(parseBasic(undefined), undefined);
  });

  it('right, wrong and unknown; an unknown user pays a compare against a dummy of the highest cost', async () => {
    const alice = await bcrypt.hash('right', 5);
    const bob = (await bcrypt.hash('other', 4)).replace('$2b$', '$2y$');
    const b = counted();
    const auth = await BasicAuth.create(
      new Map([
        ['alice', alice],
        ['bob', bob],
      ]),
      b,
    );
    assert.deepEqual(b.hashCosts, [5]);
    assert.equal(await auth.check(basic('alice', 'right')), 'ok');
    assert.equal(await auth.check(basic('bob', 'other')), 'ok', '$2y$ hashes from htpasswd');
    assert.equal(await auth.check(basic('alice', 'wrong')), 'wrong_credentials');
    assert.equal(await auth.check(basic('mallory', 'right')), 'wrong_credentials');
    assert.equal(await auth.check(undefined), 'missing_credentials');
    assert.equal(b.compares.length, 4, 'every attempt with credentials ran one bcrypt compare');
    const dummy = b.compares[3]!;
    assert.notEqual(dummy, alice);
    assert.equal(dummy.slice(0, 7), '$2b$05$', 'the dummy has the highest configured cost');
  });

  it('caches verified credentials only: a right password once, a wrong one every time', async () => {
    const b = counted();
    const auth = await BasicAuth.create(new Map([['alice', await bcrypt.hash('right', 4)]]), b);
    for (let i = 0; i < 3; i++) assert.equal(await auth.check(basic('alice', 'right')), 'ok');
    for (let i = 0; i < 3; i++)
      assert.equal(await auth.check(basic('alice', 'wrong')), 'wrong_credentials');
    assert.equal(b.compares.length, 1 + 3);
  });

  it('runs one compare at a time and answers busy past its queue', async () => {
    const b = counted();
    const auth = await BasicAuth.create(new Map([['alice', await bcrypt.hash('right', 4)]]), b);
    const results = await Promise.all(
      Array.from({ length: 40 }, () => auth.check(basic('alice', 'wrong'))),
    );
    assert.equal(results.filter((r) => r === 'wrong_credentials').length, 16);
    assert.equal(results.filter((r) => r === 'busy').length, 24);
  });
});

describe('TokenBucket and RateLimitedLog', () => {
  it('the bucket lets `burst` through, then one per interval', () => {
    let now = 0;
    const bucket = new TokenBucket(100, 2, () => now);
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [true, true, false]);
    now = 100;
    assert.deepEqual([bucket.take(), bucket.take()], [true, false]);
  });

  it('the log writes one line per key per window, then says how many it held back', () => {
    let now = 0;
    const lines: string[] = [];
    const log = new RateLimitedLog(
      createLogger('info', {}, (l) => lines.push(l)),
      10_000,
      () => now,
    );
    for (let i = 0; i < 5; i++) log.warn('a', 'refused');
    log.warn('b', 'other');
    now = 10_000;
    log.warn('a', 'refused');
    assert.deepEqual(lines, [
      'level=warn msg=refused',
      'level=warn msg=other',
      'level=warn msg=refused suppressed=4',
    ]);
  });
});
