import type { Cli, Environment } from './cli.js';
import { call } from './client.js';
import { CliError, EXIT } from './errors.js';
import { pause } from '../common/pause.js';
import { interruptible } from './interrupt.js';
import { write } from './output.js';
import { formatDuration } from './units.js';

/** Where `--wait` waits for an environment to get: a status, or gone from the API. */
export type WaitGoal = 'running' | 'stopped' | 'gone';

/** How often `--wait` asks for the environment's status. */
const POLL_MS = 1000;

/**
 * Statuses that end a wait for `goal` as a failure: the environment will not get there by itself.
 * Waiting to run, a stop (by someone else, or the writable-layer limit) ends it too; waiting to
 * stop, only error and lost do, since a stop may pass through any transitional status.
 */
const FAILS: Record<WaitGoal, readonly string[]> = {
  running: ['error', 'lost', 'stopping', 'stopped', 'deleting'],
  stopped: ['error', 'lost', 'deleting'],
  gone: [],
};

/**
 * Polls the environment about once a second until it reaches `goal`, showing each status change
 * on stderr (see Progress). Returns the environment as last read (undefined once gone). Throws
 * exit 1 when it ends in a failing status (with its status_reason), exit 4 when it was deleted
 * while waiting for a status, exit 7 after `timeoutMs`, exit 130 on Ctrl-C.
 */
export async function waitFor(cli: Cli, first: Environment, goal: WaitGoal, timeoutMs: number): Promise<Environment | undefined> {
  const progress = new Progress(cli, `${first.name} (${first.env_id})`);
  const deadline = Date.now() + timeoutMs;
  let env: Environment | undefined = first;
  try {
    return await interruptible(async (signal) => {
      for (;;) {
        if (env) await progress.show(env);
        if (reached(env, goal)) return env;
        if (env === undefined) throw new CliError(`${progress.label} was deleted while waiting for it to be ${goal}`, EXIT.notFound);
        if (FAILS[goal].includes(env.status)) {
          throw new CliError(`${progress.label} is ${env.status}${env.status_reason ? `: ${env.status_reason}` : ''} (waited for ${goal})`, EXIT.error);
        }
        if (Date.now() >= deadline) {
          throw new CliError(`${progress.label} is still ${env.status} after ${formatDuration(timeoutMs)} (--timeout); it goes on without waiting: see \`remotegpu env get ${first.env_id}\``, EXIT.timeout);
        }
        await pause(Math.min(POLL_MS, Math.max(0, deadline - Date.now())), signal);
        signal.throwIfAborted();
        env = await current(cli, first.env_id);
      }
    });
  } finally {
    await progress.end();
  }
}

function reached(env: Environment | undefined, goal: WaitGoal): boolean {
  return goal === 'gone' ? env === undefined : env?.status === goal;
}

/** The environment now, or undefined once the API no longer has it (deleted). */
async function current(cli: Cli, envId: string): Promise<Environment | undefined> {
  try {
    return (await call(cli.client().GET('/api/v1/environments/{env_id}', { params: { path: { env_id: envId } } }))).data;
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.notFound) return undefined;
    throw err;
  }
}

/**
 * The progress of a wait on stderr. On a terminal, one line rewritten in place with the statuses
 * seen so far (`dev (env-…): creating → starting → running`); otherwise (a log, a CI job) one line
 * per change, so nothing is lost to carriage returns. The status_reason follows when there is one.
 */
export class Progress {
  private readonly seen: string[] = [];
  private last = '';
  private open = false;

  constructor(
    private readonly cli: Cli,
    readonly label: string,
  ) {}

  private get tty(): boolean {
    return (this.cli.io.stderr as { isTTY?: boolean }).isTTY === true;
  }

  async show(env: Environment): Promise<void> {
    const reason = env.status_reason ? ` (${env.status_reason})` : '';
    if (`${env.status}${reason}` === this.last) return;
    this.last = `${env.status}${reason}`;
    if (this.seen.at(-1) !== env.status) this.seen.push(env.status);
    if (!this.tty) return this.cli.note(`${this.label}: ${env.status}${reason}`);
    this.open = true;
    await write(this.cli.io.stderr, `\r\x1b[2K${this.label}: ${this.seen.join(' → ')}${reason}`);
  }

  /** Ends the rewritten line, so what is printed next starts on a line of its own. */
  async end(): Promise<void> {
    if (this.open) await write(this.cli.io.stderr, '\n');
    this.open = false;
  }
}
