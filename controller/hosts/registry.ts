import { randomBytes } from 'node:crypto';
import { AppError, invalidFields } from '../../common/errors.js';
import { hashSecret, sameSecret, secretMatchesHash } from '../../common/secrets.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { newId } from '../ids.js';
import { acceptReportRow, findHostCredential, insertHost, markMissingGpus, updateHostOnRegister, upsertGpus } from './hosts.repo.js';
import type { GpuFacts, HostFacts } from './model.js';
import type { AgentEvent, HostObserver, ObservedEnvironment } from './types.js';

export interface RegistryDeps {
  readonly db: Db;
  readonly logger: Logger;
  /** The cluster's join token (REMOTEGPU_JOIN_TOKEN or generated at start). */
  readonly joinToken: string;
  /** Told about every report (after the host's rows were saved). */
  readonly observer: HostObserver;
}

export interface RegisterInput {
  readonly joinToken: string;
  /** Host id from an earlier registration, '' on the first one. */
  readonly hostId: string;
  /** Bearer credential presented with the call, '' when none. */
  readonly credential: string;
  readonly facts: HostFacts;
}

export interface ReportInput {
  readonly hostId: string;
  readonly credential: string;
  readonly seq: number;
  /** Absent when the agent sent no facts: only liveness is recorded. */
  readonly facts: HostFacts | undefined;
  readonly environments: readonly ObservedEnvironment[];
  readonly events: readonly AgentEvent[];
}

/** A new host credential: 32 random bytes, base64url. */
export function newHostCredential(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The ControlPlane's logic without gRPC: registration of agents and their periodic reports. Never
 * logs join tokens or credentials.
 */
export class HostRegistry {
  private readonly joinTokenHash: string;
  private readonly log: Logger;

  constructor(private readonly deps: RegistryDeps) {
    this.joinTokenHash = hashSecret(deps.joinToken);
    this.log = deps.logger.child({ component: 'hosts' });
  }

  /**
   * Registers an agent. With the id of an existing host and that host's credential it re-registers
   * it (same id and credential, facts updated, report sequence reset), so an agent restart never
   * creates a second host; the join token is not needed then. Otherwise the join token must match
   * and a new host is created. Throws `unauthenticated` for a wrong join token or for an existing
   * host id presented without its credential, `invalid_argument` for unusable facts.
   */
  async register(input: RegisterInput): Promise<{ hostId: string; credential: string; created: boolean }> {
    const facts = validFacts(input.facts, this.log);
    if (input.hostId) {
      const known = await findHostCredential(this.deps.db, input.hostId);
      if (known) {
        if (!input.credential || !sameSecret(input.credential, known.credential)) {
          throw new AppError(
            'unauthenticated',
            `host ${input.hostId} is registered, but the presented host credential does not match it; ` +
              `restore the agent's state directory, or remove the host (DELETE /api/v1/admin/hosts/${input.hostId}) and clear the agent's state to register it anew`,
          );
        }
        await this.deps.db.transaction().execute(async (trx) => {
          if (!(await updateHostOnRegister(trx, known.id, facts))) throw new AppError('not_found', `host ${known.id} was removed meanwhile; register again`);
          await saveGpus(trx, known.id, facts.gpus);
        });
        this.log.info({ hostId: known.id, hostname: facts.hostname, gpus: facts.gpus.length }, 'host re-registered');
        return { hostId: known.id, credential: known.credential, created: false };
      }
      this.log.info({ hostId: input.hostId }, 'unknown host id presented on registration; registering as a new host');
    }
    if (!input.joinToken || !secretMatchesHash(input.joinToken, this.joinTokenHash)) {
      throw new AppError('unauthenticated', "invalid join token: the agent's REMOTEGPU_JOIN_TOKEN must equal the controller's");
    }
    const credential = newHostCredential();
    const hostId = await this.deps.db.transaction().execute(async (trx) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const id = newId('host');
        if (await insertHost(trx, id, credential, facts)) {
          await saveGpus(trx, id, facts.gpus);
          return id;
        }
      }
      throw new AppError('internal', 'could not allocate a unique host id');
    });
    this.log.info({ hostId, hostname: facts.hostname, agentAddress: facts.agentAddress, gpus: facts.gpus.length }, 'host registered');
    return { hostId, credential, created: true };
  }

  /**
   * Checks a host id and its bearer credential. Throws `not_found` for an unknown host (the agent
   * must register again) and `unauthenticated` for a missing or wrong credential.
   */
  async authenticate(hostId: string, credential: string): Promise<void> {
    if (!hostId) throw new AppError('invalid_argument', 'host_id is required');
    const known = await findHostCredential(this.deps.db, hostId);
    if (!known) {
      throw new AppError('not_found', `host ${hostId} is not registered with this controller (removed, or the database was reset); register again`);
    }
    if (!credential) throw new AppError('unauthenticated', 'missing host credential: send metadata "authorization: Bearer <host credential>"');
    if (!sameSecret(credential, known.credential)) {
      throw new AppError('unauthenticated', `the host credential does not match host ${hostId}`);
    }
  }

  /**
   * Records a report. In one transaction: host facts, online, last report time and sequence; every
   * reported GPU upserted; GPUs left out marked absent and unhealthy. A stale report (sequence not
   * newer than the last accepted one of this agent run) changes nothing and is not passed on. After
   * the commit the observer gets the environments and events; its failure fails the call, so the
   * agent sends the events again with its next report.
   */
  async report(input: ReportInput): Promise<{ accepted: boolean }> {
    await this.authenticate(input.hostId, input.credential);
    const facts = input.facts ? validFacts(input.facts, this.log) : undefined;
    const accepted = await this.deps.db.transaction().execute(async (trx) => {
      if (!(await acceptReportRow(trx, input.hostId, input.seq, facts))) return false;
      if (facts) {
        const missing = await saveGpus(trx, input.hostId, facts.gpus);
        if (missing.length > 0) this.log.warn({ hostId: input.hostId, gpus: missing }, 'GPUs no longer reported by the agent marked unhealthy');
      }
      return true;
    });
    if (!accepted) {
      this.log.debug({ hostId: input.hostId, seq: input.seq }, 'stale report ignored');
      return { accepted: false };
    }
    await this.deps.observer.onReport(input.hostId, input.environments, input.events);
    return { accepted: true };
  }
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

/**
 * Facts the controller can use: hostname and agent address present; GPUs without a uuid dropped and
 * duplicate uuids collapsed (the last wins), since GPUs are keyed by uuid.
 */
function validFacts(facts: HostFacts, log: Logger): HostFacts {
  const fields = [];
  if (!facts.hostname) fields.push({ field: 'facts.hostname', message: 'required' });
  if (!facts.agentAddress) fields.push({ field: 'facts.agent_address', message: 'required: host:port where the controller reaches the agent' });
  if (fields.length > 0) {
    throw invalidFields(fields, 'invalid host facts');
  }
  const byUuid = new Map<string, GpuFacts>();
  for (const g of facts.gpus) if (g.uuid) byUuid.set(g.uuid, g);
  if (byUuid.size !== facts.gpus.length) {
    log.warn({ hostname: facts.hostname, reported: facts.gpus.length, kept: byUuid.size }, 'GPUs without uuid or with a duplicate uuid ignored');
    return { ...facts, gpus: [...byUuid.values()] };
  }
  return facts;
}
