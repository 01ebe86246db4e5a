import { sql } from 'kysely';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { ACTIVE_ENV_STATUSES, type EnvStatus } from '../db/schema.js';
import type { AgentEvent, AgentPool, HostObserver, ObservedEnvironment } from '../hosts/types.js';
import { addEvent } from './events.repo.js';

/** How long the reconciler's own observation outranks agent reports that may have been built before it. */
const RECENT_OBSERVATION_MS = 5_000;

/**
 * Moves environment status on from what agents report: records their lifecycle events as log
 * lines, marks environments of a silent host `lost` and brings them back when it reports again,
 * notices containers that died or vanished, and removes containers the controller does not know.
 */
export class EnvironmentObserver implements HostObserver {
  constructor(private readonly deps: { db: Db; logger: Logger; agents: () => AgentPool; kick: () => void }) {}

  async onReport(hostId: string, environments: readonly ObservedEnvironment[], events: readonly AgentEvent[]): Promise<void> {
    const { db } = this.deps;
    const rows = await db
      .selectFrom('environments')
      .select(['id', 'status', 'desired_state', 'applied_generation', 'spec_generation', 'observed_state', 'observed_at', 'started_at'])
      .where('host_id', '=', hostId)
      .where((eb) => eb.or([eb('desired_state', '!=', 'deleted'), eb('applied_generation', '<', sql<number>`spec_generation`)]))
      .execute();
    const known = new Map(rows.map((r) => [r.id, r]));
    const reported = new Map(environments.map((e) => [e.envId, e]));

    const eventRows = events
      .filter((e) => known.has(e.envId))
      .map((e) => ({ env_id: e.envId, at: e.at, kind: e.kind, message: e.message, source: 'agent' as const }));
    if (eventRows.length > 0) await db.insertInto('environment_events').values(eventRows).execute();

    let kick = false;
    for (const row of rows) {
      if (row.desired_state === 'deleted') continue;
      const seen = reported.get(row.id);
      const state = seen?.state ?? 'absent';
      const settled = row.applied_generation >= row.spec_generation;
      let next: { status: EnvStatus; reason: string; event?: string; reapply?: boolean } | undefined;

      if (row.status === 'lost') {
        if (row.desired_state === 'running' && state === 'running') next = { status: 'running', reason: '', event: 'Host reports again: environment running' };
        else if (row.desired_state === 'stopped' && state !== 'running') next = { status: 'stopped', reason: '', event: 'Host reports again: environment stopped' };
        else next = { status: row.desired_state === 'running' ? 'starting' : 'stopping', reason: 'host reports again; converging', event: 'Host reports again', reapply: true };
      } else if (settled && row.status === 'running' && state !== 'running' && !this.stale(row, seen)) {
        if (state === 'absent') {
          next = { status: 'starting', reason: 'container missing on the host; recreating it', event: 'Container missing on the host; recreating it', reapply: true };
        } else if (seen) {
          const why = seen.oomKilled ? `killed for exceeding its memory limit (OOM, exit code ${seen.exitCode})` : `exited with code ${seen.exitCode}`;
          next = { status: 'error', reason: `container ${why}`, event: `Container ${why}` };
        }
      }

      const observedChanged = row.observed_state !== state;
      if (!next && !observedChanged) continue;
      await db
        .updateTable('environments')
        .set({
          observed_state: state,
          observed_at: new Date(),
          ...(next ? { status: next.status, status_reason: next.reason, updated_at: new Date() } : {}),
          ...(next?.reapply ? { spec_generation: sql`spec_generation + 1` } : {}),
        })
        .where('id', '=', row.id)
        .where('spec_generation', '=', row.spec_generation)
        .execute();
      if (next?.event) await addEvent(db, row.id, next.status, next.event);
      if (next?.reapply) kick = true;
    }

    // Containers the controller does not know (or already forgot) are removed.
    const orphans = environments.filter((e) => !known.has(e.envId) && e.state !== 'absent');
    if (orphans.length > 0) {
      const stillListed = new Set(
        (await db.selectFrom('environments').select('id').where('id', 'in', orphans.map((o) => o.envId)).where('desired_state', '!=', 'deleted').execute()).map((r) => r.id),
      );
      for (const orphan of orphans) {
        if (stillListed.has(orphan.envId)) continue; // placed on another host meanwhile: not ours to judge here
        this.deps.logger.warn({ hostId, envId: orphan.envId }, 'removing a container the controller does not know');
        void this.deps
          .agents()
          .forHost(hostId)
          .then((agent) => agent.remove(orphan.envId))
          .catch((err: unknown) => this.deps.logger.warn({ err, envId: orphan.envId }, 'orphan removal failed; will retry on the next report'));
      }
    }
    if (kick) this.deps.kick();
  }

  /**
   * True when a report cannot be trusted against the row: the reconciler saw the container itself
   * moments ago (a report built before that may still show it stopped), or the exit it shows
   * happened before the container's current start.
   */
  private stale(row: { observed_at: Date | null; started_at: Date | null }, seen: ObservedEnvironment | undefined): boolean {
    if (row.observed_at && Date.now() - row.observed_at.getTime() < RECENT_OBSERVATION_MS) return true;
    return Boolean(seen?.finishedAt && row.started_at && seen.finishedAt.getTime() <= row.started_at.getTime());
  }

  async onHostOffline(hostId: string): Promise<void> {
    const { db } = this.deps;
    const lost = await db
      .updateTable('environments')
      .set({ status: 'lost', status_reason: `host ${hostId} stopped reporting at ${new Date().toISOString()}`, updated_at: new Date() })
      .where('host_id', '=', hostId)
      .where('desired_state', '!=', 'deleted')
      .where('status', 'in', [...ACTIVE_ENV_STATUSES])
      .returning('id')
      .execute();
    for (const { id } of lost) await addEvent(db, id, 'lost', `Host ${hostId} stopped reporting; environment lost until it returns`);
    if (lost.length > 0) this.deps.logger.warn({ hostId, environments: lost.length }, 'host offline: environments lost');
  }
}
