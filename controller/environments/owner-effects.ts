import type { Trx } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import type { EnvironmentEffects, Named } from '../users/environment-effects.js';
import { unmountWorkspaceDatasets } from './environment-mounts.js';
import { changeOwner, requestChange, requestReapply } from './environment-writes.js';
import type { WakeSignal } from './wake.js';

/**
 * Statuses of an environment meant to run whose container may be running (or is about to): a key
 * change must reach them now. A stopped or stopping one gets its keys at its next start (the spec
 * reads them then); one in `error` only when its container was seen running again.
 */
const KEYS_LIVE: readonly EnvStatus[] = ['creating', 'starting', 'running', 'restarting', 'lost'];

/** See EnvironmentEffects: what a user's keys, disabling and workspace removal do to their environments. */
export class OwnerEffects implements EnvironmentEffects {
  constructor(private readonly wake: WakeSignal) {}

  async keysChanged(trx: Trx, userId: number, change: string): Promise<string[]> {
    const rows = await trx
      .selectFrom('environments')
      .select('id')
      .where('owner_id', '=', userId)
      .where('desired_state', '=', 'running')
      .where((eb) => eb.or([eb('status', 'in', [...KEYS_LIVE]), eb.and([eb('status', '=', 'error'), eb('observed_state', '=', 'running')])]))
      .execute();
    return requestReapply(trx, rows.map((r) => r.id), { kind: 'ssh_keys_updated', message: change });
  }

  async ownerDisabled(trx: Trx, user: Named): Promise<string[]> {
    const rows = await trx
      .selectFrom('environments')
      .select(['id', 'status', 'host_id'])
      .where('owner_id', '=', user.id)
      .where('desired_state', '!=', 'deleted')
      .where('status', '!=', 'stopped')
      .orderBy('id')
      .forUpdate()
      .execute();
    for (const env of rows) await stopNow(trx, env, `Stop requested: owner ${user.name} (user ${user.id}) was disabled; the data is kept`);
    return rows.map((r) => r.id);
  }

  async memberRemoved(trx: Trx, workspace: Named, member: Named, owner: Named): Promise<string[]> {
    const handed = await trx
      .selectFrom('environments')
      .select(['id', 'status', 'host_id'])
      .where('workspace_id', '=', workspace.id)
      .where('owner_id', '=', member.id)
      .where('desired_state', '!=', 'deleted')
      .orderBy('id')
      .forUpdate()
      .execute();
    const why = `${member.name} (user ${member.id}) was removed from workspace ${workspace.name} (${workspace.id})`;
    for (const env of handed) {
      await changeOwner(trx, env.id, owner.id, { kind: 'owner_changed', message: `Owner changed from ${member.name} (user ${member.id}) to ${owner.name} (user ${owner.id}): ${why}` });
      if (env.status !== 'stopped') await stopNow(trx, env, `Stop requested: ${why}; nothing they started keeps running, the data is kept`);
    }
    const unmounted = await unmountWorkspaceDatasets(trx, member.id, workspace.id, why);
    return [...handed.map((e) => e.id), ...unmounted];
  }

  committed(): void {
    this.wake.notify();
  }
}

interface StoppableRow {
  readonly id: string;
  readonly status: EnvStatus;
  readonly host_id: string | null;
}

/**
 * Stops an environment as a user's stop does, whatever its status: one never placed settles at
 * once (it holds nothing); a lost one stays lost until its host reports again and then stops
 * (observer.ts); every other one is stopped by the reconciler, which releases its CPU, memory and
 * GPUs. A stop already under way is applied again (the spec may have changed, e.g. no keys).
 */
async function stopNow(trx: Trx, env: StoppableRow, message: string): Promise<void> {
  const status: EnvStatus = env.host_id === null ? 'stopped' : env.status === 'lost' ? 'lost' : 'stopping';
  await requestChange(trx, env.id, { desired_state: 'stopped', status, ...(status === 'lost' ? {} : { status_reason: '' }) }, { kind: 'stop_requested', message });
}
