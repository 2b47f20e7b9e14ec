/** The tests' exposition reader (test/helpers/exposition.ts) on literal strings. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ExpositionError,
  findSamples,
  parseExposition,
  sampleLines,
  sampleValue,
} from './helpers/exposition.js';

describe('parseExposition: the Prometheus text format', () => {
  test('families with HELP and TYPE, samples with labels in written order', () => {
    const text = [
      '# HELP lookout_cpu_seconds_total Seconds the CPUs spent in each mode.',
      '# TYPE lookout_cpu_seconds_total counter',
      'lookout_cpu_seconds_total{mode="user"} 74.82',
      'lookout_cpu_seconds_total{mode="idle"} 736.96',
      '# HELP lookout_load1 1m load average.',
      '# TYPE lookout_load1 gauge',
      'lookout_load1 0.73',
      '',
    ].join('\n');
    assert.deepEqual(parseExposition(text), [
      {
        name: 'lookout_cpu_seconds_total',
        type: 'counter',
        help: 'Seconds the CPUs spent in each mode.',
        samples: [
          {
            name: 'lookout_cpu_seconds_total',
            labels: { mode: 'user' },
            value: 74.82,
            line: 'lookout_cpu_seconds_total{mode="user"} 74.82',
          },
          {
            name: 'lookout_cpu_seconds_total',
            labels: { mode: 'idle' },
            value: 736.96,
            line: 'lookout_cpu_seconds_total{mode="idle"} 736.96',
          },
        ],
      },
      {
        name: 'lookout_load1',
        type: 'gauge',
        help: '1m load average.',
        samples: [{ name: 'lookout_load1', labels: {}, value: 0.73, line: 'lookout_load1 0.73' }],
      },
    ]);
    const [first] = parseExposition('x{b="2",a="1"} 1\n')[0]!.samples;
    assert.deepEqual(Object.keys(first!.labels), ['b', 'a']);
  });

  test('label values with escaped quotes, backslashes, newlines, commas, braces and spaces', () => {
    const [s] = findSamples(
      'x{a="q\\"uote",b="back\\\\slash",c="two\\nlines",d="a, b} c",e=""} 1\n',
      'x',
    );
    assert.deepEqual(s?.labels, {
      a: 'q"uote',
      b: 'back\\slash',
      c: 'two\nlines',
      d: 'a, b} c',
      e: '',
    });
  });

  test('a trailing comma and spaces inside the braces are allowed', () => {
    assert.deepEqual(findSamples('x{ a = "1" , b="2", } 3\n', 'x')[0]?.labels, { a: '1', b: '2' });
  });

  test('special values: NaN, +Inf, -Inf, Inf; exponents; a leading sign', () => {
    const text = 'a NaN\nb +Inf\nc -Inf\nd Inf\ne 1.5e+09\nf -0.25\ng 1E-3\nh .5\n';
    const v = (name: string) => sampleValue(text, name);
    assert.ok(Number.isNaN(v('a')));
    assert.equal(v('b'), Infinity);
    assert.equal(v('c'), -Infinity);
    assert.equal(v('d'), Infinity);
    assert.equal(v('e'), 1.5e9);
    assert.equal(v('f'), -0.25);
    assert.equal(v('g'), 0.001);
    assert.equal(v('h'), 0.5);
  });

  test('a timestamp in milliseconds, including a negative one', () => {
    const [a, b] = findSamples('x{a="1"} 1 1395066363000\nx{a="2"} +Inf -3982045\n', 'x');
    assert.equal(a?.timestampMs, 1395066363000);
    assert.equal(b?.timestampMs, -3982045);
    assert.equal(findSamples('y 1\n', 'y')[0]?.timestampMs, undefined);
  });

  test('histogram and summary samples belong to their family', () => {
    const families = parseExposition(
      [
        '# TYPE h histogram',
        'h_bucket{le="0.1"} 1',
        'h_bucket{le="+Inf"} 3',
        'h_sum 0.7',
        'h_count 3',
        '# TYPE s summary',
        's{quantile="0.5"} 2',
        's_sum 10',
        's_count 5',
        'loose 1',
      ].join('\n'),
    );
    assert.deepEqual(
      families.map((f) => [f.name, f.type, f.samples.map((s) => s.name)]),
      [
        ['h', 'histogram', ['h_bucket', 'h_bucket', 'h_sum', 'h_count']],
        ['s', 'summary', ['s', 's_sum', 's_count']],
        ['loose', 'untyped', ['loose']],
      ],
    );
    assert.equal(sampleValue(families, 'h_bucket', { le: '+Inf' }), 3);
  });

  test('HELP text unescapes \\\\ and \\n; other comments and blank lines are skipped', () => {
    const [f] = parseExposition('# just a comment\n\n# HELP x a\\\\b\\nc\nx 1\n');
    assert.equal(f?.help, 'a\\b\nc');
    assert.equal(f?.samples.length, 1);
  });

  test('text without a final newline parses the same', () => {
    assert.deepEqual(parseExposition('x 1'), parseExposition('x 1\n'));
  });
});

describe('parseExposition: OpenMetrics', () => {
  test('# EOF ends it; counters keep _total on samples; UNIT; timestamps in seconds', () => {
    const text = [
      '# HELP lookout_cpu_seconds Seconds the CPUs spent in each mode.',
      '# TYPE lookout_cpu_seconds counter',
      '# UNIT lookout_cpu_seconds seconds',
      'lookout_cpu_seconds_total{mode="idle"} 12.5 1700000000.25',
      'lookout_cpu_seconds_created{mode="idle"} 1700000000',
      '# TYPE lookout_build info',
      'lookout_build_info{version="1.0"} 1',
      '# EOF',
      '',
    ].join('\n');
    const families = parseExposition(text);
    assert.deepEqual(
      families.map((f) => [f.name, f.type, f.unit, f.samples.map((s) => s.name)]),
      [
        [
          'lookout_cpu_seconds',
          'counter',
          'seconds',
          ['lookout_cpu_seconds_total', 'lookout_cpu_seconds_created'],
        ],
        ['lookout_build', 'info', undefined, ['lookout_build_info']],
      ],
    );
    assert.equal(families[0]?.samples[0]?.timestampMs, 1700000000250);
  });

  test('anything after # EOF is an error', () => {
    assert.throws(() => parseExposition('x 1\n# EOF\nx 2\n'), /line 3: nothing may follow # EOF/);
  });
});

describe('parseExposition: what it refuses, naming the line', () => {
  const refused: Array<[string, string, RegExp]> = [
    ['a line without a value', 'x\n', /line 1: expected a space before the value/],
    ['a value that is not a number', 'x 1\ny abc\n', /line 2: bad value abc/],
    ['an empty value string', 'x{a="1"} \n', /line 1: bad value/],
    ['a hex value', 'x 0x10\n', /bad value 0x10/],
    ['an unterminated label value', 'x{a="1} 2\n', /unterminated value for label a/],
    ['an unknown escape', 'x{a="\\t"} 1\n', /unknown escape \\t in label a/],
    ['a label given twice', 'x{a="1",a="2"} 1\n', /label a given twice/],
    ['an unquoted label value', 'x{a=1} 1\n', /expected a quoted value for label a/],
    ['a fractional text-format timestamp', 'x 1 1.5\n', /line 1: .*whole milliseconds/],
    ['three fields after the series', 'x 1 2 3\n', /at most a timestamp/],
    ['the same series twice', 'x{a="1",b="2"} 1\nx{b="2",a="1"} 2\n', /line 2: the same series/],
    ['a second TYPE', '# TYPE x gauge\n# TYPE x gauge\nx 1\n', /line 2: a second TYPE for x/],
    ['a second HELP', '# HELP x a\n# HELP x b\nx 1\n', /a second HELP for x/],
    ['an unknown type', '# TYPE x thing\n', /unknown type thing/],
    ['TYPE after the samples', 'x 1\n# TYPE x gauge\n', /TYPE for x after its samples/],
    ['a bad metric name', '1x 1\n', /expected a metric name/],
  ];
  for (const [what, text, message] of refused) {
    test(what, () => {
      assert.throws(
        () => parseExposition(text),
        (err: unknown) => {
          assert.ok(err instanceof ExpositionError, String(err));
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('lookups', () => {
  const text = [
    '# TYPE lookout_collector_success gauge',
    'lookout_collector_success{collector="host"} 1',
    'lookout_collector_success{collector="filesystem"} 0',
    '# TYPE lookout_filesystem_size_bytes gauge',
    'lookout_filesystem_size_bytes{mountpoint="/",device="/dev/vda",fstype="ext4"} 4096',
    'lookout_filesystem_size_bytes{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 1024',
    '',
  ].join('\n');

  test('sampleValue: by name and a subset of labels; undefined when nothing matches', () => {
    assert.equal(sampleValue(text, 'lookout_collector_success', { collector: 'host' }), 1);
    assert.equal(sampleValue(text, 'lookout_collector_success', { collector: 'filesystem' }), 0);
    assert.equal(sampleValue(text, 'lookout_filesystem_size_bytes', { fstype: 'tmpfs' }), 1024);
    assert.equal(sampleValue(text, 'lookout_collector_success', { collector: 'nope' }), undefined);
    assert.equal(sampleValue(text, 'lookout_nope'), undefined);
  });

  test('sampleValue: several matches are an error listing them', () => {
    assert.throws(
      () => sampleValue(text, 'lookout_collector_success'),
      /2 samples match:\nlookout_collector_success\{collector="host"\} 1\n/,
    );
  });

  test('findSamples: by name, by pattern, or every sample', () => {
    assert.deepEqual(
      findSamples(text, 'lookout_filesystem_size_bytes').map((s) => s.labels.mountpoint),
      ['/', '/run'],
    );
    assert.equal(findSamples(text, /^lookout_(collector|filesystem)_/).length, 4);
    assert.equal(findSamples(text).length, 4);
    assert.deepEqual(findSamples(text, 'lookout_collector_succ'), []);
  });

  test('sampleLines: the named samples as written, in exposition order', () => {
    assert.equal(
      sampleLines(text, 'lookout_filesystem_size_bytes', 'lookout_collector_success'),
      [
        'lookout_collector_success{collector="host"} 1',
        'lookout_collector_success{collector="filesystem"} 0',
        'lookout_filesystem_size_bytes{mountpoint="/",device="/dev/vda",fstype="ext4"} 4096',
        'lookout_filesystem_size_bytes{mountpoint="/run",device="tmpfs",fstype="tmpfs"} 1024',
      ].join('\n'),
    );
  });
});
