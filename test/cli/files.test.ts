import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeConfig } from '../../cli/config.js';
import { CliError } from '../../cli/errors.js';
import { readTextFile, writeFileAtomically } from '../../cli/files.js';

// The CLI's own files (config, known_hosts, ~/.ssh/config) are read and replaced by one pair of
// helpers: a missing file reads as none, and any failure is one line naming the path.

const dir = () => mkdtempSync(path.join(tmpdir(), 'rgpu-files-'));

function cliError(run: () => unknown): CliError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    return err as CliError;
  }
  throw new Error('expected a CliError');
}

describe('readTextFile', () => {
  it('gives the text, undefined for a missing file, and a CliError naming the path otherwise', () => {
    const d = dir();
    writeFileSync(path.join(d, 'a'), 'text\n');
    expect(readTextFile(path.join(d, 'a'))).toBe('text\n');
    expect(readTextFile(path.join(d, 'missing'))).toBeUndefined();
    expect(cliError(() => readTextFile(d)).message).toMatch(new RegExp(`^cannot read ${d}: `));
  });
});

describe('writeFileAtomically', () => {
  it('creates the directory 0700, gives the file the mode asked for, and leaves nothing aside', () => {
    const file = path.join(dir(), 'sub', 'f');
    writeFileAtomically(file, 'one\n', 0o644);
    writeFileAtomically(file, 'two\n', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('two\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readTextFile(`${file}.${process.pid}.tmp`)).toBeUndefined();
  });

  it('fails with one line naming the path (the config too, not a stack trace)', () => {
    const d = dir();
    writeFileSync(path.join(d, 'file'), '');
    const blocked = path.join(d, 'file', 'config.json');
    expect(cliError(() => writeFileAtomically(blocked, 'x', 0o600)).message).toMatch(new RegExp(`^cannot write ${blocked}: `));
    expect(cliError(() => writeConfig(blocked, { current: null, contexts: {} })).message).toMatch(new RegExp(`^cannot write ${blocked}: `));
  });
});
