import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
/** tsx's loader by path: the CLI runs with HOME (and cwd) in a temporary directory. */
const TSX = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
/** node's arguments that run this checkout's CLI from source (`node ...CLI_ARGS remotegpu-args`). */
export const CLI_ARGS: readonly string[] = ['--import', TSX, path.join(ROOT, 'cli/main.ts')];

/** What a run of the real `remotegpu` process gave. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Environment variables on top of a minimal one (PATH, HOME = `home`, REMOTEGPU_CONFIG under it). */
  readonly env?: Record<string, string | undefined>;
  /** Written to stdin, then stdin is closed (stdin is closed at once without it). */
  readonly input?: string;
  /** Killed (SIGTERM) after this long; default 60 s. */
  readonly timeoutMs?: number;
  /** Called with each chunk of stdout as it comes (for `logs -f`); return true to end the process. */
  readonly onStdout?: (soFar: string) => boolean;
  /** The signal onStdout's `true` sends (default SIGTERM; SIGINT is Ctrl-C). */
  readonly killSignal?: NodeJS.Signals;
}

/**
 * A throwaway HOME for CLI runs: its own ~/.config/remotegpu and ~/.ssh, so tests never touch the
 * user's files and never share them with each other.
 */
export function cliHome(prefix = 'rgpu-cli-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Runs the real CLI process (`node --import tsx cli/main.ts ARGS`) with HOME = `home` and
 * returns its exit code and output. Nothing of the test's own environment leaks in but PATH.
 */
export function runCli(home: string, args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_ARGS, ...args], {
      cwd: home,
      env: { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (options.onStdout?.(stdout)) child.kill(options.killSignal ?? 'SIGTERM');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Signs `home` in to `url` with `token` (the real `login`, token on stdin); throws unless it worked. */
export async function cliLogin(home: string, url: string, token: string, name = 'test'): Promise<void> {
  const run = await runCli(home, ['login', '--url', url, '--name', name], { input: `${token}\n` });
  if (run.code !== 0) throw new Error(`remotegpu login failed (${run.code}): ${run.stderr}`);
}

/**
 * Writes an executable `remotegpu` into `dir` that runs this checkout's CLI (as the installed bin
 * would), for what calls the command by name: the completion scripts' name lookups, ssh's
 * ProxyCommand. Returns `dir`, to put in front of PATH.
 */
export function cliShim(dir: string): string {
  const file = path.join(dir, 'remotegpu');
  writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' ${CLI_ARGS.map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
  return dir;
}
