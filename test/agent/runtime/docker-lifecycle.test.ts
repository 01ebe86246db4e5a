import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { ADDED_CAPABILITIES } from '../../../agent/runtime/docker-spec.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';
import {
  BUSYBOX_IMAGE,
  DOCKER_SKIP_MESSAGE,
  canMknod,
  createFakeNvidiaNodes,
  dockerAvailable,
  dockerExec,
  ensureBusyboxImage,
  fakeGpuIndexes,
  fakeGpuUuid,
  freePort,
  removeQuietly,
  testDocker,
  uniqueId,
  releaseRunDir,
  testRunDir,
  testNamespace,
} from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
const CAN_RUN = HAVE_DOCKER && canMknod();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);
else if (!CAN_RUN) console.warn('Runtime lifecycle tests skipped: creating fake GPU device nodes needs root.');

/** This file's own label namespace (never `npm start`'s containers, nor another file's). */
const NAMESPACE = testNamespace('rt-lifecycle');

const MiB = 1024 * 1024;

describe.skipIf(!CAN_RUN)('DockerRuntime lifecycle (real Docker, devices mode with fake GPU nodes)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let deviceDir: string;
  let runtime: DockerRuntime;
  let spec: EnvSpec;
  const name = () => `remotegpu-${spec.envId}`;
  const unlabelled = uniqueId('rgtest-unlabelled');
  const altTag = uniqueId('alt');
  const sh = (script: string) => dockerExec(docker, name(), ['sh', '-c', script]);

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-state-'));
    deviceDir = await createFakeNvidiaNodes(8);
    runtime = new DockerRuntime({
      runDir,
      managedBy: NAMESPACE,
      docker,
      stateDir,
      gpuMode: 'devices',
      gpuIndexes: fakeGpuIndexes(8),
      deviceDir,
      publishAddress: '127.0.0.1',
    });
    spec = envSpec({
      cpuCores: 1.5,
      memoryBytes: 128 * MiB,
      gpuUuids: [fakeGpuUuid(0)],
      env: { SECRET_NOTE: 'first-secret', KEEP: 'kept' },
      labels: { team: 'vision' },
      jupyterToken: 'jt-first',
      ports: [{ name: 'ssh', containerPort: 22, hostPort: await freePort() }],
    });
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    if (!runtime) return;
    await runtime.remove(spec.envId).catch(() => undefined);
    await removeQuietly(docker, { containers: [unlabelled] });
    // Only untags: the image itself stays under its first tag.
    await docker.getImage(`remotegpu/busybox-test:${altTag}`).remove().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
    await rm(deviceDir, { recursive: true, force: true });
  });

  it('creates and starts the container with its limits and without privileges', async () => {
    const { action, status } = await runtime.apply(spec);
    expect(action).toBe('created');
    expect(status).toMatchObject({ envId: spec.envId, state: 'running', gpuUuids: [fakeGpuUuid(0)] });

    const info = await docker.getContainer(name()).inspect();
    expect(info.Id).toBe(status.containerId);
    expect(info.HostConfig).toMatchObject({
      NanoCpus: 1_500_000_000,
      Memory: 128 * MiB,
      MemorySwap: 128 * MiB,
      PidsLimit: 4096,
      ShmSize: 64 * MiB,
      Privileged: false,
      RestartPolicy: { Name: 'unless-stopped' },
    });
    // Every capability dropped but the documented ones (docker-spec.ts ADDED_CAPABILITIES), on its own network.
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect([...(info.HostConfig.CapAdd ?? [])].sort()).toEqual(Object.keys(ADDED_CAPABILITIES).sort());
    expect(info.HostConfig.NetworkMode).toBe(`remotegpu-${spec.envId}-net`);
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([`remotegpu-${spec.envId}-net`]);
    expect(info.NetworkSettings.Ports['22/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: String(spec.ports[0]!.hostPort) }]);
    expect(info.Config.Labels).toMatchObject({
      'remotegpu.managed': NAMESPACE,
      'remotegpu.env-id': spec.envId,
      'remotegpu.spec-hash': status.specHash,
      team: 'vision',
    });

    const keysFile = join(stateDir, 'envs', spec.envId, 'ssh', 'authorized_keys');
    expect((await stat(keysFile)).mode & 0o777).toBe(0o600);
    // The keys directory is mounted read-only; /root/.ssh/authorized_keys links into it.
    expect((await sh('readlink /root/.ssh/authorized_keys')).stdout.trim()).toBe('/etc/remotegpu/ssh/authorized_keys');
    expect((await sh('cat /root/.ssh/authorized_keys')).stdout).toBe(`${spec.sshAuthorizedKeys[0]}\n`);
    expect((await sh('echo x >> /root/.ssh/authorized_keys')).exitCode).not.toBe(0);
    expect((await sh('echo $JUPYTER_TOKEN $NVIDIA_VISIBLE_DEVICES')).stdout.trim()).toBe(`jt-first ${fakeGpuUuid(0)}`);
  });

  it('does nothing when the same spec is applied again, also from a new agent', async () => {
    const before = await docker.getContainer(name()).inspect();
    const again = await runtime.apply(spec);
    expect(again.action).toBe('none');
    expect(again.status.containerId).toBe(before.Id);

    const restartedAgent = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'devices', gpuIndexes: fakeGpuIndexes(8), deviceDir, publishAddress: '127.0.0.1' });
    expect((await restartedAgent.apply(spec)).action).toBe('none');
    const after = await docker.getContainer(name()).inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
  });

  it('replaces authorized_keys atomically without recreating when only the keys change', async () => {
    const before = await docker.getContainer(name()).inspect();
    // The container sees a new file (renamed over the old one), not the old one truncated and rewritten.
    const inode = async () => (await sh('stat -L -c %i /root/.ssh/authorized_keys')).stdout.trim();
    const oldInode = await inode();
    spec = { ...spec, sshAuthorizedKeys: ['ssh-ed25519 AAAAnewkey one@x', 'ssh-rsa AAAAother two@y'] };
    expect((await runtime.apply(spec)).action).toBe('none');
    expect(await inode()).not.toBe(oldInode);
    expect((await sh('cat /root/.ssh/authorized_keys')).stdout).toBe('ssh-ed25519 AAAAnewkey one@x\nssh-rsa AAAAother two@y\n');
    expect((await docker.getContainer(name()).inspect()).State.StartedAt).toBe(before.State.StartedAt);
  });

  it('recreates on a new GPU set and keeps files in /root and in the data volume', async () => {
    expect((await sh('echo layer > /root/hello.txt && echo volume > /root/workspace/data.txt')).exitCode).toBe(0);
    const oldId = (await docker.getContainer(name()).inspect()).Id;

    spec = { ...spec, gpuUuids: [fakeGpuUuid(3), fakeGpuUuid(1)], env: { KEEP: 'kept' } };
    const { action, status } = await runtime.apply(spec);
    expect(action).toBe('recreated');
    expect(status.state).toBe('running');
    expect(status.containerId).not.toBe(oldId);
    expect(status.gpuUuids).toEqual([fakeGpuUuid(1), fakeGpuUuid(3)]);

    expect((await sh('cat /root/hello.txt /root/workspace/data.txt')).stdout).toBe('layer\nvolume\n');
    expect((await sh('ls /dev/nvidia*')).stdout.split('\n').filter(Boolean)).toEqual(['/dev/nvidia1', '/dev/nvidia3', '/dev/nvidiactl']);
    // The removed variable does not come back with its old value from the committed image.
    const env = (await sh('env')).stdout;
    expect(env).not.toContain('first-secret');
    expect(env).toContain('KEEP=kept');

    const info = await docker.getContainer(name()).inspect();
    expect(info.Config.Image).toBe(`remotegpu-env/${spec.envId}:1`);
    expect(info.Config.Labels['remotegpu.image']).toBe(BUSYBOX_IMAGE);
    const mine = await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${spec.envId}`] } });
    expect(mine.map((c) => c.Id)).toEqual([info.Id]);
  });

  it('a second recreate keeps the files and only the newest committed image', async () => {
    spec = { ...spec, gpuUuids: [fakeGpuUuid(2)] };
    expect((await runtime.apply(spec)).action).toBe('recreated');
    expect((await sh('cat /root/hello.txt /root/workspace/data.txt')).stdout).toBe('layer\nvolume\n');
    const images = await docker.listImages({ filters: { reference: [`remotegpu-env/${spec.envId}`] } });
    expect(images.flatMap((i) => i.RepoTags ?? [])).toEqual([`remotegpu-env/${spec.envId}:2`]);
  });

  it('a new catalog image starts from that image: the data volume stays, the old layer and commits go', async () => {
    await docker.getImage(BUSYBOX_IMAGE).tag({ repo: 'remotegpu/busybox-test', tag: altTag });
    spec = { ...spec, image: `remotegpu/busybox-test:${altTag}` };
    expect((await runtime.apply(spec)).action).toBe('recreated');
    const info = await docker.getContainer(name()).inspect();
    expect(info.Config.Image).toBe(spec.image);
    expect((await sh('cat /root/workspace/data.txt')).stdout).toBe('volume\n');
    expect((await sh('test -e /root/hello.txt')).exitCode).not.toBe(0);
    expect(await docker.listImages({ filters: { reference: [`remotegpu-env/${spec.envId}`] } })).toEqual([]);
  });

  it('list() reports managed environments and ignores other containers', async () => {
    const other = await docker.createContainer({ name: unlabelled, Image: BUSYBOX_IMAGE });
    await other.start();
    const listed = await runtime.list();
    const mine = listed.find((s) => s.envId === spec.envId);
    expect(mine?.state).toBe('running');
    const otherId = (await other.inspect()).Id;
    expect(listed.map((s) => s.containerId)).not.toContain(otherId);
    expect(await runtime.remove(uniqueId('rt-absent'))).toBe(false);
    expect((await other.inspect()).State.Running).toBe(true);
  });

  it('stops, stays stopped on apply with desiredState stopped, and starts again', async () => {
    const stopped = await runtime.stop(spec.envId, 5);
    expect(stopped.state).toBe('exited');
    expect(stopped.finishedAtMs).toBeGreaterThan(0);
    expect((await runtime.stop(spec.envId, 5)).state).toBe('exited');

    spec = { ...spec, desiredState: 'stopped' };
    expect((await runtime.apply(spec)).action).toBe('none');
    spec = { ...spec, desiredState: 'running' };
    const started = await runtime.apply(spec);
    expect(started.action).toBe('started');
    expect(started.status.state).toBe('running');
    spec = { ...spec, desiredState: 'stopped' };
    const again = await runtime.apply(spec);
    expect(again.action).toBe('stopped');
    expect(again.status.state).toBe('exited');
  });

  it('starting with a larger storageBytes grows the volume before the container starts; the data stays; it never shrinks', async () => {
    const dfKiB = async () => Number((await sh('df -k /root/workspace | tail -1')).stdout.trim().split(/\s+/)[1]);
    spec = { ...spec, desiredState: 'running' };
    await runtime.apply(spec);
    await sh('echo kept > /root/workspace/grow-check');
    const before = await dfKiB();
    // about storageBytes (1 GiB) less ext4's own overhead
    expect(before * 1024).toBeGreaterThan(0.9 * spec.storageBytes);
    expect(before * 1024).toBeLessThanOrEqual(spec.storageBytes);
    spec = { ...spec, desiredState: 'stopped' };
    await runtime.apply(spec);
    spec = { ...spec, desiredState: 'running', storageBytes: 2 * spec.storageBytes };
    expect((await runtime.apply(spec)).action).toBe('started');
    const after = await dfKiB();
    expect(after * 1024).toBeGreaterThan(0.9 * spec.storageBytes);
    expect(after).toBeGreaterThan(before * 1.9);
    expect((await sh('cat /root/workspace/grow-check')).stdout).toBe('kept\n');
    expect((await stat(join(stateDir, 'volumes', `${spec.envId}.ext4`))).size).toBe(spec.storageBytes);
    // A smaller size (the controller refuses one) shrinks nothing.
    expect((await runtime.apply({ ...spec, storageBytes: 1024 * MiB })).action).toBe('none');
    expect(await dfKiB()).toBe(after);
  });

  it('remove deletes the container, the volume, the committed images and the state files', async () => {
    expect(await runtime.remove(spec.envId)).toBe(true);
    await expect(stat(join(stateDir, 'volumes', `${spec.envId}.ext4`))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${spec.envId}`] } })).length).toBe(0);
    await expect(docker.getVolume(`remotegpu-${spec.envId}-data`).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await docker.listImages({ filters: { reference: [`remotegpu-env/${spec.envId}`] } })).length).toBe(0);
    await expect(stat(join(stateDir, 'envs', spec.envId))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await runtime.inspect(spec.envId)).state).toBe('absent');
    expect(await runtime.remove(spec.envId)).toBe(false);
  });
});
