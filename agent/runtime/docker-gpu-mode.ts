import type Dockerode from 'dockerode';
import { toRuntimeError } from './docker-errors.js';
import { detectGpuMode, type GpuMode } from './gpu.js';
import { readCdiKinds } from './gpu-host.js';

/**
 * The GPU mode 'auto' resolves to on this engine: asks Docker for its runtimes and CDI spec dirs,
 * reads the CDI kinds declared there, and lets detectGpuMode decide. Throws RuntimeError when the
 * engine cannot be asked.
 */
export async function detectEngineGpuMode(docker: Dockerode): Promise<GpuMode> {
  const info = (await docker.info().catch((err: unknown) => {
    throw toRuntimeError(err, 'reading engine info');
  })) as { Runtimes?: Record<string, unknown>; CDISpecDirs?: string[] | null };
  return detectGpuMode(info, await readCdiKinds(info.CDISpecDirs ?? []));
}
