import { decodeBase64Strict, keyFingerprint, readKeyFields, WireReader } from './ssh-key-blob.js';

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

/**
 * Whether `key` is the canonical base64 of an SSH public key blob of type `type`: a known type,
 * valid base64 that encodes back to the same text, and a blob made exactly of the fields of that
 * type in SSH wire format (ssh-key-blob.ts readKeyFields), nothing missing or after. Any RSA size
 * is accepted: the key is the server's, so its strength is not ours to judge.
 */
export function isValidHostKey(type: string, key: string): boolean {
  // The length bound first: the text comes from a file the user wrote.
  if (!SSH_HOST_KEY_TYPES.includes(type) || key.length > (MAX_BLOB_BYTES * 4) / 3 + 4) return false;
  const blob = decodeBase64Strict(key);
  if (!blob || blob.length > MAX_BLOB_BYTES) return false;
  const r = new WireReader(blob);
  return r.string()?.toString('latin1') === type && readKeyFields(type, r) !== undefined && r.done;
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
  return keyFingerprint(Buffer.from(key, 'base64'));
}
