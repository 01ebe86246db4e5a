import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Recorded nvidia-smi outputs (see test/fixtures/nvidia-smi/README.md). */
export const NVIDIA_SMI_FIXTURES = fileURLToPath(new URL('../fixtures/nvidia-smi/', import.meta.url));

/** Absolute path of a fixture file. */
export function fixturePath(name: string): string {
  return join(NVIDIA_SMI_FIXTURES, name);
}

/** Fixture names (sorted) matching the pattern. */
export function listFixtures(pattern: RegExp): string[] {
  return readdirSync(NVIDIA_SMI_FIXTURES)
    .filter((f) => pattern.test(f))
    .sort();
}

/** The fixture's text without its first `#` source line. */
export function readFixture(name: string): string {
  return readFileSync(fixturePath(name), 'utf8').replace(/^#[^\n]*\n/, '');
}

/** The first `#` line, which names the source and the command that produced the output. */
export function fixtureSourceLine(name: string): string {
  return readFileSync(fixturePath(name), 'utf8').split('\n', 1)[0] ?? '';
}

/** Fields of the `--query-gpu=...` command named in the fixture's first line. */
export function fixtureQueryFields(name: string): string[] {
  const match = /--query-gpu=([^\s`]+)/.exec(fixtureSourceLine(name));
  if (!match) throw new Error(`${name}: no --query-gpu command in its first line`);
  return match[1]!.split(',');
}

/** The `--format=...` options named in the fixture's first line, e.g. "csv,noheader,nounits". */
export function fixtureFormat(name: string): string {
  const match = /--format=([a-z,]+)/.exec(fixtureSourceLine(name));
  if (!match) throw new Error(`${name}: no --format in its first line`);
  return match[1]!;
}

/**
 * Some fixtures hold several runs separated by marker lines (`== count: 1 ==`, `---- host ----`);
 * returns each run's text.
 */
export function splitRuns(text: string): string[] {
  const runs: string[][] = [[]];
  for (const line of text.split('\n')) {
    if (/^(==.*==|--+.*--+)\s*$/.test(line)) runs.push([]);
    else runs[runs.length - 1]!.push(line);
  }
  return runs.map((r) => r.join('\n')).filter((r) => r.trim() !== '');
}
