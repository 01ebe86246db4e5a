import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, ensureBusyboxImage, testDocker, releaseRunDir, testRunDir } from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

// Two agents sharing one Docker engine (development, tests) must never see or touch each other's
// containers: each runtime manages only the containers labelled with its namespace.
describe.skipIf(!HAVE_DOCKER)('runtime namespaces on one engine (real Docker)', () => {
  const runDir = testRunDir();
  const otherRunDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let otherStateDir: string;
  let a: DockerRuntime;
  let b: DockerRuntime;
  const spec = envSpec({});

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-ns-'));
    otherStateDir = await mkdtemp(join(tmpdir(), 'remotegpu-ns-'));
    a = new DockerRuntime({ runDir, docker, stateDir, gpuMode: 'devices', managedBy: `ns-a-${process.pid}` });
    b = new DockerRuntime({ runDir: otherRunDir, docker, stateDir: otherStateDir, gpuMode: 'devices', managedBy: `ns-b-${process.pid}` });
    await a.apply(spec);
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    await releaseRunDir(otherRunDir);
    await a?.remove(spec.envId).catch(() => undefined);
    for (const dir of [stateDir, otherStateDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists, inspects and removes only its own namespace', async () => {
    expect((await a.list()).map((s) => s.envId)).toEqual([spec.envId]);
    expect((await b.list()).map((s) => s.envId)).not.toContain(spec.envId);
    expect((await b.inspect(spec.envId)).state).toBe('absent');
    expect(await b.remove(spec.envId)).toBe(false);
    expect((await a.inspect(spec.envId)).state).toBe('running');
    // The volume is a's own (its loop file, mounted under its run directory), its network a's.
    expect(existsSync(join(stateDir, 'volumes', `${spec.envId}.ext4`))).toBe(true);
    expect(existsSync(join(runDir, spec.envId, 'volume', 'data'))).toBe(true);
    const network = await docker.getNetwork(`remotegpu-${spec.envId}-net`).inspect();
    expect(network.Labels?.['remotegpu.managed']).toBe(`ns-a-${process.pid}`);
    expect(await a.remove(spec.envId)).toBe(true);
    expect((await a.inspect(spec.envId)).state).toBe('absent');
  });
});

// An agent without REMOTEGPU_NAMESPACE (`npm start`) decides what is its own by the exact label
// remotegpu.managed=true: it never lists, adopts or removes a container of any namespace. Safe
// while `npm start` runs: the un-namespaced runtime here only lists, and removes an env id only this
// test knows (nothing of `npm start`'s carries it); what the test creates is in its own namespace.
describe.skipIf(!HAVE_DOCKER)('an agent without a namespace leaves namespaced containers alone (real Docker)', () => {
  const runDir = testRunDir();
  const plainRunDir = testRunDir();
  const docker = testDocker();
  const namespace = `ns-plain-${process.pid}`;
  let stateDir: string;
  let plainStateDir: string;
  let mine: DockerRuntime;
  let plain: DockerRuntime;
  const spec = envSpec({});

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-ns-'));
    plainStateDir = await mkdtemp(join(tmpdir(), 'remotegpu-ns-'));
    mine = new DockerRuntime({ runDir, docker, stateDir, gpuMode: 'devices', managedBy: namespace });
    plain = new DockerRuntime({ runDir: plainRunDir, docker, stateDir: plainStateDir, gpuMode: 'devices' /* npm start's namespace on purpose */ });
    await mine.apply(spec);
  });

  afterAll(async () => {
    await mine?.remove(spec.envId).catch(() => undefined);
    await releaseRunDir(runDir);
    await releaseRunDir(plainRunDir);
    for (const dir of [stateDir, plainStateDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('does not list it, sees it absent, and its orphan removal leaves it running', async () => {
    expect((await plain.list()).map((s) => s.envId)).not.toContain(spec.envId);
    expect((await plain.inspect(spec.envId)).state).toBe('absent');
    // What the controller asks of an agent for a container it does not know: remove by env id.
    expect(await plain.remove(spec.envId)).toBe(false);
    const info = await docker.getContainer(`remotegpu-${spec.envId}`).inspect();
    expect(info.State.Running).toBe(true);
    expect(info.Config.Labels['remotegpu.managed']).toBe(namespace);
    expect((await mine.inspect(spec.envId)).state).toBe('running');
  });
});
