import { AppError } from '../../common/errors.js';
import type { Db, Trx } from '../db/database.js';
import type { HostAdminState } from '../db/schema.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import { approveHost, revokeHost } from './host-approval.repo.js';
import { deleteHostRows, environmentsOnHost, lockHost, setAdminState } from './hosts.repo.js';
import { findHostExtras, findHostSummary, listHostGpus, listHostSummaries } from './host-listing.repo.js';
import { listGpuTiles, listHostEnvironments, listHostEvents, type GpuTile, type HostEnvironment, type HostEvent } from './gpu-tiles.repo.js';
import type { HostDetail, HostFilter, HostSummary } from './model.js';

export { snapshotForScheduling } from './scheduling-snapshot.js';

/** Told when a host starts taking placements (the environments' WakeSignal: queued ones may fit now). */
export interface PlacementWake {
  notify(): void;
}

/**
 * Gives up on the removals a host's agent never confirmed, when an admin forces the removal of the
 * host (the environments' abandonRemovals): records them settled, with an event saying that their
 * container and data may remain on that server. Returns their ids.
 */
export type AbandonRemovals = (trx: Trx, hostId: string) => Promise<string[]>;

/** The admin's view of hosts: listing, detail, approve, cordon, uncordon, drain, remove. */
export class HostsService {
  constructor(
    private readonly db: Db,
    private readonly wake: PlacementWake = { notify: () => {} },
    private readonly abandonRemovals: AbandonRemovals = async () => [],
  ) {}

  /** One page of hosts matching `filter`, ordered by hostname; `total` counts every match. */
  async list(filter: HostFilter, paging: PageRequest): Promise<Page<HostSummary>> {
    return listHostSummaries(this.db, filter, { limit: paging.pageSize, offset: pageOffset(paging) });
  }

  /** One host with its GPUs and the environment holding each. Throws not_found. */
  async get(hostId: string): Promise<HostDetail> {
    const [summary, extras, gpus] = await Promise.all([findHostSummary(this.db, hostId), findHostExtras(this.db, hostId), listHostGpus(this.db, hostId)]);
    if (!summary || !extras) throw notFound(hostId);
    return { ...summary, ...extras, gpus };
  }

  /**
   * Every GPU of the hosts `hostIds` (one page of the listing) with the environment holding it and
   * that environment's owner: the console's GPU tiles, read in one statement for the whole page.
   */
  async gpuTiles(hostIds: readonly string[]): Promise<Map<string, GpuTile[]>> {
    return listGpuTiles(this.db, hostIds);
  }

  /** The environments on a host that are not deleted (at most `limit`), and their latest `limit` events. */
  async activity(hostId: string, limit = 50): Promise<{ environments: HostEnvironment[]; events: HostEvent[] }> {
    const [environments, events] = await Promise.all([listHostEnvironments(this.db, hostId, limit), listHostEvents(this.db, hostId, limit)]);
    return { environments, events };
  }

  /**
   * Approves a host registered with a join token that requires approval: it leaves
   * pending_approval and takes placements (queued environments are looked at again soon).
   * Idempotent: an approved host stays as it is. Returns the host. Throws not_found.
   */
  async approve(hostId: string): Promise<HostDetail> {
    if (!(await approveHost(this.db, hostId))) throw notFound(hostId);
    this.wake.notify();
    return this.get(hostId);
  }

  /**
   * Revokes a (compromised) host while environments are still on it: its certificates stop working
   * at once, the controller stops talking to it, and it goes offline. It never comes back: the
   * server must be reset and join again as a new host. Returns the host. Throws not_found.
   */
  async revoke(hostId: string): Promise<HostDetail> {
    const found = await this.db.transaction().execute((trx) => revokeHost(trx, hostId));
    if (!found) throw notFound(hostId);
    return this.get(hostId);
  }

  /** No new placements on the host; its environments keep running. Idempotent. Throws not_found. */
  async cordon(hostId: string): Promise<void> {
    await this.setState(hostId, 'cordoned');
  }

  /** The host takes placements again (from cordoned or draining). Idempotent. Throws not_found. */
  async uncordon(hostId: string): Promise<void> {
    await this.setState(hostId, 'active');
  }

  /**
   * Marks the host draining: like cordon, no new placements; its environments keep running until
   * their owners stop or delete them (nothing is evicted). Idempotent. Throws not_found.
   */
  async drain(hostId: string): Promise<void> {
    await this.setState(hostId, 'draining');
  }

  /**
   * Forgets a host: its GPUs and the reservations of its removed environments go with it. Refused
   * with wrong_state (naming them) while environments are on it: those not deleted, and deleted ones
   * whose removal its agent has not confirmed yet (their container and data are still there; the
   * reconciler keeps retrying while the host is online). With `force`, a host that is gone for good
   * (revoked, dead) is removed although such removals are pending: they are recorded as given up,
   * with an event saying that the data may remain on that server; environments that are not deleted
   * still refuse it. Throws not_found. An agent still running there gets NOT_FOUND on its next report
   * and registers as a new host. Returns the ids of the removals given up.
   */
  async remove(hostId: string, options: { force?: boolean } = {}): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      // The row lock orders this against placements, whose reservations reference the host row.
      if (!(await lockHost(trx, hostId))) throw notFound(hostId);
      const held = await environmentsOnHost(trx, hostId, 5);
      const live = held.count - held.pending;
      if (held.count > 0 && (live > 0 || !options.force)) {
        const more = held.count > held.items.length ? ', ...' : '';
        const named = held.items.map((e) => (e.removalPending ? `${e.id} deleting: its agent has not confirmed the removal yet` : `${e.id} ${e.status}`));
        const pending =
          held.pending > 0
            ? ' (a deleted environment is gone once the agent on the host removed its container and data: keep the host online until then; for a host that is gone for good, DELETE with ?force=true gives up on those removals)'
            : '';
        throw new AppError(
          'wrong_state',
          `host ${hostId} still has ${held.count} environment(s) (${named.join(', ')}${more}); delete them, or drain the host and wait until they are gone${pending}, then remove it`,
        );
      }
      const abandoned = held.pending > 0 ? await this.abandonRemovals(trx, hostId) : [];
      await deleteHostRows(trx, hostId);
      return abandoned;
    });
  }

  private async setState(hostId: string, state: HostAdminState): Promise<void> {
    if (!(await setAdminState(this.db, hostId, state))) throw notFound(hostId);
  }
}

function notFound(hostId: string): AppError {
  return new AppError('not_found', `host ${hostId} not found; GET /api/v1/admin/hosts lists the hosts`);
}
