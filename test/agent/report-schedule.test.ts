import { describe, expect, it } from 'vitest';
import { DEFAULT_REPORT_JITTER, firstReportDelayMs, jitteredIntervalMs } from '../../agent/report-schedule.js';
import { loadAgentConfig } from '../../agent/config.js';

// Issue 12: agents do not report in lockstep. Pure functions; `random` is given.

describe('report schedule jitter', () => {
  const randoms = [0, 0.001, 0.25, 0.5, 0.75, 0.999, 0.9999999];

  it('spreads each pause over ±15% of the interval by default, within bounds', () => {
    expect(DEFAULT_REPORT_JITTER).toBe(0.15);
    for (const r of randoms) {
      const ms = jitteredIntervalMs(10_000, DEFAULT_REPORT_JITTER, () => r);
      expect(ms).toBeGreaterThanOrEqual(8_500);
      expect(ms).toBeLessThanOrEqual(11_500);
    }
    expect(jitteredIntervalMs(10_000, 0.15, () => 0)).toBe(8_500);
    expect(jitteredIntervalMs(10_000, 0.15, () => 0.5)).toBe(10_000);
    expect(jitteredIntervalMs(10_000, 0.15, () => 1)).toBe(11_500);
  });

  it('with Math.random the pauses actually differ, and stay within bounds', () => {
    const pauses = Array.from({ length: 1000 }, () => jitteredIntervalMs(10_000, 0.2));
    expect(Math.min(...pauses)).toBeGreaterThanOrEqual(8_000);
    expect(Math.max(...pauses)).toBeLessThanOrEqual(12_000);
    expect(new Set(pauses).size).toBeGreaterThan(100);
  });

  it('jitter 0 keeps the interval; jitter is clamped to 50% and never gives a pause under 1 ms', () => {
    expect(jitteredIntervalMs(10_000, 0, () => 0.9)).toBe(10_000);
    expect(jitteredIntervalMs(10_000, 5, () => 0)).toBe(5_000);
    expect(jitteredIntervalMs(10_000, -1, () => 0)).toBe(10_000);
    expect(jitteredIntervalMs(1, 0.5, () => 0)).toBe(1);
  });

  it('the first report waits a random part of jitter × interval', () => {
    for (const r of randoms) {
      const ms = firstReportDelayMs(10_000, 0.15, () => r);
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThanOrEqual(1_500);
    }
    expect(firstReportDelayMs(10_000, 0, () => 0.7)).toBe(0);
    expect(firstReportDelayMs(10_000, 0.15, () => 1)).toBe(1_500);
  });

  it('REMOTEGPU_REPORT_JITTER_PERCENT: default 15, 0-50', () => {
    expect(loadAgentConfig({}, {}).reportJitter).toBe(0.15);
    expect(loadAgentConfig({ REMOTEGPU_REPORT_JITTER_PERCENT: '0' }, {}).reportJitter).toBe(0);
    expect(() => loadAgentConfig({ REMOTEGPU_REPORT_JITTER_PERCENT: '51' }, {})).toThrow(/REMOTEGPU_REPORT_JITTER_PERCENT/);
  });
});
