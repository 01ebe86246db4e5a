// Times schedule() on synthetic clusters of 1,000 and 10,000 hosts.
// Run: npx tsx bench/scheduler.bench.ts   → prints a table and writes bench/out/scheduler.json.
// Figures are for comparison between runs on the same machine; tests never assert on them.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { schedule } from '../controller/scheduler/schedule.js';
import type { HostSnapshot, PlacementRequest } from '../controller/scheduler/types.js';
import { GiB, TiB, prng, randomHost } from '../test/controller/scheduler/builders.js';

const SIZES = [1_000, 10_000] as const;
const SEED = 42;
const MIN_ITERATIONS = 30;
const MIN_TIME_MS = 1_000;

const SCENARIOS: Record<string, PlacementRequest> = {
  'one GPU, any model': { gpuCount: 1, cpuCores: 8, memoryBytes: 64 * GiB, storageBytes: 200 * GiB },
  'eight H100s': { gpuCount: 8, gpuModel: 'H100', cpuCores: 64, memoryBytes: 256 * GiB, storageBytes: 1 * TiB },
  'CPU only': { gpuCount: 0, cpuCores: 4, memoryBytes: 16 * GiB, storageBytes: 50 * GiB },
  'no fit (16 GPUs)': { gpuCount: 16, cpuCores: 8, memoryBytes: 64 * GiB, storageBytes: 200 * GiB },
};

interface Figure {
  hosts: number;
  scenario: string;
  ok: boolean;
  candidates: number;
  iterations: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function measure(hosts: readonly HostSnapshot[], scenario: string, request: PlacementRequest): Figure {
  // Warm up the JIT before timing.
  for (let i = 0; i < 5; i++) schedule(request, hosts);
  const times: number[] = [];
  const started = performance.now();
  let last = schedule(request, hosts);
  while (times.length < MIN_ITERATIONS || performance.now() - started < MIN_TIME_MS) {
    const t0 = performance.now();
    last = schedule(request, hosts);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return {
    hosts: hosts.length,
    scenario,
    ok: last.ok,
    candidates: last.ok ? last.candidates.length : 0,
    iterations: times.length,
    meanMs: round(mean),
    p50Ms: round(percentile(times, 0.5)),
    p95Ms: round(percentile(times, 0.95)),
    minMs: round(times[0]!),
    maxMs: round(times[times.length - 1]!),
  };
}

const figures: Figure[] = [];
for (const size of SIZES) {
  const rand = prng(SEED);
  const hosts = Array.from({ length: size }, (_, i) => randomHost(rand, i));
  for (const [scenario, request] of Object.entries(SCENARIOS)) {
    const f = measure(hosts, scenario, request);
    figures.push(f);
    console.log(
      `${String(size).padStart(6)} hosts  ${scenario.padEnd(20)}  ${f.ok ? `${f.candidates} candidates`.padEnd(16) : 'no fit'.padEnd(16)}` +
        `  mean ${f.meanMs.toFixed(3)} ms  p50 ${f.p50Ms.toFixed(3)} ms  p95 ${f.p95Ms.toFixed(3)} ms  (${f.iterations} runs)`,
    );
  }
}

const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out');
mkdirSync(outDir, { recursive: true });
const outFile = path.join(outDir, 'scheduler.json');
const report = {
  benchmark: 'scheduler',
  date: new Date().toISOString(),
  node: process.version,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cpus: os.cpus().length,
  seed: SEED,
  figures,
};
writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), outFile)}`);
