import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootfsWatch } from '../../agent/rootfs-watch.js';
import { listEnvironments, type ManagedEngine } from '../../agent/runtime/docker-inspect.js';
import { LABEL, containerName } from '../../agent/runtime/docker-names.js';
import type { LifecycleEvent } from '../../agent/runtime/types.js';
import { environmentUsage, measureRootfs } from '../../agent/usage.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, dockerExec, ensureBusyboxImage, removeQuietly, testDocker, uniqueId } from '../helpers/docker.js';

// The writable layer against a real Docker engine: `docker inspect --size` sees 20 MB written to a
// busybox container's /tmp, and the watch warns at 90% of a small limit, stops the container at
// the limit with its reason, and gives it a grace period when it is started again still over it.

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
  });
});
