import { type Expression, type ExpressionBuilder, type SqlBool } from 'kysely';
import type { Trx } from '../db/database.js';
import type { Database, EnvStatus } from '../db/schema.js';
import type { EnvironmentEffects, Named } from '../users/environment-effects.js';
import { unmountWorkspaceDatasets } from './environment-mounts.js';
import { changeOwner, requestChange, requestReapply, rotateJupyterToken } from './environment-writes.js';
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
      .where('desired_state', '!=', 'deleted')
      .where((eb) => eb.or([eb('observed_state', '=', 'running'), eb.and([eb('desired_state', '=', 'running'), eb('status', 'in', [...KEYS_LIVE])])]))
      .execute();
    return requestReapply(trx, rows.map((r) => r.id), { kind: 'ssh_keys_updated', message: change });
  }

  async ownerDisabled(trx: Trx, user: Named): Promise<string[]> {
    // The caller locked the user's row; every environment concerned is locked next, in id order.
    const memberships = trx.selectFrom('workspace_members').select('workspace_id').where('user_id', '=', user.id);
    const rows = await lockEnvironments(trx, (eb) => eb.or([eb('owner_id', '=', user.id), eb('workspace_id', 'in', memberships)]));
    const why = `workspace member ${user.name} (user ${user.id}) was disabled`;
    const changed: string[] = [];
    for (const env of rows) {
      if (env.owner_id !== user.id) changed.push(await rotateToken(trx, env, why));
      else if (env.status !== 'stopped') {
        await stopNow(trx, env, `Stop requested: owner ${user.name} (user ${user.id}) was disabled; the data is kept`);
        changed.push(env.id);
      }
    }
    return changed;
  }

  async memberRemoved(trx: Trx, workspace: Named, member: Named, owner: Named): Promise<string[]> {
    // Locks in the order disable takes them (the user's row, then environments in id order), all
    // before changing any, so removing a member while disabling them waits instead of deadlocking.
    // FOR SHARE: a create by that user (which holds the row FOR SHARE) does not block it.
    await trx.selectFrom('users').select('id').where('id', '=', member.id).forShare().execute();
    const rows = await lockEnvironments(trx, (eb) => eb.or([eb('workspace_id', '=', workspace.id), eb('owner_id', '=', member.id)]));
    const why = `${member.name} (user ${member.id}) was removed from workspace ${workspace.name} (${workspace.id})`;
    const changed: string[] = [];
    for (const env of rows.filter((e) => e.workspace_id === workspace.id)) {
      if (env.owner_id !== member.id) {
        changed.push(await rotateToken(trx, env, why));
        continue;
      }
      await changeOwner(trx, env.id, owner.id, { kind: 'owner_changed', message: `Owner changed from ${member.name} (user ${member.id}) to ${owner.name} (user ${owner.id}): ${why}` });
      if (env.status !== 'stopped') await stopNow(trx, env, `Stop requested: ${why}; nothing they started keeps running, the data is kept`);
      changed.push(env.id);
    }
    const unmounted = await unmountWorkspaceDatasets(trx, member.id, workspace.id, why);
    return [...new Set([...changed, ...unmounted])];
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

type EnvFilter = (eb: ExpressionBuilder<Database, 'environments'>) => Expression<SqlBool>;

/** Locks the environments `filter` selects that are not deleted, in one statement, in id order. */
function lockEnvironments(trx: Trx, filter: EnvFilter) {
  return trx
    .selectFrom('environments')
    .select(['id', 'status', 'host_id', 'owner_id', 'workspace_id', 'desired_state', 'observed_state'])
    .where('desired_state', '!=', 'deleted')
    .where(filter)
    .orderBy('id')
    .forUpdate()
    .execute();
}

/**
 * Every workspace member can read the Jupyter URL and token of every environment of the workspace:
 * when one leaves or is disabled, each gets a new token; one whose container may be running is
 * applied again (the token is in the container's spec hash: recreated, data kept). Returns its id.
 */
async function rotateToken(trx: Trx, env: StoppableRow & { desired_state: string; observed_state: string }, why: string): Promise<string> {
  const live = isLive(env);
  const message = `Jupyter token rotated: ${why}${live ? '; a running container is recreated with it, the data is kept' : ''}`;
  await rotateJupyterToken(trx, env.id, live, { kind: 'jupyter_token_rotated', message });
  return env.id;
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

/**
 * Whether the environment's container may be running: it was seen running (also after a stop that
 * failed: the container still runs although the desired state is stopped), or it is meant to run
 * and on its way. The SQL twin of this is in keysChanged.
 */
function isLive(env: { status: EnvStatus; desired_state: string; observed_state: string }): boolean {
  return env.observed_state === 'running' || (env.desired_state === 'running' && KEYS_LIVE.includes(env.status));
}
