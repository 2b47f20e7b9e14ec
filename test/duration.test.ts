import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../src/config/duration.js';

describe("durations in Prometheus's grammar", () => {
  it('parses every unit and their combinations, largest first', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['15s', 15_000],
      ['90s', 90_000],
      ['1m30s', 90_000],
      ['1h30m', 5_400_000],
      ['2h', 7_200_000],
      ['1d', 86_400_000],
      ['1w', 604_800_000],
      ['1y', 31_536_000_000],
      ['1d12h', 129_600_000],
      ['1s500ms', 1500],
      ['0s', 0],
      ['0', 0],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });

  it('rejects what Prometheus rejects: fractions, bare numbers, wrong order, repeats, spaces', () => {
    for (const text of ['', '1.5m', '15', '-5s', '30m1h', '1m1m', ' 5s', '5 s', '5S', 'ms', '1x'])
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
  });

  it('formats milliseconds back the way Prometheus writes them, round-tripping', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [1500, '1s500ms'],
      [90_000, '1m30s'],
      [5_400_000, '1h30m'],
      [86_400_000, '1d'],
      [694_800_000, '1w1d1h'],
    ];
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text, String(ms));
      assert.equal(parseDuration(text), ms, text);
    }
  });
});
