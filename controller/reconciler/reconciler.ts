import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { isDatabaseUnavailable, logLoopFailure } from '../db/errors.js';
import type { AgentPool } from '../hosts/types.js';
import { listBehind, redactionContext } from '../environments/environments.repo.js';
import { deferAttempts, noteReason, recordOutcome, recordRemoval, type Backoff, type Outcome } from '../environments/environment-writes.js';
import { releaseAll, releaseCompute } from '../environments/placement.js';
import { agentReason } from '../environments/redact.js';
import type { QueuePlacer } from '../environments/queue.js';
import type { WakeSignal } from '../environments/wake.js';
import { Slots, allSettled } from './slots.js';
import { PassLock } from './pass-lock.js';
import { describeExit } from './describe-exit.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';
import { DEFAULT_RECONCILER_LIMITS, type Attempt, type ReconcilerLimits, type WorkItem } from './work.js';
import { OutcomeWriter } from './outcomes.js';
import { SpecReader } from './specs.js';
export { RECONCILER_LOCK_KEY } from './pass-lock.js';

/**
 * After an agent could not be reached (or refused a removal), an environment is tried again after
 * 1 s, then 2, 4, ... at most 60 s, until it converges or its spec moves on (a new request is tried at once).
 */
export const RETRY_BACKOFF: Backoff = { baseMs: 1_000, capMs: 60_000 };

/**
 * Makes agents follow desired state. One pass: place queued environments, then for every
 * environment whose spec generation is ahead of what its agent applied (or that awaits removal)
 * on an online host, and that is due, call the agent and record the outcome. Passes run every
 * interval and soon after `kick()`. Only one controller replica runs passes (PostgreSQL advisory
 * lock). Agent faults never stop the loop: an environment whose agent could not be reached is put
 * off with a backoff (RETRY_BACKOFF).
 *
 * Hosts do not wait on each other. A pass works on its hosts side by side (each with at most
 * limits.hostParallel calls, limits.parallel in all over every pass), and a host found unreachable gets no
 * more calls in that pass. A pass still waiting on a slow host does not hold up the next one: passes
 * may overlap once the earlier one has listed its work, and a later pass leaves a host that an
 * earlier pass is still calling to it (it runs again when that host is free).
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  /** Passes in progress. */
  private readonly passes = new Set<Promise<void>>();
  /** The pass that is placing queued environments or listing its work now: a kick waits for it. */
  private listing: Promise<void> | undefined;
  /** Hosts (null: environments not placed) a pass is calling now. */
  private readonly busy = new Set<string | null>();
  /** Busy hosts a later pass had work for: another pass runs when they are free. */
  private readonly waiting = new Set<string | null>();
  private readonly slots: Slots;
  private readonly limits: ReconcilerLimits;
  private readonly lock: PassLock;
  /** Outcomes of agent calls, written in batches (one transaction for those that end together). */
  private readonly outcomes: OutcomeWriter;
  /** Agent specs, read together for the calls that start together. */
  private readonly specs: SpecReader;
  private again = false;
  private stopped = true;

  constructor(
    private readonly deps: {
      db: Db;
      /** Embedded PGlite serves one controller process only, so it needs no lock. */
      dbKind: 'pglite' | 'postgres';
      agents: AgentPool;
      queue: QueuePlacer;
      /** Desired state changed somewhere: a pass runs soon. */
      wake: WakeSignal;
      logger: Logger;
      intervalMs: number;
      metrics?: ControllerMetrics | undefined; // pass durations, queue placements, create→running
      limits?: ReconcilerLimits;
    },
  ) {
    this.limits = deps.limits ?? DEFAULT_RECONCILER_LIMITS;
    this.slots = new Slots(this.limits.parallel);
    this.outcomes = new OutcomeWriter(deps.db);
    this.specs = new SpecReader(deps.db);
    this.lock = new PassLock(deps.db, deps.dbKind);
    deps.wake.listen(() => this.kick());
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops the loop and waits for every pass in progress (their agent calls end by their deadline). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.passes.size > 0) await Promise.allSettled([...this.passes]);
  }

  /** Asks for a pass soon (after the one listing its work now, when there is one). */
  kick(): void {
    if (this.stopped) return;
    if (this.listing) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /**
   * Runs one pass now (tests and the loop). Resolves when it is done, its agent calls included.
   * While another pass is listing its work, resolves with that pass instead (and asks for another).
   */
  async runOnce(): Promise<void> {
    if (this.listing) {
      this.again = true;
      return this.listing;
    }
    const pass: Promise<void> = this.lock.run(() => (this.deps.metrics ? this.deps.metrics.timePass(() => this.pass()) : this.pass())).finally(() => {
      this.passes.delete(pass);
      if (this.listing === pass) this.listing = undefined;
    });
    this.passes.add(pass);
    this.listing = pass;
    return pass;
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    const timer: NodeJS.Timeout = setTimeout(() => {
      void this.runOnce()
        .catch((err: unknown) => logLoopFailure(this.deps.logger, err, 'reconcile pass'))
        .finally(() => {
          // A kick while this pass ran armed a newer timer (e.g. room freed by its last call): keep it.
          if (this.stopped || this.timer !== timer) return;
          const soon = this.again;
          this.again = false;
          this.schedule(soon ? 0 : this.deps.intervalMs);
        });
    }, delayMs);
    this.timer = timer;
    this.timer.unref?.();
  }

  private async pass(): Promise<void> {
    const lanes: Promise<void>[] = [];
    try {
      this.deps.metrics?.queuePlaced(await this.deps.queue.placeQueued());
      const work = await listBehind(this.deps.db, this.limits.batch);
      const byHost = new Map<string | null, WorkItem[]>();
      for (const item of work) {
        const items = byHost.get(item.host_id);
        if (items) items.push(item);
        else byHost.set(item.host_id, [item]);
      }
      for (const [host, items] of byHost) {
        if (this.busy.has(host)) {
          this.waiting.add(host);
          continue;
        }
        this.busy.add(host);
        lanes.push(
          this.reconcileHost(items).finally(() => {
            this.busy.delete(host);
            if (this.waiting.delete(host)) this.kick();
          }),
        );
      }
      // A full list may have left environments behind: the next pass follows at once (unless this
      // one only found hosts still busy: those ask for a pass when they are free).
      if (work.length === this.limits.batch && lanes.length > 0) this.again = true;
    } finally {
      this.listing = undefined;
    }
    if (this.again) {
      this.again = false;
      this.kick();
    }
    await allSettled(lanes);
  }

  /**
   * One host's share of a pass (or the unplaced environments'): at most limits.hostParallel calls at
   * once. Once the host proved unreachable, its remaining environments are put off without a call.
   */
  private async reconcileHost(items: readonly WorkItem[]): Promise<void> {
    const queue = [...items];
    const skipped: WorkItem[] = [];
    let unreachable = false;
    const worker = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        if (unreachable) {
          skipped.push(item);
          continue;
        }
        const current = item;
        if ((await this.slots.run(() => this.reconcileOne(current))) === 'unreachable') unreachable = true;
      }
    };
    await allSettled(Array.from({ length: Math.min(this.limits.hostParallel, queue.length) }, worker));
    if (skipped.length > 0) await this.defer(skipped);
  }

  private async reconcileOne(item: WorkItem): Promise<Attempt> {
    const log = this.deps.logger.child({ envId: item.id, hostId: item.host_id });
    try {
      if (item.desired_state === 'deleted') await this.remove(item);
      else if (!item.host_id) await this.settle(item, {}); // pending: nothing on any agent yet
      else if (item.desired_state === 'stopped') await this.stopOne(item);
      else await this.applyRunning(item);
      return 'done';
    } catch (err) {
      if (err instanceof AppError && err.code === 'unavailable') {
        log.warn({ reason: err.message }, 'agent unreachable; will retry');
        await this.defer([item]);
        return 'unreachable';
      }
      if (isDatabaseUnavailable(err)) throw err; // not the agent's refusal: nothing written, the next pass calls again
      if (item.desired_state === 'deleted') {
        // A delete is retried until the agent confirms it: its reservations are freed only then.
        log.warn({ err }, 'removal failed; will retry');
        const { reason, detail } = await this.agentReason(item.id, `removal failed, retrying: ${err instanceof Error ? err.message : String(err)}`);
        await this.deps.db.transaction().execute(async (trx) => {
          await noteReason(trx, item.id, reason, detail);
          await deferAttempts(trx, [{ id: item.id, generation: item.spec_generation }], RETRY_BACKOFF);
        });
        return 'deferred';
      }
      if (item.desired_state === 'running' && (await this.deps.queue.movePort(item.id, err))) return 'done';
      log.warn({ err }, 'agent refused the environment');
      const { reason, detail } = await this.agentReason(item.id, err instanceof Error ? err.message : String(err));
      await this.settle(item, { status: 'error', status_reason: reason, status_detail: detail }, `Error: ${reason}`);
      return 'done';
    }
  }

  /** Puts environments off until their backoff has passed (their agent could not be reached). */
  private async defer(items: readonly WorkItem[]): Promise<void> {
    await this.deps.db.transaction().execute((trx) => deferAttempts(trx, items.map((i) => ({ id: i.id, generation: i.spec_generation })), RETRY_BACKOFF));
  }

  private async applyRunning(item: WorkItem): Promise<void> {
    const agent = await this.deps.agents.forHost(item.host_id!, this.deps.db);
    if (item.status === 'restarting') await agent.stop(item.id);
    const spec = await this.specs.read(item.id);
    const { status, action } = await agent.apply(spec);
    if (status.state === 'running') {
      const verb = item.status === 'restarting' ? 'Container restarted' : action === 'recreated' ? 'Container recreated with the new spec' : null;
      await this.settle(item, { status: 'running', status_reason: '', started_at: status.startedAt ?? new Date(), observed_state: 'running', container: status.containerId }, verb ?? undefined);
      this.deps.metrics?.reachedRunning(item);
    } else {
      const { reason, detail } = await this.agentReason(item.id, describeExit(status));
      await this.settle(item, { status: 'error', status_reason: reason, status_detail: detail, observed_state: status.state, container: status.containerId }, `Error: ${reason}`);
    }
  }

  private async stopOne(item: WorkItem): Promise<void> {
    const agent = await this.deps.agents.forHost(item.host_id!, this.deps.db);
    await agent.stop(item.id);
    // Apply too, so a spec change made while stopped (a mount) reaches the stopped container.
    const { status } = await agent.apply(await this.specs.read(item.id));
    await this.settle(item, { status: 'stopped', status_reason: '', stopped_at: new Date(), observed_state: status.state, container: status.containerId }, 'Container stopped', true);
  }

  private async remove(item: WorkItem): Promise<void> {
    if (item.host_id) {
      const agent = await this.deps.agents.forHost(item.host_id, this.deps.db);
      await agent.remove(item.id);
    }
    const event = { kind: 'removed', message: 'Environment removed: container and data deleted, GPUs and ports released' };
    await this.deps.db.transaction().execute(async (trx) => {
      if (await recordRemoval(trx, item.id, item.spec_generation, event)) await releaseAll(trx, item.id);
    });
    this.roomFreed();
  }

  /**
   * Records the outcome of an agent call, unless the user changed the environment meanwhile (then
   * the next pass handles the newer generation).
   */
  private async settle(item: WorkItem, outcome: Outcome, event?: string, releaseComputeNow = false): Promise<void> {
    const line = event ? { kind: outcome.status ?? 'applied', message: event } : undefined;
    // Most outcomes go in batches; a stop that frees compute keeps its own transaction.
    if (!releaseComputeNow) {
      await this.outcomes.record({ envId: item.id, generation: item.spec_generation, outcome, event: line });
      return;
    }
    await this.deps.db.transaction().execute(async (trx) => {
      const recorded = await recordOutcome(trx, item.id, item.spec_generation, outcome, line);
      if (recorded && releaseComputeNow) await releaseCompute(trx, item.id);
    });
    if (releaseComputeNow) this.roomFreed();
  }

  /** An agent's text as a status reason: host paths in Docker's errors replaced for users; the full text kept for admins. */
  private async agentReason(envId: string, text: string): Promise<{ reason: string; detail: string }> {
    return agentReason(text, await redactionContext(this.deps.db, envId));
  }

  /** Room freed on a host: queued environments may fit now, so another pass runs soon. */
  private roomFreed(): void {
    this.kick();
  }
}
