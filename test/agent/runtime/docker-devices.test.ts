import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import {
  DOCKER_SKIP_MESSAGE,
  canMknod,
  createFakeNvidiaNodes,
  dockerAvailable,
  dockerExec,
  ensureBusyboxImage,
  fakeGpuIndexes,
  fakeGpuUuid,
  testDocker,
  releaseRunDir,
  testRunDir,
  testNamespace,
} from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
const CAN_RUN = HAVE_DOCKER && canMknod();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);
else if (!CAN_RUN) console.warn('GPU device-node tests skipped: creating fake device nodes with mknod needs root.');

/** This file's own label namespace (never `npm start`'s containers, nor another file's). */
const NAMESPACE = testNamespace('rt-devices');

describe.skipIf(!CAN_RUN)('devices mode passes exactly the assigned GPUs (real Docker, fake nodes)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let stateDir: string;
  let deviceDir: string;
  let runtime: DockerRuntime;
  const used: string[] = [];

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-state-'));
    deviceDir = await createFakeNvidiaNodes(8, { uvm: true });
    runtime = new DockerRuntime({ runDir, docker, stateDir, managedBy: NAMESPACE, gpuMode: 'devices', gpuIndexes: fakeGpuIndexes(8), deviceDir });
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    if (runtime) for (const id of used) await runtime.remove(id).catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    if (deviceDir) await rm(deviceDir, { recursive: true, force: true });
  });

  async function run(gpus: string[]) {
    const spec = envSpec({ gpuUuids: gpus });
    used.push(spec.envId);
    const { status } = await runtime.apply(spec);
    expect(status.state).toBe('running');
    const sh = (script: string) => dockerExec(docker, `remotegpu-${spec.envId}`, ['sh', '-c', script]);
    return {
      nodes: (await sh('ls -1 /dev/nvidia* 2>/dev/null')).stdout.split('\n').filter(Boolean),
      visible: (await sh('printf %s "$NVIDIA_VISIBLE_DEVICES"')).stdout,
      majorMinor: (await sh("stat -c '%n %t:%T' /dev/nvidia*")).stdout,
    };
  }

  it('GPUs 2 and 5: /dev/nvidia2, /dev/nvidia5 and the control nodes, and their UUIDs', async () => {
    const { nodes, visible, majorMinor } = await run([fakeGpuUuid(5), fakeGpuUuid(2)]);
    expect(nodes).toEqual(['/dev/nvidia-uvm', '/dev/nvidia2', '/dev/nvidia5', '/dev/nvidiactl']);
    expect(visible).toBe(`${fakeGpuUuid(2)},${fakeGpuUuid(5)}`);
    // The nodes are the host's (major 195 = 0xc3, minors 2, 5 and 255).
    expect(majorMinor).toContain('/dev/nvidia2 c3:2');
    expect(majorMinor).toContain('/dev/nvidia5 c3:5');
    expect(majorMinor).toContain('/dev/nvidiactl c3:ff');
  });

  it('no GPUs: no NVIDIA nodes at all and NVIDIA_VISIBLE_DEVICES=void', async () => {
    const { nodes, visible } = await run([]);
    expect(nodes).toEqual([]);
    expect(visible).toBe('void');
  });
});
