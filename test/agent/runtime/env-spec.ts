import { BUSYBOX_IMAGE, uniqueId } from '../../helpers/docker.js';
import type { EnvSpec } from '../../../agent/runtime/types.js';

const MiB = 1024 * 1024;

/** A small environment spec on the busybox test image, with a unique env id. */
export function envSpec(over: Partial<EnvSpec> = {}): EnvSpec {
  return {
    envId: uniqueId('rt'),
    image: BUSYBOX_IMAGE,
    cpuCores: 1,
    memoryBytes: 256 * MiB,
    gpuUuids: [],
    storageBytes: 1024 * MiB,
    dataPath: '/root/workspace',
    ports: [],
    sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOne test@remotegpu'],
    mounts: [],
    env: {},
    labels: {},
    jupyterToken: '',
    desiredState: 'running',
    shmBytes: 0,
    pidsLimit: 0,
    ...over,
  };
}
