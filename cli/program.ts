import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/version.js';
import { Cli, type Io } from './cli.js';
import { CliError, EXIT } from './errors.js';
import { registerAuth } from './commands/auth.js';
import { registerEnv } from './commands/env.js';
import { registerConfigSsh } from './commands/config-ssh.js';
import { registerSsh } from './commands/ssh.js';
import { registerSshKeys } from './commands/ssh-keys.js';
import { registerCatalog } from './commands/catalog.js';
import { registerAdmin } from './commands/admin.js';
import { registerCompletion } from './commands/completion.js';

/** Adds a group of commands to the program; each command module exports one. */
export type Register = (program: Command, cli: Cli) => void;

/** Every command group, in the order `remotegpu --help` lists them. */
const GROUPS: readonly Register[] = [registerAuth, registerEnv, registerSsh, registerConfigSsh, registerSshKeys, registerCatalog, registerAdmin, registerCompletion];

/**
 * The `remotegpu` program: global options (--context, --json), every command group, help with
 * examples, and commander's own errors (unknown option, missing argument) as usage errors (exit 2).
 */
export function buildProgram(cli: Cli): Command {
  const program = new Command('remotegpu')
    .description('Work with remotegpu GPU development environments from a terminal.')
    .version(VERSION, '-V, --version')
    .option('--context <name>', 'use this saved context instead of the current one (see `remotegpu context ls`)')
    .option('--json', 'print the API\'s data as JSON (lists and gets), for scripts')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (text) => void cli.io.stdout.write(text),
      writeErr: (text) => void cli.io.stderr.write(text),
    })
    .exitOverride();
  program.hook('preAction', (_this, action) => cli.setOptions(action.optsWithGlobals()));
  for (const register of GROUPS) register(program, cli);
  program.addHelpText(
    'after',
    `
Examples:
  remotegpu login --url https://gpu.example.com
  remotegpu env create dev --image devbox:1 --gpu 1 --cpu 4 --memory 16Gi --storage 50Gi --wait
  remotegpu ssh dev -- nvidia-smi
  remotegpu env ls --json

Exit codes: 0 ok, 1 error, 2 bad usage or input, 3 not signed in or not allowed, 4 not found,
5 refused as things stand (capacity, quota, state), 6 controller unreachable or unavailable,
7 --wait timed out, 130 interrupted.`,
  );
  return program;
}

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit code; prints a
 * failure as one line `remotegpu: <message>` (and a line per refused field) on stderr.
 */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  const cli = new Cli(io);
  const program = buildProgram(cli);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return cli.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exit code 0; commander already printed its error otherwise.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      io.stderr.write(`remotegpu: ${err.message}\n${err.details.map((d) => `  ${d}\n`).join('')}`);
      return err.exitCode;
    }
    io.stderr.write(`remotegpu: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.error;
  }
}
