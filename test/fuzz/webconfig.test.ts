/**
 * Fuzzing the web-config loader (`parseWebConfig(text, path)` in src/exporter/webconfig.ts,
 * the exporter toolkit's format): random text and damaged copies of a node_exporter-style
 * web-config. It returns, or throws one of the module's own Error classes (or
 * ConfigError); nothing else, and never hangs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/config/load.js';
import { fuzzAsync, mutated, onlyOwnErrors, onlyOwnErrorsAsync, soup } from '../helpers/fuzz.js';
import * as mod from '../../src/exporter/webconfig.js';
import { tempDir } from '../helpers/procs.js';

/** What a node_exporter user already has: every section the toolkit documents. */
const SAMPLE = `tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
  max_version: TLS13
  cipher_suites:
    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  prefer_server_cipher_suites: true
  curve_preferences: [X25519]
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
basic_auth_users:
  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhS7zG
`;

type ErrorClass = abstract new (...args: never[]) => Error;

describe('fuzz: web-config loader', () => {
  test('parseWebConfig: random and mutated web-configs return or throw the loader’s own errors', async (t) => {
    const parse = mod.parseWebConfig;
    const own: ErrorClass[] = [
      ConfigError,
      ...(Object.values(mod) as unknown[]).filter(
        (v): v is ErrorClass => typeof v === 'function' && v.prototype instanceof Error,
      ),
    ];
    // Relative cert paths resolve against the file's directory: an empty one here.
    const path = join(await tempDir('lookout-fuzz-webconfig-'), 'web.yml');
    await fuzzAsync(t, 400, fc.oneof(soup(), mutated(SAMPLE)), async (text) => {
      await onlyOwnErrorsAsync(async () => parse(text, path), own, text);
    });
    // Its Go-duration reader (rate limits): milliseconds or undefined.
    {
      const parseGo = mod.parseGoDuration;
      const goish = fc
        .array(
          fc.oneof(
            fc.constantFrom('h', 'm', 's', 'ms', 'us', 'µs', 'ns', '.', '-', '+'),
            fc.nat().map(String),
          ),
          {
            maxLength: 16,
          },
        )
        .map((p) => p.join(''));
      await fuzzAsync(t, 500, fc.oneof(soup(10), goish), async (text) => {
        const ms = onlyOwnErrors(() => parseGo(text), [], text);
        assert.ok(ms === undefined || (Number.isFinite(ms) && ms >= 0), `${text} → ${ms}`);
      });
    }
  });
});
