import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { isDatabaseUnavailable } from '../db/errors.js';

/** The reconciler's session advisory lock key ("rgpu"). */
export const RECONCILER_LOCK_KEY = 0x72677075;

/**
 * Only one controller replica runs reconciler passes. On PostgreSQL the first pass takes a session
 * advisory lock on a pinned connection (or is skipped when another replica holds it); passes of this
 * process that overlap it run under the same hold, which is let go only when the last of them ended.
 * Embedded PGlite serves exactly one controller process, so there it is no lock at all.
 *
 * The pinned connection may die while its passes wait on agents (the server restarts, a network
 * fault): its session, and the lock with it, are gone then. The process survives that (every pooled
 * client has an error listener, see openDatabase). A probe on the pinned connection finds the hold
 * lost: run when a pass joins the hold, and when a pass failed for want of the database. No pass
 * joins a lost hold: the next one takes the lock anew on a fresh connection (or is skipped, when
 * another replica took it meanwhile), while the passes of the lost hold end by themselves.
 */
export class PassLock {
  private lease: Lease | undefined;
  /** Set while a hold is being let go: a pass arriving then waits, then takes the lock anew. */
  private releasing: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly dbKind: 'pglite' | 'postgres',
  ) {}

  /** Runs `pass` under the lock, or not at all when another replica holds it. Rejects as `pass` does. */
  async run(pass: () => Promise<void>): Promise<void> {
    if (this.dbKind === 'pglite') return pass();
    while (this.releasing) await this.releasing;
    if (this.lease && !this.lease.lost) return this.lease.run(pass);
    await this.db.connection().execute(async (conn) => {
      // While this one waited for a connection another pass may have taken the lock, or be letting
      // it go (this process still holds it then: pg_try_advisory_lock would say no, and the pass
      // would be skipped).
      while (this.releasing) await this.releasing;
      if (this.lease && !this.lease.lost) return this.lease.run(pass);
      const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${RECONCILER_LOCK_KEY}) as ok`.execute(conn);
      if (!got.rows[0]?.ok) return;
      const lease = (this.lease = new Lease(() => sql`select 1`.execute(conn)));
      let failure: unknown;
      try {
        await lease.run(pass);
      } catch (err) {
        failure = err;
      }
      // Checked and given up in one step, so that no pass joins a lease being let go. A lost hold
      // may have been replaced already: then the newer one is not touched.
      while (lease.active > 0) await lease.idle();
      const current = this.lease === lease;
      let released!: () => void;
      if (current) {
        this.releasing = new Promise((resolve) => (released = resolve));
        this.lease = undefined;
      }
      try {
        await lease.probing;
        // Tried even when the hold looks lost: a live session must not keep the lock in the pool.
        await sql`select pg_advisory_unlock(${RECONCILER_LOCK_KEY})`.execute(conn);
      } catch (err) {
        // A dead session took its lock along; its connection is dropped from the pool on release.
        if (!isDatabaseUnavailable(err)) failure ??= err;
      } finally {
        if (current) {
          this.releasing = undefined;
          released();
        }
      }
      if (failure !== undefined) throw failure;
    });
  }
}

/** Passes running under one hold of the PostgreSQL lock. */
class Lease {
  active = 0;
  /** The hold's session is gone (a query on its connection failed): no pass joins it any more. */
  lost = false;
  /** The probe in flight, if any (awaited before the connection is given back). */
  probing: Promise<void> | undefined;
  private readonly waiters: (() => void)[] = [];

  /** `check` queries the hold's pinned connection; it rejects when the session is gone. */
  constructor(private readonly check: () => Promise<unknown>) {}

  async run(pass: () => Promise<void>): Promise<void> {
    this.active++;
    // A pass joining the hold checks, without waiting, that its session still lives: a database
    // restart between two passes ends the session without a word.
    if (this.active > 1) this.probe();
    try {
      await pass();
    } catch (err) {
      if (isDatabaseUnavailable(err)) this.probe();
      throw err;
    } finally {
      if (--this.active === 0) for (const resolve of this.waiters.splice(0)) resolve();
    }
  }

  private probe(): void {
    if (this.probing || this.lost) return;
    this.probing = this.check()
      .then(
        () => undefined,
        () => void (this.lost = true),
      )
      .finally(() => (this.probing = undefined));
  }

  /** Resolves once no pass runs (check `active` again: one may have joined since). */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
