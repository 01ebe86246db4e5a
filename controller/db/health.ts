import { sql } from 'kysely';
import type { Db } from './database.js';

/** Whether the database answers (for `GET /healthz`). */
export class DatabaseHealth {
  constructor(private readonly db: Db) {}

  /** True when the database answers `select 1`, false on any error. */
  async ping(): Promise<boolean> {
    try {
      await sql`select 1`.execute(this.db);
      return true;
    } catch {
      return false;
    }
  }
}
