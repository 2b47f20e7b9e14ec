/**
 * Fuzzing every /proc parser (src/lib/procfs.ts) and the collectors that read them: random
 * text and damaged copies of the captured fixtures. A parser returns or throws
 * ProcfsParseError; a collector's refresh resolves or rejects with the project's own
 * errors (CollectorError, ProcfsParseError), never a TypeError or a library's error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CollectorError, type HostPaths } from '../../src/collectors/collector.js';
import { createHostCollector, hostSchema } from '../../src/collectors/host.js';
import { createFilesystemCollector, filesystemSchema } from '../../src/collectors/filesystem.js';
import { createProcessesCollector, processesSchema } from '../../src/collectors/processes.js';
import { createLogger } from '../../src/lib/log.js';
import {
  parseAuxvPageSize,
  parseConntrackEntries,
  parseFileNr,
  parseLoadavg,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parseOsRelease,
  parsePidStat,
  parseStat,
  parseSysctlInteger,
  parseVmstat,
  ProcfsParseError,
  unescapeMountField,
} from '../../src/lib/procfs.js';
import {
  fuzz,
  fuzzAsync,
  mutated,
  onlyOwnErrors,
  onlyOwnErrorsAsync,
  soup,
  polled,
} from '../helpers/fuzz.js';
import { REPO, tempDir } from '../helpers/procs.js';

const PROC = join(REPO, 'test/fixtures/proc');
const fixture = (rel: string) => readFileSync(join(PROC, rel), 'utf8');
const OWN = [ProcfsParseError];

/** Each text parser, with the fixture it reads on a real host. */
const PARSERS: { name: string; fixture: string; parse: (text: string) => unknown }[] = [
  { name: 'parseStat', fixture: fixture('stat'), parse: parseStat },
  { name: 'parseLoadavg', fixture: fixture('loadavg'), parse: parseLoadavg },
  { name: 'parseMeminfo', fixture: fixture('meminfo'), parse: parseMeminfo },
  { name: 'parseNetDev', fixture: fixture('1/net/dev'), parse: parseNetDev },
  { name: 'parseVmstat', fixture: fixture('vmstat'), parse: parseVmstat },
  { name: 'parseFileNr', fixture: fixture('sys/fs/file-nr'), parse: parseFileNr },
  {
    name: 'parseConntrackEntries',
    fixture: fixture('1/net/stat/nf_conntrack'),
    parse: parseConntrackEntries,
  },
  {
    name: 'parseSysctlInteger',
    fixture: fixture('sys/net/netfilter/nf_conntrack_max'),
    parse: (t) => parseSysctlInteger(t, 'nf_conntrack_max'),
  },
  { name: 'parseMounts', fixture: fixture('1/mounts'), parse: parseMounts },
  { name: 'parsePidStat', fixture: fixture('42/stat'), parse: parsePidStat },
  {
    name: 'parseOsRelease',
    fixture: readFileSync(join(REPO, 'test/fixtures/rootfs/etc/os-release'), 'utf8'),
    parse: parseOsRelease,
  },
];

/** A number the parsers hand on to a metric: finite and not negative, or NaN for "unknown". */
function assertCountLike(value: unknown, where: string): void {
  if (typeof value === 'number') {
    assert.ok(Number.isNaN(value) || (Number.isFinite(value) && value >= 0), `${where} = ${value}`);
  } else if (value instanceof Map) {
    for (const [k, v] of value) if (typeof v === 'number') assertCountLike(v, `${where}.${k}`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => assertCountLike(v, `${where}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) assertCountLike(v, `${where}.${k}`);
  }
}

describe('fuzz: /proc parsers', () => {
  for (const p of PARSERS) {
    test(`${p.name}: random text returns or throws ProcfsParseError, never hangs`, (t) => {
      fuzz(t, 300, soup(), (text) => {
        onlyOwnErrors(() => p.parse(text), OWN, text);
      });
    });

    test(`${p.name}: a mutated real fixture returns or throws ProcfsParseError`, (t) => {
      fuzz(t, 300, mutated(p.fixture), (text) => {
        onlyOwnErrors(() => p.parse(text), OWN, text);
      });
    });
  }

  test('parseAuxvPageSize: any bytes, either word size and byte order, return a number or undefined', (t) => {
    fuzz(
      t,
      300,
      fc.uint8Array({ maxLength: 512 }),
      fc.constantFrom(4 as const, 8 as const),
      fc.boolean(),
      (bytes, word, le) => {
        const size = parseAuxvPageSize(Buffer.from(bytes), word, le);
        assert.ok(size === undefined || (Number.isInteger(size) && size >= 0));
      },
    );
  });

  test('parsePidStat: any command name, parentheses and newlines included, comes back whole', (t) => {
    const comm = fc.string({ unit: 'binary', maxLength: 64 });
    fuzz(t, 300, fc.nat(4_194_304), comm, fc.nat(), (pid, name, rss) => {
      const rest = ['S', '1', ...Array.from({ length: 19 }, (_, i) => String(i)), String(rss), '0'];
      const s = parsePidStat(`${pid} (${name}) ${rest.join(' ')}\n`);
      assert.equal(s.pid, pid);
      assert.equal(s.comm, name);
      assert.equal(s.rssPages, rss);
    });
  });

  test('unescapeMountField undoes the kernel escaping of any path', (t) => {
    // The kernel escapes space, tab, newline and backslash as three octal digits.
    const escape = (s: string) =>
      s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
    fuzz(t, 300, fc.string({ unit: 'binary', maxLength: 80 }), (path) => {
      assert.equal(unescapeMountField(escape(path)), path);
    });
  });

  test('values that feed counters (cpu times, network bytes) are never negative or infinite', (t) => {
    // A counter cannot be increased by a negative amount: prom-client would throw its own
    // Error in the middle of a refresh. What the kernel never writes is a ProcfsParseError.
    for (const p of PARSERS.filter((x) => x.name === 'parseStat' || x.name === 'parseNetDev')) {
      fuzz(t, 300, mutated(p.fixture), (text) => {
        assertCountLike(
          onlyOwnErrors(() => p.parse(text), OWN, text),
          p.name,
        );
      });
    }
  });
});

const quiet = createLogger('error', {}, () => {});
const refresh = { signal: new AbortController().signal, deadline: Infinity, log: quiet };
/** Cases the fuzzers found, fixed, and kept. */
describe('fuzz-found regressions', () => {
  const stat = fixture('stat');
  const netDev = fixture('1/net/dev');

  test('a negative cpu column in /proc/stat is a ProcfsParseError, not a counter decrease', () => {
    assert.throws(() => parseStat(stat.replace('cpu  7482', 'cpu  -1')), ProcfsParseError);
  });

  test('a negative or non-decimal btime in /proc/stat is a ProcfsParseError (found with FUZZ_RUNS=10)', () => {
    for (const bad of ['-1', '1e9', '0x10']) {
      assert.throws(
        () => parseStat(stat.replace(/^btime \d+$/m, `btime ${bad}`)),
        ProcfsParseError,
        bad,
      );
    }
  });

  test('a negative, exponent or hexadecimal net/dev column is a ProcfsParseError', () => {
    for (const bad of ['-5', '1e5', '0x10']) {
      assert.throws(() => parseNetDev(netDev.replace('23388', bad)), ProcfsParseError, bad);
    }
  });

  test('a net/dev device name keeps a no-break space (seed 876547581: "\\u00a0!")', () => {
    const devs = parseNetDev(
      'Inter-|   Receive\n face |bytes\n  \u00a0!: ' + Array(16).fill('1').join(' ') + '\n',
    );
    assert.deepEqual(
      devs.map((d) => d.device),
      ['\u00a0!'],
    );
  });

  test('host: a negative vmstat event count fails the refresh with a CollectorError naming it', async (t) => {
    const dir = await tempDir('lookout-fuzz-proc-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const procfs = join(dir, 'proc');
    await cp(PROC, procfs, { recursive: true });
    await writeFile(
      join(procfs, 'vmstat'),
      fixture('vmstat').replace(/^oom_kill \d+$/m, 'oom_kill -3'),
    );
    const collector = createHostCollector(hostSchema.parse({}), {
      procfs,
      sysfs: '/nonexistent',
      rootfs: join(REPO, 'test/fixtures/rootfs'),
    });
    await assert.rejects(polled(collector).collect(refresh), (err: unknown) => {
      assert.ok(err instanceof CollectorError, String(err));
      assert.match(err.message, /lookout_oom_kills_total read -3/);
      return true;
    });
  });
});

const COLLECTOR_OWN = [CollectorError, ProcfsParseError];

/** The host collector's files, each of which a refresh reads. */
const HOST_FILES = [
  'stat',
  'loadavg',
  'meminfo',
  // PID 1's: the host's network namespace, which the collector reads first.
  '1/net/dev',
  'vmstat',
  'sys/fs/file-nr',
  '1/net/stat/nf_conntrack',
  'sys/net/netfilter/nf_conntrack_max',
  'sys/kernel/hostname',
  'sys/kernel/osrelease',
];

describe('fuzz: collectors on a damaged /proc tree', () => {
  test('host: one mutated file per refresh; the refresh resolves or fails with our own error', async (t) => {
    const dir = await tempDir('lookout-fuzz-proc-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const procfs = join(dir, 'proc');
    await cp(PROC, procfs, { recursive: true });
    const paths: HostPaths = {
      procfs,
      sysfs: '/nonexistent',
      rootfs: join(REPO, 'test/fixtures/rootfs'),
    };
    const collector = createHostCollector(hostSchema.parse({}), paths);
    const file = fc.constantFrom(...HOST_FILES);
    await fuzzAsync(
      t,
      200,
      file.chain((f) => fc.tuple(fc.constant(f), mutated(fixture(f)))),
      async ([rel, text]) => {
        await writeFile(join(procfs, rel), text);
        try {
          await onlyOwnErrorsAsync(
            async () => (await polled(collector).collect(refresh)).metrics(),
            COLLECTOR_OWN,
            {
              rel,
              text,
            },
          );
        } finally {
          await writeFile(join(procfs, rel), fixture(rel));
        }
      },
    );
  });

  test('processes: mutated pid stat files; the refresh resolves or fails with our own error', async (t) => {
    const dir = await tempDir('lookout-fuzz-proc-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const procfs = join(dir, 'proc');
    await cp(PROC, procfs, { recursive: true });
    const collector = createProcessesCollector(
      processesSchema.parse({}),
      { procfs, sysfs: '/nonexistent', rootfs: '/' },
      4096,
    );
    t.after(() => polled(collector).close?.());
    await fuzzAsync(t, 200, mutated(fixture('42/stat')), async (text) => {
      await writeFile(join(procfs, '42/stat'), text);
      await onlyOwnErrorsAsync(
        async () => (await polled(collector).collect(refresh)).metrics(),
        COLLECTOR_OWN,
        text,
      );
    });
  });

  test('filesystem: a mutated mount table; the refresh resolves or fails with our own error', async (t) => {
    const dir = await tempDir('lookout-fuzz-proc-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const procfs = join(dir, 'proc');
    await cp(PROC, procfs, { recursive: true });
    const stats = { bsize: 4096, blocks: 100, bfree: 50, bavail: 40, files: 10, ffree: 5 };
    const collector = createFilesystemCollector(
      filesystemSchema.parse({}),
      { procfs, sysfs: '/nonexistent', rootfs: '/' },
      quiet,
      async () => stats, // a parser test: statfs itself is covered by test/collectors.test.ts
    );
    await fuzzAsync(t, 200, mutated(fixture('1/mounts')), async (text) => {
      await writeFile(join(procfs, '1/mounts'), text);
      await onlyOwnErrorsAsync(
        async () => (await polled(collector).collect(refresh)).metrics(),
        COLLECTOR_OWN,
        text,
      );
    });
  });
});
