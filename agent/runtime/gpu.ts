import { posix } from 'node:path';
import type { DeviceMapping, DeviceRequest } from 'dockerode';
import { RuntimeError } from './errors.js';

/**
 * How assigned GPUs reach a container:
 * - 'nvidia': a DeviceRequest for the nvidia driver (nvidia-container-toolkit);
 * - 'cdi': CDI device names `nvidia.com/gpu=<uuid>` (Docker 25+ with CDI enabled);
 * - 'devices': raw /dev/nvidiaN nodes plus the control nodes, no toolkit needed.
 */
export type GpuMode = 'nvidia' | 'cdi' | 'devices';

export const GPU_MODES: readonly GpuMode[] = ['nvidia', 'cdi', 'devices'];

/** Device nodes every GPU process needs besides its /dev/nvidiaN, passed when they exist. */
export const CONTROL_NODES: readonly string[] = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'];

/** The CDI kind NVIDIA's toolkit generates specs for. */
export const NVIDIA_CDI_KIND = 'nvidia.com/gpu';

export interface GpuPassthroughInput {
  readonly mode: GpuMode;
  /** GPUs the container must see, by UUID. */
  readonly gpuUuids: readonly string[];
  /** The host's discovered GPUs: UUID → nvidia-smi index, the N of /dev/nvidiaN. */
  readonly gpuIndexes: ReadonlyMap<string, number>;
  /** Host directory holding the device nodes ('devices' mode); default /dev. */
  readonly deviceDir?: string;
  /** Which of CONTROL_NODES exist in deviceDir ('devices' mode). */
  readonly controlNodes?: readonly string[];
}

/** The parts of Docker's create options that carry GPUs. */
export interface GpuPassthrough {
  readonly deviceRequests: DeviceRequest[];
  readonly devices: DeviceMapping[];
  /** NVIDIA_VISIBLE_DEVICES: the UUIDs comma-joined, or 'void' for none. */
  readonly env: { readonly NVIDIA_VISIBLE_DEVICES: string };
  /** The UUIDs in the order the container sees them (host index order when known). */
  readonly gpuUuids: readonly string[];
}

const UUID_RE = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

/**
 * Turns assigned GPUs into Docker options for `mode`. Pure. With no GPUs nothing GPU-related is
 * passed in any mode and NVIDIA_VISIBLE_DEVICES is 'void', so a host whose default runtime is
 * nvidia exposes none either. Throws RuntimeError 'invalid_spec' for a malformed or duplicate UUID
 * and, in 'devices' mode, for a UUID that is not one of the host's GPUs.
 */
export function gpuPassthrough(input: GpuPassthroughInput): GpuPassthrough {
  const uuids = orderGpus(input.gpuUuids, input.gpuIndexes);
  const env = { NVIDIA_VISIBLE_DEVICES: uuids.length > 0 ? uuids.join(',') : 'void' };
  if (uuids.length === 0) return { deviceRequests: [], devices: [], env, gpuUuids: uuids };
  switch (input.mode) {
    case 'nvidia':
      return {
        deviceRequests: [{ Driver: 'nvidia', DeviceIDs: [...uuids], Capabilities: [['gpu']] }],
        devices: [],
        env,
        gpuUuids: uuids,
      };
    case 'cdi':
      return {
        deviceRequests: [{ Driver: 'cdi', DeviceIDs: uuids.map((u) => `${NVIDIA_CDI_KIND}=${u}`) }],
        devices: [],
        env,
        gpuUuids: uuids,
      };
    case 'devices': {
      const dir = input.deviceDir ?? '/dev';
      const node = (name: string): DeviceMapping => ({
        PathOnHost: posix.join(dir, name),
        PathInContainer: `/dev/${name}`,
        CgroupPermissions: 'rwm',
      });
      const gpuNodes = uuids.map((uuid) => {
        const index = input.gpuIndexes.get(uuid);
        if (index === undefined) {
          throw new RuntimeError('invalid_spec', `GPU ${uuid} is not one of this host's GPUs`);
        }
        return node(`nvidia${index}`);
      });
      const present = new Set(input.controlNodes ?? []);
      const control = CONTROL_NODES.filter((n) => present.has(n)).map(node);
      return { deviceRequests: [], devices: [...gpuNodes, ...control], env, gpuUuids: uuids };
    }
  }
}

/** Validated UUIDs in host index order (unknown ones last, by name), so the order is stable. */
function orderGpus(gpuUuids: readonly string[], indexes: ReadonlyMap<string, number>): string[] {
  const seen = new Set<string>();
  for (const uuid of gpuUuids) {
    if (!UUID_RE.test(uuid)) throw new RuntimeError('invalid_spec', `malformed GPU UUID ${JSON.stringify(uuid)}`);
    if (seen.has(uuid)) throw new RuntimeError('invalid_spec', `GPU ${uuid} is assigned twice`);
    seen.add(uuid);
  }
  const key = (u: string) => indexes.get(u) ?? Number.MAX_SAFE_INTEGER;
  return [...seen].sort((a, b) => key(a) - key(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** The fields of Docker's `GET /info` that mode detection reads. */
export interface DockerInfoForGpu {
  readonly Runtimes?: Readonly<Record<string, unknown>>;
  /** Present on Docker 25+ when CDI is enabled. */
  readonly CDISpecDirs?: readonly string[] | null;
}

/**
 * Picks the GPU mode for 'auto': 'nvidia' when Docker has an nvidia runtime, else 'cdi' when
 * Docker has CDI spec dirs and a spec there declares `nvidia.com/gpu` (`cdiKinds`: the kinds
 * found in those dirs, read by the caller), else 'devices'. Pure.
 */
export function detectGpuMode(info: DockerInfoForGpu, cdiKinds: readonly string[]): GpuMode {
  if (info.Runtimes && Object.hasOwn(info.Runtimes, 'nvidia')) return 'nvidia';
  if ((info.CDISpecDirs?.length ?? 0) > 0 && cdiKinds.includes(NVIDIA_CDI_KIND)) return 'cdi';
  return 'devices';
}

/** The `kind` a CDI spec file (JSON or YAML) declares, or undefined. Pure. */
export function parseCdiKind(text: string): string | undefined {
  const m = /(?:^|[{,\s])"?kind"?\s*:\s*["']?([A-Za-z0-9.-]+\/[A-Za-z0-9._-]+)/m.exec(text);
  return m?.[1];
}
