import { posix } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { ContainerCreateOptions, DeviceMapping, DeviceRequest, MountSettings } from 'dockerode';
import { RuntimeError } from './errors.js';
import { forbiddenPaths, forbiddenRule, mountTargetProblem } from './mount-policy.js';

/** What a container may get besides plain, unprivileged isolation: only what the agent picked itself. */
export interface AllowedHostAccess {
  readonly envId: string;
  /** The environment's storage volume, the only volume. */
  readonly volume: string;
  /** The agent's own bind mount of the environment's authorized_keys file (under the data directory). */
  readonly authorizedKeys: { readonly source: string; readonly target: string };
  /** The agent's data directory and the Docker socket: never a dataset's source. */
  readonly dataDir: string;
  readonly dockerSocket?: string;
  /** The GPU device nodes and device requests gpuPassthrough picked, the only ones. */
  readonly devices: readonly DeviceMapping[];
  readonly deviceRequests: readonly DeviceRequest[];
}

/** Namespace options that must never be `host` or another container's. */
const NAMESPACES = ['NetworkMode', 'PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'CgroupnsMode', 'Cgroup'];
/** Options the agent never sets: each widens what the container reaches on the host. */
const NEVER_SET = ['Binds', 'VolumesFrom', 'Links', 'DeviceCgroupRules', 'Sysctls', 'CgroupParent', 'Runtime', 'VolumeDriver'];
const ALLOWED_SECURITY_OPTS = new Set(['no-new-privileges', 'no-new-privileges:true']);

/**
 * The final guard on create options, whatever built them: throws RuntimeError 'permission_denied'
 * naming the option when the container would be privileged, get capabilities, share a host
 * namespace, loosen its security options, reach a device or device request the agent did not pick,
 * or mount anything but its volume, the agent's authorized_keys file and dataset directories that
 * are none of the paths the agent never mounts (mount-policy.ts; strings only: validateSpec has
 * resolved the spec's paths on disk). Pure.
 */
export function assertConfined(options: ContainerCreateOptions, allowed: AllowedHostAccess): void {
  const refuse = (what: string): never => {
    throw new RuntimeError('permission_denied', `environment ${allowed.envId}: refused: the agent never creates a container ${what}`);
  };
  const hc = (options.HostConfig ?? {}) as Record<string, unknown>;
  if (hc.Privileged === true) refuse('privileged');
  if (nonEmpty(hc.CapAdd)) refuse(`with added capabilities (${String(hc.CapAdd)})`);
  for (const key of NAMESPACES) {
    const value = hc[key];
    if (typeof value === 'string' && (value === 'host' || value.startsWith('container:'))) refuse(`with ${key} ${value}`);
  }
  for (const key of NEVER_SET) if (nonEmpty(hc[key])) refuse(`with ${key}`);
  for (const opt of (hc.SecurityOpt ?? []) as string[]) if (!ALLOWED_SECURITY_OPTS.has(opt)) refuse(`with security option ${opt}`);
  for (const device of (hc.Devices ?? []) as DeviceMapping[]) {
    if (!allowed.devices.some((d) => isDeepStrictEqual(d, device))) refuse(`with device ${device.PathOnHost}`);
  }
  if (!isDeepStrictEqual(hc.DeviceRequests ?? [], [...allowed.deviceRequests])) refuse('with device requests it did not pick');
  const forbidden = forbiddenPaths(allowed, false);
  for (const m of (hc.Mounts ?? []) as MountSettings[]) {
    const problem = mountProblem(m, allowed, forbidden);
    if (problem) refuse(problem);
  }
}

function mountProblem(m: MountSettings, allowed: AllowedHostAccess, forbidden: ReturnType<typeof forbiddenPaths>): string | undefined {
  const targetProblem = mountTargetProblem(m.Target);
  if (targetProblem) return `with a mount at ${m.Target}: ${targetProblem}`;
  if (m.Type === 'volume') {
    if (m.Source !== allowed.volume || m.VolumeOptions) return `with volume ${m.Source} (only its own ${allowed.volume}, without options)`;
    return undefined;
  }
  if (m.Type !== 'bind') return `with a ${m.Type} mount`;
  if (m.BindOptions) return `with bind options on ${m.Source}`;
  const keys = allowed.authorizedKeys;
  if (m.Source === keys.source) {
    return m.Target === keys.target && m.ReadOnly === true ? undefined : `with its authorized_keys file mounted other than read-only at ${keys.target}`;
  }
  const rule = m.Source.startsWith('/') ? forbiddenRule(posix.resolve(m.Source), forbidden) : 'it is not an absolute path';
  return rule ? `with a bind mount of ${m.Source}: ${rule}` : undefined;
}

function nonEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}
