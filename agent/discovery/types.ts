/** Domain types for what the agent finds on its host: GPUs (via nvidia-smi) and the machine itself. */

export type GpuHealth = 'healthy' | 'unhealthy';

/** One physical GPU as nvidia-smi reports it. Unknown numbers are -1 (or 0 for memory). */
export interface GpuInfo {
  /** nvidia-smi enumeration index (PCI bus order); -1 when the GPU could not be enumerated. */
  readonly index: number;
  /** `GPU-xxxxxxxx-...`, or '' when unknown. */
  readonly uuid: string;
  /** Product name, e.g. "NVIDIA A40". */
  readonly model: string;
  /** Framebuffer memory; 0 when unknown. */
  readonly memoryBytes: number;
  /** Framebuffer memory in use; 0 when unknown. */
  readonly memoryUsedBytes: number;
  /** GPU utilization 0..100, -1 when unknown (e.g. MIG-enabled GPUs report [N/A]). */
  readonly utilizationPercent: number;
  /** Core temperature in °C, -1 when unknown. */
  readonly temperatureC: number;
  /** `00000000:4F:00.0` (8-digit domain, upper-case hex), or '' when unknown. */
  readonly pciBusId: string;
  readonly driverVersion: string;
  /** Highest CUDA version the driver supports, e.g. "12.4"; '' when unknown. */
  readonly cudaVersion: string;
  readonly health: GpuHealth;
  /** Why the GPU is unhealthy ('' when healthy), e.g. "GPU is lost". */
  readonly healthReason: string;
  readonly migEnabled: boolean;
}

/**
 * The outcome of one GPU discovery. `kind` is machine-readable, `condition` is the same thing in
 * words for an operator ('' when everything is fine).
 * - ok: nvidia-smi answered and every GPU is healthy
 * - cpu-only: no nvidia-smi binary on this host
 * - driver-missing: nvidia-smi exists but the kernel driver / NVML is not loaded
 * - version-mismatch: user-space NVML and kernel module versions differ (reboot or reload needed)
 * - no-devices: the driver is loaded but finds no (supported) GPU
 * - gpu-lost: at least one GPU fell off the bus or reports an unknown error (it is listed as unhealthy)
 * - error: anything else (timeout, unexpected exit code, unparsable output)
 */
export type GpuDiscoveryKind =
  | 'ok'
  | 'cpu-only'
  | 'driver-missing'
  | 'version-mismatch'
  | 'no-devices'
  | 'gpu-lost'
  | 'error';

export interface GpuDiscovery {
  readonly gpus: readonly GpuInfo[];
  /** '' when fine, else the reason in words. */
  readonly condition: string;
  readonly kind: GpuDiscoveryKind;
}

/** The host the agent runs on. */
export interface HostInfo {
  readonly hostname: string;
  /** Non-loopback, non-link-local IP addresses (IPv4 first). */
  readonly addresses: readonly string[];
  /** Distribution and release, e.g. "Ubuntu 22.04.4 LTS". */
  readonly os: string;
  /** Kernel release, e.g. "5.15.0-113-generic". */
  readonly kernel: string;
  readonly cpuModel: string;
  /** Logical CPUs. */
  readonly cpuCores: number;
  readonly memoryBytes: number;
  /** Size of the filesystem holding the data directory. */
  readonly diskTotalBytes: number;
  /** Bytes available to unprivileged users on that filesystem. */
  readonly diskFreeBytes: number;
}
