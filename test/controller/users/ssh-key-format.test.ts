import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseSshPublicKey } from '../../../controller/users/ssh-key-format.js';

// Keys made with `ssh-keygen -t <type>`; fingerprints as `ssh-keygen -lf` printed them. The two
// security-key (sk-*) keys were assembled from the ed25519 / nistp256 keys with application "ssh:"
// and fingerprinted with `ssh-keygen -lf` too.
const KEYS = [
  {
    line: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCo user@ed25519',
    fingerprint: 'SHA256:yVjo7ct6Bbje63ba9ZaPs/x6sFN+3kfndjxtNIU9tpU',
    bits: 256,
  },
  {
    line: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDlWOTo3B6UQmuwPE3scptuuDHpsmdxcY7k+8ujkpLmvUuPvTj0LzF4G9ioZTSXevxhdrISEviqLe20bktqQeL7MPu9C8x/oEOR/glEBVbTqcZx6SR7Xq2VT8GtOhlaV1WRljonsK58iluU2rgJYZHV5pO4dWUQn7Z09vJGB4Hw3zyyBAw1V956rLzfEEL33JGCK2Z2iLpqrCStpCIIffCfre/jylr3txMTdbuyV26oy2N2XNWjxsiIoalrkNh6Km6RWzfrEe5g0wNfusYWzpuPqqF8GzeOSGa5NWYf2aS8d2VpMFFmDuhZk8+gVbXgzhrOx/uU8mWN8frxwdE/ZRpp user@rsa_-b_2048',
    fingerprint: 'SHA256:rd8V32m/SZUR2kyPZOWn3X8+NhRhxduvQXozcC6lSbU',
    bits: 2048,
  },
  {
    line: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDcwq3H0uhEDT6lBUFW/oShqsXSVINtkHGz5oY+0y++uk9QDX6z5wozUnDm3/VPkYj/NQJ+raGWNLyglQnTnfOsMFganCUmSVrtWafzNKqxFydXZ1I0qjgwBjsuSbRc+OUY6zc6QkT09HhQm7c6B0w9TFrNe3yLuaOOAnBYOT/RwQ== root@vm',
    fingerprint: 'SHA256:oLkzQcKgJ4duT6zQP25k1RhsZoBkklsg2aLevY/90V8',
    bits: 1024,
  },
  {
    line: 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHGe4uMsFpHQnrLkk6FJ3QfGN0c+9lCp0RfnFm9B6cjL/5dKj6foMrOSQIdUW2Yn4tTJV5YCR+v/ZNpRbZwRayk= user@ecdsa_-b_256',
    fingerprint: 'SHA256:Erg6e8h1Hb4MRQ6VvNdF7FNpoJo5uU3uE+UKI9EVgwk',
    bits: 256,
  },
  {
    line: 'ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBOh6cjv2d4y5TR266+wl54zxM8wzrolmH9E8gOAIWU3aksrLIengkaPCxhKHd2xRF8w5CbAH+kGHPspDHVGX63ubs0C/votTm+Rmw38IBxOTHw0q28md3t2wnvrxVCaDrw== user@ecdsa_-b_384',
    fingerprint: 'SHA256:yrJ6prndrkx5Ht/h27t88J7osH84bCRr4yzGpMlinYo',
    bits: 384,
  },
  {
    line: 'ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAFdiU5LnDjCm2aczRzOq8j2Cf00jHIMbD6FvA+ufeOp67wQQZH0IErhDbZ0jPhtd3gy8Jjxp4HaXimKrlhdiR8FKAGs1NXq6+2OCWu7H7AiE971xtyZasQM516jR2KtwvOWUomZLNYpD0YJeWeD19M2UrBIlGr7Zg1RYjpwXfg7tZBXxA== user@ecdsa_-b_521',
    fingerprint: 'SHA256:muKXR0J/BJ9Em+tyvcNkopu+TekTjwy7VuGJd9I1o4Y',
    bits: 521,
  },
  {
    line: 'sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIIVDqcfXoCKv8lYABJoEE+qFu343pqoRAuD0ZAl86DCoAAAABHNzaDo= yubikey',
    fingerprint: 'SHA256:m/ka7WdluPihetsOKwTNGZSZEL+txn0UFVbDtn7Cf+E',
    bits: 256,
  },
  {
    line: 'sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBHGe4uMsFpHQnrLkk6FJ3QfGN0c+9lCp0RfnFm9B6cjL/5dKj6foMrOSQIdUW2Yn4tTJV5YCR+v/ZNpRbZwRaykAAAAEc3NoOg== yubikey2',
    fingerprint: 'SHA256:JMmWPiuyUChHi2iTHOSX69dYgh884fJzPNjSeeDVfpA',
    bits: 256,
  },
];

const ED25519 = KEYS[0]!.line;
const ED25519_DATA = ED25519.split(' ')[1]!;

/** SSH wire string: uint32 length + bytes. */
function wire(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    parts.map((p) => {
      const b = typeof p === 'string' ? Buffer.from(p) : p;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return Buffer.concat([len, b]);
    }),
  );
}

function problemOf(text: string): string {
  const r = parseSshPublicKey(text);
  if (r.ok) throw new Error(`expected ${text.slice(0, 40)} to be rejected`);
  return r.problem;
}

describe('parseSshPublicKey', () => {
  it.each(KEYS)('accepts $line.0 keys with the fingerprint ssh-keygen prints ($fingerprint)', ({ line, fingerprint, bits }) => {
    const r = parseSshPublicKey(line);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.key.fingerprint).toBe(fingerprint);
    expect(r.key.bits).toBe(bits);
    expect(r.key.type).toBe(line.split(' ')[0]);
    expect(r.key.comment).toBe(line.split(' ')[2]);
    expect(r.key.line).toBe(line);
  });

  it('trims, collapses whitespace and keeps comments with spaces', () => {
    const r = parseSshPublicKey(`\n  ssh-ed25519\t${ED25519_DATA}   Alice Smith (laptop)  \n`);
    expect(r.ok && r.key.line).toBe(`ssh-ed25519 ${ED25519_DATA} Alice Smith (laptop)`);
    const bare = parseSshPublicKey(`ssh-ed25519 ${ED25519_DATA}`);
    expect(bare.ok && [bare.key.comment, bare.key.line]).toEqual(['', `ssh-ed25519 ${ED25519_DATA}`]);
  });

  it('rejects private keys, naming them', () => {
    for (const text of [
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----',
      '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----',
      'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none',
    ]) {
      expect(problemOf(text)).toMatch(/PRIVATE key.*never share it/);
    }
  });

  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----', /RFC 4716.*ssh-keygen -i/],
    [`${ED25519}\n${ED25519}`, /single line/],
    ['ssh-ed25519', /no key data/],
    ['ssh-dss AAAAB3NzaC1kc3MAAACBAP', /DSA keys are not supported/],
    [`ssh-ed25519-cert-v01@openssh.com ${ED25519_DATA}`, /certificates are not supported/],
    [`no-pty,command="/bin/sh" ${ED25519}`, /options before the key type/],
    [`ssh-foo ${ED25519_DATA}`, /unsupported key type "ssh-foo".*ssh-ed25519/],
    ['ssh-ed25519 not*base64', /not valid base64/],
    [`ssh-ed25519 ${ED25519_DATA.slice(0, -1)}`, /not valid base64/],
    [`ssh-rsa ${ED25519_DATA}`, /"ssh-ed25519" key but the line says "ssh-rsa"/],
    [`ecdsa-sha2-nistp384 ${KEYS[3]!.line.split(' ')[1]}`, /"ecdsa-sha2-nistp256" key but the line says "ecdsa-sha2-nistp384"/],
    ['ssh-ed25519 AAAA', /truncated/],
  ])('rejects %j', (text, problem) => {
    expect(problemOf(text)).toMatch(problem);
  });

  it('rejects blobs with a wrong key size, a bad curve, or trailing bytes', () => {
    const key = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
    const raw = Buffer.from(key.x!, 'base64url');
    const line = (blob: Buffer, type = 'ssh-ed25519') => `${type} ${blob.toString('base64')}`;
    expect(parseSshPublicKey(line(wire('ssh-ed25519', raw))).ok).toBe(true);
    expect(problemOf(line(wire('ssh-ed25519', raw.subarray(0, 31))))).toMatch(/truncated or corrupted/);
    expect(problemOf(line(Buffer.concat([wire('ssh-ed25519', raw), Buffer.from([0])])))).toMatch(/trailing bytes/);
    expect(problemOf(line(wire('sk-ssh-ed25519@openssh.com', raw), 'sk-ssh-ed25519@openssh.com'))).toMatch(/truncated/);
    expect(problemOf(line(wire('sk-ssh-ed25519@openssh.com', raw, 'web:x'), 'sk-ssh-ed25519@openssh.com'))).toMatch(/truncated/);
    const point = Buffer.alloc(65, 1);
    point[0] = 4;
    expect(parseSshPublicKey(line(wire('ecdsa-sha2-nistp256', 'nistp256', point), 'ecdsa-sha2-nistp256')).ok).toBe(true);
    expect(problemOf(line(wire('ecdsa-sha2-nistp256', 'nistp384', point), 'ecdsa-sha2-nistp256'))).toMatch(/truncated/);
    expect(problemOf(line(wire('ecdsa-sha2-nistp256', 'nistp256', point.subarray(0, 33)), 'ecdsa-sha2-nistp256'))).toMatch(/truncated/);
  });

  it('rejects RSA keys under 1024 bits', () => {
    const jwk = generateKeyPairSync('rsa', { modulusLength: 768 }).publicKey.export({ format: 'jwk' });
    const mpint = (b64url: string) => {
      const b = Buffer.from(b64url, 'base64url');
      return (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b;
    };
    const blob = wire('ssh-rsa', mpint(jwk.e!), mpint(jwk.n!));
    expect(problemOf(`ssh-rsa ${blob.toString('base64')}`)).toMatch(/768 bits; at least 1024/);
  });
});
