import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * What bash offers on TAB for the command line `words` (the last one is the word being typed),
 * with the completion script `script` sourced: sets COMP_WORDS and COMP_CWORD as bash does, calls
 * `_remotegpu` and returns COMPREPLY. `env` is the shell's environment (PATH for name look-ups).
 * Asynchronous: a controller in the test's own process must keep answering meanwhile.
 */
export async function bashComplete(script: string, words: readonly string[], env: Record<string, string | undefined> = {}): Promise<string[]> {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const program = `source '${script}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _remotegpu; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  return stdout.split('\n').filter(Boolean);
}
