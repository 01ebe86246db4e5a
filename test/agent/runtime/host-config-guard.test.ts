import type { ContainerCreateOptions, HostConfig } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { buildCreateOptions, type CreateContext } from '../../../agent/runtime/docker-spec.js';
import { assertConfined, type AllowedHostAccess } from '../../../agent/runtime/host-config-guard.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';

// The final guard on the create options (agent/runtime/host-config-guard.ts): whatever built them,
// no container is created privileged, with host namespaces or with host paths the agent never mounts.
// The spec cannot express any of these; the guard is there for the day code could.

const GPU = 'GPU-aaaaaaaa-0000-0000-0000-000000000001';
const ctx: CreateContext = {
  stateDir: '/var/lib/remotegpu',
  gpuMode: 'devices',
  gpuIndexes: new Map([[GPU, 1]]),
  deviceDir: '/dev',
  controlNodes: ['nvidiactl'],
  dockerSocket: '/run/alt/docker.sock',
};

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
  volume: 'remotegpu-env-guard-data',
  authorizedKeys: { source: '/var/lib/remotegpu/envs/env-guard/authorized_keys', target: '/root/.ssh/authorized_keys' },
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

describe('assertConfined', () => {
  it('lets through what buildCreateOptions builds (volume, authorized_keys, datasets, GPU nodes)', () => {
    expect(built.HostConfig?.Devices).toHaveLength(2);
    expect(() => assertConfined(built, allowed)).not.toThrow();
  });

  it.each<[string, Partial<HostConfig> & Record<string, unknown>, string]>([
    ['privileged', { Privileged: true }, 'privileged'],
    ['added capabilities', { CapAdd: ['SYS_ADMIN'] }, 'added capabilities (SYS_ADMIN)'],
    ['the host network', { NetworkMode: 'host' }, 'NetworkMode host'],
    ['another container’s network', { NetworkMode: 'container:abc' }, 'NetworkMode container:abc'],
    ['the host PID namespace', { PidMode: 'host' }, 'PidMode host'],
    ['the host IPC namespace', { IpcMode: 'host' }, 'IpcMode host'],
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
    ['a bind of /', { Mounts: [...mounts, bind('/', '/host')] }, 'bind mount of /: the agent never mounts /'],
    ['a bind of the Docker socket', { Mounts: [...mounts, bind('/var/run/docker.sock')] }, 'the Docker socket /var/run/docker.sock'],
    ['a bind of the DOCKER_HOST socket', { Mounts: [...mounts, bind('/run/alt/docker.sock')] }, 'the Docker socket /run/alt/docker.sock'],
    ['a bind of the data directory', { Mounts: [...mounts, bind('/var/lib/remotegpu/')] }, 'its own data directory /var/lib/remotegpu'],
    ['a bind of /etc through ..', { Mounts: [...mounts, bind('/srv/../etc')] }, 'the agent never mounts /etc'],
    ['authorized_keys mounted writable', { Mounts: [mounts[0]!, { ...mounts[1]!, ReadOnly: false }] }, 'authorized_keys file mounted other than read-only'],
    ['authorized_keys mounted elsewhere', { Mounts: [mounts[0]!, { ...mounts[1]!, Target: '/etc/passwd' }] }, 'authorized_keys file'],
    ['shared bind propagation', { Mounts: [...mounts, { ...bind('/srv/datasets/coco'), BindOptions: { Propagation: 'rshared' } }] }, 'bind options'],
    ['a bind over /proc in the container', { Mounts: [...mounts, bind('/srv/datasets/coco', '/proc')] }, 'mount at /proc'],
    ['another volume', { Mounts: [...mounts, { Type: 'volume', Source: 'someone-elses', Target: '/x' }] }, 'volume someone-elses'],
    [
      'a volume that binds a host path',
      { Mounts: [{ ...mounts[0]!, VolumeOptions: { NoCopy: false, Labels: {}, DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/' } } } }] },
      'without options',
    ],
    ['a tmpfs mount', { Mounts: [...mounts, { Type: 'tmpfs', Source: '', Target: '/x' }] }, 'tmpfs mount'],
  ])('refuses %s with permission_denied', (_what, change, named) => {
    const attempt = () => assertConfined(withHostConfig(change), allowed);
    expect(attempt).toThrow(expect.objectContaining({ name: 'RuntimeError', code: 'permission_denied' }));
    expect(attempt).toThrow(named);
  });
});

describe('buildCreateOptions runs the guard', () => {
  it('refuses a spec mounting a path the agent never mounts even when validateSpec was skipped', () => {
    for (const hostPath of ['/', '/etc/', '/var/run/docker.sock', '/run/alt/docker.sock', '/var/lib/remotegpu/envs']) {
      const bad = spec({ mounts: [{ datasetId: 'ds-1', hostPath, containerPath: '/data/x', readonly: false }] });
      // The guard sees the real path Docker would mount (e.g. /etc/ as /etc, /var/run/docker.sock as /run/docker.sock).
      expect(() => buildCreateOptions(bad, ctx)).toThrow(expect.objectContaining({ code: 'permission_denied', message: expect.stringContaining('bind mount of /') }));
    }
  });
});
