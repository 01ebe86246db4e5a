import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { call } from '../client.js';
import { command } from '../command.js';
import { CliError, EXIT, type ExitCode } from '../errors.js';
import { interruptible } from '../interrupt.js';
import { renderJson } from '../output.js';
import { sseEvents } from '../sse.js';
import { parseCount } from '../units.js';

/** The exit code for the reason the platform gave in a follow's last event (`event: end`). */
const END_EXIT: Record<string, ExitCode> = {
  'environment deleted': EXIT.ok,
  'environment no longer visible': EXIT.notFound,
  'token revoked': EXIT.auth,
  'token expired': EXIT.auth,
  'user disabled': EXIT.auth,
};

export function registerEnvLogs(env: Command, cli: Cli): void {
  command(env, 'logs <env>', 'print an environment\'s logs: platform events and container output, oldest first')
    .option('-n, --lines <count>', 'how many of the last lines (1-10000)', '100')
    .option('-f, --follow', 'then print new lines as they come, until Ctrl-C (exit 130) or the environment is deleted')
    .addHelpText(
      'after',
      `
Lines are "[YYYY-MM-DD HH:MM:SS] text" (UTC). With -f the stream also ends when the platform ends
it: the environment deleted (exit 0), your token revoked or expired (exit 3), no longer yours (exit 4).

Examples:
  remotegpu env logs dev
  remotegpu env logs dev -n 20 -f
  remotegpu env logs dev -n 1000 | grep -i error`,
    )
    .action(async (ref: string, options: { lines: string; follow?: boolean }) => {
      const lines = parseCount(options.lines, '--lines', 1);
      const e = await cli.environment(ref);
      if (options.follow) return follow(cli, e.env_id, lines);
      const data = (await call(cli.client().GET('/api/v1/environments/{env_id}/logs', { params: { path: { env_id: e.env_id }, query: { lines } } }))).data;
      if (cli.json) return cli.out(renderJson(data));
      if (data.logs.length) await cli.out(data.logs.join('\n'));
    });
}

/**
 * Reads the route's event stream (`follow=true`) and prints each line as it arrives; each write
 * waits for stdout to take it, so a slow reader slows the stream instead of piling it up here.
 */
async function follow(cli: Cli, envId: string, lines: number): Promise<void> {
  const ended = await interruptible(async (signal) => {
    const request = cli.client({ streaming: true }).GET('/api/v1/environments/{env_id}/logs', {
      params: { path: { env_id: envId }, query: { lines, follow: true } },
      parseAs: 'stream',
      signal,
    });
    const body = await call(request);
    try {
      for await (const event of sseEvents(body)) {
        if (event.event === 'end') return event.data;
        await cli.out(cli.json ? JSON.stringify(event.data) : event.data);
      }
    } catch (err) {
      if (signal.aborted) throw err;
      throw new CliError(`the log stream from the controller broke off: ${(err as Error).message}`, EXIT.unavailable);
    }
    return undefined;
  });
  if (ended === undefined) return cli.note('The controller ended the log stream.');
  const code = END_EXIT[ended] ?? EXIT.error;
  if (code !== EXIT.ok) throw new CliError(`the log stream ended: ${ended}`, code);
  await cli.note(`The log stream ended: ${ended}.`);
}
