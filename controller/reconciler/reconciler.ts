import { sql } from 'kysely';
import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import type { AgentPool, ObservedEnvironment } from '../hosts/types.js';
import { listBehind, redactionContext } from '../environments/environments.repo.js';
import { noteReason, recordOutcome, recordRemoval, type Outcome } from '../environments/environment-writes.js';
import { releaseAll, releaseCompute } from '../environments/placement.js';
import { agentReason } from '../environments/redact.js';
import { buildAgentSpec } from '../environments/spec.js';
import type { QueuePlacer } from '../environments/queue.js';
import type { WakeSignal } from '../environments/wake.js';

/** The reconciler's session advisory lock key ("rgpu"). */
export const RECONCILER_LOCK_KEY = 0x72677075;
const PARALLEL = 8;
/** How many environments one pass reconciles at most (the rest wait for the next pass). */
const PASS_BATCH = 200;

interface WorkItem {
  id: string;
  host_id: string | null;
  desired_state: 'running' | 'stopped' | 'deleted';
  status: EnvStatus;
  spec_generation: number;
}

/**
 * Makes agents follow desired state. One pass: place queued environments, then for every
 * environment whose spec generation is ahead of what its agent applied (or that awaits removal)
 * on an online host, call the agent and record the outcome. Passes run every interval and soon
 * after `kick()`. Only one controller replica runs passes at a time (PostgreSQL advisory lock).
 * Agent faults never stop the loop: an unreachable agent is retried on the next pass.
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
    for (let i = 0; i < work.length; i += PARALLEL) {
      await Promise.all(work.slice(i, i + PARALLEL).map((item) => this.reconcileOne(item)));
    }
  }

  private async reconcileOne(item: WorkItem): Promise<void> {
    const log = this.deps.logger.child({ envId: item.id, hostId: item.host_id });
    try {
      if (item.desired_state === 'deleted') return await this.remove(item);
      if (!item.host_id) return await this.settle(item, {}); // pending: nothing on any agent yet
      if (item.desired_state === 'stopped') return await this.stopOne(item);
      return await this.applyRunning(item);
    } catch (err) {
      if (err instanceof AppError && err.code === 'unavailable') {
        log.warn({ reason: err.message }, 'agent unreachable; will retry');
        return;
      }
      if (item.desired_state === 'deleted') {
        // A delete is retried until the agent confirms it: its reservations are freed only then.
        log.warn({ err }, 'removal failed; will retry');
        const { reason, detail } = await this.agentReason(item.id, `removal failed, retrying: ${err instanceof Error ? err.message : String(err)}`);
        await this.deps.db.transaction().execute((trx) => noteReason(trx, item.id, reason, detail));
        return;
      }
      log.warn({ err }, 'agent refused the environment');
      const { reason, detail } = await this.agentReason(item.id, err instanceof Error ? err.message : String(err));
      await this.settle(item, { status: 'error', status_reason: reason, status_detail: detail }, `Error: ${reason}`);
    }
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
      const { reason, detail } = await this.agentReason(item.id, describeExit(status));
      await this.settle(item, { status: 'error', status_reason: reason, status_detail: detail, observed_state: status.state }, `Error: ${reason}`);
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

  /**
   * An agent's text as a status reason: Docker's errors name host paths (a dataset's directory,
   * the agent's run directory), which users see replaced; the full text is kept for admins.
   */
  private async agentReason(envId: string, text: string): Promise<{ reason: string; detail: string }> {
    return agentReason(text, await redactionContext(this.deps.db, envId));
  }

  /** Room freed on a host: queued environments may fit now, so another pass runs soon. */
  private roomFreed(): void {
    this.kick();
  }
}

/** Why a container is not running, in words. */
export function describeExit(status: ObservedEnvironment): string {
  if (status.oomKilled) return `container was killed for exceeding its memory limit (OOM, exit code ${status.exitCode})`;
  if (status.state === 'exited') return `container exited with code ${status.exitCode}${status.message ? `: ${status.message}` : ''}`;
  return `container is ${status.state}${status.message ? `: ${status.message}` : ''}`;
}
