import { spawn } from 'node:child_process';
import { accessSync, constants as fs, statSync } from 'node:fs';
import { constants } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Command } from 'commander';
import type { Cli, Environment } from '../cli.js';
import { command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { interruptible } from '../interrupt.js';
import { pause } from '../../common/pause.js';
import { knownHostsPath, writeKnownHosts } from '../ssh/known-hosts.js';
import { notReady, sshArgs, sshTarget } from '../ssh/target.js';

/** How long `remotegpu ssh` waits for a running environment's host keys before it gives up. */
const HOST_KEYS_WAIT_MS = 30_000;
/** How often it asks for them meanwhile. */
const HOST_KEYS_POLL_MS = 1000;

interface SshOptions {
  readonly sshOption?: string[];
  readonly identity?: string;
}

/** `remotegpu ssh ENV [-- command ...]`. */
export function registerSsh(program: Command, cli: Cli): void {
  command(program, 'ssh <env> [command...]', 'log in to an environment over SSH (the system ssh), or run a command there')
    .option('-o, --ssh-option <option>', 'an ssh option to pass on, e.g. -o ConnectTimeout=5 (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('-i, --identity <file>', 'the private key to log in with (ssh -i)')
    .addHelpText(
      'after',
      `
Runs the system OpenSSH client with the environment's user, address and port. Its host keys, as
the platform read them, are written to the CLI's known_hosts (next to its config) under the
environment's id, and ssh checks them strictly with HostKeyAlias=<env_id>: checking stays on,
and a port that another environment used before never trips it. ssh's exit code is passed on
(255: ssh itself failed). Put the remote command after \`--\`.

Examples:
  remotegpu ssh dev
  remotegpu ssh dev -- nvidia-smi
  remotegpu ssh env-0y8o4cz8p0 -- ls -l /dev/nvidia*
  remotegpu ssh dev -i ~/.ssh/work_ed25519 -o ConnectTimeout=5 -- python train.py`,
    )
    .action(async (ref: string, remote: string[], options: SshOptions) => ssh(cli, ref, remote, options));
}

async function ssh(cli: Cli, ref: string, remote: readonly string[], options: SshOptions): Promise<void> {
  const client = findSsh(cli.io.env);
  const env = await withHostKeys(cli, await cli.environment(ref));
  const why = notReady(env, ref);
  if (why) throw new CliError(why, EXIT.conflict);
  const target = sshTarget(env)!;
  const knownHosts = knownHostsPath(cli.io.env);
  writeKnownHosts(knownHosts, new Map([[target.envId, target.keys]]));
  const tty = cli.io.stdin.isTTY === true && cli.io.stdout.isTTY === true;
  const args = sshArgs(target, { knownHosts, tty, command: remote, options: options.sshOption ?? [], identity: options.identity });
  cli.exitCode = await runSsh(client, args, cli.io.env);
}

/**
 * The environment once it has reported its host keys: a running one reports them within seconds
 * of sshd starting (right after `env create --wait`), so that wait is the CLI's, not the user's.
 */
async function withHostKeys(cli: Cli, env: Environment): Promise<Environment> {
  const waiting = (e: Environment) => e.status === 'running' && (e.access_info?.ssh_host_keys.length ?? 0) === 0;
  if (!waiting(env)) return env;
  await cli.note(`Waiting for ${env.name}'s SSH host keys (sshd is starting)…`);
  const deadline = Date.now() + HOST_KEYS_WAIT_MS;
  // Ctrl-C here ends the wait with exit 130, as every other wait of the CLI does (before ssh runs).
  return interruptible(async (signal) => {
    let current = env;
    while (waiting(current) && Date.now() < deadline) {
      await pause(HOST_KEYS_POLL_MS, signal);
      signal.throwIfAborted();
      current = await cli.environment(env.env_id);
    }
    return current;
  });
}

/** The ssh client on PATH, looked for before anything else so that a missing one changes nothing. */
function findSsh(env: NodeJS.ProcessEnv): string {
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const file = join(dir, 'ssh');
    try {
      accessSync(file, fs.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  throw new CliError('the OpenSSH client `ssh` is not installed or not on PATH: install it (e.g. apt install openssh-client) and try again');
}

/**
 * Runs ssh on the terminal (stdio inherited) and resolves with its exit code (128 + the signal
 * when one ended it). Ctrl-C belongs to ssh meanwhile: the CLI ignores SIGINT and SIGQUIT (the
 * terminal sends them to both) and passes SIGTERM and SIGHUP on.
 */
function runSsh(client: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(client, args, { stdio: 'inherit', env });
    const ignore = () => {};
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    const handlers: [NodeJS.Signals, (s: NodeJS.Signals) => void][] = [['SIGINT', ignore], ['SIGQUIT', ignore], ['SIGTERM', forward], ['SIGHUP', forward]];
    for (const [signal, handler] of handlers) process.on(signal, handler);
    const done = () => handlers.forEach(([signal, handler]) => process.off(signal, handler));
    child.on('error', (err) => {
      done();
      reject(new CliError(`cannot run ${client}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
