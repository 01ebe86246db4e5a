/**
 * Domain types of the agent's container runtime. The gRPC layer converts the proto messages
 * (EnvironmentSpec, EnvironmentStatus, LifecycleEvent, LogLine) to and from these; nothing here
 * knows proto or Docker.
 */

/** A container port published on a host port. */
export interface PortSpec {
  /** Purpose: 'ssh', 'jupyter', or another name. */
  readonly name: 'ssh' | 'jupyter' | (string & {});
  readonly containerPort: number;
  readonly hostPort: number;
}

/** A host directory (a dataset) bind-mounted into the environment. */
export interface DatasetMountSpec {
  readonly datasetId: string;
  /** Absolute directory on the host. */
  readonly hostPath: string;
  /** Absolute path inside the container. */
  readonly containerPath: string;
  readonly readonly: boolean;
}

export type DesiredRunState = 'running' | 'stopped';

/** Everything the runtime needs to run one environment. */
export interface EnvSpec {
  /** e.g. "env-abc123": lowercase letters, digits and `._-`; names the container, volume and images. */
  readonly envId: string;
  /** Docker image reference; it must be present on the host. */
  readonly image: string;
  /** CPU cores (fractions allowed); 0 means no CPU limit. */
  readonly cpuCores: number;
  /** Memory limit in bytes, swap limited to the same (no swap); 0 means no limit. */
  readonly memoryBytes: number;
  /** GPUs the container sees, by UUID; exactly these and no others. */
  readonly gpuUuids: readonly string[];
  /** Size of the storage volume in bytes: an ext4 file system of exactly this size (host-mounts.ts); grows, never shrinks. */
  readonly storageBytes: number;
  /** Where the storage volume is mounted in the container, e.g. "/root/workspace". */
  readonly dataPath: string;
  readonly ports: readonly PortSpec[];
  /** Read by sshd at /root/.ssh/authorized_keys; a change replaces that file atomically, with no container recreate. */
  readonly sshAuthorizedKeys: readonly string[];
  readonly mounts: readonly DatasetMountSpec[];
  /** Extra environment variables (never logged). */
  readonly env: Readonly<Record<string, string>>;
  /** Extra container labels; keys starting with `remotegpu.` are reserved for the agent. */
  readonly labels: Readonly<Record<string, string>>;
  /** Passed as JUPYTER_TOKEN when not empty (never logged). */
  readonly jupyterToken: string;
  readonly desiredState: DesiredRunState;
  /** Size of /dev/shm in bytes; 0 means half the memory limit (Docker's 64 MiB without a limit). */
  readonly shmBytes: number;
  /** Maximum number of processes; 0 means the runtime default (4096). */
  readonly pidsLimit: number;
}

export type ObservedState = 'absent' | 'created' | 'running' | 'exited' | 'restarting' | 'paused' | 'failed';

/** What the runtime observes of one environment's container. */
export interface ObservedStatus {
  readonly envId: string;
  readonly state: ObservedState;
  /** Docker container id ('' when absent). */
  readonly containerId: string;
  /** Label remotegpu.spec-hash of the container ('' when absent). */
  readonly specHash: string;
  /** GPUs the container was created with. */
  readonly gpuUuids: readonly string[];
  /** Exit code of the last run (meaningful once it has exited). */
  readonly exitCode: number;
  /** True when the OOM killer ended the last run (it stays true after Docker restarts it). */
  readonly oomKilled: boolean;
  /** Last start, ms since the epoch; 0 if never. */
  readonly startedAtMs: number;
  /** Last finish, ms since the epoch; 0 if never. */
  readonly finishedAtMs: number;
  /** Human-readable detail: Docker's error, "OOM killed", ... ('' when nothing to say). */
  readonly message: string;
}

/** rootfs_warning and rootfs_limit come from the writable-layer watch (agent/rootfs-watch.ts), the others from the engine. */
export type LifecycleEventKind = 'created' | 'started' | 'ssh_ready' | 'exited' | 'oom_killed' | 'removed' | 'error' | 'rootfs_warning' | 'rootfs_limit';

/** A lifecycle event of an environment's container. */
export interface LifecycleEvent {
  readonly envId: string;
  /** When it happened, ms since the epoch. */
  readonly atMs: number;
  readonly kind: LifecycleEventKind;
  /** e.g. "Container exited with code 137 (OOM killed)". */
  readonly message: string;
}

/** One line of container output. */
export interface LogLine {
  /** Docker's timestamp of the line, ms since the epoch. */
  readonly atMs: number;
  readonly stream: 'stdout' | 'stderr';
  /** The line without its trailing newline. */
  readonly text: string;
  /** The line was longer than 16 KiB: it goes on in the next line of the same stream. */
  readonly continued?: boolean;
}

export type ApplyAction = 'none' | 'created' | 'started' | 'stopped' | 'recreated';

export interface ApplyResult {
  /** Observed state after applying. */
  readonly status: ObservedStatus;
  /** What apply did to converge. */
  readonly action: ApplyAction;
}

export interface LogOptions {
  /** Past lines to send first; 0 sends none; undefined sends all. */
  readonly tail?: number;
  /** Keep streaming new lines until the signal aborts. */
  readonly follow: boolean;
  /** Aborting ends the iterator and closes the Docker stream. */
  readonly signal: AbortSignal;
}

/**
 * The agent's view of a container engine. Everything is derived from the engine's state (labels)
 * on each call, so a restarted agent re-adopts its containers. Methods throw `RuntimeError`.
 */
export interface ContainerRuntime {
  /**
   * Converges the environment to `spec`: creates its storage volume, writes its authorized_keys,
   * creates the container when missing, recreates it when a field that needs a recreate changed
   * (keeping the data volume and the container's writable layer), and starts or stops it to match
   * `desiredState`. Idempotent: the same spec again does nothing (action 'none') and never
   * restarts a running container. On failure it removes what this call half-created, leaves a
   * previously existing container as it was, and throws `RuntimeError`.
   */
  apply(spec: EnvSpec): Promise<ApplyResult>;

  /**
   * Stops the container (SIGTERM, then SIGKILL after `timeoutS` seconds; 0 means 10). Idempotent:
   * stopping a stopped or absent environment succeeds. Docker will not restart it on its own
   * after this. Returns the observed status afterwards.
   */
  stop(envId: string, timeoutS: number): Promise<ObservedStatus>;

  /**
   * Deletes the environment: its container, its storage volume (the user's data), its private
   * committed images and its state files. Idempotent. Returns true when anything existed.
   */
  remove(envId: string): Promise<boolean>;

  /** The observed status of one environment; state 'absent' when it has no container. */
  inspect(envId: string): Promise<ObservedStatus>;

  /**
   * The observed status of every managed environment: only containers carrying the remotegpu
   * labels are listed (and touched); all others on the engine are ignored.
   */
  list(): Promise<ObservedStatus[]>;

  /**
   * The container's output with Docker's timestamps: the last `tail` lines, then (with `follow`)
   * new lines as they come. Aborting `signal` ends the iterator and destroys the Docker stream.
   * Throws `RuntimeError` 'not_found' when the environment has no container.
   */
  logs(envId: string, options: LogOptions): AsyncIterable<LogLine>;

  /**
   * Lifecycle events of managed containers (created, started, exited with exit code, oom_killed,
   * removed), from the engine's event stream, until `signal` aborts. Events of other containers,
   * and of the transient containers of a recreate, are not yielded. `sinceMs` (default: now) asks
   * the engine to replay what it still holds from that time on (resubscribing after an outage).
   */
  events(signal: AbortSignal, sinceMs?: number): AsyncIterable<LifecycleEvent>;

  /**
   * The argv of an interactive `docker exec -it` into the environment (a login shell when
   * `command` is empty), for a caller to run under a pseudo-terminal. Pure: it does not check
   * that the container exists or runs (docker exec then fails with its own message).
   */
  execArgs(envId: string, command: readonly string[]): string[];

  /**
   * Small regular files of the environment's current container (running or stopped), with the id
   * of that container ('' and no files when it has none). A path that is missing, a link (never
   * followed), not a regular file, or larger than `maxBytes` is left out: the container's content
   * is the user's. Throws `RuntimeError` when the engine fails otherwise.
   */
  readFiles(envId: string, paths: readonly string[], maxBytes: number): Promise<{ containerId: string; files: Map<string, Buffer> }>;
}
