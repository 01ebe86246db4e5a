import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { fakeNvidiaSmiPath } from '../../../agent/discovery/fake-gpus.js';
import { HostScan } from '../../../agent/host-scan.js';
import { fixturePath } from '../../helpers/nvidia-smi-fixtures.js';

// Host discovery (the host's CPU, memory, OS, addresses and disk, then its GPUs through nvidia-smi)
// runs in the agent's process every 30 s: it must never block the event loop that serves the
// agent's gRPC answers (under `npm start`, the controller's too). The delay is measured with
// perf_hooks.monitorEventLoopDelay over a first discovery and five rescans with the fake
// nvidia-smi; the bound is loose (a whole discovery takes longer than it, a synchronous process
// call per network interface blew through it), not a speed figure: bench/discovery-event-loop.ts
// prints those.

/** Max event-loop delay allowed during discovery. */
const MAX_DELAY_MS = 200;

describe('host discovery and the event loop', () => {
  it('never blocks the event loop', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rgpu-discovery-'));
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    try {
      const options = {
        dataDir,
        nvidiaSmiPath: fakeNvidiaSmiPath(),
        nvidiaSmiEnv: { ...process.env, REMOTEGPU_FAKE_GPUS: fixturePath('a40_x10_nvidia-smi-q.txt') },
        gpuScanMs: 0,
        hostScanMs: 0,
      };
      histogram.enable();
      // The histogram records from its second sample on: let it take one before discovery starts.
      await new Promise((r) => setTimeout(r, 25));
      const scan = await HostScan.discover(options);
      const facts = scan.factsSource({ publicAddress: '127.0.0.1', agentAddress: '127.0.0.1:1', agentVersion: 'test', gpuMode: 'devices', cpuCores: 0 });
      // Both rescan intervals are 0: every call discovers the host and its GPUs again.
      for (let i = 0; i < 5; i++) expect((await facts()).gpus).toHaveLength(10);
      histogram.disable();
      expect(scan.gpus.kind).toBe('ok');
      expect(scan.host.cpuCores).toBeGreaterThan(0);
      const maxMs = histogram.max / 1e6;
      expect(maxMs, `max event-loop delay ${maxMs.toFixed(0)} ms (p99 ${(histogram.percentile(99) / 1e6).toFixed(0)} ms)`).toBeLessThan(MAX_DELAY_MS);
    } finally {
      histogram.disable();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
