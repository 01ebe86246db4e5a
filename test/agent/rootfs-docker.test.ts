import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootfsWatch } from '../../agent/rootfs-watch.js';
import { listEnvironments, type ManagedEngine } from '../../agent/runtime/docker-inspect.js';
import { DockerRuntime } from '../../agent/runtime/docker.js';
import { LABEL, containerName } from '../../agent/runtime/docker-names.js';
import type { EnvSpec, LifecycleEvent } from '../../agent/runtime/types.js';
import { environmentUsage, measureRootfs } from '../../agent/usage.js';
import {
  DOCKER_SKIP_MESSAGE,
  canMknod,
  createFakeNvidiaNodes,
  dockerAvailable,
  dockerExec,
  ensureBusyboxImage,
  fakeGpuIndexes,
  fakeGpuUuid,
  releaseRunDir,
  removeQuietly,
  testDocker,
  testRunDir,
  uniqueId,
} from '../helpers/docker.js';
import { envSpec } from './runtime/env-spec.js';

// The writable layer against a real Docker engine: `docker inspect --size` sees 20 MB written to a
// busybox container's /tmp, and the watch warns at 90% of a small limit, stops the container at
// the limit with its reason, gives it a grace period when it is started again still over it, and
// stops it at once when it grows during it. A recreate (a GPU change through DockerRuntime.apply)
// commits the layer into the environment's image: the measurement keeps counting it.

const MiB = 1024 ** 2;
const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn(DOCKER_SKIP_MESSAGE);

describe.skipIf(!hasDocker)('writable layer on Docker', () => {
  const docker = testDocker();
  const namespace = uniqueId('rootfs');
  const engine: ManagedEngine = { docker, managedBy: namespace };
  const envId = uniqueId('env');
  const name = containerName(envId);
  let stateDir: string;

  beforeAll(async () => {
    stateDir = mkdtempSync(path.join(tmpdir(), 'rgpu-rootfs-docker-'));
    const image = await ensureBusyboxImage(docker);
    const container = await docker.createContainer({ name, Image: image, Labels: { [LABEL.managed]: namespace, [LABEL.envId]: envId }, HostConfig: { NetworkMode: 'none' } });
    await container.start();
  });

  afterAll(async () => {
    await removeQuietly(docker, { containers: [name] });
    rmSync(stateDir, { recursive: true, force: true });
  });

  const write = async (file: string, mib: number) => {
    const r = await dockerExec(docker, name, ['dd', 'if=/dev/zero', `of=${file}`, 'bs=1048576', `count=${mib}`]);
    expect(r.exitCode, r.stderr).toBe(0);
  };
  const info = () => docker.getContainer(name).inspect();

  it('measures the writable layer growing by what is written outside the volumes', async () => {
    const { Id } = await info();
    const before = await measureRootfs(docker, Id, envId, '/run/remotegpu-test-none');
    expect(before.dataPath).toBe(''); // this container has no storage volume
    await write('/tmp/blob', 20);
    const times: number[] = [];
    let after = before;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      after = await measureRootfs(docker, Id, envId, '/run/remotegpu-test-none');
      times.push(performance.now() - t0);
    }
    expect(after.usedBytes - before.usedBytes).toBeGreaterThanOrEqual(20 * MiB);
    expect(after.usedBytes - before.usedBytes).toBeLessThan(21 * MiB);
    console.info(`inspect --size of a container with a 20 MiB writable layer: ${times.map((t) => t.toFixed(1)).join(', ')} ms`);
    await dockerExec(docker, name, ['rm', '-f', '/tmp/blob']);
  });

  it('warns at 90% of the limit, stops the container at it with the reason, and gives a restarted one a grace period', async () => {
    const events: LifecycleEvent[] = [];
    const base = (await measureRootfs(docker, (await info()).Id, envId, '')).usedBytes;
    const watch = new RootfsWatch({
      runtime: {
        list: () => listEnvironments(engine),
        stop: async (id, timeoutS) => {
          await docker.getContainer(containerName(id)).stop({ t: timeoutS });
          return (await listEnvironments(engine)).find((s) => s.envId === id)!;
        },
      },
      measure: (containerId, id) => measureRootfs(docker, containerId, id, ''),
      limitBytes: base + 24 * MiB,
      intervalMs: 1, // every pass measures
      graceMs: 60_000,
      stateDir,
      onEvent: (e) => events.push(e),
      logger: pino({ level: 'silent' }),
    });
    await watch.runOnce();
    expect(events).toEqual([]);

    await write('/tmp/a', 22); // 22 of 24 MiB over the base: past 90%
    await watch.runOnce();
    expect(events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(events[0]!.message).toMatch(/^Writable layer uses .* of its .* limit \(REMOTEGPU_ROOTFS_LIMIT\); files outside the storage volume count against it/);

    await write('/tmp/b', 4);
    await watch.runOnce();
    expect(events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_limit']);
    const stopped = (await listEnvironments(engine))[0]!;
    expect(stopped.state).toBe('exited');
    expect(watch.stopReason(envId)).toMatch(/^writable layer .* exceeded the .* limit \(REMOTEGPU_ROOTFS_LIMIT\)$/);
    const usage = (await environmentUsage([stopped], '/run/remotegpu-test-none', watch)).get(envId)!;
    expect(usage.stopReason).toBe(watch.stopReason(envId));
    expect(usage.rootfsUsedBytes).toBeGreaterThanOrEqual(base + 26 * MiB);

    // Started again, still over: a grace notice, no stop, and the reason is gone.
    await docker.getContainer(name).start();
    await watch.runOnce();
    expect(events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_limit', 'rootfs_warning']);
    expect(events[2]!.message).toContain('Delete some within 1 minute');
    expect((await listEnvironments(engine))[0]!.state).toBe('running');
    expect(watch.stopReason(envId)).toBeUndefined();

    // The grace period is for deleting: 1 MiB more (the slack is 1% of this small limit) stops it at once.
    await write('/tmp/c', 1);
    await watch.runOnce();
    expect(events.map((e) => e.kind)).toEqual(['rootfs_warning', 'rootfs_limit', 'rootfs_warning', 'rootfs_limit']);
    expect(events[3]!.message).toMatch(/and grew past .* during its grace period/);
    expect((await listEnvironments(engine))[0]!.state).toBe('exited');
  });
});

const CAN_RECREATE = hasDocker && canMknod();
if (hasDocker && !CAN_RECREATE) console.warn('Writable-layer recreate test skipped: creating fake GPU device nodes needs root.');

describe.skipIf(!CAN_RECREATE)('writable layer across recreates (DockerRuntime, fake GPUs)', () => {
  const docker = testDocker();
  const runDir = testRunDir();
  const managedBy = uniqueId('rootfs-rc');
  let stateDir: string;
  let deviceDir: string;
  let runtime: DockerRuntime;
  let spec: EnvSpec;
  const sh = (script: string) => dockerExec(docker, containerName(spec.envId), ['sh', '-c', script]);
  const measure = async () => {
    const info = await docker.getContainer(containerName(spec.envId)).inspect();
    return measureRootfs(docker, info.Id, spec.envId, runDir);
  };

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(path.join(tmpdir(), 'rgpu-rootfs-rc-'));
    deviceDir = await createFakeNvidiaNodes(4);
    runtime = new DockerRuntime({ runDir, docker, stateDir, gpuMode: 'devices', gpuIndexes: fakeGpuIndexes(4), deviceDir, publishAddress: '127.0.0.1', managedBy, stopTimeoutS: 1 });
    spec = envSpec({ gpuUuids: [fakeGpuUuid(0)], storageBytes: 64 * MiB });
  });

  afterAll(async () => {
    if (runtime) await runtime.remove(spec.envId).catch(() => undefined);
    await releaseRunDir(runDir);
    await rm(stateDir, { recursive: true, force: true });
    await rm(deviceDir, { recursive: true, force: true });
  });

  it('counts what a recreate committed into the environment image: 20 MiB stay measured through two GPU changes and a deletion', async () => {
    expect((await runtime.apply(spec)).action).toBe('created');
    const before = await measure();
    expect(before).toMatchObject({ committedBytes: 0, dataPath: '/root/workspace' });
    expect((await sh('dd if=/dev/zero of=/root/blob bs=1048576 count=20 2>/dev/null')).exitCode).toBe(0);
    const written = await measure();
    expect(written.layerBytes - before.layerBytes).toBeGreaterThanOrEqual(20 * MiB);

    // A GPU change recreates the container on remotegpu-env/<env>:1: its own layer is about empty.
    spec = { ...spec, gpuUuids: [fakeGpuUuid(1)] };
    expect((await runtime.apply(spec)).action).toBe('recreated');
    const recreated = await measure();
    expect(recreated.layerBytes).toBeLessThan(1 * MiB);
    expect(recreated.committedBytes).toBeGreaterThanOrEqual(20 * MiB);
    expect(recreated.usedBytes).toBeGreaterThanOrEqual(20 * MiB);
    expect(Math.abs(recreated.usedBytes - written.usedBytes)).toBeLessThan(1 * MiB);

    // A second one stacks its (small) layer on the first: 20 MiB counted once, not twice.
    spec = { ...spec, gpuUuids: [fakeGpuUuid(2)] };
    expect((await runtime.apply(spec)).action).toBe('recreated');
    const twice = await measure();
    expect(twice.usedBytes).toBeGreaterThanOrEqual(20 * MiB);
    expect(twice.usedBytes).toBeLessThan(written.usedBytes + 1 * MiB);

    // Deleting the file hides it, but its 20 MiB stay on the host's disk in the committed layer.
    expect((await sh('rm /root/blob && test ! -e /root/blob')).exitCode).toBe(0);
    const deleted = await measure();
    expect(deleted.usedBytes).toBeGreaterThanOrEqual(20 * MiB);

    // What the watch reports and judges: over a 16 MiB limit at its first measurement, a grace period.
    const events: LifecycleEvent[] = [];
    const watch = new RootfsWatch({
      runtime,
      measure: (containerId, id) => measureRootfs(docker, containerId, id, runDir),
      limitBytes: 16 * MiB,
      stateDir,
      onEvent: (e) => events.push(e),
      logger: pino({ level: 'silent' }),
    });
    await watch.runOnce();
    expect(watch.rootfsUsedBytes(spec.envId)).toBeGreaterThanOrEqual(20 * MiB);
    expect(events.map((e) => e.kind)).toEqual(['rootfs_warning']);
    expect(events[0]!.message).toContain("of it was kept by a recreate in the environment's image, which deleting those files does not free.");
    console.info(`20 MiB written, 2 recreates, deleted: layer ${deleted.layerBytes} bytes + committed ${deleted.committedBytes} bytes`);
  }, 120_000);
});
