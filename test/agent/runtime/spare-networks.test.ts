import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, ensureBusyboxImage, releaseRunDir, removeNamespace, testDocker, testRunDir, uniqueId } from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

// Spare networks (spare-networks.ts): with REMOTEGPU_NETWORK_SPARES the agent keeps bridge
// networks made ahead; a new environment takes one instead of waiting for Docker to make one, the
// environment owns it from then on (its container is on it), and it goes with the environment.
describe.skipIf(!HAVE_DOCKER)('spare networks (real Docker)', () => {
  const docker = testDocker();
  const runDir = testRunDir();
  const managedBy = uniqueId('spares');
  let stateDir: string;
  let runtime: DockerRuntime;
  const spec = envSpec({});
  const other = envSpec({});

  const managedNetworks = async () => docker.listNetworks({ filters: { label: [`remotegpu.managed=${managedBy}`] } });
  const spares = async () => (await managedNetworks()).filter((n) => n.Labels?.['remotegpu.spare'] === 'true');
  const networkOf = async (envId: string) => (await docker.getContainer(`remotegpu-${envId}`).inspect()).HostConfig.NetworkMode as string;
  const onNetwork = async (name: string) => docker.listContainers({ all: true, filters: { network: [name] } });

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-spares-'));
    runtime = new DockerRuntime({ runDir, docker, stateDir, gpuMode: 'devices', managedBy, networkPool: '10.215.0.0/16', networkSpares: 1 });
  });

  afterAll(async () => {
    for (const s of [spec, other]) await runtime?.remove(s.envId).catch(() => undefined);
    await runtime?.settle();
    await removeNamespace(managedBy);
    await releaseRunDir(runDir);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('restore() makes the spares; a new environment takes one and another is made', async () => {
    await runtime.restore();
    await runtime.settle();
    const [spare, ...more] = await spares();
    expect(more).toEqual([]);
    expect(spare!.Name).toMatch(/^remotegpu-spare-[0-9a-f]{12}$/);

    expect((await runtime.apply(spec)).status.state).toBe('running');
    expect(await networkOf(spec.envId)).toBe(spare!.Name);
    expect((await onNetwork(spare!.Name)).map((c) => c.Names[0])).toEqual([`/remotegpu-${spec.envId}`]);
    await runtime.settle();
    const free = (await spares()).filter((n) => n.Name !== spare!.Name);
    expect(free).toHaveLength(1);
  });

  it('an environment keeps its network across a recreate and a new runtime (agent restart)', async () => {
    const network = await networkOf(spec.envId);
    const restarted = new DockerRuntime({ runDir, docker, stateDir, gpuMode: 'devices', managedBy, networkPool: '10.215.0.0/16', networkSpares: 1 });
    expect((await restarted.apply({ ...spec, env: { CHANGED: '1' } })).action).toBe('recreated');
    expect(await networkOf(spec.envId)).toBe(network);
    await restarted.settle();
  });

  it('two environments applied at once take different networks (one spare, one made for it)', async () => {
    const third = envSpec({});
    try {
      const [a, b] = await Promise.all([runtime.apply(other), runtime.apply(third)]);
      expect([a.status.state, b.status.state]).toEqual(['running', 'running']);
      const networks = [await networkOf(spec.envId), await networkOf(other.envId), await networkOf(third.envId)];
      expect(new Set(networks).size).toBe(3);
      for (const n of networks) expect(await onNetwork(n)).toHaveLength(1);
    } finally {
      await runtime.remove(third.envId);
    }
  });

  it('remove takes the environment\'s network with it, spares stay', async () => {
    const network = await networkOf(spec.envId);
    expect(await runtime.remove(spec.envId)).toBe(true);
    expect((await managedNetworks()).map((n) => n.Name)).not.toContain(network);
    await runtime.settle();
    expect((await spares()).length).toBeGreaterThanOrEqual(1);
  });
});
