import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/** The reconciler's session advisory lock key ("rgpu"). */
export const RECONCILER_LOCK_KEY = 0x72677075;

/**
 * Only one controller replica runs reconciler passes. On PostgreSQL the first pass takes a session
 * advisory lock on a pinned connection (or is skipped when another replica holds it); passes of this
 * process that overlap it run under the same hold, which is let go only when the last of them ended.
 * Embedded PGlite serves exactly one controller process, so there it is no lock at all.
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
    if (this.lease) return this.lease.run(pass);
    await this.db.connection().execute(async (conn) => {
      // While this one waited for a connection another pass may have taken the lock, or be letting
      // it go (this process still holds it then: pg_try_advisory_lock would say no, and the pass
      // would be skipped).
      while (this.releasing) await this.releasing;
      if (this.lease) return this.lease.run(pass);
      const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${RECONCILER_LOCK_KEY}) as ok`.execute(conn);
      if (!got.rows[0]?.ok) return;
      const lease = (this.lease = new Lease());
      let failure: unknown;
      try {
        await lease.run(pass);
      } catch (err) {
        failure = err;
      }
      // Checked and given up in one step, so that no pass joins a lease being let go.
      while (lease.active > 0) await lease.idle();
      let released!: () => void;
      this.releasing = new Promise((resolve) => (released = resolve));
      this.lease = undefined;
      try {
        await sql`select pg_advisory_unlock(${RECONCILER_LOCK_KEY})`.execute(conn);
      } finally {
        this.releasing = undefined;
        released();
      }
      if (failure !== undefined) throw failure;
    });
  }
}

/** Passes running under one hold of the PostgreSQL lock. */
class Lease {
  active = 0;
  private readonly waiters: (() => void)[] = [];

  async run(pass: () => Promise<void>): Promise<void> {
    this.active++;
    try {
      await pass();
    } finally {
      if (--this.active === 0) for (const resolve of this.waiters.splice(0)) resolve();
    }
  }

  /** Resolves once no pass runs (check `active` again: one may have joined since). */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
