import type Dockerode from 'dockerode';
import { ignoreMissing, toRuntimeError } from './docker-errors.js';
import { LABEL, assertEnvId, containerName, replacedName } from './docker-names.js';
import { absentStatus, statusFromInspect } from './docker-status.js';
import type { ObservedStatus } from './types.js';

// Reading the engine: which containers stand for which environment, and their observed status.

/** One Docker engine as one agent sees it: only containers labelled remotegpu.managed=<managedBy>. */
export interface ManagedEngine {
  readonly docker: Dockerode;
  /** Value of the remotegpu.managed label: 'true', or the agent's namespace. */
  readonly managedBy: string;
}

/** Every container labelled for the environment (the current one and a moved-aside one). */
export function listEnvContainers(engine: ManagedEngine, envId: string): Promise<Dockerode.ContainerInfo[]> {
  return engine.docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.managed}=${engine.managedBy}`, `${LABEL.envId}=${envId}`] },
  });
}

/**
 * Inspect of the container standing for the environment among its `containers`
 * (listEnvContainers): the current one, else a moved-aside one; undefined when neither is there.
 */
export async function pickStanding(
  engine: ManagedEngine,
  containers: readonly Dockerode.ContainerInfo[],
  envId: string,
): Promise<Dockerode.ContainerInspectInfo | undefined> {
  const chosen =
    containers.find((c) => c.Names.includes(`/${containerName(envId)}`)) ??
    containers.find((c) => c.Names.includes(`/${replacedName(envId)}`));
  return chosen ? await ignoreMissing(() => engine.docker.getContainer(chosen.Id).inspect()) : undefined;
}

/** Inspect of the container standing for the environment, if any. */
export async function findContainer(engine: ManagedEngine, envId: string): Promise<Dockerode.ContainerInspectInfo | undefined> {
  return pickStanding(engine, await listEnvContainers(engine, envId), envId);
}

/** ContainerRuntime.inspect: the environment's observed status, 'absent' without a container. */
export async function inspectEnvironment(engine: ManagedEngine, envId: string): Promise<ObservedStatus> {
  assertEnvId(envId);
  try {
    const found = await findContainer(engine, envId);
    return found ? statusFromInspect(envId, found) : absentStatus(envId);
  } catch (err) {
    throw toRuntimeError(err, 'inspecting a container');
  }
}

/** ContainerRuntime.list: every managed environment's observed status, by env id. */
export async function listEnvironments(engine: ManagedEngine): Promise<ObservedStatus[]> {
  try {
    const containers = await engine.docker.listContainers({ all: true, filters: { label: [`${LABEL.managed}=${engine.managedBy}`] } });
    const byEnv = new Map<string, Dockerode.ContainerInfo>();
    for (const c of containers) {
      const envId = c.Labels?.[LABEL.envId];
      if (!envId) continue;
      // A recreate's transient container stands for the environment only while it is alone.
      if (!byEnv.has(envId) || c.Names.includes(`/${containerName(envId)}`)) byEnv.set(envId, c);
    }
    const statuses: ObservedStatus[] = [];
    for (const [envId, c] of byEnv) {
      const info = await ignoreMissing(() => engine.docker.getContainer(c.Id).inspect());
      if (info) statuses.push(statusFromInspect(envId, info));
    }
    return statuses.sort((a, b) => (a.envId < b.envId ? -1 : 1));
  } catch (err) {
    throw toRuntimeError(err, 'listing containers');
  }
}
