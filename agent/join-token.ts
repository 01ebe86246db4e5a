import { z } from 'zod';
import { ConfigError } from '../common/config.js';

// The join token an admin hands to an agent: `<secret part>@sha256:<64 hex>`. The secret part goes
// to the controller in Register; the pin (the hash of the cluster CA's public key, like kubeadm's
// --discovery-token-ca-cert-hash) stays here and decides which controller the agent trusts at its
// very first connection. A bare secret (the bootstrap token) takes its pin from REMOTEGPU_CA_HASH.

const PIN_SEPARATOR = '@sha256:';
const PIN = /^sha256:[0-9a-f]{64}$/;

export interface JoinToken {
  /** What Register carries. */
  readonly secret: string;
  /** "sha256:<64 lowercase hex>", or undefined for a bare secret. */
  readonly pin: string | undefined;
}

/** Splits a join token at its last "@sha256:". Throws an Error (one line) when the pin is malformed. */
export function parseJoinToken(token: string): JoinToken {
  const at = token.lastIndexOf(PIN_SEPARATOR);
  if (at < 0) return { secret: token, pin: undefined };
  return { secret: token.slice(0, at), pin: parseCaPin(token.slice(at + 1)) };
}

/** Validates and normalises a CA pin "sha256:<64 hex>" (hex case-insensitive). Throws an Error when malformed. */
export function parseCaPin(value: string): string {
  const pin = value.trim().toLowerCase();
  if (!PIN.test(pin)) throw new Error('the CA pin must be sha256:<64 hex digits> (the hash the controller prints with the join token)');
  return pin;
}

/** REMOTEGPU_JOIN_TOKEN: a secret of 16+ characters, optionally followed by "@sha256:<64 hex>". */
export const joinTokenVar = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined) return undefined;
    try {
      const token = parseJoinToken(value);
      if (token.secret.length >= 16) return token;
      ctx.addIssue({ code: 'custom', message: 'expected a secret of at least 16 characters, then optionally @sha256:<64 hex digits>' });
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
    return z.NEVER;
  });

/** REMOTEGPU_CA_HASH: the pin for a bare join token (the bootstrap token), "sha256:<64 hex>". */
export const caHashVar = z
  .string()
  .optional()
  .transform((value, ctx) => {
    if (value === undefined) return undefined;
    try {
      return parseCaPin(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** The one pin of the configuration: the token's or REMOTEGPU_CA_HASH; both must agree. Throws ConfigError. */
export function configuredPin(token: JoinToken | undefined, caHash: string | undefined): string | undefined {
  if (token?.pin && caHash && token.pin !== caHash) {
    throw new ConfigError(`invalid configuration: REMOTEGPU_CA_HASH=${JSON.stringify(caHash)}: differs from the CA pin in REMOTEGPU_JOIN_TOKEN; set only one of them`);
  }
  return token?.pin ?? caHash;
}
