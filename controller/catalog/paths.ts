import { posix } from 'node:path';
import { fieldError, type AppError } from '../../common/errors.js';

// The two lists of forbidden paths: where a dataset may not come from on a host, and where it may
// not be mounted inside a container.

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

/** Container paths a dataset may never be mounted at or under. */
const FORBIDDEN_MOUNT_ROOTS = ['/proc', '/sys', '/dev', '/etc', '/usr', '/bin', '/sbin', '/lib', '/lib64', '/root/.ssh', '/boot', '/run', '/var/run'];

/** Checks and normalizes a dataset mount path inside a container; throws invalid_argument naming mount_path. */
export function validateMountPath(raw: string): string {
  if (!raw.startsWith('/')) throw invalidMount('mount_path must be an absolute path such as /data/imagenet');
  if (raw.split('/').some((seg) => seg === '..' || seg === '.')) throw invalidMount('mount_path must not contain "." or ".." segments');
  if (/[\0\n\r:,]/.test(raw)) throw invalidMount('mount_path contains a character that is not allowed (NUL, newline, ":" or ",")');
  const normalized = posix.normalize(raw).replace(/\/+$/, '') || '/';
  if (normalized === '/') throw invalidMount('mount_path must not be /');
  if (normalized.length > 255) throw invalidMount('mount_path is longer than 255 characters');
  for (const root of FORBIDDEN_MOUNT_ROOTS) {
    if (isUnder(normalized, root)) throw invalidMount(`mount_path must not be ${root} or under it`);
  }
  return normalized;
}

/** The invalid_argument error for a bad mount path (its message names the problem as is). */
export function invalidMount(message: string): AppError {
  return fieldError('mount_path', message, message);
}

/** True when `child` is `parent` or a path under it. */
export function isUnder(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
}
