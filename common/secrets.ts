import { createHash, timingSafeEqual } from 'node:crypto';

// Secrets (API tokens, the join token, host credentials) are stored and compared only as hashes.

/** sha256 hex of a secret; secrets are stored and compared only as hashes. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatchesHash(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Constant-time comparison of a presented secret with the expected one. Both are hashed first, so
 * neither the content nor the length of the expected secret leaks through timing.
 */
export function sameSecret(presented: string, expected: string): boolean {
  return secretMatchesHash(presented, hashSecret(expected));
}
