import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeNvidiaSmiPath } from '../../../agent/discovery/fake-gpus.js';
import { parseGpuQueryCsv } from '../../../agent/discovery/nvidia-smi.js';
import {
  fixtureFormat,
  fixturePath,
  fixtureQueryFields,
  listFixtures,
  readFixture,
} from '../../helpers/nvidia-smi-fixtures.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
}

/** Runs the fake as a real subprocess (its shebang, not `node script`), the way the agent will. */
function fake(capture: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      fakeNvidiaSmiPath(),
      args,
      { env: { ...process.env, REMOTEGPU_FAKE_GPUS: capture, ...extraEnv } },
      (error, stdout) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout });
      },
    );
  });
}

const CAPTURES = listFixtures(/_nvidia-smi-q\.txt$/);

/** UUIDs in the order of the `GPU xxxxxxxx:xx:xx.x` sections, read straight from the capture. */
function captureUuids(capture: string): string[] {
  const sections = readFixture(capture).split(/^GPU [0-9A-F]{8}:/m).slice(1);
  return sections.map((s) => /GPU UUID\s+: (\S+)/.exec(s)?.[1] ?? '');
}

describe('fake nvidia-smi', () => {
  it('is an executable script', () => {
    expect(() => accessSync(fakeNvidiaSmiPath(), constants.X_OK)).not.toThrow();
  });

  it('has captures to run against', () => {
    expect(CAPTURES.length).toBeGreaterThanOrEqual(7);
  });

  describe.each(CAPTURES)('with %s', (capture) => {
    const path = fixturePath(capture);
    const uuids = captureUuids(capture);

    it('lists one GPU per section with -L', async () => {
      const { code, stdout } = await fake(path, ['-L']);
      expect(code).toBe(0);
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(uuids.length);
      lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^GPU ${i}: .+ \\(UUID: ${uuids[i]}\\)$`)));
    });

    it('answers the agent query with the same GPUs as -L', async () => {
      const fields = ['index', 'uuid', 'name', 'memory.total', 'memory.used', 'pci.bus_id', 'count'];
      const { code, stdout } = await fake(path, [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits']);
      expect(code).toBe(0);
      const gpus = parseGpuQueryCsv(stdout, fields);
      expect(gpus.map((g) => g.uuid)).toEqual(uuids);
      expect(gpus.map((g) => g.index)).toEqual(uuids.map((_, i) => i));
      for (const gpu of gpus) expect(gpu.memoryBytes).toBeGreaterThan(0);
      expect(stdout.trim().split('\n').map((l) => l.split(', ').at(-1))).toEqual(uuids.map(() => String(uuids.length)));
    });

    it('prints the capture for -q', async () => {
      const { code, stdout } = await fake(path, ['-q']);
      expect(code).toBe(0);
      expect(stdout.trimEnd()).toBe(readFixture(capture).trimEnd());
    });

    const derived = listFixtures(new RegExp(`^${capture.replace('_nvidia-smi-q.txt', '')}_query-gpu-.*_DERIVED\\.txt$`));

    it('has derived query fixtures to compare with', () => {
      expect(derived.length).toBe(2);
    });

    it.each(derived)('reproduces %s byte for byte', async (file) => {
      const args = [`--query-gpu=${fixtureQueryFields(file).join(',')}`, `--format=${fixtureFormat(file)}`];
      const { code, stdout } = await fake(path, args);
      expect(code).toBe(0);
      expect(stdout).toBe(readFixture(file));
    });
  });

  it('prints units and headers like nvidia-smi', async () => {
    const { stdout } = await fake(fixturePath('h100-80gb-hbm3-sxm_x8_nvidia-smi-q.txt'), [
      '--query-gpu=name,memory.total,utilization.gpu,temperature.gpu,mig.mode.current,serial',
      '--format=csv',
      '-i',
      '0',
    ]);
    expect(stdout.split('\n')[0]).toBe('name, memory.total [MiB], utilization.gpu [%], temperature.gpu, mig.mode.current, serial');
    expect(stdout.split('\n')[1]).toMatch(/^NVIDIA H100 80GB HBM3, 81559 MiB, 0 %, 30, Disabled, \S+$/);
    expect(stdout.trim().split('\n')).toHaveLength(2);
  });

  it('prints [N/A] for values the capture does not have', async () => {
    const { stdout } = await fake(fixturePath('a40_x10_nvidia-smi-q.txt'), ['--query-gpu=index,mig.mode.current,temperature.memory', '--format=csv,noheader', '--id=9']);
    expect(stdout).toBe('9, [N/A], [N/A]\n');
  });

  it('works on the truncated V100 excerpt', async () => {
    const path = fixturePath('v100-sxm2-16gb_dgx1-x8_nvidia-smi-q_EXCERPT-gpu0.txt');
    const { code, stdout } = await fake(path, ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits']);
    expect(code).toBe(0);
    expect(stdout).toBe('0, GPU-86e60957-0cc5-7959-855b-28f0d7bac243, Tesla V100-SXM2-16GB, [N/A]\n');
  });

  it('rejects an unknown field like nvidia-smi (exit 2)', async () => {
    const { code, stdout } = await fake(fixturePath('a40_x10_nvidia-smi-q.txt'), ['--query-gpu=index,bogus.field', '--format=csv']);
    expect(code).toBe(2);
    expect(stdout).toBe('Field "bogus.field" is not a valid field to query.\n\n');
  });

  it('replays a recorded failure with its exit code', async () => {
    const mismatch = await fake(fixturePath('error_driver-library-version-mismatch_nvidia-smi_exit18.txt'), ['-L']);
    expect(mismatch.code).toBe(18);
    expect(mismatch.stdout).toContain('Driver/library version mismatch');
    const overridden = await fake(fixturePath('error_driver-not-loaded_nvidia-smi.txt'), ['-L'], { REMOTEGPU_FAKE_EXIT_CODE: '7' });
    expect(overridden.code).toBe(7);
  });

  it('explains itself when REMOTEGPU_FAKE_GPUS is unusable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-smi-'));
    const missing = await fake(join(dir, 'nope.txt'), ['-L']);
    expect(missing.code).toBe(255);
    expect(missing.stdout).toContain('cannot read REMOTEGPU_FAKE_GPUS');
    expect((await fake('', ['-L'])).stdout).toContain('set REMOTEGPU_FAKE_GPUS');
  });
});
