import type { ContainerCreateOptions, HostConfig } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { ADDED_CAPABILITIES, buildCreateOptions, type CreateContext } from '../../../agent/runtime/docker-spec.js';
import { assertConfined, type AllowedHostAccess } from '../../../agent/runtime/host-config-guard.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';

// The final guard on the create options (agent/runtime/host-config-guard.ts): whatever built them,
// no container is created privileged, with capabilities beyond ADDED_CAPABILITIES, on another network
// than its own, with host namespaces or with any host path but its volume, its keys directory
// and the agent's views of its datasets. The spec cannot express any of these; the guard is there
// for the day code could.

const GPU = 'GPU-aaaaaaaa-0000-0000-0000-000000000001';
const ctx: CreateContext = {
  stateDir: '/var/lib/remotegpu',
  gpuMode: 'devices',
  gpuIndexes: new Map([[GPU, 1]]),
  deviceDir: '/dev',
  controlNodes: ['nvidiactl'],
  dockerSocket: '/run/alt/docker.sock',
  runDir: '/run/remotegpu/default',
};
const VIEW = '/run/remotegpu/default/env-guard/datasets/ds-1-ro';
const VOLUME_DATA = '/run/remotegpu/default/env-guard/volume/data';

function spec(over: Partial<EnvSpec> = {}): EnvSpec {
  return {
    envId: 'env-guard',
    image: 'remotegpu/devbox:1',
    cpuCores: 1,
    memoryBytes: 1024 ** 3,
    gpuUuids: [GPU],
    storageBytes: 1024 ** 3,
    dataPath: '/root/workspace',
    ports: [{ name: 'ssh', containerPort: 22, hostPort: 30022 }],
    sshAuthorizedKeys: [],
    mounts: [{ datasetId: 'ds-1', hostPath: '/srv/datasets/imagenet', containerPath: '/data/imagenet', readonly: true }],
    env: {},
    labels: {},
    jupyterToken: '',
    desiredState: 'running',
    shmBytes: 0,
    pidsLimit: 0,
    ...over,
  };
}

const built = buildCreateOptions(spec(), ctx);
const allowed: AllowedHostAccess = {
  envId: 'env-guard',
  volume: { kind: 'bind', source: VOLUME_DATA },
  datasetViews: [VIEW],
  capabilities: Object.keys(ADDED_CAPABILITIES),
  network: 'remotegpu-env-guard-net',
  authorizedKeys: { source: '/var/lib/remotegpu/envs/env-guard/ssh', target: '/etc/remotegpu/ssh' },
  dataDir: '/var/lib/remotegpu',
  dockerSocket: '/run/alt/docker.sock',
  devices: built.HostConfig!.Devices,
  deviceRequests: [],
};

/** `built` with its HostConfig changed by `change`. */
function withHostConfig(change: Partial<HostConfig> & Record<string, unknown>): ContainerCreateOptions {
  return { ...built, HostConfig: { ...built.HostConfig, ...change } };
}

const mounts = built.HostConfig!.Mounts!;
const bind = (Source: string, Target = '/data/x') => ({ Type: 'bind' as const, Source, Target, ReadOnly: true });

/** The legacy case: an environment that predates loop volumes keeps its Docker volume. */
const legacyBuilt = buildCreateOptions(spec(), { ...ctx, legacyVolume: true });
const legacyAllowed: AllowedHostAccess = { ...allowed, volume: { kind: 'docker', name: 'remotegpu-env-guard-data' } };
const legacyMounts = legacyBuilt.HostConfig!.Mounts!;

describe('assertConfined', () => {
  it('lets through what buildCreateOptions builds (volume, keys directory, dataset views, GPU nodes)', () => {
    expect(built.HostConfig?.Devices).toHaveLength(2);
    expect(mounts.map((m) => m.Source)).toEqual([VOLUME_DATA, '/var/lib/remotegpu/envs/env-guard/ssh', VIEW]);
    expect(() => assertConfined(built, allowed)).not.toThrow();
  });

  it('lets through the legacy Docker volume of an environment that has one', () => {
    expect(legacyMounts[0]).toMatchObject({ Type: 'volume', Source: 'remotegpu-env-guard-data' });
    expect(() => assertConfined(legacyBuilt, legacyAllowed)).not.toThrow();
  });

  it('lets through fewer capabilities than allowed, and CapDrop ALL among others', () => {
    expect(() => assertConfined(withHostConfig({ CapAdd: ['CHOWN'] }), allowed)).not.toThrow();
    expect(() => assertConfined(withHostConfig({ CapAdd: [] }), allowed)).not.toThrow();
    expect(() => assertConfined(withHostConfig({ CapDrop: ['NET_RAW', 'ALL'] }), allowed)).not.toThrow();
  });

  it('refuses a loop-volume bind or a Docker volume that is not the one the environment uses', () => {
    // Legacy environment: its Docker volume only, not a bind of the loop volume's path.
    const withLoop = { ...legacyBuilt, HostConfig: { ...legacyBuilt.HostConfig, Mounts: [...legacyMounts, bind(VOLUME_DATA)] } };
    expect(() => assertConfined(withLoop, legacyAllowed)).toThrow(`bind mount of ${VOLUME_DATA}`);
    // Loop-volume environment: no Docker volume at all, not even the one its id would name.
    expect(() => assertConfined(legacyBuilt, allowed)).toThrow(expect.objectContaining({ code: 'permission_denied', message: expect.stringContaining('volume remotegpu-env-guard-data (only its own (none') }));
  });

  it('names the environment, the option and the rule in its message', () => {
    expect(() => assertConfined(withHostConfig({ CapAdd: ['SYS_ADMIN'] }), allowed)).toThrow(
      'environment env-guard: refused: the agent never creates a container with capability SYS_ADMIN',
    );
    expect(() => assertConfined(withHostConfig({ NetworkMode: 'bridge' }), allowed)).toThrow(
      'environment env-guard: refused: the agent never creates a container with NetworkMode bridge (only its own network remotegpu-env-guard-net)',
    );
  });

  it.each<[string, Partial<HostConfig> & Record<string, unknown>, string]>([
    ['privileged', { Privileged: true }, 'privileged'],
    ['Docker’s default capabilities (no CapDrop)', { CapDrop: undefined }, 'CapDrop must be ALL'],
    ['Docker’s default capabilities (empty CapDrop)', { CapDrop: [] }, 'CapDrop must be ALL'],
    ['a CapDrop without ALL', { CapDrop: ['NET_RAW', 'MKNOD'] }, 'CapDrop must be ALL'],
    ['SYS_ADMIN', { CapAdd: [...Object.keys(ADDED_CAPABILITIES), 'SYS_ADMIN'] }, 'capability SYS_ADMIN'],
    ['NET_RAW', { CapAdd: ['NET_RAW'] }, 'capability NET_RAW'],
    ['MKNOD', { CapAdd: ['MKNOD'] }, 'capability MKNOD'],
    ['ALL capabilities', { CapAdd: ['ALL'] }, 'capability ALL'],
    ['a capability spelled CAP_', { CapAdd: ['CAP_SYS_PTRACE'] }, 'capability CAP_SYS_PTRACE'],
    ['a capability in lower case', { CapAdd: ['sys_module'] }, 'capability sys_module'],
    ['the host network', { NetworkMode: 'host' }, 'NetworkMode host'],
    ['the default bridge', { NetworkMode: 'bridge' }, 'NetworkMode bridge'],
    ['Docker’s default network (none set)', { NetworkMode: undefined }, 'NetworkMode undefined'],
    ['another environment’s network', { NetworkMode: 'remotegpu-env-other-net' }, 'NetworkMode remotegpu-env-other-net'],
    ['another container’s network', { NetworkMode: 'container:abc' }, 'NetworkMode container:abc'],
    ['the host PID namespace', { PidMode: 'host' }, 'PidMode host'],
    ['the host IPC namespace', { IpcMode: 'host' }, 'IpcMode host'],
    ['another container’s IPC namespace', { IpcMode: 'container:abc' }, 'IpcMode container:abc'],
    ['another container’s PID namespace', { PidMode: 'container:abc' }, 'PidMode container:abc'],
    ['the host UTS namespace', { UTSMode: 'host' }, 'UTSMode host'],
    ['the host user namespace', { UsernsMode: 'host' }, 'UsernsMode host'],
    ['the host cgroup namespace', { CgroupnsMode: 'host' }, 'CgroupnsMode host'],
    ['seccomp unconfined', { SecurityOpt: ['no-new-privileges', 'seccomp=unconfined'] }, 'security option seccomp=unconfined'],
    ['apparmor unconfined', { SecurityOpt: ['apparmor=unconfined'] }, 'security option apparmor=unconfined'],
    ['SELinux labels off', { SecurityOpt: ['label=disable'] }, 'security option label=disable'],
    ['a host device', { Devices: [...allowed.devices, { PathOnHost: '/dev/sda', PathInContainer: '/dev/sda', CgroupPermissions: 'rwm' }] }, 'device /dev/sda'],
    ['device cgroup rules', { DeviceCgroupRules: ['a *:* rwm'] }, 'DeviceCgroupRules'],
    ['every GPU by request', { DeviceRequests: [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }] }, 'device requests'],
    ['Binds', { Binds: ['/:/host'] }, 'Binds'],
    ['VolumesFrom', { VolumesFrom: ['other'] }, 'VolumesFrom'],
    ['sysctls', { Sysctls: { 'kernel.core_pattern': '|/x' } }, 'Sysctls'],
    ['a cgroup parent', { CgroupParent: '/' }, 'CgroupParent'],
    ['another runtime', { Runtime: 'runc-unconfined' }, 'Runtime'],
    ['a bind of /', { Mounts: [...mounts, bind('/', '/host')] }, 'bind mount of /: only its volume'],
    ['a bind of the Docker socket', { Mounts: [...mounts, bind('/var/run/docker.sock')] }, 'bind mount of /var/run/docker.sock'],
    ['a bind of the DOCKER_HOST socket', { Mounts: [...mounts, bind('/run/alt/docker.sock')] }, 'bind mount of /run/alt/docker.sock'],
    ['a bind of the data directory', { Mounts: [...mounts, bind('/var/lib/remotegpu/')] }, 'bind mount of /var/lib/remotegpu/'],
    ['a bind of /etc through ..', { Mounts: [...mounts, bind('/srv/../etc')] }, 'bind mount of /srv/../etc'],
    ['a bind of a dataset’s raw path instead of its view', { Mounts: [mounts[0]!, mounts[1]!, bind('/srv/datasets/imagenet', '/data/imagenet')] }, 'bind mount of /srv/datasets/imagenet'],
    ['a bind of another environment’s view', { Mounts: [...mounts, bind('/run/remotegpu/default/env-other/datasets/ds-1-ro')] }, 'env-other/datasets/ds-1-ro'],
    ['a bind of another environment’s volume', { Mounts: [...mounts, bind('/run/remotegpu/default/env-other/volume/data')] }, 'env-other/volume/data'],
    ['a bind of the volume’s root (not its data directory)', { Mounts: [bind('/run/remotegpu/default/env-guard/volume', '/root/workspace'), mounts[1]!] }, 'bind mount of /run/remotegpu/default/env-guard/volume:'],
    ['a bind of the run directory', { Mounts: [...mounts, bind('/run/remotegpu/default')] }, 'bind mount of /run/remotegpu/default:'],
    ['a bind that leaves a view through ..', { Mounts: [...mounts, bind(`${VIEW}/../../../..`)] }, `bind mount of ${VIEW}/../../../..`],
    ['a bind of a view with a trailing slash', { Mounts: [...mounts, bind(`${VIEW}/`)] }, `bind mount of ${VIEW}/:`],
    ['a Docker volume when the environment uses a loop volume', { Mounts: [{ Type: 'volume', Source: 'remotegpu-env-guard-data', Target: '/root/workspace' }, mounts[1]!] }, 'volume remotegpu-env-guard-data'],
    ['the keys directory mounted writable', { Mounts: [mounts[0]!, { ...mounts[1]!, ReadOnly: false }] }, 'keys directory mounted other than read-only'],
    ['the keys directory mounted elsewhere', { Mounts: [mounts[0]!, { ...mounts[1]!, Target: '/etc/passwd' }] }, 'keys directory'],
    ['shared bind propagation', { Mounts: [mounts[0]!, mounts[1]!, { ...mounts[2]!, BindOptions: { Propagation: 'rshared' } }] }, 'bind options'],
    ['a view mounted over /proc in the container', { Mounts: [mounts[0]!, mounts[1]!, { ...mounts[2]!, Target: '/proc' }] }, 'mount at /proc'],
    ['the volume mounted under /sys in the container', { Mounts: [{ ...mounts[0]!, Target: '/sys/kernel' }, mounts[1]!] }, 'mount at /sys/kernel'],
    ['another volume', { Mounts: [...mounts, { Type: 'volume', Source: 'someone-elses', Target: '/x' }] }, 'volume someone-elses'],
    [
      'a volume that binds a host path',
      { Mounts: [{ ...legacyMounts[0]!, VolumeOptions: { NoCopy: false, Labels: {}, DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/' } } } }] },
      'without options',
    ],
    ['a tmpfs mount', { Mounts: [...mounts, { Type: 'tmpfs', Source: '', Target: '/x' }] }, 'tmpfs mount'],
  ])('refuses %s with permission_denied', (_what, change, named) => {
    const attempt = () => assertConfined(withHostConfig(change), allowed);
    expect(attempt).toThrow(expect.objectContaining({ name: 'RuntimeError', code: 'permission_denied' }));
    expect(attempt).toThrow(named);
  });

  it('refuses a volume with options even when it is the legacy environment’s own', () => {
    const change = { Mounts: [{ ...legacyMounts[0]!, VolumeOptions: { NoCopy: true, Labels: {}, DriverConfig: { Name: 'local', Options: {} } } }, legacyMounts[1]!] };
    const options = { ...legacyBuilt, HostConfig: { ...legacyBuilt.HostConfig, ...change } };
    expect(() => assertConfined(options, legacyAllowed)).toThrow('without options');
  });
});

describe('buildCreateOptions runs the guard', () => {
  it('never hands Docker a dataset’s host path, even one the agent never mounts when validateSpec was skipped', () => {
    // The host path only reaches the agent's view (host-mounts.ts), which mounts what the policy checked.
    for (const hostPath of ['/', '/etc/', '/var/run/docker.sock', '/run/alt/docker.sock', '/var/lib/remotegpu/envs']) {
      const bad = spec({ mounts: [{ datasetId: 'ds-1', hostPath, containerPath: '/data/x', readonly: false }] });
      const sources = (buildCreateOptions(bad, ctx).HostConfig?.Mounts ?? []).map((m) => m.Source);
      expect(sources).toEqual([VOLUME_DATA, '/var/lib/remotegpu/envs/env-guard/ssh', '/run/remotegpu/default/env-guard/datasets/ds-1-rw']);
    }
  });

  it('lets its own options through for every GPU mode and both kinds of volume', () => {
    for (const gpuMode of ['nvidia', 'cdi', 'devices'] as const) {
      for (const legacyVolume of [false, true]) {
        expect(() => buildCreateOptions(spec(), { ...ctx, gpuMode, legacyVolume })).not.toThrow();
      }
    }
  });
});

// Docker applies its default masked and read-only /proc paths only when these fields are absent; an
// empty list (`[]`) leaves /proc/sys writable to the container's root (checked on Docker 20.10), and
// a writable kernel.core_pattern is a host escape even with every capability dropped.
describe('assertConfined: masked and read-only /proc paths', () => {
  it.each<[string, Record<string, unknown>]>([
    ['no masked paths', { MaskedPaths: [] }],
    ['no read-only paths', { ReadonlyPaths: [] }],
  ])('refuses %s with permission_denied', (_what, change) => {
    expect(() => assertConfined(withHostConfig(change), allowed)).toThrow(expect.objectContaining({ code: 'permission_denied' }));
  });
});

// Docker 20.10 (API 1.41) attaches a container to the networks named in the top-level
// NetworkingConfig.EndpointsConfig besides HostConfig.NetworkMode (checked: own network plus
// EndpointsConfig {bridge: {}} started on 172.17.0.0/16); buildCreateOptions never sets it.
describe('assertConfined: endpoints outside HostConfig', () => {
  it.each([['the default bridge', 'bridge'], ['another environment’s network', 'remotegpu-env-other-net']])('refuses an endpoint on %s', (_what, network) => {
    const options = { ...built, NetworkingConfig: { EndpointsConfig: { [network]: {} } } } as ContainerCreateOptions;
    expect(() => assertConfined(options, allowed)).toThrow(expect.objectContaining({ code: 'permission_denied' }));
  });
});
