import { join } from 'node:path';
import { isValidHostKey } from '../../common/ssh-host-keys.js';
import { configDir } from '../config.js';
import { readTextFile, writeFileAtomically } from '../files.js';

/** One SSH host public key of an environment, as the API gives it (access_info.ssh_host_keys). */
export interface HostKey {
  readonly type: string;
  readonly key: string;
}

/**
 * The known_hosts file the CLI keeps next to its config. Its entries are keyed by environment id
 * (ssh runs with `HostKeyAlias=<env_id>`), not by address: ports are handed to new environments,
 * and an entry per address would either break (host key changed) or be checked off.
 */
export function knownHostsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'known_hosts');
}

const ENV_ID = /^env-[A-Za-z0-9_-]+$/;

/** Whether `id` is an environment id as the API writes them (safe as a known_hosts and ssh config name). */
export function isEnvId(id: string): boolean {
  return ENV_ID.test(id);
}

/**
 * The known_hosts lines for one environment. Only valid host keys (isValidHostKey: a known type,
 * a well-formed blob of that type) are written; anything else, including what could carry more
 * than a key (spaces, newlines, a marker like `@cert-authority`), is left out: the file is ours to
 * keep sound.
 */
export function knownHostsLines(envId: string, keys: readonly HostKey[]): string[] {
  if (!isEnvId(envId)) return [];
  return keys.filter((k) => isValidHostKey(k.type, k.key)).map((k) => `${envId} ${k.type} ${k.key}`);
}

/**
 * `text` (a known_hosts file) with the lines of every environment in `replace` replaced by its
 * new keys: other lines stay as they were and in their order; the new lines follow them.
 */
export function mergeKnownHosts(text: string, replace: ReadonlyMap<string, readonly HostKey[]>): string {
  const kept = text.split('\n').filter((line) => line.trim() !== '' && !replace.has(line.split(/\s+/, 1)[0]!));
  const added = [...replace].flatMap(([envId, keys]) => knownHostsLines(envId, keys));
  const lines = [...kept, ...added];
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * Replaces the entries of the environments in `replace` in the known_hosts file at `path`
 * (created 0600 in a 0700 directory), written aside and renamed so ssh never reads half a file.
 */
export function writeKnownHosts(path: string, replace: ReadonlyMap<string, readonly HostKey[]>): void {
  writeFileAtomically(path, mergeKnownHosts(readTextFile(path) ?? '', replace), 0o600);
}
