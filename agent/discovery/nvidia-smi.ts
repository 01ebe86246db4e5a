import { execFile } from 'node:child_process';
import { classifyNvidiaSmiFailure, describeUnhealthy } from './nvidia-smi-errors.js';
import {
  BASE_QUERY_FIELDS,
  DEFAULT_QUERY_FIELDS,
  parseCudaVersion,
  parseGpuQueryCsvDetailed,
} from './nvidia-smi-parse.js';
import type { GpuDiscovery, GpuInfo } from './types.js';

export { classifyNvidiaSmiFailure, type NvidiaSmiRun } from './nvidia-smi-errors.js';
export {
  BASE_QUERY_FIELDS,
  DEFAULT_QUERY_FIELDS,
  normalizePciBusId,
  parseCudaVersion,
  parseGpuQueryCsv,
} from './nvidia-smi-parse.js';

export interface DiscoverGpusOptions {
  /** The nvidia-smi binary: a bare name looked up on PATH, or a path (e.g. fakeNvidiaSmiPath()). */
  readonly nvidiaSmiPath: string;
  /** Per nvidia-smi invocation; a hung driver must not hang the agent. */
  readonly timeoutMs: number;
  /** Environment for the child; defaults to the agent's. The fake nvidia-smi reads REMOTEGPU_FAKE_GPUS from it. */
  readonly env?: NodeJS.ProcessEnv;
}

type ExecResult =
  | { readonly kind: 'exited'; readonly exitCode: number; readonly stdout: string; readonly stderr: string }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'spawn-failed'; readonly message: string };

const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Lists the host's GPUs by running `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`
 * (execFile, no shell), then `nvidia-smi -q -d COMPUTE` for the CUDA version. A missing binary
 * gives kind 'cpu-only'; a non-zero exit is classified (driver missing, version mismatch, no
 * devices, GPU lost, ...); a timeout or unparsable output gives 'error'. Never throws.
 */
export async function discoverGpus(options: DiscoverGpusOptions): Promise<GpuDiscovery> {
  try {
    return await discover(options);
  } catch (err) {
    return { kind: 'error', gpus: [], condition: `GPU discovery failed unexpectedly: ${String(err)}` };
  }
}

async function discover(options: DiscoverGpusOptions): Promise<GpuDiscovery> {
  let fields = DEFAULT_QUERY_FIELDS;
  let result = await runQuery(options, fields);
  // Drivers older than 450 do not know mig.mode.current; ask again without it.
  if (result.kind === 'exited' && result.exitCode !== 0 && /is not a valid field to query/.test(result.stdout + result.stderr)) {
    fields = BASE_QUERY_FIELDS;
    result = await runQuery(options, fields);
  }

  switch (result.kind) {
    case 'not-found':
      return { kind: 'cpu-only', gpus: [], condition: 'nvidia-smi not found: CPU-only host' };
    case 'timeout':
      return {
        kind: 'error',
        gpus: [],
        condition: `nvidia-smi did not answer within ${options.timeoutMs} ms (hung driver or GPU?)`,
      };
    case 'spawn-failed':
      return { kind: 'error', gpus: [], condition: `cannot run ${options.nvidiaSmiPath}: ${result.message}` };
    case 'exited':
      break;
  }
  if (result.exitCode !== 0) return classifyNvidiaSmiFailure(result, fields);

  const { gpus, unparsed } = parseGpuQueryCsvDetailed(result.stdout, fields);
  if (gpus.length === 0) {
    return unparsed.length > 0
      ? { kind: 'error', gpus: [], condition: `unexpected nvidia-smi output: ${unparsed.slice(0, 2).join(' / ')}` }
      : { kind: 'no-devices', gpus: [], condition: 'nvidia-smi listed no GPU' };
  }
  const cudaVersion = await queryCudaVersion(options);
  return summarize(gpus.map((g) => ({ ...g, cudaVersion })));
}

/** ok when every GPU is healthy, else gpu-lost naming the unhealthy ones. */
function summarize(gpus: readonly GpuInfo[]): GpuDiscovery {
  const unhealthy = gpus.filter((g) => g.health === 'unhealthy');
  if (unhealthy.length === 0) return { kind: 'ok', gpus, condition: '' };
  return { kind: 'gpu-lost', gpus, condition: `GPU lost: ${unhealthy.map(describeUnhealthy).join('; ')}` };
}

function runQuery(options: DiscoverGpusOptions, fields: readonly string[]): Promise<ExecResult> {
  return run(options, [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits']);
}

/** '' when the driver does not print it or the run fails: the CUDA version is informative only. */
async function queryCudaVersion(options: DiscoverGpusOptions): Promise<string> {
  const result = await run(options, ['-q', '-d', 'COMPUTE']);
  return result.kind === 'exited' && result.exitCode === 0 ? parseCudaVersion(result.stdout) : '';
}

function run(options: DiscoverGpusOptions, args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      options.nvidiaSmiPath,
      args,
      {
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT_BYTES,
        encoding: 'utf8',
        ...(options.env ? { env: options.env } : {}),
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ kind: 'exited', exitCode: 0, stdout, stderr });
        const err = error as { code?: number | string | null; killed?: boolean; signal?: string | null; message: string };
        if (err.code === 'ENOENT') return resolve({ kind: 'not-found' });
        if (typeof err.code === 'number') return resolve({ kind: 'exited', exitCode: err.code, stdout, stderr });
        // A string code is a spawn or pipe error (EACCES, maxBuffer, ...); no code plus killed is our timeout.
        if (typeof err.code !== 'string' && err.killed) return resolve({ kind: 'timeout' });
        resolve({ kind: 'spawn-failed', message: err.signal ? `killed by ${err.signal}` : err.message });
      },
    );
  });
}
