import { decodeBase64Strict, keyFingerprint, readKeyFields, WireReader } from '../../common/ssh-key-blob.js';

/** OpenSSH public key types accepted for `authorized_keys`. */
export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;

export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

/** A validated OpenSSH public key. */
export interface SshPublicKey {
  readonly type: SshKeyType;
  /** The decoded key blob (what the fingerprint hashes). */
  readonly blob: Buffer;
  /** Text after the key data, '' when none. */
  readonly comment: string;
  /** `SHA256:` + unpadded base64 of sha256(blob), as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
  /** Key size in bits as `ssh-keygen -l` reports it (256 for ed25519, the modulus size for RSA). */
  readonly bits: number;
  /** One line: `type base64 [comment]`, with whitespace collapsed; what goes into authorized_keys. */
  readonly line: string;
}

export type SshKeyParse = { readonly ok: true; readonly key: SshPublicKey } | { readonly ok: false; readonly problem: string };

const MIN_RSA_BITS = 1024;

/**
 * Parses one public key in OpenSSH format (`ssh-ed25519 AAAA... comment`, the content of a `.pub`
 * file). Checks that the type is supported, the base64 decodes, the blob's embedded type matches
 * the declared one and its fields have the sizes the type requires. Never throws: a rejected key
 * comes back with a problem a user can act on (private keys, RFC 4716 files, certificates, DSA
 * and authorized_keys options are named as such).
 */
export function parseSshPublicKey(input: string): SshKeyParse {
  const text = input.trim();
  if (text === '') return fail('is empty: paste the content of your public key file, e.g. ~/.ssh/id_ed25519.pub');
  if (/PRIVATE KEY|PuTTY-User-Key-File/.test(text)) {
    return fail(
      'this is a PRIVATE key: never share it. Paste the PUBLIC key instead (the .pub file, e.g. ~/.ssh/id_ed25519.pub, or the output of `ssh-keygen -y -f <private key>`)',
    );
  }
  if (text.startsWith('---- BEGIN SSH2 PUBLIC KEY')) {
    return fail('this is an RFC 4716 (SSH2) public key: convert it with `ssh-keygen -i -f <file>` and paste the one-line result');
  }
  if (/[\r\n]/.test(text)) return fail('must be a single line holding one key; add several keys one at a time');
  // PostgreSQL text cannot hold NUL, and the line goes verbatim into authorized_keys: no control
  // character but the tab that may separate fields.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) return fail('must not contain control characters (such as NUL or escape), also not in the comment');

  const [type = '', data, ...rest] = text.split(/[ \t]+/);
  if (!isSupportedType(type)) return fail(unsupportedType(type));
  if (data === undefined) return fail(`has no key data after "${type}": expected "${type} AAAA... [comment]"`);
  const blob = decodeBase64Strict(data);
  if (!blob) return fail('key data is not valid base64: copy the whole line of the .pub file without changing it');

  const problem = checkBlob(type, blob);
  if (typeof problem === 'string') return fail(problem);
  const comment = rest.join(' ');
  const fingerprint = keyFingerprint(blob);
  return {
    ok: true,
    key: { type, blob, comment, fingerprint, bits: problem.bits, line: comment ? `${type} ${data} ${comment}` : `${type} ${data}` },
  };
}

function fail(problem: string): SshKeyParse {
  return { ok: false, problem };
}

function isSupportedType(type: string): type is SshKeyType {
  return (SSH_KEY_TYPES as readonly string[]).includes(type);
}

function unsupportedType(type: string): string {
  const expected = `expected one of ${SSH_KEY_TYPES.join(', ')}`;
  if (type === 'ssh-dss') return `DSA keys are not supported (OpenSSH disabled them): generate a new key with \`ssh-keygen -t ed25519\``;
  if (type.endsWith('-cert-v01@openssh.com')) return `SSH certificates are not supported: paste the plain public key; ${expected}`;
  if (/[=,"]/.test(type)) return `authorized_keys options before the key type are not accepted: paste only "<type> <key> [comment]"`;
  return `unsupported key type "${type.slice(0, 40)}": ${expected}`;
}

/** The key's size in bits, or why the blob does not hold a key of `type`. */
function checkBlob(type: SshKeyType, blob: Buffer): { bits: number } | string {
  const r = new WireReader(blob);
  const embedded = r.string();
  if (!embedded) return 'key data is truncated or is not an SSH public key';
  if (embedded.toString('latin1') !== type) {
    return `key data is a "${printable(embedded)}" key but the line says "${type}": copy the whole line of the .pub file without changing it`;
  }
  const bits = readKeyFields(type, r);
  if (bits === undefined) return 'key data is truncated or corrupted: copy the whole line of the .pub file';
  // Host keys accept any RSA size (common/ssh-host-keys.ts); a user's key must not be weak.
  if (type === 'ssh-rsa' && bits < MIN_RSA_BITS) return `RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required (better: \`ssh-keygen -t ed25519\`)`;
  if (!r.done) return 'key data has trailing bytes: copy the whole line of the .pub file without changing it';
  return { bits };
}

function printable(buf: Buffer): string {
  return buf.toString('latin1').replace(/[^\x20-\x7e]/g, '?').slice(0, 40);
}
