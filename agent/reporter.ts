import type { ServiceError } from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { renewAt } from '../common/pki.js';
import type { ControlPlaneClient } from '../gen/remotegpu/v1/control_plane.js';
import type { HostFacts, LifecycleEvent as ProtoEvent } from '../gen/remotegpu/v1/types.js';
import { eventToProto, statusToProto } from './convert.js';
import { hasCertificate, saveIdentity, type AgentIdentity } from './identity.js';
import { callMetadata, controlPlaneClient, registerHost, renewCertificate, validUntil } from './registration.js';
import { connectionProblem, type Connection } from './reporter-state.js';
import { DEFAULT_RECONNECT_MAX_MS, DEFAULT_RECONNECT_MIN_MS, reconnectDelayMs } from '../common/reconnect.js';
import { ControllerTargets, type LookupAll } from './controller-targets.js';
import type { ContainerRuntime, LifecycleEvent, ObservedStatus } from './runtime/types.js';
import { RuntimeWatch } from './runtime-watch.js';
import type { EnvUsage } from './usage.js';
import type { SshHostKey } from '../common/ssh-host-keys.js';
import type { AgentMetrics } from './metrics.js';
import { DEFAULT_REPORT_JITTER, firstReportDelayMs, jitteredIntervalMs } from './report-schedule.js';

export interface ReporterOptions {
  /** The controller addresses (REMOTEGPU_CONTROLLER): one is used, the next after a failed attempt. */
  readonly controllers: readonly string[];
  /** Resolves a controller name to its addresses (default: the system resolver). */
  readonly lookup?: LookupAll;
  /** The join token's secret part (needed only while unregistered). */
  readonly joinToken: string | undefined;
  /** The pinned cluster CA, "sha256:<hex>" (needed only while unregistered, unless insecure). */
  readonly caPin: string | undefined;
  /** REMOTEGPU_GRPC_INSECURE=1: plaintext, the host credential as bearer secret, no certificates. */
  readonly insecure: boolean;
  /** The identity the agent started with (identityAtStart); undefined: register first. */
  readonly identity: AgentIdentity | undefined;
  readonly dataDir: string;
  readonly intervalMs: number;
  /** Spread of each pause between reports, and the most the first one waits, as a fraction of the interval (REMOTEGPU_REPORT_JITTER_PERCENT); default 0.15. */
  readonly jitter?: number;
  readonly runtime: ContainerRuntime;
  readonly logger: Logger;
  /** Current host facts (cached discovery). */
  readonly facts: () => Promise<HostFacts>;
  readonly sshReady: (envId: string) => boolean;
  /** The SSH host keys read from the status's container, for the report (ssh-host-keys.ts); none without it. */
  readonly sshHostKeys?: (status: ObservedStatus, sshReady: boolean) => readonly SshHostKey[];
  /** What each listed environment uses of the disk (agent/usage.ts); without it none is reported. */
  readonly usage?: (statuses: readonly ObservedStatus[]) => Promise<ReadonlyMap<string, EnvUsage>>;
  /** Called when the identity changes (registered, certificate renewed): the AgentService serves it. */
  readonly onIdentity: (identity: AgentIdentity) => void;
  /**
   * Backoff bounds while the controller is unreachable; the maximum (REMOTEGPU_RECONNECT_MAX_MS)
   * also bounds gRPC's own reconnect backoff on the channel.
   */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
  /** Report durations, and each container listing (which environment holds which GPU). */
  readonly metrics?: AgentMetrics | undefined;
}

const MAX_BUFFERED_EVENTS = 10_000;
const DEADLINE_MS = 15_000;

/**
 * Registers the host once and reports its status periodically, over mutual TLS with the host's
 * certificate, which it renews before it expires. The identity (host id, key, certificate) stays
 * in the data directory: no answer from the controller makes the agent forget it or register
 * again; it retries with capped exponential backoff and jitter (at most `backoffMaxMs` apart, also
 * on the gRPC channel) and logs one line per change of connection state, not one per attempt.
 * With several controller addresses, every failed attempt moves on to the next one (round-robin),
 * registration included. Lifecycle events are buffered and sent with the next report; a report is
 * sent early when events arrive. Regular pauses are spread by ±`jitter` and the first report waits
 * a random part of it (report-schedule.ts), so many agents do not report in lockstep; each report
 * says how long before sending it was taken (`age_ms`).
 *
 * A container runtime (Docker) that does not answer is not a controller problem: the report still
 * goes out, with the host facts and `runtime_unavailable` set instead of container observations
 * (the controller keeps the host online and leaves every environment's state as it was). The
 * runtime is then asked again every second, and the first answer sends a report at once, followed
 * by a few quick ones (runtime-watch.ts). One log line when the runtime stops answering, one when
 * it answers again.
 */
export class Reporter {
  private client: ControlPlaneClient | undefined;
  /** The controller address `client` dials. */
  private address: string | undefined;
  private readonly targets: ControllerTargets;
  private identity: AgentIdentity | undefined;
  private state: Connection = 'connecting';
  private renewal: 'ok' | 'failing' | 'expired' = 'ok';
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private seq = 0;
  private intervalMs: number;
  private events: ProtoEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private soon = false;
  private readonly runtime: RuntimeWatch;

  constructor(private readonly o: ReporterOptions) {
    this.intervalMs = o.intervalMs;
    this.identity = o.identity;
    this.targets = new ControllerTargets(o.controllers, o.lookup);
    this.runtime = new RuntimeWatch(o.runtime, o.logger, () => this.reportSoon());
  }

  /** Starts the register/report loop. */
  async start(): Promise<void> {
    this.schedule(firstReportDelayMs(this.intervalMs, this.jitter));
  }

  private get jitter(): number {
    return this.o.jitter ?? DEFAULT_REPORT_JITTER;
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
    this.runtime.stop();
    await this.inFlight;
    this.client?.close();
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
    let phase: 'register' | 'report' = 'register';
    try {
      if (!this.identity) await this.register();
      phase = 'report';
      await this.connect();
      await this.renewIfDue();
      await this.report();
      this.failures = 0;
      this.setState('connected');
      // An early report asked for while this one was in flight still goes out early.
      const again = this.soon;
      this.soon = false;
      this.schedule(again ? 100 : jitteredIntervalMs(this.runtime.nextReportMs(this.intervalMs), this.jitter));
    } catch (err) {
      // Whatever the answer, the identity stays: only `remotegpu-agent reset` forgets it.
      this.failures++;
      const problem = connectionProblem(err, phase, this.o.insecure);
      this.setState(problem.state, problem.reason, problem.message);
      // The next attempt goes to the next controller address, when there are several, and over a
      // new channel when the controller was unreachable: it connects at once, not when the old
      // channel's reconnect backoff ends.
      this.targets.advance();
      if (problem.state === 'unreachable' || problem.state === 'tls-failed') this.dropClient();
      this.schedule(this.backoff());
    }
  }

  private backoff(): number {
    return reconnectDelayMs(this.failures, { minMs: this.o.backoffMinMs ?? DEFAULT_RECONNECT_MIN_MS, maxMs: this.maxBackoffMs });
  }

  private get maxBackoffMs(): number {
    return this.o.backoffMaxMs ?? DEFAULT_RECONNECT_MAX_MS;
  }

  private dropClient(): void {
    this.client?.close();
    this.client = undefined;
  }

  /** Makes `client` dial the current controller address (a new channel when the address changed or it was dropped). */
  private async connect(): Promise<void> {
    const address = await this.targets.current();
    if (this.client && address === this.address) return;
    this.client?.close();
    this.address = address;
    this.client = controlPlaneClient(address, this.identity!, this.o.insecure, this.maxBackoffMs);
  }

  private setState(next: Connection, reason?: string, message?: string): void {
    if (next === this.state) return;
    this.state = next;
    const ctx = { controller: this.address ?? this.o.controllers.join(','), hostId: this.identity?.hostId };
    if (next === 'connected') this.o.logger.info(ctx, 'connected to the controller');
    else if (next === 'unreachable') this.o.logger.warn({ ...ctx, reason }, message ?? 'controller unreachable; retrying with backoff');
    else this.o.logger.error({ ...ctx, reason }, message ?? 'controller problem; retrying with backoff');
  }

  private async register(): Promise<void> {
    const o = this.o;
    const facts = await o.facts();
    this.address = await this.targets.current();
    const registered = await registerHost({ controller: this.address, joinToken: o.joinToken ?? '', caPin: o.caPin, insecure: o.insecure, facts });
    await saveIdentity(o.dataDir, registered.identity);
    this.adopt(registered.identity);
    if (registered.reportIntervalMs > 0) this.intervalMs = registered.reportIntervalMs;
    this.seq = 0;
    const hostId = registered.identity.hostId;
    const validTo = hasCertificate(registered.identity) ? validUntil(registered.identity.certPem).toISOString() : undefined;
    o.logger.info({ hostId, gpus: facts.gpus.length, certificateValidUntil: validTo }, 'registered with the controller');
    if (registered.pendingApproval) {
      o.logger.warn({ hostId }, `registered; waiting for an admin to approve host ${hostId} (POST /api/v1/admin/hosts/${hostId}/approve)`);
    }
  }

  /** Uses a new identity from now on: a new channel (the old one closed after), the AgentService told. */
  private adopt(identity: AgentIdentity): void {
    const old = this.client;
    this.identity = identity;
    this.client = this.address ? controlPlaneClient(this.address, identity, this.o.insecure, this.maxBackoffMs) : undefined;
    old?.close();
    this.o.onIdentity(identity);
  }

  /** Renews the certificate after 2/3 of its lifetime; a failure keeps the current one and is retried at the next report. */
  private async renewIfDue(): Promise<void> {
    const identity = this.identity!;
    if (this.o.insecure || !hasCertificate(identity) || Date.now() < renewAt(identity.certPem).getTime()) return;
    const expiry = validUntil(identity.certPem);
    try {
      const renewed = await renewCertificate(this.client!, identity);
      await saveIdentity(this.o.dataDir, renewed);
      this.adopt(renewed);
      this.renewal = 'ok';
      this.o.logger.info({ hostId: identity.hostId }, `certificate renewed, valid until ${validUntil(renewed.certPem).toISOString()}`);
    } catch (err) {
      const reason = (err as Partial<ServiceError>).details || (err instanceof Error ? err.message : String(err));
      const next = Date.now() > expiry.getTime() ? 'expired' : 'failing';
      if (next === this.renewal) return;
      this.renewal = next;
      const ctx = { hostId: identity.hostId, reason };
      if (next === 'expired') {
        this.o.logger.error(
          ctx,
          `the host certificate expired at ${expiry.toISOString()} and could not be renewed: the controller cannot accept this host any more; run \`remotegpu-agent reset\`, delete host ${identity.hostId} on the controller and join again (retrying meanwhile)`,
        );
      } else {
        this.o.logger.warn(ctx, `certificate renewal failed; keeping the current certificate (valid until ${expiry.toISOString()}) and retrying at the next report`);
      }
    }
  }

  private async report(): Promise<void> {
    const identity = this.identity!;
    // The report's age when sent (monotonic clock): the controller dates it by its receipt minus this.
    const takenAt = performance.now();
    // A runtime that does not answer fails the observations, not the report (see the class comment).
    const [facts, listed] = await Promise.all([this.o.facts(), this.runtime.list(identity.hostId)]);
    const statuses = 'statuses' in listed ? listed.statuses : [];
    if ('statuses' in listed) this.o.metrics?.observe(statuses);
    const usage = statuses.length > 0 && this.o.usage ? await this.o.usage(statuses) : undefined;
    const environments = statuses.map((s) => {
      const ready = this.o.sshReady(s.envId);
      return statusToProto(s, ready, usage?.get(s.envId), this.o.sshHostKeys?.(s, ready));
    });
    const runtime = 'error' in listed ? { runtimeUnavailable: true, runtimeError: listed.error } : { runtimeUnavailable: false, runtimeError: '' };
    const events = this.events.splice(0);
    const timed = this.o.metrics?.reportStarted();
    try {
      const res = await new Promise<{ reportIntervalMs: number }>((resolve, reject) =>
        this.client!.reportStatus(
          { hostId: identity.hostId, facts, environments, events, seq: ++this.seq, ...runtime, ageMs: Math.round(performance.now() - takenAt) },
          callMetadata(identity, this.o.insecure),
          { deadline: Date.now() + DEADLINE_MS },
          (err: ServiceError | null, r?: { reportIntervalMs: number }) => (err ? reject(err) : resolve(r!)),
        ),
      );
      timed?.('ok');
      if (res.reportIntervalMs > 0) this.intervalMs = res.reportIntervalMs;
    } catch (err) {
      timed?.('error');
      this.events.unshift(...events); // not delivered: send them with the next report
      throw err;
    }
  }
}
