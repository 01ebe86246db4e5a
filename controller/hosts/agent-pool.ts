import { Metadata, status as GrpcStatus, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import {
  AgentServiceClient,
  type ApplyEnvironmentResponse,
  type InspectEnvironmentResponse,
  type LogLine,
  type RemoveEnvironmentResponse,
  type StopEnvironmentResponse,
} from '../../gen/remotegpu/v1/agent.js';
import { AppError } from '../../common/errors.js';
import { PORT_IN_USE_TRAILER, bearerMetadata, fromGrpcError } from '../../common/grpc.js';
import { tlsChannelOptions } from '../../common/grpc-tls.js';
import { reconnectChannelOptions } from '../../common/reconnect.js';
import type { Logger } from '../../common/logger.js';
import type { ControllerConfig } from '../config.js';
import type { Db } from '../db/database.js';
import type { ClusterTrust } from '../trust/cluster-trust.js';
import { absentObservation, logLineFromProto, observedFromProto, specToProto } from './convert.js';
import { findAgentEndpoint } from './hosts.repo.js';
import { openAgentExec } from './agent-exec.js';
import { PortInUseError, type AgentApi, type AgentExec, type AgentExecHandlers, type AgentEnvSpec, type AgentLogLine, type AgentPool, type ObservedEnvironment } from './types.js';

export interface AgentPoolDeps {
  readonly db: Db;
  readonly logger: Logger;
  /** `agentTimeoutMs`: deadline of every unary call and of non-following log reads (REMOTEGPU_AGENT_TIMEOUT_MS). */
  readonly config: Pick<ControllerConfig, 'agentTimeoutMs'>;
  /** Client credentials per host (mutual TLS naming the host, or plaintext + bearer). */
  readonly trust: ClusterTrust;
}

interface Entry {
  readonly address: string;
  /** The controller certificate generation the connection was made with. */
  readonly generation: number;
  /** The agent certificates it accepts (fingerprints, comma-joined): renewals and revocations remake it. */
  readonly trusted: string;
  readonly client: AgentServiceClient;
  readonly api: AgentApi;
}

/**
 * One AgentService client per host, created on first use and replaced when the host's agent
 * address changes (the agent moved), the controller certificate was renewed, or the set of
 * certificates issued to the host changed (a renewal; a revocation empties it). Under TLS the
 * client presents the controller certificate and accepts only an agent certificate naming that host
 * and issued to it; in plaintext mode every call carries the host's derived bearer credential.
 */
export class GrpcAgentPool implements AgentPool {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;

  constructor(private readonly deps: AgentPoolDeps) {
    this.log = deps.logger.child({ component: 'agent-pool' });
  }

  /**
   * The host's AgentApi. Throws AppError not_found for an unknown host. `db`: the handle its
   * endpoint is read on (the reconciler's own pool), the pool's by default.
   */
  async forHost(hostId: string, db: Db = this.deps.db): Promise<AgentApi> {
    const endpoint = await findAgentEndpoint(db, hostId);
    if (!endpoint) {
      // The host was removed: drop its connection too.
      this.entries.get(hostId)?.client.close();
      this.entries.delete(hostId);
      throw new AppError('not_found', `host ${hostId} not found`);
    }
    // Synchronous from here on, so concurrent callers share one client.
    const current = this.entries.get(hostId);
    const { trust } = this.deps;
    const trusted = endpoint.fingerprints.join(',');
    if (current && current.address === endpoint.agentAddress && current.generation === trust.generation && current.trusted === trusted) return current.api;
    if (current) {
      this.log.info({ hostId, agentAddress: endpoint.agentAddress }, 'agent address or controller certificate changed; reconnecting');
      current.client.close();
    }
    // The TLS name is the host id (agents are checked by the identity in their certificate, not by address).
    if (!trust.insecure && endpoint.fingerprints.length === 0) {
      throw new AppError('unavailable', `host ${hostId} has no valid certificate (revoked, or its certificates expired): the controller does not call its agent`);
    }
    // Reconnect attempts at most 5 s apart (not gRPC's 120 s), so a restarted agent is reached again quickly.
    const client = new AgentServiceClient(endpoint.agentAddress, trust.agentCredentials(hostId, endpoint.fingerprints), {
      ...tlsChannelOptions({ kind: 'host', hostId }, trust.insecure),
      ...reconnectChannelOptions(),
    });
    const metadata = () => (trust.insecure ? bearerMetadata(trust.hostCredential(hostId)) : new Metadata());
    const api = new GrpcAgentApi(hostId, client, metadata, this.deps.config.agentTimeoutMs);
    this.entries.set(hostId, { address: endpoint.agentAddress, generation: trust.generation, trusted, client, api });
    return api;
  }

  /** Closes every connection. Idempotent; later forHost calls connect again. */
  close(): void {
    for (const entry of this.entries.values()) entry.client.close();
    this.entries.clear();
  }
}

type Callback<T> = (err: ServiceError | null, res: T) => void;

/** AgentApi over one gRPC client: proof on every call (plaintext mode), deadline on unary calls, errors mapped. */
class GrpcAgentApi implements AgentApi {
  constructor(
    private readonly hostId: string,
    private readonly client: AgentServiceClient,
    private readonly metadata: () => Metadata,
    private readonly timeoutMs: number,
  ) {}

  async apply(spec: AgentEnvSpec): Promise<{ status: ObservedEnvironment; action: string }> {
    const res = await this.unary<ApplyEnvironmentResponse>((md, o, cb) => this.client.applyEnvironment({ spec: specToProto(spec) }, md, o, cb));
    return { status: res.status ? observedFromProto(res.status) : absentObservation(spec.envId), action: res.action };
  }

  async stop(envId: string, timeoutS = 0): Promise<ObservedEnvironment | null> {
    const res = await this.unary<StopEnvironmentResponse>((md, o, cb) => this.client.stopEnvironment({ envId, timeoutS }, md, o, cb));
    return res.status ? observedFromProto(res.status) : null;
  }

  async remove(envId: string): Promise<boolean> {
    const res = await this.unary<RemoveEnvironmentResponse>((md, o, cb) => this.client.removeEnvironment({ envId }, md, o, cb));
    return res.removed;
  }

  async inspect(envId: string): Promise<ObservedEnvironment> {
    const res = await this.unary<InspectEnvironmentResponse>((md, o, cb) => this.client.inspectEnvironment({ envId }, md, o, cb));
    return res.status ? observedFromProto(res.status) : absentObservation(envId);
  }

  async *logs(envId: string, options: { tail: number; follow: boolean; signal: AbortSignal }): AsyncGenerator<AgentLogLine> {
    const { signal } = options;
    if (signal.aborted) return;
    const call = this.client.streamLogs(
      { envId, tailLines: Math.max(0, Math.floor(options.tail)), follow: options.follow },
      this.metadata(),
      options.follow ? {} : { deadline: Date.now() + this.timeoutMs },
    );
    const onAbort = () => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const line of call as AsyncIterable<LogLine>) yield logLineFromProto(line);
    } catch (err) {
      // Our own cancel ends the stream with CANCELLED: that is the normal end of a follow.
      if (signal.aborted) return;
      throw this.mapError(err);
    } finally {
      signal.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  exec(envId: string, size: { cols: number; rows: number }, handlers: AgentExecHandlers): AgentExec {
    return openAgentExec(this.client, this.metadata(), envId, size, handlers, (err) => this.mapError(err));
  }

  private unary<T>(invoke: (md: Metadata, options: Partial<CallOptions>, cb: Callback<T>) => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      invoke(this.metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) =>
        err ? reject(this.mapError(err)) : resolve(res),
      );
    });
  }

  /**
   * Unreachable agents (UNAVAILABLE, DEADLINE_EXCEEDED) are `unavailable`; so is an agent refusing
   * the controller's certificate or credential, which is a fault between controller and agent, never the API caller's.
   */
  private mapError(err: unknown): AppError {
    const code = (err as Partial<ServiceError>)?.code;
    if (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED) {
      return fromGrpcError(err, `agent on ${this.hostId} unreachable`);
    }
    if (code === GrpcStatus.UNAUTHENTICATED || code === GrpcStatus.PERMISSION_DENIED) {
      const e = fromGrpcError(err, `agent on ${this.hostId} refused the controller (certificate or credential)`);
      return new AppError('unavailable', e.message, { cause: err });
    }
    const mapped = fromGrpcError(err, `agent on ${this.hostId}`);
    const port = Number((err as Partial<ServiceError>)?.metadata?.get(PORT_IN_USE_TRAILER)[0]);
    if (mapped.code === 'conflict' && Number.isInteger(port) && port > 0 && port <= 65535) return new PortInUseError(port, mapped.message, { cause: err });
    return mapped;
  }
}
