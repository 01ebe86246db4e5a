// Proto ↔ domain conversion for the agent. Only the gRPC edges use it: agent-service.grpc.ts, reporter.ts
// and the HostFacts it sends (host-scan.ts).
import {
  DesiredState,
  GpuHealth,
  ObservedState,
  type EnvironmentSpec,
  type EnvironmentStatus,
  type Gpu,
  type HostFacts,
  type LifecycleEvent as ProtoEvent,
} from '../gen/remotegpu/v1/types.js';
import { LogStream, type LogLine as ProtoLogLine } from '../gen/remotegpu/v1/agent.js';
import type { GpuDiscovery, GpuInfo, HostInfo } from './discovery/types.js';
import type { EnvSpec, LifecycleEvent, LogLine, ObservedStatus } from './runtime/types.js';
import type { EnvUsage } from './usage.js';
import type { SshHostKey } from '../common/ssh-host-keys.js';

export function specFromProto(p: EnvironmentSpec): EnvSpec {
  return {
    envId: p.envId,
    image: p.image,
    cpuCores: p.cpuCores,
    memoryBytes: p.memoryBytes,
    gpuUuids: [...p.gpuUuids],
    storageBytes: p.storageBytes,
    dataPath: p.dataPath,
    ports: p.ports.map((x) => ({ name: x.name, containerPort: x.containerPort, hostPort: x.hostPort })),
    sshAuthorizedKeys: [...p.sshAuthorizedKeys],
    mounts: p.mounts.map((m) => ({ datasetId: m.datasetId, hostPath: m.hostPath, containerPath: m.containerPath, readonly: m.readonly })),
    env: { ...p.env },
    labels: { ...p.labels },
    jupyterToken: p.jupyterToken,
    desiredState: p.desiredState === DesiredState.DESIRED_STATE_STOPPED ? 'stopped' : 'running',
    shmBytes: p.shmBytes,
    pidsLimit: p.pidsLimit,
  };
}

const STATE_TO_PROTO: Record<ObservedStatus['state'], ObservedState> = {
  absent: ObservedState.OBSERVED_STATE_ABSENT,
  created: ObservedState.OBSERVED_STATE_CREATED,
  running: ObservedState.OBSERVED_STATE_RUNNING,
  exited: ObservedState.OBSERVED_STATE_EXITED,
  restarting: ObservedState.OBSERVED_STATE_RESTARTING,
  paused: ObservedState.OBSERVED_STATE_PAUSED,
  failed: ObservedState.OBSERVED_STATE_FAILED,
};

/**
 * An observed status for a report or an answer; `usage` adds what the environment uses (unknown
 * parts left out), `hostKeys` the SSH host keys read from this very container (ssh-host-keys.ts).
 */
export function statusToProto(s: ObservedStatus, sshReady: boolean, usage: EnvUsage = {}, hostKeys: readonly SshHostKey[] = []): EnvironmentStatus {
  return {
    envId: s.envId,
    state: STATE_TO_PROTO[s.state],
    containerId: s.containerId,
    specHash: s.specHash,
    gpuUuids: [...s.gpuUuids],
    exitCode: s.exitCode,
    oomKilled: s.oomKilled,
    startedAtMs: s.startedAtMs,
    finishedAtMs: s.finishedAtMs,
    message: s.message,
    sshReady,
    ...(usage.storageUsedBytes !== undefined ? { storageUsedBytes: usage.storageUsedBytes } : {}),
    ...(usage.rootfsUsedBytes !== undefined ? { rootfsUsedBytes: usage.rootfsUsedBytes } : {}),
    ...(usage.stopReason ? { stopReason: usage.stopReason } : {}),
    sshHostKeys: hostKeys.map((k) => ({ type: k.type, key: k.key })),
  };
}

export function eventToProto(e: LifecycleEvent): ProtoEvent {
  return { envId: e.envId, atMs: e.atMs, kind: e.kind, message: e.message };
}

export function logLineToProto(l: LogLine): ProtoLogLine {
  return { atMs: l.atMs, stream: l.stream === 'stderr' ? LogStream.LOG_STREAM_STDERR : LogStream.LOG_STREAM_STDOUT, text: l.text, continued: l.continued === true };
}

function gpuToProto(g: GpuInfo): Gpu {
  return {
    index: Math.max(0, g.index),
    uuid: g.uuid,
    model: g.model,
    memoryBytes: g.memoryBytes,
    memoryUsedBytes: g.memoryUsedBytes,
    utilizationPercent: g.utilizationPercent,
    temperatureC: g.temperatureC,
    pciBusId: g.pciBusId,
    driverVersion: g.driverVersion,
    cudaVersion: g.cudaVersion,
    health: g.health === 'healthy' ? GpuHealth.GPU_HEALTH_HEALTHY : GpuHealth.GPU_HEALTH_UNHEALTHY,
    healthReason: g.healthReason,
    migEnabled: g.migEnabled,
  };
}

export function hostFactsToProto(args: {
  host: HostInfo;
  gpus: GpuDiscovery;
  publicAddress: string;
  agentAddress: string;
  agentVersion: string;
  gpuMode: string;
  /** Bytes of the data disk kept free (REMOTEGPU_DISK_RESERVE), and whether free space is below it. */
  disk?: { reserveBytes: number; pressure: boolean };
  /** The OS machine id ('' or absent: unknown). */
  machineId?: string | undefined;
  /** Where containers' ports are published, and the ports busy there (agent/runtime/host-ports.ts). */
  ports?: { publishAddress: string; busy: readonly number[]; ephemeral: { from: number; to: number } | null } | undefined;
}): HostFacts {
  // A GPU without a UUID cannot be reserved; it is left out and the condition says so.
  const usable = args.gpus.gpus.filter((g) => g.uuid !== '');
  const dropped = args.gpus.gpus.length - usable.length;
  const first = usable[0];
  return {
    hostname: args.host.hostname,
    publicAddress: args.publicAddress,
    agentAddress: args.agentAddress,
    agentVersion: args.agentVersion,
    os: args.host.os,
    kernel: args.host.kernel,
    cpuModel: args.host.cpuModel,
    cpuCores: args.host.cpuCores,
    memoryBytes: args.host.memoryBytes,
    diskTotalBytes: args.host.diskTotalBytes,
    diskFreeBytes: args.host.diskFreeBytes,
    gpus: usable.map(gpuToProto),
    gpuCondition: [args.gpus.condition, dropped > 0 ? `${dropped} GPU(s) without a UUID left out` : ''].filter(Boolean).join('; '),
    driverVersion: first?.driverVersion ?? '',
    cudaVersion: first?.cudaVersion ?? '',
    gpuMode: args.gpuMode,
    ...(args.disk ? { diskReserveBytes: args.disk.reserveBytes, diskPressure: args.disk.pressure } : {}),
    ...(args.machineId ? { machineId: args.machineId } : {}),
    busyPorts: [...(args.ports?.busy ?? [])],
    ...(args.ports ? { publishAddress: args.ports.publishAddress } : {}),
    ...(args.ports?.ephemeral ? { ephemeralPortFrom: args.ports.ephemeral.from, ephemeralPortTo: args.ports.ephemeral.to } : {}),
  };
}
