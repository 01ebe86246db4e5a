import { describeIdentity, type Peer } from '../../common/grpc-tls.js';
import { AppError } from '../../common/errors.js';
import { certSha256 } from '../../common/pki.js';
import { sameSecret } from '../../common/secrets.js';
import type { Db } from '../db/database.js';
import type { ClusterTrust } from '../trust/cluster-trust.js';
import { certificateIssuedTo, hostExists } from './host-certificates.repo.js';

/** What a caller of the ControlPlane presented: its verified TLS certificate, or (plaintext mode) a bearer secret. */
export interface HostProof {
  readonly peer: Peer | undefined;
  readonly bearer: string;
}

/**
 * The checks of a ControlPlane call that need no database: under TLS a client certificate (the
 * handshake checked that it chains to the cluster CA and is valid) naming host `hostId`; in
 * plaintext mode the bearer credential derived for this host. Returns the certificate's
 * fingerprint, which the database must still know as issued to the host (null in plaintext mode,
 * where only the host's existence is left to check). A report does that in its one statement
 * (report.repo.ts); other calls use authenticateHost. Throws like authenticateHost.
 */
export function presentedProof(trust: ClusterTrust, hostId: string, proof: HostProof): string | null {
  if (!hostId) throw new AppError('invalid_argument', 'host_id is required');
  if (trust.insecure) {
    if (!proof.bearer) throw new AppError('unauthenticated', 'missing host credential: send metadata "authorization: Bearer <host credential>"');
    if (!sameSecret(proof.bearer, trust.hostCredential(hostId))) throw new AppError('unauthenticated', `the host credential does not match host ${hostId}`);
    return null;
  }
  const { peer } = proof;
  if (!peer) {
    throw new AppError('unauthenticated', 'a client certificate issued by the cluster CA is required (register first; an expired certificate is refused too)');
  }
  if (peer.identity?.kind !== 'host' || peer.identity.hostId !== hostId) {
    throw new AppError('permission_denied', `the client certificate is for ${describeIdentity(peer.identity)}, not host ${hostId}`);
  }
  return certSha256(peer.cert);
}

/**
 * Checks that a ControlPlane call comes from `hostId`: presentedProof, then the database: the
 * certificate was issued to this host by this controller and has not expired (so a removed or
 * revoked host's certificates stop working at once, on every replica), or in plaintext mode the
 * host exists. Throws `unauthenticated` (no or unknown proof), `permission_denied` (another
 * identity) or `not_found` (the host was removed).
 */
export async function authenticateHost(db: Db, trust: ClusterTrust, hostId: string, proof: HostProof): Promise<void> {
  const fingerprint = presentedProof(trust, hostId, proof);
  if (fingerprint === null) {
    if (!(await hostExists(db, hostId))) throw removed(hostId);
    return;
  }
  if (await certificateIssuedTo(db, hostId, fingerprint)) return;
  if (!(await hostExists(db, hostId))) throw removed(hostId);
  throw new AppError('unauthenticated', `this certificate was not issued to host ${hostId} by this controller`);
}

function removed(hostId: string): AppError {
  return new AppError(
    'not_found',
    `host ${hostId} is not registered with this controller (removed by an admin, or the database was reset): run \`remotegpu-agent reset\` and join again`,
  );
}
