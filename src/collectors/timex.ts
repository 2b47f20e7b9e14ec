import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry } from '../lib/prom.js';
import { z } from 'zod';
import {
  CollectorError,
  NothingToCollect,
  collectorSchema,
  registerCollector,
  type Collector,
} from './collector.js';
import { setCounterTo } from './counter.js';

export const timexSchema = collectorSchema({ enabled: true, interval: '15s', timeout: '5s' }, {});
export type TimexConfig = z.output<typeof timexSchema>;

/**
 * struct timex as adjtimex(2) fills it with modes = 0 (read only, no privilege needed),
 * plus the call's return value: the clock state (TIME_OK 0 … TIME_ERROR 5).
 */
export interface RawTimex {
  state: number;
  offset: number;
  freq: number;
  maxerror: number;
  esterror: number;
  status: number;
  constant: number;
  precision: number;
  tolerance: number;
  tick: number;
  ppsfreq: number;
  jitter: number;
  shift: number;
  stabil: number;
  jitcnt: number;
  calcnt: number;
  errcnt: number;
  stbcnt: number;
  tai: number;
}

export interface TimexAddon {
  read(): RawTimex;
}

/** adjtimex(2)'s return value when the clock is not synchronised to a reliable source. */
const TIME_ERROR = 5;
/** status bit: offset and jitter are in nanoseconds, not microseconds. */
const STA_NANO = 0x2000;
/** freq, ppsfreq and stabil are ppm with a 16-bit fraction (adjtimex(2), NOTES). */
const PPM16FRAC = 1_000_000 * 65_536;

/** The addon scripts/build-native.mjs builds at `npm install`, relative to src/ and dist/ alike. */
export const ADDON_PATH = fileURLToPath(
  new URL('../../native/timex/build/Release/timex.node', import.meta.url),
);

/**
 * Loads the addon: one dlopen on the first refresh, nothing when the collector is
 * disabled. Its absence is the install's doing (no compiler at `npm install`, a build
 * with --ignore-scripts), said in the NothingToCollect message, not a failure that pages.
 */
export function loadTimexAddon(path = ADDON_PATH): TimexAddon {
  if (process.platform !== 'linux') {
    throw new NothingToCollect(`adjtimex(2) is Linux only; this is ${process.platform}`);
  }
  try {
    return createRequire(import.meta.url)(path) as TimexAddon;
  } catch (err) {
    const what =
      (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
        ? 'is not built'
        : `does not load (${(err as Error).message})`;
    throw new NothingToCollect(
      `the adjtimex addon ${path} ${what}: npm install builds it where a C compiler is installed (or npm run build:native), then restart lookout`,
    );
  }
}

/** node_exporter's timex collector's values, from the raw struct, in its units. */
export function timexValues(t: RawTimex) {
  const divisor = (t.status & STA_NANO) !== 0 ? 1e9 : 1e6;
  return {
    syncStatus: t.state === TIME_ERROR ? 0 : 1,
    offsetSeconds: t.offset / divisor,
    frequencyAdjustmentRatio: 1 + t.freq / PPM16FRAC,
    maxerrorSeconds: t.maxerror / 1e6,
    estimatedErrorSeconds: t.esterror / 1e6,
    status: t.status,
    loopTimeConstant: t.constant,
    tickSeconds: t.tick / 1e6,
    ppsFrequencyHertz: t.ppsfreq / PPM16FRAC,
    ppsJitterSeconds: t.jitter / divisor,
    ppsShiftSeconds: t.shift,
    ppsStabilityHertz: t.stabil / PPM16FRAC,
    ppsJitterTotal: t.jitcnt,
    ppsCalibrationTotal: t.calcnt,
    ppsErrorTotal: t.errcnt,
    ppsStabilityExceededTotal: t.stbcnt,
    taiOffsetSeconds: t.tai,
  };
}

type TimexValues = ReturnType<typeof timexValues>;

/**
 * Every family, in node_exporter's order and with its meaning and units, named
 * lookout_timex_* for node_timex_*; its rules and dashboards carry over by the prefix.
 */
const FAMILIES: readonly { name: string; help: string; key: keyof TimexValues; counter?: true }[] =
  [
    {
      name: 'lookout_timex_sync_status',
      help: 'Whether the kernel counts the clock as synchronised to a reliable source (1) or not (0: adjtimex(2) returns TIME_ERROR; no NTP daemon has disciplined it for hours, or chrony runs without rtcsync and leaves the flag set while keeping maxerror current).',
      key: 'syncStatus',
    },
    {
      name: 'lookout_timex_offset_seconds',
      help: 'Time offset between the local clock and the reference clock, as the NTP daemon last told the kernel.',
      key: 'offsetSeconds',
    },
    {
      name: 'lookout_timex_frequency_adjustment_ratio',
      help: 'Local clock frequency adjustment (1 is none).',
      key: 'frequencyAdjustmentRatio',
    },
    {
      name: 'lookout_timex_maxerror_seconds',
      help: 'Maximum error of the clock, in seconds; the kernel adds 500 ppm to it each second the NTP daemon does not reset it, up to 16 s.',
      key: 'maxerrorSeconds',
    },
    {
      name: 'lookout_timex_estimated_error_seconds',
      help: 'Estimated error of the clock, in seconds.',
      key: 'estimatedErrorSeconds',
    },
    {
      name: 'lookout_timex_status',
      help: 'The clock status bits (STA_*; 64 = STA_UNSYNC).',
      key: 'status',
    },
    {
      name: 'lookout_timex_loop_time_constant',
      help: 'Phase-locked loop time constant.',
      key: 'loopTimeConstant',
    },
    {
      name: 'lookout_timex_tick_seconds',
      help: 'Seconds between clock ticks.',
      key: 'tickSeconds',
    },
    {
      name: 'lookout_timex_pps_frequency_hertz',
      help: 'Pulse per second frequency.',
      key: 'ppsFrequencyHertz',
    },
    {
      name: 'lookout_timex_pps_jitter_seconds',
      help: 'Pulse per second jitter.',
      key: 'ppsJitterSeconds',
    },
    {
      name: 'lookout_timex_pps_shift_seconds',
      help: 'Pulse per second interval duration.',
      key: 'ppsShiftSeconds',
    },
    {
      name: 'lookout_timex_pps_stability_hertz',
      help: 'Pulse per second stability, average of recent frequency changes.',
      key: 'ppsStabilityHertz',
    },
    {
      name: 'lookout_timex_pps_jitter_total',
      help: 'Pulse per second count of jitter limit exceeded events.',
      key: 'ppsJitterTotal',
      counter: true,
    },
    {
      name: 'lookout_timex_pps_calibration_total',
      help: 'Pulse per second count of calibration intervals.',
      key: 'ppsCalibrationTotal',
      counter: true,
    },
    {
      name: 'lookout_timex_pps_error_total',
      help: 'Pulse per second count of calibration errors.',
      key: 'ppsErrorTotal',
      counter: true,
    },
    {
      name: 'lookout_timex_pps_stability_exceeded_total',
      help: 'Pulse per second count of stability limit exceeded events.',
      key: 'ppsStabilityExceededTotal',
      counter: true,
    },
    {
      name: 'lookout_timex_tai_offset_seconds',
      help: 'International Atomic Time (TAI) offset.',
      key: 'taiOffsetSeconds',
    },
  ];

/**
 * The timex collector: one adjtimex(2) call per refresh, through a small N-API addon
 * (native/timex) loaded on the first refresh — a syscall, no child process, no thread-pool
 * hop. The kernel's clock is not namespaced, so in a container it is the host's.
 */
export function createTimexCollector(load: () => TimexAddon = loadTimexAddon): Collector {
  let addon: TimexAddon | undefined;
  let unavailable: unknown;
  const registry = new Registry();
  const metrics = FAMILIES.map((f) => ({
    key: f.key,
    metric: f.counter
      ? new Counter({ name: f.name, help: f.help, registers: [registry] })
      : new Gauge({ name: f.name, help: f.help, registers: [registry] }),
  }));
  return {
    async collect() {
      // Loaded once; a failed load is not tried again (a require that fails stats the
      // disk), so a build made afterwards is picked up at the next start.
      if (unavailable !== undefined) throw unavailable;
      if (addon === undefined) {
        try {
          addon = load();
        } catch (err) {
          unavailable = err;
          throw err;
        }
      }
      let raw: RawTimex;
      try {
        raw = addon.read();
      } catch (err) {
        throw new CollectorError('adjtimex(2) failed', { cause: err });
      }
      const v = timexValues(raw);
      for (const { key, metric } of metrics) {
        if (metric instanceof Counter) setCounterTo(metric, v[key]);
        else metric.set(v[key]);
      }
      return registry;
    },
  };
}

registerCollector({
  name: 'timex',
  description:
    "The kernel clock's synchronisation from adjtimex(2): sync status, offset, maximum and estimated error, frequency, PPS (lookout_timex_*)",
  metrics: FAMILIES.map((f) => f.name),
  schema: timexSchema,
  create: () => createTimexCollector(),
});
