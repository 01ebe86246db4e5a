import { isValidHostKey } from '../../common/ssh-host-keys.js';
import type { Environment } from '../cli.js';
import { isEnvId, type HostKey } from './known-hosts.js';

/** Where and as whom to log in to one environment over SSH, and the host keys to expect. */
export interface SshTarget {
  readonly envId: string;
  readonly name: string;
  readonly user: string;
  readonly host: string;
  readonly port: number;
  readonly keys: readonly HostKey[];
}

// What the API gives goes onto ssh's command line and into ~/.ssh/config: anything but a plain
// address or user name (a leading '-', spaces, newlines) would be read as options there.
const HOST = /^[A-Za-z0-9_.:[\]][A-Za-z0-9_.:[\]-]*$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** The environment's SSH address, or null when it has none (yet) or the API's values are unusable. */
export function sshTarget(env: Environment): SshTarget | null {
  const access = env.access_info;
  // The port goes onto a `Port` line too: a number in range, nothing else (typed, but not checked at run time).
  const port: unknown = env.ssh_port;
  if (!access || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535 || !isEnvId(env.env_id)) return null;
  if (!HOST.test(access.ssh_host) || !USER.test(access.ssh_user)) return null;
  const keys = access.ssh_host_keys.filter((k) => isValidHostKey(k.type, k.key));
  return { envId: env.env_id, name: env.name, user: access.ssh_user, host: access.ssh_host, port, keys };
}

/**
 * Why `remotegpu ssh` cannot log in to the environment now (null when it can): not running, no
 * address, or no host keys reported yet. `ref` is how the user named it, for the hint.
 */
export function notReady(env: Environment, ref: string): string | null {
  const arg = /^[A-Za-z0-9_.-]+$/.test(ref) ? ref : env.env_id;
  if (env.status === 'stopped' || env.status === 'error' || env.status === 'lost') {
    return `env ${ref} is ${env.status}: run \`remotegpu env start ${arg}\``;
  }
  if (env.status !== 'running') return `env ${ref} is ${env.status}, not running: wait for it (\`remotegpu env get ${arg}\`)`;
  const target = sshTarget(env);
  if (!target) return `env ${ref} has no SSH address yet: try again in a few seconds (\`remotegpu env get ${arg}\`)`;
  if (target.keys.length === 0) return `env ${ref} has not reported its SSH host keys yet (sshd is starting): try again in a few seconds`;
  return null;
}

/** How `remotegpu ssh` calls ssh beyond the target. */
export interface SshCall {
  /** The CLI's known_hosts file. */
  readonly knownHosts: string;
  /** Ask for a terminal (`-t`): stdin is one and no command is given. */
  readonly tty: boolean;
  /** The remote command (after `--`); a login shell when empty. */
  readonly command: readonly string[];
  /** `-o` options passed on; the CLI's own come first, and ssh keeps the first value it reads. */
  readonly options: readonly string[];
  readonly identity?: string;
}

/**
 * ssh's arguments: the host key is checked strictly against the CLI's known_hosts under the
 * environment's id (HostKeyAlias), never under the address (CheckHostIP=no): an address and
 * port another environment used before never matches or breaks the check.
 */
export function sshArgs(target: SshTarget, call: SshCall): string[] {
  return [
    ...(call.tty && call.command.length === 0 ? ['-t'] : []),
    '-o', `HostKeyAlias=${target.envId}`,
    '-o', `UserKnownHostsFile=${sshConfigPath(call.knownHosts)}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'CheckHostIP=no',
    ...call.options.flatMap((o) => ['-o', o]),
    ...(call.identity ? ['-i', call.identity] : []),
    '-p', String(target.port),
    `${target.user}@${target.host}`,
    ...call.command,
  ];
}

/**
 * A file path as ssh reads it in an option value or ~/.ssh/config: `%` doubled (ssh expands
 * %-tokens in these paths), and quoted when it has spaces or quotes.
 */
export function sshConfigPath(path: string): string {
  const escaped = path.replace(/%/g, '%%');
  return /[\s"'\\]/.test(escaped) ? `"${escaped.replace(/["\\]/g, (c) => `\\${c}`)}"` : escaped;
}
