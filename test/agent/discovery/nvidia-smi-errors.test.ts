import { describe, expect, it } from 'vitest';
import { classifyNvidiaSmiFailure } from '../../../agent/discovery/nvidia-smi.js';
import type { GpuDiscoveryKind } from '../../../agent/discovery/types.js';
import { listFixtures, readFixture } from '../../helpers/nvidia-smi-fixtures.js';

interface ErrorCase {
  readonly file: string;
  /** The exit status the source reports, or the man page's code for that message where it shows none. */
  readonly exitCode: number;
  readonly kind: GpuDiscoveryKind;
  /** Words the operator must see. */
  readonly condition: RegExp;
}

const CASES: readonly ErrorCase[] = [
  { file: 'error_driver-library-version-mismatch_nvidia-smi_exit18.txt', exitCode: 18, kind: 'version-mismatch', condition: /version mismatch \(NVML library 535\.161\).*reboot/ },
  { file: 'error_driver-not-loaded_nvidia-smi.txt', exitCode: 9, kind: 'driver-missing', condition: /driver not loaded/i },
  { file: 'error_gpu-lost-unknown-error_nvidia-smi.txt', exitCode: 15, kind: 'gpu-lost', condition: /00000000:0B:00\.0.*Unknown Error/ },
  { file: 'error_no-devices-found_nvidia-smi.txt', exitCode: 6, kind: 'no-devices', condition: /found no GPU/ },
  { file: 'error_no-supported-gpus_nvidia-smi_exit255.txt', exitCode: 255, kind: 'no-devices', condition: /no supported GPU/ },
];

describe('classifyNvidiaSmiFailure on recorded errors', () => {
  it('has a case for every error output', () => {
    const outputs = listFixtures(/^error_.*\.txt$/).filter((f) => f !== 'error_nvidia-smi-return-codes.txt');
    expect(CASES.map((c) => c.file).sort()).toEqual(outputs);
  });

  it.each(CASES)('$file → $kind', ({ file, exitCode, kind, condition }) => {
    const text = readFixture(file);
    // nvidia-smi prints these on stdout; classify the same whichever stream carries them.
    for (const run of [{ exitCode, stdout: text, stderr: '' }, { exitCode, stdout: '', stderr: text }]) {
      const result = classifyNvidiaSmiFailure(run);
      expect(result.kind).toBe(kind);
      expect(result.condition).toMatch(condition);
    }
  });

  it.each(CASES.filter((c) => c.kind !== 'gpu-lost'))('$file reports no GPUs', ({ file, exitCode }) => {
    expect(classifyNvidiaSmiFailure({ exitCode, stdout: readFixture(file), stderr: '' }).gpus).toEqual([]);
  });

  it.each(CASES)('classifies $file by its message alone (exit code 1)', ({ file, kind }) => {
    expect(classifyNvidiaSmiFailure({ exitCode: 1, stdout: readFixture(file), stderr: '' }).kind).toBe(kind);
  });

  it.each([
    [9, 'driver-missing'],
    [18, 'version-mismatch'],
    [6, 'no-devices'],
    [15, 'gpu-lost'],
    [12, 'driver-missing'],
    [3, 'error'],
  ] as const)('falls back on the documented meaning of exit code %i', (exitCode, kind) => {
    expect(classifyNvidiaSmiFailure({ exitCode, stdout: '', stderr: '' }).kind).toBe(kind);
  });
});

describe('classifyNvidiaSmiFailure with a lost GPU among working ones', () => {
  it('keeps the rows of the working GPUs and adds the lost one as unhealthy', () => {
    const stdout = [
      '0, GPU-aaaa, NVIDIA GeForce RTX 2080 Ti, 11019, 0, 0, 35, 00000000:0A:00.0, 515.65.01, [N/A]',
      readFixture('error_gpu-lost-unknown-error_nvidia-smi.txt').trim(),
      '2, GPU-cccc, NVIDIA GeForce RTX 2080 Ti, 11019, 0, 0, 36, 00000000:44:00.0, 515.65.01, [N/A]',
    ].join('\n');
    const result = classifyNvidiaSmiFailure({ exitCode: 15, stdout, stderr: '' });
    expect(result.kind).toBe('gpu-lost');
    expect(result.gpus.map((g) => [g.uuid, g.pciBusId, g.health])).toEqual([
      ['GPU-aaaa', '00000000:0A:00.0', 'healthy'],
      ['GPU-cccc', '00000000:44:00.0', 'healthy'],
      ['', '00000000:0B:00.0', 'unhealthy'],
    ]);
    expect(result.gpus[2]?.healthReason).toMatch(/Unknown Error/);
    expect(result.condition).toMatch(/^GPU lost: GPU \(00000000:0B:00\.0\)/);
  });

  it('reads "GPU is lost" handle errors', () => {
    const stdout = 'Unable to determine the device handle for gpu 0000:02:00.0: GPU is lost.  Reboot the system to recover this GPU\n';
    const result = classifyNvidiaSmiFailure({ exitCode: 15, stdout, stderr: '' });
    expect(result.gpus).toHaveLength(1);
    expect(result.gpus[0]).toMatchObject({ pciBusId: '00000000:02:00.0', health: 'unhealthy', index: -1 });
    expect(result.gpus[0]?.healthReason).toContain('GPU is lost. Reboot the system to recover this GPU');
  });
});

describe('classifyNvidiaSmiFailure on anything else', () => {
  it('reports an unknown failure with its exit code and message, never throwing', () => {
    const result = classifyNvidiaSmiFailure({ exitCode: 42, stdout: '', stderr: 'Failed to initialize NVML: Unknown Error\n' });
    expect(result).toEqual({ kind: 'error', gpus: [], condition: 'nvidia-smi failed with exit code 42: Failed to initialize NVML: Unknown Error' });
  });

  it('says so when nvidia-smi rejects its arguments', () => {
    const result = classifyNvidiaSmiFailure({ exitCode: 2, stdout: 'Field "foo" is not a valid field to query.\n\n', stderr: '' });
    expect(result.kind).toBe('error');
    expect(result.condition).toContain('Field "foo" is not a valid field to query.');
  });

  it('copes with empty output', () => {
    expect(classifyNvidiaSmiFailure({ exitCode: 255, stdout: '', stderr: '' })).toEqual({
      kind: 'error',
      gpus: [],
      condition: 'nvidia-smi failed with exit code 255: no output',
    });
  });
});
