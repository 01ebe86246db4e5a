import { sql } from 'kysely';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { ACTIVE_ENV_STATUSES } from '../db/schema.js';
import { markSilentHostsOffline } from './hosts.repo.js';
import type { HostObserver } from './types.js';

/**
 * Key of the PostgreSQL advisory lock that makes one controller replica at a time run a liveness
 * pass ("rg" 0x7267, loop 1). Other loops must use other keys.
 */
export const LIVENESS_LOCK_KEY = 0x7267_0001;

export interface LivenessDeps {
  readonly db: Db;
  readonly logger: Logger;
  /** A host not heard from for this long is offline (REMOTEGPU_HOST_TIMEOUT_MS). */
  readonly hostTimeoutMs: number;
  /** Pause between passes; defaults to a third of the timeout. */
  readonly intervalMs?: number;
  /** Told once per host that went offline (again after a restart, until its environments are lost). */
  readonly observer: HostObserver;
}

export interface LivenessPass {
  /** True when another replica held the lock and this pass did nothing. */
  readonly skipped: boolean;
  /** Hosts this pass turned offline. */
  readonly offline: readonly string[];
}

/**
 * The host liveness loop: marks hosts whose last report is older than the timeout offline and tells
 * the observer once per host it flipped. A report brings a host back online (ReportStatus does).
 */
export class HostLivenessLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;
  private readonly log: Logger;

  constructor(private readonly deps: LivenessDeps) {
    this.log = deps.logger.child({ component: 'liveness' });
  }

  /**
   * One pass, in one transaction guarded by a transaction-scoped advisory lock (works on PostgreSQL
   * and PGlite); skipped when another replica holds it. Observer failures are logged, not thrown.
   */
  async runOnce(): Promise<LivenessPass> {
    const flipped = await this.deps.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${LIVENESS_LOCK_KEY}::bigint) as locked`.execute(trx);
      if (!rows[0]?.locked) return undefined;
      const now = await markSilentHostsOffline(trx, this.deps.hostTimeoutMs);
      // Offline hosts that still have active environments: the observer call for them was lost
      // (controller restart, observer failure) and is repeated; it is idempotent.
      const pending = await trx
        .selectFrom('hosts as h')
        .select('h.id')
        .where('h.liveness', '=', 'offline')
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('environments as e')
              .select('e.id')
              .whereRef('e.host_id', '=', 'h.id')
              .where('e.desired_state', '!=', 'deleted')
              .where('e.status', 'in', [...ACTIVE_ENV_STATUSES]),
          ),
        )
        .execute();
      return { now, pending: pending.map((r) => r.id).filter((id) => !now.includes(id)) };
    });
    if (!flipped) return { skipped: true, offline: [] };
    for (const hostId of flipped.now) this.log.warn({ hostId, timeoutMs: this.deps.hostTimeoutMs }, 'host stopped reporting; marked offline');
    for (const hostId of [...flipped.now, ...flipped.pending]) {
      try {
        await this.deps.observer.onHostOffline(hostId);
      } catch (err) {
        this.log.error({ err, hostId }, 'host observer failed on an offline host');
      }
    }
    return { skipped: false, offline: flipped.now };
  }

  /** Starts the periodic passes. Idempotent. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops the loop and waits for a pass in progress. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    const interval = this.deps.intervalMs ?? Math.max(50, Math.floor(this.deps.hostTimeoutMs / 3));
    this.timer = setTimeout(() => {
      this.running = this.runOnce()
        .catch((err: unknown) => this.log.error({ err }, 'liveness pass failed'))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, interval);
    this.timer.unref();
  }
}
