import { LogStream, type LogLine } from '../../gen/remotegpu/v1/agent.js';
import {
  DesiredState,
  GpuHealth,
  ObservedState as ProtoObservedState,
  type EnvironmentSpec,
  type EnvironmentStatus,
  type Gpu,
  type HostFacts as ProtoHostFacts,
  type LifecycleEvent,
} from '../../gen/remotegpu/v1/types.js';
import { normalHostKeys } from '../../common/ssh-host-keys.js';
import type { GpuFacts, HostFacts } from './model.js';
import type { AgentEnvSpec, AgentEvent, AgentLogLine, ObservedEnvironment, ObservedState } from './types.js';

// Proto ↔ domain conversion for the hosts component's gRPC edges (ControlPlane server side,
// AgentService client side). Pure functions; nothing else in the controller touches proto types.

/** Proto GPU → domain. An unspecified health counts as healthy (the agent saw no error). */
export function gpuFromProto(g: Gpu): GpuFacts {
  return {
    index: g.index,
    uuid: g.uuid.trim(),
    model: g.model.trim(),
    memoryBytes: g.memoryBytes,
    memoryUsedBytes: g.memoryUsedBytes,
    utilizationPercent: g.utilizationPercent,
    temperatureC: g.temperatureC,
    pciBusId: g.pciBusId,
    health: g.health === GpuHealth.GPU_HEALTH_UNHEALTHY ? 'unhealthy' : 'healthy',
    healthReason: g.health === GpuHealth.GPU_HEALTH_UNHEALTHY ? g.healthReason || 'reported unhealthy by the agent' : '',
    migEnabled: g.migEnabled,
  };
}

/**
 * Proto host facts → domain. The host-level driver and CUDA versions fall back to the first GPU's
 * when the agent left them empty.
 */
export function hostFactsFromProto(f: ProtoHostFacts): HostFacts {
  const first = f.gpus[0];
  return {
    hostname: f.hostname.trim(),
    publicAddress: f.publicAddress.trim(),
    agentAddress: f.agentAddress.trim(),
    agentVersion: f.agentVersion,
    os: f.os,
    kernel: f.kernel,
    cpuModel: f.cpuModel,
    cpuCores: f.cpuCores,
    memoryBytes: f.memoryBytes,
    diskTotalBytes: f.diskTotalBytes,
    diskFreeBytes: f.diskFreeBytes,
    diskReserveBytes: f.diskReserveBytes ?? 0,
    diskPressure: f.diskPressure ?? false,
    gpus: f.gpus.map(gpuFromProto),
    gpuCondition: f.gpuCondition,
    driverVersion: f.driverVersion || first?.driverVersion || '',
    cudaVersion: f.cudaVersion || first?.cudaVersion || '',
    gpuMode: f.gpuMode,
    machineId: (f.machineId ?? '').trim(),
    publishAddress: (f.publishAddress ?? '').trim(),
    busyPorts: [...new Set(f.busyPorts.filter((p) => Number.isInteger(p) && p >= 1 && p <= 65535))].sort((a, b) => a - b),
    ephemeralPorts: f.ephemeralPortFrom && f.ephemeralPortTo && f.ephemeralPortFrom <= f.ephemeralPortTo ? { from: f.ephemeralPortFrom, to: f.ephemeralPortTo } : null,
  };
}

const OBSERVED: Record<number, ObservedState> = {
  [ProtoObservedState.OBSERVED_STATE_ABSENT]: 'absent',
  [ProtoObservedState.OBSERVED_STATE_CREATED]: 'created',
  [ProtoObservedState.OBSERVED_STATE_RUNNING]: 'running',
  [ProtoObservedState.OBSERVED_STATE_EXITED]: 'exited',
  [ProtoObservedState.OBSERVED_STATE_RESTARTING]: 'restarting',
  [ProtoObservedState.OBSERVED_STATE_PAUSED]: 'paused',
  [ProtoObservedState.OBSERVED_STATE_FAILED]: 'failed',
};

/** Latest time an agent may report (year 9999): later values are garbage and read as "unknown". */
const MAX_MS = 253_402_300_799_000;
const MAX_TEXT = 4096;
const msToDate = (ms: number): Date | null => (ms > 0 && ms <= MAX_MS ? new Date(ms) : null);
/** Agent-supplied text, bounded (a host can only bloat its own events, not the database). */
const bounded = (text: string, max = MAX_TEXT): string => (text.length > max ? `${text.slice(0, max)}…` : text);

/** Proto EnvironmentStatus → domain ObservedEnvironment ('unknown' for states this build does not know). */
export function observedFromProto(s: EnvironmentStatus): ObservedEnvironment {
  return {
    envId: s.envId,
    state: OBSERVED[s.state] ?? 'unknown',
    containerId: s.containerId,
    specHash: s.specHash,
    gpuUuids: [...s.gpuUuids],
    exitCode: s.exitCode,
    oomKilled: s.oomKilled,
    startedAt: msToDate(s.startedAtMs),
    finishedAt: msToDate(s.finishedAtMs),
    message: bounded(s.message),
    sshReady: s.sshReady,
    storageUsedBytes: usageBytes(s.storageUsedBytes),
    rootfsUsedBytes: usageBytes(s.rootfsUsedBytes),
    stopReason: bounded(s.stopReason ?? ''),
    // Checked again here: the controller keeps only well-formed keys, whatever an agent sends.
    sshHostKeys: normalHostKeys(s.sshHostKeys ?? []),
  };
}

/** 8 PiB, the bound of reported disk sizes: a larger figure is garbage and reads as unknown. */
const MAX_USAGE_BYTES = 8 * 2 ** 50;
const usageBytes = (bytes: number | undefined): number | null =>
  bytes !== undefined && Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= MAX_USAGE_BYTES ? bytes : null;

/** The observation for an environment the agent has no container for. */
export function absentObservation(envId: string, message = ''): ObservedEnvironment {
  return {
    envId,
    state: 'absent',
    containerId: '',
    specHash: '',
    gpuUuids: [],
    exitCode: 0,
    oomKilled: false,
    startedAt: null,
    finishedAt: null,
    message,
    sshReady: false,
    storageUsedBytes: null,
    rootfsUsedBytes: null,
    stopReason: '',
    sshHostKeys: [],
  };
}

/** Proto LifecycleEvent → domain AgentEvent (a missing timestamp becomes "now"). */
export function eventFromProto(e: LifecycleEvent, now: Date = new Date()): AgentEvent {
  return { envId: e.envId, at: msToDate(e.atMs) ?? now, kind: bounded(e.kind, 64), message: bounded(e.message) };
}

/** Domain spec → proto EnvironmentSpec. */
export function specToProto(s: AgentEnvSpec): EnvironmentSpec {
  return {
    envId: s.envId,
    image: s.image,
    cpuCores: s.cpuCores,
    memoryBytes: s.memoryBytes,
    gpuUuids: [...s.gpuUuids],
    storageBytes: s.storageBytes,
    dataPath: s.dataPath,
    ports: s.ports.map((p) => ({ name: p.name, containerPort: p.containerPort, hostPort: p.hostPort })),
    sshAuthorizedKeys: [...s.sshAuthorizedKeys],
    mounts: s.mounts.map((m) => ({ datasetId: m.datasetId, hostPath: m.hostPath, containerPath: m.containerPath, readonly: m.readonly })),
    env: { ...s.env },
    labels: { ...s.labels },
    jupyterToken: s.jupyterToken,
    desiredState: s.desiredState === 'running' ? DesiredState.DESIRED_STATE_RUNNING : DesiredState.DESIRED_STATE_STOPPED,
    shmBytes: 0,
    pidsLimit: 0,
  };
}

/** Proto LogLine → domain (anything not stderr counts as stdout). */
export function logLineFromProto(l: LogLine): AgentLogLine {
  return { at: new Date(l.atMs), stream: l.stream === LogStream.LOG_STREAM_STDERR ? 'stderr' : 'stdout', text: l.text, continued: l.continued };
}
