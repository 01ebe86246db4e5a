import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { entryOf, firstRegularFile } from '../../../agent/runtime/docker-files.js';

// The bounded reader of Docker's archive answers (GET /containers/{id}/archive): archives made by
// the system's tar in the formats Docker's Go archive/tar writes (ustar, PAX records, GNU long names).

describe('reading one small file out of a tar stream', () => {
  let dir = '';
  /** The archive `tar` makes of `name` (relative to the scratch directory) in `format`. */
  const archive = (name: string, format = 'ustar') => execFileSync('tar', ['-c', `--format=${format}`, '-C', dir, name]);

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-tar-'));
    writeFileSync(path.join(dir, 'key.pub'), 'ssh-ed25519 AAAA comment\n');
    writeFileSync(path.join(dir, 'big.pub'), 'x'.repeat(40_000));
    writeFileSync(path.join(dir, 'empty.pub'), '');
    symlinkSync('/etc/shadow', path.join(dir, 'link.pub'));
    mkdirSync(path.join(dir, 'a-directory'));
    writeFileSync(path.join(dir, `${'long-'.repeat(40)}.pub`), 'long\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns a regular file, also behind PAX and GNU long-name records', async () => {
    expect((await firstRegularFile(Readable.from([archive('key.pub')]), 16_384))?.toString()).toBe('ssh-ed25519 AAAA comment\n');
    expect((await firstRegularFile(Readable.from([archive('key.pub', 'pax')]), 16_384))?.toString()).toBe('ssh-ed25519 AAAA comment\n');
    expect((await firstRegularFile(Readable.from([archive(`${'long-'.repeat(40)}.pub`, 'gnu')]), 16_384))?.toString()).toBe('long\n');
    expect((await firstRegularFile(Readable.from([archive('empty.pub')]), 16_384))?.length).toBe(0);
  });

  it('reads a file arriving in small chunks', async () => {
    const tar = archive('key.pub');
    const chunks = Array.from({ length: Math.ceil(tar.length / 100) }, (_, i) => tar.subarray(i * 100, (i + 1) * 100));
    expect((await firstRegularFile(Readable.from(chunks), 16_384))?.toString()).toBe('ssh-ed25519 AAAA comment\n');
  });

  it('refuses a link (never followed), a directory, a file over the bound, and garbage', async () => {
    expect(await firstRegularFile(Readable.from([archive('link.pub')]), 16_384)).toBeNull();
    expect(await firstRegularFile(Readable.from([archive('a-directory')]), 16_384)).toBeNull();
    expect(await firstRegularFile(Readable.from([archive('big.pub')]), 16_384)).toBeNull();
    expect(await firstRegularFile(Readable.from([Buffer.alloc(2048, 0x41)]), 16_384)).toBeNull();
    expect(await firstRegularFile(Readable.from([]), 16_384)).toBeNull();
  });

  it('stops reading a stream that never ends once it has the file', async () => {
    const header = archive('big.pub').subarray(0, 512);
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 64 * 1024;
        this.push(sent === 64 * 1024 ? Buffer.concat([header, Buffer.alloc(64 * 1024 - 512)]) : Buffer.alloc(64 * 1024));
      },
    });
    // A 40 000-byte file within a 50 000-byte bound, followed by endless bytes: read, then the stream is destroyed.
    expect((await firstRegularFile(endless, 50_000))?.length).toBe(40_000);
    expect(endless.destroyed).toBe(true);
    expect(sent).toBeLessThan(1024 * 1024);
  });

  it('tells when the bytes so far end too soon', () => {
    const tar = archive('key.pub');
    expect(entryOf(tar.subarray(0, 300), 16_384)).toBe('more');
    expect(entryOf(tar.subarray(0, 520), 16_384)).toBe('more');
    expect(entryOf(tar, 16_384)?.toString()).toBe(readFileSync(path.join(dir, 'key.pub'), 'utf8'));
  });
});
