import { createHash } from 'node:crypto';

// SSH host public keys as known_hosts holds them (`<type> <base64 blob>`), checked strictly: they
// are read from a container the user controls (agent), and carried in reports (controller). Pure.

/** One SSH host public key: its type and the base64 of its wire-format blob. */
export interface SshHostKey {
  readonly type: string;
  readonly key: string;
}

/** The key types accepted (OpenSSH's host key types; DSA is gone from OpenSSH). */
export const SSH_HOST_KEY_TYPES: readonly string[] = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

/** The most keys one environment reports, and the longest blob (a 16384-bit RSA key is about 2.1 KiB). */
export const MAX_HOST_KEYS = 8;
const MAX_BLOB_BYTES = 4096;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Whether `key` is the canonical base64 of an SSH public key blob of type `type`: a known type,
 * valid base64 that encodes back to the same text, and a blob made exactly of the fields of that
 * type in SSH wire format (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4), nothing missing or after.
 */
export function isValidHostKey(type: string, key: string): boolean {
  if (!SSH_HOST_KEY_TYPES.includes(type) || key.length === 0 || key.length > (MAX_BLOB_BYTES * 4) / 3 + 4 || !BASE64.test(key)) return false;
  const blob = Buffer.from(key, 'base64');
  if (blob.length > MAX_BLOB_BYTES || blob.toString('base64') !== key) return false;
  const fields = wireFields(blob);
  if (!fields || fields[0]!.toString('latin1') !== type) return false;
  if (type === 'ssh-ed25519') return fields.length === 2 && fields[1]!.length === 32;
  if (type === 'ssh-rsa') return fields.length === 3 && fields[1]!.length > 0 && fields[2]!.length > 0;
  // ecdsa-sha2-<curve>: the curve's name again, then an uncompressed point (0x04, x, y).
  const curve = type.slice('ecdsa-sha2-'.length);
  const pointBytes = { nistp256: 65, nistp384: 97, nistp521: 133 }[curve];
  return fields.length === 3 && fields[1]!.toString('latin1') === curve && fields[2]!.length === pointBytes && fields[2]![0] === 4;
}

/** The length-prefixed fields (uint32 length, bytes) that make up `blob` exactly; null when it is not made of them. */
function wireFields(blob: Buffer): Buffer[] | null {
  const fields: Buffer[] = [];
  let offset = 0;
  while (offset < blob.length) {
    if (blob.length - offset < 4) return null;
    const length = blob.readUInt32BE(offset);
    if (length > blob.length - offset - 4) return null;
    fields.push(blob.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return fields.length > 0 ? fields : null;
}

/**
 * The host keys in the text of `.pub` files or of known_hosts-style lines without a host field:
 * each line `<type> <base64> [comment]` with a valid key (isValidHostKey) gives one key, the
 * comment dropped; every other line is ignored. Duplicates are dropped; at most MAX_HOST_KEYS.
 */
export function parseHostKeys(text: string): SshHostKey[] {
  const keys: SshHostKey[] = [];
  for (const line of text.split('\n')) {
    const [type = '', key = ''] = line.trim().split(/[ \t]+/);
    if (!isValidHostKey(type, key) || keys.some((k) => k.type === type && k.key === key)) continue;
    keys.push({ type, key });
    if (keys.length === MAX_HOST_KEYS) break;
  }
  return keys;
}

/** The valid keys among `keys`, without duplicates, at most MAX_HOST_KEYS, sorted by type then key (a stable order to compare). */
export function normalHostKeys(keys: readonly { readonly type: string; readonly key: string }[]): SshHostKey[] {
  const seen = new Set<string>();
  const valid: SshHostKey[] = [];
  for (const { type, key } of keys) {
    const id = `${type} ${key}`;
    if (seen.has(id) || !isValidHostKey(type, key)) continue;
    seen.add(id);
    valid.push({ type, key });
  }
  return valid.sort((a, b) => (a.type === b.type ? (a.key < b.key ? -1 : 1) : a.type < b.type ? -1 : 1)).slice(0, MAX_HOST_KEYS);
}

/** The key's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of the blob's SHA-256. */
export function hostKeyFingerprint(key: string): string {
  const digest = createHash('sha256').update(Buffer.from(key, 'base64')).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}
