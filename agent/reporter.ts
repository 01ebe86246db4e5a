import { Metadata, credentials, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { bearerMetadata } from '../common/grpc.js';
import type { Logger } from '../common/logger.js';
import { ControlPlaneClient, type RegisterResponse } from '../gen/remotegpu/v1/control_plane.js';
import type { HostFacts, LifecycleEvent as ProtoEvent } from '../gen/remotegpu/v1/types.js';
import { eventToProto, statusToProto } from './convert.js';
import type { ContainerRuntime, LifecycleEvent } from './runtime/types.js';
import { loadIdentity, saveIdentity, type AgentIdentity } from './identity.js';

export interface ReporterOptions {
  readonly controller: string;
  readonly joinToken: string | undefined;
  readonly dataDir: string;
  readonly intervalMs: number;
  readonly runtime: ContainerRuntime;
  readonly logger: Logger;
  /** Current host facts (cached discovery). */
  readonly facts: () => Promise<HostFacts>;
  readonly sshReady: (envId: string) => boolean;
  /** Called whenever the identity is known or changes (the AgentService needs the credential). */
  readonly onIdentity: (identity: AgentIdentity) => void;
  /** Backoff bounds while the controller is unreachable. */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
}

type Connection = 'connecting' | 'connected' | 'unreachable' | 'rejected';
const MAX_BUFFERED_EVENTS = 10_000;

/**
 * Registers the host and reports its status periodically. Keeps the host id and credential in the
 * data directory, so a restarted agent never registers a second host. While the controller is
 * down it retries with capped exponential backoff and jitter, and logs one line per change of
 * connection state, not one per attempt. Lifecycle events are buffered and sent with the next
 * report; a report is sent early when events arrive.
 */
export class Reporter {
  private readonly client: ControlPlaneClient;
  private identity: AgentIdentity | undefined;
  private state: Connection = 'connecting';
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private seq = 0;
  private intervalMs: number;
  private events: ProtoEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private soon = false;

  constructor(private readonly o: ReporterOptions) {
    this.client = new ControlPlaneClient(o.controller, credentials.createInsecure());
    this.intervalMs = o.intervalMs;
  }

  /** Loads the saved identity and starts the register/report loop. */
  async start(): Promise<void> {
    this.identity = await loadIdentity(this.o.dataDir);
    if (this.identity) this.o.onIdentity(this.identity);
    this.schedule(0);
  }

  /** Queues a lifecycle event and asks for an early report. */
  pushEvent(event: LifecycleEvent): void {
    this.events.push(eventToProto(event));
    if (this.events.length > MAX_BUFFERED_EVENTS) this.events.splice(0, this.events.length - MAX_BUFFERED_EVENTS);
    this.reportSoon();
  }

  /** Sends a report within ~100 ms (coalesced). */
  reportSoon(): void {
    if (this.stopped || this.soon) return;
    this.soon = true;
    this.schedule(100);
  }

  get hostId(): string | undefined {
    return this.identity?.hostId;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
    this.client.close();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    if (this.inFlight) return this.schedule(50);
    this.soon = false;
    this.inFlight = this.once().finally(() => (this.inFlight = undefined));
    await this.inFlight;
  }

  private async once(): Promise<void> {
    try {
      if (!this.identity) await this.register();
      await this.report();
      this.failures = 0;
      this.setState('connected');
      // An early report asked for while this one was in flight still goes out early.
      const again = this.soon;
      this.soon = false;
      this.schedule(again ? 100 : this.intervalMs);
    } catch (err) {
      const e = err as Partial<ServiceError>;
      if (e.code === GrpcStatus.NOT_FOUND || (e.code === GrpcStatus.UNAUTHENTICATED && this.identity)) {
        // The controller forgot this host (or its credential): register again with the join token.
        this.o.logger.warn({ hostId: this.identity?.hostId, reason: e.details }, 'controller does not know this host; registering again');
        this.identity = undefined;
      }
      this.failures++;
      const rejected = e.code === GrpcStatus.UNAUTHENTICATED || e.code === GrpcStatus.PERMISSION_DENIED || e.code === GrpcStatus.INVALID_ARGUMENT;
      this.setState(rejected ? 'rejected' : 'unreachable', e.details ?? (err instanceof Error ? err.message : String(err)));
      this.schedule(this.backoff());
    }
  }

  private backoff(): number {
    const min = this.o.backoffMinMs ?? 500;
    const max = this.o.backoffMaxMs ?? 30_000;
    const exp = Math.min(max, min * 2 ** Math.min(this.failures - 1, 16));
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  private setState(next: Connection, detail?: string): void {
    if (next === this.state) return;
    this.state = next;
    const ctx = { controller: this.o.controller, hostId: this.identity?.hostId };
    if (next === 'connected') this.o.logger.info(ctx, 'connected to the controller');
    else if (next === 'rejected') this.o.logger.error({ ...ctx, reason: detail }, 'controller rejected this agent (check REMOTEGPU_JOIN_TOKEN); retrying with backoff');
    else this.o.logger.warn({ ...ctx, reason: detail }, 'controller unreachable; retrying with backoff');
  }

  private async register(): Promise<void> {
    if (!this.o.joinToken) throw Object.assign(new Error('REMOTEGPU_JOIN_TOKEN is not set and this host is not registered yet'), { code: GrpcStatus.UNAUTHENTICATED, details: 'REMOTEGPU_JOIN_TOKEN is not set' });
    const facts = await this.o.facts();
    const res = await new Promise<RegisterResponse>((resolve, reject) =>
      this.client.register({ joinToken: this.o.joinToken!, facts, hostId: '' }, new Metadata(), { deadline: Date.now() + 15_000 }, (err, r) =>
        err ? reject(err) : resolve(r),
      ),
    );
    this.identity = { hostId: res.hostId, credential: res.hostCredential, controller: this.o.controller };
    if (res.reportIntervalMs > 0) this.intervalMs = res.reportIntervalMs;
    await saveIdentity(this.o.dataDir, this.identity);
    this.o.onIdentity(this.identity);
    this.seq = 0;
    this.o.logger.info({ hostId: res.hostId, gpus: facts.gpus.length }, 'registered with the controller');
  }

  private async report(): Promise<void> {
    const identity = this.identity!;
    const [facts, statuses] = await Promise.all([this.o.facts(), this.o.runtime.list()]);
    const events = this.events.splice(0);
    try {
      const res = await new Promise<{ reportIntervalMs: number }>((resolve, reject) =>
        this.client.reportStatus(
          { hostId: identity.hostId, facts, environments: statuses.map((s) => statusToProto(s, this.o.sshReady(s.envId))), events, seq: ++this.seq },
          bearerMetadata(identity.credential),
          { deadline: Date.now() + 15_000 },
          (err: ServiceError | null, r?: { reportIntervalMs: number }) => (err ? reject(err) : resolve(r!)),
        ),
      );
      if (res.reportIntervalMs > 0) this.intervalMs = res.reportIntervalMs;
    } catch (err) {
      this.events.unshift(...events); // not delivered: send them with the next report
      throw err;
    }
  }
}
