import { createHash, randomBytes } from 'node:crypto';
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  status as GrpcStatus,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { AgentServiceService, LogStream, type AgentServiceServer, type LogLine, type StreamLogsRequest } from '../../gen/remotegpu/v1/agent.js';
import { ControlPlaneClient, type RegisterRequest, type RegisterResponse, type ReportStatusResponse } from '../../gen/remotegpu/v1/control_plane.js';
import {
  DesiredState,
  GpuHealth,
  ObservedState,
  type EnvironmentSpec,
  type EnvironmentStatus,
  type Gpu,
  type HostFacts,
  type LifecycleEvent,
} from '../../gen/remotegpu/v1/types.js';
import { PORT_IN_USE_TRAILER, bearerFromMetadata, bearerMetadata, shutdownServer } from '../../common/grpc.js';
import { peerOf, ReloadableServerCredentials, tlsChannelCredentials, tlsChannelOptions } from '../../common/grpc-tls.js';
import { createCsr } from '../../common/pki.js';

// A fake GPU host for controller tests: a real AgentService over real gRPC on 127.0.0.1 that
// registers and reports through the controller's real ControlPlane. It runs no containers: it keeps
// each environment's spec and state in a Map and its log lines in memory. Not a mock of Docker; the
// agent's own tests cover Docker.

export type AgentCall = 'apply' | 'stop' | 'remove' | 'inspect' | 'streamLogs' | 'exec';

/** A GPU to simulate: any proto field may be given; the rest is filled in. */
export type GpuFacts = Partial<Gpu>;

export interface TestAgentOptions {
  /** host:port of the controller's ControlPlane. */
  readonly controllerAddress: string;
  /** The join token's secret part. */
  readonly joinToken: string;
  /** The cluster CA (PEM) the agent trusts; required unless `insecure`. */
  readonly caPem?: string;
  /** Plaintext gRPC both ways (the controller runs with REMOTEGPU_GRPC_INSECURE=1). */
  readonly insecure?: boolean;
  /** How many H100s to simulate, or the GPUs themselves (default 0). */
  readonly gpus?: number | readonly GpuFacts[];
  readonly cpuCores?: number;
  readonly memoryBytes?: number;
  readonly diskTotalBytes?: number;
  readonly hostname?: string;
  readonly publicAddress?: string;
  /** The OS machine id it reports (absent by default, like an agent that predates it). */
  readonly machineId?: string;
  /** Register at start (default true). */
  readonly register?: boolean;
  /** The publish address it reports (absent by default, like an agent that predates it). */
  readonly publishAddress?: string;
  /** Host ports it reports busy (default none); tests change `facts.busyPorts` later. */
  readonly busyPorts?: readonly number[];
  /** Host ports taken on the simulated host: an apply of a spec publishing one fails like the agent's port_conflict. */
  readonly portsInUse?: Set<number>;
}

/** A failure to inject into one AgentService method: a gRPC status, or 'hang' (never answer). */
export type InjectedFailure = { readonly code: GrpcStatus; readonly details: string } | 'hang';

interface Container {
  spec: EnvironmentSpec;
  status: EnvironmentStatus;
}

const GIB = 1024 ** 3;

/** A simulated H100 with index `i` and a uuid unique to this agent. */
export function testGpu(i: number, tag: string, overrides: GpuFacts = {}): Gpu {
  return {
    index: i,
    uuid: `GPU-${tag}-${String(i).padStart(4, '0')}`,
    model: 'NVIDIA H100 80GB HBM3',
    memoryBytes: 80 * GIB,
    memoryUsedBytes: 0,
    utilizationPercent: 0,
    temperatureC: 35,
    pciBusId: `00000000:${(0x18 + i).toString(16).padStart(2, '0')}:00.0`,
    driverVersion: '535.104.05',
    cudaVersion: '12.2',
    health: GpuHealth.GPU_HEALTH_HEALTHY,
    healthReason: '',
    migEnabled: false,
    ...overrides,
  };
}

/** The spec hash the test agent records: every field except the desired run state. */
export function testSpecHash(spec: EnvironmentSpec): string {
  const { desiredState: _ignored, ...rest } = spec;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}

function absent(envId: string): EnvironmentStatus {
  return {
    envId,
    state: ObservedState.OBSERVED_STATE_ABSENT,
    containerId: '',
    specHash: '',
    gpuUuids: [],
    exitCode: 0,
    oomKilled: false,
    startedAtMs: 0,
    finishedAtMs: 0,
    message: '',
    sshReady: false,
    sshHostKeys: [],
  };
}

/** What the auth check needs from a server call. */
type AgentCallLike = Parameters<typeof peerOf>[0] & { readonly metadata: Metadata };

export class TestAgent {
  /** host:port of this agent's AgentService. */
  readonly address: string;
  /** Facts sent on Register and every report; tests change them (GPU utilization, GPUs removed...). */
  readonly facts: HostFacts;
  /** Simulated containers by environment id. */
  readonly containers = new Map<string, Container>();
  /** Number of AgentService calls received, by method (refused ones included). */
  readonly calls: Record<AgentCall, number> = { apply: 0, stop: 0, remove: 0, inspect: 0, streamLogs: 0, exec: 0 };
  /** Calls refused for a missing or wrong certificate or credential. */
  unauthenticatedCalls = 0;
  /** StreamLogs calls the client cancelled. */
  cancelledStreams = 0;
  /** Lifecycle events not yet acknowledged by the controller. */
  readonly pendingEvents: LifecycleEvent[] = [];
  hostId = '';
  /** Plaintext mode: the bearer credential from Register. */
  credential = '';
  /** TLS: the host key and certificate from the last Register or renewal. */
  keyPem = '';
  certPem = '';
  /** The last Register request sent (tests replay it). */
  lastRegisterRequest: RegisterRequest | undefined;
  /** Sequence number of the last report sent. */
  seq = 0;
  /** Report interval the controller asked for last. */
  reportIntervalMs = 0;
  /** Reports that failed while reporting periodically, with their gRPC status. */
  readonly reportErrors: ServiceError[] = [];

  private readonly logs = new Map<string, LogLine[]>();
  private readonly followers = new Map<string, Set<ServerWritableStream<StreamLogsRequest, LogLine>>>();
  private readonly failures = new Map<AgentCall, InjectedFailure>();
  private readonly cancelWaiters: (() => void)[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  private containerCounter = 0;

  /** Client for Register (no client certificate) and, once registered, for reports (mutual TLS). */
  private controller: ControlPlaneClient;

  constructor(
    private readonly server: Server,
    private readonly serverCredentials: ReloadableServerCredentials | undefined,
    private readonly options: TestAgentOptions,
    port: number,
    facts: HostFacts,
  ) {
    this.address = `127.0.0.1:${port}`;
    this.facts = facts;
    this.controller = new ControlPlaneClient(options.controllerAddress, this.channelCredentials(false), tlsChannelOptions({ kind: 'controller' }, options.insecure));
  }

  private channelCredentials(withCertificate: boolean) {
    if (this.options.insecure) return credentials.createInsecure();
    if (!this.options.caPem) throw new Error('test agent: caPem is required unless insecure');
    const own = withCertificate ? { keyPem: this.keyPem, certPem: this.certPem } : {};
    return tlsChannelCredentials({ caPem: this.options.caPem, ...own, expect: { kind: 'controller' } });
  }

  /** Uses a new key and certificate: served to the controller, presented on reports. */
  useCertificate(keyPem: string, certPem: string): void {
    this.keyPem = keyPem;
    this.certPem = certPem;
    this.serverCredentials?.update({ caPem: this.options.caPem!, keyPem, certPem });
    this.controller.close();
    this.controller = new ControlPlaneClient(this.options.controllerAddress, this.channelCredentials(true), tlsChannelOptions({ kind: 'controller' }, this.options.insecure));
  }

  /**
   * Registers with the controller as a new host, with a fresh key and CSR (or `request` as given,
   * to replay a captured one). Resets the report sequence. Rejects with the gRPC error.
   */
  async register(options: { joinToken?: string; request?: RegisterRequest } = {}): Promise<RegisterResponse> {
    const { keyPem, csrPem } = await createCsr(this.facts.hostname);
    const request = options.request ?? { joinToken: options.joinToken ?? this.options.joinToken, facts: this.facts, csrPem };
    this.lastRegisterRequest = request;
    const bootstrap = new ControlPlaneClient(this.options.controllerAddress, this.channelCredentials(false), tlsChannelOptions({ kind: 'controller' }, this.options.insecure));
    const res = await new Promise<RegisterResponse>((resolve, reject) =>
      bootstrap.register(request, new Metadata(), { deadline: Date.now() + 10_000 }, (err, r) => (err ? reject(err) : resolve(r))),
    ).finally(() => bootstrap.close());
    this.hostId = res.hostId;
    this.credential = res.hostCredential;
    this.reportIntervalMs = res.reportIntervalMs;
    this.seq = 0;
    if (!this.options.insecure && !options.request) this.useCertificate(keyPem, res.certificatePem);
    return res;
  }

  /** Renews the host certificate (a new key) through RenewCertificate. Rejects with the gRPC error. */
  async renew(): Promise<void> {
    const { keyPem, csrPem } = await createCsr(this.facts.hostname);
    const res = await new Promise<{ certificatePem: string }>((resolve, reject) =>
      this.controller.renewCertificate({ hostId: this.hostId, csrPem }, this.proof(), { deadline: Date.now() + 10_000 }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    this.useCertificate(keyPem, res.certificatePem);
  }

  private proof(credential?: string): Metadata {
    return this.options.insecure || credential !== undefined ? bearerMetadata(credential ?? this.credential) : new Metadata();
  }

  /**
   * Sends one ReportStatus now: current facts, every container, pending events, the next sequence
   * number (or `seq`). Events are dropped once the controller accepted the call. Rejects with the
   * gRPC error. `runtimeError`: report as an agent whose container runtime does not answer (no
   * containers, runtime_unavailable set). `ageMs`: say the report was taken that long ago (absent by
   * default, like an agent that predates it).
   */
  async report(options: { seq?: number; credential?: string; withoutFacts?: boolean; runtimeError?: string; ageMs?: number } = {}): Promise<ReportStatusResponse> {
    const seq = options.seq ?? this.seq + 1;
    if (options.seq === undefined) this.seq = seq;
    const events = [...this.pendingEvents];
    const res = await new Promise<ReportStatusResponse>((resolve, reject) =>
      this.controller.reportStatus(
        {
          hostId: this.hostId,
          facts: options.withoutFacts ? undefined : this.facts,
          environments: options.runtimeError === undefined ? [...this.containers.values()].map((c) => ({ ...c.status })) : [],
          events,
          seq,
          runtimeUnavailable: options.runtimeError !== undefined,
          runtimeError: options.runtimeError ?? '',
          ageMs: options.ageMs,
        },
        this.proof(options.credential),
        { deadline: Date.now() + 10_000 },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    this.pendingEvents.splice(0, events.length);
    this.reportIntervalMs = res.reportIntervalMs;
    return res;
  }

  /** Reports every `intervalMs` until stopReporting(); failures are collected in reportErrors. */
  startReporting(intervalMs: number): void {
    this.stopReporting();
    const tick = () => {
      this.report()
        .catch((err: ServiceError) => void this.reportErrors.push(err))
        .finally(() => {
          if (this.reportTimer) this.reportTimer = setTimeout(tick, intervalMs);
        });
    };
    this.reportTimer = setTimeout(tick, intervalMs);
  }

  /** Stops periodic reports: the host falls silent. */
  stopReporting(): void {
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.reportTimer = undefined;
  }

  /** Appends a line to an environment's output and sends it to every follower. */
  emitLog(envId: string, text: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    const line: LogLine = { atMs: Date.now(), stream: stream === 'stderr' ? LogStream.LOG_STREAM_STDERR : LogStream.LOG_STREAM_STDOUT, text, continued: false };
    let lines = this.logs.get(envId);
    if (!lines) this.logs.set(envId, (lines = []));
    lines.push(line);
    for (const call of this.followers.get(envId) ?? []) call.write(line);
  }

  /** Queues a lifecycle event for the next report. */
  pushEvent(envId: string, kind: string, message: string): void {
    this.pendingEvents.push({ envId, atMs: Date.now(), kind, message });
  }

  /** Changes a container's observed state (e.g. it exited or was OOM killed). */
  setContainerStatus(envId: string, patch: Partial<EnvironmentStatus>): void {
    const c = this.containers.get(envId);
    if (!c) throw new Error(`test agent: no container for ${envId}`);
    c.status = { ...c.status, ...patch };
  }

  /** Makes every later call of `method` fail (or hang) until cleared with `undefined`. */
  setFailure(method: AgentCall, failure: InjectedFailure | undefined): void {
    if (failure) this.failures.set(method, failure);
    else this.failures.delete(method);
  }

  /** Resolves once at least `count` log streams were cancelled by the client. */
  waitForCancelledStreams(count = 1): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.cancelledStreams >= count) resolve();
        else this.cancelWaiters.push(check);
      };
      check();
    });
  }

  /** Active following log streams of an environment. */
  followerCount(envId: string): number {
    return this.followers.get(envId)?.size ?? 0;
  }

  /** Stops reporting and the gRPC server. Idempotent. */
  async close(): Promise<void> {
    this.stopReporting();
    this.controller.close();
    for (const set of this.followers.values()) for (const call of set) call.end();
    this.followers.clear();
    await shutdownServer(this.server, 1000);
  }

  // ---- AgentService ----

  /** The AgentService implementation this agent serves. */
  service(): AgentServiceServer {
    return {
      applyEnvironment: (call, cb) => {
        this.unary('apply', call, cb, () => {
          const spec = call.request.spec;
          if (!spec?.envId) throw Object.assign(new Error('spec.env_id is required'), { code: GrpcStatus.INVALID_ARGUMENT });
          const taken = spec.desiredState === DesiredState.DESIRED_STATE_RUNNING ? spec.ports.find((p) => this.options.portsInUse?.has(p.hostPort)) : undefined;
          if (taken) {
            const metadata = new Metadata();
            metadata.set(PORT_IN_USE_TRAILER, String(taken.hostPort));
            throw Object.assign(new Error(`host port ${taken.hostPort} (${taken.name}) is already in use on 0.0.0.0: address already in use`), { code: GrpcStatus.ALREADY_EXISTS, metadata });
          }
          return this.apply(spec);
        });
      },
      stopEnvironment: (call, cb) => {
        this.unary('stop', call, cb, () => {
          const c = this.containers.get(call.request.envId);
          if (!c) return { status: absent(call.request.envId) };
          if (c.status.state === ObservedState.OBSERVED_STATE_RUNNING) {
            this.exit(c, 0);
            this.pushEvent(c.spec.envId, 'exited', 'Container stopped');
          }
          return { status: { ...c.status } };
        });
      },
      removeEnvironment: (call, cb) => {
        this.unary('remove', call, cb, () => {
          const envId = call.request.envId;
          const existed = this.containers.delete(envId);
          for (const follower of this.followers.get(envId) ?? []) follower.end();
          this.followers.delete(envId);
          this.logs.delete(envId);
          if (existed) this.pushEvent(envId, 'removed', 'Container removed');
          return { removed: existed };
        });
      },
      inspectEnvironment: (call, cb) => {
        this.unary('inspect', call, cb, () => {
          const c = this.containers.get(call.request.envId);
          return { status: c ? { ...c.status } : absent(call.request.envId) };
        });
      },
      streamLogs: (call) => {
        this.calls.streamLogs++;
        const refused = this.refusal('streamLogs', call);
        if (refused === 'hang') return;
        if (refused) {
          call.emit('error', refused);
          return;
        }
        const { envId, tailLines, follow } = call.request;
        if (!this.containers.has(envId) && !this.logs.has(envId)) {
          call.emit('error', { code: GrpcStatus.NOT_FOUND, details: `no container for environment ${envId}` });
          return;
        }
        const lines = this.logs.get(envId) ?? [];
        for (const line of tailLines > 0 ? lines.slice(-tailLines) : []) call.write(line);
        if (!follow) {
          call.end();
          return;
        }
        let set = this.followers.get(envId);
        if (!set) this.followers.set(envId, (set = new Set()));
        set.add(call);
        call.on('cancelled', () => {
          this.followers.get(envId)?.delete(call);
          this.cancelledStreams++;
          for (const waiter of this.cancelWaiters.splice(0)) waiter();
        });
      },
      exec: (call) => {
        this.calls.exec++;
        call.emit('error', { code: GrpcStatus.UNIMPLEMENTED, details: 'the test agent has no terminals' });
      },
    };
  }

  private apply(spec: EnvironmentSpec) {
    const hash = testSpecHash(spec);
    const wantRunning = spec.desiredState !== DesiredState.DESIRED_STATE_STOPPED;
    const existing = this.containers.get(spec.envId);
    let action: string;
    if (!existing || existing.status.specHash !== hash) {
      action = existing ? 'recreated' : 'created';
      const c: Container = {
        spec,
        status: {
          ...absent(spec.envId),
          state: ObservedState.OBSERVED_STATE_CREATED,
          containerId: `test-${++this.containerCounter}-${randomBytes(4).toString('hex')}`,
          specHash: hash,
          gpuUuids: [...spec.gpuUuids],
          message: 'created by the test agent',
        },
      };
      this.containers.set(spec.envId, c);
      this.pushEvent(spec.envId, 'created', existing ? 'Container recreated' : 'Container created');
      if (wantRunning) this.start(c);
    } else if (wantRunning && existing.status.state !== ObservedState.OBSERVED_STATE_RUNNING) {
      action = 'started';
      existing.spec = spec;
      this.start(existing);
    } else if (!wantRunning && existing.status.state === ObservedState.OBSERVED_STATE_RUNNING) {
      action = 'stopped';
      existing.spec = spec;
      this.exit(existing, 0);
      this.pushEvent(spec.envId, 'exited', 'Container stopped');
    } else {
      action = 'none';
      existing.spec = spec;
    }
    return { action, status: { ...this.containers.get(spec.envId)!.status } };
  }

  private start(c: Container): void {
    c.status = { ...c.status, state: ObservedState.OBSERVED_STATE_RUNNING, startedAtMs: Date.now(), exitCode: 0, oomKilled: false, sshReady: true };
    this.pushEvent(c.spec.envId, 'started', 'Container started');
    this.pushEvent(c.spec.envId, 'ssh_ready', 'SSH service ready');
  }

  private exit(c: Container, code: number): void {
    c.status = { ...c.status, state: ObservedState.OBSERVED_STATE_EXITED, exitCode: code, finishedAtMs: Date.now(), sshReady: false };
  }

  private refusal(method: AgentCall, call: AgentCallLike): Partial<ServiceError> | 'hang' | undefined {
    if (this.options.insecure) {
      if (!this.credential || bearerFromMetadata(call.metadata) !== this.credential) {
        this.unauthenticatedCalls++;
        return { code: GrpcStatus.UNAUTHENTICATED, details: 'missing or wrong host credential' };
      }
    } else if (peerOf(call)?.identity?.kind !== 'controller') {
      this.unauthenticatedCalls++;
      return { code: GrpcStatus.PERMISSION_DENIED, details: 'only the controller may call the agent' };
    }
    const failure = this.failures.get(method);
    if (failure === 'hang') return 'hang';
    return failure ? { code: failure.code, details: failure.details } : undefined;
  }

  private unary<T>(method: AgentCall, call: AgentCallLike, cb: (err: Partial<ServiceError> | null, res?: T) => void, run: () => T): void {
    this.calls[method]++;
    const refused = this.refusal(method, call);
    if (refused === 'hang') return;
    if (refused) return cb(refused);
    try {
      cb(null, run());
    } catch (err) {
      const e = err as Partial<ServiceError>;
      cb({ code: e.code ?? GrpcStatus.INTERNAL, details: e.message ?? String(err), ...(e.metadata ? { metadata: e.metadata } : {}) });
    }
  }
}

/**
 * Starts a test agent on 127.0.0.1 (a free port) and registers it with the controller through the
 * real ControlPlane (unless `register: false`).
 */
export async function startTestAgent(options: TestAgentOptions): Promise<TestAgent> {
  const tag = randomBytes(3).toString('hex');
  const gpus =
    typeof options.gpus === 'number' || options.gpus === undefined
      ? Array.from({ length: options.gpus ?? 0 }, (_, i) => testGpu(i, tag))
      : options.gpus.map((g, i) => testGpu(g.index ?? i, tag, g));
  const server = new Server();
  // TLS: nothing is served until Register brings the host certificate; a client certificate is required.
  const serverCredentials = options.insecure ? undefined : new ReloadableServerCredentials(undefined, true);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials ?? ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const facts: HostFacts = {
    hostname: options.hostname ?? `test-host-${tag}`,
    publicAddress: options.publicAddress ?? '127.0.0.1',
    agentAddress: `127.0.0.1:${port}`,
    agentVersion: '0.1.0-test',
    os: 'Test Linux',
    kernel: '6.1.0-test',
    cpuModel: 'Test CPU',
    cpuCores: options.cpuCores ?? 32,
    memoryBytes: options.memoryBytes ?? 256 * GIB,
    diskTotalBytes: options.diskTotalBytes ?? 4096 * GIB,
    diskFreeBytes: options.diskTotalBytes ?? 4096 * GIB,
    gpus,
    gpuCondition: gpus.length === 0 ? 'nvidia-smi not found: CPU-only host' : '',
    driverVersion: gpus.length > 0 ? '535.104.05' : '',
    cudaVersion: gpus.length > 0 ? '12.2' : '',
    gpuMode: 'devices',
    ...(options.machineId ? { machineId: options.machineId } : {}),
    ...(options.publishAddress ? { publishAddress: options.publishAddress } : {}),
    busyPorts: [...(options.busyPorts ?? [])],
  };
  const agent = new TestAgent(server, serverCredentials, options, port, facts);
  server.addService(AgentServiceService, agent.service());
  try {
    if (options.register !== false) await agent.register();
  } catch (err) {
    await agent.close();
    throw err;
  }
  return agent;
}
