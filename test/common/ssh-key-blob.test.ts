import { describe, expect, it } from 'vitest';
import { decodeBase64Strict, readKeyFields, WireReader } from '../../common/ssh-key-blob.js';

// The SSH public key wire format shared by user keys (controller/users/ssh-key-format.ts) and host
// keys (common/ssh-host-keys.ts); both are tested on real ssh-keygen keys in their own files.

/** SSH wire strings (uint32 length + bytes) one after another. */
const wire = (...fields: (string | Buffer)[]) =>
  Buffer.concat(fields.flatMap((f) => {
    const bytes = typeof f === 'string' ? Buffer.from(f, 'latin1') : f;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return [length, bytes];
  }));
/** The bits readKeyFields gives for `blob` of `type`, and whether it read the blob to its end. */
const read = (type: string, blob: Buffer) => {
  const r = new WireReader(blob);
  r.string();
  return { bits: readKeyFields(type, r), done: r.done };
};
const point = (bytes: number) => Buffer.concat([Buffer.from([4]), Buffer.alloc(bytes - 1, 7)]);

describe('SSH key blobs', () => {
  it('decodes only canonical base64', () => {
    expect(decodeBase64Strict('AAAA')).toEqual(Buffer.alloc(3));
    for (const bad of ['', 'AAA', 'AB==', 'AA=A', 'AA-A', 'AAAA ']) expect(decodeBase64Strict(bad), bad).toBeUndefined();
  });

  it('reads the fields of each type and the size ssh-keygen reports', () => {
    expect(read('ssh-ed25519', wire('ssh-ed25519', Buffer.alloc(32, 1)))).toEqual({ bits: 256, done: true });
    expect(read('ecdsa-sha2-nistp384', wire('ecdsa-sha2-nistp384', 'nistp384', point(97)))).toEqual({ bits: 384, done: true });
    expect(read('sk-ecdsa-sha2-nistp256@openssh.com', wire('sk-ecdsa-sha2-nistp256@openssh.com', 'nistp256', point(65), 'ssh:'))).toEqual({ bits: 256, done: true });
    // Any RSA size: a minimum is the caller's policy.
    expect(read('ssh-rsa', wire('ssh-rsa', Buffer.from([1, 0, 1]), Buffer.from([0, 0x80, ...Array<number>(63).fill(0)])))).toEqual({ bits: 512, done: true });
    // What follows the fields is left for the caller to refuse.
    expect(read('ssh-ed25519', Buffer.concat([wire('ssh-ed25519', Buffer.alloc(32)), Buffer.from([0])]))).toEqual({ bits: 256, done: false });
  });

  it('refuses missing or wrongly sized fields and unknown types', () => {
    expect(read('ssh-ed25519', wire('ssh-ed25519', Buffer.alloc(31))).bits).toBeUndefined();
    expect(read('ssh-rsa', wire('ssh-rsa', Buffer.from([1]), Buffer.alloc(0))).bits).toBeUndefined();
    expect(read('ecdsa-sha2-nistp256', wire('ecdsa-sha2-nistp256', 'nistp384', point(65))).bits).toBeUndefined();
    expect(read('ecdsa-sha2-nistp256', wire('ecdsa-sha2-nistp256', 'nistp256', Buffer.alloc(65))).bits).toBeUndefined();
    expect(read('sk-ssh-ed25519@openssh.com', wire('sk-ssh-ed25519@openssh.com', Buffer.alloc(32), 'web:')).bits).toBeUndefined();
    expect(read('ssh-dss', wire('ssh-dss', Buffer.alloc(32))).bits).toBeUndefined();
  });
});
