import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { RuntimeError } from './errors.js';
import type { EnvSpec } from './types.js';

// The agent's own rules on what an environment may mount, checked on every apply whatever the
// controller says: a compromised or buggy controller cannot turn the agent into a root shell on
// the host. The controller has its own, earlier checks (controller/catalog/paths.ts); these do not
// rely on them.

/** Host directories the agent never mounts, nor anything in them or containing them. */
const SYSTEM_DIRS = ['/proc', '/sys', '/dev', '/etc', '/boot', '/root', '/var/lib/docker'];
/** Where Docker's socket usually is; DOCKER_HOST's socket is added to these. */
const DOCKER_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];
/** Container paths nothing may be mounted at or under. */
const FORBIDDEN_TARGETS = ['/proc', '/sys', '/dev'];

/** What the agent allows to be bind-mounted into an environment. */
export interface MountPolicy {
  /**
   * Host directories datasets may be bind-mounted from (REMOTEGPU_DATASET_ROOTS): a dataset's host
   * path must be one of them or inside one, after resolving symlinks. Empty: no dataset mounts.
   */
  readonly datasetRoots: readonly string[];
  /**
   * The agent's data directory: never mounted, nor anything in it or containing it. The agent
   * mounts its own per-environment keys directories from it; those are not the spec's.
   */
  readonly dataDir: string;
  /** The agent's run directory (mount points of volumes and dataset views): never mounted either. */
  readonly runDir?: string;
  /** The Docker engine's unix socket (DOCKER_HOST), never mounted; the usual paths are refused anyway. */
  readonly dockerSocket?: string;
}

/** A host path the agent never mounts, and why. */
interface Forbidden {
  readonly path: string;
  readonly what: string;
  /** True when paths inside it are refused too (a directory). */
  readonly tree: boolean;
}

/**
 * Checks every host path `spec` bind-mounts (its datasets) against `policy`: it must exist, and,
 * as given, after path.resolve and after resolving symlinks, be neither `/`, a Docker socket, a
 * system directory (SYSTEM_DIRS) nor the agent's data directory (nor in or around one of them), and
 * lie inside a dataset root. Throws RuntimeError 'permission_denied' naming the path and the rule,
 * or 'invalid_spec' for a path that is malformed or does not exist. Reads the file system (realpath).
 */
export function checkSpecMounts(spec: EnvSpec, policy: MountPolicy): void {
  const forbidden = forbiddenPaths(policy);
  for (const m of spec.mounts) {
    checkBindSource(m.hostPath, policy, forbidden, `environment ${spec.envId}: dataset ${m.datasetId}: `);
  }
}

/** Checks one host path a bind mount would use; see checkSpecMounts. `prefix` starts each message. */
export function checkBindSource(hostPath: string, policy: MountPolicy, forbidden = forbiddenPaths(policy), prefix = ''): void {
  const refuse = (why: string): never => {
    throw new RuntimeError('permission_denied', `${prefix}mount source ${hostPath} ${why}`);
  };
  const invalid = (why: string): never => {
    throw new RuntimeError('invalid_spec', `${prefix}mount source ${JSON.stringify(hostPath)} ${why}`);
  };
  // eslint-disable-next-line no-control-regex
  if (!posix.isAbsolute(hostPath) || /[\x00-\x1f\x7f]/.test(hostPath)) invalid('must be an absolute path without control characters');
  const lexical = posix.resolve(hostPath);
  const shown = (p: string) => (p === hostPath ? '' : `(resolves to ${p}) `);
  const lexicalRule = forbiddenRule(lexical, forbidden);
  if (lexicalRule) refuse(`${shown(lexical)}is refused: ${lexicalRule}`);

  const real = realpathOrProblem(lexical);
  if (typeof real !== 'string') return invalid(real.problem);
  const realRule = forbiddenRule(real, forbidden);
  if (realRule) refuse(`${shown(real)}is refused: ${realRule}`);

  const roots = policy.datasetRoots.map((r) => posix.resolve(r));
  const inRoot = roots.some((root) => isInside(real, root) || isInside(real, tryRealpath(root) ?? root));
  if (!inRoot) {
    const listed = roots.length > 0 ? roots.join(', ') : 'none set: the agent mounts no datasets until its operator lists their directories';
    refuse(`${shown(real)}is outside REMOTEGPU_DATASET_ROOTS (${listed})`);
  }
}

/**
 * Why a mount target inside the container is refused, or undefined: it must be absolute,
 * normalized, not `/`, and not at or under /proc, /sys or /dev. Pure.
 */
export function mountTargetProblem(target: string): string | undefined {
  const normalized = posix.isAbsolute(target) && posix.normalize(target) === target && (target === '/' || !target.endsWith('/'));
  if (!normalized) return `${JSON.stringify(target)} must be an absolute, normalized path`;
  if (target === '/') return 'nothing may be mounted over / in the container';
  const under = FORBIDDEN_TARGETS.find((dir) => isInside(target, dir));
  return under ? `nothing may be mounted at or under ${under} in the container` : undefined;
}

/**
 * Why `path` (absolute and resolved) is a host path the agent never mounts, or undefined. Only
 * compares strings: callers resolve symlinks first when the path is to exist. Pure.
 */
export function forbiddenRule(path: string, forbidden: readonly Forbidden[]): string | undefined {
  if (path === '/') return 'the agent never mounts /';
  for (const f of forbidden) {
    if (path === f.path) return `the agent never mounts ${f.what}`;
    if (f.tree && isInside(path, f.path)) return `it is inside ${f.what}, which the agent never mounts`;
    if (isInside(f.path, path)) return `it contains ${f.what}, which the agent never mounts`;
  }
  return undefined;
}

/**
 * Every host path the agent never mounts under `policy`, each also as its symlinks resolve when
 * it exists (e.g. /var/run/docker.sock as /run/docker.sock). Reads the file system (realpath).
 */
export function forbiddenPaths(policy: Pick<MountPolicy, 'dataDir' | 'dockerSocket' | 'runDir'>): Forbidden[] {
  const dataDir = posix.resolve(policy.dataDir);
  const sockets = [...DOCKER_SOCKETS, ...(policy.dockerSocket ? [posix.resolve(policy.dockerSocket)] : [])];
  const base: Forbidden[] = [
    ...SYSTEM_DIRS.map((dir) => ({ path: dir, what: dir, tree: true })),
    ...sockets.map((socket) => ({ path: socket, what: `the Docker socket ${socket}`, tree: false })),
    { path: dataDir, what: `its own data directory ${dataDir}`, tree: true },
    ...(policy.runDir ? [{ path: posix.resolve(policy.runDir), what: `its own run directory ${posix.resolve(policy.runDir)}`, tree: true }] : []),
  ];
  const resolved = base.flatMap((f) => {
    const real = tryRealpath(f.path);
    return real && real !== f.path && real !== '/' ? [{ ...f, path: real }] : [];
  });
  return [...base, ...resolved];
}

/** True when `path` is `dir` or inside it (both absolute and normalized). */
export function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

function realpathOrProblem(path: string): string | { problem: string } {
  try {
    return realpathSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: 'does not exist on this host' };
    if (code === 'ENOTDIR') return { problem: 'does not exist on this host (a part of it is not a directory)' };
    return { problem: `cannot be resolved on this host (${code ?? String(err)})` };
  }
}

function tryRealpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
