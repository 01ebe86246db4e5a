import { posix } from 'node:path';

/** Host directories that hold the system, never data: a dataset there would hand a container the host. */
const SYSTEM_DIRS = ['/proc', '/sys', '/dev', '/etc', '/boot', '/run', '/var/run', '/var/lib/docker'];

/**
 * Why `path` is not an absolute, normalized path, or undefined when it is one. Normalized means
 * what `path.posix.normalize` gives back, without a trailing slash: no `//`, `.` or `..` segments.
 */
export function absolutePathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return `must be an absolute path starting with "/", got "${path}"`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return 'must not contain control characters';
  if (path.includes(':')) return 'must not contain ":"';
  const normalized = posix.normalize(path).replace(/(.)\/+$/, '$1');
  if (normalized !== path) return `must be normalized (no "//", "." or ".." segments and no trailing "/"): did you mean "${normalized}"?`;
  return undefined;
}

/** Why `path` cannot be a directory inside containers (an image's data path), or undefined. */
export function containerDirProblem(path: string): string | undefined {
  return absolutePathProblem(path) ?? (path === '/' ? 'must not be "/"' : undefined);
}

/** Why `path` cannot be a dataset's directory on the GPU hosts, or undefined. */
export function datasetHostPathProblem(path: string): string | undefined {
  const problem = absolutePathProblem(path);
  if (problem) return problem;
  if (path === '/') return 'must not be "/": name the directory that holds the data';
  const system = SYSTEM_DIRS.find((dir) => path === dir || path.startsWith(`${dir}/`));
  if (system) return `must not be ${system} or under it: system directories are not datasets`;
  return undefined;
}
