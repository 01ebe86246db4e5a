import { describe, expect, it } from 'vitest';
import {
  BASE_QUERY_FIELDS,
  DEFAULT_QUERY_FIELDS,
  normalizePciBusId,
  parseCudaVersion,
  parseGpuQueryCsv,
} from '../../../agent/discovery/nvidia-smi.js';
import type { GpuInfo } from '../../../agent/discovery/types.js';
import { fixtureQueryFields, listFixtures, readFixture, splitRuns } from '../../helpers/nvidia-smi-fixtures.js';

const MIB = 1024 * 1024;
const mib = (n: number): number => n * MIB;

interface CsvCase {
  readonly file: string;
  /** GPU count per run (most files hold one run). */
  readonly counts: readonly number[];
  /** Values read by hand from the fixture: [run, position in run, expected subset]. */
  readonly expect: ReadonlyArray<readonly [number, number, Partial<GpuInfo>]>;
}

const SUBSET_A100 = { model: 'NVIDIA A100-SXM4-80GB', memoryBytes: 85_899_345_920, driverVersion: '555.42.02' };

/** Every `*csv*` fixture, with what a person reading it sees. */
const CASES: readonly CsvCase[] = [
  {
    file: 'a100-sxm4-80gb_x4_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [4],
    expect: [
      [0, 0, { index: 0, uuid: 'GPU-31515c3d-1414-7c2c-004a-f86a898946ac', temperatureC: 25, ...SUBSET_A100 }],
      [0, 1, { index: 1, uuid: 'GPU-72d87681-01db-370e-567d-41afcf20fad0', pciBusId: '00000000:9E:00.0', memoryUsedBytes: mib(1), temperatureC: 22 }],
    ],
  },
  {
    file: 'a100-sxm4-80gb_x4_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [4],
    expect: [[0, 3, { index: 3, uuid: 'GPU-011b2cfe-2b8e-1cb0-19e1-1b764e854dfc', pciBusId: '00000000:D4:00.0', utilizationPercent: 0, ...SUBSET_A100 }]],
  },
  {
    file: 'a100-sxm4-80gb_x8_query-gpu-index-name-memused-memtotal-util_csv_busy.txt',
    counts: [8],
    expect: [
      [0, 0, { index: 0, model: 'NVIDIA A100-SXM4-80GB', memoryUsedBytes: mib(66147), memoryBytes: mib(81920), utilizationPercent: 99, uuid: '', temperatureC: -1 }],
      [0, 5, { index: 5, memoryUsedBytes: 0, utilizationPercent: 0 }],
      [0, 7, { index: 7, memoryUsedBytes: mib(6247), utilizationPercent: 40 }],
    ],
  },
  {
    file: 'a40_x10_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [10],
    expect: [[0, 9, { index: 9, uuid: 'GPU-c373ab5a-5eab-b35c-02ee-e76e8b7f0853', pciBusId: '00000000:D6:00.0', memoryBytes: mib(46068), driverVersion: '550.127.05' }]],
  },
  {
    file: 'a40_x10_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [10],
    expect: [[0, 2, { index: 2, uuid: 'GPU-0434566c-52a9-43e0-b8be-672175746d87', temperatureC: 27, memoryBytes: mib(46068) }]],
  },
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h100-80gb-hbm3-mig_1gpu_query-gpu-ALLFIELDS_csv_${phase}.txt`,
    counts: [1],
    expect: [[0, 0, { model: 'NVIDIA H100 80GB HBM3', migEnabled: true, utilizationPercent: -1, memoryBytes: mib(81559), memoryUsedBytes: mib(phase === 'idle' ? 59 : 11125), pciBusId: '00000000:00:09.0', driverVersion: '590.48.01', health: 'healthy' }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h100-80gb-hbm3-mig_1gpu_query-gpu-SUBSET_csv_${phase}_DERIVED.txt`,
    counts: [1],
    expect: [[0, 0, { utilizationPercent: -1, temperatureC: phase === 'idle' ? 42 : 53, memoryBytes: mib(81559) }]],
  })),
  {
    file: 'h100-80gb-hbm3-sxm_x8_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [8],
    expect: [[0, 7, { index: 7, uuid: 'GPU-33135771-a848-ece1-b61e-489e221d663c', pciBusId: '00000000:DB:00.0', memoryBytes: mib(81559) }]],
  },
  {
    file: 'h100-80gb-hbm3-sxm_x8_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [8],
    expect: [[0, 1, { uuid: 'GPU-7c3cadbd-17e5-0913-f69b-c618122ea0cd', driverVersion: '565.57.01', temperatureC: 30 }]],
  },
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h100-80gb-hbm3_1gpu_query-gpu-ALLFIELDS_csv_${phase}.txt`,
    counts: [1],
    expect: [[0, 0, { migEnabled: false, utilizationPercent: phase === 'idle' ? 0 : 100, temperatureC: phase === 'idle' ? 41 : 59, memoryUsedBytes: mib(phase === 'idle' ? 0 : 19818) }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h100-80gb-hbm3_1gpu_query-gpu-SUBSET_csv_${phase}_DERIVED.txt`,
    counts: [1],
    expect: [[0, 0, { uuid: 'GPU-00000000-0000-0000-0000-000000000000', utilizationPercent: phase === 'idle' ? 0 : 100 }]],
  })),
  {
    file: 'h100-80gb-hbm3_x8_query-gpu-index-name-util-memused-memtotal_csv_busy.txt',
    counts: [8],
    expect: [[0, 4, { index: 4, utilizationPercent: 100, memoryUsedBytes: mib(21340), memoryBytes: mib(81559) }], [0, 1, { utilizationPercent: 98 }]],
  },
  {
    file: 'h100-nvl_x2_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [2],
    expect: [[0, 1, { uuid: 'GPU-db6d02a2-1413-eccf-8a17-d99eac29d365', model: 'NVIDIA H100 NVL', memoryBytes: mib(95830), pciBusId: '00000000:AE:00.0' }]],
  },
  {
    file: 'h100-nvl_x2_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [2],
    expect: [[0, 0, { uuid: 'GPU-806f8ea2-6428-1096-a076-bb687fb45fb0', temperatureC: 32, driverVersion: '550.54.14' }]],
  },
  {
    file: 'h200-141c_x4_query-gpu-index-uuid-name-memtotal-memused_csv.txt',
    counts: [1, 4],
    expect: [
      [0, 0, { uuid: 'GPU-78aaaccb-3af1-11b3-b1f8-3828c251d9f2', memoryUsedBytes: mib(45558) }],
      [1, 3, { index: 3, uuid: 'GPU-8187d0e1-3af1-11b3-a3da-3990b94501cf', model: 'NVIDIA H200-141C', memoryBytes: mib(144384), memoryUsedBytes: mib(111082) }],
    ],
  },
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h200-mig_1gpu_query-gpu-ALLFIELDS_csv_${phase}.txt`,
    counts: [1],
    expect: [[0, 0, { model: 'NVIDIA H200', migEnabled: true, utilizationPercent: -1, memoryBytes: mib(143771), memoryUsedBytes: mib(phase === 'idle' ? 55 : 16959), pciBusId: '00000000:83:00.0' }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h200-mig_1gpu_query-gpu-SUBSET_csv_${phase}_DERIVED.txt`,
    counts: [1],
    expect: [[0, 0, { utilizationPercent: -1, temperatureC: phase === 'idle' ? 28 : 36 }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h200_1gpu_query-gpu-ALLFIELDS_csv_${phase}.txt`,
    counts: [1],
    expect: [[0, 0, { migEnabled: false, utilizationPercent: phase === 'idle' ? 0 : 100, memoryUsedBytes: mib(phase === 'idle' ? 0 : 32362) }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `h200_1gpu_query-gpu-SUBSET_csv_${phase}_DERIVED.txt`,
    counts: [1],
    expect: [[0, 0, { memoryBytes: mib(143771), temperatureC: phase === 'idle' ? 28 : 52 }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `l40s_1gpu_query-gpu-ALLFIELDS_csv_${phase}.txt`,
    counts: [1],
    expect: [[0, 0, { model: 'NVIDIA L40S', driverVersion: '595.80', migEnabled: false, utilizationPercent: phase === 'idle' ? 100 : 9, pciBusId: '00000000:01:00.0' }]],
  })),
  ...(['idle', 'load'] as const).map((phase): CsvCase => ({
    file: `l40s_1gpu_query-gpu-SUBSET_csv_${phase}_DERIVED.txt`,
    counts: [1],
    expect: [[0, 0, { memoryBytes: mib(46068), memoryUsedBytes: mib(phase === 'idle' ? 0 : 1235) }]],
  })),
  {
    // Old driver: bare `N/A` (temperature.memory), `gpu_uuid` alias, power/clock fields around ours.
    file: 'rtx2080_query-gpu-19fields_csv-noheader-nounits.txt',
    counts: [1],
    expect: [[0, 0, { index: 0, model: 'GeForce RTX 2080', uuid: 'GPU-22b2c6ac-2d49-4863-197c-9c469071178a', memoryBytes: mib(7979), temperatureC: 45, utilizationPercent: 86, driverVersion: '440.64', pciBusId: '' }]],
  },
  {
    file: 'rtx3090_x2_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [2],
    expect: [[0, 1, { uuid: 'GPU-74e6e433-5193-b31f-b8b5-7a54c8b4623e', pciBusId: '00000000:81:00.0' }]],
  },
  {
    file: 'rtx3090_x2_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [2],
    expect: [[0, 0, { uuid: 'GPU-4aba3cfa-7b42-cca6-97f4-5cdd281b0746', model: 'NVIDIA GeForce RTX 3090', memoryBytes: mib(24576), memoryUsedBytes: mib(2), driverVersion: '560.35.03' }]],
  },
  {
    file: 'rtx4080super+rtx3090_x2_query-gpu-index-uuid-name-memtotal_csv_docker-gpus.txt',
    counts: [2, 1, 1],
    expect: [
      [0, 0, { uuid: 'GPU-e4252fcb-8ed4-ef11-71cd-d36a23871c75', model: 'NVIDIA GeForce RTX 4080 SUPER', memoryBytes: mib(16376) }],
      [0, 1, { index: 1, uuid: 'GPU-358353dd-5933-1dc6-ac0d-e1189b063e4c', model: 'NVIDIA GeForce RTX 3090', memoryBytes: mib(24576) }],
      [2, 0, { index: 0, uuid: 'GPU-e4252fcb-8ed4-ef11-71cd-d36a23871c75' }],
    ],
  },
  {
    file: 'rtx4090_x8_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [8],
    expect: [[0, 1, { uuid: 'GPU-a4ac0a07-7668-e715-6e6d-d0dea1c5738b', memoryBytes: mib(24564), pciBusId: '00000000:25:00.0', temperatureC: 27 }]],
  },
  {
    file: 'rtx4090_x8_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [8],
    expect: [[0, 7, { uuid: 'GPU-78ae265e-d539-389c-f1b8-41b35aa0adb6', pciBusId: '00000000:E1:00.0', temperatureC: 25 }]],
  },
  {
    file: 'rtx6000ada_x8_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt',
    counts: [8],
    expect: [[0, 4, { uuid: 'GPU-dac548a9-d8a2-cf89-39cd-a3ae9305257b', model: 'NVIDIA RTX 6000 Ada Generation', temperatureC: 29 }]],
  },
  {
    file: 'rtx6000ada_x8_query-gpu-SUBSET_csv_DERIVED.txt',
    counts: [8],
    expect: [[0, 0, { uuid: 'GPU-6130ccb8-7d66-5560-15ea-9a2a08dc87e7', model: 'NVIDIA RTX 6000 Ada Generation', memoryBytes: mib(49140), pciBusId: '00000000:01:00.0' }]],
  },
  {
    file: 'rtxa5000+rtx4500ada_x2_query-gpu-index-name-uuid-memtotal-driver-powerlimit_csv.txt',
    counts: [2],
    expect: [
      [0, 0, { model: 'NVIDIA RTX A5000', uuid: 'GPU-30667114-4567-bc4a-029b-3375d117048e', memoryBytes: mib(24564), driverVersion: '610.57.04' }],
      [0, 1, { model: 'NVIDIA RTX 4500 Ada Generation', uuid: 'GPU-fbe2dd5d-3644-5c37-3179-8ad50079b7d4', memoryBytes: mib(24570) }],
    ],
  },
  {
    // `noheader` but with units, and an odd product name.
    file: 'v100-pcie-32gb_PG500-216_query-gpu-name-memtotal-deviceid_csv-noheader.txt',
    counts: [1],
    expect: [[0, 0, { index: 0, model: 'Tesla PG500-216', memoryBytes: mib(32768), uuid: '' }]],
  },
];

describe('parseGpuQueryCsv on recorded outputs', () => {
  it('has a case for every csv fixture', () => {
    expect(CASES.map((c) => c.file).sort()).toEqual(listFixtures(/query-gpu.*_csv.*\.txt$/));
  });

  it.each(CASES)('$file', ({ file, counts, expect: expected }) => {
    const fields = fixtureQueryFields(file);
    const runs = splitRuns(readFixture(file)).map((run) => parseGpuQueryCsv(run, fields));
    expect(runs.map((gpus) => gpus.length)).toEqual(counts);
    for (const [run, position, values] of expected) {
      expect(runs[run]?.[position]).toMatchObject(values);
    }
    for (const gpu of runs.flat()) {
      expect(gpu.health).toBe('healthy');
      expect(gpu.model).not.toBe('');
      expect(gpu.memoryBytes).toBeGreaterThan(0);
      expect(gpu.cudaVersion).toBe('');
    }
  });

  it('converts MiB to bytes exactly', () => {
    const [gpu] = parseGpuQueryCsv('0, GPU-x, NVIDIA A100-SXM4-80GB, 81920, 1\n', ['index', 'uuid', 'name', 'memory.total', 'memory.used']);
    expect(gpu?.memoryBytes).toBe(85_899_345_920);
    expect(gpu?.memoryUsedBytes).toBe(1_048_576);
  });
});

describe('parseGpuQueryCsv edge cases', () => {
  const fields = DEFAULT_QUERY_FIELDS;

  it('reads the agent query with and without units', () => {
    const withUnits = [
      'index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu, pci.bus_id, driver_version, mig.mode.current',
      '0, GPU-aaa, NVIDIA H100 80GB HBM3, 81559 MiB, 11125 MiB, [N/A], 53, 00000000:00:09.0, 590.48.01, Enabled',
      '1, GPU-bbb, NVIDIA A40, 46068 MiB, 1 MiB, 7 %, 29, 00000000:4F:00.0, 590.48.01, [N/A]',
    ].join('\n');
    const gpus = parseGpuQueryCsv(withUnits, fields);
    expect(gpus).toEqual([
      {
        index: 0, uuid: 'GPU-aaa', model: 'NVIDIA H100 80GB HBM3', memoryBytes: mib(81559), memoryUsedBytes: mib(11125),
        utilizationPercent: -1, temperatureC: 53, pciBusId: '00000000:00:09.0', driverVersion: '590.48.01',
        cudaVersion: '', health: 'healthy', healthReason: '', migEnabled: true,
      },
      {
        index: 1, uuid: 'GPU-bbb', model: 'NVIDIA A40', memoryBytes: mib(46068), memoryUsedBytes: mib(1),
        utilizationPercent: 7, temperatureC: 29, pciBusId: '00000000:4F:00.0', driverVersion: '590.48.01',
        cudaVersion: '', health: 'healthy', healthReason: '', migEnabled: false,
      },
    ]);
    const noUnits = withUnits.split('\n').slice(1).join('\n').replace(/ (MiB|%)/g, '');
    expect(parseGpuQueryCsv(noUnits, fields)).toEqual(gpus);
  });

  it('treats N/A, [N/A] and [Not Supported] as unknown, not as errors', () => {
    const [gpu] = parseGpuQueryCsv('0, GPU-a, Tesla PG500-216, 32768, N/A, [Not Supported], [N/A], 00000000:3B:00.0, 535.129.03, [N/A]', fields);
    expect(gpu).toMatchObject({ memoryUsedBytes: 0, utilizationPercent: -1, temperatureC: -1, health: 'healthy', migEnabled: false });
  });

  it('marks a lost GPU unhealthy and keeps the others healthy', () => {
    const out = [
      '0, GPU-a, NVIDIA GeForce RTX 2080 Ti, 11019, 0, 0, 35, 00000000:0A:00.0, 515.65.01, [N/A]',
      '1, [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost], 00000000:0B:00.0, 515.65.01, [GPU is lost]',
      '2, [Unknown Error], [Unknown Error], [Unknown Error], [Unknown Error], [Unknown Error], [Unknown Error], 00000000:0C:00.0, 515.65.01, [Unknown Error]',
    ].join('\n');
    const gpus = parseGpuQueryCsv(out, fields);
    expect(gpus.map((g) => g.health)).toEqual(['healthy', 'unhealthy', 'unhealthy']);
    expect(gpus[1]).toMatchObject({ index: 1, pciBusId: '00000000:0B:00.0', uuid: '', healthReason: 'nvidia-smi reports: GPU is lost' });
    expect(gpus[2]?.healthReason).toBe('nvidia-smi reports: Unknown Error');
  });

  it('does not call a GPU unhealthy for an error in an optional reading', () => {
    const [gpu] = parseGpuQueryCsv('0, GPU-a, NVIDIA A40, 46068, 1, 0, [Unknown Error]', ['index', 'uuid', 'name', 'memory.total', 'memory.used', 'utilization.gpu', 'power.draw']);
    expect(gpu?.health).toBe('healthy');
  });

  it('skips blank lines, repeated headers and error lines between rows', () => {
    const out = [
      'index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu, pci.bus_id, driver_version, mig.mode.current',
      '',
      '0, GPU-a, NVIDIA A40, 46068 MiB, 1 MiB, 0 %, 29, 00000000:4F:00.0, 550.127.05, [N/A]',
      'Unable to determine the device handle for GPU 0000:52:00.0: Unknown Error',
      '2, GPU-c, NVIDIA A40, 46068 MiB, 1 MiB, 0 %, 27, 00000000:53:00.0, 550.127.05, [N/A]',
    ].join('\r\n');
    expect(parseGpuQueryCsv(out, fields).map((g) => g.uuid)).toEqual(['GPU-a', 'GPU-c']);
  });

  it('returns nothing for empty output', () => {
    expect(parseGpuQueryCsv('', fields)).toEqual([]);
    expect(parseGpuQueryCsv('\n\n', BASE_QUERY_FIELDS)).toEqual([]);
  });
});

describe('parseCudaVersion', () => {
  const CUDA_BY_CAPTURE: Record<string, string> = {
    'a100-sxm4-80gb_x4_nvidia-smi-q.txt': '12.5',
    'a40_x10_nvidia-smi-q.txt': '12.4',
    'h100-80gb-hbm3-sxm_x8_nvidia-smi-q.txt': '12.7',
    'h100-nvl_x2_nvidia-smi-q.txt': '12.4',
    'rtx3090_x2_nvidia-smi-q.txt': '12.6',
    'rtx4090_x8_nvidia-smi-q.txt': '12.4',
    'rtx6000ada_x8_nvidia-smi-q.txt': '12.4',
  };

  it('covers every -q capture', () => {
    expect(Object.keys(CUDA_BY_CAPTURE).sort()).toEqual(listFixtures(/_nvidia-smi-q\.txt$/));
  });

  it.each(Object.entries(CUDA_BY_CAPTURE))('reads the -q header of %s', (file, version) => {
    expect(parseCudaVersion(readFixture(file))).toBe(version);
  });

  it('reads the banner of plain nvidia-smi', () => {
    expect(parseCudaVersion(readFixture('a40_x10_nvidia-smi-table.txt'))).toBe('12.4');
    expect(parseCudaVersion(readFixture('l40s_1gpu_nvidia-smi-table_idle.txt'))).toBe('13.2');
  });

  it('is empty when the driver does not print it', () => {
    expect(parseCudaVersion(readFixture('v100-sxm2-16gb_p3.16xlarge-x8_nvidia-smi-table_EXCERPT.txt'))).toBe('');
    expect(parseCudaVersion('CUDA Version                              : N/A')).toBe('');
  });
});

describe('normalizePciBusId', () => {
  it('pads the domain to 8 digits and upper-cases', () => {
    expect(normalizePciBusId('0000:0b:00.0')).toBe('00000000:0B:00.0');
    expect(normalizePciBusId('00000000:4F:00.0')).toBe('00000000:4F:00.0');
    expect(normalizePciBusId(' weird ')).toBe('weird');
  });
});
