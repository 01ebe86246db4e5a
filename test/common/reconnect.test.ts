import { describe, expect, it } from 'vitest';
import { DEFAULT_RECONNECT_MAX_MS, reconnectChannelOptions, reconnectDelayMs } from '../../common/reconnect.js';
import { loadAgentConfig } from '../../agent/config.js';

// The bounds every reconnect between controller and agent keeps: before them, gRPC's own backoff
// grew to 120 s and the reporter's to 30 s, so an agent came back up to ~2 minutes after the
// controller did.

describe('reconnectDelayMs', () => {
  const bounds = { minMs: 500, maxMs: 5_000 };

  it('grows exponentially from the minimum and never exceeds the maximum, whatever the jitter', () => {
    for (const random of [() => 0, () => 0.5, () => 0.999999]) {
      const delays = Array.from({ length: 40 }, (_, i) => reconnectDelayMs(i + 1, bounds, random));
      expect(Math.max(...delays)).toBeLessThanOrEqual(5_000);
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(250);
      for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    }
    expect(reconnectDelayMs(1, bounds, () => 0.999999)).toBe(500);
    expect(reconnectDelayMs(2, bounds, () => 0.999999)).toBe(1_000);
    expect(reconnectDelayMs(1_000, bounds, () => 0)).toBe(2_500);
  });

  it('jitters: many agents retrying after the same outage do not all retry at the same moment', () => {
    const delays = new Set(Array.from({ length: 50 }, () => reconnectDelayMs(10, bounds)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(2_500);
  });
});

describe('reconnectChannelOptions', () => {
  it("bounds gRPC's reconnect backoff (jitter included) by the maximum, and turns keepalive on", () => {
    for (const max of [DEFAULT_RECONNECT_MAX_MS, 100, 60_000]) {
      const o = reconnectChannelOptions(max);
      // grpc-js adds up to 20% jitter to its ceiling.
      const [initial, ceiling] = [Number(o['grpc.initial_reconnect_backoff_ms']), Number(o['grpc.max_reconnect_backoff_ms'])];
      expect(ceiling * 1.2).toBeLessThanOrEqual(max);
      expect(initial).toBeLessThanOrEqual(ceiling);
    }
    expect(reconnectChannelOptions()).toMatchObject({ 'grpc.max_reconnect_backoff_ms': 4_166, 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 });
  });
});

describe('agent config: controllers and the reconnect bound', () => {
  it('takes one address or several separated by commas, and REMOTEGPU_RECONNECT_MAX_MS (default 5000)', () => {
    expect(loadAgentConfig({})).toMatchObject({ controller: '127.0.0.1:9090', controllers: ['127.0.0.1:9090'], reconnectMaxMs: 5_000 });
    expect(loadAgentConfig({ REMOTEGPU_CONTROLLER: 'ctl-a:9090, ctl-b:9090,[fd00::1]:9090', REMOTEGPU_RECONNECT_MAX_MS: '2000' })).toMatchObject({
      controller: 'ctl-a:9090,ctl-b:9090,[fd00::1]:9090',
      controllers: ['ctl-a:9090', 'ctl-b:9090', '[fd00::1]:9090'],
      reconnectMaxMs: 2_000,
    });
    expect(() => loadAgentConfig({ REMOTEGPU_CONTROLLER: 'ctl-a:9090,,ctl-b:9090' })).toThrow(/REMOTEGPU_CONTROLLER="ctl-a:9090,,ctl-b:9090": expected HOST:PORT, or several/);
    expect(() => loadAgentConfig({ REMOTEGPU_CONTROLLER: 'ctl-a:9090,ctl-b' })).toThrow(/REMOTEGPU_CONTROLLER/);
    expect(() => loadAgentConfig({ REMOTEGPU_RECONNECT_MAX_MS: '10' })).toThrow(/REMOTEGPU_RECONNECT_MAX_MS="10": expected an integer >= 100/);
  });
});
