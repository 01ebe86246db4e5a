import type { Command } from 'commander';

/** Applies commander's settings to a subcommand too (errors as exceptions, our streams). */
export function command(parent: Command, nameAndArgs: string, description: string): Command {
  return parent.command(nameAndArgs).description(description).showHelpAfterError('(run with --help for usage)').exitOverride();
}
