import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CliError } from './errors.js';

// The files the CLI keeps (its config, its known_hosts, the user's ~/.ssh/config): read whole,
// and replaced whole, with failures as one-line CliErrors rather than stack traces.

/** The file's text, or undefined when there is no such file; any other failure is a CliError naming the path. */
export function readTextFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * Writes `text` to `path` whole: to a file beside it, then renamed over it, so a reader (ssh, the
 * next run) never sees half of it and a crash leaves the old file. The file gets `mode` (also when
 * it existed with another); its directory is created 0700 when missing. Failure is a CliError.
 */
export function writeFileAtomically(path: string, text: string, mode: number): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const aside = `${path}.${process.pid}.tmp`;
    writeFileSync(aside, text, { mode });
    chmodSync(aside, mode);
    renameSync(aside, path);
  } catch (err) {
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
  }
}
