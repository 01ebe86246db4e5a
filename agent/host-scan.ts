import { statfs } from 'node:fs/promises';
import type { HostFacts } from '../gen/remotegpu/v1/types.js';
import { hostFactsToProto } from './convert.js';
import { discoverHost } from './discovery/host.js';
import { discoverGpus } from './discovery/nvidia-smi.js';
import type { GpuDiscovery, HostInfo } from './discovery/types.js';
import type { GpuMode } from './runtime/gpu.js';
import { diskReserveBytes, underDiskPressure } from './usage.js';
import { busyPorts } from './runtime/host-ports.js';
import type { PortRange } from '../common/ports.js';

/** Per nvidia-smi run: a hung driver must not hang the agent. */
const NVIDIA_SMI_TIMEOUT_MS = 20_000;

export interface HostScanOptions {
  /** The agent's data directory (discovery reports the disk holding it). */
  readonly dataDir: string;
  /** The nvidia-smi to run: a name on PATH, or the fake one (fakeNvidiaSmiPath()). */
  readonly nvidiaSmiPath: string;
  /** Its environment (AgentConfig.processEnv, plus REMOTEGPU_FAKE_GPUS for the fake one). */
  readonly nvidiaSmiEnv: NodeJS.ProcessEnv;
  /** The GPUs are rescanned when facts are asked for and this long has passed since their last scan. */
  readonly gpuScanMs: number;
  /** Likewise for the host (CPU, memory, disk, addresses). */
  readonly hostScanMs: number;
}

/** What the reporter says about the agent itself besides the discovered host. */
export interface AgentFacts {
  readonly publicAddress: string;
  readonly agentAddress: string;
  readonly agentVersion: string;
  readonly gpuMode: GpuMode;
  /** CPU cores offered to environments; 0 = every logical CPU the host has. */
  readonly cpuCores: number;
  /** Fraction of the data disk kept free (REMOTEGPU_DISK_RESERVE); reported as bytes with the disk pressure flag. */
  readonly diskReserve?: number;
  /** The OS machine id (see readMachineId); '' when unknown. */
  readonly machineId?: string;
  /** Where containers' ports are published: the busy ports reported are those of this address (read at every report). */
  readonly publishAddress?: string;
  /** The host's ephemeral port range, read at start; null when unknown. */
  readonly ephemeralPorts?: PortRange | null;
}

/** The host as last discovered (agent/discovery/): its hardware and its GPUs, rescanned for reports. */
export class HostScan {
  /** When the GPUs and the host were last scanned (or the reporter's facts source was made). */
  private lastGpuScan = Date.now();
  private lastHostScan = Date.now();

  private constructor(
    private hostInfo: HostInfo,
    private gpuDiscovery: GpuDiscovery,
    private readonly options: HostScanOptions,
  ) {}

  /** Discovers the host, then its GPUs. */
  static async discover(options: HostScanOptions): Promise<HostScan> {
    const host = await discoverHost(options.dataDir);
    const gpus = await discoverGpus({ nvidiaSmiPath: options.nvidiaSmiPath, timeoutMs: NVIDIA_SMI_TIMEOUT_MS, env: options.nvidiaSmiEnv });
    return new HostScan(host, gpus, options);
  }

  get host(): HostInfo {
    return this.hostInfo;
  }

  get gpus(): GpuDiscovery {
    return this.gpuDiscovery;
  }

  /** UUID → index (the N of /dev/nvidiaN) of the GPUs last discovered that have a UUID. */
  gpuIndexes(): Map<string, number> {
    return new Map(this.gpuDiscovery.gpus.filter((g) => g.uuid).map((g) => [g.uuid, g.index]));
  }

  /**
   * The reporter's source of HostFacts (see facts); the rescan intervals count from this call on.
   * Every source shares this scan's clocks: a second call restarts them, it adds no timers.
   */
  factsSource(agent: AgentFacts): () => Promise<HostFacts> {
    this.lastGpuScan = this.lastHostScan = Date.now();
    return () => this.facts(agent);
  }

  /**
   * The HostFacts to report: first rescans the GPUs and the host when their intervals have passed
   * since their last scan; a failed host rescan keeps the previous facts. The data disk's size and
   * free space are read again every time (one statfs), since the disk-pressure flag depends on them.
   */
  async facts(agent: AgentFacts): Promise<HostFacts> {
    const now = Date.now();
    if (now - this.lastGpuScan >= this.options.gpuScanMs) {
      this.lastGpuScan = now;
      this.gpuDiscovery = await discoverGpus({ nvidiaSmiPath: this.options.nvidiaSmiPath, timeoutMs: NVIDIA_SMI_TIMEOUT_MS, env: this.options.nvidiaSmiEnv });
    }
    if (now - this.lastHostScan >= this.options.hostScanMs) {
      this.lastHostScan = now;
      this.hostInfo = await discoverHost(this.options.dataDir).catch(() => this.hostInfo);
    }
    const disk = await dataDiskNow(this.options.dataDir, this.hostInfo);
    const host = { ...this.hostInfo, diskTotalBytes: disk.total, diskFreeBytes: disk.free, ...(agent.cpuCores > 0 ? { cpuCores: agent.cpuCores } : {}) };
    const { publicAddress, agentAddress, agentVersion, gpuMode, machineId } = agent;
    const reserveBytes = diskReserveBytes(disk.total, agent.diskReserve ?? 0);
    const pressure = underDiskPressure(disk.free, reserveBytes);
    const ports =
      agent.publishAddress !== undefined
        ? { publishAddress: agent.publishAddress, busy: await busyPorts(agent.publishAddress), ephemeral: agent.ephemeralPorts ?? null }
        : undefined;
    return hostFactsToProto({ host, gpus: this.gpuDiscovery, publicAddress, agentAddress, agentVersion, gpuMode, disk: { reserveBytes, pressure }, machineId, ports });
  }
}

/**
 * Size and free bytes (available to unprivileged users, as df shows) of the filesystem holding
 * `dataDir`, by statfs; the last discovered figures when it cannot be read (the directory is gone).
 */
async function dataDiskNow(dataDir: string, last: HostInfo): Promise<{ total: number; free: number }> {
  try {
    const s = await statfs(dataDir);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch {
    return { total: last.diskTotalBytes, free: last.diskFreeBytes };
  }
}
