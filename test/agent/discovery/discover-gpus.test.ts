import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeNvidiaSmiPath } from '../../../agent/discovery/fake-gpus.js';
import { discoverGpus } from '../../../agent/discovery/nvidia-smi.js';
import { fixturePath } from '../../helpers/nvidia-smi-fixtures.js';

const TIMEOUT_MS = 20_000;

function withFake(capture: string): { nvidiaSmiPath: string; timeoutMs: number; env: NodeJS.ProcessEnv } {
  return { nvidiaSmiPath: fakeNvidiaSmiPath(), timeoutMs: TIMEOUT_MS, env: { ...process.env, REMOTEGPU_FAKE_GPUS: fixturePath(capture) } };
}

/** A stand-in nvidia-smi: a shell script with the given body. */
function script(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nvidia-smi-'));
  const path = join(dir, 'nvidia-smi');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('discoverGpus', () => {
  it('finds the 10 A40s of a recorded host through the fake nvidia-smi', async () => {
    const result = await discoverGpus(withFake('a40_x10_nvidia-smi-q.txt'));
    expect(result.kind).toBe('ok');
    expect(result.condition).toBe('');
    expect(result.gpus).toHaveLength(10);
    expect(result.gpus[0]).toEqual({
      index: 0,
      uuid: 'GPU-4e65de01-972e-93cf-b077-181a5378972a',
      model: 'NVIDIA A40',
      memoryBytes: 46068 * 1024 * 1024,
      memoryUsedBytes: 1024 * 1024,
      utilizationPercent: 0,
      temperatureC: 29,
      pciBusId: '00000000:4F:00.0',
      driverVersion: '550.127.05',
      cudaVersion: '12.4',
      health: 'healthy',
      healthReason: '',
      migEnabled: false,
    });
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(result.gpus[9]?.uuid).toBe('GPU-c373ab5a-5eab-b35c-02ee-e76e8b7f0853');
    expect(new Set(result.gpus.map((g) => g.uuid)).size).toBe(10);
  });

  it('reads the MIG mode and the CUDA version', async () => {
    // The a100 capture with MIG switched on for its second GPU.
    const text = readFileSync(fixturePath('a100-sxm4-80gb_x4_nvidia-smi-q.txt'), 'utf8');
    const sections = text.split(/^(?=GPU 00000000:)/m);
    sections[2] = sections[2]!.replace(/(MIG Mode\n\s+Current\s+: )Disabled/, '$1Enabled');
    const capture = join(mkdtempSync(join(tmpdir(), 'capture-')), 'a100-mig.txt');
    writeFileSync(capture, sections.join(''));
    const result = await discoverGpus({ ...withFake('a100-sxm4-80gb_x4_nvidia-smi-q.txt'), env: { ...process.env, REMOTEGPU_FAKE_GPUS: capture } });
    expect(result.kind).toBe('ok');
    expect(result.gpus.map((g) => g.migEnabled)).toEqual([false, true, false, false]);
    expect(result.gpus.map((g) => g.cudaVersion)).toEqual(Array(4).fill('12.5'));
  });

  it('reports a CPU-only host when nvidia-smi does not exist', async () => {
    const result = await discoverGpus({ nvidiaSmiPath: '/nonexistent/bin/nvidia-smi', timeoutMs: TIMEOUT_MS });
    expect(result).toEqual({ kind: 'cpu-only', gpus: [], condition: 'nvidia-smi not found: CPU-only host' });
  });

  it('classifies a failing nvidia-smi without throwing', async () => {
    const path = script(`cat '${fixturePath('error_driver-not-loaded_nvidia-smi.txt')}' | tail -n +2\nexit 9`);
    const result = await discoverGpus({ nvidiaSmiPath: path, timeoutMs: TIMEOUT_MS });
    expect(result.kind).toBe('driver-missing');
    expect(result.gpus).toEqual([]);
    expect(result.condition).toMatch(/NVIDIA driver not loaded/);
  });

  it('classifies a recorded failure replayed by the fake', async () => {
    const result = await discoverGpus(withFake('error_driver-library-version-mismatch_nvidia-smi_exit18.txt'));
    expect(result.kind).toBe('version-mismatch');
  });

  it('retries without mig.mode.current on drivers that do not know it', async () => {
    const path = script(
      [
        'case "$1" in',
        `  *mig.mode.current*) echo 'Field "mig.mode.current" is not a valid field to query.'; echo; exit 2;;`,
        `  --query-gpu=*) echo '0, GPU-old, Tesla K80, 11441, 0, 0, 31, 0000:04:00.0, 418.87.00';;`,
        `  *) echo 'no such thing'; exit 2;;`,
        'esac',
      ].join('\n'),
    );
    const result = await discoverGpus({ nvidiaSmiPath: path, timeoutMs: TIMEOUT_MS });
    expect(result.kind).toBe('ok');
    expect(result.gpus).toHaveLength(1);
    expect(result.gpus[0]).toMatchObject({ uuid: 'GPU-old', model: 'Tesla K80', pciBusId: '00000000:04:00.0', cudaVersion: '', migEnabled: false });
  });

  it('reports a lost GPU next to the working ones', async () => {
    const path = script(
      [
        `echo '0, GPU-a, NVIDIA GeForce RTX 2080 Ti, 11019, 0, 0, 35, 00000000:0A:00.0, 515.65.01, [N/A]'`,
        `echo 'Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error'`,
        'exit 15',
      ].join('\n'),
    );
    const result = await discoverGpus({ nvidiaSmiPath: path, timeoutMs: TIMEOUT_MS });
    expect(result.kind).toBe('gpu-lost');
    expect(result.gpus.map((g) => g.health)).toEqual(['healthy', 'unhealthy']);
    expect(result.condition).toContain('00000000:0B:00.0');
  });

  it('gives up on an nvidia-smi that hangs', async () => {
    const result = await discoverGpus({ nvidiaSmiPath: script('exec sleep 30'), timeoutMs: 300 });
    expect(result.kind).toBe('error');
    expect(result.condition).toContain('did not answer within 300 ms');
  });

  it('reports a binary it cannot execute', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvidia-smi-'));
    const path = join(dir, 'nvidia-smi');
    writeFileSync(path, 'not executable');
    chmodSync(path, 0o644);
    const result = await discoverGpus({ nvidiaSmiPath: path, timeoutMs: TIMEOUT_MS });
    // root may execute any file with an x bit; here there is none, so spawn fails with EACCES.
    expect(result.kind).toBe('error');
    expect(result.condition).toContain(path);
  });

  it('reports garbage output as an error', async () => {
    const result = await discoverGpus({ nvidiaSmiPath: script("echo 'something else entirely'"), timeoutMs: TIMEOUT_MS });
    expect(result).toEqual({ kind: 'error', gpus: [], condition: 'unexpected nvidia-smi output: something else entirely' });
  });
});
