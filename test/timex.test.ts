/**
 * The timex collector: adjtimex(2) through the native addon native/timex, built by
 * scripts/build-native.mjs at `npm install`.
 *
 * - The scaling of struct timex into node_exporter's units (a parser test on fixed input).
 * - Without the addon (no compiler at install time), the collector says so as "nothing to
 *   collect", and the build script exits 0 so `npm install` still succeeds.
 * - The addon read here, as root and as nobody without capabilities (adjtimex with
 *   modes = 0 changes nothing and needs no privilege), matches busybox's adjtimex.
 * - A running lookout (dist/) and prometheus-node-exporter's timex collector agree.
 *
 * Needs `npm run build` (dist/) and the addon (`npm run build:native`; `npm ci` builds it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { NothingToCollect } from '../src/collectors/collector.js';
import {
  createTimexCollector,
  loadTimexAddon,
  timexValues,
  type RawTimex,
} from '../src/collectors/timex.js';
import { createLogger } from '../src/lib/log.js';
import { findSamples, parseExposition, sampleValue, type Family } from './helpers/exposition.js';
import {
  REPO,
  eventually,
  startLookout,
  startNodeExporter,
  tempDir,
  type Running,
} from './helpers/procs.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const ctx = {
  signal: new AbortController().signal,
  deadline: Infinity,
  log: createLogger('error', {}, () => undefined),
};

const RAW: RawTimex = {
  state: 0,
  offset: -1500,
  freq: 65536 * 12,
  maxerror: 250_000,
  esterror: 1_200,
  status: 0x0001,
  constant: 7,
  precision: 1,
  tolerance: 32768000,
  tick: 10000,
  ppsfreq: 65536 * 3,
  jitter: 40,
  shift: 4,
  stabil: 65536,
  jitcnt: 2,
  calcnt: 9,
  errcnt: 1,
  stbcnt: 3,
  tai: 37,
};

describe('timex: struct timex in node_exporter units', () => {
  test('microsecond offset and jitter, ppm frequencies, TIME_OK is synchronised', () => {
    const v = timexValues(RAW);
    assert.equal(v.syncStatus, 1);
    assert.equal(v.offsetSeconds, -0.0015);
    assert.equal(v.frequencyAdjustmentRatio, 1 + 12 / 1e6);
    assert.equal(v.maxerrorSeconds, 0.25);
    assert.equal(v.estimatedErrorSeconds, 0.0012);
    assert.equal(v.tickSeconds, 0.01);
    assert.equal(v.ppsJitterSeconds, 0.00004);
    assert.equal(v.ppsFrequencyHertz, 3 / 1e6);
    assert.equal(v.ppsStabilityHertz, 1 / 1e6);
    assert.equal(v.taiOffsetSeconds, 37);
    assert.equal(v.ppsCalibrationTotal, 9);
  });

  test('STA_NANO: offset and jitter in nanoseconds; TIME_ERROR is not synchronised', () => {
    const v = timexValues({ ...RAW, state: 5, status: 0x2000 | 0x0040, offset: 2_500_000 });
    assert.equal(v.syncStatus, 0);
    assert.equal(v.offsetSeconds, 0.0025);
    assert.equal(v.ppsJitterSeconds, 40e-9);
    // maxerror and esterror are microseconds whatever STA_NANO says.
    assert.equal(v.maxerrorSeconds, 0.25);
  });
});

describe('timex without its addon', () => {
  test('the collector reports nothing to collect, names the file and how to build it, and loads once', async () => {
    let loads = 0;
    const c = createTimexCollector(() => {
      loads++;
      return loadTimexAddon('/nonexistent/lookout/timex.node');
    });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(c.collect!(ctx), (err: unknown) => {
        assert.ok(err instanceof NothingToCollect, String(err));
        assert.match(err.message, /\/nonexistent\/lookout\/timex\.node is not built/);
        assert.match(err.message, /npm run build:native/);
        return true;
      });
    }
    assert.equal(loads, 1);
  });

  test('the install script exits 0 without a working compiler and says why; with one it builds a loadable addon', async () => {
    const dir = await tempDir('lookout-native-');
    try {
      await mkdir(join(dir, 'scripts'));
      await cp(join(REPO, 'scripts/build-native.mjs'), join(dir, 'scripts/build-native.mjs'));
      await cp(join(REPO, 'native/timex'), join(dir, 'native/timex'), {
        recursive: true,
        filter: (src) => !src.includes('/build'),
      });
      const built = join(dir, 'native/timex/build/Release/timex.node');
      const broken = await run(process.execPath, [join(dir, 'scripts/build-native.mjs')], {
        env: { ...process.env, CC: '/bin/false' },
      });
      assert.match(broken.stderr, /native\/timex not built \(node-gyp rebuild exited 1/);
      assert.match(broken.stderr, /the timex collector will report nothing to collect/);
      assert.equal(existsSync(built), false);
      const good = await run(process.execPath, [join(dir, 'scripts/build-native.mjs')]);
      assert.equal(good.stderr, '');
      const raw = loadTimexAddon(built).read();
      assert.ok(raw.state >= 0 && raw.state <= 5, `clock state ${raw.state}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** busybox's adjtimex, an independent reader of the same kernel state. */
async function busyboxAdjtimex(): Promise<{ state: number; status: number; maxerror: number }> {
  const { stdout } = await run('busybox', ['adjtimex']);
  const field = (re: RegExp) => {
    const m = re.exec(stdout);
    assert.ok(m, `${re} in busybox adjtimex output:\n${stdout}`);
    return Number(m[1]);
  };
  return {
    state: field(/return value:\s*(-?\d+)/),
    status: field(/status:\s*(\d+)/),
    maxerror: field(/maxerror:\s*(\d+)/),
  };
}

describe(
  'timex on this machine',
  { skip: process.platform !== 'linux' && 'adjtimex(2) is Linux only' },
  () => {
    test(
      'as root: the values busybox adjtimex reads',
      { skip: !isRoot && 'needs root' },
      async () => {
        const text = await (await createTimexCollector().collect!(ctx)).metrics();
        const bb = await busyboxAdjtimex();
        assert.equal(sampleValue(text, 'lookout_timex_sync_status'), bb.state === 5 ? 0 : 1);
        assert.equal(sampleValue(text, 'lookout_timex_status'), bb.status);
        // maxerror grows 500 µs a second between NTP updates: a few ms between two reads.
        const maxerror = sampleValue(text, 'lookout_timex_maxerror_seconds')!;
        assert.ok(
          Math.abs(maxerror - bb.maxerror / 1e6) < 0.01,
          `${maxerror} vs ${bb.maxerror} µs`,
        );
        assert.equal(findSamples(text, /^lookout_timex_/).length, 17);
      },
    );

    test(
      'as nobody without capabilities: the same values, no privilege needed',
      { skip: !isRoot && 'needs root to run a child as nobody' },
      async () => {
        const { stdout } = await run(
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            '--inh-caps=-all',
            '--bounding-set=-all',
            process.execPath,
            '--import',
            'tsx',
            join(REPO, 'test/helpers/unprivileged-timex.ts'),
          ],
          { cwd: REPO },
        );
        const out = JSON.parse(stdout) as { uid: number; capEff: string; text: string };
        assert.equal(out.uid, 65534);
        assert.equal(BigInt(`0x${out.capEff}`), 0n, 'no effective capabilities');
        const bb = await busyboxAdjtimex();
        assert.equal(sampleValue(out.text, 'lookout_timex_sync_status'), bb.state === 5 ? 0 : 1);
        assert.equal(sampleValue(out.text, 'lookout_timex_status'), bb.status);
      },
    );
  },
);

async function scrape(url: string): Promise<Family[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

describe(
  'lookout agrees with node_exporter timex collector',
  { skip: process.platform !== 'linux' && 'adjtimex(2) is Linux only' },
  () => {
    let lookout: Running | undefined;
    let node: Running | undefined;
    before(async () => {
      lookout = await startLookout('collectors:\n  timex: { interval: 1s, timeout: 1s }\n');
      node = await startNodeExporter(['--collector.disable-defaults', '--collector.timex']);
    });
    after(async () => {
      await Promise.all([lookout?.stop(), node?.stop()]);
    });

    test('sync status, status bits and tick equal; offset, errors and frequency close', async () => {
      const l = await eventually(
        async () => {
          const f = await scrape(lookout!.url);
          return sampleValue(f, 'lookout_timex_sync_status') !== undefined ? f : undefined;
        },
        10_000,
        'lookout to export lookout_timex_sync_status',
      );
      const n = await scrape(node!.url);
      const pair = (suffix: string) => {
        const lv = sampleValue(l, `lookout_timex_${suffix}`);
        const nv = sampleValue(n, `node_timex_${suffix}`);
        assert.ok(lv !== undefined && nv !== undefined, `${suffix}: lookout ${lv}, node ${nv}`);
        return [lv, nv] as const;
      };
      assert.equal(sampleValue(l, 'lookout_collector_success', { collector: 'timex' }), 1);
      for (const exact of ['sync_status', 'status', 'tick_seconds', 'tai_offset_seconds']) {
        const [lv, nv] = pair(exact);
        assert.equal(lv, nv, exact);
      }
      // Read up to a second apart (lookout refreshes each second): the offset is the last
      // one the NTP daemon set, maxerror grows 0.5 ms a second, the frequency is steady.
      const close: [string, number][] = [
        ['offset_seconds', 0.005],
        ['maxerror_seconds', 0.01],
        ['estimated_error_seconds', 0.01],
        ['frequency_adjustment_ratio', 1e-6],
      ];
      for (const [suffix, tolerance] of close) {
        const [lv, nv] = pair(suffix);
        assert.ok(Math.abs(lv - nv) <= tolerance, `${suffix}: lookout ${lv}, node ${nv}`);
      }
      // Every node_timex_* family has its lookout_timex_* twin.
      const nodeNames = new Set(
        n.filter((f) => f.name.startsWith('node_timex_')).map((f) => f.name),
      );
      const lookoutNames = new Set(
        l.filter((f) => f.name.startsWith('lookout_timex_')).map((f) => f.name),
      );
      for (const name of nodeNames)
        assert.ok(lookoutNames.has(name.replace(/^node_/, 'lookout_')), `${name} has no twin`);
    });
  },
);
