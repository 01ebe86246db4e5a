import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { certSha256, readCsr, type ParsedCsr } from '../../common/pki.js';
import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { newId } from '../ids.js';
import type { ClusterTrust } from '../trust/cluster-trust.js';
import { insertHostCertificate, isNewestCertificate, keyWasCertified, supersedeCertificates } from './host-certificates.repo.js';
import { authenticateHost, presentedProof, type HostProof } from './host-auth.js';
import { validFacts } from './host-facts.js';
import { ephemeralOverlapWarnings, type PortRange } from '../../common/ports.js';
import { clearRuntimeDown, insertHost, linkToFormerHost, markMissingGpus, recordRuntimeState, sameRuntimeState, upsertGpus } from './hosts.repo.js';
import { acceptReport, writeFacts, writeTelemetry, type AcceptedReport } from './report.repo.js';
import { reportHashes, samePorts } from './report-hash.js';
import type { GpuFacts, HostFacts } from './model.js';
import type { AgentEvent, HostObserver, ObservedEnvironment } from './types.js';

/** How long a host's previous certificates keep working after a renewal (calls under way). */
const SUPERSEDED_GRACE_S = 120;

/** Checks and spends a join token inside the registration transaction (JoinTokens implements it). */
export interface JoinTokenCheck {
  consume(trx: Trx, presented: string): Promise<{ tokenId: string | null; requiresApproval: boolean }>;
}

export interface RegistryDeps {
  readonly db: Db;
  readonly logger: Logger;
  readonly trust: ClusterTrust;
  readonly joinTokens: JoinTokenCheck;
  /** Told about every report (after the host's rows were saved). */
  readonly observer: HostObserver;
  /** The configured port ranges by setting name: a host whose ephemeral range overlaps one is warned about once. */
  readonly portRanges?: readonly { readonly setting: string; readonly range: PortRange }[];
  /**
   * A report's changed usage figures (free disk, GPU utilization, memory used, temperature) are
   * written when the stored ones are at least this old (REMOTEGPU_TELEMETRY_REFRESH_MS); default 30 s.
   */
  readonly telemetryRefreshMs?: number;
}

/** Default of REMOTEGPU_TELEMETRY_REFRESH_MS. */
export const DEFAULT_TELEMETRY_REFRESH_MS = 30_000;

export interface RegisterInput {
  /** The join token's secret part. */
  readonly joinToken: string;
  /** PEM CSR for the host's new key (optional only in plaintext mode). */
  readonly csrPem: string;
  readonly facts: HostFacts;
}

export interface Registration {
  readonly hostId: string;
  /** PEM certificate for the CSR's key ('' in plaintext mode without a CSR). */
  readonly certificatePem: string;
  readonly caPem: string;
  /** Plaintext mode only: the host's bearer credential ('' under TLS). */
  readonly credential: string;
  readonly pendingApproval: boolean;
}

export interface ReportInput {
  readonly hostId: string;
  readonly proof: HostProof;
  readonly seq: number;
  /** Absent when the agent sent no facts: only liveness is recorded. */
  readonly facts: HostFacts | undefined;
  readonly environments: readonly ObservedEnvironment[];
  readonly events: readonly AgentEvent[];
  /**
   * Set when the agent's container runtime (Docker) did not answer: why. `environments` then says
   * nothing about the containers.
   */
  readonly runtimeError?: string | undefined;
  /** When the agent began taking the report, on this controller's clock; undefined when the agent does not say. */
  readonly takenAt?: Date | undefined;
}

/** The most of an agent's runtime error text kept. */
const RUNTIME_ERROR_MAX = 1_000;

/**
 * The ControlPlane's logic without gRPC: registration of agents, certificate renewal and periodic
 * reports. Never logs join tokens, keys or credentials.
 */
export class HostRegistry {
  private readonly log: Logger;
  /** Hosts already warned about an ephemeral range overlapping the port ranges (once per host and controller run). */
  private readonly warnedEphemeral = new Set<string>();

  constructor(private readonly deps: RegistryDeps) {
    this.log = deps.logger.child({ component: 'hosts' });
  }

  /** Warns once per host when its ephemeral port range overlaps a configured port range. */
  private warnEphemeral(hostId: string, facts: HostFacts): void {
    if (this.warnedEphemeral.has(hostId) || !facts.ephemeralPorts) return;
    const warnings = ephemeralOverlapWarnings(this.deps.portRanges ?? [], facts.ephemeralPorts, `host ${hostId} (${facts.hostname})`);
    if (warnings.length === 0) return;
    this.warnedEphemeral.add(hostId);
    for (const warning of warnings) this.log.warn({ hostId }, warning);
  }

  /**
   * Registers a new host: in one transaction the join token is spent (expiry and use count
   * checked), the CSR's key is checked never to have been certified (a replayed registration is
   * refused), the host is inserted (pending approval when the token says so) and its certificate
   * issued and recorded. Throws `unauthenticated` for a bad join token, `conflict` for a replay,
   * `invalid_argument` for an unusable CSR or facts.
   */
  async register(input: RegisterInput): Promise<Registration> {
    const facts = validFacts(input.facts, this.log);
    if (!input.joinToken) throw new AppError('unauthenticated', 'join_token is required');
    const { trust } = this.deps;
    const csr = trust.insecure && !input.csrPem ? undefined : await readCsr(input.csrPem);
    const res = await this.certifying(async (trx) => {
      const admission = await this.deps.joinTokens.consume(trx, input.joinToken);
      const hostId = await insertNewHost(trx, facts, { approved: !admission.requiresApproval, joinTokenId: admission.tokenId });
      const formerHostId = await linkToFormerHost(trx, hostId, facts.machineId);
      const certificatePem = csr ? (await this.certify(trx, hostId, csr)).certPem : '';
      return { hostId, formerHostId, certificatePem, pendingApproval: admission.requiresApproval, tokenId: admission.tokenId };
    });
    if (res.formerHostId) {
      // Its agent lost its identity (data directory wiped, `remotegpu-agent reset`): the GPUs are the
      // same physical ones, so those the former host's environments hold stay taken.
      this.log.warn(
        { hostId: res.hostId, formerHostId: res.formerHostId, hostname: facts.hostname },
        'host registered from the same machine (machine id) as an existing host: linked as its replacement; the former host keeps its environments until an admin deletes or moves them',
      );
    }
    this.log.info(
      { hostId: res.hostId, hostname: facts.hostname, agentAddress: facts.agentAddress, gpus: facts.gpus.length, joinTokenId: res.tokenId ?? 'bootstrap', pendingApproval: res.pendingApproval },
      'host registered',
    );
    return {
      hostId: res.hostId,
      certificatePem: res.certificatePem,
      caPem: trust.ca.certPem,
      credential: trust.insecure ? trust.hostCredential(res.hostId) : '',
      pendingApproval: res.pendingApproval,
    };
  }

  /** A new certificate for a new key of an authenticated host (rotation before expiry). */
  async renew(input: { hostId: string; proof: HostProof; csrPem: string }): Promise<{ certificatePem: string; caPem: string }> {
    await this.authenticate(input.hostId, input.proof);
    const presented = input.proof.peer ? certSha256(input.proof.peer.cert) : undefined;
    const csr = await readCsr(input.csrPem);
    const certificatePem = await this.certifying(async (trx) => {
      // Only the newest certificate renews: an older (possibly stolen) key cannot fork the host's identity.
      if (presented && !(await isNewestCertificate(trx, input.hostId, presented))) {
        throw new AppError('permission_denied', `only the newest certificate of host ${input.hostId} may renew it; this one was superseded`);
      }
      const issued = await this.certify(trx, input.hostId, csr);
      await supersedeCertificates(trx, input.hostId, issued.certSha256, SUPERSEDED_GRACE_S);
      return issued.certPem;
    });
    this.log.info({ hostId: input.hostId }, 'host certificate renewed');
    return { certificatePem, caPem: this.deps.trust.ca.certPem };
  }

  /** Checks that a call comes from `hostId` (see authenticateHost). */
  authenticate(hostId: string, proof: HostProof): Promise<void> {
    return authenticateHost(this.deps.db, this.deps.trust, hostId, proof);
  }

  /** Runs `fn` in a transaction; a key certified meanwhile by a concurrent call is a replay too. */
  private certifying<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.deps.db
      .transaction()
      .execute(fn)
      .catch((err: unknown) => {
        throw isUniqueViolation(err) ? replayed() : err;
      });
  }

  /** Certifies the CSR's key for `hostId` and records it; a key certified before is a replay. */
  private async certify(trx: Trx, hostId: string, csr: ParsedCsr): Promise<{ certPem: string; certSha256: string }> {
    if (await keyWasCertified(trx, csr.keySha256)) throw replayed();
    const issued = await this.deps.trust.issueHostCertificate(csr.csr.publicKey, hostId);
    const sha = certSha256(issued.certPem);
    await insertHostCertificate(trx, { serial: issued.serial, hostId, keySha256: csr.keySha256, certSha256: sha, notAfter: issued.notAfter });
    return { certPem: issued.certPem, certSha256: sha };
  }

  /**
   * Records a report. One statement checks the host's certificate (the checks that need no
   * database come first), accepts it (online, last report time, sequence) and reads back
   * the stored hashes, the runtime mark and the environments on the host; when nothing changed that
   * is all. Otherwise, in one transaction guarded by the accepted sequence: the facts and every
   * reported GPU when their hash changed (GPUs left out marked absent and unhealthy), else only the
   * usage figures when they changed and the stored ones are old enough; the runtime state when it
   * changed. A stale report (sequence not newer than the last accepted one of this agent run)
   * changes nothing and is not passed on. Then the observer gets the environments and events; its
   * failure fails the call, so the agent sends the events again with its next report.
   *
   * A report saying the container runtime does not answer keeps the host online and records the
   * runtime's state on the host (shown to admins); the observer then gets the events but no
   * observations (null). The first report after it answers again tells the observer since when
   * it was down.
   */
  async report(input: ReportInput): Promise<{ accepted: boolean }> {
    const runtimeError = input.runtimeError === undefined ? undefined : input.runtimeError.slice(0, RUNTIME_ERROR_MAX);
    const { db, trust } = this.deps;
    const fingerprint = presentedProof(trust, input.hostId, input.proof);
    const facts = input.facts ? validFacts(input.facts, this.log) : undefined;
    if (facts) this.warnEphemeral(input.hostId, facts);
    const row = await acceptReport(db, input.hostId, input.seq, this.deps.telemetryRefreshMs ?? DEFAULT_TELEMETRY_REFRESH_MS, fingerprint);
    if (!row) {
      // Refused (revoked, removed, an expired certificate: this throws), or stale.
      await this.authenticate(input.hostId, input.proof);
      this.log.debug({ hostId: input.hostId, seq: input.seq }, 'stale report ignored');
      return { accepted: false };
    }
    const mark = { runtime_down_since: row.runtimeDownSince, runtime_error: row.runtimeError };
    const writes = facts ? factWrites(row, facts) : undefined;
    let runtime: Awaited<ReturnType<typeof recordRuntimeState>> = { change: 'same' };
    if (writes?.facts || writes?.telemetry || !sameRuntimeState(mark, runtimeError)) {
      runtime = await db.transaction().execute(async (trx) => {
        if (facts && writes?.facts) {
          if (await writeFacts(trx, input.hostId, input.seq, facts, writes.hashes)) {
            const missing = await saveGpus(trx, input.hostId, facts.gpus);
            if (missing.length > 0) this.log.warn({ hostId: input.hostId, gpus: missing }, 'GPUs no longer reported by the agent marked unhealthy');
          }
        } else if (facts && writes?.telemetry) {
          await writeTelemetry(trx, input.hostId, input.seq, facts, writes.hashes.telemetry);
        }
        return recordRuntimeState(trx, input.hostId, mark, runtimeError);
      });
    }
    if (runtime.change === 'down') this.log.warn({ hostId: input.hostId, reason: runtimeError }, 'container runtime of the host unavailable: its environments keep their state, no calls to it until it answers');
    if (runtime.change === 'up') this.log.info({ hostId: input.hostId, downSince: runtime.downSince }, 'container runtime of the host answers again');
    await this.deps.observer.onReport(input.hostId, runtimeError === undefined ? input.environments : null, input.events, {
      runtimeDownSince: runtime.change === 'up' ? runtime.downSince : undefined,
      known: row.known,
      takenAt: input.takenAt,
    });
    if (runtime.change === 'up') await clearRuntimeDown(db, input.hostId);
    return { accepted: true };
  }
}

/** What of a report's facts must be written over the stored row: the facts (and GPUs) when they changed, else the usage figures when they changed and are old enough. */
function factWrites(row: AcceptedReport, facts: HostFacts) {
  const hashes = reportHashes(facts);
  const changed = row.factsHash !== hashes.facts || !samePorts(row.busyPorts, facts.busyPorts);
  return { hashes, facts: changed, telemetry: !changed && row.telemetryHash !== hashes.telemetry && !row.telemetryFresh };
}

function replayed(): AppError {
  return new AppError('conflict', 'this key was already certified: a replayed registration is refused (the agent makes a new key for every registration and renewal)');
}

async function insertNewHost(trx: Trx, facts: HostFacts, admission: { approved: boolean; joinTokenId: string | null }): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = newId('host');
    if (await insertHost(trx, id, facts, admission)) {
      await saveGpus(trx, id, facts.gpus);
      return id;
    }
  }
  throw new AppError('internal', 'could not allocate a unique host id');
}

/** Upserts the reported GPUs and marks the others absent; returns the uuids newly marked absent. */
async function saveGpus(db: Db, hostId: string, gpus: readonly GpuFacts[]): Promise<string[]> {
  await upsertGpus(db, hostId, gpus);
  return markMissingGpus(
    db,
    hostId,
    gpus.map((g) => g.uuid),
  );
}
