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

/** Default and ceiling of REMOTEGPU_HOST_AUTH_CACHE_MS: how long another replica's revocation may take to reach this one. */
export const HOST_AUTH_CACHE_MAX_MS = 5_000;

/** Entries stored between two sweeps of expired ones. */
const SWEEP_EVERY = 1_000;

/**
 * Checks that a ControlPlane call comes from a host. Under TLS: a client certificate that chains to
 * the cluster CA (the handshake checked that and its validity), names this host, and was issued to
 * it by this controller (so a removed or revoked host's certificates stop working). In plaintext
 * mode: the bearer credential derived for this host, of a host that exists.
 *
 * The database's answer is cached in memory for `maxAgeMs` (at most 5 s, never past the
 * certificate's end), so a host's reports do not look up its certificate every time. `forget`
 * drops a host's entries at once: the admin service calls it when it revokes or removes a host on
 * this controller. A revocation on another replica reaches this one when the entry expires, within
 * `maxAgeMs`. Refusals are never cached.
 */
export class HostCredentials {
  /** host id → certificate fingerprint ('' in plaintext mode) → accepted until (Date.now() ms). */
  private readonly accepted = new Map<string, Map<string, number>>();
  /** Counts `forget` calls: a lookup that raced with one is not cached. */
  private forgets = 0;
  private stores = 0;

  constructor(
    private readonly db: Db,
    private readonly trust: ClusterTrust,
    private readonly maxAgeMs: number = HOST_AUTH_CACHE_MAX_MS,
  ) {}

  /**
   * Throws `unauthenticated` (no or unknown proof), `permission_denied` (another identity) or
   * `not_found` (the host was removed). `fresh`: ask the database whatever is cached, and cache nothing (renewals).
   */
  async authenticate(hostId: string, proof: HostProof, options: { fresh?: boolean } = {}): Promise<void> {
    const key = this.presented(hostId, proof);
    const now = Date.now();
    const until = this.accepted.get(hostId)?.get(key);
    if (until !== undefined && until > now && !options.fresh) return;
    const forgets = this.forgets;
    const validUntil = await this.lookUp(hostId, key);
    if (this.maxAgeMs > 0 && forgets === this.forgets && !options.fresh) this.store(hostId, key, Math.min(now + this.maxAgeMs, validUntil));
  }

  /** Drops what is cached for `hostId` (revoked or removed): its next call is checked against the database. */
  forget(hostId: string): void {
    this.forgets++;
    this.accepted.delete(hostId);
  }

  /** Whether a proof of `hostId` is cached (tests). */
  isCached(hostId: string): boolean {
    return [...(this.accepted.get(hostId)?.values() ?? [])].some((until) => until > Date.now());
  }

  /** The checks that need no database; returns the cache key of the proof. */
  private presented(hostId: string, proof: HostProof): string {
    if (!hostId) throw new AppError('invalid_argument', 'host_id is required');
    if (this.trust.insecure) {
      if (!proof.bearer) throw new AppError('unauthenticated', 'missing host credential: send metadata "authorization: Bearer <host credential>"');
      if (!sameSecret(proof.bearer, this.trust.hostCredential(hostId))) throw new AppError('unauthenticated', `the host credential does not match host ${hostId}`);
      return '';
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

  /** The database's answer: until when the proof holds (ms), or the refusal. */
  private async lookUp(hostId: string, fingerprint: string): Promise<number> {
    if (this.trust.insecure) {
      if (!(await hostExists(this.db, hostId))) throw removed(hostId);
      return Number.POSITIVE_INFINITY;
    }
    const notAfter = await certificateIssuedTo(this.db, hostId, fingerprint);
    if (notAfter) return notAfter.getTime();
    if (!(await hostExists(this.db, hostId))) throw removed(hostId);
    throw new AppError('unauthenticated', `this certificate was not issued to host ${hostId} by this controller`);
  }

  private store(hostId: string, key: string, until: number): void {
    if (++this.stores % SWEEP_EVERY === 0) this.sweep();
    let entries = this.accepted.get(hostId);
    if (!entries) this.accepted.set(hostId, (entries = new Map()));
    entries.set(key, until);
  }

  /** Drops expired entries (a host's renewed certificates leave old ones behind). */
  private sweep(): void {
    const now = Date.now();
    for (const [hostId, entries] of this.accepted) {
      for (const [key, until] of entries) if (until <= now) entries.delete(key);
      if (entries.size === 0) this.accepted.delete(hostId);
    }
  }
}

/** Checks a ControlPlane call against the database, uncached (see HostCredentials). */
export function authenticateHost(db: Db, trust: ClusterTrust, hostId: string, proof: HostProof): Promise<void> {
  return new HostCredentials(db, trust, 0).authenticate(hostId, proof);
}

function removed(hostId: string): AppError {
  return new AppError(
    'not_found',
    `host ${hostId} is not registered with this controller (removed by an admin, or the database was reset): run \`remotegpu-agent reset\` and join again`,
  );
}
