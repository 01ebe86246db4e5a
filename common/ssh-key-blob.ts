import { createHash } from 'node:crypto';

// The SSH public key wire format, shared by the user keys the controller accepts
// (controller/users/ssh-key-format.ts, with its own policy and messages) and the host keys agents
// read from containers (ssh-host-keys.ts). Pure: what a blob is, never which keys are welcome.

/** Strict base64: only the alphabet, correct padding, and it re-encodes to the same text (one text per blob). */
export function decodeBase64Strict(data: string): Buffer | undefined {
  if (data.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) return undefined;
  const blob = Buffer.from(data, 'base64');
  return blob.toString('base64') === data ? blob : undefined;
}

/** Reads the SSH wire format (RFC 4251 strings: uint32 length + bytes). */
export class WireReader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}

  /** The next string; undefined when the blob ends before it does. */
  string(): Buffer | undefined {
    if (this.offset + 4 > this.buf.length) return undefined;
    const length = this.buf.readUInt32BE(this.offset);
    const start = this.offset + 4;
    if (start + length > this.buf.length) return undefined;
    this.offset = start + length;
    return this.buf.subarray(start, start + length);
  }

  /** Whether every byte has been read. */
  get done(): boolean {
    return this.offset === this.buf.length;
  }
}

/** The curve of each ECDSA key type, and the size of an uncompressed point (0x04, x, y) on it (RFC 5656 §3.1). */
const EC_CURVES: Record<string, string> = {
  'ecdsa-sha2-nistp256': 'nistp256',
  'ecdsa-sha2-nistp384': 'nistp384',
  'ecdsa-sha2-nistp521': 'nistp521',
  'sk-ecdsa-sha2-nistp256@openssh.com': 'nistp256',
};
const EC_POINT_BYTES: Record<string, number> = { nistp256: 65, nistp384: 97, nistp521: 133 };

/**
 * Reads the fields that follow the type field in a public key blob of `type` (RFC 4253 §6.6,
 * RFC 5656 §3.1, RFC 8709 §4, OpenSSH's PROTOCOL.u2f for the `sk-` types): the key's size in
 * bits as `ssh-keygen -l` reports it (256 for ed25519, the modulus size for RSA), or undefined
 * when a field is missing, of the wrong size, or the type is not one of these. Leaves whatever
 * follows unread (`r.done` says whether anything does).
 */
export function readKeyFields(type: string, r: WireReader): number | undefined {
  let bits: number;
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    if (r.string()?.length !== 32) return undefined;
    bits = 256;
  } else if (type === 'ssh-rsa') {
    const e = r.string();
    const n = r.string();
    if (!e?.length || !n?.length) return undefined;
    bits = mpintBits(n);
  } else {
    const curve = EC_CURVES[type];
    if (curve === undefined || r.string()?.toString('latin1') !== curve) return undefined;
    const point = r.string();
    if (!point || point.length !== EC_POINT_BYTES[curve] || point[0] !== 0x04) return undefined;
    bits = Number(curve.slice('nistp'.length));
  }
  if (type.startsWith('sk-') && !r.string()?.toString('latin1').startsWith('ssh:')) return undefined;
  return bits;
}

/** The significant bits of an unsigned big-endian integer (leading zero bytes skipped). */
function mpintBits(n: Buffer): number {
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  if (i === n.length) return 0;
  return (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]!));
}

/** The blob's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of its SHA-256. */
export function keyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
