import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hostKeyFingerprint, isValidHostKey, normalHostKeys, parseHostKeys, MAX_HOST_KEYS } from '../../common/ssh-host-keys.js';

// SSH host public keys: the strict parser (the files are written by whoever owns the container) and
// the fingerprint, compared with what the real ssh-keygen prints for keys it made.

const TYPES = [
  ['ed25519', [], 'ssh-ed25519'],
  ['ecdsa', ['-b', '256'], 'ecdsa-sha2-nistp256'],
  ['ecdsa', ['-b', '384'], 'ecdsa-sha2-nistp384'],
  ['ecdsa', ['-b', '521'], 'ecdsa-sha2-nistp521'],
  ['rsa', ['-b', '2048'], 'ssh-rsa'],
] as const;

describe('SSH host keys', () => {
  let dir = '';
  /** Each key ssh-keygen made: its .pub line and the fingerprint `ssh-keygen -lf` printed. */
  const made: { type: string; line: string; fingerprint: string }[] = [];

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-hostkeys-'));
    TYPES.forEach(([kind, bits, type], i) => {
      const file = path.join(dir, `key${i}`);
      execFileSync('ssh-keygen', ['-q', '-t', kind, ...bits, '-N', '', '-C', 'user@box with spaces', '-f', file]);
      const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' });
      made.push({ type, line: readFileSync(`${file}.pub`, 'utf8'), fingerprint: printed.split(' ')[1]! });
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses every key type ssh-keygen makes, comment dropped, with the fingerprint ssh-keygen -lf prints', () => {
    const keys = parseHostKeys(made.map((m) => m.line).join(''));
    expect(keys.map((k) => k.type)).toEqual(made.map((m) => m.type));
    keys.forEach((k, i) => {
      expect(made[i]!.line.startsWith(`${k.type} ${k.key} `)).toBe(true);
      expect(hostKeyFingerprint(k.key)).toBe(made[i]!.fingerprint);
    });
  });

  it('ignores anything that is not `<known type> <valid base64 blob of that type>`', () => {
    const [ed, , , , rsa] = made.map((m) => parseHostKeys(m.line)[0]!);
    const lines = [
      '# a comment',
      '',
      `ssh-dss ${ed!.key}`, // unknown type
      `ssh-rsa ${ed!.key}`, // the blob says ssh-ed25519
      `ssh-ed25519 ${ed!.key.slice(0, -4)}`, // cut short
      `ssh-ed25519 ${ed!.key}=`, // not canonical base64
      `ssh-ed25519 ${ed!.key.replace(/A/, '*')}`, // not base64
      `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5`, // the type and nothing after it
      `@cert-authority * ssh-ed25519 ${ed!.key}`, // a known_hosts marker line
      `ssh-ed25519`,
      `\0\0\0`,
      `ssh-ed25519 ${ed!.key} comment`,
      `ssh-ed25519\t${ed!.key}`, // a duplicate
      `  ssh-rsa ${rsa!.key}`,
    ];
    expect(parseHostKeys(lines.join('\n'))).toEqual([ed, rsa]);
  });

  it('checks keys the same way when they come from elsewhere (reports, stored rows), and keeps at most 8', () => {
    const ed = parseHostKeys(made[0]!.line)[0]!;
    expect(isValidHostKey(ed.type, ed.key)).toBe(true);
    expect(isValidHostKey('ecdsa-sha2-nistp256', ed.key)).toBe(false);
    expect(isValidHostKey(ed.type, 'A'.repeat(10_000))).toBe(false);
    // One field too many after a complete ed25519 key.
    expect(isValidHostKey(ed.type, Buffer.concat([Buffer.from(ed.key, 'base64'), Buffer.from([0, 0, 0, 0])]).toString('base64'))).toBe(false);
    expect(normalHostKeys([ed, { type: 'ssh-ed25519', key: '' }, ed])).toEqual([ed]);
    // Distinct valid blobs: ed25519 keys with other 32-byte points.
    const many = Array.from({ length: 12 }, (_, i) => {
      const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, i)]);
      return `ssh-ed25519 ${blob.toString('base64')}`;
    });
    expect(parseHostKeys(many.join('\n'))).toHaveLength(MAX_HOST_KEYS);
  });
});
