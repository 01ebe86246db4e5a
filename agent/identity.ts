import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../common/config.js';

// What the agent keeps between runs, in <data dir>/agent-identity.json (mode 0600, written
// atomically): its host id, the cluster CA it trusts, its private key and certificate. The key
// lives only in this file. Only `remotegpu-agent reset` (or deleting the file) makes the agent
// register anew; nothing said on the wire does.

/** The identity file, version 2. */
export interface AgentIdentity {
  readonly version: 2;
  readonly hostId: string;
  /** The controller address it registered with (for the operator; the agent dials REMOTEGPU_CONTROLLER). */
  readonly controller: string;
  /** The cluster CA (PEM): the only root the agent trusts. '' when registered in insecure mode without one. */
  readonly caPem: string;
  /** The host's private key (PKCS#8 PEM) and its certificate naming spiffe://remotegpu/host/<hostId>. */
  readonly keyPem: string;
  readonly certPem: string;
  /** Only with REMOTEGPU_GRPC_INSECURE=1: the bearer secret of this host. */
  readonly credential?: string;
}

/** What the data directory holds. */
export type StoredIdentity =
  | { readonly kind: 'none' }
  | { readonly kind: 'current'; readonly identity: AgentIdentity }
  /** A version-1 file: host id and bearer credential, no certificate (usable in insecure mode only). */
  | { readonly kind: 'legacy'; readonly hostId: string; readonly controller: string; readonly credential: string }
  | { readonly kind: 'unreadable'; readonly reason: string };

export const IDENTITY_FILE = 'agent-identity.json';

export function identityPath(dataDir: string): string {
  return path.join(dataDir, IDENTITY_FILE);
}

/** Reads the identity file (any version). Never deletes or rewrites it. */
export async function readIdentity(dataDir: string): Promise<StoredIdentity> {
  let text: string;
  try {
    text = await readFile(identityPath(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'unreadable', reason: (err as Error).message };
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    return { kind: 'unreadable', reason: `not JSON (${(err as Error).message})` };
  }
  const str = (key: string) => (typeof raw[key] === 'string' ? (raw[key] as string) : '');
  if (!str('hostId')) return { kind: 'unreadable', reason: 'no hostId' };
  if (raw.version === undefined && str('credential')) return { kind: 'legacy', hostId: str('hostId'), controller: str('controller'), credential: str('credential') };
  if (raw.version !== 2) return { kind: 'unreadable', reason: `unknown version ${JSON.stringify(raw.version)}` };
  const identity: AgentIdentity = {
    version: 2,
    hostId: str('hostId'),
    controller: str('controller'),
    caPem: str('caPem'),
    keyPem: str('keyPem'),
    certPem: str('certPem'),
    ...(str('credential') ? { credential: str('credential') } : {}),
  };
  return { kind: 'current', identity };
}

/** Whether an identity carries what mutual TLS needs: CA, key and certificate. */
export function hasCertificate(identity: AgentIdentity): boolean {
  return Boolean(identity.caPem && identity.keyPem && identity.certPem);
}

/** Saves the identity atomically (write + rename), readable by its owner only. */
export async function saveIdentity(dataDir: string, identity: AgentIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const target = identityPath(dataDir);
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(identity, null, 1)}\n`, { mode: 0o600 });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Deletes the identity file (remotegpu-agent reset). */
export async function deleteIdentity(dataDir: string): Promise<void> {
  await rm(identityPath(dataDir));
}

export interface StartSettings {
  readonly dataDir: string;
  readonly joinToken: string | undefined;
  readonly caPin: string | undefined;
  readonly grpcInsecure: boolean;
}

const RESET = 'run `remotegpu-agent reset`, delete the host on the controller and start the agent again with a new join token';

/**
 * The identity the agent starts with (undefined: it registers first), or a ConfigError (one line)
 * when the data directory and the configuration cannot work together: an identity that does not
 * fit the gRPC mode, or nothing to register with.
 */
export async function identityAtStart(settings: StartSettings): Promise<AgentIdentity | undefined> {
  const stored = await readIdentity(settings.dataDir);
  const file = identityPath(settings.dataDir);
  const tls = !settings.grpcInsecure;
  switch (stored.kind) {
    case 'unreadable':
      throw new ConfigError(`cannot use ${file}: ${stored.reason}; restore it, or ${RESET}`);
    case 'legacy':
      if (tls) {
        throw new ConfigError(
          `${file} (host ${stored.hostId}) was written by an older agent: it holds a bearer credential but no certificate, so it cannot be used with mutual TLS; ${RESET} (DELETE /api/v1/admin/hosts/${stored.hostId}), or set REMOTEGPU_GRPC_INSECURE=1 on both sides to stay on plaintext gRPC`,
        );
      }
      return { version: 2, hostId: stored.hostId, controller: stored.controller, caPem: '', keyPem: '', certPem: '', credential: stored.credential };
    case 'current':
      if (tls && !hasCertificate(stored.identity)) {
        throw new ConfigError(`${file} (host ${stored.identity.hostId}) was registered over plaintext gRPC and has no certificate; set REMOTEGPU_GRPC_INSECURE=1 again, or ${RESET}`);
      }
      if (!tls && !stored.identity.credential) {
        throw new ConfigError(`${file} (host ${stored.identity.hostId}) was registered with mutual TLS and has no bearer credential for plaintext gRPC; unset REMOTEGPU_GRPC_INSECURE, or ${RESET}`);
      }
      return stored.identity;
    case 'none':
      if (!settings.joinToken) throw new ConfigError(`this host is not registered yet (no ${file}) and REMOTEGPU_JOIN_TOKEN is not set: set it to a join token from the controller`);
      if (tls && !settings.caPin) {
        throw new ConfigError(
          'REMOTEGPU_JOIN_TOKEN carries no CA pin, so the agent cannot tell the real controller from an impostor: use the token as the controller prints it (<secret>@sha256:<64 hex>), or set REMOTEGPU_CA_HASH=sha256:<64 hex> (REMOTEGPU_GRPC_INSECURE=1 registers over plaintext without one)',
        );
      }
      return undefined;
  }
}
