import { sql } from 'kysely';
import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import type { AgentPool, ObservedEnvironment } from '../hosts/types.js';
import { listBehind } from '../environments/environments.repo.js';
import { deferAttempts, noteReason, recordOutcome, recordRemoval, type Backoff, type Outcome } from '../environments/environment-writes.js';
import { releaseAll, releaseCompute } from '../environments/placement.js';
import { buildAgentSpec } from '../environments/spec.js';
import type { QueuePlacer } from '../environments/queue.js';
import type { WakeSignal } from '../environments/wake.js';

/** The reconciler's session advisory lock key ("rgpu"). */
export const RECONCILER_LOCK_KEY = 0x72677075;
/** Agent calls in flight at once in a pass, over all hosts. */
const PARALLEL = 16;
/** Agent calls in flight at once to one host. */
const PER_HOST_PARALLEL = 4;
/** How many environments one pass reconciles at most (the rest wait for the next pass, which follows at once). */
const PASS_BATCH = 200;
/**
 * After an agent could not be reached (or refused a removal), an environment is tried again after
 * 1 s, then 2, 4, ... at most 60 s, until it converges or its spec moves on (a new request is tried at once).
 */
export const RETRY_BACKOFF: Backoff = { baseMs: 1_000, capMs: 60_000 };

interface WorkItem {
  id: string;
  host_id: string | null;
  desired_state: 'running' | 'stopped' | 'deleted';
  status: EnvStatus;
  spec_generation: number;
}

/** How one environment's attempt ended: settled (or handed to a newer generation), or put off. */
type Attempt = 'done' | 'unreachable' | 'deferred';

/**
 * Makes agents follow desired state. One pass: place queued environments, then for every
 * environment whose spec generation is ahead of what its agent applied (or that awaits removal)
 * on an online host, and that is due, call the agent and record the outcome. Passes run every
 * interval and soon after `kick()`. Only one controller replica runs passes at a time (PostgreSQL
 * advisory lock). Agent faults never stop the loop: an environment whose agent could not be reached
 * is put off with a backoff (RETRY_BACKOFF). Hosts are worked on side by side (each by at most
 * PER_HOST_PARALLEL calls, PARALLEL in all), and a host found unreachable gets no more calls in that
 * pass, so a dead host costs one agent timeout per pass and never holds up the others.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
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
    },
  ) {
    deps.wake.listen(() => this.kick());
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** Asks for a pass soon (after the current one when one runs). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** Runs one pass now (tests and the loop). Resolves when it is done. */
  async runOnce(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.lockedPass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.runOnce()
        .catch((err: unknown) => this.deps.logger.error({ err }, 'reconcile pass failed'))
        .finally(() => {
          if (this.stopped) return;
          const soon = this.again;
          this.again = false;
          this.schedule(soon ? 0 : this.deps.intervalMs);
        });
    }, delayMs);
    this.timer.unref?.();
  }

  private async lockedPass(): Promise<void> {
    if (this.deps.dbKind === 'pglite') {
      // Embedded PGlite serves exactly one controller process: no other replica can exist.
      return this.pass();
    }
    await this.deps.db.connection().execute(async (conn) => {
      const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${RECONCILER_LOCK_KEY}) as ok`.execute(conn);
      if (!got.rows[0]?.ok) return;
      try {
        await this.pass();
      } finally {
        await sql`select pg_advisory_unlock(${RECONCILER_LOCK_KEY})`.execute(conn);
      }
    });
  }

  private async pass(): Promise<void> {
    await this.deps.queue.placeQueued();
    const work = await listBehind(this.deps.db, PASS_BATCH);
    const byHost = new Map<string | null, WorkItem[]>();
    for (const item of work) {
      const items = byHost.get(item.host_id);
      if (items) items.push(item);
      else byHost.set(item.host_id, [item]);
    }
    const slots = new Slots(PARALLEL);
    await Promise.all([...byHost.values()].map((items) => this.reconcileHost(items, slots)));
    // A full list may have left environments behind: the next pass follows at once.
    if (work.length === PASS_BATCH) this.again = true;
  }

  /**
   * One host's share of a pass (or the unplaced environments'): at most PER_HOST_PARALLEL calls at
   * once. Once the host proved unreachable, its remaining environments are put off without a call.
   */
  private async reconcileHost(items: readonly WorkItem[], slots: Slots): Promise<void> {
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
        if ((await slots.run(() => this.reconcileOne(current))) === 'unreachable') unreachable = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(PER_HOST_PARALLEL, queue.length) }, worker));
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
      if (item.desired_state === 'deleted') {
        // A delete is retried until the agent confirms it: its reservations are freed only then.
        log.warn({ err }, 'removal failed; will retry');
        const reason = `removal failed, retrying: ${err instanceof Error ? err.message : String(err)}`;
        await this.deps.db.transaction().execute(async (trx) => {
          await noteReason(trx, item.id, reason);
          await deferAttempts(trx, [{ id: item.id, generation: item.spec_generation }], RETRY_BACKOFF);
        });
        return 'deferred';
      }
      const message = err instanceof Error ? err.message : String(err);
      log.warn({ err }, 'agent refused the environment');
      await this.settle(item, { status: 'error', status_reason: message }, `Error: ${message}`);
      return 'done';
    }
  }

  /** Puts environments off until their backoff has passed (their agent could not be reached). */
  private async defer(items: readonly WorkItem[]): Promise<void> {
    const rows = items.map((i) => ({ id: i.id, generation: i.spec_generation }));
    await this.deps.db.transaction().execute((trx) => deferAttempts(trx, rows, RETRY_BACKOFF));
  }

  private async applyRunning(item: WorkItem): Promise<void> {
    const agent = await this.deps.agents.forHost(item.host_id!);
    if (item.status === 'restarting') await agent.stop(item.id);
    const spec = await buildAgentSpec(this.deps.db, item.id);
    const { status, action } = await agent.apply(spec);
    if (status.state === 'running') {
      const verb = item.status === 'restarting' ? 'Container restarted' : action === 'recreated' ? 'Container recreated with the new spec' : null;
      await this.settle(item, { status: 'running', status_reason: '', started_at: status.startedAt ?? new Date(), observed_state: 'running' }, verb ?? undefined);
    } else {
      const reason = describeExit(status);
      await this.settle(item, { status: 'error', status_reason: reason, observed_state: status.state }, `Error: ${reason}`);
    }
  }

  private async stopOne(item: WorkItem): Promise<void> {
    const agent = await this.deps.agents.forHost(item.host_id!);
    await agent.stop(item.id);
    // Apply too, so a spec change made while stopped (a mount) reaches the stopped container.
    const { status } = await agent.apply(await buildAgentSpec(this.deps.db, item.id));
    await this.settle(item, { status: 'stopped', status_reason: '', stopped_at: new Date(), observed_state: status.state }, 'Container stopped', true);
  }

  private async remove(item: WorkItem): Promise<void> {
    if (item.host_id) {
      const agent = await this.deps.agents.forHost(item.host_id);
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
    await this.deps.db.transaction().execute(async (trx) => {
      const recorded = await recordOutcome(trx, item.id, item.spec_generation, outcome, line);
      if (recorded && releaseComputeNow) await releaseCompute(trx, item.id);
    });
    if (releaseComputeNow) this.roomFreed();
  }

  /** Room freed on a host: queued environments may fit now, so another pass runs soon. */
  private roomFreed(): void {
    this.kick();
  }
}

/** At most `limit` tasks at once; the others wait their turn in order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.free = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** Why a container is not running, in words. */
export function describeExit(status: ObservedEnvironment): string {
  if (status.oomKilled) return `container was killed for exceeding its memory limit (OOM, exit code ${status.exitCode})`;
  if (status.state === 'exited') return `container exited with code ${status.exitCode}${status.message ? `: ${status.message}` : ''}`;
  return `container is ${status.state}${status.message ? `: ${status.message}` : ''}`;
}
