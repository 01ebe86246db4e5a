import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Cli } from '../../cli/cli.js';
import { bashScript } from '../../cli/completion.js';
import { buildProgram } from '../../cli/program.js';
import { cliHome, runCli } from '../helpers/cli.js';
import { bashComplete } from '../helpers/completion.js';

// `remotegpu completion bash|zsh`: the scripts the real CLI prints, loaded into real bash and zsh
// and asked what completes, as the shells do on TAB (COMP_WORDS/COMP_CWORD for bash, words/CURRENT
// and compadd for zsh).

let dir = '';
let home = '';
let bashFile = '';
let zshDir = '';

/** What zsh's `_remotegpu`, autoloaded from $fpath as compinit does, hands to compadd. */
function zshComplete(words: readonly string[]): string[] {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const program = [
    'compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@"; }',
    '_default() { print -r -- "(files)"; }',
    `fpath=('${zshDir}' $fpath); autoload -Uz _remotegpu`,
    `words=(${quoted}); CURRENT=${words.length}; _remotegpu`,
  ].join('\n');
  return execFileSync('zsh', ['-f', '-c', program], { encoding: 'utf8', env: { PATH: process.env.PATH } }).split('\n').filter(Boolean);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rgpu-completion-'));
  home = cliHome();
  const bash = await runCli(home, ['completion', 'bash']);
  expect(bash.code).toBe(0);
  bashFile = path.join(dir, 'remotegpu.bash');
  writeFileSync(bashFile, bash.stdout);
  const zsh = await runCli(home, ['completion', 'zsh']);
  expect(zsh.code).toBe(0);
  expect(zsh.stdout.startsWith('#compdef remotegpu\n')).toBe(true);
  zshDir = path.join(dir, 'zsh');
  execFileSync('mkdir', ['-p', zshDir]);
  writeFileSync(path.join(zshDir, '_remotegpu'), zsh.stdout);
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

describe('bash completion', () => {
  it('completes top-level commands, subcommands and options from the command tree', async () => {
    expect(await bashComplete(bashFile, ['remotegpu', 'ad'])).toEqual(['admin']);
    const co = await bashComplete(bashFile, ['remotegpu', 'co']);
    expect(co).toEqual(expect.arrayContaining(['context', 'completion']));
    expect(co.every((w) => w.startsWith('co'))).toBe(true);
    expect(await bashComplete(bashFile, ['remotegpu', 'admin', 'host', ''])).toEqual(expect.arrayContaining(['get', 'cordon', 'uncordon', 'drain']));
    expect(await bashComplete(bashFile, ['remotegpu', 'admin', 'host', 'unc'])).toEqual(['uncordon']);
    expect(await bashComplete(bashFile, ['remotegpu', 'admin', 'tokens', 'create', 'alice', '--'])).toEqual(
      expect.arrayContaining(['--name', '--expires-in-days', '--context', '--json', '--help']),
    );
    expect(await bashComplete(bashFile, ['remotegpu', 'login', '--u'])).toEqual(['--url']);
  });

  it('skips option values and global options when finding the command', async () => {
    // `--context prod` and `--name laptop` take values: neither is taken for a command or argument.
    expect(await bashComplete(bashFile, ['remotegpu', '--context', 'prod', 'admin', 'ho'])).toEqual(['hosts', 'host']);
    expect(await bashComplete(bashFile, ['remotegpu', 'admin', '--json', 'users', 'c'])).toEqual(['create']);
    // bash splits `--context=prod` at "=" (COMP_WORDBREAKS): the word after "=" is the value.
    expect(await bashComplete(bashFile, ['remotegpu', '--context', '=', 'prod', 'admin', 'tok'])).toEqual(['tokens']);
    expect(await bashComplete(bashFile, ['remotegpu', 'completion', 'b'])).toEqual(['bash']);
  });

  it('offers no command words where a file or free value goes (the shell falls back to file names)', async () => {
    expect(await bashComplete(bashFile, ['remotegpu', 'admin', 'users', 'create', ''])).toEqual([]);
    expect(await bashComplete(bashFile, ['remotegpu', 'login', '--url', ''])).toEqual([]);
    const spec = execFileSync('bash', ['--norc', '-c', `source '${bashFile}'; complete -p remotegpu`], { encoding: 'utf8' });
    expect(spec.trim()).toBe('complete -o default -F _remotegpu remotegpu');
  });

  it('completes a command added to the program without any change to the completion code', async () => {
    const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), env: {} };
    const program = buildProgram(new Cli(io));
    program.command('zz-new').description('a command only this test has').option('--zz-flag <v>', 'an option').command('deeper');
    const file = path.join(dir, 'extended.bash');
    writeFileSync(file, bashScript(program));
    expect(await bashComplete(file, ['remotegpu', 'zz'])).toEqual(['zz-new']);
    expect(await bashComplete(file, ['remotegpu', 'zz-new', ''])).toEqual(expect.arrayContaining(['deeper']));
    expect(await bashComplete(file, ['remotegpu', 'zz-new', '--zz'])).toEqual(['--zz-flag']);
    expect(await bashComplete(bashFile, ['remotegpu', 'zz'])).toEqual([]);
  });

  it('keeps the hidden __complete helper out of completion and help', async () => {
    expect(await bashComplete(bashFile, ['remotegpu', '__'])).toEqual([]);
    const help = await runCli(home, ['--help']);
    expect(help.stdout).toContain('completion');
    expect(help.stdout).not.toContain('__complete');
  });
});

describe('zsh completion', () => {
  it('parses (zsh -n) and, autoloaded from $fpath, hands subcommands and options to compadd', () => {
    execFileSync('zsh', ['-n', path.join(zshDir, '_remotegpu')]);
    expect(zshComplete(['remotegpu', 'a'])).toEqual(expect.arrayContaining(['admin', 'login', 'completion']));
    expect(zshComplete(['remotegpu', 'admin', 'host', ''])).toEqual(expect.arrayContaining(['get', 'cordon', 'uncordon', 'drain']));
    expect(zshComplete(['remotegpu', '--context', 'x', 'admin', 'users', 'create', '--'])).toEqual(expect.arrayContaining(['--admin', '--email', '--json']));
    expect(zshComplete(['remotegpu', 'admin', 'users', 'create', ''])).toEqual(['(files)']);
  });
});

describe('completion --help', () => {
  it('says how to install each script', async () => {
    const run = await runCli(home, ['completion', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('source <(remotegpu completion bash)');
    expect(run.stdout).toContain('remotegpu completion zsh > "${fpath[1]}/_remotegpu"');
    const bad = await runCli(home, ['completion', 'fish']);
    expect(bad.code).toBe(2);
  });
});
