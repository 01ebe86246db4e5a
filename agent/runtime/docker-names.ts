import { join } from 'node:path';
import { RuntimeError } from './errors.js';

/** Labels the agent puts on what it manages; the only source of truth after an agent restart. */
export const LABEL = Object.freeze({
  managed: 'remotegpu.managed',
  envId: 'remotegpu.env-id',
  specHash: 'remotegpu.spec-hash',
  gpuUuids: 'remotegpu.gpu-uuids',
  /** The catalog image the environment was first created from (a recreate may run a committed image). */
  image: 'remotegpu.image',
  /** A network made ahead of need; the environment whose container joins it owns it from then on. */
  spare: 'remotegpu.spare',
});

export const LABEL_PREFIX = 'remotegpu.';

/**
 * Environment ids name containers, volumes and image repositories, so they are restricted to what
 * all three accept. No underscore: `_` marks the agent's transient names (see replacedName).
 */
const ENV_ID_RE = /^[a-z0-9]+(?:[.-][a-z0-9]+)*$/;

/** Throws RuntimeError 'invalid_spec' unless `envId` can name Docker objects. */
export function assertEnvId(envId: string): void {
  if (envId.length > 63 || !ENV_ID_RE.test(envId)) {
    throw new RuntimeError(
      'invalid_spec',
      `invalid environment id ${JSON.stringify(envId)}: use 1-63 lowercase letters, digits, '.' and '-'`,
    );
  }
}

/** The container's name. */
export function containerName(envId: string): string {
  return `remotegpu-${envId}`;
}

/** Name of the previous container while a recreate replaces it; no env id can produce it. */
export function replacedName(envId: string): string {
  return `remotegpu-${envId}_replaced`;
}

/** The environment's storage volume (the user's data). */
export function volumeName(envId: string): string {
  return `remotegpu-${envId}-data`;
}

/** Repository of the private images a recreate commits the writable layer to. */
export function committedRepo(envId: string): string {
  return `remotegpu-env/${envId}`;
}

/**
 * Host directory holding the environment's authorized_keys, bind-mounted (read-only) into the
 * container: a directory, so that the file in it can be replaced atomically (rename).
 */
export function authorizedKeysDir(stateDir: string, envId: string): string {
  return join(stateDir, 'envs', envId, 'ssh');
}

/** Host path of the environment's authorized_keys file (in authorizedKeysDir). */
export function authorizedKeysPath(stateDir: string, envId: string): string {
  return join(authorizedKeysDir(stateDir, envId), 'authorized_keys');
}

/**
 * Host path of the authorized_keys file that containers created before the keys directory existed
 * bind-mount directly (a single-file mount pins the inode, so it can only be rewritten in place).
 */
export function legacyAuthorizedKeysPath(stateDir: string, envId: string): string {
  return join(stateDir, 'envs', envId, 'authorized_keys');
}

/** The environment's own bridge network (nothing else is attached to it). */
export function networkName(envId: string): string {
  return `remotegpu-${envId}-net`;
}

/** The sparse file holding the environment's ext4 storage volume (persistent, in the data directory). */
export function volumeFilePath(stateDir: string, envId: string): string {
  return join(stateDir, 'volumes', `${envId}.ext4`);
}

/**
 * The run directory of the agent of namespace `namespace` (undefined: the default one) under
 * REMOTEGPU_RUN_DIR; '_default' cannot be a namespace (they start with a letter or digit).
 */
export function runtimeRunDir(base: string, namespace: string | undefined): string {
  return join(base, namespace ?? '_default');
}

/** Where the environment's views live under the agent's run directory (a tmpfs). */
export function envRunDir(runDir: string, envId: string): string {
  return join(runDir, envId);
}

/** Mount point of the environment's storage volume; its `data` directory is what the container sees. */
export function volumeMountPath(runDir: string, envId: string): string {
  return join(envRunDir(runDir, envId), 'volume');
}

/** The directory of the volume that is bind-mounted at the image's data path (hides lost+found). */
export function volumeDataPath(runDir: string, envId: string): string {
  return join(volumeMountPath(runDir, envId), 'data');
}

/** The name of a dataset's view: the dataset id and whether it is read-only (a change makes a new view). */
export function datasetViewName(m: { readonly datasetId: string; readonly readonly: boolean }): string {
  return `${m.datasetId}-${m.readonly ? 'ro' : 'rw'}`;
}

/** Mount point of the nosuid,nodev (and read-only unless writable) view of one dataset mount (named by datasetViewName). */
export function datasetViewPath(runDir: string, envId: string, viewName: string): string {
  return join(envRunDir(runDir, envId), 'datasets', viewName);
}
