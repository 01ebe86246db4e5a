import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../agent/runtime/docker.js';
import { authorizedKeysPath } from '../../../agent/runtime/docker-names.js';
import { RuntimeError } from '../../../agent/runtime/errors.js';
import type { DatasetMountSpec, EnvSpec } from '../../../agent/runtime/types.js';
import { DOCKER_SKIP_MESSAGE, dockerAvailable, dockerExec, ensureBusyboxImage, testDocker, uniqueId, releaseRunDir, testRunDir } from '../../helpers/docker.js';
import { envSpec } from './env-spec.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

// The agent's own mount rules (mount-policy.ts), through DockerRuntime.apply on a real engine: a
// spec mounting a path the agent never mounts is refused before anything exists in Docker, while
// datasets inside REMOTEGPU_DATASET_ROOTS are mounted as before.
describe.skipIf(!HAVE_DOCKER)('DockerRuntime mount policy (real Docker)', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  const namespace = uniqueId('mount-policy');
  let base: string;
  let stateDir: string;
  let root: string;
  let runtime: DockerRuntime;
  const used: string[] = [];

  function spec(mounts: DatasetMountSpec[], over: Partial<EnvSpec> = {}): EnvSpec {
    const s = envSpec({ mounts, ...over });
    used.push(s.envId);
    return s;
  }
  const mount = (hostPath: string, containerPath = '/data/x', datasetId = 'ds-1'): DatasetMountSpec => ({ datasetId, hostPath, containerPath, readonly: true });

  /** Everything in Docker and in the state directory that a runtime apply could have created. */
  async function snapshot() {
    const label = `remotegpu.managed=${namespace}`;
    const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
    const named = await docker.listContainers({ all: true, filters: { name: used.map((id) => `remotegpu-${id}`) } });
    const volumes = (await docker.listVolumes({ filters: { label: [label] } })).Volumes ?? [];
    const ownVolumes = await Promise.all(used.map((id) => docker.getVolume(`remotegpu-${id}-data`).inspect().then(() => id, () => undefined)));
    return {
      containers: containers.map((c) => c.Id).sort(),
      named: named.map((c) => c.Id).sort(),
      volumes: volumes.map((v) => v.Name).sort(),
      ownVolumes: ownVolumes.filter(Boolean),
      stateFiles: await readdir(stateDir),
    };
  }

  async function refusal(s: EnvSpec): Promise<RuntimeError> {
    const err = await runtime.apply(s).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RuntimeError);
    return err as RuntimeError;
  }

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
    base = await mkdtemp(join(tmpdir(), 'rgpu-mount-policy-'));
    stateDir = join(base, 'agent-data');
    root = join(base, 'datasets');
    await mkdir(join(root, 'imagenet'), { recursive: true });
    await mkdir(stateDir);
    await writeFile(join(root, 'imagenet', 'labels.txt'), 'cat\ndog\n');
    await symlink('/etc', join(root, 'etc-link'));
    runtime = new DockerRuntime({ runDir, docker, stateDir, datasetRoots: [root], gpuMode: 'devices', managedBy: namespace });
  });

  afterAll(async () => {
    await releaseRunDir(runDir);
    if (runtime) for (const id of used) await runtime.remove(id).catch(() => undefined);
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('refuses mounts of /, the Docker socket and its own data directory, and creates nothing', async () => {
    const cases: [DatasetMountSpec[], string][] = [
      [[mount('/', '/host')], 'mount source / is refused: the agent never mounts /'],
      [[mount('/var/run/docker.sock', '/var/run/docker.sock')], 'mount source /var/run/docker.sock is refused: the agent never mounts the Docker socket /var/run/docker.sock'],
      [[mount(stateDir)], `mount source ${stateDir} is refused: the agent never mounts its own data directory ${stateDir}`],
      [[mount(join(root, 'etc-link'))], 'is refused: the agent never mounts /etc'],
      [[mount(join(root, 'imagenet'), '/data/ok'), mount('/', '/host', 'ds-2'), mount('/var/run/docker.sock', '/sock', 'ds-3')], 'dataset ds-2: mount source / is refused'],
    ];
    const specs = cases.map(([mounts]) => spec(mounts));
    const before = await snapshot();
    for (const [i, s] of specs.entries()) {
      const err = await refusal(s);
      expect(err.code).toBe('permission_denied');
      expect(err.message).toContain(cases[i]![1]);
    }
    expect(await snapshot()).toEqual(before);
    expect(before.ownVolumes).toEqual([]);
    expect(before.named).toEqual([]);
    expect(before.stateFiles).toEqual([]);
  });

  it('refuses a dataset outside REMOTEGPU_DATASET_ROOTS and one that does not exist, creating nothing', async () => {
    const outside = spec([mount(base)]);
    const missing = spec([mount(join(root, 'missing'))]);
    const before = await snapshot();
    expect(await refusal(outside)).toMatchObject({ code: 'permission_denied', message: expect.stringContaining(`it contains its own data directory ${stateDir}`) });
    expect(await refusal(missing)).toMatchObject({ code: 'invalid_spec', message: expect.stringContaining('does not exist on this host') });
    expect(await snapshot()).toEqual(before);
  });

  it('mounts a dataset inside a configured root, read-only', async () => {
    const s = spec([mount(join(root, 'imagenet'), '/data/imagenet')]);
    const { action, status } = await runtime.apply(s);
    expect(action).toBe('created');
    expect(status.state).toBe('running');
    const name = `remotegpu-${s.envId}`;
    expect((await dockerExec(docker, name, ['cat', '/data/imagenet/labels.txt'])).stdout).toBe('cat\ndog\n');
    expect((await dockerExec(docker, name, ['touch', '/data/imagenet/new'])).exitCode).not.toBe(0);
    // The snapshot the refusals are compared with sees what an apply creates.
    const created = await snapshot();
    expect(created.containers).toEqual([status.containerId]);
    expect(created.named).toEqual([status.containerId]);
    expect(created.volumes).toEqual([]);
    expect(created.stateFiles.sort()).toEqual(['envs', 'volumes']);
    const info = await docker.getContainer(name).inspect();
    expect(info.HostConfig.Privileged).toBe(false);
    // The dataset through the agent's read-only view of it, the volume through its loop mount.
    expect(info.Mounts.filter((m) => m.Type === 'bind').map((m) => m.Source).sort()).toEqual(
      [join(runDir, s.envId, 'datasets', 'ds-1-ro'), join(runDir, s.envId, 'volume', 'data'), join(stateDir, 'envs', s.envId, 'ssh')].sort(),
    );
    expect(await runtime.remove(s.envId)).toBe(true);
  });

  it('still removes a deleted SSH key from a running container when the rest of its new spec is refused', async () => {
    const [a, b] = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyA a@x', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyB b@x'];
    const s = spec([mount(join(root, 'imagenet'), '/data/imagenet')], { sshAuthorizedKeys: [a, b] });
    expect((await runtime.apply(s)).status.state).toBe('running');
    const name = `remotegpu-${s.envId}`;
    expect((await dockerExec(docker, name, ['cat', '/root/.ssh/authorized_keys'])).stdout).toBe(`${a}\n${b}\n`);
    // Key A deleted while the dataset's directory went missing on this host: the apply is refused, the key is gone.
    const refused = await refusal({ ...s, sshAuthorizedKeys: [b], mounts: [mount(join(root, 'missing'), '/data/imagenet')] });
    expect(refused).toMatchObject({ code: 'invalid_spec', message: expect.stringContaining('does not exist on this host') });
    expect(await readFile(authorizedKeysPath(stateDir, s.envId), 'utf8')).toBe(`${b}\n`);
    expect((await dockerExec(docker, name, ['cat', '/root/.ssh/authorized_keys'])).stdout).toBe(`${b}\n`);
    // A key that is not one line is never written, even early.
    expect(await refusal({ ...s, sshAuthorizedKeys: [b, `${a}\ncommand="x" ${a}`] })).toMatchObject({ code: 'invalid_spec' });
    expect(await readFile(authorizedKeysPath(stateDir, s.envId), 'utf8')).toBe(`${b}\n`);
    expect(await runtime.remove(s.envId)).toBe(true);
    // An environment never applied gets no state directory from a refused apply.
    const fresh = spec([mount(join(root, 'missing'))]);
    expect(await refusal(fresh)).toMatchObject({ code: 'invalid_spec' });
    await expect(stat(join(stateDir, 'envs', fresh.envId))).rejects.toThrow(/ENOENT/);
  });
});
