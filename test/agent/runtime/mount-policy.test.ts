import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBindSource, mountTargetProblem, type MountPolicy } from '../../../agent/runtime/mount-policy.js';

// The agent's own mount rules (agent/runtime/mount-policy.ts) on a real directory tree: a dataset
// root with datasets and symlinks, a directory outside it, and the agent's data directory.
const base = mkdtempSync(join(tmpdir(), 'rgpu-mount-policy-'));
const root = join(base, 'datasets');
const outside = join(base, 'outside');
const dataDir = join(base, 'agent-data');
for (const dir of [join(root, 'imagenet', 'train'), join(root, 'coco'), outside, join(dataDir, 'envs', 'env-1')]) mkdirSync(dir, { recursive: true });
writeFileSync(join(dataDir, 'envs', 'env-1', 'authorized_keys'), '');
writeFileSync(join(root, 'docker.sock'), '');
symlinkSync(join(root, 'coco'), join(root, 'coco-latest'));
symlinkSync(outside, join(root, 'escape'));
symlinkSync('/etc', join(root, 'etc-link'));
symlinkSync(dataDir, join(root, 'data-link'));
symlinkSync('/', join(root, 'host-root'));

const policy: MountPolicy = { datasetRoots: [root], dataDir };

/** The error checkBindSource throws for `path`, or undefined when it accepts it. */
function check(path: string, p: MountPolicy = policy): { code: string; message: string } | undefined {
  try {
    checkBindSource(path, p);
    return undefined;
  } catch (err) {
    return err as { code: string; message: string };
  }
}

afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('checkBindSource: inside a dataset root', () => {
  it.each([
    ['a dataset directory', join(root, 'imagenet')],
    ['a directory deeper down', join(root, 'imagenet', 'train')],
    ['the root itself', root],
    ['a trailing slash', `${join(root, 'imagenet')}/`],
    ['a .. that stays inside', `${root}/coco/../imagenet`],
    ['a .. out of the root and back in', `${root}/../${basename(root)}/imagenet`],
    ['a symlink to another directory of the root', join(root, 'coco-latest')],
  ])('accepts %s', (_what, path) => {
    expect(check(path)).toBeUndefined();
  });

  it('accepts a dataset through a root that is itself a symlink', () => {
    const linkedRoot = join(base, 'datasets-link');
    symlinkSync(root, linkedRoot);
    expect(check(join(linkedRoot, 'imagenet'), { ...policy, datasetRoots: [linkedRoot] })).toBeUndefined();
    expect(check(join(root, 'imagenet'), { ...policy, datasetRoots: [linkedRoot] })).toBeUndefined();
  });
});

describe('checkBindSource: refused whatever the roots say (permission_denied)', () => {
  it.each([
    ['/', '/', 'the agent never mounts /'],
    ['/etc', '/etc', 'the agent never mounts /etc'],
    ['/etc with a trailing slash', '/etc/', 'the agent never mounts /etc'],
    ['/etc through ..', '/etc/../etc', 'the agent never mounts /etc'],
    ['/etc through a root and ..', `${root}/../../../../../../../etc`, 'the agent never mounts /etc'],
    ['a file in /etc', '/etc/shadow', 'it is inside /etc, which the agent never mounts'],
    ['the Docker socket', '/var/run/docker.sock', 'the agent never mounts the Docker socket /var/run/docker.sock'],
    ['the Docker socket under /run', '/run/docker.sock', 'the Docker socket'],
    ['/run, which holds the Docker socket', '/run', 'it contains the Docker socket'],
    ['/proc', '/proc', 'the agent never mounts /proc'],
    ['/proc/1/root', '/proc/1/root', 'inside /proc'],
    ['/sys', '/sys', 'the agent never mounts /sys'],
    ['/dev', '/dev', 'the agent never mounts /dev'],
    ['/boot', '/boot', 'the agent never mounts /boot'],
    ['/root', '/root', 'the agent never mounts /root'],
    ['/var/lib/docker', '/var/lib/docker', 'the agent never mounts /var/lib/docker'],
    ['/var, which holds /var/lib/docker', '/var', 'it contains /var/lib/docker'],
    ['the data directory', dataDir, `the agent never mounts its own data directory ${dataDir}`],
    ['the data directory with a trailing slash', `${dataDir}/`, 'its own data directory'],
    ['a file in the data directory', join(dataDir, 'envs', 'env-1', 'authorized_keys'), 'inside its own data directory'],
    ['a directory holding the data directory', base, `it contains its own data directory ${dataDir}`],
    ['a symlink in a root to /etc', join(root, 'etc-link'), `(resolves to /etc) is refused: the agent never mounts /etc`],
    ['a symlink in a root to the data directory', join(root, 'data-link'), `(resolves to ${dataDir}) is refused`],
    ['a symlink in a root to /', join(root, 'host-root'), '(resolves to /) is refused: the agent never mounts /'],
  ])('refuses %s', (_what, path, rule) => {
    const err = check(path);
    expect(err).toMatchObject({ name: 'RuntimeError', code: 'permission_denied' });
    expect(err!.message).toContain(`mount source ${path} `);
    expect(err!.message).toContain(rule);
  });

  it('names the path and the rule in the message', () => {
    expect(check('/etc')?.message).toBe('mount source /etc is refused: the agent never mounts /etc');
  });

  it('refuses them even when a root is misconfigured to hold them', () => {
    const wide: MountPolicy = { datasetRoots: ['/', '/etc', base], dataDir };
    expect(check('/etc/ssl', wide)).toMatchObject({ code: 'permission_denied', message: expect.stringContaining('inside /etc') });
    expect(check('/var/run/docker.sock', wide)).toMatchObject({ code: 'permission_denied' });
    expect(check(join(dataDir, 'envs'), wide)).toMatchObject({ code: 'permission_denied', message: expect.stringContaining('its own data directory') });
    expect(check(outside, wide)).toBeUndefined();
  });

  it('refuses the DOCKER_HOST socket, also inside a root', () => {
    const sock = join(root, 'docker.sock');
    expect(check(sock)).toBeUndefined();
    expect(check(sock, { ...policy, dockerSocket: sock })).toMatchObject({
      code: 'permission_denied',
      message: `mount source ${sock} is refused: the agent never mounts the Docker socket ${sock}`,
    });
  });
});

describe('checkBindSource: the agent\'s run directory (permission_denied)', () => {
  // The run directory holds every environment's volume and dataset views: a dataset in it would
  // hand one environment another's data. Here it lies inside a dataset root, where only the run
  // directory rule refuses it.
  const runDir = join(root, 'run');
  mkdirSync(join(runDir, 'env-2', 'volume', 'data'), { recursive: true });
  mkdirSync(join(runDir, 'env-2', 'datasets', 'ds-1-ro'), { recursive: true });
  symlinkSync(join(runDir, 'env-2'), join(root, 'run-link'));
  const withRun: MountPolicy = { ...policy, runDir };

  it.each([
    ['the run directory', runDir, `the agent never mounts its own run directory ${runDir}`],
    ['the run directory with a trailing slash', `${runDir}/`, 'its own run directory'],
    ['another environment\'s volume', join(runDir, 'env-2', 'volume', 'data'), `it is inside its own run directory ${runDir}, which the agent never mounts`],
    ['another environment\'s dataset view', join(runDir, 'env-2', 'datasets', 'ds-1-ro'), 'inside its own run directory'],
    ['a directory holding the run directory', root, `it contains its own run directory ${runDir}`],
    ['a symlink in a root into the run directory', join(root, 'run-link'), `(resolves to ${join(runDir, 'env-2')}) is refused: it is inside its own run directory`],
  ])('refuses %s', (_what, path, rule) => {
    const err = check(path, withRun);
    expect(err).toMatchObject({ name: 'RuntimeError', code: 'permission_denied' });
    expect(err!.message).toContain(rule);
  });

  it('refuses it through a symlink to the run directory itself', () => {
    const linked = join(base, 'run-dir-link');
    symlinkSync(runDir, linked);
    expect(check(join(runDir, 'env-2'), { ...policy, runDir: linked })).toMatchObject({ code: 'permission_denied', message: expect.stringContaining('its own run directory') });
  });

  it('still accepts the root\'s other datasets', () => {
    expect(check(join(root, 'imagenet'), withRun)).toBeUndefined();
    expect(check(join(root, 'coco-latest'), withRun)).toBeUndefined();
  });
});

describe('checkBindSource: outside the dataset roots (permission_denied)', () => {
  it('refuses a directory outside every root, naming the roots', () => {
    expect(check(outside)).toMatchObject({ code: 'permission_denied', message: `mount source ${outside} is outside REMOTEGPU_DATASET_ROOTS (${root})` });
  });

  it('refuses a symlink in a root that leads out of it', () => {
    const err = check(join(root, 'escape'));
    expect(err).toMatchObject({ code: 'permission_denied' });
    expect(err!.message).toBe(`mount source ${join(root, 'escape')} (resolves to ${outside}) is outside REMOTEGPU_DATASET_ROOTS (${root})`);
  });

  it('refuses every dataset when no root is set (the default)', () => {
    const err = check(join(root, 'imagenet'), { datasetRoots: [], dataDir });
    expect(err).toMatchObject({ code: 'permission_denied' });
    expect(err!.message).toContain('is outside REMOTEGPU_DATASET_ROOTS (none set');
  });

  it('refuses a sibling whose name only starts like a root', () => {
    mkdirSync(`${root}-other`, { recursive: true });
    expect(check(`${root}-other`)).toMatchObject({ code: 'permission_denied', message: expect.stringContaining('outside REMOTEGPU_DATASET_ROOTS') });
  });
});

describe('checkBindSource: malformed or missing (invalid_spec)', () => {
  it.each([
    ['a path that does not exist', join(root, 'missing'), 'does not exist on this host'],
    ['a path under a file', join(root, 'docker.sock', 'x'), 'does not exist on this host'],
    ['a relative path', 'datasets/imagenet', 'must be an absolute path'],
    ['a NUL byte', `${root}/a\0b`, 'must be an absolute path without control characters'],
  ])('refuses %s', (_what, path, problem) => {
    const err = check(path);
    expect(err).toMatchObject({ name: 'RuntimeError', code: 'invalid_spec' });
    expect(err!.message).toContain(problem);
  });
});

describe('mountTargetProblem', () => {
  it.each(['/data/imagenet', '/root/workspace', '/devices', '/process'])('accepts %s', (target) => {
    expect(mountTargetProblem(target)).toBeUndefined();
  });

  it.each([
    ['data', 'absolute, normalized'],
    ['/data/', 'absolute, normalized'],
    ['/data/../etc', 'absolute, normalized'],
    ['/', 'over /'],
    ['/proc', 'under /proc'],
    ['/sys/fs/cgroup', 'under /sys'],
    ['/dev', 'under /dev'],
    ['/dev/shm', 'under /dev'],
  ])('refuses %s', (target, problem) => {
    expect(mountTargetProblem(target)).toContain(problem);
  });
});
