import { Command } from 'commander';
import type { Cli } from '../cli.js';
import { command } from '../command.js';
import { bashScript, zshScript } from '../completion.js';
import { allHosts } from './admin-hosts.js';
import { allUsers } from './admin-users.js';

/** Seconds a completion may wait for the controller: a TAB must never hang the shell for long. */
const COMPLETE_TIMEOUT_MS = 3_000;

/** `completion bash|zsh`, and the hidden `__complete KIND` the scripts call for names. */
export function registerCompletion(program: Command, cli: Cli): void {
  const completion = command(program, 'completion', 'print a shell completion script (bash or zsh)').addHelpText(
    'after',
    `
Subcommands and options complete; environment, host and user names complete from the current
context's controller (nothing when it cannot be reached within ${COMPLETE_TIMEOUT_MS / 1000} s).

Examples:
  source <(remotegpu completion bash)                       # this bash shell
  echo 'source <(remotegpu completion bash)' >> ~/.bashrc   # every new bash shell
  remotegpu completion zsh > "\${fpath[1]}/_remotegpu"        # zsh (compinit), then a new shell`,
  );
  const root = () => rootOf(completion);
  command(completion, 'bash', 'print the bash completion script')
    .addHelpText('after', '\nExamples:\n  source <(remotegpu completion bash)')
    .action(() => cli.out(bashScript(root())));
  command(completion, 'zsh', 'print the zsh completion script (a #compdef file for $fpath)')
    .addHelpText('after', '\nExamples:\n  remotegpu completion zsh > "${fpath[1]}/_remotegpu"\n  source <(remotegpu completion zsh)   # after compinit')
    .action(() => cli.out(zshScript(root())));

  // Hidden: prints names one per line for the scripts; any failure prints nothing (exit 0).
  const names = new Command('__complete').argument('<kind>').exitOverride();
  names.action(async (kind: string) => {
    try {
      const list = (await namesOf(cli, kind)).filter(isCompletable);
      if (list.length > 0) await cli.out([...new Set(list)].join('\n'));
    } catch {
      // not signed in, unreachable, not an admin: no names to offer
    }
  });
  program.addCommand(names, { hidden: true });
}

/**
 * Whether a name from the controller may be offered to the shell. bash's `compgen -W` expands the
 * words it is given (`$(…)`, backquotes, `~`, variables), and names are chosen by other users (a
 * shared workspace's environments, every user for an admin) or by a host's agent (its hostname):
 * one like `$(curl …|sh)` would run on TAB. Letters, digits and `_.:@+=,%-` only; others are left out.
 */
export function isCompletable(name: string): boolean {
  return /^[\p{L}\p{N}_.:@+=,%-]+$/u.test(name);
}

function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

async function namesOf(cli: Cli, kind: string): Promise<string[]> {
  if (kind === 'context') return Object.keys(cli.config().contexts);
  cli.setRequestTimeout(COMPLETE_TIMEOUT_MS);
  if (kind === 'env') return (await cli.allEnvironments()).map((e) => e.name);
  if (kind === 'host') return (await allHosts(cli.client())).map((h) => h.hostname);
  if (kind === 'user') return (await allUsers(cli.client())).map((u) => u.name);
  return [];
}
