import { sql } from 'kysely';
import type { Logger } from '../../common/logger.js';
import type { Db } from '../db/database.js';
import { ACTIVE_ENV_STATUSES } from '../db/schema.js';
import { isDatabaseUnavailable, logLoopFailure } from '../db/errors.js';
import { markSilentHostsOffline, msUntilNextSilence } from './hosts.repo.js';
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
  /**
   * After start(), count silence from the first pass (as after a database outage), so that no host
   * goes offline before it had a full timeout to report to a controller that just started (its
   * agents may have been backing off while it was away). The controller sets it; default false.
   */
  readonly graceAfterStart?: boolean;
}

export interface LivenessPass {
  /** True when another replica held the lock and this pass did nothing. */
  readonly skipped: boolean;
  /** Hosts this pass turned offline. */
  readonly offline: readonly string[];
  /** Milliseconds until the next online host falls silent for the timeout (undefined: none online, or skipped). */
  readonly nextSilenceMs?: number | undefined;
}

/** Added to a host's deadline when the next pass is timed for it, so that the pass finds it past. */
const DEADLINE_MARGIN_MS = 5;

/**
 * The host liveness loop: marks hosts whose last report is older than the timeout offline and tells
 * the observer once per host it flipped. A report brings a host back online (ReportStatus does).
 *
 * A host goes offline as soon as it has been silent for the timeout, not up to one interval later:
 * each pass times the next one for the first online host's deadline when that comes before the
 * interval (the interval only bounds how late a newly registered host is seen).
 *
 * While the database was away agents could not report either: silence is counted from the first
 * pass that reached the database again, so an outage does not turn every host offline.
 */
export class HostLivenessLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;
  private readonly log: Logger;
  /** The last pass failed for want of the database. */
  private outage = false;
  /** The database's time when it answered again after an outage (or at the first pass after a start with grace): nobody is silent for longer. */
  private heardSince: Date | undefined;
  /** start() asked for the grace: the next pass that reaches the database sets heardSince. */
  private starting = false;

  constructor(private readonly deps: LivenessDeps) {
    this.log = deps.logger.child({ component: 'liveness' });
  }

  /** Since when (the database's time) silence is counted: after an outage or a start with grace; undefined: from each host's last report. */
  get countingSince(): Date | undefined {
    return this.heardSince;
  }

  /**
   * One pass, in one transaction guarded by a transaction-scoped advisory lock (works on PostgreSQL
   * and PGlite); skipped when another replica holds it. Observer failures are logged, not thrown.
   */
  async runOnce(): Promise<LivenessPass> {
    let flipped;
    try {
      flipped = await this.pass();
    } catch (err) {
      if (isDatabaseUnavailable(err)) this.outage = true;
      throw err;
    }
    if (!flipped) return { skipped: true, offline: [] };
    for (const hostId of flipped.now) this.log.warn({ hostId, timeoutMs: this.deps.hostTimeoutMs }, 'host stopped reporting; marked offline');
    for (const hostId of [...flipped.now, ...flipped.pending]) {
      try {
        await this.deps.observer.onHostOffline(hostId);
      } catch (err) {
        this.log.error({ err, hostId }, 'host observer failed on an offline host');
      }
    }
    return { skipped: false, offline: flipped.now, nextSilenceMs: flipped.nextSilenceMs };
  }

  private async pass() {
    return this.deps.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ locked: boolean; now: Date }>`select pg_try_advisory_xact_lock(${LIVENESS_LOCK_KEY}::bigint) as locked, now() as now`.execute(trx);
      if (this.outage || this.starting) {
        this.heardSince = rows[0]?.now;
        this.log.info({ heardSince: this.heardSince }, this.outage ? 'database back: host silence counted from now' : 'controller started: host silence counted from now');
        this.outage = false;
        this.starting = false;
      }
      if (!rows[0]?.locked) return undefined;
      const now = await markSilentHostsOffline(trx, this.deps.hostTimeoutMs, this.heardSince);
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
      const nextSilenceMs = await msUntilNextSilence(trx, this.deps.hostTimeoutMs, this.heardSince);
      return { now, pending: pending.map((r) => r.id).filter((id) => !now.includes(id)), nextSilenceMs };
    });
  }

  /** Starts the periodic passes (with the grace after start when configured). Idempotent. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.deps.graceAfterStart) this.starting = true;
    this.schedule();
  }

  /** Stops the loop and waits for a pass in progress. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(nextSilenceMs?: number): void {
    if (this.stopped) return;
    const interval = this.deps.intervalMs ?? Math.max(50, Math.floor(this.deps.hostTimeoutMs / 3));
    const delay = nextSilenceMs === undefined ? interval : Math.min(interval, Math.max(0, Math.ceil(nextSilenceMs)) + DEADLINE_MARGIN_MS);
    this.timer = setTimeout(() => {
      let next: number | undefined;
      this.running = this.runOnce()
        .then((pass) => void (next = pass.nextSilenceMs))
        .catch((err: unknown) => logLoopFailure(this.log, err, 'liveness pass'))
        .finally(() => {
          this.running = undefined;
          this.schedule(next);
        });
    }, delay);
    this.timer.unref();
  }
}
