import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dropLegacyAuthorizedKeys, refreshAuthorizedKeys, removeEnvState, writeAuthorizedKeys } from '../../../agent/runtime/authorized-keys.js';
import { symlinkTar } from '../../../agent/runtime/keys-link.js';

// The agent's authorized_keys files on a real file system (a temporary state directory).

const ENV = 'env-keys01';
const A = 'ssh-ed25519 AAAAkeyA a@x';
const B = 'ssh-ed25519 AAAAkeyB b@x';

describe('writeAuthorizedKeys', () => {
  let stateDir = '';
  const keysFile = () => join(stateDir, 'envs', ENV, 'ssh', 'authorized_keys');
  const legacyFile = () => join(stateDir, 'envs', ENV, 'authorized_keys');

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'remotegpu-keys-'));
  });
  afterEach(async () => rm(stateDir, { recursive: true, force: true }));

  it('refreshes the keys of an environment applied before, creates nothing for one never applied, writes no multi-line key', async () => {
    expect(await refreshAuthorizedKeys(stateDir, ENV, [A])).toBe(false);
    expect(await readdir(stateDir)).toEqual([]);
    expect(await writeAuthorizedKeys(stateDir, ENV, [A, B])).toBe(true);
    expect(await refreshAuthorizedKeys(stateDir, ENV, [B])).toBe(true);
    expect(await readFile(keysFile(), 'utf8')).toBe(`${B}\n`);
    expect(await refreshAuthorizedKeys(stateDir, ENV, [`${A}\ncommand="x" ${B}`])).toBe(false);
    expect(await readFile(keysFile(), 'utf8')).toBe(`${B}\n`);
  });

  it('writes the keys directory (0700) and file (0600); true only when the state directory is new', async () => {
    expect(await writeAuthorizedKeys(stateDir, ENV, [A])).toBe(true);
    expect(await readFile(keysFile(), 'utf8')).toBe(`${A}\n`);
    expect((await stat(keysFile())).mode & 0o777).toBe(0o600);
    expect((await stat(join(stateDir, 'envs', ENV, 'ssh'))).mode & 0o777).toBe(0o700);
    expect(await writeAuthorizedKeys(stateDir, ENV, [A])).toBe(false);
  });

  it('replaces the file atomically: a reader that opened it before keeps the whole old list', async () => {
    await writeAuthorizedKeys(stateDir, ENV, [A, B]);
    // sshd reading the file at the moment of a change holds it open like this.
    const reader = await open(keysFile(), 'r');
    try {
      await writeAuthorizedKeys(stateDir, ENV, [B]);
      expect(await reader.readFile('utf8')).toBe(`${A}\n${B}\n`);
    } finally {
      await reader.close();
    }
    expect(await readFile(keysFile(), 'utf8')).toBe(`${B}\n`);
    // Nothing but the keys file is left in the mounted directory.
    expect(await readdir(join(stateDir, 'envs', ENV, 'ssh'))).toEqual(['authorized_keys']);
  });

  it('leaves an unchanged file alone (same inode)', async () => {
    await writeAuthorizedKeys(stateDir, ENV, [A]);
    const before = (await stat(keysFile())).ino;
    await writeAuthorizedKeys(stateDir, ENV, [A]);
    expect((await stat(keysFile())).ino).toBe(before);
  });

  it('keeps rewriting the single file a container made before the keys directory mounts, in place, until it is dropped', async () => {
    await mkdir(join(stateDir, 'envs', ENV), { recursive: true });
    await writeFile(legacyFile(), `${A}\n`, { mode: 0o600 });
    const inode = (await stat(legacyFile())).ino;
    await writeAuthorizedKeys(stateDir, ENV, [B]);
    expect(await readFile(legacyFile(), 'utf8')).toBe(`${B}\n`);
    expect((await stat(legacyFile())).ino).toBe(inode); // a single-file bind mount pins this inode
    expect(await readFile(keysFile(), 'utf8')).toBe(`${B}\n`);
    await dropLegacyAuthorizedKeys(stateDir, ENV);
    await writeAuthorizedKeys(stateDir, ENV, [A]);
    await expect(stat(legacyFile())).rejects.toThrow();
  });

  it('removeEnvState deletes the directory and says whether it existed', async () => {
    await writeAuthorizedKeys(stateDir, ENV, []);
    expect(await readFile(keysFile(), 'utf8')).toBe('');
    expect(await removeEnvState(stateDir, ENV)).toBe(true);
    expect(await removeEnvState(stateDir, ENV)).toBe(false);
  });
});

describe('symlinkTar', () => {
  it('is one ustar symlink entry with a valid checksum, then two zero blocks', () => {
    const tar = symlinkTar('root/.ssh/authorized_keys', '/etc/remotegpu/ssh/authorized_keys');
    expect(tar.length).toBe(1536);
    const header = tar.subarray(0, 512);
    const text = (from: number, len: number) => header.toString('utf8', from, from + len).replace(/\0.*$/s, '');
    expect(text(0, 100)).toBe('root/.ssh/authorized_keys');
    expect(text(156, 1)).toBe('2');
    expect(text(157, 100)).toBe('/etc/remotegpu/ssh/authorized_keys');
    expect(text(257, 6)).toBe('ustar');
    const stored = parseInt(text(148, 8), 8);
    const blank = Buffer.from(header);
    blank.write('        ', 148);
    expect(stored).toBe(blank.reduce((sum, b) => sum + b, 0));
    expect(tar.subarray(512).every((b) => b === 0)).toBe(true);
  });

  it('refuses names that do not fit the header', () => {
    expect(() => symlinkTar('x'.repeat(100), '/y')).toThrow(/100 bytes/);
  });
});
