import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADDED_CAPABILITIES, buildCreateOptions, specHash, validateSpec, withImage, withRealMountPaths, type CreateContext } from '../../../agent/runtime/docker-spec.js';
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

const RUN_DIR = '/run/remotegpu/default';
const ctx: CreateContext = { stateDir: '/var/lib/remotegpu', gpuMode: 'nvidia', gpuIndexes: HOST, runDir: RUN_DIR };

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
  });

  it('drops every capability and adds back only ADDED_CAPABILITIES', () => {
    const o = buildCreateOptions(spec(), ctx);
    expect(o.HostConfig?.CapDrop).toEqual(['ALL']);
    expect(o.HostConfig?.CapAdd).toEqual(Object.keys(ADDED_CAPABILITIES));
  });

  it('adds back exactly the capabilities an SSH box needs (a change to this list must be deliberate)', () => {
    expect(Object.keys(ADDED_CAPABILITIES)).toEqual([
      'CHOWN',
      'DAC_OVERRIDE',
      'FOWNER',
      'FSETID',
      'SETUID',
      'SETGID',
      'KILL',
      'NET_BIND_SERVICE',
      'SYS_CHROOT',
      'AUDIT_WRITE',
    ]);
    for (const why of Object.values(ADDED_CAPABILITIES)) expect(why.length).toBeGreaterThan(10);
    expect(Object.isFrozen(ADDED_CAPABILITIES)).toBe(true);
  });

  it('joins the environment’s own network, with private IPC and cgroup namespaces', () => {
    const hc = buildCreateOptions(spec(), ctx).HostConfig as Record<string, unknown>;
    expect(hc).toMatchObject({ NetworkMode: 'remotegpu-env-abc123-net', IpcMode: 'private', CgroupnsMode: 'private' });
    for (const key of ['PidMode', 'UTSMode', 'UsernsMode', 'Binds', 'VolumesFrom']) expect(hc[key]).toBeUndefined();
    expect(buildCreateOptions(spec({ envId: 'other' }), ctx).HostConfig?.NetworkMode).toBe('remotegpu-other-net');
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

  it('binds the loop volume’s data directory, the keys directory read-only and the datasets’ views', () => {
    expect(buildCreateOptions(spec(), ctx).HostConfig?.Mounts).toEqual([
      // The agent's own mounts are bound without ReadOnly: Docker's read-only remount would drop their nosuid,nodev.
      { Type: 'bind', Source: `${RUN_DIR}/env-abc123/volume/data`, Target: '/root/workspace' },
      {
        Type: 'bind',
        Source: '/var/lib/remotegpu/envs/env-abc123/ssh',
        Target: '/etc/remotegpu/ssh',
        ReadOnly: true,
      },
      { Type: 'bind', Source: `${RUN_DIR}/env-abc123/datasets/ds-1-ro`, Target: '/data/imagenet' },
    ]);
  });

  it('keeps the Docker volume of an environment that predates loop volumes', () => {
    const mounts = buildCreateOptions(spec(), { ...ctx, legacyVolume: true }).HostConfig?.Mounts ?? [];
    expect(mounts[0]).toEqual({ Type: 'volume', Source: 'remotegpu-env-abc123-data', Target: '/root/workspace' });
    expect(mounts.slice(1).map((m) => m.Type)).toEqual(['bind', 'bind']);
    expect(mounts.filter((m) => m.Type === 'volume')).toHaveLength(1);
  });

  it('binds each dataset from its view, named -ro or -rw, sorted by container path, never its host path', () => {
    const mounts = buildCreateOptions(
      spec({
        mounts: [
          { datasetId: 'ds-2', hostPath: '/srv/datasets/coco', containerPath: '/data/coco', readonly: false },
          { datasetId: 'ds-1', hostPath: '/srv/datasets/imagenet', containerPath: '/data/imagenet', readonly: true },
          { datasetId: 'ds-1', hostPath: '/srv/datasets/imagenet', containerPath: '/data/a-imagenet-rw', readonly: false },
        ],
      }),
      ctx,
    ).HostConfig?.Mounts ?? [];
    expect(mounts.slice(2)).toEqual([
      { Type: 'bind', Source: `${RUN_DIR}/env-abc123/datasets/ds-1-rw`, Target: '/data/a-imagenet-rw' },
      { Type: 'bind', Source: `${RUN_DIR}/env-abc123/datasets/ds-2-rw`, Target: '/data/coco' },
      { Type: 'bind', Source: `${RUN_DIR}/env-abc123/datasets/ds-1-ro`, Target: '/data/imagenet' },
    ]);
    for (const m of mounts) expect(m.Source).not.toMatch(/^\/srv\//);
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

  it('hands the views the real path it checked, not a symlink that could be repointed later', () => {
    symlinkSync(join(roots, 'imagenet'), join(roots, 'current'));
    const viaLink = [{ ...inRoot[0]!, hostPath: join(roots, 'current') }];
    validateSpec(spec({ mounts: viaLink }), policy);
    const real = withRealMountPaths(spec({ mounts: viaLink }));
    expect(real.mounts).toEqual([{ ...inRoot[0]!, hostPath: realpathSync(join(roots, 'imagenet')) }]);
    // A path that cannot be resolved stays as given (validateSpec refused it already).
    expect(withRealMountPaths(spec()).mounts[0]?.hostPath).toBe('/srv/datasets/imagenet');
  });

  it('refuses a dataset inside the agent’s run directory', () => {
    const runDir = join(roots, 'run');
    mkdirSync(join(runDir, 'env-x', 'volume', 'data'), { recursive: true });
    const mounts = [{ ...inRoot[0]!, hostPath: join(runDir, 'env-x', 'volume', 'data') }];
    expect(() => validateSpec(spec({ mounts }), { ...policy, runDir })).toThrow(
      expect.objectContaining({ code: 'permission_denied', message: expect.stringContaining(`inside its own run directory ${runDir}`) }),
    );
    // Without the run directory in the policy, the same path is an ordinary directory of the root.
    expect(() => validateSpec(spec({ mounts }), policy)).not.toThrow();
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
    ['a negative storage size', { storageBytes: -1 }],
    ['a fractional storage size', { storageBytes: 1.5 }],
    ['a storage size past 2^53', { storageBytes: 2 ** 60 }],
  ])('rejects %s with invalid_spec', (_what, over) => {
    expect(() => validateSpec(spec({ mounts: inRoot, ...over }), policy)).toThrow(expect.objectContaining({ name: 'RuntimeError', code: 'invalid_spec' }));
  });

  // The dataset id names its view's mount point under the run directory.
  it.each(['../x', 'a/b', '..', '.hidden', '', '-rf', 'a b', 'x'.repeat(65), 'ds\n1'])('rejects the dataset id %j with invalid_spec', (datasetId) => {
    expect(() => validateSpec(spec({ mounts: [{ ...inRoot[0]!, datasetId }] }), policy)).toThrow(
      expect.objectContaining({ code: 'invalid_spec', message: expect.stringContaining(`dataset id ${JSON.stringify(datasetId)} is invalid`) }),
    );
  });

  it.each(['ds-1', 'DS_2', 'a.b', '0', 'x'.repeat(64)])('accepts the dataset id %j', (datasetId) => {
    expect(() => validateSpec(spec({ mounts: [{ ...inRoot[0]!, datasetId }] }), policy)).not.toThrow();
  });

  it('accepts a storage size of 0 and of several TiB', () => {
    expect(() => validateSpec(spec({ mounts: inRoot, storageBytes: 0 }), policy)).not.toThrow();
    expect(() => validateSpec(spec({ mounts: inRoot, storageBytes: 16 * 1024 * GiB }), policy)).not.toThrow();
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

  it('is version 2: every container created before capabilities, networks and views (v1) is recreated', () => {
    const s = spec();
    const canonical = (v: number) => ({
      v,
      image: s.image,
      cpuCores: s.cpuCores,
      memoryBytes: s.memoryBytes,
      gpuUuids: [...s.gpuUuids].sort(),
      dataPath: s.dataPath,
      ports: [...s.ports].sort((a, b) => a.containerPort - b.containerPort).map((p) => [p.name, p.containerPort, p.hostPort]),
      mounts: s.mounts.map((m) => [m.datasetId, m.hostPath, m.containerPath, m.readonly]),
      env: Object.entries(s.env),
      labels: Object.entries(s.labels),
      jupyterToken: s.jupyterToken,
      shmBytes: s.shmBytes,
      pidsLimit: s.pidsLimit,
    });
    const hash = (v: number) => createHash('sha256').update(JSON.stringify(canonical(v))).digest('hex').slice(0, 16);
    expect(specHash(s)).toBe(hash(2));
    expect(specHash(s)).not.toBe(hash(1));
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
