import { isDeepStrictEqual } from 'node:util';
import type { ContainerCreateOptions, DeviceMapping, DeviceRequest, MountSettings } from 'dockerode';
import { RuntimeError } from './errors.js';
import { mountTargetProblem } from './mount-policy.js';

/** What a container may get besides plain, unprivileged isolation: only what the agent picked itself. */
export interface AllowedHostAccess {
  readonly envId: string;
  /**
   * The environment's storage: the agent's loop volume (a bind of its data directory), or the
   * Docker volume of an environment that predates loop volumes (the only volume it may mount).
   */
  readonly volume: { readonly kind: 'bind'; readonly source: string } | { readonly kind: 'docker'; readonly name: string };
  /** The agent's nosuid,nodev views of the spec's datasets (host-mounts.ts): the only other bind sources. */
  readonly datasetViews: readonly string[];
  /** The capabilities added back after dropping all (ADDED_CAPABILITIES). */
  readonly capabilities: readonly string[];
  /** The environment's own network, the only one it may join. */
  readonly network: string;
  /** The agent's own bind mount of the environment's keys directory (under the data directory). */
  readonly authorizedKeys: { readonly source: string; readonly target: string };
  /** The agent's data directory and the Docker socket: never a dataset's source. */
  readonly dataDir: string;
  readonly dockerSocket?: string;
  /** The GPU device nodes and device requests gpuPassthrough picked, the only ones. */
  readonly devices: readonly DeviceMapping[];
  readonly deviceRequests: readonly DeviceRequest[];
}

/** Namespace options that must never be `host` or another container's (NetworkMode must be its own network). */
const NAMESPACES = ['PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'CgroupnsMode', 'Cgroup'];
/** Options the agent never sets: each widens what the container reaches on the host. */
const NEVER_SET = ['Binds', 'VolumesFrom', 'Links', 'DeviceCgroupRules', 'Sysctls', 'CgroupParent', 'Runtime', 'VolumeDriver'];
const ALLOWED_SECURITY_OPTS = new Set(['no-new-privileges', 'no-new-privileges:true']);

/**
 * The final guard on create options, whatever built them: throws RuntimeError 'permission_denied'
 * naming the option when the container would be privileged, keep a capability it was not allowed
 * (CapDrop must be ALL), join another network than its own or share a host namespace, loosen its
 * security options, reach a device or device request the agent did not pick, or mount anything but
 * its volume, the agent's keys directory and the agent's views of its datasets. Pure.
 */
export function assertConfined(options: ContainerCreateOptions, allowed: AllowedHostAccess): void {
  const refuse = (what: string): never => {
    throw new RuntimeError('permission_denied', `environment ${allowed.envId}: refused: the agent never creates a container ${what}`);
  };
  const hc = (options.HostConfig ?? {}) as Record<string, unknown>;
  if (hc.Privileged === true) refuse('privileged');
  const capDrop = (hc.CapDrop ?? []) as string[];
  if (!capDrop.includes('ALL')) refuse('that keeps Docker\'s default capabilities (CapDrop must be ALL)');
  for (const cap of (hc.CapAdd ?? []) as string[]) if (!allowed.capabilities.includes(cap)) refuse(`with capability ${cap}`);
  if (hc.NetworkMode !== allowed.network) refuse(`with NetworkMode ${String(hc.NetworkMode)} (only its own network ${allowed.network})`);
  for (const key of NAMESPACES) {
    const value = hc[key];
    if (typeof value === 'string' && (value === 'host' || value.startsWith('container:'))) refuse(`with ${key} ${value}`);
  }
  for (const key of NEVER_SET) if (nonEmpty(hc[key])) refuse(`with ${key}`);
  // Docker masks /proc and /sys paths only when these are absent: even an empty list unmasks them.
  for (const key of ['MaskedPaths', 'ReadonlyPaths']) if (hc[key] !== undefined) refuse(`with ${key} (Docker's defaults must apply)`);
  // Endpoints here would join networks besides NetworkMode's.
  if (nonEmpty((options as { NetworkingConfig?: unknown }).NetworkingConfig)) refuse('with NetworkingConfig (only its own network)');
  for (const opt of (hc.SecurityOpt ?? []) as string[]) if (!ALLOWED_SECURITY_OPTS.has(opt)) refuse(`with security option ${opt}`);
  for (const device of (hc.Devices ?? []) as DeviceMapping[]) {
    if (!allowed.devices.some((d) => isDeepStrictEqual(d, device))) refuse(`with device ${device.PathOnHost}`);
  }
  if (!isDeepStrictEqual(hc.DeviceRequests ?? [], [...allowed.deviceRequests])) refuse('with device requests it did not pick');
  for (const m of (hc.Mounts ?? []) as MountSettings[]) {
    const problem = mountProblem(m, allowed);
    if (problem) refuse(problem);
  }
}

function mountProblem(m: MountSettings, allowed: AllowedHostAccess): string | undefined {
  const targetProblem = mountTargetProblem(m.Target);
  if (targetProblem) return `with a mount at ${m.Target}: ${targetProblem}`;
  const volume = allowed.volume;
  if (m.Type === 'volume') {
    const own = volume.kind === 'docker' ? volume.name : '(none: its storage is a loop volume)';
    if (volume.kind !== 'docker' || m.Source !== volume.name || m.VolumeOptions) return `with volume ${m.Source} (only its own ${own}, without options)`;
    return undefined;
  }
  if (m.Type !== 'bind') return `with a ${m.Type} mount`;
  if (m.BindOptions) return `with bind options on ${m.Source}`;
  const keys = allowed.authorizedKeys;
  if (m.Source === keys.source) {
    return m.Target === keys.target && m.ReadOnly === true ? undefined : `with its keys directory mounted other than read-only at ${keys.target}`;
  }
  if (volume.kind === 'bind' && m.Source === volume.source) return undefined;
  if (allowed.datasetViews.includes(m.Source)) return undefined;
  return `with a bind mount of ${m.Source}: only its volume, its keys directory and the agent's views of its datasets are mounted`;
}

function nonEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}
