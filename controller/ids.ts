import { randomInt } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random id like `env-k3x9q2m1zt` or `host-0f3a9x2b1c`: a prefix and 10 characters of [a-z0-9]
 * (~51 bits), drawn without modulo bias. Every generated id in the controller comes from here.
 */
export function newId(prefix: 'env' | 'host'): string {
  return `${prefix}-${randomChars(10)}`;
}

/** A join token id like `jt_k3x9q2m7ab` (an underscore: the token itself is `<id>.<secret>`). */
export function newJoinTokenId(): string {
  return `jt_${randomChars(10)}`;
}

function randomChars(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
