// Builders and a seeded PRNG for scheduler tests. No I/O, no dependencies.
import type { GpuSnapshot, HostSnapshot, PlacementRequest } from '../../../controller/scheduler/types.js';

export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;
export const H100 = 'NVIDIA H100 80GB HBM3';
export const A100 = 'NVIDIA A100-SXM4-80GB';
export const L4 = 'NVIDIA L4';

/** A healthy, free H100 at `index` 0 unless overridden; the UUID follows the index. */
export function gpu(overrides: Partial<GpuSnapshot> = {}): GpuSnapshot {
  const index = overrides.index ?? 0;
  return {
    uuid: `GPU-${index}`,
    index,
    model: H100,
    memoryBytes: 80 * GiB,
    healthy: true,
    allocated: false,
    ...overrides,
  };
}

/** `count` GPUs with indexes 0..count-1, each built with `overrides`. */
export function gpus(count: number, overrides: Partial<Omit<GpuSnapshot, 'index' | 'uuid'>> = {}): GpuSnapshot[] {
  return Array.from({ length: count }, (_, index) => gpu({ ...overrides, index }));
}

/** An online, empty host with 64 cores, 512 GiB, 4 TiB and 8 free H100s unless overridden. */
export function host(overrides: Partial<HostSnapshot> = {}): HostSnapshot {
  const id = overrides.id ?? 'host-a';
  return {
    id,
    hostname: overrides.hostname ?? id,
    status: 'online',
    cpuCores: 64,
    memoryBytes: 512 * GiB,
    storageBytes: 4 * TiB,
    allocatedCpuCores: 0,
    allocatedMemoryBytes: 0,
    allocatedStorageBytes: 0,
    gpus: gpus(8),
    ...overrides,
  };
}

/** A small request (1 GPU, 4 cores, 32 GiB, 100 GiB) unless overridden. */
export function request(overrides: Partial<PlacementRequest> = {}): PlacementRequest {
  return { cpuCores: 4, memoryBytes: 32 * GiB, gpuCount: 1, storageBytes: 100 * GiB, ...overrides };
}

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] from `rand`. */
export function int(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

/** One element of `items` from `rand`. */
export function pickOne<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

const MODELS = [H100, A100, L4] as const;
const STATUSES = ['online', 'online', 'online', 'online', 'offline', 'cordoned', 'draining'] as const;

/**
 * A random but plausible host: 0-8 GPUs of one model, some allocated or unhealthy, partly used
 * CPU, memory and storage, occasionally over-committed, mostly online.
 */
export function randomHost(rand: () => number, n: number): HostSnapshot {
  const model = pickOne(rand, MODELS);
  const gpuCount = pickOne(rand, [0, 1, 2, 4, 8, 8]);
  const cpuCores = pickOne(rand, [16, 32, 64, 128]);
  const memoryBytes = pickOne(rand, [64, 256, 512, 1024]) * GiB;
  const storageBytes = pickOne(rand, [1, 2, 4]) * TiB;
  return {
    id: `host-${n.toString(16).padStart(5, '0')}`,
    hostname: `gpu-${n}.example`,
    status: pickOne(rand, STATUSES),
    cpuCores,
    memoryBytes,
    storageBytes,
    allocatedCpuCores: Math.floor(cpuCores * rand() * 1.05),
    allocatedMemoryBytes: Math.floor(memoryBytes * rand() * 1.05),
    allocatedStorageBytes: Math.floor(storageBytes * rand()),
    gpus: Array.from({ length: gpuCount }, (_, index) =>
      gpu({
        index,
        uuid: `GPU-${n}-${index}`,
        model,
        healthy: rand() > 0.08,
        allocated: rand() < 0.45,
      }),
    ),
  };
}

/** A random request: 0-8 GPUs (of a model one time in three), 1-64 cores, 8-512 GiB, up to 2 TiB. */
export function randomRequest(rand: () => number): PlacementRequest {
  const model = rand() < 0.33 ? pickOne(rand, ['H100', 'a100', 'L4', 'h200']) : undefined;
  return {
    gpuCount: pickOne(rand, [0, 1, 1, 2, 4, 8]),
    cpuCores: int(rand, 1, 64),
    memoryBytes: int(rand, 8, 512) * GiB,
    storageBytes: int(rand, 10, 2048) * GiB,
    ...(model === undefined ? {} : { gpuModel: model }),
  };
}
