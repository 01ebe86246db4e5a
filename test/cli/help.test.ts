import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { Cli, processIo } from '../../cli/cli.js';
import { buildProgram } from '../../cli/program.js';
import { cliHome, runCli } from '../helpers/cli.js';

// Every command of `remotegpu`, found by walking the program itself (so a command added later is
// checked too), answers `--help` with exit 0, its usage and an Examples section, as the real
// process prints it.

function commandPaths(command: Command, path: string[] = []): string[][] {
  return command.commands
    .filter((sub) => !sub.name().startsWith('__')) // the hidden `__complete` of the shell completion
    .flatMap((sub) => [[...path, sub.name()], ...commandPaths(sub, [...path, sub.name()])]);
}

describe('remotegpu --help', () => {
  const paths = commandPaths(buildProgram(new Cli(processIo())));

  it('finds the command tree (the groups the issue names are all there)', () => {
    const names = paths.map((p) => p.join(' '));
    for (const name of ['login', 'whoami', 'env create', 'env ls', 'env logs', 'ssh', 'config-ssh', 'ssh-key add', 'images', 'datasets', 'admin hosts', 'admin host cordon', 'admin users create', 'admin tokens create', 'completion']) {
      expect(names).toContain(name);
    }
  });

  it('every command prints its usage and examples with exit 0', async () => {
    const home = cliHome();
    const missing: string[] = [];
    // In a few processes at once: each is a whole node start.
    for (let i = 0; i < paths.length; i += 6) {
      await Promise.all(
        paths.slice(i, i + 6).map(async (path) => {
          const run = await runCli(home, [...path, '--help']);
          if (run.code !== 0 || !run.stdout.startsWith(`Usage: remotegpu ${path.join(' ')}`) || !/\nExamples:\n {2}.*remotegpu /.test(run.stdout)) missing.push(`${path.join(' ')} (exit ${run.code})`);
        }),
      );
    }
    expect(missing).toEqual([]);
  }, 180_000);
});
