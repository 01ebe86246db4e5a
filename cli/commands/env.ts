import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { command } from '../command.js';
import { environmentColumns, environmentFields } from '../env-format.js';
import { CliError, EXIT } from '../errors.js';
import { parseCount } from '../units.js';
import { registerEnvActions } from './env-actions.js';
import { registerEnvCreate } from './env-create.js';
import { registerEnvLogs } from './env-logs.js';
import { registerEnvMounts } from './env-mounts.js';

/** The statuses `env ls --status` accepts (the API's). */
const STATUSES = ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'restarting', 'deleting', 'error', 'lost'] as const;
type Status = (typeof STATUSES)[number];

/** `remotegpu env ...`: create, list, show, stop/start/restart, remove, mount datasets, logs. */
export function registerEnv(program: Command, cli: Cli): void {
  const env = command(program, 'env', 'create and manage GPU environments (ENV is an id such as env-… or a name)').addHelpText(
    'after',
    `
Examples:
  remotegpu env create dev --image devbox:1 --gpu 2 --cpu 4 --memory 16Gi --storage 100Gi --wait
  remotegpu env ls
  remotegpu env logs dev -f
  remotegpu env rm dev --yes`,
  );
  registerEnvCreate(env, cli);
  registerEnvView(env, cli);
  registerEnvActions(env, cli);
  registerEnvMounts(env, cli);
  registerEnvLogs(env, cli);
}

function registerEnvView(env: Command, cli: Cli): void {
  command(env, 'ls', 'list your environments (and your workspaces\')')
    .option('--status <status>', `only this status: ${STATUSES.join(', ')}`)
    .option('--workspace <id>', 'only this workspace\'s environments')
    .addHelpText(
      'after',
      `
Every page is read. --json prints the environments as the API gives them (a JSON array).

Examples:
  remotegpu env ls
  remotegpu env ls --status running
  remotegpu env ls --workspace 3 --json | jq -r '.[].env_id'`,
    )
    .action(async (options: { status?: string; workspace?: string }) => {
      const status = options.status === undefined ? undefined : parseStatus(options.status);
      const workspace = options.workspace === undefined ? undefined : parseCount(options.workspace, '--workspace', 1);
      const all = await cli.allEnvironments({ ...(status ? { status } : {}), ...(workspace ? { workspace_id: workspace } : {}) });
      if (!cli.json && all.length === 0) return cli.note('No environments. Create one with `remotegpu env create NAME --image IMAGE --cpu N --memory SIZE`.');
      await cli.list(all, environmentColumns());
    });

  command(env, 'get <env>', 'show one environment: resources, status, SSH and Jupyter access')
    .addHelpText(
      'after',
      `
Examples:
  remotegpu env get dev
  remotegpu env get env-v796wfumep --json | jq -r .access_info.ssh`,
    )
    .action(async (ref: string) => cli.show(await cli.environment(ref), (e) => environmentFields(e)));
}

function parseStatus(text: string): Status {
  const found = STATUSES.find((s) => s === text.trim().toLowerCase());
  if (!found) throw new CliError(`--status ${JSON.stringify(text)} is not a status: use one of ${STATUSES.join(', ')}`, EXIT.usage);
  return found;
}
