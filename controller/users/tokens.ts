import { randomBytes } from 'node:crypto';
import { hashSecret } from '../../common/secrets.js';

/** A new API token: `rgpu_` + 43 base64url characters (256 bits). Shown once, stored hashed. */
export function generateToken(prefix = 'rgpu_'): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** How a token is stored: sha256 hex. */
export const hashToken = hashSecret;

/** The first characters of a token, safe to show in listings. */
export function tokenPrefix(token: string): string {
  return token.slice(0, 9);
}
