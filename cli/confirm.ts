import { createInterface } from 'node:readline/promises';
import type { Io } from './cli.js';
import { CliError, EXIT } from './errors.js';

/**
 * Asks a yes/no question on a terminal; true only for y or yes. Without a terminal (a script,
 * CI) nobody can answer: that is a usage error telling the caller to pass `yesFlag`, and nothing
 * is done.
 */
export async function confirm(io: Io, question: string, yesFlag: string): Promise<boolean> {
  if (!io.stdin.isTTY) throw new CliError(`${question.replace(/\?$/, '')}: refused without a terminal to ask on; pass ${yesFlag} to confirm`, EXIT.usage);
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: true });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
