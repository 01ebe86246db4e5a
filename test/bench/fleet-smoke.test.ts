import { describe, expect, it } from 'vitest';
import { runFleetBench } from '../../bench/fleet/run.js';

// The fleet bench's machinery at a small size (bench/fleet/, README "Fleet bench"): the real
// controller as a process on PostgreSQL, 100 hollow hosts registering and reporting over mutual
// TLS, a few hundred one-GPU creates at 64 concurrent, and a small read test. It asserts
// correctness only (no GPU or port reserved twice, every create running); it prints its figures
// but never judges speed. PostgreSQL: REMOTEGPU_TEST_DATABASE_URL (CI), else a private server.

describe('fleet bench smoke', () => {
  it('places 300 creates on 100 hollow hosts with no double allocation, all running', { timeout: 300_000 }, async () => {
    const lines: string[] = [];
    const result = await runFleetBench({
      hosts: 100,
      creates: 300,
      concurrency: 64,
      createMaxSeconds: 240,
      fill: false,
      envs: 2000,
      skipReads: false,
      readConcurrency: 4,
      readSeconds: 1,
      reportIntervalMs: 2000,
      reportWindowS: 1,
      reportSpread: 'even',
      insecure: false,
      registerConcurrency: 16,
      databaseUrl: process.env.REMOTEGPU_TEST_DATABASE_URL || undefined,
      runningTimeoutS: 180,
      skipBaselines: true,
      users: 4,
      controllerEnv: {},
      log: (line) => lines.push(line),
    });
    console.log(lines.join('\n'));
    expect(result.registration.hosts).toBe(100);
    expect(result.creates.created).toBe(300);
    expect(result.correctness.problems).toEqual([]);
    expect(result.correctness.gpusReservedTwice).toBe(0);
    expect(result.correctness.portsReservedTwice).toBe(0);
    expect(result.running.running).toBe(300);
    expect(result.reads?.total).toBe(result.reads?.totalExpected);
    expect(result.reads?.detail.errors).toBe(0);
  });
});
