import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { authorizedKeysPath } from './docker-names.js';

/** The file's content for `keys`: one per line. */
export function authorizedKeysContent(keys: readonly string[]): string {
  const lines = keys.map((k) => k.trim()).filter(Boolean);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * Writes `<stateDir>/envs/<envId>/authorized_keys` (directory 0700, file 0600) when its content
 * differs. The file is rewritten in place, never replaced, because the container bind-mounts this
 * inode: a changed key list reaches a running container without a recreate. Returns true when
 * the environment's state directory did not exist before.
 */
export async function writeAuthorizedKeys(stateDir: string, envId: string, keys: readonly string[]): Promise<boolean> {
  const file = authorizedKeysPath(stateDir, envId);
  const created = (await mkdir(dirname(file), { recursive: true, mode: 0o700 })) !== undefined;
  const content = authorizedKeysContent(keys);
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current !== content) await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600);
  return created;
}

/** Deletes the environment's state directory; true when it existed. */
export async function removeEnvState(stateDir: string, envId: string): Promise<boolean> {
  const dir = join(stateDir, 'envs', envId);
  const existed = await readFile(authorizedKeysPath(stateDir, envId)).then(
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
