import type { Command } from 'commander';
import type { Cli, Environment } from '../cli.js';
import { call, callNoContent } from '../client.js';
import { command } from '../command.js';
import { confirm } from '../confirm.js';
import { renderJson } from '../output.js';
import { parseBytes, parseCount, parseDuration } from '../units.js';
import { waitFor, type WaitGoal } from '../wait.js';

interface WaitOptions {
  wait?: boolean;
  timeout: string;
}

const TIMEOUT_HELP = 'how long --wait waits: 90s, 10m, 1h (then exit 7)';

/** env stop, start, restart, rm. */
export function registerEnvActions(env: Command, cli: Cli): void {
  command(env, 'stop <env>', 'stop an environment: its GPUs, CPU and memory are freed, its data and ports kept')
    .option('--wait', 'wait until it is stopped')
    .option('--timeout <duration>', TIMEOUT_HELP, '5m')
    .addHelpText('after', '\nExamples:\n  remotegpu env stop dev\n  remotegpu env stop env-v796wfumep --wait')
    .action(async (ref: string, options: WaitOptions) => {
      const timeoutMs = parseDuration(options.timeout, '--timeout');
      const e = await cli.environment(ref);
      await call(cli.client().POST('/api/v1/environments/{env_id}/stop', { params: { path: { env_id: e.env_id } } }));
      await after(cli, e, 'stop requested', options.wait ? { goal: 'stopped', timeoutMs } : undefined);
    });

  command(env, 'start <env>', 'start a stopped environment (same host, ports and data)')
    .option('--gpu <count>', 'GPUs for this run (default: as before; 0 starts it without GPUs, to reach the data)')
    .option('--storage <size>', 'grow the data volume to this size first (it never shrinks): 200Gi, 1Ti')
    .option('--wait', 'wait until it is running')
    .option('--timeout <duration>', TIMEOUT_HELP, '10m')
    .addHelpText('after', '\nExamples:\n  remotegpu env start dev --wait\n  remotegpu env start dev --gpu 0        # no GPUs free: reach the data anyway\n  remotegpu env start dev --storage 200Gi --wait')
    .action(async (ref: string, options: WaitOptions & { gpu?: string; storage?: string }) => {
      const timeoutMs = parseDuration(options.timeout, '--timeout');
      const body = {
        ...(options.gpu !== undefined ? { gpu: parseCount(options.gpu, '--gpu', 0) } : {}),
        ...(options.storage !== undefined ? { storage: parseBytes(options.storage, '--storage') } : {}),
      };
      const e = await cli.environment(ref);
      await call(cli.client().POST('/api/v1/environments/{env_id}/start', { params: { path: { env_id: e.env_id } }, ...(Object.keys(body).length ? { body } : {}) }));
      await after(cli, e, 'start requested', options.wait ? { goal: 'running', timeoutMs } : undefined);
    });

  command(env, 'restart <env>', 'restart an environment\'s container (same GPUs and ports)')
    .option('--wait', 'wait until it is running again')
    .option('--timeout <duration>', TIMEOUT_HELP, '10m')
    .addHelpText('after', '\nExamples:\n  remotegpu env restart dev --wait')
    .action(async (ref: string, options: WaitOptions) => {
      const timeoutMs = parseDuration(options.timeout, '--timeout');
      const e = await cli.environment(ref);
      await call(cli.client().POST('/api/v1/environments/{env_id}/restart', { params: { path: { env_id: e.env_id } } }));
      await after(cli, e, 'restart requested', options.wait ? { goal: 'running', timeoutMs } : undefined);
    });

  registerRm(env, cli);
}

function registerRm(env: Command, cli: Cli): void {
  command(env, 'rm <env>', 'delete an environment and its data (asks first on a terminal)')
    .option('-y, --yes', 'do not ask (needed without a terminal)')
    .option('--wait', 'wait until the API no longer has it')
    .option('--timeout <duration>', TIMEOUT_HELP, '5m')
    .addHelpText(
      'after',
      `
The container and its data volume are removed by its host's agent in the background.

Examples:
  remotegpu env rm dev
  remotegpu env rm env-v796wfumep --yes --wait`,
    )
    .action(async (ref: string, options: WaitOptions & { yes?: boolean }) => {
      const timeoutMs = parseDuration(options.timeout, '--timeout');
      const e = await cli.environment(ref);
      if (!options.yes && !(await confirm(cli.io, `Delete ${e.name} (${e.env_id}) and its data?`, '--yes'))) {
        return cli.note('Nothing deleted.');
      }
      await callNoContent(cli.client().DELETE('/api/v1/environments/{env_id}', { params: { path: { env_id: e.env_id } } }));
      if (options.wait) await waitFor(cli, { ...e, status: 'deleting', status_reason: '' }, 'gone', timeoutMs);
      await cli.note(`Deleted ${e.name} (${e.env_id}).`);
    });
}

/**
 * After an accepted action: a note, then with --wait the wait; --json prints the environment as
 * it is then (the API's data), so a script sees the status it ended in.
 */
async function after(cli: Cli, e: Environment, what: string, wait: { goal: WaitGoal; timeoutMs: number } | undefined): Promise<void> {
  if (!cli.json) await cli.note(`${e.name} (${e.env_id}): ${what}.`);
  let now: Environment | undefined;
  if (wait) now = await waitFor(cli, (await cli.environment(e.env_id)), wait.goal, wait.timeoutMs);
  else if (cli.json) now = await cli.environment(e.env_id);
  if (cli.json && now) await cli.out(renderJson(now));
}
