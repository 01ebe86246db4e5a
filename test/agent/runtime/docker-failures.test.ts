import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { RuntimeError } from '../../../agent/runtime/errors.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';
import {
  DOCKER_SKIP_MESSAGE,
  dockerAvailable,
  dockerExec,
  ensureBusyboxImage,
  fakeGpuUuid,
  freePort,
  testDocker,
  releaseRunDir,
  testRunDir,
  testNamespace,
} from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

/** This file's own label namespace (never `npm start`'s containers, nor another file's). */
const NAMESPACE = testNamespace('rt-failures');

describe.skipIf(!HAVE_DOCKER)('DockerRuntime failures leave nothing half-created (real Docker)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let runtime: DockerRuntime;
  const used: string[] = [];
  const servers: Server[] = [];

  function spec(over: Partial<EnvSpec> = {}): EnvSpec {
    const s = envSpec(over);
    used.push(s.envId);
    return s;
  }

  async function expectNothingLeft(envId: string): Promise<void> {
    const containers = await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } });
    expect(containers).toEqual([]);
    const named = await docker.listContainers({ all: true, filters: { name: [`remotegpu-${envId}`] } });
    expect(named).toEqual([]);
    await expect(docker.getVolume(`remotegpu-${envId}-data`).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(stat(join(stateDir, 'envs', envId))).rejects.toMatchObject({ code: 'ENOENT' });
  }

  async function applyError(rt: DockerRuntime, s: EnvSpec): Promise<RuntimeError> {
    const err = await rt.apply(s).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RuntimeError);
    return err as RuntimeError;
  }

  async function listen(port: number): Promise<void> {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  }

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-state-'));
    runtime = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'devices', publishAddress: '127.0.0.1' });
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    for (const s of servers) s.close();
    if (runtime) for (const id of used) await runtime.remove(id).catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('nvidia mode on an engine without the NVIDIA runtime: gpu_driver_missing with Docker’s message', async () => {
    const nvidia = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'nvidia' });
    const s = spec({ gpuUuids: [fakeGpuUuid(0)] });
    const err = await applyError(nvidia, s);
    expect(err.code).toBe('gpu_driver_missing');
    expect(err.message).toMatch(/could not select device driver/);
    await expectNothingLeft(s.envId);
  });

  it('an image the engine does not have: image_not_found, nothing left', async () => {
    const s = spec({ image: 'remotegpu/no-such-image:404' });
    const err = await applyError(runtime, s);
    expect(err.code).toBe('image_not_found');
    expect(err.message).toMatch(/no such image/i);
    await expectNothingLeft(s.envId);
  });

  it('a host port another process holds: port_conflict, nothing left', async () => {
    const port = await freePort();
    await listen(port);
    const s = spec({ ports: [{ name: 'ssh', containerPort: 22, hostPort: port }] });
    const err = await applyError(runtime, s);
    expect(err.code).toBe('port_conflict');
    // The port travels with the error: the controller moves the environment off it.
    expect(err.port).toBe(port);
    expect(err.message).toContain(String(port));
    await expectNothingLeft(s.envId);
  });

  it('an invalid spec (a dataset over the data path): invalid_spec before anything is created', async () => {
    const s = spec({ mounts: [{ datasetId: 'ds-1', hostPath: stateDir, containerPath: '/root/workspace', readonly: true }] });
    const err = await applyError(runtime, s);
    expect(err.code).toBe('invalid_spec');
    expect(err.message).toContain('/root/workspace is already mounted');
    await expectNothingLeft(s.envId);
  });

  it('a GPU the host does not have: invalid_spec before anything is created', async () => {
    const s = spec({ gpuUuids: ['GPU-not-on-this-host'] });
    const err = await applyError(runtime, s);
    expect(err.code).toBe('invalid_spec');
    await expectNothingLeft(s.envId);
  });

  it('a recreate that fails puts the old container back, running, with its files', async () => {
    const s = spec({ ports: [{ name: 'ssh', containerPort: 22, hostPort: await freePort() }] });
    const first = await runtime.apply(s);
    expect(first.action).toBe('created');
    await dockerExec(docker, `remotegpu-${s.envId}`, ['sh', '-c', 'echo mine > /root/keep.txt']);

    const taken = await freePort();
    await listen(taken);
    const err = await applyError(runtime, { ...s, ports: [{ name: 'ssh', containerPort: 22, hostPort: taken }] });
    expect(err.code).toBe('port_conflict');
    expect(err.port).toBe(taken);

    const status = await runtime.inspect(s.envId);
    expect(status).toMatchObject({ state: 'running', containerId: first.status.containerId, specHash: first.status.specHash });
    const all = await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${s.envId}`] } });
    expect(all.map((c) => c.Names)).toEqual([[`/remotegpu-${s.envId}`]]);
    expect(await docker.listImages({ filters: { reference: [`remotegpu-env/${s.envId}`] } })).toEqual([]);
    expect((await dockerExec(docker, `remotegpu-${s.envId}`, ['cat', '/root/keep.txt'])).stdout).toBe('mine\n');
  });

  it('re-adopts a container that an interrupted recreate left moved aside', async () => {
    const s = spec();
    const first = await runtime.apply(s);
    await docker.getContainer(first.status.containerId).rename({ name: `remotegpu-${s.envId}_replaced` });
    expect((await runtime.inspect(s.envId)).containerId).toBe(first.status.containerId);

    const again = await runtime.apply(s);
    expect(again.action).toBe('none');
    expect(again.status.containerId).toBe(first.status.containerId);
    expect((await docker.getContainer(first.status.containerId).inspect()).Name).toBe(`/remotegpu-${s.envId}`);
  });

  it('a container removed behind the agent’s back comes back from its last commit', async () => {
    const s = spec({ cpuCores: 1 });
    await runtime.apply(s);
    await dockerExec(docker, `remotegpu-${s.envId}`, ['sh', '-c', 'echo layer > /root/kept.txt']);
    expect((await runtime.apply({ ...s, cpuCores: 0.5 })).action).toBe('recreated');
    await docker.getContainer(`remotegpu-${s.envId}`).remove({ force: true });

    const again = await runtime.apply({ ...s, cpuCores: 0.5 });
    expect(again.action).toBe('created');
    expect((await docker.getContainer(again.status.containerId).inspect()).Config.Image).toBe(`remotegpu-env/${s.envId}:1`);
    expect((await dockerExec(docker, `remotegpu-${s.envId}`, ['cat', '/root/kept.txt'])).stdout).toBe('layer\n');
  });

  it('concurrent applies of one spec create one container', async () => {
    const s = spec();
    const results = await Promise.all([runtime.apply(s), runtime.apply(s), runtime.apply(s)]);
    expect(results.map((r) => r.action).sort()).toEqual(['created', 'none', 'none']);
    expect(new Set(results.map((r) => r.status.containerId)).size).toBe(1);
    const all = await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${s.envId}`] } });
    expect(all).toHaveLength(1);
  });

  it('logs of an environment without a container: not_found', async () => {
    const iterator = runtime.logs(spec().envId, { follow: false, signal: new AbortController().signal });
    await expect(iterator[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'not_found' });
  });

  it('an engine that does not answer: docker_unavailable', async () => {
    const down = new DockerRuntime({ runDir, managedBy: NAMESPACE, docker: new Dockerode({ socketPath: join(stateDir, 'no-docker.sock') }), stateDir, gpuMode: 'devices' });
    await expect(down.inspect('env-x')).rejects.toMatchObject({ code: 'docker_unavailable' });
    await expect(down.apply(spec())).rejects.toMatchObject({ code: 'docker_unavailable' });
  });
});
