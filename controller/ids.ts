import { randomInt } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random id like `env-k3x9q2m1zt` or `host-0f3a9x2b1c`: a prefix and 10 characters of [a-z0-9]
 * (~51 bits), drawn without modulo bias. Every generated id in the controller comes from here.
 */
export function newId(prefix: 'env' | 'host'): string {
  let out = `${prefix}-`;
  for (let i = 0; i < 10; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
