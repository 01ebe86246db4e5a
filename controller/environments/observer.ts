import type { Logger } from '../../common/logger.js';
import type { Db, Trx } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import type { AgentEvent, AgentPool, HostObserver, KnownEnvironment, ObservedEnvironment, ReportContext } from '../hosts/types.js';
import type { WakeSignal } from './wake.js';
import { clearRuntimeDown } from '../hosts/hosts.repo.js';
import { existingIds, listOnHost } from './environments.repo.js';
import { addEvents, markLostOnHost, recordObservation, recordUsage } from './environment-writes.js';
import { usageChanged } from './usage-report.js';
import { hostKeysUpdate, recordHostKeys } from './host-keys.js';

/**
 * How long the controller's own observation outranks reports of agents that do not say when they
 * took them (older agents): such a report may have been built before it.
 */
const RECENT_OBSERVATION_MS = 5_000;


type KnownRow = KnownEnvironment;

/**
 * An engine going down stops its containers a little before the agent finds it unreachable: an
 * environment that went `error` from this long before the outage began until it ended is taken as
 * stopped by the outage when the runtime answers again.
 */
const OUTAGE_LEAD_MS = 60_000;

/** The reasons nextStatus gives a container that exited by itself: the only errors a running container again clears. */
const RECOVERABLE_REASON = /^container (exited with code -?\d+|killed for exceeding its memory limit \(OOM, exit code -?\d+\))$/;

/** The status a report implies for a row, when it implies one. */
interface NextStatus {
  status: EnvStatus;
  reason: string;
  event?: string;
  reapply?: boolean;
}

/**
 * Moves environment status on from what agents report: records their lifecycle events as log
 * lines and the disk usage they measured, marks environments of a silent host `lost` and brings
 * them back when it reports again, notices containers that died, were stopped by the agent (with
 * its reason, e.g. the writable-layer limit) or vanished, and removes containers the controller
 * does not know.
 */
export class EnvironmentObserver implements HostObserver {
  constructor(private readonly deps: { db: Db; logger: Logger; agents: AgentPool; wake: WakeSignal }) {}

  /**
   * A report without observations (null: the agent's container runtime did not answer) only adds
   * its events: no status, observed state or usage changes, no orphan removed. On the first report
   * after the runtime answers again (`runtimeDownSince`; the registry cleared the retry backoff of
   * the host's environments) those the outage stopped go back to `starting` with a reapply
   * (restartedAfterOutage) and the reconciler runs a pass at once.
   */
  async onReport(hostId: string, environments: readonly ObservedEnvironment[] | null, events: readonly AgentEvent[], context: ReportContext = {}): Promise<void> {
    const { db } = this.deps;
    const { runtimeDownSince, takenAt } = context;
    const rows: readonly KnownRow[] = context.known ?? (await listOnHost(db, hostId));
    const known = new Map(rows.map((r) => [r.id, r]));
    const agentEvents = events.filter((e) => known.has(e.envId)).map((e) => ({ ...e, source: 'agent' as const }));
    if (environments === null) {
      if (agentEvents.length > 0) await db.transaction().execute((trx) => addEvents(trx, agentEvents));
      return;
    }
    const reported = new Map(environments.map((e) => [e.envId, e]));
    // A report taken before the controller's own last observation of a container says nothing about it.
    const current = rows.filter((row) => row.desired_state !== 'deleted' && !takenBefore(takenAt, row.observed_at));
    const changes = current
      .map((row) => {
        const seen = reported.get(row.id);
        const next = (runtimeDownSince && this.restartedAfterOutage(row, seen, runtimeDownSince)) || this.nextStatus(row, seen, takenAt);
        return { row, state: seen?.state ?? 'absent', next };
      })
      .filter(({ row, state, next }) => next !== undefined || row.observed_state !== state);
    // Only figures that changed (or are a minute old): an unchanged report writes nothing.
    const usage = environments
      .map((e) => ({ envId: e.envId, storageUsedBytes: e.storageUsedBytes, rootfsUsedBytes: e.rootfsUsedBytes }))
      .filter((u) => known.has(u.envId) && usageChanged(known.get(u.envId)!, u));
    // Host keys only when they change (a new container, keys read, a container gone).
    const hostKeys = current.flatMap((row) => hostKeysUpdate(row, reported.get(row.id)) ?? []);
    if (agentEvents.length > 0 || changes.length > 0 || usage.length > 0 || hostKeys.length > 0 || runtimeDownSince) {
      await db.transaction().execute(async (trx) => {
        // The host's row before any environment's: the order placements, starts and port moves
        // lock them in (a start holding the host waits for none of these rows, no deadlock).
        // Committed with the restarts below (and before the wake: the reconciler's pass calls the host).
        if (runtimeDownSince) await clearRuntimeDown(trx, hostId);
        // Then the environments it changes or adds events to (an event's insert references its
        // row), in id order, as every multi-row lock of them (the batched outcome writer, a
        // disable): a report and a batch never deadlock.
        await lockInIdOrder(trx, [...agentEvents.map((e) => e.envId), ...usage.map((u) => u.envId), ...changes.map(({ row }) => row.id), ...hostKeys.map((k) => k.envId)]);
        await recordUsage(trx, hostId, usage);
        await recordHostKeys(trx, hostId, hostKeys);
        await addEvents(trx, agentEvents);
        // Dated when the agent took the report (when it says), so a later report is never older than it.
        for (const { row, state, next } of changes) await recordObservation(trx, row.id, row.spec_generation, state, next, takenAt);
      });
    }
    const reapplied = runtimeDownSince !== undefined || changes.some(({ next }) => next?.reapply);
    await this.removeOrphans(hostId, environments.filter((e) => !known.has(e.envId) && e.state !== 'absent'));
    if (reapplied) this.deps.wake.notify();
  }

  /** What a report means for one environment the controller knows on that host. */
  private nextStatus(row: KnownRow, seen: ObservedEnvironment | undefined, takenAt: Date | undefined): NextStatus | undefined {
    const state = seen?.state ?? 'absent';
    if (row.status === 'lost') {
      if (row.desired_state === 'running' && state === 'running') return { status: 'running', reason: '', event: 'Host reports again: environment running' };
      if (row.desired_state === 'stopped' && state !== 'running') return { status: 'stopped', reason: '', event: 'Host reports again: environment stopped' };
      return { status: row.desired_state === 'running' ? 'starting' : 'stopping', reason: 'host reports again; converging', event: 'Host reports again', reapply: true };
    }
    const settled = row.applied_generation >= row.spec_generation;
    if (settled && row.status === 'error') return this.runningAgain(row, seen);
    if (!settled || row.status !== 'running' || state === 'running' || this.stale(row, seen, takenAt)) return undefined;
    if (state === 'absent') {
      return { status: 'starting', reason: 'container missing on the host; recreating it', event: 'Container missing on the host; recreating it', reapply: true };
    }
    if (!seen) return undefined;
    // The agent stopped it itself (the writable-layer limit): say why, not just the exit code.
    if (seen.stopReason) return { status: 'error', reason: `stopped: ${seen.stopReason}`, event: `Container stopped: ${seen.stopReason}` };
    const why = seen.oomKilled ? `killed for exceeding its memory limit (OOM, exit code ${seen.exitCode})` : `exited with code ${seen.exitCode}`;
    return { status: 'error', reason: `container ${why}`, event: `Container ${why}` };
  }

  /**
   * An environment this observer put in `error` because its container exited (a dockerd restart
   * stops every container, then its restart policy starts them again) whose container runs again:
   * back to `starting` with a reapply, so the agent checks the container against the spec (same
   * spec hash: nothing to do; another: recreated) and the reconciler records `running` with the
   * reason cleared. Only when the user still wants it running and two reports in a row saw it
   * running (the first one recorded observed_state `running`; a container in a crash loop that
   * exited in between recorded `exited`). Errors that must stick never match: a stop by the agent
   * (the writable-layer limit, reason `stopped: …`), a failed apply (the reconciler's reasons), a
   * revoked owner (desired state `stopped`), a container that is not running or is gone.
   */
  private runningAgain(row: KnownRow, seen: ObservedEnvironment | undefined): NextStatus | undefined {
    if (row.desired_state !== 'running' || seen?.state !== 'running' || seen.stopReason) return undefined;
    if (row.observed_state !== 'running' || !RECOVERABLE_REASON.test(row.status_reason)) return undefined;
    const after = row.status_reason.replace(/^container /, '');
    return { status: 'starting', reason: `container running again after it ${after}; checking it against its spec`, event: `Container running again after it ${after}`, reapply: true };
  }

  /**
   * The report that says the host's container runtime answers again, after it did not since
   * `downSince`: an environment the user wants running whose container the outage stopped goes
   * back to `starting` with a reapply, whether the engine's restart policy started the container
   * again (the agent then finds nothing to do) or not (the agent starts it). Stopped by the outage:
   * recorded running and now not seen running, or put in `error` for an exit (RECOVERABLE_REASON)
   * from OUTAGE_LEAD_MS before the outage on. Undefined for every other row (nextStatus decides).
   */
  private restartedAfterOutage(row: KnownRow, seen: ObservedEnvironment | undefined, downSince: Date): NextStatus | undefined {
    if (row.desired_state !== 'running' || row.applied_generation < row.spec_generation || seen?.stopReason) return undefined;
    const state = seen?.state ?? 'absent';
    const event = 'Container runtime (Docker) answers again after an outage: checking the container against its spec';
    const reason = 'container runtime answers again after an outage; checking the container';
    if (row.status === 'running' && state !== 'running') return { status: 'starting', reason, event, reapply: true };
    if (row.status !== 'error' || !RECOVERABLE_REASON.test(row.status_reason)) return undefined;
    if (row.updated_at.getTime() < downSince.getTime() - OUTAGE_LEAD_MS) return undefined;
    return { status: 'starting', reason, event, reapply: true };
  }

  /** Containers the controller does not know (or already forgot) are removed. */
  private async removeOrphans(hostId: string, orphans: readonly ObservedEnvironment[]): Promise<void> {
    if (orphans.length === 0) return;
    const stillListed = await existingIds(this.deps.db, orphans.map((o) => o.envId));
    for (const orphan of orphans) {
      if (stillListed.has(orphan.envId)) continue; // placed on another host meanwhile: not ours to judge here
      this.deps.logger.warn({ hostId, envId: orphan.envId }, 'removing a container the controller does not know');
      void this.deps.agents
        .forHost(hostId)
        .then((agent) => agent.remove(orphan.envId))
        .catch((err: unknown) => this.deps.logger.warn({ err, envId: orphan.envId }, 'orphan removal failed; will retry on the next report'));
    }
  }

  /**
   * True when a report cannot be trusted against the row: from an agent that does not say when it
   * took the report, the controller's own observation of the container is moments old (the report
   * may have been built before it; reports that say are judged by takenBefore instead); or the exit
   * it shows happened before the container's current start.
   */
  private stale(row: { observed_at: Date | null; started_at: Date | null }, seen: ObservedEnvironment | undefined, takenAt: Date | undefined): boolean {
    if (!takenAt && row.observed_at && Date.now() - row.observed_at.getTime() < RECENT_OBSERVATION_MS) return true;
    return Boolean(seen?.finishedAt && row.started_at && seen.finishedAt.getTime() <= row.started_at.getTime());
  }

  async onHostOffline(hostId: string): Promise<void> {
    const reason = `host ${hostId} stopped reporting at ${new Date().toISOString()}`;
    const event = { kind: 'lost', message: `Host ${hostId} stopped reporting; environment lost until it returns` };
    const lost = await this.deps.db.transaction().execute((trx) => markLostOnHost(trx, hostId, reason, event));
    if (lost.length > 0) this.deps.logger.warn({ hostId, environments: lost.length }, 'host offline: environments lost');
  }
}

/** Locks environment rows in id order (nothing for fewer than two: one row needs no order). */
async function lockInIdOrder(trx: Trx, ids: readonly string[]): Promise<void> {
  const distinct = [...new Set(ids)];
  if (distinct.length < 2) return;
  await trx.selectFrom('environments').select('id').where('id', 'in', distinct).orderBy('id').forUpdate().execute();
}

/**
 * Whether a report taken at `takenAt` (on the controller's clock) predates the controller's own
 * last observation of a container (an ApplyEnvironment outcome, or a later report): it may still
 * show the container absent or stopped, however late it arrives. False when the agent does not say.
 */
export function takenBefore(takenAt: Date | undefined, observedAt: Date | null): boolean {
  return takenAt !== undefined && observedAt !== null && takenAt.getTime() < observedAt.getTime();
}
