import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AppError } from '../../../common/errors.js';
import { FACT_LIMITS, boundedFacts, validFacts } from '../../../controller/hosts/host-facts.js';
import type { GpuFacts, HostFacts } from '../../../controller/hosts/model.js';

// The bounds on what an agent reports (issue 9): absurd facts are refused naming the field.

const TIB = 2 ** 40;
const log = pino({ level: 'silent' });

function gpu(i: number, over: Partial<GpuFacts> = {}): GpuFacts {
  return {
    index: i,
    uuid: `GPU-${i}`,
    model: 'NVIDIA H100 80GB HBM3',
    memoryBytes: 80 * 2 ** 30,
    memoryUsedBytes: 0,
    utilizationPercent: 0,
    temperatureC: 40,
    pciBusId: `00000000:0${i}:00.0`,
    health: 'healthy',
    healthReason: '',
    migEnabled: false,
    ...over,
  };
}

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    hostname: 'gpu-01',
    publicAddress: '10.0.0.1',
    agentAddress: '10.0.0.1:50052',
    agentVersion: '0.1.0',
    os: 'Ubuntu 22.04.3 LTS',
    kernel: '5.15.0-91-generic',
    cpuModel: 'AMD EPYC 9654',
    cpuCores: 192,
    memoryBytes: 2 * TIB,
    diskTotalBytes: 30 * TIB,
    diskFreeBytes: 20 * TIB,
    diskReserveBytes: 3 * TIB,
    diskPressure: false,
    gpus: Array.from({ length: 8 }, (_, i) => gpu(i)),
    gpuCondition: '',
    driverVersion: '535.104.05',
    cudaVersion: '12.2',
    gpuMode: 'nvidia-runtime',
    machineId: '',
    publishAddress: '',
    busyPorts: [],
    ephemeralPorts: null,
    ...over,
  };
}

/** The AppError `fn` throws. */
function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

describe('boundedFacts', () => {
  it('accepts a big but plausible host unchanged', () => {
    const f = facts({ gpus: Array.from({ length: 64 }, (_, i) => gpu(i, { memoryBytes: TIB })), cpuCores: 4096, memoryBytes: 64 * TIB });
    expect(boundedFacts(f)).toBe(f);
  });

  it('accepts the -1 "not available" values and a GPU the driver lost (index -1)', () => {
    const f = facts({ gpus: [gpu(0, { utilizationPercent: -1, temperatureC: -1, memoryUsedBytes: -1 }), gpu(1, { index: -1, uuid: '' })] });
    expect(boundedFacts(f)).toBe(f);
  });

  it.each([
    ['facts.gpus', { gpus: Array.from({ length: 300 }, (_, i) => gpu(i)) }, '300 GPUs reported, at most 64'],
    ['facts.gpus[0].memory_bytes', { gpus: [gpu(0, { memoryBytes: 2 * TIB })] }, 'at most 1 TiB'],
    ['facts.memory_bytes', { memoryBytes: 65 * TIB }, 'at most 64 TiB'],
    ['facts.disk_total_bytes', { diskTotalBytes: 2 ** 60 }, 'must be a whole number from 0 to 8 PiB'],
    ['facts.disk_free_bytes', { diskFreeBytes: 9 * 1024 * TIB }, '8 PiB'],
    ['facts.disk_reserve_bytes', { diskReserveBytes: 9 * 1024 * TIB }, '8 PiB'],
    ['facts.cpu_cores', { cpuCores: 4097 }, 'at most 4096'],
    ['facts.cpu_cores', { cpuCores: -4 }, 'must not be negative'],
    ['facts.memory_bytes', { memoryBytes: -1 }, 'must not be negative'],
    ['facts.cpu_cores', { cpuCores: 1.5 }, 'whole number'],
    ['facts.memory_bytes', { memoryBytes: Number.NaN }, 'whole number'],
    ['facts.gpus[0].utilization_percent', { gpus: [gpu(0, { utilizationPercent: 250 })] }, 'at most 100'],
    ['facts.gpus[0].temperature_c', { gpus: [gpu(0, { temperatureC: -40 })] }, 'at least -1'],
    ['facts.gpus[0].memory_used_bytes', { gpus: [gpu(0, { memoryUsedBytes: -2 })] }, 'at least -1'],
    ['facts.gpus[0].index', { gpus: [gpu(0, { index: 99_999 })] }, 'at most 4095'],
    ['facts.hostname', { hostname: 'h'.repeat(257) }, '257 characters, at most 256'],
    ['facts.public_address', { publicAddress: 'a'.repeat(300) }, 'at most 256'],
    ['facts.agent_address', { agentAddress: 'a'.repeat(300) }, 'at most 256'],
    ['facts.agent_version', { agentVersion: 'v'.repeat(300) }, 'at most 256'],
    ['facts.os', { os: 'o'.repeat(300) }, 'at most 256'],
    ['facts.kernel', { kernel: 'k'.repeat(300) }, 'at most 256'],
    ['facts.cpu_model', { cpuModel: 'c'.repeat(300) }, 'at most 256'],
    ['facts.driver_version', { driverVersion: 'd'.repeat(300) }, 'at most 256'],
    ['facts.cuda_version', { cudaVersion: 'c'.repeat(300) }, 'at most 256'],
    ['facts.gpu_mode', { gpuMode: 'm'.repeat(300) }, 'at most 256'],
    ['facts.gpu_condition', { gpuCondition: 'x'.repeat(5000) }, 'at most 4096'],
    ['facts.gpus[1].uuid', { gpus: [gpu(0), gpu(1, { uuid: 'u'.repeat(300) })] }, 'at most 256'],
    ['facts.gpus[0].model', { gpus: [gpu(0, { model: 'm'.repeat(300) })] }, 'at most 256'],
    ['facts.gpus[0].pci_bus_id', { gpus: [gpu(0, { pciBusId: 'p'.repeat(300) })] }, 'at most 256'],
    ['facts.gpus[0].health_reason', { gpus: [gpu(0, { healthReason: 'r'.repeat(5000) })] }, 'at most 4096'],
  ] as [string, Partial<HostFacts>, string][])('refuses %s (%#) with invalid_argument naming the field', (field, over, message) => {
    const err = refusal(() => boundedFacts(facts(over)));
    expect(err.code).toBe('invalid_argument');
    expect(err.fields?.map((f) => f.field)).toContain(field);
    expect(err.message).toContain(`${field}: `);
    expect(err.message).toContain(message);
  });

  it('names the example of the issue exactly', () => {
    const err = refusal(() => boundedFacts(facts({ gpus: Array.from({ length: 300 }, (_, i) => gpu(i % 64)) })));
    expect(err.message).toBe('invalid host facts: facts.gpus: 300 GPUs reported, at most 64');
  });

  it('keeps long diagnostic text that real failures produce (a GPU-lost clause per GPU)', () => {
    const condition = `GPU lost: ${Array.from({ length: 8 }, (_, i) => `GPU ${i} (00000000:0${i}:00.0): nvidia-smi cannot reach it: Unknown Error`).join('; ')}`;
    expect(condition.length).toBeGreaterThan(FACT_LIMITS.stringLength);
    expect(() => boundedFacts(facts({ gpuCondition: condition }))).not.toThrow();
  });

  it('lists several problems at once, at most ten, and says how many more there were', () => {
    const err = refusal(() => boundedFacts(facts({ gpus: Array.from({ length: 20 }, (_, i) => gpu(i, { model: 'm'.repeat(300) })) })));
    expect(err.fields).toHaveLength(10);
    expect(err.message).toMatch(/^invalid host facts \(10 more problems not shown\): /);
  });
});

describe('validFacts', () => {
  it('requires the hostname and the agent address', () => {
    const err = refusal(() => validFacts(facts({ hostname: '', agentAddress: '' }), log));
    expect(err.fields?.map((f) => f.field)).toEqual(['facts.hostname', 'facts.agent_address']);
  });

  it('drops GPUs without a uuid and collapses duplicate uuids (the last wins)', () => {
    const out = validFacts(facts({ gpus: [gpu(0), gpu(1, { uuid: '' }), gpu(2, { uuid: 'GPU-0', model: 'later' })] }), log);
    expect(out.gpus.map((g) => [g.uuid, g.model])).toEqual([['GPU-0', 'later']]);
  });

  it('returns valid facts unchanged and applies the bounds', () => {
    const f = facts();
    expect(validFacts(f, log)).toBe(f);
    expect(refusal(() => validFacts(facts({ cpuCores: 100_000 }), log)).message).toContain('facts.cpu_cores: 100000 cores reported, at most 4096');
  });
});
