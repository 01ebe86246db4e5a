import { realpathSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { ContainerCreateOptions, MountSettings } from 'dockerode';
import { isOneLine } from './authorized-keys.js';
import { RuntimeError } from './errors.js';
import { gpuPassthrough, type GpuMode, type GpuPassthrough } from './gpu.js';
import { LABEL, LABEL_PREFIX, assertEnvId, authorizedKeysDir, containerName, datasetViewName, datasetViewPath, networkName, volumeDataPath, volumeName } from './docker-names.js';
import { assertConfined } from './host-config-guard.js';
import { AUTHORIZED_KEYS_TARGET, KEYS_DIR_TARGET } from './keys-link.js';
import { checkSpecMounts, mountTargetProblem, type MountPolicy } from './mount-policy.js';
import type { EnvSpec } from './types.js';

export const DEFAULT_PIDS_LIMIT = 4096;
/** Docker refuses smaller memory limits. */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

/**
 * The only capabilities an environment gets (all others are dropped), each with why an SSH
 * development box needs it. Dropped from Docker's defaults: MKNOD (device nodes), NET_RAW (raw
 * sockets: ARP and packet spoofing; `ping` needs it), SETFCAP and SETPCAP (granting capabilities).
 */
export const ADDED_CAPABILITIES: Readonly<Record<string, string>> = Object.freeze({
  CHOWN: 'change file owners (package managers, tar, chown)',
  DAC_OVERRIDE: 'root reads and writes files whatever their mode (package managers, editing other users\' files)',
  FOWNER: 'root changes modes and times of files it does not own (chmod, touch, tar)',
  FSETID: 'set-id bits survive when root modifies a file (package installs); no-new-privileges keeps them powerless',
  SETUID: 'sshd, su and login switch to the user who logs in',
  SETGID: 'sshd, su and login switch groups',
  KILL: 'root signals processes of other users (sshd ending sessions, kill)',
  NET_BIND_SERVICE: 'sshd listens on port 22 (and other services below 1024)',
  SYS_CHROOT: 'sshd privilege separation chroots into an empty directory',
  AUDIT_WRITE: 'sshd writes login records to the audit log; logins fail without it',
});

/** Host facts and agent settings that shape a container besides its spec. */
export interface CreateContext {
  /** The agent's state directory (keys directories live under `<stateDir>/envs/<envId>/`). */
  readonly stateDir: string;
  readonly gpuMode: GpuMode;
  /** The host's GPUs: UUID → index (N of /dev/nvidiaN). */
  readonly gpuIndexes: ReadonlyMap<string, number>;
  /** Host directory of the NVIDIA device nodes ('devices' mode); default /dev. */
  readonly deviceDir?: string;
  /** Control nodes present in deviceDir ('devices' mode). */
  readonly controlNodes?: readonly string[];
  /** Host address ports are published on; default 0.0.0.0. */
  readonly publishAddress?: string;
  /** PidsLimit when the spec says 0; default 4096. */
  readonly defaultPidsLimit?: number;
  /** Value of the remotegpu.managed label: 'true', or the agent's namespace when several agents share one engine. */
  readonly managedBy?: string;
  /** The Docker engine's unix socket, never a mount source (the final guard, host-config-guard.ts). */
  readonly dockerSocket?: string;
  /** This agent's run directory: the mount points of volumes and dataset views (host-mounts.ts). */
  readonly runDir: string;
  /** The environment's network (spare-networks.ts); default networkName(envId). */
  readonly network?: string;
  /**
   * The environment predates loop volumes: its data is in the Docker volume volumeName(envId),
   * which keeps being used (its size is not enforced).
   */
  readonly legacyVolume?: boolean;
}

/**
 * Checks what Docker would otherwise reject late or misread, throwing RuntimeError 'invalid_spec'
 * naming the field, then every dataset's host path against the agent's own mount policy
 * (mount-policy.ts: 'permission_denied' for a path it never mounts or one outside the dataset
 * roots). Reads the file system only to resolve those paths.
 */
export function validateSpec(spec: EnvSpec, policy: MountPolicy): void {
  assertEnvId(spec.envId);
  const bad = (msg: string): never => {
    throw new RuntimeError('invalid_spec', `environment ${spec.envId}: ${msg}`);
  };
  if (!spec.image.trim()) bad('image is empty');
  if (!Number.isFinite(spec.cpuCores) || spec.cpuCores < 0) bad('cpuCores must be 0 (no limit) or positive');
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 0) bad('memoryBytes must be a whole number');
  if (spec.memoryBytes > 0 && spec.memoryBytes < MIN_MEMORY_BYTES) bad('memoryBytes must be at least 6 MiB');
  if (!Number.isSafeInteger(spec.shmBytes) || spec.shmBytes < 0) bad('shmBytes must be 0 or positive');
  if (!Number.isSafeInteger(spec.pidsLimit) || spec.pidsLimit < 0) bad('pidsLimit must be 0 or positive');
  if (!Number.isSafeInteger(spec.storageBytes) || spec.storageBytes < 0) bad('storageBytes must be a whole number');
  const dataPathProblem = mountTargetProblem(spec.dataPath);
  if (dataPathProblem) bad(`dataPath: ${dataPathProblem}`);

  const containerPorts = new Set<number>();
  const hostPorts = new Set<number>();
  for (const p of spec.ports) {
    if (!isPort(p.containerPort) || !isPort(p.hostPort)) bad(`port ${p.name}: ports must be 1-65535`);
    if (containerPorts.has(p.containerPort)) bad(`container port ${p.containerPort} is published twice`);
    if (hostPorts.has(p.hostPort)) bad(`host port ${p.hostPort} is used twice`);
    containerPorts.add(p.containerPort);
    hostPorts.add(p.hostPort);
  }

  const targets = new Set<string>([spec.dataPath, AUTHORIZED_KEYS_TARGET, KEYS_DIR_TARGET]);
  for (const m of spec.mounts) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(m.datasetId)) bad(`dataset id ${JSON.stringify(m.datasetId)} is invalid`);
    if (!posix.isAbsolute(m.hostPath)) bad(`dataset ${m.datasetId}: hostPath must be absolute`);
    const targetProblem = mountTargetProblem(m.containerPath);
    if (targetProblem) bad(`dataset ${m.datasetId}: containerPath: ${targetProblem}`);
    if (targets.has(m.containerPath)) bad(`dataset ${m.datasetId}: ${m.containerPath} is already mounted`);
    targets.add(m.containerPath);
  }

  for (const key of Object.keys(spec.env)) {
    if (!key || key.includes('=') || key.includes('\0')) bad(`environment variable name ${JSON.stringify(key)} is invalid`);
  }
  for (const value of Object.values(spec.env)) if (value.includes('\0')) bad('environment variable values must not contain NUL');
  for (const key of Object.keys(spec.labels)) {
    if (key.startsWith(LABEL_PREFIX)) bad(`label ${key}: the remotegpu. prefix is reserved`);
  }
  if (!spec.sshAuthorizedKeys.every(isOneLine)) bad('an SSH key must be one line');
  checkSpecMounts(spec, policy);
}

/**
 * A stable hash of every spec field that needs a new container to change: image, CPU, memory,
 * GPUs (as a set), data path, ports, mounts, env, labels, Jupyter token, shm and pids limits.
 * Not desiredState, not storageBytes, not the SSH keys (their file is rewritten in place). Pure.
 */
export function specHash(spec: EnvSpec): string {
  const canonical = {
    v: 2,
    image: spec.image,
    cpuCores: spec.cpuCores,
    memoryBytes: spec.memoryBytes,
    gpuUuids: [...spec.gpuUuids].sort(),
    dataPath: spec.dataPath,
    ports: [...spec.ports]
      .sort((a, b) => a.containerPort - b.containerPort)
      .map((p) => [p.name, p.containerPort, p.hostPort]),
    mounts: [...spec.mounts]
      .sort((a, b) => compare(a.containerPath, b.containerPath))
      .map((m) => [m.datasetId, m.hostPath, m.containerPath, m.readonly]),
    env: sortedEntries(spec.env),
    labels: sortedEntries(spec.labels),
    jupyterToken: spec.jupyterToken,
    shmBytes: spec.shmBytes,
    pidsLimit: spec.pidsLimit,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 16);
}

/**
 * The dockerode create options for `spec` on this host. Pure. Expects a spec validateSpec accepted
 * (the runtime validates once per apply, then builds these once); still throws RuntimeError
 * 'invalid_spec' for GPUs it cannot pass through (see gpuPassthrough). Never privileged, every
 * capability dropped but ADDED_CAPABILITIES, no-new-privileges, no swap, its own bridge network,
 * private IPC and cgroup namespaces, the storage volume at dataPath, the keys directory
 * bind-mounted read-only, each dataset as the agent's nosuid,nodev view, restart policy unless-stopped; a final
 * guard (assertConfined) throws 'permission_denied' should the options ever reach further into the
 * host than that.
 */
export function buildCreateOptions(spec: EnvSpec, ctx: CreateContext): ContainerCreateOptions {
  const gpu = gpuPassthrough({
    mode: ctx.gpuMode,
    gpuUuids: spec.gpuUuids,
    gpuIndexes: ctx.gpuIndexes,
    deviceDir: ctx.deviceDir,
    controlNodes: ctx.controlNodes,
  });

  const env: Record<string, string> = { ...spec.env };
  if (spec.jupyterToken) env.JUPYTER_TOKEN = spec.jupyterToken;
  // The agent decides which GPUs are visible; a user value must not widen it.
  env.NVIDIA_VISIBLE_DEVICES = gpu.env.NVIDIA_VISIBLE_DEVICES;

  const ports = publishedPorts(spec, ctx.publishAddress ?? '0.0.0.0');
  const labels: Record<string, string> = {
    ...spec.labels,
    [LABEL.managed]: ctx.managedBy ?? 'true',
    [LABEL.envId]: spec.envId,
    [LABEL.specHash]: specHash(spec),
    [LABEL.gpuUuids]: gpu.gpuUuids.join(','),
    [LABEL.image]: spec.image,
  };

  const memory = spec.memoryBytes;
  const shm = spec.shmBytes > 0 ? spec.shmBytes : memory > 0 ? Math.floor(memory / 2) : 0;
  const options: ContainerCreateOptions = {
    name: containerName(spec.envId),
    Image: spec.image,
    Hostname: spec.envId,
    Env: sortedEntries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ExposedPorts: ports.exposed,
    Tty: false,
    HostConfig: {
      ...(spec.cpuCores > 0 ? { NanoCpus: Math.round(spec.cpuCores * 1e9) } : {}),
      ...(memory > 0 ? { Memory: memory, MemorySwap: memory } : {}),
      ...(shm > 0 ? { ShmSize: shm } : {}),
      PidsLimit: spec.pidsLimit > 0 ? spec.pidsLimit : (ctx.defaultPidsLimit ?? DEFAULT_PIDS_LIMIT),
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: Object.keys(ADDED_CAPABILITIES),
      SecurityOpt: ['no-new-privileges'],
      NetworkMode: ctx.network ?? networkName(spec.envId),
      IpcMode: 'private',
      // Not in dockerode's types; Docker's API has it since 1.41.
      ...({ CgroupnsMode: 'private' } as object),
      Init: true,
      PortBindings: ports.bindings,
      Mounts: containerMounts(spec, ctx),
      ...(gpu.devices.length > 0 ? { Devices: gpu.devices } : {}),
      ...(gpu.deviceRequests.length > 0 ? { DeviceRequests: gpu.deviceRequests } : {}),
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
  };
  return confined(options, spec, ctx, gpu);
}

/** `options` once the final guard (host-config-guard.ts) let them through. */
function confined(options: ContainerCreateOptions, spec: EnvSpec, ctx: CreateContext, gpu: GpuPassthrough): ContainerCreateOptions {
  assertConfined(options, {
    envId: spec.envId,
    volume: ctx.legacyVolume ? { kind: 'docker', name: volumeName(spec.envId) } : { kind: 'bind', source: volumeDataPath(ctx.runDir, spec.envId) },
    datasetViews: spec.mounts.map((m) => datasetViewPath(ctx.runDir, spec.envId, datasetViewName(m))),
    capabilities: Object.keys(ADDED_CAPABILITIES),
    network: ctx.network ?? networkName(spec.envId),
    authorizedKeys: { source: authorizedKeysDir(ctx.stateDir, spec.envId), target: KEYS_DIR_TARGET },
    dataDir: ctx.stateDir,
    dockerSocket: ctx.dockerSocket,
    devices: gpu.devices,
    deviceRequests: gpu.deviceRequests,
  });
  return options;
}

/** The create options from `image` (a committed image of the environment) when given, else as built. */
export function withImage(options: ContainerCreateOptions, image: string | undefined): ContainerCreateOptions {
  return { ...options, Image: image ?? options.Image };
}

/** ExposedPorts and PortBindings: every spec port over TCP on `publishAddress`. */
function publishedPorts(spec: EnvSpec, publishAddress: string) {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of spec.ports) {
    exposed[`${p.containerPort}/tcp`] = {};
    bindings[`${p.containerPort}/tcp`] = [{ HostIp: publishAddress, HostPort: String(p.hostPort) }];
  }
  return { exposed, bindings };
}

/**
 * The storage volume, the read-only keys directory (its authorized_keys is what
 * /root/.ssh/authorized_keys links to, see keys-link.ts), then the datasets by container path.
 * Datasets and the volume are the agent's own mounts (host-mounts.ts), bound without ReadOnly:
 * Docker's read-only remount would drop their nosuid,nodev, and a read-only view is read-only already.
 */
function containerMounts(spec: EnvSpec, ctx: CreateContext): MountSettings[] {
  const volume: MountSettings = ctx.legacyVolume
    ? { Type: 'volume', Source: volumeName(spec.envId), Target: spec.dataPath }
    : { Type: 'bind', Source: volumeDataPath(ctx.runDir, spec.envId), Target: spec.dataPath };
  return [
    volume,
    { Type: 'bind', Source: authorizedKeysDir(ctx.stateDir, spec.envId), Target: KEYS_DIR_TARGET, ReadOnly: true },
    ...[...spec.mounts]
      .sort((a, b) => compare(a.containerPath, b.containerPath))
      .map((m): MountSettings => ({ Type: 'bind', Source: datasetViewPath(ctx.runDir, spec.envId, datasetViewName(m)), Target: m.containerPath })),
  ];
}

/**
 * The spec with each dataset's host path resolved to its real path (symlinks resolved, as the
 * mount policy checked it), so that the agent's view mounts what was checked; the path as given
 * when it cannot be resolved (validateSpec refused those already).
 */
export function withRealMountPaths(spec: EnvSpec): EnvSpec {
  return { ...spec, mounts: spec.mounts.map((m) => ({ ...m, hostPath: realOrSame(m.hostPath) })) };
}

function realOrSame(hostPath: string): string {
  try {
    return realpathSync(hostPath);
  } catch {
    return hostPath;
  }
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedEntries(record: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => compare(a, b));
}
