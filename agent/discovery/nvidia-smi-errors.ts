import { DEFAULT_QUERY_FIELDS, normalizePciBusId, parseGpuQueryCsvDetailed } from './nvidia-smi-parse.js';
import type { GpuDiscovery, GpuInfo } from './types.js';

/** What a finished nvidia-smi run left behind. */
export interface NvidiaSmiRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** nvidia-smi(1) RETURN VALUE, plus 18 and 255 seen in the wild (see error_nvidia-smi-return-codes.txt). */
const EXIT = {
  invalidArgument: 2,
  noPermission: 4,
  notFound: 6,
  driverNotLoaded: 9,
  nvmlNotFound: 12,
  gpuLost: 15,
  versionMismatch: 18,
} as const;

const DEVICE_HANDLE = /Unable to determine the device handle for (?:GPU |gpu )?([0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]):\s*([^\n]*)/g;

/**
 * Turns a failed nvidia-smi run (non-zero exit) into a GpuDiscovery with a reason in words:
 * driver not loaded / NVML missing → driver-missing, driver/library mismatch → version-mismatch,
 * no (supported) devices → no-devices, a GPU that fell off the bus → gpu-lost (the GPUs that still
 * answered are kept, the lost ones are listed as unhealthy), anything else → error. `fields` are the
 * --query-gpu fields of the run, used to keep the rows printed for the GPUs that still work.
 * Pure; never throws.
 */
export function classifyNvidiaSmiFailure(
  run: NvidiaSmiRun,
  fields: readonly string[] = DEFAULT_QUERY_FIELDS,
): GpuDiscovery {
  const text = `${run.stdout}\n${run.stderr}`;
  const message = firstLines(text);

  if (/Driver\/library version mismatch/i.test(text) || run.exitCode === EXIT.versionMismatch) {
    const lib = /NVML library version:\s*([\d.]+)/.exec(text)?.[1];
    return failed(
      'version-mismatch',
      `NVIDIA driver/library version mismatch${lib ? ` (NVML library ${lib})` : ''}: the driver was upgraded ` +
        'without reloading its kernel module; reboot the host or reload the nvidia kernel modules',
    );
  }
  if (/couldn't communicate with the NVIDIA driver|NVIDIA driver is not loaded|Driver Not Loaded/i.test(text) ||
    run.exitCode === EXIT.driverNotLoaded) {
    return failed(
      'driver-missing',
      'NVIDIA driver not loaded: nvidia-smi could not communicate with the NVIDIA driver; install the driver ' +
        'or load its kernel module (often needed after a kernel upgrade)',
    );
  }
  if (/NVML Shared Library Not Found|libnvidia-ml/i.test(text) || run.exitCode === EXIT.nvmlNotFound) {
    return failed(
      'driver-missing',
      'NVIDIA driver incomplete: nvidia-smi could not load the NVML library (libnvidia-ml.so); reinstall the driver',
    );
  }
  if (/No supported GPUs were found/i.test(text)) {
    return failed(
      'no-devices',
      'NVIDIA driver loaded but it found no supported GPU (no GPU is bound to the nvidia driver)',
    );
  }
  if (/No devices were found/i.test(text) || run.exitCode === EXIT.notFound) {
    return failed(
      'no-devices',
      'NVIDIA driver loaded but it found no GPU (nvidia-smi: "No devices were found"); check dmesg for RmInitAdapter errors',
    );
  }
  const lost = lostGpus(text);
  if (lost.length > 0 || /GPU is lost|fallen off the bus/i.test(text) || run.exitCode === EXIT.gpuLost) {
    const alive = parseGpuQueryCsvDetailed(run.stdout, fields).gpus;
    const gpus = [...alive, ...lost];
    const reasons = gpus.filter((g) => g.health === 'unhealthy').map(describeUnhealthy);
    return {
      kind: 'gpu-lost',
      gpus,
      condition: `GPU lost: ${reasons.length > 0 ? reasons.join('; ') : message}; the host needs a reboot or the GPU reseated`,
    };
  }
  if (/Insufficient Permissions|permission/i.test(text) || run.exitCode === EXIT.noPermission) {
    return failed('error', `nvidia-smi was denied access to the GPUs (exit ${run.exitCode}): ${message}`);
  }
  if (run.exitCode === EXIT.invalidArgument) {
    return failed('error', `nvidia-smi rejected its arguments (exit 2): ${message}`);
  }
  return failed('error', `nvidia-smi failed with exit code ${run.exitCode}: ${message || 'no output'}`);
}

/** "GPU 3 (00000000:0B:00.0): GPU is lost" for the condition text. */
export function describeUnhealthy(gpu: GpuInfo): string {
  const name = gpu.index >= 0 ? `GPU ${gpu.index}` : 'GPU';
  const where = gpu.pciBusId || gpu.uuid;
  return `${name}${where ? ` (${where})` : ''}: ${gpu.healthReason}`;
}

function failed(kind: GpuDiscovery['kind'], condition: string): GpuDiscovery {
  return { kind, condition, gpus: [] };
}

/** One unhealthy placeholder per "Unable to determine the device handle for GPU <bus>: <why>" line. */
function lostGpus(text: string): GpuInfo[] {
  const seen = new Map<string, GpuInfo>();
  for (const m of text.matchAll(DEVICE_HANDLE)) {
    const pciBusId = normalizePciBusId(m[1]!);
    const why = (m[2] ?? '').replace(/\s+/g, ' ').trim() || 'unknown error';
    seen.set(pciBusId, {
      index: -1,
      uuid: '',
      model: '',
      memoryBytes: 0,
      memoryUsedBytes: 0,
      utilizationPercent: -1,
      temperatureC: -1,
      pciBusId,
      driverVersion: '',
      cudaVersion: '',
      health: 'unhealthy',
      healthReason: `nvidia-smi cannot reach it: ${why}`,
      migEnabled: false,
    });
  }
  return [...seen.values()];
}

/** The first two non-empty lines, joined, for short messages. */
function firstLines(text: string): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(0, 2)
    .join(' / ');
}
