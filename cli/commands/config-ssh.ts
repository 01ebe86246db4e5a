import { realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { command } from '../command.js';
import { readTextFile, writeFileAtomically } from '../files.js';
import { renderJson } from '../output.js';
import { knownHostsPath, writeKnownHosts, type HostKey } from '../ssh/known-hosts.js';
import { blockChanges, currentBlock, hostEntries, renderBlock, replaceBlock, HOST_SUFFIX } from '../ssh/ssh-config.js';
import { sshTarget, type SshTarget } from '../ssh/target.js';

interface ConfigSshOptions {
  readonly sshConfig?: string;
  readonly dryRun?: boolean;
}

/** `remotegpu config-ssh`: Host entries for every environment in ~/.ssh/config. */
export function registerConfigSsh(program: Command, cli: Cli): void {
  command(program, 'config-ssh', `write a Host entry per environment (NAME${HOST_SUFFIX}) to ~/.ssh/config`)
    .option('--ssh-config <path>', 'the ssh config file to write (default: ~/.ssh/config)')
    .option('--dry-run', 'print what would change and the new block; write nothing')
    .addHelpText(
      'after',
      `
Keeps one block per context in the file, between "# ----- BEGIN remotegpu (context NAME) -----"
and its END line, and rewrites it whole: entries of deleted environments go, nothing outside the
block changes. Each environment answers to <name>${HOST_SUFFIX} (lower case, other characters as
'-'; left out when two environments share it) and <env_id>${HOST_SUFFIX}, so ssh, scp, rsync and
VS Code Remote-SSH reach it by name. Host keys are written to the CLI's known_hosts and checked
strictly under HostKeyAlias=<env_id>. Run it again after creating or deleting environments.

Examples:
  remotegpu config-ssh
  ssh dev${HOST_SUFFIX} nvidia-smi
  rsync -a ./data/ dev${HOST_SUFFIX}:workspace/data/
  remotegpu config-ssh --dry-run
  remotegpu config-ssh --ssh-config ~/.ssh/remotegpu.conf`,
    )
    .action(async (options: ConfigSshOptions) => configSsh(cli, options));
}

async function configSsh(cli: Cli, options: ConfigSshOptions): Promise<void> {
  const context = cli.context().name;
  const environments = await cli.allEnvironments();
  const targets = environments.filter((e) => e.status !== 'deleting').map(sshTarget).filter((t): t is SshTarget => t !== null);
  const { entries, shared } = hostEntries(targets);
  const path = sshConfigFile(cli, options.sshConfig);
  const { text, mode } = readConfigFile(path);
  const knownHosts = knownHostsPath(cli.io.env);
  const block = renderBlock(context, entries, knownHosts);
  const changes = blockChanges(currentBlock(text, context), block);
  const next = replaceBlock(text, context, block);
  if (!options.dryRun) {
    writeKnownHosts(knownHosts, new Map<string, readonly HostKey[]>(targets.filter((t) => t.keys.length > 0).map((t) => [t.envId, t.keys])));
    if (next !== text) writeFileAtomically(path, next, mode);
  }
  if (cli.json) {
    const hosts = entries.map((e) => ({ env_id: e.target.envId, name: e.target.name, hosts: e.names }));
    return cli.out(renderJson({ path, context, dry_run: options.dryRun === true, ...changes, hosts }));
  }
  const lines = [...changes.added.map((h) => `+ Host ${h}`), ...changes.removed.map((h) => `- Host ${h}`), ...changes.changed.map((h) => `~ Host ${h}`)];
  if (lines.length) await cli.out(lines.join('\n'));
  for (const s of shared) await cli.note(`several environments are named like ${s}${HOST_SUFFIX}: reach them by id (<env_id>${HOST_SUFFIX}) instead`);
  const keyless = targets.filter((t) => t.keys.length === 0).map((t) => t.name);
  if (keyless.length) await cli.note(`no host keys yet for ${keyless.join(', ')} (not running yet?): run \`remotegpu config-ssh\` again once they run`);
  if (options.dryRun) return cli.out(`\n${block}`);
  const summary = `${changes.added.length} added, ${changes.removed.length} removed, ${changes.changed.length} changed`;
  await cli.note(`${entries.length} host${entries.length === 1 ? '' : 's'} for context ${context} in ${path} (${lines.length ? summary : 'no changes'}).`);
}

/** The file to write: --ssh-config or ~/.ssh/config, a symbolic link followed to the file it names. */
function sshConfigFile(cli: Cli, option: string | undefined): string {
  const path = option ?? join(cli.io.env.HOME || homedir(), '.ssh', 'config');
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The file's text and mode ('' and 0600 when it does not exist yet). */
function readConfigFile(path: string): { text: string; mode: number } {
  const text = readTextFile(path);
  if (text === undefined) return { text: '', mode: 0o600 };
  // Removed since it was read: it is written as a new file.
  return { text, mode: (statSync(path, { throwIfNoEntry: false })?.mode ?? 0o600) & 0o777 };
}
