import type { Trx } from '../db/database.js';

/** A user or a workspace as events name it. */
export interface Named {
  readonly id: number;
  readonly name: string;
}

/**
 * What a change of a user, of their SSH keys or of their workspace memberships does to the
 * environments already there (revocation reaches what is running). Implemented by
 * `environments/owner-effects.ts` and handed to the users' services by the composition root, so
 * that users/ does not import environments/. Every method writes inside the caller's transaction;
 * `committed()` is called once that transaction committed, to wake the reconciler.
 */
export interface EnvironmentEffects {
  /**
   * The user's SSH keys changed (`change` says how, without key material): every environment of
   * theirs whose container may be running is applied again, so the agent rewrites its
   * authorized_keys (no recreate). Returns the environment ids.
   */
  keysChanged(trx: Trx, userId: number, change: string): Promise<string[]>;
  /**
   * The user was disabled: every environment of theirs that is not stopped is stopped (data kept,
   * CPU, memory and GPUs released as for a user's stop), and every other environment of the
   * workspaces they belong to gets a new Jupyter token (they could read it). Returns the
   * environment ids that changed. The caller holds the user's row FOR UPDATE.
   */
  ownerDisabled(trx: Trx, user: Named): Promise<string[]>;
  /**
   * `member` left `workspace`: their environments in it are handed to `owner` (the workspace's
   * owner) and stopped, every environment of the workspace gets a new Jupyter token, and the
   * workspace's datasets are unmounted from their other environments. Locks the member's row, then
   * every environment concerned in id order, as disabling does. Returns the environment ids that changed.
   */
  memberRemoved(trx: Trx, workspace: Named, member: Named, owner: Named): Promise<string[]>;
  /** The transaction that called the methods above committed. */
  committed(): void;
}

