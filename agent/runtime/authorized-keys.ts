import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { authorizedKeysDir, authorizedKeysPath, legacyAuthorizedKeysPath } from './docker-names.js';

/** The file's content for `keys`: one per line. */
export function authorizedKeysContent(keys: readonly string[]): string {
  const lines = keys.map((k) => k.trim()).filter(Boolean);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * Writes `<stateDir>/envs/<envId>/ssh/authorized_keys` (directories 0700, file 0600) when its
 * content differs, atomically: a new file written and synced beside it, then renamed over it. The
 * container bind-mounts the directory, and its /root/.ssh/authorized_keys is a link into it, so a
 * changed key list reaches a running container without a recreate, and sshd reading it at that
 * moment sees the old list or the new one, never a truncated file. A container created before
 * this layout bind-mounts `<stateDir>/envs/<envId>/authorized_keys` itself: while that file
 * exists it is rewritten in place too (not atomic; such a container moves to the directory at its
 * next recreate). Returns true when the environment's state directory did not exist before.
 */
export async function writeAuthorizedKeys(stateDir: string, envId: string, keys: readonly string[]): Promise<boolean> {
  const dir = authorizedKeysDir(stateDir, envId);
  const created = (await mkdir(dirname(dir), { recursive: true, mode: 0o700 })) !== undefined;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const content = authorizedKeysContent(keys);
  await replaceFile(authorizedKeysPath(stateDir, envId), content);
  const legacy = legacyAuthorizedKeysPath(stateDir, envId);
  const legacyContent = await readFile(legacy, 'utf8').catch(() => undefined);
  if (legacyContent !== undefined && legacyContent !== content) await writeFile(legacy, content, { mode: 0o600 });
  return created;
}

/** Whether an SSH key is one line (a line break would let it add more keys, or options). */
export function isOneLine(key: string): boolean {
  return !/[\r\n]/.test(key);
}

/**
 * Rewrites the authorized_keys of an environment applied before (its state directory exists, so
 * its container may run) to `keys`, as `writeAuthorizedKeys`; for one never applied it creates
 * nothing. Writes nothing when a key is not one line (the spec's validation refuses it). Returns
 * true when it wrote. The runtime calls it first in an apply, so that a deleted key leaves a
 * running container even when the rest of the spec is refused.
 */
export async function refreshAuthorizedKeys(stateDir: string, envId: string, keys: readonly string[]): Promise<boolean> {
  if (!keys.every(isOneLine)) return false;
  const applied = await stat(join(stateDir, 'envs', envId)).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!applied) return false;
  await writeAuthorizedKeys(stateDir, envId, keys);
  return true;
}

/** Replaces `file` with `content` (mode 0600) by write, fsync and rename, unless it holds that already. */
async function replaceFile(file: string, content: string): Promise<void> {
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === content) {
    await chmod(file, 0o600);
    return;
  }
  const temp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Removes the legacy single-file authorized_keys once the environment's container is a new one
 * (it mounts the keys directory).
 */
export async function dropLegacyAuthorizedKeys(stateDir: string, envId: string): Promise<void> {
  await rm(legacyAuthorizedKeysPath(stateDir, envId), { force: true });
}

/** Deletes the environment's state directory; true when it existed. */
export async function removeEnvState(stateDir: string, envId: string): Promise<boolean> {
  const dir = join(stateDir, 'envs', envId);
  const existed = await stat(dir).then(
    () => true,
    () => false,
  );
  await rm(dir, { recursive: true, force: true });
  return existed;
}

/**
 * Records what the controller last asked of the environment ('running' or 'stopped') in its state
 * directory, for restore() after a host reboot: only containers meant to run are started again.
 */
export async function writeDesiredState(stateDir: string, envId: string, state: 'running' | 'stopped'): Promise<void> {
  const file = join(stateDir, 'envs', envId, 'desired-state');
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, state);
}

/** The recorded desired state, undefined when none was recorded. */
export async function readDesiredState(stateDir: string, envId: string): Promise<'running' | 'stopped' | undefined> {
  const text = (await readFile(join(stateDir, 'envs', envId, 'desired-state'), 'utf8').catch(() => '')).trim();
  return text === 'running' || text === 'stopped' ? text : undefined;
}
