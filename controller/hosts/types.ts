import { AppError } from '../../common/errors.js';
import type { DesiredState, EnvStatus } from '../db/schema.js';
import type { Db } from '../db/database.js';
import type { SshHostKey } from '../../common/ssh-host-keys.js';

// Domain types at the boundary between the hosts component (gRPC with agents) and the
// environments component. Proto messages never cross this boundary: the gRPC edges convert.

/** Container state an agent observed for one environment. */
export type ObservedState = 'absent' | 'created' | 'running' | 'exited' | 'restarting' | 'paused' | 'failed' | 'unknown';

export interface ObservedEnvironment {
  readonly envId: string;
  readonly state: ObservedState;
  readonly containerId: string;
  readonly specHash: string;
  readonly gpuUuids: readonly string[];
  readonly exitCode: number;
  readonly oomKilled: boolean;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly message: string;
  readonly sshReady: boolean;
  /** Used bytes of the environment's storage volume; null when the agent could not tell. */
  readonly storageUsedBytes: number | null;
  /** Bytes in the container's writable layer (measured about once a minute); null when unknown. */
  readonly rootfsUsedBytes: number | null;
  /**
   * Why the agent itself stopped the container, e.g. "writable layer 10.2 GiB exceeded the 10 GiB
   * limit (REMOTEGPU_ROOTFS_LIMIT)"; '' when it did not.
   */
  readonly stopReason: string;
  /** The container's SSH host public keys as the agent read them (valid ones only); empty when it has none to tell. */
  readonly sshHostKeys: readonly SshHostKey[];
}

/** A lifecycle event reported by an agent. */
export interface AgentEvent {
  readonly envId: string;
  readonly at: Date;
  readonly kind: string;
  readonly message: string;
}

/** What the controller sends an agent to run one environment (converted to EnvironmentSpec at the edge). */
export interface AgentEnvSpec {
  readonly envId: string;
  readonly image: string;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly gpuUuids: readonly string[];
  readonly storageBytes: number;
  readonly dataPath: string;
  readonly ports: readonly { name: string; containerPort: number; hostPort: number }[];
  readonly sshAuthorizedKeys: readonly string[];
  readonly mounts: readonly { datasetId: string; hostPath: string; containerPath: string; readonly: boolean }[];
  readonly env: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly jupyterToken: string;
  readonly desiredState: 'running' | 'stopped';
}

export interface AgentLogLine {
  readonly at: Date;
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
  /** Cut at 16 KiB by the agent: the line goes on in the next one of the same stream. */
  readonly continued: boolean;
}

/**
 * An agent refused an apply because a host port of the spec is taken on its host (another process
 * listens there, or an outgoing connection holds it): the controller moves the environment to
 * another port (AppError 'conflict' with the agent's message, plus the port).
 */
export class PortInUseError extends AppError {
  constructor(
    readonly port: number,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super('conflict', message, options);
    this.name = 'PortInUseError';
  }
}

/**
 * The controller's view of one agent's AgentService. Every method has a deadline (configured
 * REMOTEGPU_AGENT_TIMEOUT_MS) and throws AppError: `unavailable` (50201) when the agent cannot be
 * reached, otherwise the code matching the agent's gRPC status with the agent's message.
 */
export interface AgentApi {
  /** Idempotent: makes the container match the spec; returns what the agent observed after. */
  apply(spec: AgentEnvSpec): Promise<{ status: ObservedEnvironment; action: string }>;
  /** Idempotent: stops the container, keeping data. */
  stop(envId: string, timeoutS?: number): Promise<ObservedEnvironment | null>;
  /** Idempotent: removes container and data; false when nothing was there. */
  remove(envId: string): Promise<boolean>;
  /** The container's observed state ('absent' when none). */
  inspect(envId: string): Promise<ObservedEnvironment>;
  /**
   * The container's output: the last `tail` lines, then (when `follow`) new lines until `signal`
   * aborts, which cancels the agent's stream.
   */
  logs(envId: string, options: { tail: number; follow: boolean; signal: AbortSignal }): AsyncIterable<AgentLogLine>;
  /**
   * Opens a terminal (a login shell under a pty) in the environment's container over the agent's
   * Exec stream. Never throws: failures reach `handlers.onError`. Exactly one of onExit and onError
   * is called, unless `close` came first (then neither).
   */
  exec(envId: string, size: { cols: number; rows: number }, handlers: AgentExecHandlers): AgentExec;
}

/** What an agent's terminal reports. */
export interface AgentExecHandlers {
  /** Bytes the terminal printed. */
  onData(data: Buffer): void;
  /** The shell ended with this exit code; the session is over. */
  onExit(code: number): void;
  /** The stream failed (AppError; `unavailable` when the agent cannot be reached). */
  onError(err: AppError): void;
  /** The agent took what was written after `write` returned false. */
  onDrain(): void;
}

/** One terminal on an agent. */
export interface AgentExec {
  /** Sends typed bytes; false when the stream's buffer is full (stop sending until onDrain). */
  write(data: Uint8Array): boolean;
  resize(cols: number, rows: number): void;
  /** Stops reading the terminal's output (backpressure reaches the agent's pty); idempotent. */
  pause(): void;
  /** Reads again after pause; idempotent. */
  resume(): void;
  /** Ends the session (the agent hangs up the shell). Idempotent; no handler is called after it. */
  close(): void;
}

/** Resolves the AgentApi of a host (connection pooled, credential attached). */
export interface AgentPool {
  /** Throws AppError not_found for an unknown host. `db`: where the host's endpoint is read (the caller's pool). */
  forHost(hostId: string, db?: Db): Promise<AgentApi>;
  /** Closes every connection. */
  close(): void;
}

/** What the controller knows of one environment on a host, as a report is judged against it (read with the report). */
export interface KnownEnvironment {
  readonly id: string;
  readonly status: EnvStatus;
  readonly status_reason: string;
  readonly desired_state: DesiredState;
  readonly applied_generation: number;
  readonly spec_generation: number;
  readonly observed_state: string;
  readonly observed_at: Date | null;
  readonly started_at: Date | null;
  readonly updated_at: Date;
  readonly storage_used_bytes: number | null;
  readonly rootfs_used_bytes: number | null;
  readonly usage_measured_at: Date | null;
  readonly ssh_host_keys: readonly SshHostKey[];
  /** The container the stored keys were read from ('' when none are stored). */
  readonly ssh_host_keys_container: string;
}

/** What the hosts component knows about a report beyond its contents. */
export interface ReportContext {
  /** The runtime answers again with this report; it had not since then. */
  readonly runtimeDownSince?: Date | undefined;
  /** The environments on the host, read in the statement that accepted the report (absent: the observer reads them). */
  readonly known?: readonly KnownEnvironment[] | undefined;
  /**
   * When the agent began taking the report, on the controller's clock (its receipt minus the age
   * the agent measured); undefined when the agent does not say (older agents).
   */
  readonly takenAt?: Date | undefined;
}

/**
 * Implemented by the environments component; called by the hosts component. Each call runs after
 * the host's own rows were updated and must not throw for unknown environment ids (agents may
 * report containers the controller already forgot: those are reported as orphans and removed).
 */
export interface HostObserver {
  /**
   * A report arrived (after the host's facts and GPUs were saved). `environments` is null when the
   * agent's container runtime did not answer: the report says nothing about the containers.
   */
  onReport(hostId: string, environments: readonly ObservedEnvironment[] | null, events: readonly AgentEvent[], context?: ReportContext): Promise<void>;
  /** The host missed reports for REMOTEGPU_HOST_TIMEOUT_MS and is now offline. */
  onHostOffline(hostId: string): Promise<void>;
}
