import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCreateOptions, specHash, validateSpec, withImage, type CreateContext } from '../../../agent/runtime/docker-spec.js';
import type { MountPolicy } from '../../../agent/runtime/mount-policy.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';

const GiB = 1024 ** 3;
const uuid = (i: number) => `GPU-aaaaaaaa-0000-0000-0000-00000000000${i}`;
const HOST = new Map(Array.from({ length: 4 }, (_, i) => [uuid(i), i] as const));

function spec(over: Partial<EnvSpec> = {}): EnvSpec {
  return {
    envId: 'env-abc123',
    image: 'pytorch/pytorch:2.3.0-cuda12.1-cudnn8-devel',
    cpuCores: 4,
    memoryBytes: 16 * GiB,
    gpuUuids: [uuid(1)],
    storageBytes: 100 * GiB,
    dataPath: '/root/workspace',
    ports: [
      { name: 'ssh', containerPort: 22, hostPort: 20022 },
      { name: 'jupyter', containerPort: 8888, hostPort: 20888 },
    ],
    sshAuthorizedKeys: ['ssh-ed25519 AAAAC3Nza user@laptop'],
    mounts: [{ datasetId: 'ds-1', hostPath: '/srv/datasets/imagenet', containerPath: '/data/imagenet', readonly: true }],
    env: { WANDB_API_KEY: 'secret-value' },
    labels: { team: 'vision' },
    jupyterToken: 'jt-secret',
    desiredState: 'running',
    shmBytes: 0,
    pidsLimit: 0,
    ...over,
  };
}

const ctx: CreateContext = { stateDir: '/var/lib/remotegpu', gpuMode: 'nvidia', gpuIndexes: HOST };

describe('buildCreateOptions', () => {
  it('sets name, limits, no swap, default shm and pids, and never privileges', () => {
    const o = buildCreateOptions(spec(), ctx);
    expect(o.name).toBe('remotegpu-env-abc123');
    expect(o.Image).toBe(spec().image);
    expect(o.HostConfig).toMatchObject({
      NanoCpus: 4e9,
      Memory: 16 * GiB,
      MemorySwap: 16 * GiB,
      ShmSize: 8 * GiB,
      PidsLimit: 4096,
      Privileged: false,
      SecurityOpt: ['no-new-privileges'],
      RestartPolicy: { Name: 'unless-stopped' },
    });
    expect(o.HostConfig?.CapAdd).toBeUndefined();
  });

  it('honours explicit shm, pids and fractional CPUs; omits limits that are 0', () => {
    const o = buildCreateOptions(spec({ cpuCores: 1.5, shmBytes: GiB, pidsLimit: 512 }), ctx);
    expect(o.HostConfig).toMatchObject({ NanoCpus: 1_500_000_000, ShmSize: GiB, PidsLimit: 512 });
    const unlimited = buildCreateOptions(spec({ cpuCores: 0, memoryBytes: 0 }), { ...ctx, defaultPidsLimit: 1000 });
    expect(unlimited.HostConfig?.NanoCpus).toBeUndefined();
    expect(unlimited.HostConfig?.Memory).toBeUndefined();
    expect(unlimited.HostConfig?.ShmSize).toBeUndefined();
    expect(unlimited.HostConfig?.PidsLimit).toBe(1000);
  });

  it('publishes each port on the publish address (0.0.0.0 by default)', () => {
    expect(buildCreateOptions(spec(), ctx).HostConfig?.PortBindings).toEqual({
      '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '20022' }],
      '8888/tcp': [{ HostIp: '0.0.0.0', HostPort: '20888' }],
    });
    const local = buildCreateOptions(spec(), { ...ctx, publishAddress: '127.0.0.1' });
    expect(local.HostConfig?.PortBindings['22/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: '20022' }]);
    expect(local.ExposedPorts).toEqual({ '22/tcp': {}, '8888/tcp': {} });
  });

  it('mounts the storage volume, authorized_keys read-only and datasets as asked', () => {
    expect(buildCreateOptions(spec(), ctx).HostConfig?.Mounts).toEqual([
      { Type: 'volume', Source: 'remotegpu-env-abc123-data', Target: '/root/workspace' },
      {
        Type: 'bind',
        Source: '/var/lib/remotegpu/envs/env-abc123/authorized_keys',
        Target: '/root/.ssh/authorized_keys',
        ReadOnly: true,
      },
      { Type: 'bind', Source: '/srv/datasets/imagenet', Target: '/data/imagenet', ReadOnly: true },
    ]);
  });

  it('passes env, JUPYTER_TOKEN and the agent-owned NVIDIA_VISIBLE_DEVICES', () => {
    const o = buildCreateOptions(spec({ env: { A: '1', NVIDIA_VISIBLE_DEVICES: 'all' } }), ctx);
    expect(o.Env).toEqual(['A=1', 'JUPYTER_TOKEN=jt-secret', `NVIDIA_VISIBLE_DEVICES=${uuid(1)}`]);
    const none = buildCreateOptions(spec({ gpuUuids: [], jupyterToken: '' }), ctx);
    expect(none.Env).toEqual(['NVIDIA_VISIBLE_DEVICES=void', 'WANDB_API_KEY=secret-value']);
    expect(none.HostConfig?.DeviceRequests).toBeUndefined();
    expect(none.HostConfig?.Devices).toBeUndefined();
  });

  it('labels the container with the managed labels and keeps user labels', () => {
    const o = buildCreateOptions(spec({ gpuUuids: [uuid(3), uuid(0)] }), ctx);
    expect(o.Labels).toEqual({
      team: 'vision',
      'remotegpu.managed': 'true',
      'remotegpu.env-id': 'env-abc123',
      'remotegpu.spec-hash': specHash(spec({ gpuUuids: [uuid(3), uuid(0)] })),
      'remotegpu.gpu-uuids': `${uuid(0)},${uuid(3)}`,
      'remotegpu.image': spec().image,
    });
  });

  it('creates from a committed image when one is named, keeping the catalog image label', () => {
    const o = withImage(buildCreateOptions(spec(), ctx), 'remotegpu-env/env-abc123:3');
    expect(o.Image).toBe('remotegpu-env/env-abc123:3');
    expect(o.Labels?.['remotegpu.image']).toBe(spec().image);
  });

  it('passes GPUs the way the mode says', () => {
    expect(buildCreateOptions(spec(), { ...ctx, gpuMode: 'cdi' }).HostConfig?.DeviceRequests).toEqual([
      { Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${uuid(1)}`] },
    ]);
    const dev = buildCreateOptions(spec(), { ...ctx, gpuMode: 'devices', deviceDir: '/dev', controlNodes: ['nvidiactl'] });
    expect(dev.HostConfig?.Devices).toEqual([
      { PathOnHost: '/dev/nvidia1', PathInContainer: '/dev/nvidia1', CgroupPermissions: 'rwm' },
      { PathOnHost: '/dev/nvidiactl', PathInContainer: '/dev/nvidiactl', CgroupPermissions: 'rwm' },
    ]);
    expect(dev.HostConfig?.DeviceRequests).toBeUndefined();
  });
});

// The runtime validates a spec once per apply (DockerRuntime.apply), before building its options.
describe('validateSpec', () => {
  const roots = mkdtempSync(join(tmpdir(), 'rgpu-spec-roots-'));
  mkdirSync(join(roots, 'imagenet'));
  const policy: MountPolicy = { datasetRoots: [roots], dataDir: '/var/lib/remotegpu' };
  const inRoot = [{ datasetId: 'ds-1', hostPath: join(roots, 'imagenet'), containerPath: '/data/imagenet', readonly: true }];
  afterAll(() => rmSync(roots, { recursive: true, force: true }));

  it('accepts a spec whose datasets lie in a dataset root', () => {
    expect(() => validateSpec(spec({ mounts: inRoot }), policy)).not.toThrow();
  });

  it('binds the real path it checked, not a symlink that could be repointed later', () => {
    symlinkSync(join(roots, 'imagenet'), join(roots, 'current'));
    const viaLink = [{ ...inRoot[0]!, hostPath: join(roots, 'current') }];
    validateSpec(spec({ mounts: viaLink }), policy);
    const mounts = buildCreateOptions(spec({ mounts: viaLink }), ctx).HostConfig?.Mounts ?? [];
    expect(mounts.find((m) => m.Target === '/data/imagenet')?.Source).toBe(realpathSync(join(roots, 'imagenet')));
  });

  it('refuses a dataset outside the dataset roots with permission_denied, naming it', () => {
    expect(() => validateSpec(spec({ mounts: [{ ...inRoot[0]!, hostPath: '/etc' }] }), policy)).toThrow(
      expect.objectContaining({ code: 'permission_denied', message: 'environment env-abc123: dataset ds-1: mount source /etc is refused: the agent never mounts /etc' }),
    );
    expect(() => validateSpec(spec(), policy)).toThrow(expect.objectContaining({ code: 'invalid_spec', message: expect.stringContaining('does not exist on this host') }));
  });

  it.each<[string, Partial<EnvSpec>]>([
    ['an env id Docker cannot use', { envId: 'Env_1' }],
    ['an empty image', { image: ' ' }],
    ['memory below Docker’s minimum', { memoryBytes: 1024 }],
    ['a relative data path', { dataPath: 'workspace' }],
    ['a port out of range', { ports: [{ name: 'ssh', containerPort: 22, hostPort: 70000 }] }],
    ['a host port used twice', { ports: [{ name: 'ssh', containerPort: 22, hostPort: 2000 }, { name: 'jupyter', containerPort: 8888, hostPort: 2000 }] }],
    ['a dataset mounted over the data path', { mounts: [{ datasetId: 'd', hostPath: '/x', containerPath: '/root/workspace', readonly: true }] }],
    ['a dataset mounted under /dev', { mounts: [{ datasetId: 'd', hostPath: '/x', containerPath: '/dev/shm', readonly: true }] }],
    ['a data path over /proc', { dataPath: '/proc' }],
    ['a data path of /', { dataPath: '/' }],
    ['a reserved label', { labels: { 'remotegpu.managed': 'false' } }],
    ['an env name with =', { env: { 'A=B': 'c' } }],
    ['a multi-line SSH key', { sshAuthorizedKeys: ['ssh-ed25519 AAA\ncommand="x" ssh-rsa BBB'] }],
  ])('rejects %s with invalid_spec', (_what, over) => {
    expect(() => validateSpec(spec({ mounts: inRoot, ...over }), policy)).toThrow(expect.objectContaining({ name: 'RuntimeError', code: 'invalid_spec' }));
  });
});

describe('specHash', () => {
  it('is stable and ignores desiredState, storage, SSH keys and the order of sets', () => {
    const base = specHash(spec());
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(specHash(spec())).toBe(base);
    expect(specHash(spec({ desiredState: 'stopped' }))).toBe(base);
    expect(specHash(spec({ storageBytes: 1 }))).toBe(base);
    expect(specHash(spec({ sshAuthorizedKeys: [] }))).toBe(base);
    const two = spec({ gpuUuids: [uuid(1), uuid(2)] });
    expect(specHash({ ...two, gpuUuids: [uuid(2), uuid(1)], ports: [...two.ports].reverse() })).toBe(specHash(two));
  });

  it.each<[string, Partial<EnvSpec>]>([
    ['image', { image: 'other:1' }],
    ['cpu', { cpuCores: 8 }],
    ['memory', { memoryBytes: 32 * GiB }],
    ['gpus', { gpuUuids: [uuid(2)] }],
    ['mounts', { mounts: [] }],
    ['ports', { ports: [{ name: 'ssh', containerPort: 22, hostPort: 20023 }] }],
    ['env', { env: { WANDB_API_KEY: 'other' } }],
    ['labels', { labels: {} }],
    ['jupyter token', { jupyterToken: 'new' }],
    ['shm', { shmBytes: GiB }],
    ['pids', { pidsLimit: 10 }],
  ])('changes when %s changes', (_what, over) => {
    expect(specHash(spec(over))).not.toBe(specHash(spec()));
  });
});
