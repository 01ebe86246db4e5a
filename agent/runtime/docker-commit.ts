import type Dockerode from 'dockerode';
import { ignoreMissing } from './docker-errors.js';
import { LABEL, committedRepo } from './docker-names.js';

/** A private image holding an environment's writable layer, committed before a recreate. */
export interface CommittedImage {
  /** "remotegpu-env/<envId>:<generation>" */
  readonly ref: string;
  readonly generation: number;
  /** The catalog image the environment was created from (label remotegpu.image). */
  readonly originalImage: string;
}

/** The fields of a container's or image's config that a commit copies into the new image. */
export interface ConfigForCommit {
  readonly Env?: readonly string[] | null;
  readonly Labels?: Readonly<Record<string, string>> | null;
}

/**
 * The config to commit a container with. Docker merges the container's env and labels into a
 * committed image, so without this the agent's values (the Jupyter token, stale user variables,
 * its own labels) would be baked into the image and outlive the spec that set them. Keys the
 * catalog image defines get its value back; the others are blanked (Docker cannot drop a key),
 * except JUPYTER_TOKEN, which stays: an empty one would switch Jupyter's authentication off.
 * Pure.
 */
export function commitConfig(
  container: ConfigForCommit,
  original: ConfigForCommit | undefined,
  envId: string,
  originalImage: string,
): { Env: string[]; Labels: Record<string, string> } {
  const originalEnv = new Map((original?.Env ?? []).map((kv) => splitEnv(kv)));
  const env: string[] = [];
  for (const kv of container.Env ?? []) {
    const [key, value] = splitEnv(kv);
    if (originalEnv.has(key)) env.push(`${key}=${originalEnv.get(key)}`);
    else if (key === 'JUPYTER_TOKEN') env.push(`${key}=${value}`);
    else env.push(`${key}=`);
  }
  const originalLabels = original?.Labels ?? {};
  const labels: Record<string, string> = {};
  for (const key of Object.keys(container.Labels ?? {})) labels[key] = originalLabels[key] ?? '';
  labels[LABEL.envId] = envId;
  labels[LABEL.image] = originalImage;
  return { Env: env, Labels: labels };
}

function splitEnv(kv: string): [string, string] {
  const eq = kv.indexOf('=');
  return eq === -1 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
}

/** The environment's committed images, oldest generation first. */
export async function listCommitted(docker: Dockerode, envId: string): Promise<CommittedImage[]> {
  const repo = committedRepo(envId);
  const images = await docker.listImages({ filters: { reference: [repo] } } as Dockerode.ListImagesOptions);
  const found: CommittedImage[] = [];
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      const m = /^(.*):(\d+)$/.exec(tag);
      if (m?.[1] !== repo || !m[2]) continue;
      found.push({ ref: tag, generation: Number(m[2]), originalImage: image.Labels?.[LABEL.image] ?? '' });
    }
  }
  return found.sort((a, b) => a.generation - b.generation);
}

/**
 * Commits the (stopped) container's writable layer to the environment's next generation and
 * returns its ref. Files outside volumes, e.g. in /root or installed packages, are in it.
 */
export async function commitContainer(
  docker: Dockerode,
  container: Dockerode.ContainerInspectInfo,
  envId: string,
  originalImage: string,
): Promise<string> {
  const existing = await listCommitted(docker, envId);
  const generation = (existing.at(-1)?.generation ?? 0) + 1;
  const original = await ignoreMissing(() => docker.getImage(originalImage).inspect());
  const config = commitConfig(container.Config, original?.Config, envId, originalImage);
  const repo = committedRepo(envId);
  // dockerode sends `_query` as the query string and `_body` as the JSON body.
  await docker.getContainer(container.Id).commit({
    _query: {
      container: container.Id,
      repo,
      tag: String(generation),
      pause: true,
      comment: `remotegpu: writable layer of ${envId} before a recreate`,
    },
    _body: config,
  } as object);
  return `${repo}:${generation}`;
}

/**
 * Removes committed images by ref, newest first; an image still in use or the parent of a kept
 * one is only untagged by Docker, and its layers go with the last image that needs them.
 */
export async function removeImages(docker: Dockerode, refs: readonly string[]): Promise<void> {
  for (const ref of [...refs].reverse()) {
    await ignoreMissing(() => docker.getImage(ref).remove());
  }
}
