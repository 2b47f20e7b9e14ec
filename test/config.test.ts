import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { load } from 'js-yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from '../src/collectors/config.js';
import { configLoader, nearestKey } from '../src/config/load.js';
import { collectorSchema } from '../src/collectors/collector.js';
import { z } from 'zod';

const run = promisify(execFile);
const FIX = 'test/fixtures/config';

/** Each invalid fixture and the exact lines `lookout check` must print for it. */
const INVALID: Record<string, string[]> = {
  'invalid-unknown-key.yml': ['web.listen_adress: unknown key; did you mean listen_address?'],
  'invalid-unknown-key-nested.yml': [
    'collectors.tls.targets[0].servername: unknown key; did you mean server_name?',
  ],
  'invalid-tls-target-no-address.yml': [
    'collectors.tls.targets[0].adress: unknown key; did you mean address?',
    'collectors.tls.targets[0].servername: unknown key; did you mean server_name?',
    'collectors.tls.targets[0]: set exactly one of address or file',
  ],
  'invalid-unknown-key-probe-kind.yml': [
    'collectors.probes.targets[0].list_key: unknown key; did you mean list_keys?',
  ],
  'invalid-unknown-key-case.yml': [
    'collectors.processes.Timeout: unknown key; did you mean timeout?',
  ],
  'invalid-unknown-collector-typo.yml': ['collectors.hots: unknown key; did you mean host?'],
  'invalid-probe-url-port.yml': [
    'collectors.probes.targets[0].url: port 99999 is out of range; give a port from 1 to 65535',
  ],
  'invalid-probe-url-no-scheme.yml': [
    'collectors.probes.targets[0].url: "127.0.0.1:8080/healthz" has no scheme; write "http://127.0.0.1:8080/healthz" (or https://)',
  ],
  'invalid-probe-url-no-host.yml': [
    'collectors.probes.targets[0].url: "http://" has no host; write the server\'s name or address after the scheme, e.g. "http://127.0.0.1:8080/healthz"',
  ],
  'invalid-duration-number.yml': [
    'collectors.host.interval: expected a duration like "5s", got 15',
  ],
  'invalid-negative-interval.yml': [
    'collectors.host.interval: expected a duration like "5s", got "-5s"',
  ],
  'invalid-timeout-over-interval.yml': [
    'collectors.processes.timeout: must not be longer than the interval (10s); shorten timeout or lengthen interval',
  ],
  'invalid-enabled-string.yml': ['collectors.host.enabled: expected boolean, got string "yes"'],
  'invalid-listen-address.yml': [
    'web.listen_address: expected host:port, e.g. ":10142" or "127.0.0.1:10142"',
  ],
  'invalid-log-level.yml': ['log.level: expected one of "debug", "info", "warn", "error"'],
  'invalid-yaml.yml': ['line 4, column 11: invalid YAML: bad indentation of a mapping entry'],
  'invalid-unknown-collector.yml': [
    'collectors.dockr: unknown key; check its spelling and indentation',
  ],
  'invalid-top-level-list.yml': ['(top level): expected object, got a list'],
};

describe('config validation', () => {
  for (const [file, expected] of Object.entries(INVALID)) {
    it(`${file} is rejected naming the field`, async () => {
      const path = join(FIX, file);
      await assert.rejects(loadConfig(path), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, expected, `${file}: got ${JSON.stringify(err.problems)}`);
        return true;
      });
    });
  }

  it('an unknown key suggests the known key nearest to it, or none when nothing is near', () => {
    const known = ['server_name', 'address', 'name', 'ca_file', 'timeout'];
    const cases: [string, string | undefined][] = [
      ['servername', 'server_name'],
      ['Server-Name', 'server_name'],
      ['adress', 'address'],
      ['addresss', 'address'],
      ['timout', 'timeout'],
      ['nmae', 'name'],
      ['cafile', 'ca_file'],
      ['bogus', undefined],
      ['x', undefined],
      ['certificate', undefined],
    ];
    for (const [key, want] of cases) assert.equal(nearestKey(key, known), want, key);
  });

  it('the config layer loads blocks of collectors it is given, and suggests their keys', () => {
    // src/config/ imports no collector: a block exists because the caller passes it.
    const { parseConfig } = configLoader({
      collectors: [
        [
          'queue',
          {
            schema: collectorSchema(
              { enabled: true, interval: '5s', timeout: '1s' },
              { depth_limit: z.number().default(10) },
            ),
          },
        ],
      ],
    });
    const config = parseConfig({ collectors: { queue: { depth_limit: 3 } } });
    assert.deepEqual(config.collectors.queue, {
      enabled: true,
      interval: 5000,
      timeout: 1000,
      depth_limit: 3,
    });
    assert.throws(
      () => parseConfig({ collectors: { queue: { depthlimit: 3 }, probes: {} } }, 'lookout.yml'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          'collectors.queue.depthlimit: unknown key; did you mean depth_limit?',
          'collectors.probes: unknown key; check its spelling and indentation',
        ]);
        return true;
      },
    );
  });

  it('an empty file, a comments-only file and no file all mean the embedded defaults', async () => {
    const none = await loadConfig(undefined);
    assert.deepEqual(await loadConfig(join(FIX, 'valid-empty.yml')), none);
    assert.deepEqual(await loadConfig(join(FIX, 'valid-comments-only.yml')), none);
    assert.equal(none.web.listen_address, ':10142');
    assert.equal(none.paths.procfs, '/proc');
    for (const name of ['host', 'filesystem', 'processes', 'runtime']) {
      assert.equal(none.collectors[name]?.enabled, true, `${name} is on by default`);
    }
  });

  it('the annotated example config is valid, sets every key, and sets each to its default', async () => {
    const example = await loadConfig('lookout.example.yml');
    assert.deepEqual(example, await loadConfig(undefined), 'the example shows the defaults');
    // Every key the schema knows appears in the example, so the two cannot drift apart.
    const doc = load(await readFile('lookout.example.yml', 'utf8'));
    const missing: string[] = [];
    const walk = (value: unknown, written: unknown, path: string) => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
      for (const [key, child] of Object.entries(value)) {
        const there = (written as Record<string, unknown> | undefined)?.[key];
        if (there === undefined) missing.push(`${path}${key}`);
        else walk(child, there, `${path}${key}.`);
      }
    };
    walk(example, doc, '');
    assert.deepEqual(missing, [], 'keys missing from lookout.example.yml');
  });
});

describe('lookout check (built CLI)', { concurrency: true }, () => {
  const cli = ['dist/cli.js', 'check', '--config'];

  it('exits 0 for a good file', async () => {
    const { stdout } = await run(process.execPath, [...cli, 'lookout.example.yml']);
    assert.equal(stdout, 'lookout.example.yml: OK\n');
  });

  it('exits 1 and prints every problem, prefixed by the file', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lookout-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'bad.yml');
    await writeFile(
      file,
      'collectors:\n  host: {interval: 5, bogus: 1}\n  processes: {timeout: "20s"}\n',
    );
    const err = await run(process.execPath, [...cli, file]).then(
      () => assert.fail('check must fail'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 1);
    assert.deepEqual(err.stderr.trim().split('\n'), [
      `${file}: collectors.host.interval: expected a duration like "5s", got 5`,
      `${file}: collectors.host.bogus: unknown key; check its spelling and indentation`,
      `${file}: collectors.processes.timeout: must not be longer than the interval (15s); shorten timeout or lengthen interval`,
    ]);
  });

  for (const command of ['check', 'serve']) {
    it(`${command}: each probe URL mistake is a config error naming the field and the fix, exit 1`, async () => {
      const fixtures = Object.entries(INVALID).filter(([f]) => f.startsWith('invalid-probe-url-'));
      assert.ok(fixtures.length > 0, 'probe URL fixtures');
      await Promise.all(
        fixtures.map(async ([fixture, [line]]) => {
          const file = join(FIX, fixture);
          const err = await run(process.execPath, ['dist/cli.js', command, '--config', file]).then(
            () => assert.fail(`${command} must fail on ${fixture}`),
            (e: { code: number; stderr: string }) => e,
          );
          assert.equal(err.code, 1, fixture);
          assert.equal(err.stderr, `${file}: ${line}\n`, fixture);
        }),
      );
    });
  }

  it('a missing file or a directory says which and how to fix it', async (t) => {
    const missing = await run(process.execPath, [...cli, '/nonexistent/lookout.yml']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((missing as { code: number }).code, 1);
    assert.equal(
      (missing as { stderr: string }).stderr,
      '/nonexistent/lookout.yml: no such file; check the --config path\n',
    );

    const dir = await mkdtemp(join(tmpdir(), 'lookout-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const res = await run(process.execPath, [...cli, dir]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(
      (res as { stderr: string }).stderr,
      `${dir}: is a directory; point --config at a YAML file\n`,
    );
  });

  it('an unreadable file says permission denied, as a user and as root', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'lookout-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'secret.yml');
    await writeFile(file, '');
    await chmod(file, 0o000);
    // Root reads a mode-000 file through CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH), and
    // CI runs as root. So as root the CLI runs without those two capabilities, dropped
    // from its bounding set by setpriv: still uid 0 and able to read the repository
    // wherever CI cloned it, but the kernel now refuses the read, as it does for the
    // unprivileged user the unit runs lookout as.
    const command =
      process.getuid?.() === 0
        ? [
            'setpriv',
            '--bounding-set=-dac_override,-dac_read_search',
            '--inh-caps=-dac_override,-dac_read_search',
            process.execPath,
          ]
        : [process.execPath];
    const denied = await run(command[0]!, [...command.slice(1), ...cli, file]).then(
      () => assert.fail('check must fail on an unreadable file'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(denied.code, 1);
    assert.equal(
      denied.stderr,
      `${file}: permission denied; make it readable by the lookout user\n`,
    );
  });

  it('an unknown command or flag is a usage error with exit 1', async () => {
    const res = await run(process.execPath, ['dist/cli.js', 'frobnicate']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((res as { code: number }).code, 1);
    assert.match((res as { stderr: string }).stderr, /^lookout: unknown command "frobnicate"/);
  });
});
