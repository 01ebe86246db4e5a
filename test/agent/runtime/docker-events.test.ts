import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import type { LifecycleEvent } from '../../../agent/runtime/types.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, ensureBusyboxImage, testDocker, releaseRunDir, testRunDir, testNamespace } from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';
import { waitFor } from './wait.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

/** This file's own label namespace (never `npm start`'s containers, nor another file's). */
const NAMESPACE = testNamespace('rt-events');

const MiB = 1024 * 1024;

describe.skipIf(!HAVE_DOCKER)('OOM kills and lifecycle events (real Docker)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let runtime: DockerRuntime;
  const abort = new AbortController();
  const seen: LifecycleEvent[] = [];
  let consumer: Promise<void>;
  const used: string[] = [];

  const kinds = (envId: string) => seen.filter((e) => e.envId === envId).map((e) => e.kind);

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-state-'));
    runtime = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'devices' });
    const events = runtime.events(abort.signal);
    consumer = (async () => {
      for await (const event of events) seen.push(event);
    })();
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    abort.abort();
    if (runtime) for (const id of used) await runtime.remove(id).catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('a process past the memory limit is OOM killed: events say so and inspect reports it', async () => {
    // The first run fills memory inside the shell itself; after Docker restarts the container
    // (restart policy unless-stopped) the marker in the data volume makes it idle instead.
    const spec = envSpec({
      memoryBytes: 64 * MiB,
      env: {
        TEST_CMD:
          'if [ -f /root/workspace/.oomed ]; then TEST_CMD= exec /init.sh; fi; touch /root/workspace/.oomed; ' +
          'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived',
      },
    });
    used.push(spec.envId);
    expect((await runtime.apply(spec)).action).toBe('created');

    await waitFor(() => kinds(spec.envId).filter((k) => k === 'started').length >= 2, 60_000, 'OOM, exit and restart events');
    const mine = seen.filter((e) => e.envId === spec.envId);
    const order = mine.map((e) => e.kind);
    expect(order[0]).toBe('created');
    expect(order[1]).toBe('started');
    const oom = order.indexOf('oom_killed');
    const exited = mine.findIndex((e) => e.kind === 'exited');
    expect(oom).toBeGreaterThan(1);
    expect(exited).toBeGreaterThan(oom);
    expect(mine[exited]!.message).toBe('Container exited with code 137 (OOM killed)');
    expect(order.slice(exited + 1)).toContain('started');
    for (const e of mine) expect(e.atMs).toBeGreaterThan(0);

    const status = await runtime.inspect(spec.envId);
    expect(status.oomKilled).toBe(true);
    expect(status.message).toMatch(/OOM/);
    const info = await docker.getContainer(status.containerId).inspect();
    expect(info.State.OOMKilled).toBe(true);
    expect(info.RestartCount).toBeGreaterThanOrEqual(1);
  });

  it('reports exited with the exit code when an environment stops, and removed when deleted', async () => {
    const spec = envSpec();
    used.push(spec.envId);
    await runtime.apply(spec);
    // The image's shell installs its SIGTERM trap just before it prints this line; a stop that
    // came earlier would end it with 143 instead of 0.
    const { containerId } = await runtime.inspect(spec.envId);
    const ready = async () => (await docker.getContainer(containerId).logs({ stdout: true, stderr: true })).toString().includes('busybox-test ready');
    await waitFor(ready, 30_000, 'the test image ready');
    const stopped = await runtime.stop(spec.envId, 5);
    expect(stopped).toMatchObject({ state: 'exited', exitCode: 0, oomKilled: false });
    expect(await runtime.remove(spec.envId)).toBe(true);
    await waitFor(() => kinds(spec.envId).includes('removed'), 30_000, 'removed event');
    expect(kinds(spec.envId)).toEqual(['created', 'started', 'exited', 'removed']);
    expect(seen.find((e) => e.envId === spec.envId && e.kind === 'exited')?.message).toBe('Container exited with code 0');
  });

  it('the iterator ends, without an error, when the signal aborts', async () => {
    abort.abort();
    await expect(consumer).resolves.toBeUndefined();
    expect(seen.length).toBeGreaterThan(0);
  });
});
