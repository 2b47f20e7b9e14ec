/**
 * Fuzzing the config loader (YAML text → Config or ConfigError), the duration parser and
 * the check of user-supplied regular expressions: random text, damaged copies of the
 * shipped lookout.example.yml and the config fixtures, and documents with one value
 * swapped for something else. Nothing but ConfigError escapes, nothing hangs, and what is
 * accepted holds what the schema promises.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { dump, load } from 'js-yaml';
import { ConfigError, parseConfig, parseConfigText } from '../../src/collectors/config.js';
import { formatDuration, parseDuration } from '../../src/config/duration.js';
import { regexSource } from '../../src/config/regex.js';
import type { Config } from '../../src/config/schema.js';
import {
  HANG_MS,
  RegexSandbox,
  fuzz,
  fuzzAsync,
  mutated,
  onlyOwnErrors,
  soup,
  token,
} from '../helpers/fuzz.js';
import { REPO, eventually, startLookout, tempDir } from '../helpers/procs.js';
import { findSamples, sampleValue } from '../helpers/exposition.js';

const run = promisify(execFile);
const EXAMPLE = readFileSync(join(REPO, 'lookout.example.yml'), 'utf8');
const FIXTURES = join(REPO, 'test/fixtures/config');
const CONFIG_FIXTURES = readdirSync(FIXTURES).map((f) => readFileSync(join(FIXTURES, f), 'utf8'));
const OWN = [ConfigError];

/** What an accepted config promises whatever the file said. */
function assertSound(config: Config): void {
  for (const [name, c] of Object.entries(config.collectors)) {
    for (const key of ['interval', 'timeout'] as const) {
      assert.ok(Number.isSafeInteger(c[key]) && c[key] > 0, `${name}.${key} = ${c[key]}`);
    }
    assert.ok(c.timeout <= c.interval, `${name}: timeout ${c.timeout} > interval ${c.interval}`);
  }
  for (const ms of [config.shutdown.drain_timeout, config.shutdown.flush_timeout]) {
    assert.ok(Number.isSafeInteger(ms) && ms > 0);
  }
}

function loadsOrConfigError(text: string): void {
  const config = onlyOwnErrors(() => parseConfigText(text, 'fuzz.yml'), OWN, text);
  if (config) assertSound(config);
}

/** Every path to a leaf of a parsed YAML document. */
function leafPaths(doc: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(doc)) return doc.flatMap((v, i) => leafPaths(v, [...at, i]));
  if (doc !== null && typeof doc === 'object') {
    return Object.entries(doc).flatMap(([k, v]) => leafPaths(v, [...at, k]));
  }
  return [at];
}

function setAt(doc: unknown, path: readonly (string | number)[], value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  // An index far past the end would make a sparse array of billions of holes, which no
  // YAML list can be: a new element goes at the end instead.
  if (Array.isArray(node) && !(typeof key === 'number' && key < node.length)) node.push(value);
  // As js-yaml does, so "__proto__" is a key like any other, not the prototype.
  else
    Object.defineProperty(node, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return copy;
}

const EXAMPLE_DOC = load(EXAMPLE);
const EXAMPLE_LEAVES = leafPaths(EXAMPLE_DOC);

/** Values a config field could wrongly hold. */
const fieldValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  token,
  fc.constantFrom(
    '0',
    '0s',
    '-5s',
    '1h30m',
    '1y',
    '99999999999999y',
    '1.5s',
    '5',
    '',
    ':0',
    '[::1]:99999',
  ),
  fc.constantFrom('^(a+)+$', '(', '(a)\\1', '(?<=x)', '.*', '^/srv/([a-z0-9]+-?)+$'),
  fc.integer(),
  fc.double(),
);

describe('fuzz: config loader', () => {
  test('random text loads or is a ConfigError, never hangs', (t) => {
    fuzz(t, 400, soup(), loadsOrConfigError);
  });

  test('a mutated lookout.example.yml loads or is a ConfigError', (t) => {
    fuzz(t, 400, mutated(EXAMPLE), loadsOrConfigError);
  });

  test('a mutated config fixture (valid or invalid) loads or is a ConfigError', (t) => {
    fuzz(t, 300, mutated(fc.constantFrom(...CONFIG_FIXTURES)), loadsOrConfigError);
  });

  test('the example with one value swapped or one key added loads or names the field', (t) => {
    const change = fc.oneof(
      fc.record({ path: fc.constantFrom(...EXAMPLE_LEAVES), value: fieldValue }),
      fc.record({
        path: fc
          .tuple(fc.constantFrom(...EXAMPLE_LEAVES), token)
          .map(([p, key]) => [...p.slice(0, -1), key]),
        value: fieldValue,
      }),
    );
    fuzz(t, 400, change, ({ path, value }) => {
      const doc = setAt(EXAMPLE_DOC, path, value);
      // Both ways in: the parsed document, and the YAML text a user would have written.
      try {
        assertSound(parseConfig(doc, 'fuzz.yml'));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        assert.ok(err.problems.length > 0 && err.problems.every((p) => p.length > 0));
      }
      loadsOrConfigError(dump(doc));
    });
  });
});

describe('fuzz: durations', () => {
  test('parseDuration of any text is undefined or a safe whole number of milliseconds', (t) => {
    const durationish = fc
      .array(
        fc.oneof(
          fc.constantFrom('y', 'w', 'd', 'h', 'm', 's', 'ms', 'us', '-', '.'),
          fc.nat().map(String),
        ),
        {
          maxLength: 20,
        },
      )
      .map((p) => p.join(''));
    fuzz(t, 1000, fc.oneof(soup(10), durationish), (text) => {
      const ms = onlyOwnErrors(() => parseDuration(text), [], text);
      assert.ok(ms === undefined || (Number.isSafeInteger(ms) && ms >= 0), `${text} → ${ms}`);
    });
  });

  test('formatDuration and parseDuration round-trip any whole number of milliseconds', (t) => {
    fuzz(t, 1000, fc.nat({ max: Number.MAX_SAFE_INTEGER }), (ms) => {
      assert.equal(parseDuration(formatDuration(ms)), ms);
    });
  });
});

/** Text a user's pattern is matched on; long runs are what make backtracking blow up. */
const subject = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc
    .tuple(
      fc.constantFrom('/srv/', '/media/u/', '', 'eth'),
      fc.constantFrom('a', 'ab', '0', '-', ' '),
      fc.nat(3000),
      fc.constantFrom('', '!', '_', '/'),
    )
    .map(([head, unit, n, tail]) => head + unit.repeat(n) + tail),
);

const patternPiece = fc.constantFrom(
  '(',
  ')',
  '+',
  '*',
  '?',
  '|',
  '.',
  'a',
  'b',
  '/',
  '-',
  '^',
  '$',
  '[a-z]',
  '[^/]',
  '\\w',
  '\\s',
  '\\d',
  '{2,}',
  '{1,3}',
  '(?:',
  '(?=',
  '(?!',
  '(?<=',
  '\\1',
  '\\k<n>',
  '(?<n>',
  '\\b',
  '\\',
  ']',
  '}',
);

describe('fuzz: regular expressions from the config', () => {
  const schema = regexSource('mount points');

  test('any pattern is accepted or refused with a message, never thrown', (t) => {
    const pattern = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.array(patternPiece, { maxLength: 16 }).map((p) => p.join('')),
    );
    fuzz(t, 1000, pattern, (p) => {
      const r = onlyOwnErrors(() => schema.safeParse(p), [], p)!;
      if (!r.success) assert.match(r.error.issues[0]!.message, /regular expression/);
    });
  });

  test('an accepted pattern, compiled as the collectors compile it, never hangs on a long name', async (t) => {
    // Shapes that backtrack: quantified groups of quantified atoms, as users write them
    // ("^/srv/([a-z0-9]+-?)+$"), against a long run of what they match and a bad tail.
    const atom = fc.constantFrom('a', '[a-z]', '[a-z0-9]', '\\w', '.', '[^/]', 'a?', '-?', '\\s*');
    const quant = fc.constantFrom('+', '*', '?', '{1,3}', '', '+?');
    const piece = fc.tuple(atom, quant).map(([a, q]) => a + q);
    const group = fc
      .tuple(
        fc.array(piece, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('|', ''),
        fc.constantFrom('+', '*', '{2,}'),
      )
      .map(([ps, alt, q]) => `(${ps.join(alt)})${q}`);
    const pattern = fc
      .tuple(
        fc.boolean(),
        fc.constantFrom('', '/srv/', 'eth'),
        fc.array(fc.oneof(piece, group), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
      )
      .map(
        ([start, head, body, end]) => `${start ? '^' : ''}${head}${body.join('')}${end ? '$' : ''}`,
      )
      .filter((p) => schema.safeParse(p).success);
    const sandbox = new RegexSandbox();
    t.after(() => sandbox.close());
    await fuzzAsync(t, 200, pattern, subject, async (p, s) => {
      assert.notEqual(
        await sandbox.test(p, s),
        'hung',
        `${p} on ${JSON.stringify(s.slice(0, 60))}… (${s.length} chars)`,
      );
    });
  });
});

describe('fuzz-found regressions: config', () => {
  test('a backtracking exclude pattern ("^/srv/([a-z0-9]+-?)+$") matches a 5,000-character mount point', () => {
    const config = parseConfigText(
      'collectors:\n  filesystem:\n    mount_points_exclude: "^/srv/([a-z0-9]+-?)+$"\n',
      'regression.yml',
    );
    const source = (config.collectors.filesystem as unknown as { mount_points_exclude: string })
      .mount_points_exclude;
    // Without V8's linear fallback this took 2 s at 28 characters and doubles with each one.
    const started = performance.now();
    assert.equal(new RegExp(source).test(`/srv/${'a'.repeat(5000)}_`), false);
    assert.ok(performance.now() - started < HANG_MS, 'returned within the hang bound');
  });

  test('a pattern with a backreference or lookaround is a ConfigError naming the field', () => {
    for (const p of ['(a+)\\\\1', '^(?=x)', '(?<!x)y']) {
      assert.throws(
        () =>
          parseConfigText(
            `collectors:\n  host:\n    network:\n      devices_exclude: "${p}"\n`,
            'r.yml',
          ),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(
            err.problems[0] ?? '',
            /^collectors\.host\.network\.devices_exclude: .*without backreferences or lookarounds/,
          );
          return true;
        },
      );
    }
  });
});

const isRoot = process.getuid?.() === 0;

describe('fuzz-found regression: the real exporter with a backtracking pattern', () => {
  test(
    'lookout keeps serving /metrics with a 48-character mount point the exclude pattern backtracks on',
    { skip: !isRoot && 'needs root to mount tmpfs' },
    async (t) => {
      const dir = await tempDir('lookout-fuzz-redos-');
      assert.match(dir, /^[\w/-]+$/, 'a path that needs no escaping in the pattern');
      const mountpoint = join(dir, 'srv', `${'a'.repeat(48)}_`);
      await mkdir(mountpoint, { recursive: true });
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'lookout-redos', mountpoint]);
      t.after(async () => {
        await run('umount', [mountpoint]).catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      });
      // Without the linear fallback this pattern on that mount point blocks the event
      // loop for centuries: no refresh, no scrape, no /healthz.
      const lookout = await startLookout(
        `collectors:\n  filesystem:\n    interval: 1s\n    timeout: 1s\n    mount_points_exclude: "^${dir}/srv/([a-z0-9]+-?)+$"\n`,
      );
      t.after(() => lookout.stop());
      const text = await eventually(
        async () => {
          const body = await (await fetch(`${lookout.url}/metrics`)).text();
          return (
            findSamples(body, 'lookout_filesystem_readonly').some(
              (s) => s.labels.mountpoint === mountpoint,
            ) && body
          );
        },
        20_000,
        `the mount ${mountpoint} in /metrics`,
      );
      assert.equal(sampleValue(text, 'lookout_collector_success', { collector: 'filesystem' }), 1);
    },
  );
});
